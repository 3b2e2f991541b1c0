// HTTPClient: a request body streamed from a byte range of a file, and AWS SigV4 signing by libcurl.

/// A body read from `path`, bytes `offset..<offset+length`, while the request is sent: a large
/// upload (an S3 object or one part of a multipart upload) never sits in memory.
package struct HTTPFileBody: Sendable, Equatable {
    package var path: String
    package var offset: Int64
    package var length: Int64

    package init(path: String, offset: Int64 = 0, length: Int64) {
        self.path = path
        self.offset = offset
        self.length = length
    }
}

/// libcurl's built-in AWS Signature Version 4 (`CURLOPT_AWS_SIGV4`), with the access key id and
/// secret as user and password. libcurl signs the method, path, query, `Host`, `x-amz-date` and
/// every `x-amz-*` header the request carries; the payload hash it signs is the value of an
/// `x-amz-content-sha256` header when there is one (libcurl 7.88 hashes nothing itself for a
/// streamed body), so S3 requests carry that header (`UNSIGNED-PAYLOAD` or the body's SHA-256).
/// A query parameter without a value must be written `name=` (libcurl 7.88 signs `?uploads` as
/// `uploads`, S3 expects `uploads=`).
package struct HTTPAWSSigV4: Sendable, Equatable {
    /// "aws:amz:REGION:SERVICE", e.g. "aws:amz:us-east-1:s3" (R2: region "auto").
    package var provider: String
    package var accessKeyID: String
    package var secretAccessKey: String

    package init(region: String, service: String, accessKeyID: String, secretAccessKey: String) {
        provider = "aws:amz:\(region):\(service)"
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }
}
