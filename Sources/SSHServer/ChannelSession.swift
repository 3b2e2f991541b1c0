// SSHServer: one session channel: its requests, and the pump between the channel and a program's fds.
import CLibSSH
import CShims
import Foundation
import PatchdSystem

/// One "session" channel and the program it runs. Data flows both ways with
/// back-pressure: we read from the program only as much as the client's window
/// allows, and read client data from libssh only when the program's stdin has
/// taken everything before (unread data stays in libssh and the window stays shut).
final class ChannelSession {
    private let channel: ssh_channel
    private unowned let connection: Connection
    private let identity: SSHIdentity
    private let callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    private var environment: [String: String] = [:]
    private var program: ChannelProgram?

    /// Client -> program stdin, not yet written.
    private var inbound = PendingBytes()
    /// Program stdout / stderr -> client, not yet accepted by the channel.
    private var outbound = PendingBytes()
    private var errbound = PendingBytes()
    private var stdoutEOF = false
    private var stderrEOF = false
    private var finished = false
    /// When the exit status was sent (or the program aborted), on the monotonic clock.
    private var finishedAt: Double?
    /// The client sent CHANNEL_CLOSE. Set by libssh's close callback: `ssh_channel_is_closed`
    /// cannot tell, as it is also true right after our own `ssh_channel_close`.
    private var closedByClient = false
    /// This channel no longer counts against the connection's open sessions.
    private var slotReleased = false

    /// How long a stopping server waits for the client to close a finished channel.
    static let closeWaitWhenStopping: Double = 30
    private var scratch = [UInt8](repeating: 0, count: 65536)

    /// Chunks moved per pump call and direction, so one busy channel cannot starve others.
    private static let chunksPerPump = 32

    init(channel: ssh_channel, connection: Connection, identity: SSHIdentity) {
        self.channel = channel
        self.connection = connection
        self.identity = identity
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        installCallbacks()
    }

