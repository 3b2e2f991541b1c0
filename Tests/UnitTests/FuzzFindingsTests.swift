// UnitTests: inputs found by fuzzing (fuzz/run.sh), each pinned by the behaviour that was wrong.

import Testing

@testable import Agents
@testable import HTTPClient
@testable import Runs

@Suite struct FuzzFindingsTests {
    /// The fuzz corpus file fuzz/corpus/sse/finding-duplicate-block-start: a stream that starts
    /// block 0 twice. The assembler listed the index twice and emitted the tool_use twice.
    @Test func repeatedContentBlockStartGivesOneBlock() throws {
        let start = #"{"index":0,"content_block":{"type":"tool_use","id":"t1","name":"bash","input":{}}}"#
        let stream =
            "event: content_block_start\ndata: \(start)\n\nevent: content_block_start\ndata: \(start)\n\n"
            + "event: message_stop\ndata: {}\n\n"
        var parser = SSEParser()
        let events = parser.feed(Array(stream.utf8)) + parser.finish()
        #expect(events.count == 3)
        var assembler = MessageStreamAssembler()
        for event in events { try assembler.feed(event: event.event, data: event.data) }
        let message = try assembler.finish()
        #expect(message.content == [.toolUse(id: "t1", name: "bash", input: .object([:]))])
    }

    /// A later start for the same index replaces the earlier block (the last one wins) and keeps its place.
    @Test func restartedBlockReplacesTheEarlierOne() throws {
        var assembler = MessageStreamAssembler()
        try assembler.feed(event: "content_block_start", data: #"{"index":0,"content_block":{"type":"text","text":"a"}}"#)
        try assembler.feed(event: "content_block_start", data: #"{"index":1,"content_block":{"type":"text","text":"b"}}"#)
        try assembler.feed(event: "content_block_start", data: #"{"index":0,"content_block":{"type":"text","text":"c"}}"#)
        try assembler.feed(event: "message_stop", data: "{}")
        #expect(try assembler.finish().content == [.text("c"), .text("b")])
    }
}
