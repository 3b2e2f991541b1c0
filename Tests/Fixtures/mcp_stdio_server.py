#!/usr/bin/env python3
"""A small real MCP server (stdio transport) for patchd's tests, Python stdlib only.

It follows the MCP specification's stdio transport: newline-delimited JSON-RPC 2.0 on
stdin/stdout, logs on stderr. It answers ``initialize`` (echoing the client's
protocolVersion, capability ``tools``), ``ping``, ``tools/list`` (two pages, joined by
``nextCursor``) and ``tools/call``; notifications get no answer; other methods get
-32601. Tools:

* ``lookup`` {key}: ``lookup(KEY) = VALUE``, plus where it runs (cwd, uid, the
  FIXTURE_WORD environment variable from .mcp.json, whether the network is reachable)
* ``write_note`` {text}: writes ``mcp-note.txt`` in its working directory
* ``fail``: a tool error (``isError: true``)

The tests copy it into the pushed repository and name it in ``.mcp.json``; patchd
starts it inside the run's sandbox.
"""

import json
import os
import socket
import sys

VALUES = {"color": "blue", "shape": "round"}
TOOLS = [
    {"name": "lookup", "description": "Look up a value by key.",
     "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}},
    {"name": "write_note", "description": "Write a note file into the working directory.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    {"name": "fail", "description": "Always fails.", "inputSchema": {"type": "object", "properties": {}}},
]


def network():
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=1).close()
        return "reachable"
    except OSError:
        return "unreachable"


def call(name, args):
    if name == "lookup":
        key = args.get("key", "")
        return ("lookup(%s) = %s; cwd=%s uid=%d FIXTURE_WORD=%s network=%s" % (
            key, VALUES.get(key, "?"), os.getcwd(), os.getuid(), os.environ.get("FIXTURE_WORD", ""), network())), False
    if name == "write_note":
        with open("mcp-note.txt", "w") as f:
            f.write(args.get("text", ""))
        return "wrote mcp-note.txt", False
    if name == "fail":
        return "this tool always fails", True
    raise KeyError(name)


def answer(message):
    method, mid, params = message.get("method"), message.get("id"), message.get("params") or {}
    if mid is None:
        return None  # a notification (notifications/initialized, cancelled, ...)
    if method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                  "capabilities": {"tools": {"listChanged": False}},
                  "serverInfo": {"name": "patchd-fixture", "version": "1.0"}}
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        if params.get("cursor") == "page2":
            result = {"tools": TOOLS[1:]}
        else:
            result = {"tools": TOOLS[:1], "nextCursor": "page2"}
    elif method == "tools/call":
        try:
            text, is_error = call(params.get("name"), params.get("arguments") or {})
        except KeyError:
            return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32602, "message": "unknown tool %s" % params.get("name")}}
        result = {"content": [{"type": "text", "text": text}], "isError": is_error}
    else:
        return {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method not found: %s" % method}}
    return {"jsonrpc": "2.0", "id": mid, "result": result}


def main():
    sys.stderr.write("fixture mcp server ready in %s\n" % os.getcwd())
    sys.stderr.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            out = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
        else:
            out = answer(message)
        if out is not None:
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
