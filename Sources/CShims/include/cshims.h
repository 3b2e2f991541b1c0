// CShims: C helpers for what Swift cannot call: variadic functions and macros
// of libssh, libgit2 and libcurl. Every function is prefixed `patchd_`.
#ifndef PATCHD_CSHIMS_H
#define PATCHD_CSHIMS_H

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libssh/callbacks.h>
#include <git2.h>
#include <curl/curl.h>

// libssh: ssh_callbacks_init is a macro that sets the struct's size field.
void patchd_ssh_server_callbacks_init(struct ssh_server_callbacks_struct *cb);
void patchd_ssh_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb);

// libgit2: git_libgit2_opts is variadic.
// Points the global, XDG and system config search paths at nothing, so the
// daemon never reads a user's ~/.gitconfig or /etc/gitconfig.
int patchd_git_isolate_config(void);
// Disables the "repository owned by someone else" check for paths patchd owns.
int patchd_git_set_owner_validation(int enabled);

// libcurl: curl_easy_setopt is variadic; one typed wrapper per argument kind.
CURLcode patchd_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode patchd_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode patchd_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode patchd_curl_setopt_write_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata));
CURLcode patchd_curl_setopt_header_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata));
CURLcode patchd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
// Options that take a curl_off_t (e.g. CURLOPT_POSTFIELDSIZE_LARGE): long is not the promised type.
CURLcode patchd_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);

#endif
