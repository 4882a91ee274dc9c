// csystem: Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef CSYSTEM_H
#define CSYSTEM_H

/// syncfs(2): flush every dirty page and inode of the filesystem holding `fd`.
int csystem_syncfs(int fd);

#endif
