// CShims: thin C wrappers over variadic functions and macros (see cshims.h).
#include "cshims.h"

void patchd_ssh_server_callbacks_init(struct ssh_server_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

void patchd_ssh_channel_callbacks_init(struct ssh_channel_callbacks_struct *cb) {
    ssh_callbacks_init(cb);
}

int patchd_git_isolate_config(void) {
    int levels[] = { GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL,
                     GIT_CONFIG_LEVEL_PROGRAMDATA };
    for (unsigned i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        int rc = git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, levels[i], "");
        if (rc < 0) return rc;
    }
    return 0;
}

int patchd_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

CURLcode patchd_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode patchd_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode patchd_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode patchd_curl_setopt_write_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata)) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, fn);
}

CURLcode patchd_curl_setopt_header_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata)) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, fn);
}

CURLcode patchd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLcode patchd_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
