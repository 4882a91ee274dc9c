#define _GNU_SOURCE
#include <malloc.h>
#include <unistd.h>
#include "clinux.h"

int clinux_syncfs(int fd) { return syncfs(fd); }

int clinux_limit_malloc_arenas(int n) { return mallopt(M_ARENA_MAX, n); }
