// IntegrationTests: a loopback stand-in for a model API (one of the Python fixtures), started on port 0 with a scripted conversation.
import Foundation
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs `Tests/Fixtures/FIXTURE` with `--script STEPS --log REQUESTS --port 0` plus `keyArguments`,
/// waits for its ready line, and kills its process group when released. The fixtures share
/// this command line and the JSON-lines request log (`requests`).
class LoopbackModelAPI {
    let process: ChildProcess
    let port: Int
    let logPath: String

    /// - Parameters:
    ///   - fixture: the script's file name in Tests/Fixtures (`fake_messages_api.py`).
    ///   - name: a prefix for its files in `dir` (steps, request log, output).
    init(fixture: String, name: String, steps: String, in dir: String, keyArguments: [String]) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/" + fixture).path
        let stepsPath = dir + "/\(name)-steps.json"
        logPath = dir + "/\(name)-requests.jsonl"
        try steps.write(toFile: stepsPath, atomically: true, encoding: .utf8)
        let out = dir + "/\(name).out"
        let child = try startBackground(
            "/usr/bin/python3", [script, "--script", stepsPath, "--log", logPath, "--port", "0"] + keyArguments, outputPath: out)
        process = child
        do { port = try waitForReadyLine(in: out, marker: "listening on 127.0.0.1:", timeout: 20, exited: { child.poll() }) } catch {
            child.signalGroup(SIGKILL)  // no deinit runs for an init that threw
            _ = child.wait(timeout: 5)
            throw error
        }
    }

    /// Every request the stand-in received, one JSON object each (method, path, headers, body, step).
    var requests: [[String: Any]] {
        rawLog.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    var rawLog: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        process.signalGroup(SIGKILL)
        process.wait()
    }
}
