// HTTPClient: owns one curl_slist of request header lines and frees it in deinit.

import CLibCurl

/// A curl_slist for CURLOPT_HTTPHEADER. libcurl reads it during the transfer, so it must
/// outlive `curl_easy_perform`; the client keeps it alive until the transfer returns.
final class CurlHeaderList {
    private(set) var pointer: UnsafeMutablePointer<curl_slist>?

    init() {}

    /// Appends one raw line, e.g. "Name: value" or "Name;" (empty value) or "Name:" (remove).
    func append(_ line: String) throws(HTTPError) {
        guard let grown = curl_slist_append(pointer, line) else {
            throw .transport(
                code: Int32(bitPattern: CURLE_OUT_OF_MEMORY.rawValue),
                message: "curl_slist_append: out of memory")
        }
        pointer = grown
    }

    deinit { curl_slist_free_all(pointer) }
}