    deinit {
        if let program, !finished { _ = program.abort() }
        ssh_remove_channel_callbacks(channel, callbacks)
        ssh_channel_free(channel)
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    /// The program has been started and has not yet sent its exit status.
    var isRunning: Bool { program != nil && !finished }

    /// Finished on our side and closed by the client (or the channel is gone): free it.
    /// A channel we finished and closed ourselves stays until the client's close arrives: the
    /// client closes only after it has written out everything it received, and the connection
    /// loop must not take a missing channel for "nothing in flight" (see `holdsConnection`).
    var isDone: Bool {
        if closedByClient || (!finished && ssh_channel_is_closed(channel) != 0) {
            if isRunning { abort(reason: "client closed the channel") }
            return true
        }
        return false
    }

    /// Whether a stopping server must keep the connection for this channel: its program
    /// runs, or it finished but the client has not closed it yet (bounded). Disconnecting
    /// as soon as the program exited cut clones short during a graceful stop: the client
    /// still had the end of the pack buffered for its local git, and OpenSSH drops what
    /// it has not written out when the connection goes ("early EOF").
    func holdsConnection(now: Double) -> Bool {
        guard program != nil else { return false }
        guard let finishedAt else { return true }
        return now - finishedAt < Self.closeWaitWhenStopping
    }

    /// Called when the client closed the channel, or when the connection drops it: once.
    func releaseSessionSlot() {
        guard !slotReleased else { return }
        slotReleased = true
        connection.sessionEnded()
    }

    // MARK: - Requests

    private func installCallbacks() {
        let cb = callbacks
        patchd_ssh_channel_callbacks_init(cb)
        cb.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        cb.pointee.channel_exec_request_function = { _, _, command, userdata in
            let me = Unmanaged<ChannelSession>.fromOpaque(userdata!).takeUnretainedValue()
            return me.start(command: command.map { String(cString: $0) } ?? "")
        }
        cb.pointee.channel_shell_request_function = { _, _, userdata in
            let me = Unmanaged<ChannelSession>.fromOpaque(userdata!).takeUnretainedValue()
            return me.start(command: nil)
        }
        cb.pointee.channel_env_request_function = { _, _, name, value, userdata in
            let me = Unmanaged<ChannelSession>.fromOpaque(userdata!).takeUnretainedValue()
            return me.setEnvironment(name: name.map { String(cString: $0) } ?? "",
                                     value: value.map { String(cString: $0) } ?? "")
        }
        cb.pointee.channel_close_function = { _, _, userdata in
            let me = Unmanaged<ChannelSession>.fromOpaque(userdata!).takeUnretainedValue()
            me.closedByClient = true
            // Freed now, not at the next loop turn: a ControlMaster client may send this close
            // and its next channel open in one read, and the open must not find the slot taken.
            me.releaseSessionSlot()
        }
        // No terminals, subsystems (sftp) or X11 for anyone: refused.
        cb.pointee.channel_pty_request_function = { _, _, _, _, _, _, _, _ in -1 }
        cb.pointee.channel_subsystem_request_function = { _, _, _, _ in -1 }
        ssh_set_channel_callbacks(channel, cb)
    }

    /// The delegate decides which variables a program may see (`acceptEnvironment`); the
    /// rest are refused. At most `maxEnvironment` per channel, whatever the delegate accepts.
    private func setEnvironment(name: String, value: String) -> Int32 {
        guard program == nil, environment[name] != nil || environment.count < Self.maxEnvironment,
              connection.server.delegate.acceptEnvironment(name: name, value: value) else {
            return -1
        }
        environment[name] = value
        return 0
    }

    /// Variables one channel may set: a client can send env requests without end.
    static let maxEnvironment = 16

    private func start(command: String?) -> Int32 {
        guard program == nil else { return -1 } // one exec or shell per channel
        connection.noteActivity()
        let request = connection.makeRequest(identity: identity, command: command, environment: environment)
        let started = connection.server.delegate.startProgram(for: request)
        for fd in [started.stdout, started.stderr] where fd.isOpen { try? fd.setNonBlocking() }
        if let stdin = started.stdin, stdin.isOpen { try? stdin.setNonBlocking() }
        stdoutEOF = !started.stdout.isOpen
        stderrEOF = !started.stderr.isOpen
        program = started
        connection.audit.append(started.auditRepo.map { "\(started.auditVerb):\($0)" } ?? started.auditVerb)
        return 0
    }

    // MARK: - Pump

    /// The fds the loop should wake up for, given what is buffered.
    /// The program's output is only worth waking for while the client's window is open:
    /// with it shut, `pumpOutput` reads nothing, so a readable pipe would make every poll
    /// return at once and the loop spin until the client's WINDOW_ADJUST (which arrives on
    /// the session socket, which libssh polls anyway).
    func wantedFDs(into wanted: inout [Int32: Int16]) {
        guard let program, !finished else { return }
        let windowOpen = ssh_channel_window_size(channel) > 0
        if !stdoutEOF && outbound.isEmpty && windowOpen { wanted[program.stdout.raw] = Int16(POLLIN) }
        if !stderrEOF && errbound.isEmpty && windowOpen { wanted[program.stderr.raw] = Int16(POLLIN) }
        if let stdin = program.stdin, stdin.isOpen, !inbound.isEmpty { wanted[stdin.raw] = Int16(POLLOUT) }
    }

    /// Moves whatever can move now, without blocking; sends the exit status when done.
    func pump() {
        guard let program, !finished else { return }
        pumpInput(program)
        pumpOutput(fd: program.stdout, pending: &outbound, eof: &stdoutEOF, isStderr: false)
        pumpOutput(fd: program.stderr, pending: &errbound, eof: &stderrEOF, isStderr: true)
        if stdoutEOF && stderrEOF && outbound.isEmpty && errbound.isEmpty {
            complete(status: program.finish())
        }
    }

    private func pumpInput(_ program: ChannelProgram) {
        for _ in 0..<Self.chunksPerPump {
            if let stdin = program.stdin, stdin.isOpen, !inbound.isEmpty {
                let n = inbound.withUnread { write(stdin.raw, $0.baseAddress, $0.count) }
                if n > 0 {
                    inbound.consume(n)
                    connection.noteActivity()
                } else if n < 0 && errno != EAGAIN && errno != EINTR {
                    // The program stopped reading (EPIPE): drop what it will never take.
                    stdin.close()
                    inbound.clear()
                }
                if !inbound.isEmpty { return }
            }
            let n = scratch.withUnsafeMutableBytes {
                ssh_channel_read_nonblocking(channel, $0.baseAddress, UInt32($0.count), 0)
            }
            if n > 0 {
                connection.bytesIn += UInt64(n)
                connection.noteActivity()
                if let stdin = program.stdin, stdin.isOpen { inbound.set(scratch[0..<Int(n)]) }
                continue // without a stdin, input is read and discarded so the window keeps moving
            }
            // Nothing buffered: SSH_EOF (or 0 with the EOF flag) means the client sent EOF,
            // which becomes the program's EOF. SSH_ERROR is a broken channel: same effect.
            let clientDone = n == SSH_EOF || n == SSH_ERROR || ssh_channel_is_eof(channel) != 0
            if clientDone && inbound.isEmpty, let stdin = program.stdin, stdin.isOpen {
                stdin.close()
            }
            return
        }
    }

    private func pumpOutput(fd: OwnedFD, pending: inout PendingBytes, eof: inout Bool, isStderr: Bool) {
        for _ in 0..<Self.chunksPerPump {
            if !pending.isEmpty {
                let window = Int(ssh_channel_window_size(channel))
                if window == 0 { return }
                let n = pending.withUnread { buf -> Int32 in
                    let count = UInt32(min(buf.count, window))
                    return isStderr ? ssh_channel_write_stderr(channel, buf.baseAddress, count)
                                    : ssh_channel_write(channel, buf.baseAddress, count)
                }
                if n < 0 {
                    abort(reason: "channel write failed: \(connection.lastError)")
                    return
                }
                pending.consume(Int(n))
                connection.bytesOut += UInt64(n)
                connection.noteActivity()
                if !pending.isEmpty { return }
            }
            if eof { return }
            let window = Int(ssh_channel_window_size(channel))
            if window == 0 { return }
            let n = scratch.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, min($0.count, window)) }
            if n > 0 {
                pending.set(scratch[0..<n])
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                eof = true
                return
            } else {
                return
            }
        }
    }

    /// exit-status, then EOF, then close; libssh flushes them and the client closes its side.
    private func complete(status: Int32) {
        finished = true
        finishedAt = MonotonicClock.now
        connection.lastExitStatus = status
        ssh_channel_request_send_exit_status(channel, status)
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
    }

    /// The client or the connection went away while the program ran.
    func abort(reason: String) {
        guard let program, !finished else { return }
        finished = true
        finishedAt = MonotonicClock.now
        let status = program.abort()
        connection.lastExitStatus = status
        connection.server.logger.info("Channel aborted for \(connection.client): \(reason); \(program.auditVerb) exited \(status)")
    }
}

/// A byte buffer consumed from the front without copying.
struct PendingBytes {
    private var bytes: [UInt8] = []
    private var offset = 0

    var isEmpty: Bool { offset >= bytes.count }

    mutating func set(_ slice: ArraySlice<UInt8>) {
        bytes = Array(slice)
        offset = 0
    }

    mutating func consume(_ n: Int) { offset += n }

    mutating func clear() {
        bytes = []
        offset = 0
    }

    func withUnread<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
    }
}
