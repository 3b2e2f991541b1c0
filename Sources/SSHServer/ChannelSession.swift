// SSHServer: one session channel: its requests, and the pump between the channel and a program's fds.

import CLibSSH
import Foundation
import Logging
import PatchdSystem
import SSHKeys

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
    /// EOF flags, finished, closed by the client: what the pump decides from (no I/O in it).
    private var plan = ChannelPumpPlan()
    /// This channel no longer counts against the connection's open sessions.
    private var slotReleased = false

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
        if let program, !plan.finished { _ = program.abort() }
        ssh_remove_channel_callbacks(channel, callbacks)
        ssh_channel_free(channel)
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    /// Finished on our side and closed by the client (or the channel is gone): free it.
    /// A channel the client closed while its program ran has the program stopped first.
    var isDone: Bool {
        switch plan.fate(channelClosed: ssh_channel_is_closed(channel) != 0) {
        case .keep: return false
        case .free: return true
        case .abortThenFree:
            abort(reason: "client closed the channel")
            return true
        }
    }

    /// Whether a stopping server must keep the connection for this channel (see the plan).
    func holdsConnection(now: ContinuousClock.Instant) -> Bool { plan.holdsConnection(now: now) }

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
            return me.setEnvironment(
                name: name.map { String(cString: $0) } ?? "",
                value: value.map { String(cString: $0) } ?? "")
        }
        cb.pointee.channel_close_function = { _, _, userdata in
            let me = Unmanaged<ChannelSession>.fromOpaque(userdata!).takeUnretainedValue()
            me.plan.clientClosed()
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
            connection.server.delegate.acceptEnvironment(name: name, value: value)
        else {
            return -1
        }
        environment[name] = value
        return 0
    }

    /// Variables one channel may set: a client can send env requests without end.
    static let maxEnvironment = 16

    private func start(command: String?) -> Int32 {
        guard program == nil else { return -1 }  // one exec or shell per channel
        connection.noteActivity()
        let request = connection.makeRequest(identity: identity, command: command, environment: environment)
        let started = connection.server.delegate.startProgram(for: request)
        for fd in [started.stdout, started.stderr] where fd.isOpen { try? fd.setNonBlocking() }
        if let stdin = started.stdin, stdin.isOpen { try? stdin.setNonBlocking() }
        plan.programStarted(stdoutOpen: started.stdout.isOpen, stderrOpen: started.stderr.isOpen)
        program = started
        connection.audit.append(started.auditRepo.map { "\(started.auditVerb):\($0)" } ?? started.auditVerb)
        return 0
    }

    // MARK: - Pump

    /// The fds the loop should wake up for, given what is buffered (`ChannelPumpPlan.interest`).
    func wantedFDs(into wanted: inout [Int32: Int16]) {
        guard let program, plan.isRunning else { return }
        let interest = plan.interest(
            .init(
                window: Int(ssh_channel_window_size(channel)), stdoutPending: outbound.count,
                stderrPending: errbound.count, stdinPending: inbound.count,
                stdinOpen: program.stdin?.isOpen ?? false))
        if interest.stdoutReadable { wanted[program.stdout.raw] = Int16(POLLIN) }
        if interest.stderrReadable { wanted[program.stderr.raw] = Int16(POLLIN) }
        if interest.stdinWritable, let stdin = program.stdin { wanted[stdin.raw] = Int16(POLLOUT) }
    }

    /// Moves whatever can move now, without blocking; sends the exit status when done.
    func pump() {
        guard let program, plan.isRunning else { return }
        pumpInput(program)
        pumpOutput(fd: program.stdout, pending: &outbound, isStderr: false)
        pumpOutput(fd: program.stderr, pending: &errbound, isStderr: true)
        if plan.shouldComplete(stdoutPending: outbound.count, stderrPending: errbound.count) {
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
            let read: ChannelPumpPlan.ChannelRead =
                if n > 0 {
                    .bytes(Int(n))
                } else if n == SSH_EOF || n == SSH_ERROR || ssh_channel_is_eof(channel) != 0 {
                    .endOfInput
                } else {
                    .nothing
                }
            if n > 0 {
                connection.bytesIn += UInt64(n)
                connection.noteActivity()
            }
            switch plan.inputStep(after: read, stdinOpen: program.stdin?.isOpen ?? false) {
            case .deliver: inbound.set(scratch[0..<Int(n)])
            case .discard: continue
            case .closeStdin:
                program.stdin?.close()
                return
            case .wait: return
            }
        }
    }

    private func pumpOutput(fd: OwnedFD, pending: inout PendingBytes, isStderr: Bool) {
        for _ in 0..<Self.chunksPerPump {
            var step = plan.outputStep(
                stderr: isStderr, pending: pending.count,
                window: Int(ssh_channel_window_size(channel)), scratch: scratch.count)
            if case .send(let count) = step {
                let n = pending.withUnread { buf -> Int32 in
                    isStderr
                        ? ssh_channel_write_stderr(channel, buf.baseAddress, UInt32(count))
                        : ssh_channel_write(channel, buf.baseAddress, UInt32(count))
                }
                if n < 0 {
                    abort(reason: "channel write failed: \(connection.lastError)")
                    return
                }
                pending.consume(Int(n))
                connection.bytesOut += UInt64(n)
                connection.noteActivity()
                if !pending.isEmpty { return }
                step = plan.outputStep(
                    stderr: isStderr, pending: 0,
                    window: Int(ssh_channel_window_size(channel)), scratch: scratch.count)
            }
            guard case .read(let limit) = step else { return }
            let n = scratch.withUnsafeMutableBytes { read(fd.raw, $0.baseAddress, limit) }
            if n > 0 {
                pending.set(scratch[0..<n])
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                plan.outputEnded(stderr: isStderr)
                return
            } else {
                return
            }
        }
    }

    /// exit-status, then EOF, then close; libssh flushes them and the client closes its side.
    private func complete(status: Int32) {
        plan.finish(at: .now)
        connection.lastExitStatus = status
        ssh_channel_request_send_exit_status(channel, status)
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
    }

    /// The client or the connection went away while the program ran.
    func abort(reason: String) {
        guard let program, plan.isRunning else { return }
        plan.finish(at: .now)
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
    /// Bytes not yet consumed.
    var count: Int { bytes.count - offset }

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
