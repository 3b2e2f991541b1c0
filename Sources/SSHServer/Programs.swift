// SSHServer: the two kinds of ChannelProgram: a child process, and Swift code on its own thread.

package import PatchdSystem

#if canImport(Glibc)
import Glibc
#endif

/// A child process whose stdin/stdout/stderr are pipes to the channel.
package final class ProcessProgram: ChannelProgram {
    package let child: ChildProcess
    package let auditVerb: String
    package let auditRepo: String?
    /// Runs once with the exit status, after the child ended (e.g. to remove a repo a failed push created).
    private var onExit: ((Int32) -> Void)?

    package init(child: ChildProcess, verb: String, repo: String?, onExit: ((Int32) -> Void)? = nil) {
        self.child = child
        self.auditVerb = verb
        self.auditRepo = repo
        self.onExit = onExit
    }

    package var stdin: OwnedFD? { child.stdin }
    package var stdout: OwnedFD { child.stdout! }
    package var stderr: OwnedFD { child.stderr! }

    package func finish() -> Int32 {
        // The child closed its output; it normally exits at once. Bounded all the same.
        complete(child.wait(timeout: 30))
    }

    package func abort() -> Int32 {
        // Closing stdin lets git notice the end of input and clean up its temporary
        // objects itself; a signal follows only if it does not exit.
        child.stdin?.close()
        if let status = child.poll() { return complete(status) }
        let deadline = MonotonicClock.now + 5
        while MonotonicClock.now < deadline {
            if let status = child.poll() { return complete(status) }
            usleep(10_000)
        }
        child.signalGroup(SIGTERM)
        return complete(child.wait(timeout: 5))
    }

    private func complete(_ status: Int32) -> Int32 {
        if let onExit {
            self.onExit = nil
            onExit(status)
        }
        return status
    }
}

/// Where a `ThreadProgram` writes: the channel's stdout and stderr.
package final class ProgramOutput: Sendable {
    let stdoutFD: Int32
    let stderrFD: Int32
    /// The read end of the client's stdin (-1: the program takes no input).
    let inputFD: Int32
    init(stdoutFD: Int32, stderrFD: Int32, inputFD: Int32 = -1) { self.stdoutFD = stdoutFD; self.stderrFD = stderrFD; self.inputFD = inputFD }

    /// The client's stdin up to its end, or nil when the program takes none or it is longer than `maxBytes`.
    package func readInput(maxBytes: Int) -> [UInt8]? {
        guard inputFD >= 0 else { return nil }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(inputFD, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buffer[0..<n]
            if data.count > maxBytes { return nil }
        }
        return data
    }

    /// False once the client went away (the pipe is closed): stop producing.
    @discardableResult
    package func out(_ text: String) -> Bool { (try? writeAll(stdoutFD, text)) != nil }
    @discardableResult
    package func err(_ text: String) -> Bool { (try? writeAll(stderrFD, text)) != nil }
    @discardableResult
    package func out(bytes: [UInt8]) -> Bool { (try? writeAll(stdoutFD, bytes)) != nil }
}

/// Swift code (a command shortcut, the greeting, an error message) run on its own thread,
/// writing into pipes that the pump forwards, so a slow client never blocks the connection loop.
package final class ThreadProgram: ChannelProgram {
    package let auditVerb: String
    package let auditRepo: String?
    package let stdout: OwnedFD
    package let stderr: OwnedFD
    package let stdin: OwnedFD?
    private let thread: OSThread
    private let status: JoinedResult<Int32>

    /// `body` returns the exit status; it must stop when `ProgramOutput` reports the client gone.
    /// `input`: the client's stdin reaches the body (`ProgramOutput.readInput`); else none is read.
    package init(
        verb: String, repo: String? = nil, input: Bool = false, body: @escaping @Sendable (ProgramOutput) -> Int32
    ) throws(SystemError) {
        let outPipe = try PipePair()
        let errPipe = try PipePair()
        var inputRead: Int32 = -1
        if input {
            let inPipe = try PipePair()
            stdin = inPipe.write
            inputRead = inPipe.read.release()
        } else {
            stdin = nil
        }
        let readIn = inputRead
        auditVerb = verb
        auditRepo = repo
        stdout = outPipe.read
        stderr = errPipe.read
        let writeOut = outPipe.write.release()
        let writeErr = errPipe.write.release()
        let box = JoinedResult<Int32>(0)
        status = box
        thread = try OSThread(name: "program") {
            let code = body(ProgramOutput(stdoutFD: writeOut, stderrFD: writeErr, inputFD: readIn))
            box.set(code)
            if input { close(readIn) }
            // Closing the write ends is what tells the pump the program is done.
            close(writeOut)
            close(writeErr)
        }
    }

    /// A program that prints fixed text and exits with `status`.
    package static func message(verb: String, stdout: String = "", stderr: String = "", status: Int32) -> ChannelProgram {
        do {
            return try ThreadProgram(verb: verb) { io in
                if !stdout.isEmpty { io.out(stdout) }
                if !stderr.isEmpty { io.err(stderr) }
                return status
            }
        } catch {
            return FailedProgram(verb: verb, status: status)
        }
    }

    package func finish() -> Int32 {
        thread.join()
        return status.get()
    }

    package func abort() -> Int32 {
        // Our read ends close when this object goes; the writer then gets EPIPE and stops.
        stdout.close()
        stderr.close()
        thread.join()
        return status.get()
    }
}

/// Fallback when not even pipes could be made (fd exhaustion): an already-finished program.
final class FailedProgram: ChannelProgram {
    let auditVerb: String
    let auditRepo: String? = nil
    let stdin: OwnedFD? = nil
    let stdout = OwnedFD(-1)
    let stderr = OwnedFD(-1)
    let status: Int32
    init(verb: String, status: Int32) { auditVerb = verb; self.status = status }
    func finish() -> Int32 { status }
    func abort() -> Int32 { status }
}
