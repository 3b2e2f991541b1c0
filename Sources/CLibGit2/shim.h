// CLibGit2: the system headers Swift imports.
#include <git2.h>
