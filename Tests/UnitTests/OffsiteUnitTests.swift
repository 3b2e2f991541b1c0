// UnitTests: offsite settings and their refusals, S3 addressing, and HTTPClient's file bodies and SigV4 headers against a loopback server.

import Foundation
import Glibc
import PatchdSystem
import Testing

@testable import HTTPClient
@testable import Offsite

@Suite struct OffsiteUnitTests {
    static let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

    static func fields(_ extra: [String: String] = [:]) -> [String: String] {
        ["endpoint": "https://s3.example.test", "bucket": "patchd-backup", "age_recipients": recipient].merging(extra) { _, n in n }
    }

    static let env = ["PATCHD_OFFSITE_ACCESS_KEY_ID": "AKIDEXAMPLE", "PATCHD_OFFSITE_SECRET_ACCESS_KEY": "secret/with+chars"]

    @Test func settingsWithCredentialsFromTheEnvironment() throws {
        let c = try OffsiteConfiguration(fields: Self.fields(["prefix": "prod/", "region": "auto", "part_size_mb": "8"]), environment: Self.env)
        #expect(c.accessKeyID == "AKIDEXAMPLE" && c.secretAccessKey == "secret/with+chars")
        #expect(c.prefix == "prod/" && c.region == "auto" && c.partSize == 8 << 20 && c.addressing == .path)
    }

    @Test func refusalsSayWhatToFix() throws {
        func refusal(_ fields: [String: String], _ env: [String: String] = OffsiteUnitTests.env) -> String {
            do { _ = try OffsiteConfiguration(fields: fields, environment: env); return "accepted" } catch { return error.description }
        }
        #expect(refusal(Self.fields(), [:]).contains("no credentials"))
        #expect(refusal(Self.fields(["age_recipients": ""])).contains("age_recipients is required"))
        #expect(refusal(Self.fields(["age_recipients": "not-a-key"])).contains("not an age public key"))
        #expect(refusal(Self.fields(["endpoint": "https://s3.example.test/bucket"])).contains("without a path"))
        #expect(refusal(Self.fields(["endpoint": "ftp://x"])).contains("http(s)://"))
        #expect(refusal(Self.fields(["bucket": "Bad_Bucket"])).contains("not a valid bucket name"))
        #expect(refusal(Self.fields(["prefix": "prod"])).contains("end in '/'"))
        #expect(refusal(Self.fields(["addressing": "dns"])).contains("'path' or 'virtual'"))
        #expect(refusal(Self.fields(["part_size_mb": "1"])).contains("at least 5"))
        #expect(refusal(Self.fields(["bukcet": "x"])).contains("unknown key 'bukcet'"))
    }

    @Test func credentialsFileMustBePrivate() throws {
        let dir = NSTemporaryDirectory() + "offsite-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/credentials"
        try "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s3cr3t\n".write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        do {
            _ = try OffsiteConfiguration(fields: Self.fields(["credentials_file": file]), environment: [:])
            Issue.record("a world-readable credentials file was accepted")
        } catch {
            #expect(error.description.contains("chmod 600"))
        }
        chmod(file, 0o600)
        let c = try OffsiteConfiguration(fields: Self.fields(["credentials_file": file]), environment: Self.env)
        #expect(c.accessKeyID == "AKIDFILE" && c.secretAccessKey == "s3cr3t", "the file wins over the environment")
    }

    @Test func pathAndVirtualHostAddressing() throws {
        var c = try OffsiteConfiguration(fields: Self.fields(["prefix": "pr/", "endpoint": "http://127.0.0.1:9000/"]), environment: Self.env)
        c.prefix = "a b/"
        #expect(try S3Client(configuration: c).url("repos/x.git/refs.json") == "http://127.0.0.1:9000/patchd-backup/a%20b/repos/x.git/refs.json")
        c.addressing = .virtual
        c.endpoint = "https://s3.eu-west-1.amazonaws.com"
        #expect(try S3Client(configuration: c).url("k", query: "uploads=") == "https://patchd-backup.s3.eu-west-1.amazonaws.com/a%20b/k?uploads=")
        #expect(S3Client.encode("id/+=x") == "id%2F%2B%3Dx")
        #expect(S3Client.xmlValue("UploadId", in: "<R><UploadId>a&amp;b</UploadId></R>") == "a&b")
    }

