#!/usr/bin/python3
"""A stand-in for the Claude Code CLI, for patchd's claude-code agent tests.

Invoked as `claude -p --output-format stream-json --verbose ... --max-turns N --model=M` with the
prompt on stdin (or as `claude -p TEXT ...`), inside patchd's sandbox. It makes one streaming Messages API call to $ANTHROPIC_BASE_URL
with $ANTHROPIC_API_KEY (patchd's placeholder; patchd's proxy swaps in the real key),
writes the reply to CLAUDE.txt and its environment to env-claude.txt, and prints
stream-json events (system, assistant, result) like the real CLI.
A prompt containing "[calls=N]" makes N calls in a row (one per turn), as a longer session would;
an answer other than 200 ends it with an error result, as the CLI does for a fatal API error.
"""
import re
import json
import os
import sys
import urllib.request


def emit(event):
    print(json.dumps(event), flush=True)


def main():
    args = sys.argv[1:]
    after = args[args.index("-p") + 1] if args.index("-p") + 1 < len(args) else "-"
    prompt = sys.stdin.read() if after.startswith("-") else after
    model = next((a.split("=", 1)[1] for a in args if a.startswith("--model=")), None)
    if model is None:
        model = args[args.index("--model") + 1] if "--model" in args else "claude-sonnet-4-5"
    emit({"type": "system", "subtype": "init", "model": model, "cwd": os.getcwd()})
    body = json.dumps({"model": model, "max_tokens": 1024, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", data=body, method="POST", headers={
        "content-type": "application/json", "anthropic-version": "2023-06-01",
        "x-api-key": os.environ.get("ANTHROPIC_API_KEY", ""),
    })
    asked = re.search(r"\[calls=(\d+)\]", prompt)
    calls = int(asked.group(1)) if asked else 1
    text = ""
    for turn in range(1, calls + 1):
        text = ""
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                for raw in response:
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        data = json.loads(line[5:])
                        if data.get("type") == "content_block_delta" and data["delta"].get("type") == "text_delta":
                            text += data["delta"]["text"]
        except Exception as error:  # noqa: BLE001 - report any failure as the CLI would
            detail = error.read().decode(errors="replace") if hasattr(error, "read") else ""
            emit({"type": "result", "subtype": "error_during_execution", "is_error": True,
                  "result": f"{error} {detail}".strip(), "num_turns": turn})
            return 1
    with open("CLAUDE.txt", "w") as f:
        f.write(text + "\n")
    with open("env-claude.txt", "w") as f:
        f.write("\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())) + "\n")
    emit({"type": "assistant", "message": {"content": [
        {"type": "text", "text": text},
        {"type": "tool_use", "id": "toolu_x", "name": "Write", "input": {"file_path": "CLAUDE.txt"}}]}})
    emit({"type": "result", "subtype": "success", "is_error": False, "result": "Wrote CLAUDE.txt: " + text,
          "num_turns": 2, "total_cost_usd": 0.0123,
          "usage": {"input_tokens": 321, "output_tokens": 45, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
