// SSHServer: the channel pump's decisions (what to poll, read, send, close, free) as a pure value.

/// One session channel's pump state and the decisions taken from it. No libssh handle and no
/// fd: the driver (`ChannelSession`) samples the window and its buffers, asks, and does the
/// I/O. The edges (a shut window with EOF already seen, a client that closes before the exit
/// status) are unit-tested in Tests/UnitTests/ChannelPumpPlanTests.swift.
struct ChannelPumpPlan: Sendable, Equatable {
    typealias Instant = ContinuousClock.Instant

    /// How long a stopping server waits for the client to close a finished channel.
    static let closeWaitWhenStopping: Duration = .seconds(30)

    /// An exec or shell request started the program.
    private(set) var started = false
    private(set) var stdoutEOF = false
    private(set) var stderrEOF = false
    /// When the exit status was sent (or the program aborted): nothing more moves.
    private(set) var finishedAt: Instant?
    /// The client sent CHANNEL_CLOSE (libssh's close callback; `ssh_channel_is_closed` cannot
    /// tell, as it is also true right after our own `ssh_channel_close`).
    private(set) var closedByClient = false

    var finished: Bool { finishedAt != nil }
    /// Started and has not sent its exit status.
    var isRunning: Bool { started && !finished }

    /// What the driver sampled just now.
    struct Buffers: Sendable, Equatable {
        /// `ssh_channel_window_size`: bytes the client accepts before its next WINDOW_ADJUST.
        var window: Int
        /// Read from the program's stdout / stderr, not yet accepted by the channel.
        var stdoutPending = 0
        var stderrPending = 0
        /// Read from the client, not yet written to the program's stdin.
        var stdinPending = 0
        var stdinOpen = false
    }

    /// The program fds worth waking the loop for.
    struct Interest: Sendable, Equatable {
        var stdoutReadable = false
        var stderrReadable = false
        var stdinWritable = false
    }

    enum OutputStep: Sendable, Equatable {
        /// Send this many pending bytes (never more than the window).
        case send(Int)
        /// Nothing pending: read at most this many bytes from the program.
        case read(Int)
        /// Wait: the window is shut, or this stream reached EOF and nothing is pending.
        case wait
    }

    /// What `ssh_channel_read_nonblocking` returned.
    enum ChannelRead: Sendable, Equatable {
        case bytes(Int)
        /// Nothing buffered, and the client has not sent EOF.
        case nothing
        /// SSH_EOF, 0 with the channel's EOF flag, or SSH_ERROR (a broken channel: same effect).
        case endOfInput
    }

    enum InputStep: Sendable, Equatable {
        /// Keep the bytes for the program's stdin and go on reading once they are written.
        case deliver
        /// No stdin: drop them, so the client's window keeps moving, and read on.
        case discard
        /// The client's EOF becomes the program's (git upload-pack v2 waits for it).
        case closeStdin
        /// Nothing more to do now.
        case wait
    }

    enum Fate: Sendable, Equatable {
        case keep
        /// Finished, and the client closed it (or the channel is gone): free it.
        case free
        /// The client closed it while the program ran: stop the program, then free it.
        case abortThenFree
    }

    // MARK: - Events

    mutating func programStarted(stdoutOpen: Bool, stderrOpen: Bool) {
        started = true
        stdoutEOF = !stdoutOpen
        stderrEOF = !stderrOpen
    }

    /// A read from the program's stdout (or stderr) returned 0 or a hard error.
    mutating func outputEnded(stderr: Bool) {
        if stderr { stderrEOF = true } else { stdoutEOF = true }
    }

    mutating func clientClosed() { closedByClient = true }

    /// The exit status went out, or the program was aborted.
    mutating func finish(at now: Instant) {
        if finishedAt == nil { finishedAt = now }
    }

    // MARK: - Decisions

    /// Output is only worth waking for while the client's window is open: with it shut nothing
    /// is read, so a readable pipe would make every poll return at once and the loop spin
    /// until the WINDOW_ADJUST (which arrives on the session socket, polled anyway).
    func interest(_ b: Buffers) -> Interest {
        guard isRunning else { return Interest() }
        let windowOpen = b.window > 0
        return Interest(
            stdoutReadable: !stdoutEOF && b.stdoutPending == 0 && windowOpen,
            stderrReadable: !stderrEOF && b.stderrPending == 0 && windowOpen,
            stdinWritable: b.stdinOpen && b.stdinPending > 0)
    }

    /// The next step for one output stream: pending bytes go first, and only as many as the
    /// window takes, so `ssh_channel_write` never waits; a read is sized to the window.
    func outputStep(stderr: Bool, pending: Int, window: Int, scratch: Int) -> OutputStep {
        guard window > 0 else { return .wait }
        if pending > 0 { return .send(min(pending, window)) }
        if stderr ? stderrEOF : stdoutEOF { return .wait }
        return .read(min(scratch, window))
    }

    /// What to do with what the client sent (client -> program stdin). Called with nothing
    /// pending for stdin: unread data stays in libssh until then, and the window stays shut.
    func inputStep(after read: ChannelRead, stdinOpen: Bool) -> InputStep {
        switch read {
        case .bytes(let n) where n > 0: stdinOpen ? .deliver : .discard
        case .endOfInput: stdinOpen ? .closeStdin : .wait
        case .bytes, .nothing: .wait
        }
    }

    /// Both outputs at EOF and sent: collect the exit status, then exit-status, EOF, close.
    func shouldComplete(stdoutPending: Int, stderrPending: Int) -> Bool {
        isRunning && stdoutEOF && stderrEOF && stdoutPending == 0 && stderrPending == 0
    }

    /// A channel we finished and closed ourselves stays until the client's close arrives: the
    /// client closes only after it has written out everything it received, and a stopping
    /// connection must not take a missing channel for "nothing in flight".
    /// `channelClosed`: libssh says the channel is closed (which our own close also causes).
    func fate(channelClosed: Bool) -> Fate {
        guard closedByClient || (!finished && channelClosed) else { return .keep }
        return isRunning ? .abortThenFree : .free
    }

    /// Whether a stopping server must keep the connection for this channel: its program runs,
    /// or it finished but the client has not closed it yet (bounded). Disconnecting as soon as
    /// the program exited cut clones short: the client still had the end of the pack buffered
    /// for its local git, and OpenSSH drops what it has not written out ("early EOF").
    func holdsConnection(now: Instant) -> Bool {
        guard started else { return false }
        guard let finishedAt else { return true }
        return now - finishedAt < Self.closeWaitWhenStopping
    }
}
