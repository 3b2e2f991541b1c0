// HTTPClient: an incremental text/event-stream parser (WHATWG HTML "Server-sent events", event stream interpretation).

/// Feed it the response body in chunks of any size, split anywhere (mid-line, mid-CRLF,
/// mid-UTF-8 sequence); it returns the events completed by each chunk.
///
/// Rules: lines end in LF, CR or CRLF; a line starting with ':' is a comment; `field: value`
/// loses one leading space of the value, a line without ':' is a field with an empty value;
/// `data` lines are joined with "\n"; `event` names the event ("message" if none); `id`
/// (without NUL) sets the last event ID, which carries over to later events; `retry` (digits
/// only) sets `retry`; other fields are ignored; a blank line dispatches the event unless it
/// had no `data` line. Each complete line is decoded as UTF-8 (invalid bytes become U+FFFD),
/// and one leading byte order mark is dropped.
package struct SSEParser: Sendable {
    /// Bytes of the current, not yet terminated line.
    private var line: [UInt8] = []
    /// The previous chunk ended in CR: an LF starting the next one belongs to that CRLF.
    private var skipLF = false
    /// Still at the very start of the stream (where a BOM may sit).
    private var atStreamStart = true

    private var eventType = ""
    private var data = ""
    private var hasData = false
    private var lastEventID = ""
    /// The last valid `retry:` value, in milliseconds.
    package private(set) var retry: Int?

    package init() {}

    /// Consumes a chunk and returns the events it completed, in order.
    package mutating func feed(_ bytes: [UInt8]) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var start = 0
        if atStreamStart {
            // Wait for enough bytes to tell a BOM from the start of a line.
            let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
            line.append(contentsOf: bytes)
            let seen = min(line.count, 3)
            if Array(line.prefix(seen)) == Array(bom.prefix(seen)), seen < 3 { return [] }
            atStreamStart = false
            let pending = line.starts(with: bom) ? Array(line.dropFirst(3)) : line
            line = []
            return feed(pending)
        }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if skipLF {
                skipLF = false
                if byte == 0x0A {
                    index += 1
                    start = index
                    continue
                }
            }
            if byte == 0x0A || byte == 0x0D {
                line.append(contentsOf: bytes[start..<index])
                if let event = processLine() { events.append(event) }
                line.removeAll(keepingCapacity: true)
                skipLF = byte == 0x0D
                index += 1
                start = index
                continue
            }
            index += 1
        }
        line.append(contentsOf: bytes[start..<bytes.count])
        return events
    }

    /// The stream ended. An unterminated last line is incomplete and dropped (as WHATWG says
    /// of pending data); an event whose lines all ended but whose blank line never came is
    /// dispatched (WHATWG would drop it too). Callers that must tell a cut stream from a
    /// finished one should rely on their protocol's own end marker (Anthropic: `message_stop`).
    package mutating func finish() -> [SSEEvent] {
        line.removeAll()
        skipLF = false
        atStreamStart = false
        let event = dispatch()
        return event.map { [$0] } ?? []
    }

    /// Interprets the complete line in `line`; returns the event a blank line dispatches.
    private mutating func processLine() -> SSEEvent? {
        if line.isEmpty { return dispatch() }
        if line[0] == UInt8(ascii: ":") { return nil }
        let field: String
        let value: String
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = String(decoding: line[..<colon], as: UTF8.self)
            var valueStart = colon + 1
            if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
            value = String(decoding: line[valueStart...], as: UTF8.self)
        } else {
            field = String(decoding: line, as: UTF8.self)
            value = ""
        }
        switch field {
        case "event":
            eventType = value
        case "data":
            if hasData { data += "\n" }
            data += value
            hasData = true
        case "id":
            if !value.utf8.contains(0) { lastEventID = value }
        case "retry":
            if !value.isEmpty, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                retry = Int(value) ?? retry
            }
        default:
            break
        }
        return nil
    }

    /// Ends the current event: returns it if it had a `data` line (even an empty one, as
    /// WHATWG says: "data:" alone dispatches ""), and clears the buffers.
    private mutating func dispatch() -> SSEEvent? {
        defer {
            eventType = ""
            data = ""
            hasData = false
        }
        guard hasData else { return nil }
        return SSEEvent(
            event: eventType.isEmpty ? "message" : eventType, data: data,
            id: lastEventID.isEmpty ? nil : lastEventID)
    }
}
