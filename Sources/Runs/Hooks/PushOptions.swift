// Runs: `git push -o ...` options patchd understands (run, wait, follow-up, task=TEXT, attempts=N), parsed as hostile data.

import PatchdCore

/// Push options arrive as GIT_PUSH_OPTION_0..N-1. Only `run`, `wait`, `follow-up`, `task=TEXT` and
/// `attempts=N` are known; anything else is refused so a typo (`-o wiat`) is not silently ignored.
package struct PushOptions: Sendable, Equatable {
    package var run = false
    package var wait = false
    package var task: String?
    /// Start from the branch's latest result (agent/BRANCH) and continue that run.
    package var followUp = false
    /// Best of N: this many attempts (wins over the task's `attempts:`; the server caps it).
    package var attempts: Int?

    package struct Invalid: Error, CustomStringConvertible, Equatable {
        package let description: String
    }

    package static let maxOptions = 32

    package init() {}

    package init(environment env: [String: String]) throws(Invalid) {
        guard let countText = env["GIT_PUSH_OPTION_COUNT"] else { self.init(); return }
        guard let count = Int(countText), count >= 0 else { throw Invalid(description: "malformed GIT_PUSH_OPTION_COUNT") }
        guard count <= Self.maxOptions else {
            throw Invalid(description: "too many push options (\(count)); patchd takes at most \(Self.maxOptions)")
        }
        try self.init(options: (0..<count).map { env["GIT_PUSH_OPTION_\($0)"] ?? "" })
    }

    package init(options: [String]) throws(Invalid) {
        for option in options {
            if option == "run" {
                run = true
            } else if option == "wait" {
                wait = true
            } else if option == "follow-up" {
                followUp = true
            } else if option.hasPrefix("task=") {
                guard task == nil else { throw Invalid(description: "push option task= given twice; give the whole task in one -o task=\"...\"") }
                task = String(option.dropFirst(5))
            } else if option.hasPrefix("attempts=") {
                let text = option.dropFirst("attempts=".count)
                guard attempts == nil else { throw Invalid(description: "push option attempts= given twice; give it once") }
                guard text.count <= 3, text.allSatisfy({ $0.isASCII && $0.isNumber }), let count = Int(text),
                    (1...TaskFile.maxAttempts).contains(count)
                else {
                    let shown = Terminal.sanitize(String(text.prefix(20)))
                    throw Invalid(
                        description: "push option attempts='\(shown)' must be a whole number from 1 to \(TaskFile.maxAttempts), like -o attempts=3")
                }
                attempts = count
            } else {
                let shown = Terminal.sanitize(String(option.prefix(40)))
                throw Invalid(
                    description:
                        "unknown push option '\(shown)'; patchd knows -o run, -o wait, -o follow-up, -o attempts=N and -o task=\"TEXT\"")
            }
        }
    }
}
