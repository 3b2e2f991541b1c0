// HTTPClient: a blocking libcurl client with streamed response bodies, for one OS thread at a time.

import CLibCurl

#if canImport(Glibc)
import Glibc
#endif

/// Owns one libcurl easy handle (and its error buffer), reused across requests so that
/// keep-alive connections and TLS sessions are reused too; options are reset before each one.
///
/// Blocking: call it from a dedicated thread (`OSThread`), never from Swift's cooperative pool.
/// Not Sendable: one client per thread. HTTPS uses the system's libcurl (OpenSSL) and CA store.
/// Redirects are never followed. Proxies: libcurl's defaults, i.e. `http_proxy`, `https_proxy`
/// (`HTTPS_PROXY`), `all_proxy` and `no_proxy` from the environment are honoured.
/// Signals: CURLOPT_NOSIGNAL is set (the program is multi-threaded), so libcurl neither uses
/// alarm() for DNS timeouts nor ignores SIGPIPE itself: the process should ignore SIGPIPE.
package final class HTTPClient {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var inTransfer = false

    package static let userAgent = "patchd/0.1"

    package init() throws(HTTPError) {
        try CurlGlobal.ensureInitialised()
        guard let easy = curl_easy_init() else {
            throw .transport(code: Self.code(CURLE_FAILED_INIT), message: "curl_easy_init failed")
        }
        handle = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Performs `request`, streaming the response: `onHead` is called once when the final
    /// response's headers are complete (before the first `onData`), then `onData` for each body
    /// chunk as it arrives. `onData` returning false stops the transfer with `.aborted`.
    /// Any status is a success here (the caller judges 4xx/5xx); the head is also returned.
    @discardableResult
    package func send(
        _ request: HTTPRequest, onHead: (HTTPResponseHead) -> Void = { _ in },
        onData: ([UInt8]) -> Bool
    ) throws(HTTPError) -> HTTPResponseHead {
        guard !inTransfer else {
            throw .invalidRequest("send called from inside one of this client's own callbacks")
        }
        inTransfer = true
        defer { inTransfer = false }

        try Self.validate(request)
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        let headerList = try configure(request)
        let upload = try request.bodyFile.map { (file) throws(HTTPError) in try configureUpload(file) }

        let outcome = withoutActuallyEscaping(onHead) { onHead in
            withoutActuallyEscaping(onData) { onData in
                let context = TransferContext(onHead: onHead, onData: onData)
                return withExtendedLifetime((headerList, upload)) { perform(context) }
            }
        }
        if upload != nil {
            // The source dies after this call: leave no pointer to it in the handle.
            _ = patchd_curl_setopt_pointer(handle, CURLOPT_READDATA, nil)
            _ = patchd_curl_setopt_pointer(handle, CURLOPT_SEEKDATA, nil)
        }
        if let upload, upload.readError != 0 {
            throw .transport(
                code: Self.code(CURLE_READ_ERROR),
                message: "reading request body \(upload.body.path): \(String(cString: strerror(upload.readError)))")
        }
        return try outcome.get()
    }

    /// Performs `request` and returns the whole body, failing with `.responseTooLarge` past `maxBytes`.
    package func collect(
        _ request: HTTPRequest, maxBytes: Int = 16 << 20
    ) throws(HTTPError)
        -> (HTTPResponseHead, [UInt8])
    {
        var body: [UInt8] = []
        var tooLarge = false
        do throws(HTTPError) {
            let head = try send(request) { chunk in
                if body.count + chunk.count > maxBytes {
                    tooLarge = true
                    return false
                }
                body.append(contentsOf: chunk)
                return true
            }
            return (head, body)
        } catch {
            if tooLarge { throw .responseTooLarge(limit: maxBytes) }
            throw error
        }
    }

    // MARK: - One transfer

    /// Runs curl_easy_perform with the callbacks pointed at `context`, and turns the outcome
    /// into the head or a typed error.
    private func perform(_ context: TransferContext) -> Result<HTTPResponseHead, HTTPError> {
        let userdata = Unmanaged.passUnretained(context).toOpaque()
        do throws(HTTPError) {
            try set(CURLOPT_HEADERDATA, pointer: userdata)
            try set(CURLOPT_WRITEDATA, pointer: userdata)
            try check(
                patchd_curl_setopt_header_function(handle) { buffer, size, count, userdata in
                    let length = size * count
                    guard let userdata else { return length }
                    let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
                    context.headerLine(UnsafeRawBufferPointer(start: buffer, count: length))
                    return length
                }, "CURLOPT_HEADERFUNCTION")
            try check(
                patchd_curl_setopt_write_function(handle) { buffer, size, count, userdata in
                    let length = size * count
                    guard let userdata else { return 0 }
                    let context = Unmanaged<TransferContext>.fromOpaque(userdata).takeUnretainedValue()
                    // Any count other than `length` makes libcurl stop with CURLE_WRITE_ERROR.
                    return context.bodyChunk(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
                }, "CURLOPT_WRITEFUNCTION")
        } catch {
            return .failure(error)
        }

        let code = curl_easy_perform(handle)
        // The context dies after this call: leave no pointer to it in the handle.
        _ = patchd_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, nil)
        _ = patchd_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, nil)

        if context.aborted { return .failure(.aborted) }
        guard code == CURLE_OK else { return .failure(transportError(code)) }
        if let head = context.head { return .success(head) }
        // No body and no blank line seen (should not happen): take the status from libcurl.
        var status = 0
        _ = patchd_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(context.deliverHead(status: status))
    }

    /// Sets every option for `request` on the freshly reset handle. Returns the header list,
    /// which must stay alive until the transfer ends.
    private func configure(_ request: HTTPRequest) throws(HTTPError) -> CurlHeaderList {
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        try set(CURLOPT_URL, string: request.url)
        try set(CURLOPT_PROTOCOLS_STR, string: "http,https")
        try set(CURLOPT_NOSIGNAL, 1)
        try set(CURLOPT_FOLLOWLOCATION, 0)
        try set(CURLOPT_USERAGENT, string: Self.userAgent)
        // The CONNECT exchange with a proxy is not the server's response.
        try set(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        try set(CURLOPT_TCP_KEEPALIVE, 1)
        try set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout))
        try set(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.totalTimeout))
        if request.lowSpeedTimeout > 0 {
            try set(CURLOPT_LOW_SPEED_LIMIT, 1)
            try set(CURLOPT_LOW_SPEED_TIME, max(1, Int(request.lowSpeedTimeout.rounded(.up))))
        }

        if let signing = request.awsSigV4 {
            try set(CURLOPT_AWS_SIGV4, string: signing.provider)
            try set(CURLOPT_USERNAME, string: signing.accessKeyID)
            try set(CURLOPT_PASSWORD, string: signing.secretAccessKey)
        }

        let method = request.method
        if request.bodyFile != nil {
            // CURLOPT_UPLOAD sends a PUT; another method with a file body is named explicitly.
            if method != "PUT" { try set(CURLOPT_CUSTOMREQUEST, string: method) }
        } else if method == "POST" || !request.body.isEmpty {
            try check(
                patchd_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)),
                "CURLOPT_POSTFIELDSIZE_LARGE")
            // COPYPOSTFIELDS: libcurl keeps its own copy, so the body need not outlive this call.
            if request.body.isEmpty {
                try set(CURLOPT_COPYPOSTFIELDS, string: "")
            } else {
                let code = request.body.withUnsafeBytes { bytes in
                    patchd_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
                }
                try check(code, "CURLOPT_COPYPOSTFIELDS")
            }
            if method != "POST" { try set(CURLOPT_CUSTOMREQUEST, string: method) }
        } else if method == "GET" {
            try set(CURLOPT_HTTPGET, 1)
        } else if method == "HEAD" {
            try set(CURLOPT_NOBODY, 1)
        } else {
            try set(CURLOPT_CUSTOMREQUEST, string: method)
        }

        let list = CurlHeaderList()
        for header in request.headers {
            // "Name;" is libcurl's way to send a header with an empty value ("Name:" removes it).
            try list.append(header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)")
        }
        // No "Expect: 100-continue" round trip before large bodies, unless asked for. Not with
        // SigV4: libcurl 7.88 signs every header in the list, a removed one too, which then
        // does not match what is sent; there the wait for "100 Continue" is kept short instead
        // (S3 answers it at once; servers that never do cost 300 ms on a body over 1 MB).
        if request.awsSigV4 != nil {
            try set(CURLOPT_EXPECT_100_TIMEOUT_MS, 300)
        } else if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            try list.append("Expect:")
        }
        try set(CURLOPT_HTTPHEADER, pointer: UnsafeMutableRawPointer(list.pointer))
        return list
    }

    /// Points libcurl's read and seek callbacks at a new `UploadSource` for `file`; the caller
    /// keeps the source alive until the transfer ends.
    private func configureUpload(_ file: HTTPFileBody) throws(HTTPError) -> UploadSource {
        let source = try UploadSource(file)
        let userdata = Unmanaged.passUnretained(source).toOpaque()
        try set(CURLOPT_UPLOAD, 1)
        try check(patchd_curl_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(file.length)), "CURLOPT_INFILESIZE_LARGE")
        try set(CURLOPT_READDATA, pointer: userdata)
        try set(CURLOPT_SEEKDATA, pointer: userdata)
        try check(
            patchd_curl_setopt_read_function(handle) { buffer, size, count, userdata in
                let abort = Int(CURL_READFUNC_ABORT)
                guard let buffer, let userdata else { return abort }
                let source = Unmanaged<UploadSource>.fromOpaque(userdata).takeUnretainedValue()
                return source.read(into: buffer, capacity: size * count) ?? abort
            }, "CURLOPT_READFUNCTION")
        try check(
            patchd_curl_setopt_seek_function(handle) { userdata, offset, origin in
                guard let userdata else { return Int32(CURL_SEEKFUNC_FAIL) }
                let source = Unmanaged<UploadSource>.fromOpaque(userdata).takeUnretainedValue()
                return source.seek(to: Int64(offset), origin: origin) ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_CANTSEEK)
            }, "CURLOPT_SEEKFUNCTION")
        return source
    }

    // MARK: - Checks and errors

    static func validate(_ request: HTTPRequest) throws(HTTPError) {
        let lowerURL = request.url.lowercased()
        guard lowerURL.hasPrefix("http://") || lowerURL.hasPrefix("https://") else {
            throw .invalidRequest("URL must start with http:// or https://: \(request.url)")
        }
        guard !request.url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) else {
            throw .invalidRequest("URL contains spaces or control characters")
        }
        guard isToken(request.method) else { throw .invalidRequest("bad method \(request.method.debugDescription)") }
        for header in request.headers {
            guard isToken(header.name) else {
                throw .invalidRequest("bad header name \(header.name.debugDescription)")
            }
            guard !header.value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 }) else {
                throw .invalidRequest("header \(header.name) has CR, LF or NUL in its value")
            }
        }
        if request.bodyFile != nil && !request.body.isEmpty {
            throw .invalidRequest("a request has either body bytes or a file body, not both")
        }
        for (name, seconds) in [
            ("connectTimeout", request.connectTimeout), ("totalTimeout", request.totalTimeout),
            ("lowSpeedTimeout", request.lowSpeedTimeout),
        ] {
            guard seconds.isFinite, seconds >= 0, seconds < 1e9 else {
                throw .invalidRequest("\(name) must be between 0 and 1e9 seconds, not \(seconds)")
            }
        }
    }

    /// RFC 9110 token: what a method or a header name may be made of.
    private static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default:
                    "!#$%&'*+-.^_`|~".utf8.contains(byte)
                }
            }
    }

    private static func milliseconds(_ seconds: Double) -> Int { Int((seconds * 1000).rounded(.up)) }

    static func code(_ code: CURLcode) -> Int32 { Int32(bitPattern: code.rawValue) }

    /// libcurl's message for `code` plus the error buffer's detail, which names host, port and cause.
    private func transportError(_ code: CURLcode) -> HTTPError {
        let summary = String(cString: curl_easy_strerror(code))
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty || detail == summary ? summary : "\(summary): \(detail)"
        return .transport(code: Self.code(code), message: message)
    }

    private func check(_ code: CURLcode, _ option: String) throws(HTTPError) {
        guard code == CURLE_OK else {
            throw .transport(
                code: Self.code(code),
                message: "curl_easy_setopt(\(option)): \(String(cString: curl_easy_strerror(code)))")
        }
    }

    private func set(_ option: CURLoption, _ value: Int) throws(HTTPError) {
        try check(patchd_curl_setopt_long(handle, option, value), "option \(option.rawValue)")
    }

    private func set(_ option: CURLoption, string value: String) throws(HTTPError) {
        // libcurl copies string options, so the temporary C string may go.
        try check(patchd_curl_setopt_string(handle, option, value), "option \(option.rawValue)")
    }

    private func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(HTTPError) {
        try check(patchd_curl_setopt_pointer(handle, option, value), "option \(option.rawValue)")
    }
}

/// One client per thread: the easy handle is not thread-safe.
@available(*, unavailable)
extension HTTPClient: Sendable {}
