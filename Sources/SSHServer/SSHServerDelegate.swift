// SSHServer: the seams between the SSH layer and the application (auth lookup, what an exec runs).

package import PatchdSystem
package import SSHKeys

/// The client's address, for logs.
package struct ClientAddress: Sendable, CustomStringConvertible {
    package let host: String
    package let port: Int
    package var description: String { "\(host) port \(port)" }
}

/// An exec (`command` set) or shell (`command == nil`) request on an authenticated channel.
package struct ExecRequest: Sendable {
    package let connectionID: UInt64
    package let identity: SSHIdentity
    package let command: String?
    /// Only the environment variables the delegate accepted (`acceptEnvironment`).
    package let environment: [String: String]
    package let client: ClientAddress
}

/// What a channel runs: three fds the pump connects to the channel, and a way to end it.
/// Implementations: `ProcessProgram` (a child process) and `ThreadProgram` (Swift code on
/// its own thread writing into pipes). Owned and driven by one connection thread.
package protocol ChannelProgram: AnyObject {
    /// Write end of the program's stdin; nil when it takes no input (client data is discarded).
    var stdin: OwnedFD? { get }
    var stdout: OwnedFD { get }
    var stderr: OwnedFD { get }
    /// For the audit line: what ran ("git-upload-pack", "help") and on which repo.
    var auditVerb: String { get }
    var auditRepo: String? { get }
    /// Called once stdout and stderr reached EOF: waits (bounded) for the exit status.
    func finish() -> Int32
    /// The client went away: stop the program and clean up. Returns its exit status.
    func abort() -> Int32
}

/// The application behind the SSH server.
package protocol SSHServerDelegate: Sendable {
    /// Who owns `key`, or nil to refuse it. Called for unsigned probes and signed
    /// attempts alike; the server sets the identity only for a signed one.
    func identity(for key: PublicKey) -> SSHIdentity?
    /// Starts the program for an exec or shell request. Errors become a program too
    /// (a message on stderr and an exit status), so this never fails.
    func startProgram(for request: ExecRequest) -> ChannelProgram
    /// Whether the client's "env" request `name=value` may reach the program (in
    /// `ExecRequest.environment`); false refuses it. Called before the exec or shell request.
    func acceptEnvironment(name: String, value: String) -> Bool
}

extension SSHServerDelegate {
    /// No environment reaches a program unless the application's delegate says so.
    package func acceptEnvironment(name: String, value: String) -> Bool { false }
}
