#!/usr/bin/env python3
"""Loopback stand-in for the OpenAI Chat Completions API (POST /v1/chat/completions).

It speaks the wire format OpenAI and OpenAI-compatible servers (vLLM, Ollama,
llama.cpp's server, OpenRouter, LiteLLM) send -- Server-Sent Events of
``chat.completion.chunk`` objects ending with ``data: [DONE]`` for
``"stream": true``, a ``chat.completion`` object otherwise, the real error body
``{"error": {"message", "type", "param", "code"}}`` -- and answers from a
script, one step per accepted request.

Usage:

    python3 fake_chat_completions_api.py --script SCRIPT.json --log REQUESTS.jsonl \
        [--port 0] [--key EXPECTED_KEY | --no-key]

It prints ``fake-chat-completions-api listening on 127.0.0.1:PORT`` and serves
until killed.  The base URL is ``http://127.0.0.1:PORT/v1``.  Every request is
appended to ``--log`` as one JSON line ``{"method", "path", "headers", "body",
"step"}`` before it is answered.

Request checks (a rejected request uses up no step), as the real API makes them:

* anything but ``POST /v1/chat/completions``       -> 404
* ``--key``: ``authorization: Bearer KEY`` required -> 401 invalid_api_key
* ``--no-key`` (a local server): an Authorization header is refused (400), so
  a test proves none was sent
* the body: ``model`` (string), ``messages`` (non-empty list of system,
  developer, user, assistant, tool messages); ``stream_options`` only with
  ``stream: true``; each ``tools[]`` entry ``{"type": "function", "function":
  {"name", "parameters"}}``; an assistant message with ``tool_calls`` must be
  followed by one ``role: tool`` message per call id, and a tool message must
  answer such a call                                 -> 400 invalid_request_error

Steps (JSON list, in order; when they run out: 500 "fake: no more scripted
responses"):

* reply::

    {"reply": [{"type": "text", "text": "..."},
               {"type": "tool_call", "id": "call_1", "name": "bash",
                "arguments": {...} or "raw text"}],
     "finish_reason": "stop" | "tool_calls" | "length",  # default from the reply
     "usage": {"prompt_tokens": N, "completion_tokens": M, "cached_tokens": C},
     "chunk_chars": 7,        # the size of text and argument pieces
     "interleave": false,     # true: pieces of parallel calls alternate
     "truncate_after_chunks": K}   # send K chunks, then close (no [DONE])

  Streamed as real servers do: a first chunk with ``delta.role``; text as
  ``delta.content`` pieces; each tool call's first piece carries ``index``,
  ``id``, ``type`` and ``function.name`` with empty ``arguments``, later pieces
  only ``index`` and ``function.arguments`` fragments; a chunk with
  ``finish_reason``; with ``stream_options.include_usage`` every chunk carries
  ``"usage": null`` and a last chunk has ``choices: []`` and the usage
  (``prompt_tokens_details.cached_tokens``); then ``data: [DONE]``.

* HTTP error: ``{"error": 429, "message": "...", "type": "...", "retry_after": 1}``
* ``"expect"`` in any step: ``"sub"``, ``["sub", ...]`` or ``{"contains": [...],
  "not_contains": [...]}`` checked against the raw body and the body as
  ``json.dumps`` writes it; a mismatch is 400 "fake: expectation failed: ...".
"""

import argparse
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
_ids = itertools.count(1)


def chunks(s, n):
    return [s[i:i + n] for i in range(0, len(s), n)] or [""]


def check_expect(expect, raw_text, body):
    if expect is None:
        return None
    if isinstance(expect, str):
        expect = {"contains": [expect]}
    elif isinstance(expect, list):
        expect = {"contains": expect}
    hay = [raw_text] + ([json.dumps(body, ensure_ascii=False)] if body is not None else [])
    problems = ["body lacks `%s`" % s for s in expect.get("contains", []) if not any(s in h for h in hay)]
    problems += ["body contains `%s`" % s for s in expect.get("not_contains", []) if any(s in h for h in hay)]
    return "fake: expectation failed: " + "; ".join(problems) if problems else None


