// CLibCurl: the system headers Swift imports.
#include <curl/curl.h>
