// clinux: Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef CLINUX_H
#define CLINUX_H

/// syncfs(2): flush every dirty page and inode of the filesystem holding `fd`.
int clinux_syncfs(int fd);

/// mallopt(M_ARENA_MAX, n): at most `n` malloc arenas for the whole process (malloc.h, which
/// Swift's Glibc module does not import).
int clinux_limit_malloc_arenas(int n);

/// mallopt(M_MMAP_THRESHOLD, bytes): allocations of `bytes` or more are mmapped and go back to the
/// kernel when freed; setting it also stops glibc from raising it as large blocks are freed.
int clinux_fix_mmap_threshold(int bytes);

/// setxattr(2) on a path (sys/xattr.h, which Swift's Glibc module does not import): `cdsfs share`
/// tells a mount what to do through its control attributes.
int clinux_setxattr(const char *path, const char *name, const void *value, unsigned long size);

#endif
