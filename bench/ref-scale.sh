#!/usr/bin/env bash
# bench/ref-scale.sh: what 100,000 run refs cost the git operations of a repository's users.
#
# One patchd server holds two repositories with the same history (COMMITS commits on main):
#   none  no patchd refs at all;
#   runs  plus REFS run refs `refs/patchd/runs/N`, each on its own result commit (one file
#         changed on top of main, as a run's result is), written with git fast-import into
#         the bare repository while the server is stopped.
# For each ref LAYOUT (loose: one file per ref, as libgit2 writes a run's ref; packed: after
# `git pack-refs --all`) it times, over patchd's SSH, alternating the two repositories:
#   ls-remote        `git ls-remote URL` (every ref the server advertises to that client)
#   fetch-noop       `git fetch origin main` in a clone that is up to date
#   fetch-1          the same after one new commit was pushed to main (from another clone)
#   push-1           `git push origin main` of one new commit
# each under protocol v2 (git's default) and v0 (`-c protocol.version=0`); push has no v2 in
# git, so its two rows differ only in what the client asked for. Prints the median of RUNS
# of each, the ratio runs/none (goal for v2 fetch and push: <= 1.2) and how many refs each
# client was shown by ls-remote (a v0 client must not get every run ref unless it asks).
#
# Usage: bench/ref-scale.sh
#   env: PATCHD_BIN=.build/release/patchd RUNS=5 REFS=100000 COMMITS=200 LAYOUT="loose packed"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
REFS=${REFS:-100000}
COMMITS=${COMMITS:-200}
LAYOUT=${LAYOUT:-loose packed}
case "$RUNS$REFS$COMMITS" in *[!0-9]*) echo "error: RUNS, REFS and COMMITS must be integers" >&2; exit 1 ;; esac
. bench/runs-lib.sh
export GIT_AUTHOR_DATE="2025-01-01T00:00:00Z" GIT_COMMITTER_DATE="2025-01-01T00:00:00Z"

DATA=$BENCH_TMP/data
SRC=$BENCH_TMP/src

# ---------------------------------------------------------------------------------------
# 1. The history: COMMITS commits of a few files, pushed to both repositories.
log() { echo "ref-scale.sh: $*" >&2; }
git init -q -b main "$SRC"
for i in $(seq 1 "$COMMITS"); do
    echo "line $i" >>"$SRC/file$(( i % 10 )).txt"
    git -C "$SRC" add -A
    git -C "$SRC" commit -qm "commit $i"
done
start_server "$DATA"
for repo in none runs; do timeout 120 git -C "$SRC" push -q "$(remote_url $repo)" main; done
stop_server() {
    kill "$SERVER_PID"
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    wait "$SERVER_PID" 2>/dev/null || true
}
stop_server

