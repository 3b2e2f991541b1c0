// HTTPClient: one dispatched Server-Sent Event.

public struct SSEEvent: Sendable, Equatable {
    /// The `event:` field, or "message" when the event named none.
    public var event: String
    /// The `data:` lines joined with "\n".
    public var data: String
    /// The last event ID at dispatch time (it carries over from earlier events); nil when empty.
    public var id: String?

    public init(event: String = "message", data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}
