#!/usr/bin/env bash
# Measures the cost of a checkpoint per turn of the builtin agent on a 20,000-file workspace.
# A repository of FILES small files (DIRS directories, one commit) is pushed into patchd, whose
# builtin agent talks to Tests/Fixtures/fake_messages_api.py (loopback, scripted). Each run's
# agent makes TURNS turns, each appending a line to one existing file with bash (so every turn
# is a checkpoint), then ends. The cost of each checkpoint (workspace snapshot -- only files
# whose stat moved are read --, the agent-only tree when there is a setup, commit, ref, and the
# conversation saved in SQLite) is what the run logs as "checkpoint after turn N: ... (X ms)".
# Two runs: without setup, and with a setup (the tree is then the change since the snapshot
# after setup, applied to the start: one more tree diff per checkpoint). Prints the median,
# 90th percentile and max per turn, and the agent phase's wall time per turn for scale.
#
# Usage: bench/checkpoints.sh   (env: PATCHD_BIN=.build/release/patchd FILES=20000 DIRS=200 TURNS=20)
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-20000}
DIRS=${DIRS:-200}
TURNS=${TURNS:-20}
. bench/runs-lib.sh

# The scripted Messages API: two runs of TURNS bash turns and an end.
python3 - "$BENCH_TMP/steps.json" "$TURNS" "$DIRS" <<'PY'
import json, sys
path, turns, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps = []
for run in range(2):
    for t in range(turns):
        i = (run * turns + t) * 37
        cmd = "echo 'edit %d.%d' >> pkg%03d/file%05d.txt" % (run, t, i % dirs, i)
        steps.append({"reply": [{"type": "tool_use", "id": "toolu_%d_%d" % (run, t), "name": "bash", "input": {"command": cmd}}],
                      "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 10}})
    steps.append({"reply": [{"type": "text", "text": "Edited %d files." % turns}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 10, "output_tokens": 10}})
json.dump(steps, open(path, "w"))
PY
KEY=sk-ant-bench-$RANDOM$RANDOM
python3 Tests/Fixtures/fake_messages_api.py --script "$BENCH_TMP/steps.json" --log "$BENCH_TMP/requests.jsonl" \
    --port 0 --key "$KEY" >"$BENCH_TMP/api.out" 2>&1 &
BENCH_PIDS+=("$!")
API_PORT=
for _ in $(seq 200); do
    API_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$BENCH_TMP/api.out" | head -1)
    [ -n "$API_PORT" ] && break
    sleep 0.05
done
[ -n "$API_PORT" ] || { echo "error: the Messages API stand-in did not start:" >&2; cat "$BENCH_TMP/api.out" >&2; exit 1; }
export ANTHROPIC_API_KEY=$KEY ANTHROPIC_BASE_URL=http://127.0.0.1:$API_PORT

DATA=$BENCH_TMP/data
start_server "$DATA"
REPO=big
echo "checkpoints: generating $FILES files in $DIRS directories, one commit"
SRC=$BENCH_TMP/src
git init -q -b main "$SRC"
python3 - "$SRC" "$FILES" "$DIRS" <<'PY'
import os, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, "pkg%03d" % (i % dirs))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file%05d.txt" % i), "w") as f:
        f.write("file %d\n%s\n" % (i, "lorem ipsum dolor sit amet " * (1 + i % 4)))
PY
git -C "$SRC" add -A && git -C "$SRC" commit -qm "$FILES files"
git -C "$SRC" remote add origin "$(remote_url $REPO)"
timeout 600 git -C "$SRC" push -q origin main

# checkpoint_ms DATA_DIR ID: the ms of each "checkpoint after turn" event, one per line.
checkpoint_ms() {
    python3 - "$1/patchd.sqlite" "$2" <<'PY'
import re, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for (text,) in db.execute("select text from run_events where run_id=? order by id", (int(sys.argv[2]),)):
    m = re.match(r"checkpoint after turn \d+: \w+ on \S+ \((\d+) ms\)", text)
    if m: print(m.group(1))
PY
}
# agent_ms DATA_DIR ID: from the agent's first event after setup to "collecting".
agent_ms() {
    python3 - "$1/patchd.sqlite" "$2" <<'PY'
import sqlite3, sys, datetime
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = db.execute("select at, text from run_events where run_id=? order by id", (int(sys.argv[2]),)).fetchall()
t = lambda s: datetime.datetime.fromisoformat(s)
first = next(t(a) for a, x in rows if x.startswith("$ bash") or x.startswith("checkpoint") or x.startswith("agent:")) if rows else None
end = next(t(a) for a, x in rows if x.startswith("collecting"))
print(round((end - first).total_seconds() * 1000))
PY
}
pct() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; print v[i] }'; }

mkdir -p "$SRC/.patchd"
for variant in "no setup" "with setup"; do
    front="agent: builtin\nmodel: claude-sonnet-4-5\nmax_turns: $((TURNS + 5))\ntimeout: 30m\n"
    [ "$variant" = "with setup" ] && front="${front}setup: echo made > setup-made.txt\n"
    printf -- "---\n${front}---\nEdit files, one per turn.\n" >"$SRC/.patchd/task.md"
    git -C "$SRC" add -A && git -C "$SRC" commit -qm "task ($variant)"
    timeout 1200 git -C "$SRC" push -o wait origin main:ckpt 2>"$BENCH_TMP/push.err" || true
    id=$(sed -n 's/.*patchd: run \([0-9]*\) queued.*/\1/p' "$BENCH_TMP/push.err" | head -1)
    grep -q "run $id succeeded" "$BENCH_TMP/push.err" || { echo "error: run $id did not succeed:" >&2; cat "$BENCH_TMP/push.err" >&2; exit 1; }
    checkpoint_ms "$DATA" "$id" >"$BENCH_TMP/ms"
    n=$(wc -l <"$BENCH_TMP/ms")
    [ "$n" -eq "$TURNS" ] || { echo "error: run $id made $n checkpoints, expected $TURNS" >&2; exit 1; }
    a=$(agent_ms "$DATA" "$id")
    printf '%-10s run %d: %d checkpoints on %d files: median %d ms, p90 %d ms, max %d ms per turn (agent phase %d ms, %d ms per turn)\n' \
        "$variant" "$id" "$n" "$FILES" "$(median <"$BENCH_TMP/ms")" "$(pct 90 <"$BENCH_TMP/ms")" "$(pct 100 <"$BENCH_TMP/ms")" \
        "$a" "$((a / (TURNS + 1)))"
done
