// CLibGit2: the system headers Swift imports.
#include <git2.h>
// git_repository_set_index: the result snapshot gives the bare repository an in-memory index.
#include <git2/sys/repository.h>
