// PatchdFuzz: the fuzz targets, one function per parser that takes hostile input.
// Each takes raw bytes and must never crash, hang or trip a sanitizer, whatever the bytes.
// Built two ways: with -DFUZZING as a libFuzzer binary (FuzzEntry.swift), and plainly as
// `patchd-fuzz replay TARGET DIR...`, the corpus regression runner (Replay.swift).

import Agents
import HTTPClient
import PatchdCommands
import PatchdCore
import PatchdServer
import Runs

enum FuzzTargets {
    static let names = ["taskfile", "words", "pushoptions", "sse"]

    /// Runs `bytes` through the named target; false if the name is unknown.
    static func run(_ name: String, _ bytes: [UInt8]) -> Bool {
        switch name {
        case "taskfile": taskFile(bytes)
        case "words": commandWords(bytes)
        case "pushoptions": pushOptions(bytes)
        case "sse": sse(bytes)
        default: return false
        }
        return true
    }

    /// First byte: bit 0 picks `fromText` over `parse`, the rest picks the default agent
    /// (and, for `fromText`, the explicit agent or none). The other bytes are the file.
    static func taskFile(_ bytes: [UInt8]) {
        guard let mode = bytes.first else { return }
        let input = Array(bytes.dropFirst())
        let agents = AgentKind.allCases
        let defaultAgent = agents[Int(mode >> 1) % agents.count]
        if mode & 1 == 0 {
            if let spec = try? TaskFile.parse(input, defaultAgent: defaultAgent) {
                _ = spec.title
            }
        } else {
            let pick = Int(mode >> 4) % (agents.count + 1)
            let agent = pick == agents.count ? nil : agents[pick]
            if let spec = try? TaskFile.fromText(
                String(decoding: input, as: UTF8.self), agent: agent,
                defaultAgent: defaultAgent)
            {
                _ = spec.title
            }
        }
    }

    /// The bytes (as UTF-8, invalid bytes replaced) are an SSH exec string.
    static func commandWords(_ bytes: [UInt8]) {
        guard let words = try? CommandWords.split(String(decoding: bytes, as: UTF8.self)) else { return }
        // What split promises about the words it returns.
        precondition(!words.isEmpty, "split returned no words")
        for word in words {
            precondition(word.utf8.count <= CommandWords.maxWordBytes, "a word over maxWordBytes")
        }
    }

    /// The bytes split at NUL are the push options (as git passes them, one per variable).
    static func pushOptions(_ bytes: [UInt8]) {
        let options = bytes.split(separator: 0, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        if let parsed = try? PushOptions(options: options) {
            precondition(parsed.run == options.contains("run"))
        }
    }

    /// First byte seeds the chunk sizes; the rest is a response body. It is parsed twice, whole
    /// and in chunks, which must give the same events (a chunk may end anywhere); the events
    /// then go through the Messages API stream assembler, as in the real pipeline.
    static func sse(_ bytes: [UInt8]) {
        guard let seed = bytes.first else { return }
        let body = Array(bytes.dropFirst())

        var whole = SSEParser()
        let events = whole.feed(body) + whole.finish()

        var chunked = SSEParser()
        var chunkedEvents: [SSEEvent] = []
        var state = UInt32(seed) &+ 1
        var index = 0
        while index < body.count {
            state = state &* 1_103_515_245 &+ 12345
            let size = min(body.count - index, Int((state >> 16) % 17))
            chunkedEvents += chunked.feed(Array(body[index..<(index + size)]))
            index += size
        }
        chunkedEvents += chunked.feed([])
        chunkedEvents += chunked.finish()
        precondition(events == chunkedEvents, "chunking changed the events")
        precondition(whole.retry == chunked.retry, "chunking changed retry")

        var assembler = MessageStreamAssembler()
        assembler.onText = { _ in }
        var startedBlocks = Set<Int>()
        for event in events {
            do { try assembler.feed(event: event.event, data: event.data) } catch { return }
            if event.event == "content_block_start", let index = JSONValue.parse(event.data)?["index"]?.int {
                startedBlocks.insert(index)
            }
        }
        if let message = try? assembler.finish() {
            _ = message.text
            // One content block per block index, however often the stream (re)starts one.
            precondition(message.content.count <= startedBlocks.count, "a content block came out twice")
        }
    }
}
