#!/usr/bin/env python3
"""Loopback stand-in for the Anthropic Messages API (POST /v1/messages).

It speaks the real wire format -- Server-Sent Events for ``"stream": true``,
a plain JSON message object otherwise, and the real error body shape -- and
answers from a script, one step per accepted request, so tests of patchd's
agent can run without the network.

Usage:

    python3 fake_messages_api.py --script SCRIPT.json --log REQUESTS.jsonl \
        [--port 0] [--key EXPECTED_KEY] [--host 127.0.0.1]

It binds 127.0.0.1 (``--port 0`` picks a free port), prints exactly one line

    fake-messages-api listening on 127.0.0.1:PORT

to stdout, flushes, and serves until killed.  Point the agent's API base URL
at ``http://127.0.0.1:PORT``.

Every request (accepted or not) is appended to ``--log`` as one JSON line
before the answer is sent:

    {"method", "path", "headers" (all, names lower-cased),
     "body" (parsed JSON, or the raw text), "step" (index of the script step
     it consumed, or null)}

Request checks, like the real API (checked in this order; a rejected request
consumes no step):

* anything but ``POST /v1/messages``       -> 404 not_found_error
* no ``x-api-key`` / ``authorization: Bearer`` -> 401 authentication_error
* ``--key`` given and the key differs      -> 401 authentication_error
* no ``anthropic-version`` header          -> 400 invalid_request_error
* body not a JSON object with ``model`` (string), ``max_tokens`` (integer)
  and ``messages`` (non-empty list)        -> 400 invalid_request_error

The script is a JSON list of steps, consumed in order.  When they run out,
every further request gets 500 api_error "fake: no more scripted responses".
Step kinds:

* reply (streamed faithfully: message_start, ping, per block
  content_block_start / content_block_delta... / content_block_stop,
  message_delta, message_stop)::

    {"reply": [{"type": "text", "text": "..."},
               {"type": "tool_use", "id": "toolu_01", "name": "bash",
                "input": {...}}],
     "stop_reason": "end_turn" | "tool_use" | "max_tokens",   # default:
                     # tool_use if a tool_use block is present, else end_turn
     "usage": {"input_tokens": N, "output_tokens": M,
               "cache_read_input_tokens": 0,
               "cache_creation_input_tokens": 0},
     "delay_ms": 0,          # optional pause before each frame
     "chunk_chars": 7}       # optional split size (default text 6, json 7)

  Text is split into several text_delta chunks; tool input is serialized
  compactly and split into input_json_delta chunks mid-token (after an
  initial empty partial_json, as the real API does).

* HTTP error::

    {"error": 529, "type": "overloaded_error", "message": "Overloaded",
     "retry_after": 3, "headers": {...}}
  (type defaults from the status: 400 invalid_request_error, 401
  authentication_error, 403 permission_error, 404 not_found_error, 413
  request_too_large, 429 rate_limit_error, 500 api_error, 529
  overloaded_error.)

* cut stream: a reply step plus ``"truncate_after_events": K`` -- send the
  first K SSE frames, then close the connection (no message_stop).

* error inside the stream::

    {"stream_error": {"type": "overloaded_error", "message": "Overloaded"},
     "after_events": K, "reply": [...]}
  sends the first K frames of the reply (default reply: one text block),
  then an ``event: error`` frame, and ends.

* ``"expect"`` (optional, in any step): checked before the step is answered;
  on a mismatch the answer is 400 invalid_request_error whose message begins
  with "fake: expectation failed" and says what was missing.  Forms:
    "expect": "substring"  or  ["sub1", "sub2"]
    "expect": {"contains": [...], "not_contains": [...],
               "headers": {"x-api-key": "sk-..."}}
  Substrings are looked for in the raw body text and in the body re-serialized
  with Python's json.dumps defaults (", " and ": " separators, key order kept,
  non-ASCII kept), so '"is_error": true' matches '"is_error":true' as sent.

A non-streaming request (``stream`` false or absent) to a reply step gets the
whole message object as JSON.  All answers carry ``request-id`` and
``Connection: close``; streams are ``text/event-stream``, ``cache-control:
no-cache``, written frame by frame (flushed) with no Content-Length, the body
ending when the connection closes.
"""

import argparse
import itertools
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STATUS_FOR_TYPE = {v: k for k, v in ERROR_TYPES.items()}

TEXT_CHUNK = 6
JSON_CHUNK = 7


def chunks(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)]


class Script:
    """Steps consumed in order, shared by all handler threads."""

    def __init__(self, steps):
        self.steps = steps
        self.next = 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            i = self.next
            self.next += 1
        if i < len(self.steps):
            return i, self.steps[i]
        return i, None


class RequestLog:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        open(path, "a").close()

    def append(self, entry):
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()


