#define _GNU_SOURCE
#include <malloc.h>
#include <unistd.h>
#include <sys/xattr.h>
#include "clinux.h"

int clinux_syncfs(int fd) { return syncfs(fd); }

int clinux_limit_malloc_arenas(int n) { return mallopt(M_ARENA_MAX, n); }

int clinux_fix_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }

int clinux_setxattr(const char *path, const char *name, const void *value, unsigned long size) {
    return setxattr(path, name, value, size, 0);
}
