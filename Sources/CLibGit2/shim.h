// CLibGit2: the libgit2 headers Swift imports, and what Swift cannot call in them (the variadic
// git_libgit2_opts), as static inline functions prefixed `patchd_git_`. Only GitStore imports this module.
#ifndef PATCHD_CLIBGIT2_SHIM_H
#define PATCHD_CLIBGIT2_SHIM_H
#include <git2.h>
#include <git2/sys/repository.h> // git_repository_set_index: the snapshot's in-memory index

// Points the global, XDG and system config search paths at nothing, so the
// daemon never reads a user's ~/.gitconfig or /etc/gitconfig.
static inline int patchd_git_isolate_config(void) {
    int levels[] = { GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
                     GIT_CONFIG_LEVEL_PROGRAMDATA };
    for (unsigned i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        int rc = git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
        if (rc < 0) return rc;
    }
    return 0;
}
#endif
