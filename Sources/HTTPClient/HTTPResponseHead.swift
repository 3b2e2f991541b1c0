// HTTPClient: the status and headers of a final (non-1xx) response.

package struct HTTPResponseHead: Sendable, Equatable {
    package var status: Int
    /// Names lower-cased; values trimmed; a repeated header's values joined with ", ".
    package var headers: [String: String]

    package init(status: Int, headers: [String: String]) {
        self.status = status
        self.headers = headers
    }
}
