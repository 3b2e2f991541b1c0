# Shared helpers for the task-run benchmarks (bench/push-to-result.sh, bench/workspace.sh,
# bench/many-branches.sh). Sourced, not run. Starts real `patchd serve` processes on
# loopback port 0, each with its own data dir under one mktemp dir, and removes everything
# (processes by PID, then the dir) on exit.

PATCHD_BIN=${PATCHD_BIN:-.build/release/patchd}
case $PATCHD_BIN in /*) ;; *) PATCHD_BIN=$PWD/$PATCHD_BIN ;; esac
[ -x "$PATCHD_BIN" ] || { echo "error: $PATCHD_BIN is not built (swift build -c release)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed to read run JSON" >&2; exit 1; }

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/patchd-bench-XXXXXX")
BENCH_PIDS=()

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        # Give a server a moment for its clean stop, then force it.
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# A clean git environment: no user or system config, fixed identity, ssh with the admin key.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 LANG=C.UTF-8
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
ssh-keygen -q -t ed25519 -N '' -C bench@patchd -f "$BENCH_TMP/admin"
SSH_OPTS=(-i "$BENCH_TMP/admin" -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=no
          -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes)
export GIT_SSH_COMMAND="ssh ${SSH_OPTS[*]}"

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# start_server DATA_DIR [extra serve args...]: starts patchd, waits for its ready line,
# sets PORT and SERVER_PID.
start_server() {
    local data=$1; shift
    local log=$data.log
    : >"$log"
    "$PATCHD_BIN" serve --data-dir "$data" --listen 127.0.0.1:0 --admin-key "$BENCH_TMP/admin.pub" "$@" \
        </dev/null >"$log" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    PORT=
    for _ in $(seq 300); do
        PORT=$(sed -n 's/^patchd: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "error: patchd exited at start:" >&2; cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    echo "error: patchd printed no ready line in 15 s:" >&2; cat "$log" >&2; exit 1
}

# pssh COMMAND...: an SSH command to the running server, with a timeout.
pssh() { timeout -k 5 60 ssh "${SSH_OPTS[@]}" -p "$PORT" git@127.0.0.1 "$@"; }

remote_url() { echo "ssh://git@127.0.0.1:$PORT/$1"; }

# command_task BODY RUN: a command task file on stdout.
command_task() {
    printf -- '---\nagent: command\nrun: |\n  %s\n---\n%s\n' "$2" "$1"
}

# run_field ID FIELD: one field of `run show ID --json`.
run_field() {
    pssh run show "$1" --json | python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$2"
}

# wait_run ID [TIMEOUT_S]: polls until run ID has finished; prints its status.
wait_run() {
    local id=$1 limit=${2:-120} status= start
    start=$(now_ms)
    while :; do
        status=$(run_field "$id" status 2>/dev/null || true)
        case $status in succeeded|failed|canceled) echo "$status"; return 0 ;; esac
        if [ $(( $(now_ms) - start )) -gt $(( limit * 1000 )) ]; then echo "timeout"; return 1; fi
        sleep 0.1
    done
}

# median: the median of the integers on stdin (mean of the middle two for an even count).
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# run_timeline DATA_DIR ID: the run's events with milliseconds since the run was queued,
# read straight from the server's SQLite (read-only), plus created/started/finished.
run_timeline() {
    python3 - "$1/patchd.sqlite" "$2" <<'EOF'
import sqlite3, sys, datetime
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rid = int(sys.argv[2])
def t(s): return datetime.datetime.fromisoformat(s)
created, started, finished = db.execute("select created_at, started_at, finished_at from runs where id=?", (rid,)).fetchone()
c = t(created)
print("    %7.1f ms  run row created" % 0.0)
print("    %7.1f ms  claimed by the scheduler (started_at)" % ((t(started) - c).total_seconds() * 1000))
for at, kind, text in db.execute("select at, kind, text from run_events where run_id=? order by id", (rid,)):
    print("    %7.1f ms  [%s] %s" % ((t(at) - c).total_seconds() * 1000, kind, text[:70]))
print("    %7.1f ms  finished_at" % ((t(finished) - c).total_seconds() * 1000))
EOF
}

# run_phase_ms DATA_DIR ID: "queue_ms workspace_ms agent_ms result_ms total_ms" from the
# run's own timestamps: created->started, started->"$ run" event, "$ run"->"collecting",
# "collecting"->finished, created->finished.
run_phase_ms() {
    python3 - "$1/patchd.sqlite" "$2" <<'EOF'
import sqlite3, sys, datetime
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rid = int(sys.argv[2])
def t(s): return datetime.datetime.fromisoformat(s)
created, started, finished = (t(x) for x in db.execute("select created_at, started_at, finished_at from runs where id=?", (rid,)).fetchone())
ev = {}
for at, text in db.execute("select at, text from run_events where run_id=? order by id", (rid,)):
    for key in ("$ run:", "collecting"):
        if text.startswith(key) and key not in ev: ev[key] = t(at)
ms = lambda a, b: round((b - a).total_seconds() * 1000)
print(ms(created, started), ms(started, ev["$ run:"]), ms(ev["$ run:"], ev["collecting"]), ms(ev["collecting"], finished), ms(created, finished))
EOF
}

# timed_lines COMMAND...: runs COMMAND and prints each line of its stderr with the
# milliseconds since it started (a diagnostic pass: shows when each `remote:` line arrived).
timed_lines() {
    python3 - "$@" <<'EOF_PY'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
for raw in iter(p.stderr.readline, b""):
    line = raw.decode("utf-8", "replace").rstrip()
    print("    %7.1f ms  %s" % ((time.monotonic() - t0) * 1000, line.strip()[:90]))
p.wait()
print("    %7.1f ms  (exit %d)" % ((time.monotonic() - t0) * 1000, p.returncode))
EOF_PY
}
