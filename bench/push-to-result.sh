#!/usr/bin/env bash
# Measures the push-to-result overhead of a task run: the wall time of `git push -o wait`
# of a trivial command task (run: echo x > X.txt) minus the wall time of a plain
# `git push` of a same-size commit to a branch without a task. Both pushes carry one new
# commit changing one file of the same size; they alternate, RUNS of each (after one
# warm-up of each), and the medians are compared. Goal: overhead <= 250 ms.
# Also prints, per run, where the time went on the server (queue, workspace, agent,
# result) from the run's own timestamps.
#
# Usage: bench/push-to-result.sh   (env: PATCHD_BIN=.build/release/patchd RUNS=5)
#        SERVE_ARGS="--sandbox container --container-image localhost/patchd-sandbox-test" bench/push-to-result.sh
#        (SERVE_ARGS: extra `patchd serve` flags, split on spaces)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/runs-lib.sh

DATA=$BENCH_TMP/data
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
start_server "$DATA" ${SERVE_ARGS:-}
REPO=ptr

# Two clones: one pushes the task branch, the other a branch that never has a task file.
TASK=$BENCH_TMP/task PLAIN=$BENCH_TMP/plain
git init -q -b main "$TASK"
echo base >"$TASK/README.md"
git -C "$TASK" add -A && git -C "$TASK" commit -qm base
git -C "$TASK" remote add origin "$(remote_url $REPO)"
timeout 60 git -C "$TASK" push -q origin main main:plain
git clone -q "$(remote_url $REPO)" "$PLAIN" 2>/dev/null
git -C "$PLAIN" checkout -q plain

# The same bytes in both commits: the task file, or a copy of it at another path.
task_commit() { mkdir -p "$TASK/.patchd"; command_task "Write X.txt, iteration $1." 'echo x > X.txt' >"$TASK/.patchd/task.md"
                git -C "$TASK" add -A && git -C "$TASK" commit -qm "task $1"; }
plain_commit() { mkdir -p "$PLAIN/notes"; command_task "Write X.txt, iteration $1." 'echo x > X.txt' >"$PLAIN/notes/task.md"
                 git -C "$PLAIN" add -A && git -C "$PLAIN" commit -qm "plain $1"; }

RUN_ID=0 MS=0
plain_push() {  # sets MS
    local t0 t1
    plain_commit "$1"
    t0=$(now_ms); timeout 60 git -C "$PLAIN" push -q origin plain 2>"$BENCH_TMP/plain.err"; t1=$(now_ms)
    if grep -q queued "$BENCH_TMP/plain.err"; then echo "error: the plain push queued a run" >&2; exit 1; fi
    MS=$((t1 - t0))
}
task_push() {  # sets MS and RUN_ID
    local t0 t1
    task_commit "$1"
    t0=$(now_ms); timeout 120 git -C "$TASK" push -o wait origin main:feature 2>"$BENCH_TMP/task.err"; t1=$(now_ms)
    RUN_ID=$(sed -n 's/.*patchd: run \([0-9]*\) queued.*/\1/p' "$BENCH_TMP/task.err" | head -1)
    [ -n "$RUN_ID" ] || { echo "error: the task push queued no run:" >&2; cat "$BENCH_TMP/task.err" >&2; exit 1; }
    grep -q "run $RUN_ID succeeded" "$BENCH_TMP/task.err" || { echo "error: run $RUN_ID did not succeed:" >&2; cat "$BENCH_TMP/task.err" >&2; exit 1; }
    MS=$((t1 - t0))
}

# Warm-up (page cache, first hook, first sandbox), not counted.
plain_push 0
task_push 0

: >"$BENCH_TMP/plain.ms"; : >"$BENCH_TMP/task.ms"; : >"$BENCH_TMP/phases"
echo "push-to-result: $RUNS plain pushes and $RUNS 'push -o wait' task pushes, alternating"
for i in $(seq 1 "$RUNS"); do
    plain_push "$i"; p=$MS; echo "$p" >>"$BENCH_TMP/plain.ms"
    task_push "$i";  t=$MS; echo "$t" >>"$BENCH_TMP/task.ms"
    ph=$(run_phase_ms "$DATA" "$RUN_ID"); echo "$ph" >>"$BENCH_TMP/phases"
    read -r q w a r tot <<<"$ph"
    printf '  %2d  plain %4d ms   task %4d ms   (run %d: queue %d, workspace %d, agent %d, result %d, created->finished %d ms)\n' \
        "$i" "$p" "$t" "$RUN_ID" "$q" "$w" "$a" "$r" "$tot"
done

P=$(median <"$BENCH_TMP/plain.ms")
T=$(median <"$BENCH_TMP/task.ms")
col() { awk -v c="$1" '{ print $c }' "$BENCH_TMP/phases" | median; }
echo "median plain push:          $P ms"
echo "median push -o wait (task): $T ms"
echo "server side (medians): queue $(col 1) ms, workspace $(col 2) ms, agent $(col 3) ms, result $(col 4) ms, created->finished $(col 5) ms"
echo "timeline of the last run (ms since the run row was created):"
run_timeline "$DATA" "$RUN_ID"
OVER=$((T - P))
if [ "$OVER" -le 250 ]; then verdict="meets the goal (<= 250 ms)"; else verdict="MISSES the goal (<= 250 ms)"; fi
echo "push-to-result overhead: $OVER ms  -- $verdict"

echo "anatomy of one more 'push -o wait' (ms since the push started, as the client saw each line):"
task_commit anatomy
timed_lines timeout 120 git -C "$TASK" push -o wait origin main:feature