    // MARK: - HTTPClient: file bodies and SigV4

    @Test func fileBodyRangeIsSentAsPUTWithItsLength() throws {
        let server = try EchoServer()
        defer { server.stop() }
        let path = server.directory + "/body.bin"
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let client = try HTTPClient()
        var request = HTTPRequest(method: "PUT", url: server.url("/obj"))
        request.bodyFile = HTTPFileBody(path: path, offset: 1000, length: 200_000)
        let (head, echoed) = try client.collect(request)
        #expect(head.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(echoed)) as? [String: Any])
        #expect(json["method"] as? String == "PUT")
        #expect(json["length"] as? Int == 200_000)
        #expect(json["checksum"] as? Int == bytes[1000..<201_000].reduce(0) { ($0 &* 31 &+ Int($1)) % 1_000_000_007 })

        request.method = "POST"
        request.bodyFile = HTTPFileBody(path: path, offset: 0, length: 10)
        let (_, posted) = try client.collect(request)
        let postJSON = try #require(try JSONSerialization.jsonObject(with: Data(posted)) as? [String: Any])
        #expect(postJSON["method"] as? String == "POST" && postJSON["length"] as? Int == 10)

        request.bodyFile = HTTPFileBody(path: path, offset: 299_000, length: 5000)
        #expect(throws: HTTPError.self) { try client.collect(request) }
        request.bodyFile = HTTPFileBody(path: path, length: 1)
        request.body = [1]
        #expect(throws: HTTPError.self) { try client.collect(request) }
    }

    /// libcurl 7.88 signs every header in the request's list, a removed one ("Expect:") too;
    /// a signed header the server never receives makes S3 answer SignatureDoesNotMatch.
    @Test func everySignedHeaderIsSent() throws {
        let server = try EchoServer()
        defer { server.stop() }
        let path = server.directory + "/big.bin"
        try Data(count: 2 << 20).write(to: URL(fileURLWithPath: path))
        let client = try HTTPClient()
        for file in [nil, HTTPFileBody(path: path, length: 2 << 20)] {
            var request = HTTPRequest(
                method: "PUT", url: server.url("/bucket/key"),
                headers: [HTTPHeader("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), HTTPHeader("Content-Type", "text/plain")],
                body: file == nil ? [1, 2, 3] : [])
            request.bodyFile = file
            request.awsSigV4 = HTTPAWSSigV4(region: "us-east-1", service: "s3", accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")
            let (_, echoed) = try client.collect(request)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(echoed)) as? [String: Any])
            let headers = Dictionary((json["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }) { a, _ in a }
            let authorization = try #require(headers["authorization"])
            #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
            #expect(authorization.contains("/us-east-1/s3/aws4_request"))
            let signed = authorization.components(separatedBy: "SignedHeaders=").last?.split(separator: ",").first?.split(separator: ";") ?? []
            #expect(signed.contains("x-amz-content-sha256") && signed.contains("x-amz-date"))
            for name in signed { #expect(headers[String(name)] != nil, "signed header \(name) was not sent: \(authorization)") }
            #expect(!authorization.contains("secret"))
        }
    }
}

/// python3's http.server answering PUT and POST with the method, the body's length and a
/// checksum, and the headers it received.
private final class EchoServer {
    static let script = #"""
        import http.server, json
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args): pass
            def do_PUT(self): self.echo()
            def do_POST(self): self.echo()
            def echo(self):
                if self.headers.get("Expect", "").lower() == "100-continue":
                    pass  # http.server answers 100 Continue itself (handle_expect_100)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                checksum = 0
                for b in body:
                    checksum = (checksum * 31 + b) % 1000000007
                payload = json.dumps({"method": self.command, "length": len(body), "checksum": checksum,
                                      "headers": [[k, v] for k, v in self.headers.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let process: ChildProcess
    let port: Int
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "patchd-echo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.script.write(toFile: directory + "/server.py", atomically: true, encoding: .utf8)
        process = try ChildProcess(
            executable: "/usr/bin/python3", arguments: ["-I", directory + "/server.py"],
            environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], stdout: .pipe, stderr: .null)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(process.stdout!.raw, &byte, 1) == 1, byte != 10 { line.append(byte) }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else { throw SystemError("echo server", errno: EIO) }
        self.port = port
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() {
        process.signalGroup(SIGKILL)
        _ = process.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
