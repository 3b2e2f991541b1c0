#!/usr/bin/env bash
# Runs fail2ban-regex on the sample lines in filter.d/patchd.conf: the "Must match" lines must
# all match, the "Must not match" lines none. Needs fail2ban (apt-get install fail2ban).
set -euo pipefail
filter="$(cd "$(dirname "$0")" && pwd)/filter.d/patchd.conf"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
samples() { sed -n "/^# $1/,/^# [A-Z]/p" "$filter" | grep -E '^#   (20|myhost)' | sed 's/^#   //'; }
samples 'Must match' > "$tmp/match.log"
samples 'Must not match' > "$tmp/nomatch.log"
count() { fail2ban-regex "$1" "$filter" | sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p'; }
want=$(wc -l < "$tmp/match.log")
got=$(count "$tmp/match.log")
bad=$(count "$tmp/nomatch.log")
echo "patchd filter: $got of $want sample lines matched; $bad of $(wc -l < "$tmp/nomatch.log") negative samples matched"
[ "$got" = "$want" ] && [ "$bad" = 0 ]