_ids = itertools.count(1)


def new_id(prefix):
    return "%s%04d%s" % (prefix, next(_ids), uuid.uuid4().hex[:20])


def usage_of(step):
    u = step.get("usage") or {}
    return {
        "input_tokens": int(u.get("input_tokens", 10)),
        "output_tokens": int(u.get("output_tokens", 5)),
        "cache_creation_input_tokens": int(u.get("cache_creation_input_tokens", 0)),
        "cache_read_input_tokens": int(u.get("cache_read_input_tokens", 0)),
    }


def blocks_of(step, default_text=None):
    blocks = step.get("reply")
    if blocks is None:
        blocks = [] if default_text is None else [{"type": "text", "text": default_text}]
    out = []
    for b in blocks:
        if b.get("type") == "tool_use":
            out.append({
                "type": "tool_use",
                "id": b.get("id") or new_id("toolu_fake_"),
                "name": b["name"],
                "input": b.get("input", {}),
            })
        elif b.get("type") == "text":
            out.append({"type": "text", "text": b.get("text", "")})
        else:
            raise ValueError("fake: unsupported block type %r" % (b.get("type"),))
    return out


def stop_reason_of(step, blocks):
    if step.get("stop_reason"):
        return step["stop_reason"]
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def message_object(msg_id, model, blocks, stop_reason, usage):
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def stream_frames(step, model, blocks):
    """The full list of (event, data) frames for a reply step."""
    usage = usage_of(step)
    stop_reason = stop_reason_of(step, blocks)
    text_n = int(step.get("chunk_chars", TEXT_CHUNK))
    json_n = int(step.get("chunk_chars", JSON_CHUNK))
    start_usage = dict(usage)
    start_usage["output_tokens"] = min(1, usage["output_tokens"])
    frames = [
        ("message_start", {
            "type": "message_start",
            "message": message_object(new_id("msg_fake_"), model, [], None, start_usage),
        }),
        ("ping", {"type": "ping"}),
    ]
    for index, b in enumerate(blocks):
        if b["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": c} for c in chunks(b["text"], text_n)]
        else:
            start = {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}
            serialized = json.dumps(b["input"], separators=(",", ":"), ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": c}
                       for c in chunks(serialized, json_n)]
        frames.append(("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": start}))
        for d in deltas:
            frames.append(("content_block_delta", {
                "type": "content_block_delta", "index": index, "delta": d}))
        frames.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    frames.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]},
    }))
    frames.append(("message_stop", {"type": "message_stop"}))
    return frames


def sse(event, data):
    return ("event: %s\ndata: %s\n\n" % (
        event, json.dumps(data, ensure_ascii=False, separators=(",", ":")))).encode("utf-8")


