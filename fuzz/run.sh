#!/usr/bin/env bash
# Builds the libFuzzer binary and runs each target for SECONDS (default 30).
#   fuzz/run.sh [SECONDS] [TARGET...]      targets: taskfile words pushoptions sse (default: all)
# New inputs go into fuzz/out/corpus/TARGET (the committed corpus in fuzz/corpus/ is only read);
# crashes, hangs and OOMs into fuzz/out/artifacts/TARGET/. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-30}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(taskfile words pushoptions sse)
SWIFT=${SWIFT:-swift}

$SWIFT build --product PatchdFuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
BIN=.build-fuzz/debug/PatchdFuzz

# Swift's own crash backtracer trips ASan after a trap; libFuzzer reports the crash itself.
export SWIFT_BACKTRACE=enable=no
status=0
for target in "${TARGETS[@]}"; do
    out=fuzz/out/corpus/$target
    art=fuzz/out/artifacts/$target
    mkdir -p "$out" "$art"
    echo "== $target: ${SECONDS_PER_TARGET}s"
    if ! PATCHD_FUZZ_TARGET=$target "$BIN" "$out" "fuzz/corpus/$target" \
            -max_total_time="$SECONDS_PER_TARGET" -timeout=5 -rss_limit_mb=2048 -max_len=8192 \
            -artifact_prefix="$art/" -print_final_stats=1 2>"fuzz/out/$target.log"; then
        status=1
        tail -n 40 "fuzz/out/$target.log"
        for f in "$art"/*; do
            [ -e "$f" ] && echo "CRASHING INPUT: $f  (replay: PATCHD_FUZZ_TARGET=$target $BIN $f)"
        done
    else
        grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)|DONE ' \
            "fuzz/out/$target.log" || true
    fi
done
exit $status
