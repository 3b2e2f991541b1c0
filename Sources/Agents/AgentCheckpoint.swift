// Agents: the checkpoint seam: where an agent saves its state after each turn, and the state a resumed run starts from.

package import Foundation

/// Saves an agent's state after a turn (the executor's `RunCheckpointer`). Called on the run's
/// thread between turns, never while a tool runs, so the workspace it records matches `conversation`.
package protocol AgentCheckpointer: Sendable {
    /// With `workspace`, records the workspace as a checkpoint commit when it differs from the last
    /// one (a turn that changed no file adds none); then stores `conversation` (the agent's own
    /// JSON) with the checkpoint it matches. Never throws: a failed checkpoint is logged and the
    /// run goes on (it loses only what a crash would have lost anyway).
    func save(conversation: Data?, turns: Int, workspace: Bool)
}

/// What a run continues from instead of the task alone. The workspace already holds the work.
package struct AgentResume: Sendable {
    package enum Reason: Sendable, Equatable {
        /// The server stopped (a crash, kill -9, OOM) while this same run worked: its budgets go on.
        case interrupted
        /// `run resume`: a new run, with new budgets, after `run` stopped (`stopped` says how).
        case continued(run: Int64, stopped: String, instructions: String?)
    }

    package var reason: Reason
    /// The agent's saved conversation (nil: none was saved; the agent starts from the task and a note).
    package var conversation: Data?

    package init(reason: Reason, conversation: Data?) {
        self.reason = reason
        self.conversation = conversation
    }

    /// What the agent is told when it goes on: why it stopped, that the workspace holds its work
    /// and the shell is new, and the user's instructions.
    package var note: String {
        switch reason {
        case .interrupted:
            return """
                patchd: the server restarted while you worked. The workspace is as it was after your last tool call, \
                but the shell is new: the working directory, variables, background processes and files outside the \
                workspace are gone, and the task's setup ran again. Continue the task.
                """
        case .continued(let run, let stopped, let instructions):
            var text = """
                patchd: this continues run \(run), which stopped (\(stopped)). The workspace holds the work so far; the \
                shell is new (setup ran again).
                """
            if let instructions, !instructions.isEmpty {
                text += "\nThe user adds:\n\(instructions)"
            } else {
                text += " Continue the task."
            }
            return text
        }
    }
}
