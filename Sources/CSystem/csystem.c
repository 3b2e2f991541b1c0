// CSystem: wrappers over glibc GNU extensions (see csystem.h).
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <signal.h>
#include <sys/prctl.h>
#include "csystem.h"

int patchd_pipe2_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int patchd_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int patchd_spawn_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int patchd_accept_cloexec(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_CLOEXEC);
}

int patchd_set_pdeathsig_kill(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL); }

#include <pthread.h>
void patchd_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
