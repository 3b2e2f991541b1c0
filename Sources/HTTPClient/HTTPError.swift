// HTTPClient: typed transfer errors carrying libcurl's code and message, and which ones are worth retrying.

import CLibCurl

package enum HTTPError: Error, CustomStringConvertible, Sendable, Equatable {
    /// libcurl failed: its CURLcode, `curl_easy_strerror` and, when set, its error buffer's detail.
    case transport(code: Int32, message: String)
    /// A callback asked to stop (`onData` returned false).
    case aborted
    /// `collect` received more than `limit` body bytes.
    case responseTooLarge(limit: Int)
    /// The request cannot be sent as given (bad method, header, URL or timeout).
    case invalidRequest(String)

    package var description: String {
        switch self {
        case .transport(let code, let message): "HTTP transport error (curl \(code)): \(message)"
        case .aborted: "HTTP transfer aborted by the caller"
        case .responseTooLarge(let limit): "HTTP response body larger than \(limit) bytes"
        case .invalidRequest(let why): "invalid HTTP request: \(why)"
        }
    }

    /// True for failures a later attempt may not hit: DNS, connection refused or reset,
    /// timeouts, TLS handshake failures, and connections lost mid-transfer.
    package var isRetryable: Bool {
        guard case .transport(let code, _) = self else { return false }
        return Self.retryableCodes.contains(code)
    }

    private static let retryableCodes: Set<Int32> = Set(
        [
            CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
            CURLE_HTTP2, CURLE_PARTIAL_FILE, CURLE_OPERATION_TIMEDOUT, CURLE_SSL_CONNECT_ERROR,
            CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_HTTP2_STREAM,
        ].map { Int32(bitPattern: $0.rawValue) })
}