# ---------------------------------------------------------------------------------------
# 2. REFS run refs in `runs`, with the server stopped: one fast-import stream of REFS
#    commits, each main plus its own result.txt, each on refs/patchd/runs/N.
BARE_RUNS=$DATA/repos/runs.git
BASE=$(git -C "$BARE_RUNS" rev-parse refs/heads/main)
t0=$(now_ms)
awk -v n="$REFS" -v base="$BASE" 'BEGIN {
    for (i = 1; i <= n; i++) {
        msg = "run " i "\n"; body = "result of run " i "\n"
        printf "commit refs/patchd/runs/%d\ncommitter patchd <patchd@localhost> 1735689600 +0000\n", i
        printf "data %d\n%s", length(msg), msg
        printf "from %s\nM 100644 inline result.txt\ndata %d\n%s\n", base, length(body), body
    }
}' | git -C "$BARE_RUNS" fast-import --quiet --force
log "wrote $REFS run refs in $(( $(now_ms) - t0 )) ms"
[ "$(git -C "$BARE_RUNS" for-each-ref refs/patchd/runs | wc -l)" -eq "$REFS" ] || { echo "error: run refs missing" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# 3. Measurements. ms CMD...: runs CMD, prints its wall time in ms (fails the script if CMD does).
ms() { local t0; t0=$(now_ms); "$@" >/dev/null 2>&1 || { echo "error: failed: $*" >&2; "$@" >&2 || true; exit 1; }; echo $(( $(now_ms) - t0 )); }
RESULTS=$BENCH_TMP/results
: >"$RESULTS"
# record LAYOUT OP PROTO REPO MS
record() { echo "$*" >>"$RESULTS"; }
pv() { if [ "$1" = v0 ]; then echo 0; else echo 2; fi; }

for layout in $LAYOUT; do
    case $layout in
        loose) loose=$(find "$BARE_RUNS/refs/patchd" -type f | wc -l)
               [ "$loose" -ge "$REFS" ] || { echo "error: LAYOUT loose needs loose refs first (got $loose); list loose before packed" >&2; exit 1; } ;;
        packed) git -C "$BARE_RUNS" pack-refs --all ;;
        *) echo "error: LAYOUT is loose and/or packed, not '$layout'" >&2; exit 1 ;;
    esac
    start_server "$DATA"
    # patchd may pack loose refs itself at start: what the measurements see is counted after it.
    loose_now=$(find "$BARE_RUNS/refs" -type f | wc -l)
    packed_now=$( { [ -f "$BARE_RUNS/packed-refs" ] && wc -l <"$BARE_RUNS/packed-refs"; } || echo 0)
    record "$layout on-disk $loose_now $packed_now"
    log "layout $layout: $loose_now loose ref files, packed-refs $packed_now lines (after the server started)"
    for repo in none runs; do
        rm -rf "$BENCH_TMP/clone-$repo" "$BENCH_TMP/pusher-$repo"
        timeout 120 git clone -q "$(remote_url $repo)" "$BENCH_TMP/clone-$repo"
        timeout 120 git clone -q "$(remote_url $repo)" "$BENCH_TMP/pusher-$repo"
        # Refs each client is shown (counted once, not timed).
        for proto in v2 v0; do
            n=$(timeout 300 git -c protocol.version="$(pv $proto)" ls-remote "$(remote_url $repo)" | wc -l)
            runrefs=$(timeout 300 git -c protocol.version="$(pv $proto)" ls-remote "$(remote_url $repo)" | grep -c 'refs/patchd/runs/' || true)
            bytes=$(timeout 300 git -c protocol.version="$(pv $proto)" ls-remote "$(remote_url $repo)" | wc -c)
            record "$layout refs-listed $proto $repo $n $runrefs $bytes"
        done
    done
    # Warm-up (page cache, the server's first session).
    for repo in none runs; do timeout 300 git ls-remote "$(remote_url $repo)" >/dev/null; done
    for i in $(seq 1 "$RUNS"); do
        if [ $(( i % 2 )) -eq 1 ]; then order="none runs"; else order="runs none"; fi
        for proto in v2 v0; do
            p=$(pv "$proto")
            for repo in $order; do
                url=$(remote_url $repo); C=$BENCH_TMP/clone-$repo; P=$BENCH_TMP/pusher-$repo
                t=$(ms timeout 300 git -c protocol.version="$p" ls-remote "$url"); record "$layout ls-remote $proto $repo $t"
                t=$(ms timeout 300 git -C "$C" -c protocol.version="$p" fetch -q origin main); record "$layout fetch-noop $proto $repo $t"
                # One new commit on main from the other clone (not timed), then the fetch.
                git -C "$P" pull -q --ff-only origin main
                git -C "$P" commit -q --allow-empty -m "new $layout $proto $i"
                timeout 300 git -C "$P" push -q origin main
                t=$(ms timeout 300 git -C "$C" -c protocol.version="$p" fetch -q origin main); record "$layout fetch-1 $proto $repo $t"
                git -C "$C" merge -q --ff-only FETCH_HEAD
                git -C "$C" commit -q --allow-empty -m "push $layout $proto $i"
                t=$(ms timeout 300 git -C "$C" -c protocol.version="$p" push -q origin main); record "$layout push-1 $proto $repo $t"
            done
        done
        log "layout $layout: round $i/$RUNS done (load $(cut -d' ' -f1 /proc/loadavg))"
    done
    stop_server
done

# ---------------------------------------------------------------------------------------
# 4. The table.
echo
echo "patchd ref scale: $REFS run refs vs none, $COMMITS commits on main, median of $RUNS runs (ms)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(git --version); $("$PATCHD_BIN" version 2>/dev/null | head -1)"
for layout in $LAYOUT; do
    echo
    echo "layout: $layout ($(awk -v l="$layout" '$1 == l && $2 == "on-disk" { printf "as measured: %d loose ref files, packed-refs %d lines", $3, $4 }' "$RESULTS"))"
    printf '%-11s %-5s %9s %9s %7s\n' op proto none_ms runs_ms ratio
    for op in ls-remote fetch-noop fetch-1 push-1; do
        for proto in v2 v0; do
            a=$(awk -v l="$layout" -v o="$op" -v p="$proto" '$1 == l && $2 == o && $3 == p && $4 == "none" { print $5 }' "$RESULTS" | median)
            b=$(awk -v l="$layout" -v o="$op" -v p="$proto" '$1 == l && $2 == o && $3 == p && $4 == "runs" { print $5 }' "$RESULTS" | median)
            awk -v o="$op" -v p="$proto" -v a="$a" -v b="$b" 'BEGIN { printf "%-11s %-5s %9d %9d %7.2f\n", o, p, a, b, (a > 0 ? b / a : 0) }'
        done
    done
    echo "refs listed by ls-remote (all / of them refs/patchd/runs/* / bytes of its output):"
    awk -v l="$layout" '$1 == l && $2 == "refs-listed" { printf "  %s %-4s %7d / %6d / %8d\n", $3, $4, $5, $6, $7 }' "$RESULTS"
done
echo
echo "goal: runs/none <= 1.2 for v2 fetch-noop, fetch-1 and push-1; v0 ls-remote lists no refs/patchd/runs/*"
