// CLibCurl: the libcurl headers Swift imports, and typed wrappers over the variadic
// curl_easy_setopt/curl_easy_getinfo, prefixed `patchd_curl_`. Only HTTPClient imports this module.
#ifndef PATCHD_CLIBCURL_SHIM_H
#define PATCHD_CLIBCURL_SHIM_H
#include <curl/curl.h>

static inline CURLcode patchd_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode patchd_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode patchd_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode patchd_curl_setopt_write_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata)) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, fn);
}
static inline CURLcode patchd_curl_setopt_header_function(CURL *handle,
    size_t (*fn)(char *ptr, size_t size, size_t nmemb, void *userdata)) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, fn);
}
static inline CURLcode patchd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
// Options that take a curl_off_t (e.g. CURLOPT_POSTFIELDSIZE_LARGE): long is not the promised type.
static inline CURLcode patchd_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
#endif
