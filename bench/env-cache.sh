#!/usr/bin/env bash
# Measures the environment cache: the time from `git push` to the agent's first command
# (the run script's first line prints the wall clock in ms; the sandbox shares the host's
# clock) for a Python project with 13 pinned PyPI wheels (the tests' project), three ways:
# a miss (setup: python3 -m venv .venv && pip install -r requirements.txt, through the egress
# proxy to the real PyPI), a hit (same requirements.txt, setup skipped, the cached .venv
# mounted copy-on-write), and a task with no setup at all. RUNS rounds of hit and no-setup
# (the medians are the figures; each miss uses a fresh repository). Goal: hit <= no-setup + 0.3 s.
#
# Usage: bench/env-cache.sh   (env: PATCHD_BIN=.build/release/patchd RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/runs-lib.sh

start_server "$BENCH_TMP/data"
REQS='pytest==8.3.4
iniconfig==2.0.0
pluggy==1.5.0
packaging==24.2
six==1.17.0
idna==3.10
attrs==24.3.0
certifi==2024.12.14
typing_extensions==4.12.2
python-dateutil==2.9.0.post0
pyparsing==3.2.0
wcwidth==0.2.13
toml==0.10.2'

# task WITH_SETUP N: the task file (a different body each time, so every push queues a run).
task() {
    printf -- '---\nagent: command\n'
    if [ "$1" = yes ]; then
        printf 'setup: |\n  python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt\n'
    fi
    printf 'run: |\n  echo "T_AGENT $(date +%%s%%3N)"\n  test -x .venv/bin/pytest || true\n---\nIteration %s.\n' "$2"
}

# measure REPO WITH_SETUP N: pushes one task commit, prints push-to-first-command in ms.
# (Called in $(...): the run counter lives in a file.)
echo 0 >"$BENCH_TMP/id"
measure() {
    local repo=$1 w=$BENCH_TMP/w-$1
    if [ ! -d "$w" ]; then
        git init -q -b main "$w"
        printf '%s\n' "$REQS" >"$w/requirements.txt"
        printf '.venv/\n' >"$w/.gitignore"
        git -C "$w" add -A && git -C "$w" commit -qm base
        git -C "$w" remote add origin "$(remote_url "$repo")"
    fi
    mkdir -p "$w/.patchd"
    task "$2" "$3" >"$w/.patchd/task.md"
    git -C "$w" add -A && git -C "$w" commit -qm "task $3"
    local t0
    t0=$(now_ms)
    timeout 600 git -C "$w" push -q -o wait origin main >/dev/null 2>&1 || true
    local ID
    ID=$(($(cat "$BENCH_TMP/id") + 1))
    echo "$ID" >"$BENCH_TMP/id"
    local status
    status=$(run_field "$ID" status)
    [ "$status" = succeeded ] || { echo "error: run $ID $status" >&2; pssh run logs "$ID" >&2; exit 1; }
    local t1
    pssh run logs "$ID" </dev/null >"$BENCH_TMP/log$ID"
    t1=$(grep -o 'T_AGENT [0-9][0-9]*' "$BENCH_TMP/log$ID" | head -1 | cut -d' ' -f2)
    [ -n "$t1" ] || { echo "error: run $ID printed no T_AGENT line:" >&2; cat "$BENCH_TMP/log$ID" >&2; exit 1; }
    echo $((t1 - t0))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

MISS=$(measure py-miss yes 0)
: >"$BENCH_TMP/hit" ; : >"$BENCH_TMP/none"
for i in $(seq 1 "$RUNS"); do
    measure py-miss yes "$i" >>"$BENCH_TMP/hit"
    measure py-none no "$i" >>"$BENCH_TMP/none"
done
HIT=$(median <"$BENCH_TMP/hit")
NONE=$(median <"$BENCH_TMP/none")
echo "push to first agent command (ms): miss $MISS, hit $HIT (runs: $(tr '\n' ' ' <"$BENCH_TMP/hit")), no setup $NONE (runs: $(tr '\n' ' ' <"$BENCH_TMP/none"))"
echo "hit - no setup: $((HIT - NONE)) ms (goal <= 300 ms)"
[ $((HIT - NONE)) -le 300 ] || { echo "error: a hit costs more than 0.3 s over no setup" >&2; exit 1; }
