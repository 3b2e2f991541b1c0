#!/usr/bin/env bash
# Measures the creation of a run's workspace for a repository of 20,000 files (about 200
# directories, one commit, pushed into patchd), against a plain `git checkout` of the same
# tree. Goal: patchd workspace / git checkout <= 1.2x.
#   - git checkout (baseline): in a `git clone --no-checkout` of the repository (made
#     beforehand, not timed), the time of `git checkout --quiet -B main SHA`.
#   - patchd's steps, as Sources/Sandboxing/Workspace/Workspace.swift runs them against the bare
#     repository in patchd's data dir (DATA/repos/NAME.git), with patchd's git environment:
#     `git init --quiet --initial-branch main WS`, an alternates file naming BARE/objects,
#     `git -C WS update-ref refs/heads/main SHA`, `git -C WS reset --quiet --hard`.
#   - end to end through patchd: a trivial command task pushed on a branch of that repo
#     (`push -o wait`); from the run's own timestamps, the workspace phase (claimed ->
#     "$ run" event), the agent, the result snapshot, and the whole run.
# Baseline and patchd steps alternate, RUNS of each after one warm-up; medians are printed.
#
# Usage: bench/workspace.sh   (env: PATCHD_BIN=.build/release/patchd RUNS=5 FILES=20000 DIRS=200,
#        SERVE_ARGS: extra `patchd serve` flags, e.g. "--sandbox container --container-image IMAGE")
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
FILES=${FILES:-20000}
DIRS=${DIRS:-200}
. bench/runs-lib.sh

DATA=$BENCH_TMP/data
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
start_server "$DATA" ${SERVE_ARGS:-}
REPO=big

echo "workspace: generating $FILES files in $DIRS directories, one commit"
SRC=$BENCH_TMP/src
git init -q -b main "$SRC"
python3 - "$SRC" "$FILES" "$DIRS" <<'EOF'
import os, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, "pkg%03d" % (i % dirs))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file%05d.txt" % i), "w") as f:
        f.write("file %d\n%s\n" % (i, "lorem ipsum dolor sit amet " * (1 + i % 4)))
EOF
git -C "$SRC" add -A && git -C "$SRC" commit -qm "$FILES files"
git -C "$SRC" remote add origin "$(remote_url $REPO)"
t0=$(now_ms)
timeout 600 git -C "$SRC" push -q origin main
echo "pushed into patchd in $(( $(now_ms) - t0 )) ms"
BARE=$DATA/repos/$REPO.git
[ -d "$BARE" ] || { echo "error: $BARE not found" >&2; exit 1; }
SHA=$(git -C "$BARE" rev-parse main)
echo "tree: $(git -C "$BARE" ls-tree -r main | wc -l) files, $(du -sh "$SRC" --exclude=.git | cut -f1) checked out"

# patchd's git environment (RepositoryStore.gitEnvironment).
pgit() { env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$DATA/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
             LANG=C.UTF-8 git "$@"; }

W=$BENCH_TMP/ws
mkdir -p "$W"
BASE_MS=0 INIT_MS=0 REF_MS=0 RESET_MS=0
baseline() {
    local dir=$W/base t0 t1
    rm -rf "$dir"
    pgit clone --quiet --no-checkout --no-tags --single-branch --branch main "$BARE" "$dir"
    sync   # start each timed step with no write-back (or discard) of earlier steps pending
    t0=$(now_ms)
    pgit -C "$dir" -c advice.detachedHead=false checkout --quiet -B main "$SHA"
    t1=$(now_ms)
    [ -f "$dir/pkg000/file00000.txt" ] || { echo "error: baseline checkout is empty" >&2; exit 1; }
    BASE_MS=$((t1 - t0))
    rm -rf "$dir"
}
patchd_steps() {
    local dir=$W/run/workspace t0 t1 t2 t3
    rm -rf "$W/run"; mkdir -p "$W/run"
    sync
    t0=$(now_ms)
    pgit init --quiet --initial-branch main "$dir"
    echo "$BARE/objects" >"$dir/.git/objects/info/alternates"
    t1=$(now_ms)
    pgit -C "$dir" update-ref refs/heads/main "$SHA"
    t2=$(now_ms)
    pgit -C "$dir" reset --quiet --hard
    t3=$(now_ms)
    [ -f "$dir/pkg000/file00000.txt" ] || { echo "error: patchd-style checkout is empty" >&2; exit 1; }
    INIT_MS=$((t1 - t0)) REF_MS=$((t2 - t1)) RESET_MS=$((t3 - t2))
    rm -rf "$W/run"
}

