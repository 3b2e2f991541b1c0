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
// Request bodies streamed from a file (CURLOPT_UPLOAD), with a seek callback so libcurl can
// rewind when it resends a request on a connection that turned out to be closed.
static inline CURLcode patchd_curl_setopt_read_function(CURL *handle,
    size_t (*fn)(char *buffer, size_t size, size_t nitems, void *userdata)) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, fn);
}
static inline CURLcode patchd_curl_setopt_seek_function(CURL *handle,
    int (*fn)(void *userdata, curl_off_t offset, int origin)) {
    return curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, fn);
}
#endif
