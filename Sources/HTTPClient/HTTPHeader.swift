// HTTPClient: one request header, a name and a value, kept in the order given.

/// A request header. Names and values may not contain CR, LF or NUL; names may not contain ':'.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}
