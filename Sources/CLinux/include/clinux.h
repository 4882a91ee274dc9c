// clinux: Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE).
#ifndef CLINUX_H
#define CLINUX_H

/// syncfs(2): flush every dirty page and inode of the filesystem holding `fd`.
int clinux_syncfs(int fd);

#endif
