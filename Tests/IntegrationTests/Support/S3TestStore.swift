// IntegrationTests: a real S3 implementation (moto_server) on loopback with SigV4 checks on, behind a socat relay the test can cut.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// moto_server (PyPI `moto[server]`) on 127.0.0.1 with `INITIAL_NO_AUTH_ACTION_COUNT=3`: the
/// first three requests create an IAM user, its access key and an s3:* policy; from then on
/// every request must carry a valid SigV4 signature by that key (a wrong secret gets 403
/// SignatureDoesNotMatch). patchd talks to it through a socat relay (`endpoint`), which
/// `cut()` stops and `restore()` restarts: the store goes away without losing its contents.
final class S3TestStore {
    let tmp = TempDir("patchd-s3")
    let bucket = "patchd-test"
    let motoPort: Int
    private(set) var relayPort = 0
    private var moto: ChildProcess?
    private var relay: ChildProcess?
    private(set) var accessKeyID = ""
    private(set) var secretAccessKey = ""
    /// An AWS-style credentials file (mode 0600) that patchd and the AWS CLI both read.
    var credentialsFile: String { tmp.path + "/credentials" }
    /// The age identity (the admin's) and its public recipient.
    var identityFile: String { tmp.path + "/offsite-identity.txt" }
    private(set) var recipient = ""

    var endpoint: String { "http://127.0.0.1:\(relayPort)" }
    var motoEndpoint: String { "http://127.0.0.1:\(motoPort)" }

    init() throws {
        guard
            let motoServer = ["/usr/local/bin/moto_server", "/root/.pyenv/shims/moto_server", "/usr/bin/moto_server"]
                .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) ?? (try? Executable.find("moto_server"))
        else {
            throw TestFailure("these tests need moto_server: pip install 'moto[server]' (scripts/install-offsite-test-deps.sh)")
        }
        motoPort = try Self.freePort()
        let logFD = open(tmp.path + "/moto.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        defer { close(logFD) }
        var env = ProcessInfo.processInfo.environment
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        moto = try ChildProcess(
            executable: motoServer, arguments: ["-H", "127.0.0.1", "-p", String(motoPort)],
            environment: env, stdin: .null, stdout: .fd(logFD), stderr: .fd(logFD))
        try waitForPort(motoPort)
        let iam = ["--endpoint-url", motoEndpoint, "--region", "us-east-1"]
        let anonymous = ["AWS_ACCESS_KEY_ID": "setup", "AWS_SECRET_ACCESS_KEY": "setup"]
        try expectOK(aws(iam + ["iam", "create-user", "--user-name", "patchd"], env: anonymous), "iam create-user")
        let created = try expectOK(aws(iam + ["iam", "create-access-key", "--user-name", "patchd"], env: anonymous), "iam create-access-key")
        let key = (try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])?["AccessKey"] as? [String: Any]
        accessKeyID = key?["AccessKeyId"] as? String ?? ""
        secretAccessKey = key?["SecretAccessKey"] as? String ?? ""
        try expectOK(
            aws(
                iam + [
                    "iam", "put-user-policy", "--user-name", "patchd", "--policy-name", "s3",
                    "--policy-document", #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
                ],
                env: anonymous), "iam put-user-policy")
        try "[default]\naws_access_key_id = \(accessKeyID)\naws_secret_access_key = \(secretAccessKey)\n"
            .write(toFile: credentialsFile, atomically: true, encoding: .utf8)
        chmod(credentialsFile, 0o600)
        try expectOK(awsS3(["mb", "s3://\(bucket)"]), "s3 mb")
        // Credentials are checked from here on: a wrong secret is refused.
        let wrong = try aws(
            ["--endpoint-url", motoEndpoint, "--region", "us-east-1", "s3", "ls", "s3://\(bucket)"],
            env: ["AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": "wrong"])
        guard wrong.status != 0 else { throw TestFailure("moto accepted a wrong secret: credential checks are off") }

        try expectOK(run("/usr/bin/age-keygen", ["-o", identityFile]), "age-keygen")
        recipient = try expectOK(run("/usr/bin/age-keygen", ["-y", identityFile]), "age-keygen -y").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        relayPort = try Self.freePort()
        try restore()
    }

    deinit {
        cut()
        if let moto { moto.signalGroup(SIGKILL); _ = moto.wait() }
    }

    /// The `offsite:` section for a patchd config file.
    func offsiteYAML(prefix: String = "test/", extra: String = "") -> String {
        """
        offsite:
          endpoint: \(endpoint)
          bucket: \(bucket)
          prefix: \(prefix)
          region: us-east-1
          credentials_file: \(credentialsFile)
          age_recipients: \(recipient)
          db_interval_seconds: 0
          lag_warn_seconds: 3
        \(extra)
        """
    }

    /// Stops the relay: connections to `endpoint` are refused, moto keeps its contents.
    func cut() {
        guard let relay else { return }
        relay.signalGroup(SIGKILL)
        _ = relay.wait()
        self.relay = nil
    }

    /// (Re)starts the relay on the same port.
    func restore() throws {
        guard relay == nil else { return }
        relay = try ChildProcess(
            executable: "/usr/bin/socat",
            arguments: ["TCP-LISTEN:\(relayPort),bind=127.0.0.1,reuseaddr,fork", "TCP:127.0.0.1:\(motoPort)"],
            environment: ["PATH": "/usr/bin:/bin"], stdin: .null, stdout: .null, stderr: .null)
        try waitForPort(relayPort)
    }

    /// The AWS CLI with this store's credentials file (as docs/OPERATIONS.md shows).
    func awsS3(_ args: [String]) throws -> CommandResult {
        try aws(
            ["--endpoint-url", motoEndpoint, "--region", "us-east-1", "s3"] + args,
            env: ["AWS_SHARED_CREDENTIALS_FILE": credentialsFile])
    }

    func aws(_ args: [String], env: [String: String]) throws -> CommandResult {
        let executable =
            ["/usr/local/bin/aws", "/root/.pyenv/shims/aws", "/usr/bin/aws"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) ?? "aws"
        var environment = env
        // The relay or pyenv shims need the real PATH; no other AWS settings leak in.
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        environment["AWS_CONFIG_FILE"] = "/dev/null"
        return try run(executable, args, env: environment, timeout: 120)
    }

    /// Every key in the bucket under `prefix` (listed without a prefix and filtered here: moto
    /// 5.x with credential checks refuses a correctly signed ListObjectsV2 whose prefix holds `/`).
    func keys(prefix: String) throws -> [String: Int] {
        let listed = try expectOK(awsS3(["ls", "--recursive", "s3://\(bucket)"]), "s3 ls")
        var keys: [String: Int] = [:]
        for line in listed.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard fields.count == 4, fields[3].hasPrefix(prefix) else { continue }
            keys[String(fields[3])] = Int(fields[2])
        }
        return keys
    }

    /// An object's bytes via the AWS CLI.
    func object(_ key: String) throws -> Data {
        let path = tmp.path + "/download-\(UUID().uuidString)"
        try expectOK(awsS3(["cp", "--quiet", "s3://\(bucket)/\(key)", path]), "s3 cp \(key)")
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw TestFailure("cannot find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    private func waitForPort(_ port: Int) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if ok { return }
            usleep(100_000)
        }
        throw TestFailure("nothing listens on 127.0.0.1:\(port) after 30 s (see \(tmp.path)/moto.log)")
    }
}
