// Offsite: the S3 operations patchd needs (put, multipart put, get, delete), signed by libcurl's SigV4 through HTTPClient.

import Foundation
import HTTPClient

/// One client per thread (it owns an `HTTPClient`, i.e. a libcurl handle). Keys given to it
/// are relative to the configured prefix. No listing: patchd finds everything it wrote from
/// manifests (`BucketLayout`), so it never depends on ListObjects.
package final class S3Client {
    package let configuration: OffsiteConfiguration
    private let http: HTTPClient

    /// SHA-256 of the empty body, the payload hash of GET, HEAD, DELETE and bodiless POST.
    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    package init(configuration: OffsiteConfiguration) throws(OffsiteError) {
        self.configuration = configuration
        do { http = try HTTPClient() } catch { throw .local("cannot start libcurl: \(error)") }
    }

    /// The full object key: the prefix, then `key`.
    package func fullKey(_ key: String) -> String { configuration.prefix + key }

    /// The object's URL with path-style (`ENDPOINT/BUCKET/KEY`) or virtual-host-style
    /// (`SCHEME://BUCKET.HOST/KEY`) addressing. `query` is already encoded and sorted.
    func url(_ key: String, query: String = "") -> String {
        var endpoint = configuration.endpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        let path = Self.encodePath(fullKey(key))
        let base: String
        switch configuration.addressing {
        case .path: base = "\(endpoint)/\(configuration.bucket)/\(path)"
        case .virtual:
            let scheme = endpoint.hasPrefix("https") ? "https://" : "http://"
            base = scheme + configuration.bucket + "." + endpoint.dropFirst(scheme.count) + "/" + path
        }
        return query.isEmpty ? base : base + "?" + query
    }

    /// RFC 3986 unreserved characters stay, everything else is %XX (as SigV4 canonicalises).
    static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) || (keepSlash && c == "/") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func encodePath(_ key: String) -> String { encode(key, keepSlash: true) }

    // MARK: - Requests

    private func request(
        _ method: String, _ key: String, query: String = "", body: [UInt8] = [],
        file: HTTPFileBody? = nil, headers: [HTTPHeader] = []
    ) -> HTTPRequest {
        let hasBody = file != nil || !body.isEmpty
        var r = HTTPRequest(
            method: method, url: url(key, query: query),
            headers: headers + [HTTPHeader("x-amz-content-sha256", hasBody ? "UNSIGNED-PAYLOAD" : Self.emptyPayloadHash)],
            body: body, connectTimeout: 10, totalTimeout: hasBody ? 0 : 120, lowSpeedTimeout: 60)
        r.bodyFile = file
        r.awsSigV4 = HTTPAWSSigV4(
            region: configuration.region, service: "s3",
            accessKeyID: configuration.accessKeyID, secretAccessKey: configuration.secretAccessKey)
        return r
    }

    /// Sends `request` and returns the head and (bounded) body; statuses other than 2xx are
    /// thrown as `.store` unless listed in `allowed`.
    @discardableResult
    private func perform(
        _ request: HTTPRequest, key: String, allowed: Set<Int> = [],
        maxBytes: Int = 1 << 20
    ) throws(OffsiteError) -> (HTTPResponseHead, [UInt8]) {
        let result: (HTTPResponseHead, [UInt8])
        do { result = try http.collect(request, maxBytes: maxBytes) } catch {
            throw .transport(method: request.method, key: fullKey(key), error)
        }
        let (head, body) = result
        if (200..<300).contains(head.status) || allowed.contains(head.status) { return result }
        throw Self.storeError(request.method, fullKey(key), head.status, body)
    }

    static func storeError(_ method: String, _ key: String, _ status: Int, _ body: [UInt8]) -> OffsiteError {
        let text = String(decoding: body.prefix(4096), as: UTF8.self)
        return .store(
            method: method, key: key, status: status, code: xmlValue("Code", in: text) ?? "",
            message: xmlValue("Message", in: text) ?? String(text.prefix(200)))
    }

    /// The text of the first `<name>...</name>` element (S3's answers are this simple).
    static func xmlValue(_ name: String, in text: String) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound])
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
    }

    /// PUT of a small object held in memory.
    package func put(_ key: String, bytes: [UInt8], contentType: String = "application/octet-stream") throws(OffsiteError) {
        // An empty body is sent as an empty file range so the method stays PUT with Content-Length 0.
        if bytes.isEmpty {
            try perform(
                request(
                    "PUT", key, file: HTTPFileBody(path: "/dev/null", length: 0),
                    headers: [HTTPHeader("Content-Type", contentType)]), key: key)
            return
        }
        try perform(request("PUT", key, body: bytes, headers: [HTTPHeader("Content-Type", contentType)]), key: key)
    }

    /// PUT of a file: one request up to the part size, a multipart upload above it.
    /// Returns the number of parts (1 for a single PUT).
    @discardableResult
    package func put(
        _ key: String, file path: String, contentType: String = "application/octet-stream",
        shouldStop: () -> Bool = { false }
    ) throws(OffsiteError) -> Int {
        let size: Int64
        do { size = ((try FileManager.default.attributesOfItem(atPath: path))[.size] as? NSNumber)?.int64Value ?? 0 } catch {
            throw .local("cannot stat \(path): \(error.localizedDescription)")
        }
        if size <= configuration.partSize {
            try perform(
                request(
                    "PUT", key, file: HTTPFileBody(path: path, length: size),
                    headers: [HTTPHeader("Content-Type", contentType)]), key: key)
            return 1
        }
        return try multipartPut(key, path: path, size: size, contentType: contentType, shouldStop: shouldStop)
    }

    /// CreateMultipartUpload, UploadPart for each part (each retried up to 3 times),
    /// CompleteMultipartUpload; AbortMultipartUpload when anything fails.
    private func multipartPut(
        _ key: String, path: String, size: Int64, contentType: String,
        shouldStop: () -> Bool
    ) throws(OffsiteError) -> Int {
        // S3 allows at most 10,000 parts: grow the part size for huge files.
        var partSize = configuration.partSize
        while (size + partSize - 1) / partSize > 10_000 { partSize *= 2 }
        let (_, created) = try perform(request("POST", key, query: "uploads=", headers: [HTTPHeader("Content-Type", contentType)]), key: key)
        guard let uploadID = Self.xmlValue("UploadId", in: String(decoding: created, as: UTF8.self)), !uploadID.isEmpty else {
            throw .bucket("CreateMultipartUpload for \(fullKey(key)) answered without an UploadId")
        }
        let idQuery = "uploadId=" + Self.encode(uploadID)
        do throws(OffsiteError) {
            var etags: [String] = []
            var offset: Int64 = 0
            var number = 1
            while offset < size {
                if shouldStop() { throw .local("stopped during the multipart upload of \(fullKey(key))") }
                let length = min(partSize, size - offset)
                var attempt = 0
                while true {
                    attempt += 1
                    do throws(OffsiteError) {
                        let (head, _) = try perform(
                            request(
                                "PUT", key, query: "partNumber=\(number)&" + idQuery,
                                file: HTTPFileBody(path: path, offset: offset, length: length)), key: key)
                        guard let etag = head.headers["etag"], !etag.isEmpty else {
                            throw .bucket("UploadPart \(number) of \(fullKey(key)) answered without an ETag")
                        }
                        etags.append(etag)
                        break
                    } catch {
                        if attempt >= 3 || shouldStop() { throw error }
                        Thread.sleep(forTimeInterval: Double(attempt))
                    }
                }
                offset += length
                number += 1
            }
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, etag) in etags.enumerated() {
                let quoted = etag.hasPrefix("\"") ? etag : "\"\(etag)\""
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(quoted.replacingOccurrences(of: "\"", with: "&quot;"))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let (head, body) = try perform(
                request(
                    "POST", key, query: idQuery, body: Array(xml.utf8),
                    headers: [HTTPHeader("Content-Type", "application/xml")]), key: key)
            // S3 may answer 200 and still report an error in the body.
            if String(decoding: body, as: UTF8.self).contains("<Error>") {
                throw Self.storeError("POST", fullKey(key), head.status, body)
            }
            return etags.count
        } catch {
            _ = try? perform(request("DELETE", key, query: idQuery), key: key, allowed: [404])
            throw error
        }
    }

    /// The object's bytes (at most `maxBytes`), or nil when it does not exist.
    package func get(_ key: String, maxBytes: Int = 64 << 20) throws(OffsiteError) -> [UInt8]? {
        let (head, body) = try perform(request("GET", key), key: key, allowed: [404], maxBytes: maxBytes)
        return head.status == 404 ? nil : body
    }

    /// Streams the object into a new file at `path` (0600). A missing object is `.bucket`.
    package func download(_ key: String, to path: String) throws(OffsiteError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .local("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = 0
        var errorBody: [UInt8] = []
        var writeFailed: Int32 = 0
        let req = request("GET", key)
        do {
            try http.send(req, onHead: { status = $0.status }) { chunk in
                guard (200..<300).contains(status) else {
                    if errorBody.count < 4096 { errorBody += chunk }
                    return true
                }
                var done = 0
                while done < chunk.count {
                    let n = chunk[done...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 { if errno == EINTR { continue }; writeFailed = errno; return false }
                    done += n
                }
                return true
            }
        } catch {
            if writeFailed != 0 { throw .local("writing \(path): \(String(cString: strerror(writeFailed)))") }
            throw .transport(method: "GET", key: fullKey(key), error)
        }
        if status == 404 { throw .bucket("\(fullKey(key)) is missing (the bucket does not hold what its manifest lists)") }
        guard (200..<300).contains(status) else { throw Self.storeError("GET", fullKey(key), status, errorBody) }
    }

    /// DELETE; a missing object is fine.
    package func delete(_ key: String) throws(OffsiteError) {
        try perform(request("DELETE", key), key: key, allowed: [404])
    }
}

@available(*, unavailable)
extension S3Client: Sendable {}
