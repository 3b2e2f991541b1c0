// Offsite: typed errors that say what failed, on which object or repository, and what to do.

package import HTTPClient

package enum OffsiteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The `offsite:` settings or credentials are wrong.
    case configuration(String)
    /// The store answered with an error status: method, key, status, S3 error code and message.
    case store(method: String, key: String, status: Int, code: String, message: String)
    /// The store could not be reached (DNS, refused, timeout, TLS).
    case transport(method: String, key: String, HTTPError)
    /// A local step failed: git, age, SQLite, a file.
    case local(String)
    /// What the bucket holds is not what patchd wrote (a manifest it cannot read, a missing object).
    case bucket(String)

    package var description: String {
        switch self {
        case .configuration(let why): return why
        case .store(let method, let key, let status, let code, let message):
            let hint: String
            switch status {
            case 403: hint = " (check the access key, its secret and the region, and that the key may read and write the bucket)"
            case 404 where code == "NoSuchBucket": hint = " (create the bucket first)"
            default: hint = ""
            }
            return "offsite store: \(method) \(key): HTTP \(status) \(code) \(message)\(hint)"
        case .transport(let method, let key, let error):
            return "offsite store unreachable: \(method) \(key): \(error) (check offsite.endpoint and the network)"
        case .local(let why): return "offsite: \(why)"
        case .bucket(let why): return "offsite bucket: \(why)"
        }
    }
}
