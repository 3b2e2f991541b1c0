// Offsite: what `patchd doctor` checks: the store answers, the credentials are accepted, an object can be written, read back and removed; the lag.

import Foundation

package enum OffsiteProbe {
    /// Writes `doctor-probe/HOST-PID` with random bytes, reads it back, compares, deletes it.
    /// Returns a line for the doctor; throws what failed (unreachable, 403, a mismatch).
    package static func writeReadDelete(_ configuration: OffsiteConfiguration) throws(OffsiteError) -> String {
        _ = try AgeCipher()
        let s3 = try S3Client(configuration: configuration)
        let key = BucketLayout.probePrefix + "\(ProcessInfo.processInfo.hostName)-\(getpid())"
        let bytes = (0..<64).map { _ in UInt8.random(in: 0...255) }
        let started = Date()
        try s3.put(key, bytes: bytes)
        guard let back = try s3.get(key) else { throw .bucket("probe object \(s3.fullKey(key)) was written but reads as missing") }
        guard back == bytes else { throw .bucket("probe object \(s3.fullKey(key)) reads back different bytes") }
        try s3.delete(key)
        let ms = Int(Date().timeIntervalSince(started) * 1000)
        return
            "\(configuration.endpoint) bucket \(configuration.bucket)\(configuration.prefix.isEmpty ? "" : " prefix \(configuration.prefix)"): wrote, read back and removed a probe object in \(ms) ms"
    }

    /// The replication lag line, from DATA/offsite.sqlite (what the running daemon writes).
    package static func lag(dataDir: String) -> OffsiteState.Status? {
        try? OffsiteState.openIfPresent(dataDir: dataDir)?.status()
    }
}