baseline; patchd_steps   # warm-up
: >"$BENCH_TMP/base"; : >"$BENCH_TMP/steps"
echo "git checkout vs patchd's workspace steps, $RUNS each, alternating:"
for i in $(seq 1 "$RUNS"); do
    baseline
    patchd_steps
    echo "$BASE_MS" >>"$BENCH_TMP/base"
    echo "$INIT_MS $REF_MS $RESET_MS $((REF_MS + RESET_MS)) $((INIT_MS + REF_MS + RESET_MS))" >>"$BENCH_TMP/steps"
    printf '  %2d  git checkout %5d ms   patchd: init+alternates %4d + update-ref %4d + reset --hard %5d = %5d ms\n' \
        "$i" "$BASE_MS" "$INIT_MS" "$REF_MS" "$RESET_MS" "$((INIT_MS + REF_MS + RESET_MS))"
done
col() { awk -v c="$1" '{ print $c }' "$BENCH_TMP/steps" | median; }
B=$(median <"$BENCH_TMP/base")
CC=$(col 4) ALL=$(col 5)

# End to end: a task on a branch of the 20,000-file repository.
echo "end to end through patchd: $RUNS runs of a trivial command task on the $FILES-file tree"
: >"$BENCH_TMP/e2e"
for i in $(seq 0 "$RUNS"); do
    mkdir -p "$SRC/.patchd"
    command_task "Write X.txt, iteration $i." 'echo x > X.txt' >"$SRC/.patchd/task.md"
    git -C "$SRC" add -A && git -C "$SRC" commit -qm "task $i"
    # patchd removes a run's workspace after recording it: let the previous removal end first.
    for _ in $(seq 600); do compgen -G "$DATA/work/run-*" >/dev/null || break; sleep 0.1; done
    sync
    t0=$(now_ms)
    timeout 300 git -C "$SRC" push -o wait origin main:ws 2>"$BENCH_TMP/push.err"
    t1=$(now_ms)
    id=$(sed -n 's/.*patchd: run \([0-9]*\) queued.*/\1/p' "$BENCH_TMP/push.err" | head -1)
    grep -q "run $id succeeded" "$BENCH_TMP/push.err" || { echo "error: run $id did not succeed:" >&2; cat "$BENCH_TMP/push.err" >&2; exit 1; }
    [ "$i" -eq 0 ] && continue   # warm-up
    read -r q w a r tot <<<"$(run_phase_ms "$DATA" "$id")"
    echo "$q $w $a $r $tot $((t1 - t0))" >>"$BENCH_TMP/e2e"
    printf '  %2d  run %d: queue %d, workspace %d, agent %d, result %d, created->finished %d ms; push -o wait %d ms\n' \
        "$i" "$id" "$q" "$w" "$a" "$r" "$tot" "$((t1 - t0))"
done
ecol() { awk -v c="$1" '{ print $c }' "$BENCH_TMP/e2e" | median; }
EW=$(ecol 2)
echo "timeline of the last run (ms since the run row was created):"
run_timeline "$DATA" "$id"

echo "medians:"
echo "  git checkout (baseline):                 $B ms"
echo "  patchd steps: init+alternates $(col 1) + update-ref $(col 2) + reset --hard $(col 3) = $ALL ms (update-ref+reset $CC ms)"
echo "  end to end, workspace phase of a run:    $EW ms  (agent $(ecol 3), result snapshot $(ecol 4), whole run $(ecol 5), push -o wait $(ecol 6) ms)"
ratio() { python3 -c 'import sys; print("%.2f" % (int(sys.argv[1]) / max(1, int(sys.argv[2]))))' "$1" "$B"; }
R=$(ratio "$ALL") RCC=$(ratio "$CC") RE=$(ratio "$EW")
verdict() { python3 -c 'import sys; print("meets the goal (<= 1.2x)" if float(sys.argv[1]) <= 1.2 else "MISSES the goal (<= 1.2x)")' "$1"; }
echo "ratio patchd workspace / git checkout: ${R}x (all three steps; update-ref+reset ${RCC}x; end to end ${RE}x) -- $(verdict "$R")"
