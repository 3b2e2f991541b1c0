// CPatchdSystem: glibc GNU extensions that Swift's Glibc module does not expose.
#ifndef PATCHD_CSYSTEM_H
#define PATCHD_CSYSTEM_H
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>

int patchd_pipe2_cloexec(int fds[2]);
int patchd_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);
int patchd_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from);
int patchd_accept_cloexec(int fd, struct sockaddr *addr, socklen_t *len);
void patchd_set_thread_name(const char *name);
/// Sets the owner of PATH and everything under it with lchown, never following symlinks
/// (nftw FTW_PHYS); entries that already have that owner are left alone. 0, or -1 with errno.
int patchd_chown_tree(const char *path, uid_t uid, gid_t gid);
/// The disk space (allocated blocks) of PATH and everything under it, not following symlinks
/// or crossing mounts. 0, or -1 with errno; BYTES holds the sum of what could be read.
int patchd_tree_usage(const char *path, unsigned long long *bytes);
#endif
