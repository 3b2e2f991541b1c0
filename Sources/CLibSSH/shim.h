// CLibSSH: the libssh headers Swift imports, and what Swift cannot call in them (macros),
// as static inline functions prefixed `patchd_ssh_`. Only SSHServer imports this module.
#ifndef PATCHD_CLIBSSH_SHIM_H
#define PATCHD_CLIBSSH_SHIM_H
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>

// ssh_callbacks_init is a macro that sets the struct's size field.
static inline void patchd_ssh_server_callbacks_init(struct ssh_server_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}
static inline void patchd_ssh_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}
#endif
