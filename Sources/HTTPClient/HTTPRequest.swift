// HTTPClient: what to send: method, URL, ordered headers, body and the three time limits.

/// One HTTP request. Only http:// and https:// URLs are accepted; redirects are never followed.
/// Proxies come from the environment as libcurl reads it: `http_proxy`, `https_proxy`
/// (or `HTTPS_PROXY`), `all_proxy` and `no_proxy` are honoured.
package struct HTTPRequest: Sendable {
    package var method: String
    package var url: String
    /// Sent in this order, after libcurl's own (Host, User-Agent "patchd/0.1", Accept,
    /// Content-Length); a header given here replaces libcurl's header of the same name.
    package var headers: [HTTPHeader]
    /// Sent when non-empty, or always for POST (an empty POST has `Content-Length: 0`).
    package var body: [UInt8]
    /// A body streamed from a file instead of `body` (which must then be empty), with its
    /// length as Content-Length.
    package var bodyFile: HTTPFileBody?
    /// Sign the request with AWS SigV4 (libcurl's `CURLOPT_AWS_SIGV4`).
    package var awsSigV4: HTTPAWSSigV4?
    /// Seconds to establish the connection (TCP + TLS). 0 means libcurl's default (300 s).
    package var connectTimeout: Double
    /// Seconds for the whole transfer, streaming included. 0 means no limit.
    package var totalTimeout: Double
    /// Abort when fewer than 1 byte/s arrive for this many seconds (rounded up to whole
    /// seconds, as libcurl counts them). 0 means no limit. libcurl averages the speed over
    /// the last few seconds (up to 6), so after a burst the cut may come up to ~6 s later.
    package var lowSpeedTimeout: Double

    package init(
        method: String = "POST", url: String, headers: [HTTPHeader] = [], body: [UInt8] = [],
        connectTimeout: Double = 10, totalTimeout: Double = 600, lowSpeedTimeout: Double = 60
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.lowSpeedTimeout = lowSpeedTimeout
        bodyFile = nil
        awsSigV4 = nil
    }
}