def check_expect(expect, raw_text, body, headers):
    """Return a description of what is missing, or None."""
    if expect is None:
        return None
    if isinstance(expect, str):
        expect = {"contains": [expect]}
    elif isinstance(expect, list):
        expect = {"contains": expect}
    haystacks = [raw_text]
    if body is not None:
        haystacks.append(json.dumps(body, ensure_ascii=False))
    problems = []
    for s in expect.get("contains", []):
        if not any(s in h for h in haystacks):
            problems.append("body lacks `%s`" % s)
    for s in expect.get("not_contains", []):
        if any(s in h for h in haystacks):
            problems.append("body contains `%s`" % s)
    for name, value in (expect.get("headers") or {}).items():
        got = headers.get(name.lower())
        if got != value:
            problems.append("header %s is %s, expected %s" % (
                name.lower(), json.dumps(got), json.dumps(value)))
    if problems:
        return "fake: expectation failed: " + "; ".join(problems)
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-messages-api"
    sys_version = ""

    # Set on the class by main().
    script = None
    log = None
    expected_key = None

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # keep stdout/stderr quiet
        pass

    # ---- plumbing -------------------------------------------------------

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def begin(self, status, content_type, extra_headers=None, length=None):
        self.headers_sent = True
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("request-id", self.request_id)
        for k, v in (extra_headers or {}).items():
            self.send_header(k, str(v))
        if length is not None:
            self.send_header("content-length", str(length))
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_json(self, status, obj, extra_headers=None):
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.begin(status, "application/json", extra_headers, len(data))
        self.wfile.write(data)
        self.wfile.flush()

    def send_error_json(self, status, etype, message, extra_headers=None):
        self.send_json(status, {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": self.request_id,
        }, extra_headers)

    def write_frame(self, event, data, delay_ms):
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        self.wfile.write(sse(event, data))
        self.wfile.flush()

    # ---- request handling ----------------------------------------------

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def handle_any(self):
        self.request_id = new_id("req_fake_")
        raw = self.read_body()
        raw_text = raw.decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = None
        if raw:
            try:
                body = json.loads(raw_text)
            except ValueError:
                body = None
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": body if body is not None else raw_text,
            "step": None,
        }
        self.headers_sent = False
        try:
            self.answer(entry, raw_text, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bad script step: fail loudly, not silently
            sys.stderr.write("fake-messages-api: %r\n" % (e,))
            sys.stderr.flush()
            if not self.headers_sent:
                self.send_error_json(500, "api_error", "fake: %s" % (e,))

    def answer(self, entry, raw_text, body, headers):
        path = self.path.split("?", 1)[0]
        if self.command != "POST" or path != "/v1/messages":
            self.log.append(entry)
            return self.send_error_json(404, "not_found_error", "Not Found")

        key = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            self.log.append(entry)
            return self.send_error_json(401, "authentication_error",
                                        "x-api-key header is required")
        if self.expected_key is not None and key != self.expected_key:
            self.log.append(entry)
            return self.send_error_json(401, "authentication_error", "invalid x-api-key")

        if not headers.get("anthropic-version"):
            self.log.append(entry)
            return self.send_error_json(400, "invalid_request_error",
                                        "anthropic-version: header is required")

        problem = None
        if not isinstance(body, dict):
            problem = "The request body is not valid JSON." if raw_text else \
                "messages: Field required"
        elif not isinstance(body.get("model"), str) or not body["model"]:
            problem = "model: Field required"
        elif not isinstance(body.get("max_tokens"), int) or isinstance(body["max_tokens"], bool):
            problem = "max_tokens: Field required"
        elif not isinstance(body.get("messages"), list) or not body["messages"]:
            problem = "messages: Field required"
        if problem:
            self.log.append(entry)
            return self.send_error_json(400, "invalid_request_error", problem)

        index, step = self.script.take()
        entry["step"] = index if step is not None else None
        self.log.append(entry)
        if step is None:
            return self.send_error_json(500, "api_error", "fake: no more scripted responses")

        missing = check_expect(step.get("expect"), raw_text, body, headers)
        if missing:
            sys.stderr.write("fake-messages-api: step %d: %s\n" % (index, missing))
            sys.stderr.flush()
            return self.send_error_json(400, "invalid_request_error", missing)

        streaming = body.get("stream") is True
        model = body["model"]

        if "error" in step:
            status = int(step["error"])
            etype = step.get("type") or ERROR_TYPES.get(status, "api_error")
            extra = dict(step.get("headers") or {})
            if step.get("retry_after") is not None:
                extra["retry-after"] = step["retry_after"]
            return self.send_error_json(status, etype, step.get("message", etype), extra)

        delay = float(step.get("delay_ms", 0))

        if "stream_error" in step:
            err = step["stream_error"] or {}
            etype = err.get("type", "overloaded_error")
            message = err.get("message", "Overloaded")
            if not streaming:
                return self.send_error_json(STATUS_FOR_TYPE.get(etype, 500), etype, message)
            blocks = blocks_of(step, default_text="Partial answer before the error.")
            frames = stream_frames(step, model, blocks)[:int(step.get("after_events", 0))]
            self.begin_stream()
            for ev, data in frames:
                self.write_frame(ev, data, delay)
            self.write_frame("error", {
                "type": "error", "error": {"type": etype, "message": message},
                "request_id": self.request_id}, delay)
            return

        blocks = blocks_of(step)
        if not streaming:
            msg = message_object(new_id("msg_fake_"), model, blocks,
                                 stop_reason_of(step, blocks), usage_of(step))
            if "truncate_after_events" in step:
                data = json.dumps(msg).encode("utf-8")
                self.begin(200, "application/json", None, len(data))
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                return
            return self.send_json(200, msg)

        frames = stream_frames(step, model, blocks)
        if "truncate_after_events" in step:
            frames = frames[:int(step["truncate_after_events"])]
        self.begin_stream()
        for ev, data in frames:
            self.write_frame(ev, data, delay)

    def begin_stream(self):
        self.begin(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})


def main(argv=None):
    p = argparse.ArgumentParser(description="Scripted stand-in for the Anthropic Messages API.")
    p.add_argument("--script", required=True, help="JSON file: list of steps")
    p.add_argument("--log", required=True, help="JSONL file every request is appended to")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = free port)")
    p.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--key", default=None, help="API key the requests must carry")
    args = p.parse_args(argv)

    with open(args.script, encoding="utf-8") as f:
        steps = json.load(f)
    if not isinstance(steps, list):
        p.error("--script must hold a JSON list of steps")

    Handler.script = Script(steps)
    Handler.log = RequestLog(args.log)
    Handler.expected_key = args.key

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    sys.stdout.write("fake-messages-api listening on %s:%d\n" % (host, port))
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
