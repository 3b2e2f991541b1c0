#!/usr/bin/env bash
# CI: the integration suite once more, against an AddressSanitizer (+ LeakSanitizer) build of
# the server (contrib/asan-patchd); fails if any sanitizer report was written. Run after
# `make test` (it reuses the normal test build). About 5 minutes. See docs/SANITIZERS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
log="${PATCHD_ASAN_LOG:-/tmp/asan-patchd}"
build_log="$(mktemp)"
trap 'rm -f "$build_log"' EXIT
swift build --product patchd --scratch-path .build-asan \
  -Xswiftc -sanitize=address -Xswiftc -sanitize-recover=address \
  -Xcc -fsanitize=address -Xcc -fsanitize-recover=address >"$build_log" 2>&1 \
  || { grep -v "Cannot export local symbol" "$build_log" | tail -30 >&2; exit 1; }
rm -f "$log".*
PATCHD_BIN="$PWD/contrib/asan-patchd" timeout 2400 swift test --skip-build --filter IntegrationTests
if compgen -G "$log.*" >/dev/null; then
  echo "asan-check: sanitizer reports were written:" >&2
  for report in "$log".*; do echo "== $report" >&2; head -60 "$report" >&2; done
  exit 1
fi
echo "asan-check: no AddressSanitizer or LeakSanitizer reports"
