#!/usr/bin/env python3
"""Loopback stand-in for OpenAI's Responses API (POST /v1/responses), as the Codex CLI calls it.

It speaks the real wire format -- Server-Sent Events for ``"stream": true`` (response.created,
response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta..., response.function_call_arguments.delta..., *.done,
response.completed with the usage), a plain JSON response object otherwise, and the real error
body ``{"error": {"message", "type", "param", "code"}}`` -- and answers from a script, one step
per accepted request, so tests can run the real Codex CLI without the network.

Usage:

    python3 fake_responses_api.py --script SCRIPT.json --log REQUESTS.jsonl \
        [--port 0] [--key EXPECTED_KEY]

It prints ``fake-responses-api listening on 127.0.0.1:PORT`` and serves until killed. Point a
client's base URL at ``http://127.0.0.1:PORT/v1``. Every request is appended to ``--log`` as one
JSON line ``{"method", "path", "headers" (lower-cased), "body", "step"}``.

Checks, like the real API (a rejected request consumes no step):

* anything but ``POST /v1/responses``             -> 404
* no ``authorization: Bearer KEY`` (or not --key)  -> 401 invalid_api_key
* body not a JSON object with ``model`` and ``input`` -> 400 invalid_request_error

Script steps (a JSON list, consumed in order; past the end every request gets 500):

* reply::

    {"reply": [{"type": "text", "text": "..."},
               {"type": "function_call", "name": "shell", "arguments": {...} or "...",
                "call_id": "call_1"},
               {"type": "custom_tool_call", "name": "exec", "input": "JS source"}],
     "usage": {"input_tokens": N, "output_tokens": M, "cached_tokens": C, "reasoning_tokens": R},
     "delay_ms": 0, "chunk_chars": 6}

  Text is streamed as several response.output_text.delta events and function arguments as
  several response.function_call_arguments.delta events (a custom tool's input as
  response.custom_tool_call_input.delta events), split mid-token.
* HTTP error: ``{"error": 429, "message": "...", "type": "rate_limit_error", "retry_after": 1}``
* cut stream: a reply plus ``"truncate_after_events": K`` (K frames, then the connection closes
  without response.completed).
* ``"expect"`` as in fake_messages_api.py (substrings of the body, headers).
"""

import argparse
import json
import sys
import time
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_messages_api import RequestLog, Script, check_expect, chunks, new_id  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "rate_limit_error", 500: "server_error", 503: "server_error"}


def usage_of(step):
    u = step.get("usage") or {}
    inp, out = int(u.get("input_tokens", 10)), int(u.get("output_tokens", 5))
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": int(u.get("cached_tokens", 0))},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": int(u.get("reasoning_tokens", 0))},
        "total_tokens": inp + out,
    }


