// HTTPClient: the status and headers of a final (non-1xx) response.

public struct HTTPResponseHead: Sendable, Equatable {
    public var status: Int
    /// Names lower-cased; values trimmed; a repeated header's values joined with ", ".
    public var headers: [String: String]

    public init(status: Int, headers: [String: String]) {
        self.status = status
        self.headers = headers
    }
}
