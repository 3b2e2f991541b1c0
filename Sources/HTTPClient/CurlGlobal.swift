// HTTPClient: runs curl_global_init exactly once per process, before the first easy handle.

import CLibCurl

enum CurlGlobal {
    /// Swift initialises a global `let` once, under a lock, on first use: the thread-safe
    /// once that curl_global_init needs (it is not thread-safe on every libcurl build).
    private static let initResult: Int32 = Int32(bitPattern: curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue)

    static func ensureInitialised() throws(HTTPError) {
        let code = initResult
        if code != 0 {
            let message = String(cString: curl_easy_strerror(CURLcode(rawValue: UInt32(bitPattern: code))))
            throw .transport(code: code, message: "curl_global_init: \(message)")
        }
    }
}