def items_of(step):
    items = []
    for b in step.get("reply") or []:
        if b.get("type") == "text":
            items.append({"id": new_id("msg_fake_"), "type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "annotations": [], "text": b.get("text", "")}]})
        elif b.get("type") == "function_call":
            args = b.get("arguments", {})
            if not isinstance(args, str):
                args = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
            items.append({"id": new_id("fc_fake_"), "type": "function_call", "status": "completed",
                          "arguments": args, "call_id": b.get("call_id") or new_id("call_fake_"), "name": b["name"]})
        elif b.get("type") == "custom_tool_call":
            items.append({"id": new_id("ctc_fake_"), "type": "custom_tool_call", "status": "completed",
                          "call_id": b.get("call_id") or new_id("call_fake_"), "name": b["name"], "input": b.get("input", "")})
        else:
            raise ValueError("fake: unsupported reply item %r" % (b.get("type"),))
    return items


def response_object(resp_id, model, status, output, usage):
    return {"id": resp_id, "object": "response", "created_at": int(time.time()), "status": status,
            "error": None, "incomplete_details": None, "model": model, "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "usage": usage}


def stream_frames(step, model, items):
    n = int(step.get("chunk_chars", 6))
    resp_id = new_id("resp_fake_")
    frames = [("response.created", {"response": response_object(resp_id, model, "in_progress", [], None)}),
              ("response.in_progress", {"response": response_object(resp_id, model, "in_progress", [], None)})]
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            frames.append(("response.output_item.added", {"output_index": index, "item": dict(item, status="in_progress", content=[])}))
            part = {"type": "output_text", "annotations": [], "text": ""}
            frames.append(("response.content_part.added", {"item_id": item["id"], "output_index": index, "content_index": 0, "part": part}))
            for c in chunks(text, n):
                frames.append(("response.output_text.delta", {"item_id": item["id"], "output_index": index, "content_index": 0,
                                                              "delta": c, "logprobs": []}))
            frames.append(("response.output_text.done", {"item_id": item["id"], "output_index": index, "content_index": 0,
                                                         "text": text, "logprobs": []}))
            frames.append(("response.content_part.done", {"item_id": item["id"], "output_index": index, "content_index": 0,
                                                          "part": dict(part, text=text)}))
        elif item["type"] == "custom_tool_call":
            frames.append(("response.output_item.added", {"output_index": index,
                                                          "item": dict(item, status="in_progress", input="")}))
            for c in chunks(item["input"], n):
                frames.append(("response.custom_tool_call_input.delta", {"item_id": item["id"], "output_index": index, "delta": c}))
            frames.append(("response.custom_tool_call_input.done", {"item_id": item["id"], "output_index": index,
                                                                   "input": item["input"]}))
        else:
            frames.append(("response.output_item.added", {"output_index": index,
                                                          "item": dict(item, status="in_progress", arguments="")}))
            for c in chunks(item["arguments"], n):
                frames.append(("response.function_call_arguments.delta", {"item_id": item["id"], "output_index": index, "delta": c}))
            frames.append(("response.function_call_arguments.done", {"item_id": item["id"], "output_index": index,
                                                                     "arguments": item["arguments"]}))
        frames.append(("response.output_item.done", {"output_index": index, "item": item}))
    frames.append(("response.completed", {"response": response_object(resp_id, model, "completed", items, usage_of(step))}))
    for seq, (event, data) in enumerate(frames):
        data["type"] = event
        data["sequence_number"] = seq
    return frames


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-responses-api"
    sys_version = ""
    script = None
    log = None
    expected_key = None

    def log_message(self, fmt, *args):
        pass

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

    def begin(self, status, content_type, extra=None, length=None):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("x-request-id", self.request_id)
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        if length is not None:
            self.send_header("content-length", str(length))
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.begin(status, "application/json", extra, len(data))
        self.wfile.write(data)
        self.wfile.flush()

    def send_error_json(self, status, etype, message, code=None, extra=None):
        self.send_json(status, {"error": {"message": message, "type": etype, "param": None, "code": code}}, extra)

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        self.request_id = new_id("req_fake_")
        raw = self.read_body()
        raw_text = raw.decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw_text) if raw else None
        except ValueError:
            body = None
        entry = {"method": self.command, "path": self.path, "headers": headers,
                 "body": body if body is not None else raw_text, "step": None}
        try:
            self.answer(entry, raw_text, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, entry, raw_text, body, headers):
        path = self.path.split("?", 1)[0]
        if self.command != "POST" or path != "/v1/responses":
            self.log.append(entry)
            return self.send_error_json(404, "invalid_request_error", "Invalid URL (%s %s)" % (self.command, path))
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key or (self.expected_key is not None and key != self.expected_key):
            self.log.append(entry)
            return self.send_error_json(401, "invalid_request_error", "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or "input" not in body:
            self.log.append(entry)
            return self.send_error_json(400, "invalid_request_error", "Missing required parameter: 'model' or 'input'.")
        index, step = self.script.take()
        entry["step"] = index if step is not None else None
        self.log.append(entry)
        if step is None:
            return self.send_error_json(500, "server_error", "fake: no more scripted responses")
        missing = check_expect(step.get("expect"), raw_text, body, headers)
        if missing:
            sys.stderr.write("fake-responses-api: step %d: %s\n" % (index, missing))
            return self.send_error_json(400, "invalid_request_error", missing)
        if "error" in step:
            status = int(step["error"])
            extra = {"retry-after": step["retry_after"]} if step.get("retry_after") is not None else None
            return self.send_error_json(status, step.get("type") or ERROR_TYPES.get(status, "server_error"),
                                        step.get("message", "error"), step.get("code"), extra)
        items = items_of(step)
        if body.get("stream") is not True:
            return self.send_json(200, response_object(new_id("resp_fake_"), body["model"], "completed", items, usage_of(step)))
        frames = stream_frames(step, body["model"], items)
        if "truncate_after_events" in step:
            frames = frames[:int(step["truncate_after_events"])]
        self.begin(200, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
        delay = float(step.get("delay_ms", 0))
        for event, data in frames:
            if delay:
                time.sleep(delay / 1000.0)
            self.wfile.write(("event: %s\ndata: %s\n\n" % (event, json.dumps(data, ensure_ascii=False, separators=(",", ":")))).encode())
            self.wfile.flush()


def main(argv=None):
    p = argparse.ArgumentParser(description="Scripted stand-in for OpenAI's Responses API.")
    p.add_argument("--script", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--key", default=None)
    args = p.parse_args(argv)
    with open(args.script, encoding="utf-8") as f:
        steps = json.load(f)
    Handler.script = Script(steps)
    Handler.log = RequestLog(args.log)
    Handler.expected_key = args.key
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stdout.write("fake-responses-api listening on 127.0.0.1:%d\n" % server.server_address[1])
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
