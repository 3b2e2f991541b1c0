// TestSupport: waits for a server's "listening on HOST:PORT" line and returns the port (servers bind port 0).

import Foundation

package struct ReadyLineTimeout: Error, CustomStringConvertible {
    package let description: String
}

/// Polls `outputPath` (the server's stdout/stderr) until `marker` followed by digits appears after
/// byte `offset`; returns those digits as the port.
/// - Parameter exited: polled too; a non-nil status ends the wait with an error that quotes the output.
/// - Throws: `ReadyLineTimeout` after `timeout` seconds or when the server exited.
package func waitForReadyLine(
    in outputPath: String, marker: String, after offset: Int = 0, timeout: Double = 30,
    exited: () -> Int32? = { nil }
) throws -> Int {
    let deadline = Date().addingTimeInterval(timeout)
    var text = ""
    while Date() < deadline {
        text = String(decoding: ((try? Data(contentsOf: URL(fileURLWithPath: outputPath))) ?? Data()).dropFirst(offset), as: UTF8.self)
        if let range = text.range(of: marker), let port = Int(text[range.upperBound...].prefix { $0.isNumber }) { return port }
        if let status = exited() { throw ReadyLineTimeout(description: "exited \(status) before '\(marker)':\n\(text)") }
        usleep(20_000)
    }
    throw ReadyLineTimeout(description: "no '\(marker)' within \(timeout) s:\n\(text)")
}
