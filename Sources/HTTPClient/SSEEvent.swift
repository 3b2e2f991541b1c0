// HTTPClient: one dispatched Server-Sent Event.

package struct SSEEvent: Sendable, Equatable {
    /// The `event:` field, or "message" when the event named none.
    package var event: String
    /// The `data:` lines joined with "\n".
    package var data: String
    /// The last event ID at dispatch time (it carries over from earlier events); nil when empty.
    package var id: String?

    package init(event: String = "message", data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}
