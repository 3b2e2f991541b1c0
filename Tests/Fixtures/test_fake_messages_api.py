"""Self-test for fake_messages_api.py (stdlib only).

    cd <repo> && python3 -m unittest Tests/Fixtures/test_fake_messages_api.py -v
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_messages_api.py")
KEY = "sk-ant-test-key-123"

TOOL_INPUT = {"command": "ls -la && echo \"done\" | tr a-z A-Z",
              "nested": {"list": [1, 2.5, None, True], "ünïcode": "✓"}}


def parse_sse(raw):
    """Return [(event, data_obj)] and check every frame is `event: X\\ndata: JSON\\n\\n`."""
    text = raw.decode("utf-8")
    frames = []
    parts = text.split("\n\n")
    assert parts[-1] == "", "stream does not end with a blank line: %r" % text[-80:]
    for part in parts[:-1]:
        lines = part.split("\n")
        assert len(lines) == 2, "bad frame %r" % part
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), part
        event = lines[0][len("event: "):]
        data = json.loads(lines[1][len("data: "):])
        assert data["type"] == event, (event, data)
        frames.append((event, data))
    return frames


class FakeMessagesAPITest(unittest.TestCase):

    def start(self, steps, key=KEY):
        self.tmp = tempfile.TemporaryDirectory()
        script = os.path.join(self.tmp.name, "script.json")
        self.log_path = os.path.join(self.tmp.name, "requests.jsonl")
        with open(script, "w") as f:
            json.dump(steps, f)
        cmd = [sys.executable, FAKE, "--script", script, "--log", self.log_path, "--port", "0"]
        if key is not None:
            cmd += ["--key", key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        prefix = "fake-messages-api listening on 127.0.0.1:"
        self.assertTrue(line.startswith(prefix) and line.endswith("\n"), line)
        self.port = int(line[len(prefix):])

    def tearDown(self):
        proc = getattr(self, "proc", None)
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        if getattr(self, "tmp", None) is not None:
            self.tmp.cleanup()

    def request(self, body, headers=None, method="POST", path="/v1/messages", key=KEY):
        h = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if key is not None:
            h["x-api-key"] = key
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = json.dumps(body).encode() if not isinstance(body, (bytes, type(None))) else body
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp, payload

    @staticmethod
    def body(stream=True, **extra):
        b = {"model": "claude-test-1", "max_tokens": 1024, "stream": stream,
             "system": "You are patchd's agent.",
             "messages": [{"role": "user", "content": "fix the bug"}]}
        b.update(extra)
        return b

    def log_entries(self):
        with open(self.log_path) as f:
            return [json.loads(line) for line in f]

    def reassemble(self, frames):
        """Rebuild the message the way a client does; also checks the event order."""
        names = [e for e, _ in frames]
        self.assertEqual(names[0], "message_start")
        self.assertEqual(names[1], "ping")
        self.assertEqual(names[-2:], ["message_delta", "message_stop"])
        msg = frames[0][1]["message"]
        for k in ("id", "type", "role", "content", "model", "stop_reason", "usage"):
            self.assertIn(k, msg)
        self.assertEqual((msg["type"], msg["role"], msg["content"], msg["stop_reason"]),
                         ("message", "assistant", [], None))
        self.assertEqual(set(msg["usage"]), {"input_tokens", "output_tokens",
                                             "cache_creation_input_tokens",
                                             "cache_read_input_tokens"})
        blocks, partial, open_index = [], {}, None
        for event, data in frames[2:-2]:
            if event == "content_block_start":
                self.assertIsNone(open_index)
                open_index = data["index"]
                self.assertEqual(open_index, len(blocks))
                blocks.append(dict(data["content_block"]))
                partial[open_index] = ""
            elif event == "content_block_delta":
                self.assertEqual(data["index"], open_index)
                d = data["delta"]
                if d["type"] == "text_delta":
                    blocks[open_index]["text"] += d["text"]
                else:
                    self.assertEqual(d["type"], "input_json_delta")
                    partial[open_index] += d["partial_json"]
            elif event == "content_block_stop":
                self.assertEqual(data["index"], open_index)
                if blocks[open_index]["type"] == "tool_use":
                    blocks[open_index]["input"] = json.loads(partial[open_index])
                open_index = None
            else:
                self.fail("unexpected event %s" % event)
        self.assertIsNone(open_index)
        delta = frames[-2][1]
        self.assertIsNone(delta["delta"]["stop_sequence"])
        return msg, blocks, delta

    # ------------------------------------------------------------------

    def test_tool_use_then_text(self):
        self.start([
            {"reply": [{"type": "text", "text": "Let me look at the files first."},
                       {"type": "tool_use", "id": "toolu_01", "name": "bash", "input": TOOL_INPUT}],
             "stop_reason": "tool_use",
             "usage": {"input_tokens": 120, "output_tokens": 40,
                       "cache_read_input_tokens": 7, "cache_creation_input_tokens": 3}},
            {"reply": [{"type": "text", "text": "All done."}], "stop_reason": "end_turn",
             "expect": {"contains": ['"tool_use_id": "toolu_01"', '"is_error": true'],
                        "headers": {"x-api-key": KEY}}},
        ])
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type").split(";")[0], "text/event-stream")
        self.assertEqual(resp.getheader("cache-control"), "no-cache")
        self.assertTrue(resp.getheader("request-id"))
        self.assertIsNone(resp.getheader("content-length"))
        frames = parse_sse(raw)
        msg, blocks, delta = self.reassemble(frames)
        self.assertEqual(msg["model"], "claude-test-1")
        self.assertEqual(msg["usage"]["input_tokens"], 120)
        self.assertEqual(msg["usage"]["cache_read_input_tokens"], 7)
        self.assertEqual(blocks[0], {"type": "text", "text": "Let me look at the files first."})
        self.assertEqual(blocks[1], {"type": "tool_use", "id": "toolu_01", "name": "bash",
                                     "input": TOOL_INPUT})
        self.assertEqual(delta["delta"]["stop_reason"], "tool_use")
        self.assertEqual(delta["usage"], {"output_tokens": 40})
        text_deltas = [d for e, d in frames if e == "content_block_delta" and d["index"] == 0]
        json_deltas = [d["delta"]["partial_json"] for e, d in frames
                       if e == "content_block_delta" and d["index"] == 1]
        self.assertGreater(len(text_deltas), 2)
        self.assertGreater(len(json_deltas), 3)
        for piece in json_deltas:  # no chunk is valid JSON on its own
            with self.assertRaises(ValueError):
                json.loads(piece)

        # Second turn carries the tool result; sent compactly ("is_error":true),
        # it still meets the step's expectation '"is_error": true'.
        follow_up = self.body(messages=[
            {"role": "user", "content": "fix the bug"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                          "content": "exit 1", "is_error": True}]}])
        resp, raw = self.request(json.dumps(follow_up, separators=(",", ":")).encode())
        self.assertEqual(resp.status, 200, raw)
        msg, blocks, delta = self.reassemble(parse_sse(raw))
        self.assertEqual(blocks, [{"type": "text", "text": "All done."}])
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")

    def test_expect_mismatch_is_400(self):
        self.start([{"reply": [{"type": "text", "text": "x"}],
                     "expect": ['"is_error": true']}])
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 400)
        err = json.loads(raw)
        self.assertEqual(err["error"]["type"], "invalid_request_error")
        self.assertIn('"is_error": true', err["error"]["message"])

    def test_overloaded_with_retry_after(self):
        self.start([{"error": 529, "type": "overloaded_error", "message": "Overloaded",
                     "retry_after": 2},
                    {"error": 429, "message": "slow down", "retry_after": 1}])
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 529)
        self.assertEqual(resp.getheader("retry-after"), "2")
        self.assertEqual(resp.getheader("content-type"), "application/json")
        err = json.loads(raw)
        self.assertEqual(err["type"], "error")
        self.assertEqual(err["error"], {"type": "overloaded_error", "message": "Overloaded"})
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 429)
        self.assertEqual(json.loads(raw)["error"]["type"], "rate_limit_error")

    def test_wrong_key_and_protocol_checks(self):
        self.start([{"reply": [{"type": "text", "text": "ok"}]}])
        resp, raw = self.request(self.body(), key="sk-wrong")
        self.assertEqual(resp.status, 401)
        self.assertEqual(json.loads(raw)["error"]["type"], "authentication_error")
        resp, raw = self.request(self.body(), key=None)
        self.assertEqual(resp.status, 401)
        resp, raw = self.request(self.body(), headers={"anthropic-version": None})
        self.assertEqual(resp.status, 400)
        self.assertIn("anthropic-version", json.loads(raw)["error"]["message"])
        resp, raw = self.request({"model": "m", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(resp.status, 400)
        resp, raw = self.request(b"not json")
        self.assertEqual(resp.status, 400)
        resp, raw = self.request(None, method="GET", path="/v1/models")
        self.assertEqual(resp.status, 404)
        self.assertEqual(json.loads(raw)["error"]["type"], "not_found_error")
        # Bearer auth works; rejected requests consumed no step.
        resp, raw = self.request(self.body(stream=False), key=None,
                                 headers={"authorization": "Bearer " + KEY})
        self.assertEqual(resp.status, 200)
        msg = json.loads(raw)
        self.assertEqual(msg["content"], [{"type": "text", "text": "ok"}])
        self.assertEqual(msg["stop_reason"], "end_turn")
        self.assertEqual(msg["type"], "message")

    def test_truncate_after_events(self):
        self.start([{"reply": [{"type": "text", "text": "This answer is cut short."}],
                     "truncate_after_events": 4}])
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 200)
        frames = parse_sse(raw)
        self.assertEqual([e for e, _ in frames],
                         ["message_start", "ping", "content_block_start", "content_block_delta"])

    def test_stream_error_event(self):
        self.start([{"stream_error": {"type": "overloaded_error", "message": "Overloaded"},
                     "after_events": 3}])
        resp, raw = self.request(self.body())
        frames = parse_sse(raw)
        self.assertEqual([e for e, _ in frames],
                         ["message_start", "ping", "content_block_start", "error"])
        self.assertEqual(frames[-1][1]["error"],
                         {"type": "overloaded_error", "message": "Overloaded"})

    def test_request_log(self):
        self.start([{"reply": [{"type": "text", "text": "hi"}]}])
        self.request(self.body(), headers={"X-Custom": "Yes"})
        self.request(b"raw text", method="POST", path="/nope")
        entries = self.log_entries()
        self.assertEqual(len(entries), 2)
        first = entries[0]
        self.assertEqual((first["method"], first["path"], first["step"]),
                         ("POST", "/v1/messages", 0))
        self.assertEqual(first["headers"]["x-api-key"], KEY)
        self.assertEqual(first["headers"]["anthropic-version"], "2023-06-01")
        self.assertEqual(first["headers"]["x-custom"], "Yes")
        self.assertEqual(first["body"], self.body())
        self.assertEqual(entries[1]["body"], "raw text")
        self.assertIsNone(entries[1]["step"])

    def test_steps_exhausted(self):
        self.start([{"reply": [{"type": "text", "text": "only one"}]}])
        self.assertEqual(self.request(self.body())[0].status, 200)
        resp, raw = self.request(self.body())
        self.assertEqual(resp.status, 500)
        err = json.loads(raw)
        self.assertEqual(err["error"], {"type": "api_error",
                                        "message": "fake: no more scripted responses"})

    def test_frames_arrive_incrementally(self):
        """The first frame is readable before the (delayed) rest of the stream."""
        self.start([{"reply": [{"type": "text", "text": "slow text here"}], "delay_ms": 150}])
        data = json.dumps(self.body()).encode()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY.encode() +
                  b"\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
                  b"content-length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
        got = b""
        while b"event: message_start" not in got:
            chunk = s.recv(4096)
            self.assertTrue(chunk)
            got += chunk
        self.assertNotIn(b"message_stop", got)
        self.assertIn(b"HTTP/1.1 200", got)
        self.assertIn(b"onnection: close", got)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertTrue(got.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))


if __name__ == "__main__":
    unittest.main()
