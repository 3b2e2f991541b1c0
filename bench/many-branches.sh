#!/usr/bin/env bash
# Measures 20 task branches pushed at once: 20 parallel `git push` (one per branch, each
# branch with its own trivial command task) to a server started with `--workers 2`; the
# time from the first push to the last run finished (the latest finished_at of
# `run show ID --json`, same clock), checking that every push got its "queued" answer,
# that all 20 runs succeeded with a result commit, and that every result commit has its
# note in refs/notes/patchd (SPEC section 7; all runs of a repo share that ref). Exits 1
# if a check fails, after printing the figures. Also prints when the pushes returned, the sum of the runs'
# own durations (created/started/finished) and the ideal with 2 workers. RUNS rounds,
# each on a fresh server; the median total is the figure. No fixed goal in the issue:
# the figure is compared with the serial cost of the runs divided by the workers.
#
# Usage: bench/many-branches.sh   (env: PATCHD_BIN=.build/release/patchd RUNS=3 BRANCHES=20 WORKERS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BRANCHES=${BRANCHES:-20}
WORKERS=${WORKERS:-2}
. bench/runs-lib.sh

: >"$BENCH_TMP/totals"
FAILURES=0
for round in $(seq 1 "$RUNS"); do
    DATA=$BENCH_TMP/data$round
    start_server "$DATA" --workers "$WORKERS"
    ROUND_PID=$SERVER_PID
    W=$BENCH_TMP/work$round
    git init -q -b main "$W"
    echo base >"$W/README.md"
    git -C "$W" add -A && git -C "$W" commit -qm base
    git -C "$W" remote add origin "$(remote_url many)"
    timeout 60 git -C "$W" push -q origin main
    # One clone per branch (parallel pushes from one repository would contend on its locks).
    for b in $(seq 1 "$BRANCHES"); do
        C=$W-b$b
        git clone -q --shared "$W" "$C"
        git -C "$C" remote set-url origin "$(remote_url many)"
        git -C "$C" checkout -q -b "task$b"
        mkdir -p "$C/.patchd"
        command_task "Branch $b: write X.txt." "echo $b > X.txt" >"$C/.patchd/task.md"
        git -C "$C" add -A && git -C "$C" commit -qm "task $b"
    done

    T0=$(python3 -c 'import time; print("%.3f" % time.time())')
    PUSHES=()
    for b in $(seq 1 "$BRANCHES"); do
        ( t=$(now_ms); timeout 120 git -C "$W-b$b" push origin "task$b" >"$BENCH_TMP/push$b.out" 2>&1; rc=$?
          echo "$rc $(( $(now_ms) - t ))" >"$BENCH_TMP/push$b.rc" ) &
        PUSHES+=($!)
    done
    for pid in "${PUSHES[@]}"; do wait "$pid"; done
    PUSHED_MS=$(python3 -c 'import sys, time; print(round((time.time() - float(sys.argv[1])) * 1000))' "$T0")

    bad=0
    for b in $(seq 1 "$BRANCHES"); do
        read -r rc _ <"$BENCH_TMP/push$b.rc"
        if [ "$rc" -ne 0 ] || ! grep -q "patchd: run [0-9]* queued for task$b " "$BENCH_TMP/push$b.out"; then
            echo "error: the push of task$b (exit $rc) got no 'queued' answer:" >&2; cat "$BENCH_TMP/push$b.out" >&2; bad=1
        fi
    done
    [ "$bad" -eq 0 ] || exit 1
    SLOWEST_PUSH=$(for b in $(seq 1 "$BRANCHES"); do awk '{ print $2 }' "$BENCH_TMP/push$b.rc"; done | sort -n | tail -1)

    # Wait for every run, then read the records.
    for id in $(seq 1 "$BRANCHES"); do
        st=$(wait_run "$id" 300) || { echo "error: run $id did not finish" >&2; exit 1; }
    done
    for id in $(seq 1 "$BRANCHES"); do pssh run show "$id" --json; done >"$BENCH_TMP/runs$round.json"
    read -r TOTAL SUM IDEAL SPREAD NOK < <(python3 - "$BENCH_TMP/runs$round.json" "$T0" "$BRANCHES" "$WORKERS" "$BENCH_TMP/failed$round" <<'EOF'
import json, sys, datetime
text, t0, n, workers = open(sys.argv[1]).read(), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dec, runs, i = json.JSONDecoder(), [], 0
while i < len(text):
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    obj, i = dec.raw_decode(text, i); runs.append(obj)
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
bad = [r for r in runs if not (r["status"] == "succeeded" and r["changed"])]
for r in bad:
    print("  FAILED: run %s (%s): %s: %s" % (r["id"], r["branch"], r["status"], r["error"]), file=open(sys.argv[5], "a"))
ok = len(runs) == n and not bad
last = max(ts(r["finished_at"]) for r in runs)
durations = [ts(r["finished_at"]) - ts(r["started_at"]) for r in runs]
created = sorted(ts(r["created_at"]) for r in runs)
print(round((last - t0) * 1000), round(sum(durations) * 1000), round(sum(durations) / workers * 1000),
      round((created[-1] - created[0]) * 1000), n - len(bad) if len(runs) == n else 0)
EOF
)
    # Every result commit must carry its note (refs/notes/patchd is shared by all runs of the repo).
    NOTES=$(git -C "$DATA/repos/many.git" notes --ref=patchd list 2>/dev/null | wc -l)
    if [ "$NOTES" -ne "$BRANCHES" ]; then
        missing=$(for id in $(seq 1 "$BRANCHES"); do
            git -C "$DATA/repos/many.git" notes --ref=patchd show "refs/patchd/runs/$id" >/dev/null 2>&1 || printf ' %s' "$id"; done)
        echo "  FAILED: refs/notes/patchd holds $NOTES notes for $BRANCHES result commits; no note for run(s)$missing" \
             "(notes history: $(git -C "$DATA/repos/many.git" rev-list --count refs/notes/patchd) commits)" >>"$BENCH_TMP/failed$round"
    fi
    [ "$NOK" -eq "$BRANCHES" ] && [ "$NOTES" -eq "$BRANCHES" ] || FAILURES=$((FAILURES + 1))
    echo "$TOTAL" >>"$BENCH_TMP/totals"
    printf '  round %d: %d pushes answered "queued" (all back after %d ms, slowest push %d ms, runs queued over %d ms); %d/%d runs succeeded; first push -> last run finished %d ms (sum of run durations %d ms, /%d workers = %d ms)\n' \
        "$round" "$BRANCHES" "$PUSHED_MS" "$SLOWEST_PUSH" "$SPREAD" "$NOK" "$BRANCHES" "$TOTAL" "$SUM" "$WORKERS" "$IDEAL"
    [ -f "$BENCH_TMP/failed$round" ] && cat "$BENCH_TMP/failed$round"
    kill "$ROUND_PID"; wait "$ROUND_PID" 2>/dev/null || true
done
echo "many-branches: $BRANCHES branches, --workers $WORKERS, median over $RUNS rounds: first push -> last run finished $(median <"$BENCH_TMP/totals") ms"
if [ "$FAILURES" -gt 0 ]; then
    echo "many-branches: FAILED: in $FAILURES of $RUNS rounds a run failed or a result commit lost its note (see FAILED lines above)"
    exit 1
fi
echo "many-branches: in each of $RUNS rounds every push was answered 'queued' and all $BRANCHES runs succeeded with their notes"
