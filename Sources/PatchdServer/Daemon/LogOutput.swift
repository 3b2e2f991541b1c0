// PatchdServer: log lines on stderr in one fixed format (one write per line, so lines never interleave).

import Foundation
package import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `2026-11-29T04:37:22.123Z patchd[PID] LEVEL: message`. Auth failures read like
/// sshd's ("Failed publickey for USER from HOST port N"), so fail2ban filters match.
package struct PatchdLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    let label: String

    package init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var seconds = ts.tv_sec
        gmtime_r(&seconds, &tm)
        let stamp = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, Int(ts.tv_nsec / 1_000_000))
        var line = "\(stamp) patchd[\(getpid())] \(event.level): \(event.message)"
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        if !merged.isEmpty { line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        line += "\n"
        line.withCString { _ = write(2, $0, strlen($0)) }
    }
}

package enum PatchdLogging {
    /// Installs the handler once per process.
    package static let bootstrap: Void = {
        let level = ProcessInfo.processInfo.environment["PATCHD_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { PatchdLogHandler(label: $0, level: level) }
    }()
}
