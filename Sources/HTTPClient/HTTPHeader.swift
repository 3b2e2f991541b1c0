// HTTPClient: one request header, a name and a value, kept in the order given.

/// A request header. Names and values may not contain CR, LF or NUL; names may not contain ':'.
package struct HTTPHeader: Sendable, Equatable {
    package var name: String
    package var value: String

    package init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}
