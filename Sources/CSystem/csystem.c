#define _GNU_SOURCE
#include <unistd.h>
#include "csystem.h"

int csystem_syncfs(int fd) { return syncfs(fd); }
