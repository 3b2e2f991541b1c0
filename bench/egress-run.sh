#!/usr/bin/env bash
# What the egress machinery costs a run: `git push -o wait` of a task whose setup is `true`
# under `network: setup` (squid started, the bridge opened for setup and closed after it,
# squid stopped) against the same task under `network: none` (no proxy at all), alternating,
# RUNS of each after one warm-up of each; prints the medians, the difference and the ratio.
# A third series does real work through the proxy: setup fetches PyPI's simple index page
# for pip (one CONNECT to pypi.org), to show the proxy's cost next to a real request.
#
# Usage: bench/egress-run.sh   (env: PATCHD_BIN=.build/release/patchd RUNS=7)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
. bench/runs-lib.sh

DATA=$BENCH_TMP/data
start_server "$DATA"
WORK=$BENCH_TMP/work
git init -q -b main "$WORK"
echo base >"$WORK/README.md"
git -C "$WORK" add -A && git -C "$WORK" commit -qm base
git -C "$WORK" remote add origin "$(remote_url egress)"
timeout 60 git -C "$WORK" push -q origin main

# push_task NETWORK SETUP N: pushes a command task and prints the push's wall time in ms.
push_task() {
    mkdir -p "$WORK/.patchd"
    printf -- '---\nagent: command\nnetwork: %s\nsetup: |\n  %s\nrun: |\n  echo %s > X.txt\n---\nIteration %s.\n' \
        "$1" "$2" "$3" "$3" >"$WORK/.patchd/task.md"
    git -C "$WORK" add -A && git -C "$WORK" commit -qm "task $3"
    local t0 t1
    t0=$(now_ms)
    timeout 120 git -C "$WORK" push -o wait origin main:b 2>"$BENCH_TMP/push.err"
    t1=$(now_ms)
    grep -q 'succeeded' "$BENCH_TMP/push.err" || { echo "error: the run failed:" >&2; cat "$BENCH_TMP/push.err" >&2; exit 1; }
    echo $((t1 - t0))
}

FETCH='curl -sSf -o /dev/null https://pypi.org/simple/pip/'
push_task none true w0 >/dev/null
push_task setup true w1 >/dev/null
: >"$BENCH_TMP/none"; : >"$BENCH_TMP/setup"; : >"$BENCH_TMP/fetch"
echo "egress-run: $RUNS runs each, alternating (setup: true under network none and setup; setup: one PyPI fetch)"
for i in $(seq 1 "$RUNS"); do
    n=$(push_task none true "n$i"); echo "$n" >>"$BENCH_TMP/none"
    s=$(push_task setup true "s$i"); echo "$s" >>"$BENCH_TMP/setup"
    f=$(push_task setup "$FETCH" "f$i"); echo "$f" >>"$BENCH_TMP/fetch"
    printf '  %2d  none %4d ms   setup %4d ms   setup+fetch %4d ms\n' "$i" "$n" "$s" "$f"
done
N=$(median <"$BENCH_TMP/none")
S=$(median <"$BENCH_TMP/setup")
F=$(median <"$BENCH_TMP/fetch")
echo "median push -o wait, network: none:          $N ms"
echo "median push -o wait, network: setup:         $S ms  (egress machinery: +$((S - N)) ms, ratio $(awk -v a="$S" -v b="$N" 'BEGIN { printf "%.2f", a / b }'))"
echo "median push -o wait, setup fetches from PyPI: $F ms"
