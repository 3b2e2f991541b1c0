// Offsite: the `offsite:` settings (endpoint, bucket, prefix, region, addressing, credentials, age recipients) and their checks.

import Foundation

/// Where and how patchd replicates to an S3-compatible store. Built from the config file's
/// `offsite:` mapping by `init(fields:environment:)`; credentials come from the environment or
/// from a file only patchd can read, never from the config file itself.
package struct OffsiteConfiguration: Sendable, Equatable {
    package enum Addressing: String, Sendable { case path, virtual }

    /// http(s)://host[:port], no path (e.g. https://ACCOUNT.r2.cloudflarestorage.com).
    package var endpoint: String
    package var bucket: String
    /// Key prefix for everything patchd writes, "" or ending in "/" (e.g. "prod/").
    package var prefix: String
    package var region: String
    package var addressing: Addressing
    package var accessKeyID: String
    package var secretAccessKey: String
    /// age recipients (public keys, "age1..."): host keys and database snapshots are encrypted
    /// to them; the admin keeps the matching identity for `patchd restore --from-offsite`.
    package var recipients: [String]
    /// Multipart part size; objects larger than this go up in parts.
    package var partSize: Int64
    /// The server logs a warning while the oldest unreplicated change is older than this.
    package var lagWarnSeconds: Double
    /// At most one database snapshot per this many seconds (changes in between share one).
    package var databaseIntervalSeconds: Double
    /// How often every repository's refs are compared with what was replicated (catches a
    /// lost wake-up, `repo create`/`repo delete`, and anything a crash interrupted).
    package var scanSeconds: Double
    /// Database snapshots kept in the bucket (older ones are deleted).
    package var keepSnapshots: Int

    package static let fileKeys: Set<String> = [
        "endpoint", "bucket", "prefix", "region", "addressing", "credentials_file", "age_recipients",
        "part_size_mb", "lag_warn_seconds", "db_interval_seconds", "scan_seconds", "keep_snapshots",
    ]

    package init(
        endpoint: String, bucket: String, prefix: String = "", region: String = "us-east-1",
        addressing: Addressing = .path, accessKeyID: String, secretAccessKey: String, recipients: [String],
        partSize: Int64 = 64 << 20, lagWarnSeconds: Double = 300, databaseIntervalSeconds: Double = 10,
        scanSeconds: Double = 60, keepSnapshots: Int = 3
    ) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self.addressing = addressing
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.recipients = recipients
        self.partSize = partSize
        self.lagWarnSeconds = lagWarnSeconds
        self.databaseIntervalSeconds = databaseIntervalSeconds
        self.scanSeconds = scanSeconds
        self.keepSnapshots = keepSnapshots
    }

    /// From the `offsite:` mapping (values as strings; `age_recipients` may hold several,
    /// separated by spaces, commas or newlines). Credentials: `credentials_file` (an AWS-style
    /// file, mode 0600 or stricter) or the environment (`PATCHD_OFFSITE_ACCESS_KEY_ID` and
    /// `PATCHD_OFFSITE_SECRET_ACCESS_KEY`, else `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`).
    package init(fields: [String: String], environment env: [String: String]) throws(OffsiteError) {
        for key in fields.keys where !Self.fileKeys.contains(key) {
            throw .configuration("offsite: unknown key '\(key)'; known keys: \(Self.fileKeys.sorted().joined(separator: ", "))")
        }
        func required(_ key: String) throws(OffsiteError) -> String {
            guard let v = fields[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else {
                throw .configuration("offsite: '\(key)' is required (see docs/OPERATIONS.md, Off-machine replication)")
            }
            return v
        }
        func number(_ key: String, _ fallback: Double, minimum: Double) throws(OffsiteError) -> Double {
            guard let text = fields[key] else { return fallback }
            guard let v = Double(text), v >= minimum, v.isFinite else {
                throw .configuration("offsite: '\(key)' must be a number of at least \(minimum), not '\(text)'")
            }
            return v
        }
        let (id, secret) = try Self.credentials(file: fields["credentials_file"], environment: env)
        let recipients = (fields["age_recipients"] ?? env["PATCHD_OFFSITE_AGE_RECIPIENTS"] ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "," || $0.isNewline }).map(String.init)
        guard let addressing = Addressing(rawValue: fields["addressing"] ?? "path") else {
            throw .configuration("offsite: 'addressing' must be 'path' or 'virtual', not '\(fields["addressing"] ?? "")'")
        }
        self.init(
            endpoint: try required("endpoint"), bucket: try required("bucket"), prefix: fields["prefix"] ?? "",
            region: fields["region"] ?? "us-east-1", addressing: addressing,
            accessKeyID: id, secretAccessKey: secret, recipients: recipients,
            partSize: Int64(try number("part_size_mb", 64, minimum: 5) * 1024 * 1024),
            lagWarnSeconds: try number("lag_warn_seconds", 300, minimum: 1),
            databaseIntervalSeconds: try number("db_interval_seconds", 10, minimum: 0),
            scanSeconds: try number("scan_seconds", 60, minimum: 1),
            keepSnapshots: Int(try number("keep_snapshots", 3, minimum: 1)))
        try validate()
    }

    /// The key id and secret from `file` (lines `aws_access_key_id = ...` and
    /// `aws_secret_access_key = ...`, as in ~/.aws/credentials, so the AWS CLI reads the same
    /// file) or from the environment.
    static func credentials(file: String?, environment env: [String: String]) throws(OffsiteError) -> (String, String) {
        if let file, !file.isEmpty {
            var st = stat()
            guard stat(file, &st) == 0 else {
                throw .configuration("offsite: cannot read credentials_file \(file): \(String(cString: strerror(errno)))")
            }
            guard st.st_mode & 0o077 == 0 else {
                throw .configuration(
                    "offsite: credentials_file \(file) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 \(file)")
            }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw .configuration("offsite: cannot read credentials_file \(file)")
            }
            var values: [String: String] = [:]
            for line in text.split(whereSeparator: \.isNewline) {
                let parts = line.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                values[parts[0].trimmingCharacters(in: .whitespaces).lowercased()] = parts[1].trimmingCharacters(in: .whitespaces)
            }
            guard let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"], !id.isEmpty, !secret.isEmpty else {
                throw .configuration("offsite: credentials_file \(file) needs 'aws_access_key_id = ...' and 'aws_secret_access_key = ...' lines")
            }
            return (id, secret)
        }
        for (idName, secretName) in [
            ("PATCHD_OFFSITE_ACCESS_KEY_ID", "PATCHD_OFFSITE_SECRET_ACCESS_KEY"),
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        ] {
            if let id = env[idName], let secret = env[secretName], !id.isEmpty, !secret.isEmpty { return (id, secret) }
        }
        throw .configuration(
            "offsite: no credentials: set credentials_file (mode 600), or PATCHD_OFFSITE_ACCESS_KEY_ID and PATCHD_OFFSITE_SECRET_ACCESS_KEY in patchd's environment"
        )
    }

    package func validate() throws(OffsiteError) {
        let lower = endpoint.lowercased()
        guard (lower.hasPrefix("http://") || lower.hasPrefix("https://")), let url = URL(string: endpoint), url.host != nil,
            url.path.isEmpty || url.path == "/", url.query == nil
        else {
            throw .configuration("offsite: endpoint must be http(s)://HOST[:PORT] without a path, not '\(endpoint)'")
        }
        // S3 bucket naming rules (lower-case letters, digits, '.', '-'; 3 to 63 characters).
        guard (3...63).contains(bucket.count), bucket.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "." }) else {
            throw .configuration("offsite: bucket '\(bucket)' is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
        }
        guard
            prefix.isEmpty
                || (prefix.hasSuffix("/") && !prefix.hasPrefix("/") && !prefix.contains("//")
                    && prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }))
        else {
            throw .configuration("offsite: prefix '\(prefix)' must be empty or end in '/', of letters, digits, '-', '_', '.', '/'")
        }
        guard !region.isEmpty, region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw .configuration("offsite: region '\(region)' must be letters, digits and '-' (e.g. us-east-1, or auto for R2)")
        }
        guard !recipients.isEmpty else {
            throw .configuration(
                "offsite: age_recipients is required: host keys and database snapshots are encrypted to it (age-keygen -o offsite-identity.txt prints the public key; keep the identity file off this machine)"
            )
        }
        for r in recipients where !r.hasPrefix("age1") {
            throw .configuration("offsite: age recipient '\(r.prefix(20))...' is not an age public key (age1...)")
        }
        guard partSize >= 5 << 20 else { throw .configuration("offsite: part_size_mb must be at least 5 (S3's minimum part)") }
    }
}
