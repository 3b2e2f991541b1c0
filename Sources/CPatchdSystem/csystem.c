// CPatchdSystem: wrappers over glibc GNU extensions (see csystem.h).
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <signal.h>
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

#include <pthread.h>
void patchd_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

#include <ftw.h>
#include <sys/stat.h>
// nftw's callback has no context argument: the owner travels in thread-locals.
static __thread uid_t chown_tree_uid;
static __thread gid_t chown_tree_gid;

static int chown_tree_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)ftw;
    if (flag != FTW_NS && sb->st_uid == chown_tree_uid && sb->st_gid == chown_tree_gid) return 0;
    return lchown(path, chown_tree_uid, chown_tree_gid) == 0 ? 0 : -1;
}

int patchd_chown_tree(const char *path, uid_t uid, gid_t gid) {
    chown_tree_uid = uid;
    chown_tree_gid = gid;
    return nftw(path, chown_tree_entry, 32, FTW_PHYS);
}

// nftw's callback has no context argument: the sum travels in a thread-local.
static __thread unsigned long long tree_usage_bytes;

static int tree_usage_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)path; (void)ftw;
    if (flag != FTW_NS) tree_usage_bytes += (unsigned long long)sb->st_blocks * 512ULL;
    return 0;
}

int patchd_tree_usage(const char *path, unsigned long long *bytes) {
    tree_usage_bytes = 0;
    int rc = nftw(path, tree_usage_entry, 32, FTW_PHYS | FTW_MOUNT);
    *bytes = tree_usage_bytes;
    return rc;
}
