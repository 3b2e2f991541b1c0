// CLibSSH: the system headers Swift imports.
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>