def check_body(body):
    """What the real API would refuse in the request body, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    for i, tool in enumerate(body.get("tools") or []):
        f = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(f, dict) \
                or not isinstance(f.get("name"), str) or not isinstance(f.get("parameters", {}), dict):
            return "Invalid 'tools[%d]': expected {type: function, function: {name, parameters}}" % i
    pending = set()
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return "Invalid value for 'messages[%d].role': %r" % (i, role)
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls' (messages[%d])." % i)
            pending.discard(m["tool_call_id"])
            if not isinstance(m.get("content"), str):
                return "messages[%d].content must be a string" % i
            continue
        if pending:
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                    "'tool_call_id'. The following tool_call_ids did not have response messages: %s"
                    % ", ".join(sorted(pending)))
        if role == "assistant":
            for call in m.get("tool_calls") or []:
                args = (call.get("function") or {}).get("arguments")
                if not isinstance(args, str):
                    return "messages[%d].tool_calls[].function.arguments must be a string" % i
                pending.add(call.get("id"))
            if m.get("content") is None and not m.get("tool_calls"):
                return "messages[%d]: an assistant message needs content or tool_calls" % i
        elif not isinstance(m.get("content"), (str, list)):
            return "messages[%d].content must be a string" % i
    if pending:
        return "tool_call_ids without response messages: %s" % ", ".join(sorted(pending))
    return None


def reply_parts(step):
    text, calls = "", []
    for b in step.get("reply") or []:
        if b.get("type") == "text":
            text += b.get("text", "")
        elif b.get("type") == "tool_call":
            args = b.get("arguments", {})
            if not isinstance(args, str):
                args = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
            calls.append({"id": b.get("id") or "call_fake_%d" % next(_ids), "name": b["name"], "arguments": args})
        else:
            raise ValueError("fake: unsupported reply item %r" % (b.get("type"),))
    finish = step.get("finish_reason") or ("tool_calls" if calls else "stop")
    u = step.get("usage") or {}
    cached = int(u.get("cached_tokens", 0))
    prompt, completion = int(u.get("prompt_tokens", 10)), int(u.get("completion_tokens", 5))
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
             "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
    return text, calls, finish, usage


def stream_chunks(step, model, include_usage):
    text, calls, finish, usage = reply_parts(step)
    n = int(step.get("chunk_chars", 7))
    base = {"id": "chatcmpl-fake%d" % next(_ids), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake"}

    def chunk(delta, finish_reason=None):
        c = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if include_usage:
            c["usage"] = None
        return c

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if text:
        out += [chunk({"content": piece}) for piece in chunks(text, n)]
    per_call = []
    for i, call in enumerate(calls):
        first = {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                 "function": {"name": call["name"], "arguments": ""}}]}
        pieces = [{"tool_calls": [{"index": i, "function": {"arguments": p}}]} for p in chunks(call["arguments"], n)]
        per_call.append([first] + pieces)
    if step.get("interleave"):
        for group in itertools.zip_longest(*per_call):
            out += [chunk(d) for d in group if d is not None]
    else:
        for deltas in per_call:
            out += [chunk(d) for d in deltas]
    out.append(chunk({}, finish))
    if include_usage:
        out.append(dict(base, choices=[], usage=usage))
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script = None
    log_path = None
    lock = threading.Lock()
    next_step = 0
    key = None
    no_key = False

    def log_message(self, fmt, *args):
        pass

    def log_entry(self, entry):
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def error(self, status, message, etype=None, code=None, headers=None):
        self.send_json(status, {"error": {"message": message, "type": etype or ERROR_TYPES.get(status, "api_error"),
                                          "param": None, "code": code}}, headers)

    def do_GET(self):
        self.log_entry({"method": "GET", "path": self.path, "headers": {}, "body": None, "step": None})
        self.error(404, "Not found")

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n).decode("utf-8", errors="replace") if n else ""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry = {"method": "POST", "path": self.path, "headers": headers, "body": body if body is not None else raw, "step": None}
        try:
            self.answer(entry, raw, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def answer(self, entry, raw, body, headers):
        if self.path.split("?")[0] != "/v1/chat/completions":
            self.log_entry(entry)
            return self.error(404, "Unknown request URL: POST %s" % self.path)
        auth = headers.get("authorization")
        if self.no_key and auth is not None:
            self.log_entry(entry)
            return self.error(400, "fake: this local server expects no Authorization header")
        if self.key is not None and auth != "Bearer " + self.key:
            self.log_entry(entry)
            return self.error(401, "Incorrect API key provided.", code="invalid_api_key")
        problem = check_body(body)
        if problem:
            self.log_entry(entry)
            return self.error(400, problem)
        with self.lock:
            index = Handler.next_step
            Handler.next_step += 1
        entry["step"] = index
        self.log_entry(entry)
        if index >= len(self.script):
            return self.error(500, "fake: no more scripted responses")
        step = self.script[index]
        problem = check_expect(step.get("expect"), raw, body)
        if problem:
            return self.error(400, problem)
        if isinstance(step.get("error"), int):
            extra = {"retry-after": step["retry_after"]} if "retry_after" in step else None
            return self.error(step["error"], step.get("message", "fake error"), step.get("type"), headers=extra)
        model = body["model"]
        if body.get("stream") is not True:
            text, calls, finish, usage = reply_parts(step)
            message = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = [{"id": c["id"], "type": "function",
                                          "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
            return self.send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                        "usage": usage})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = stream_chunks(step, model, include_usage)
        cut = step.get("truncate_after_chunks")
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for i, frame in enumerate(frames):
            if cut is not None and i >= cut:
                self.wfile.flush()
                return
            self.wfile.write(("data: %s\n\n" % json.dumps(frame, separators=(",", ":"))).encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key")
    ap.add_argument("--no-key", action="store_true")
    args = ap.parse_args()
    with open(args.script, encoding="utf-8") as f:
        Handler.script = json.load(f)
    Handler.log_path = args.log
    Handler.key = args.key
    Handler.no_key = args.no_key
    open(args.log, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("fake-chat-completions-api listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
