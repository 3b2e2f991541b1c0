#!/usr/bin/env bash
# bench/offsite.sh: the cost of off-machine replication (offsite:), against moto on loopback.
#
# Two patchd servers run side by side, one without and one with `offsite:` (moto_server with
# SigV4 checks on, as the tests use it). For RUNS rounds, in alternating order:
#   - a push of a new ~SIZE_MB MB repository of incompressible content to each server:
#     push_s is the wall-clock time of `git push` (the push's own latency);
#   - on the replicating server, lag_s: from the end of that push until the bucket's
#     manifest names its tip (the repository is restorable), read from DATA/offsite.sqlite,
#     which records a manifest only after its upload succeeded;
#   - SMALL pushes of one small commit to an existing repository on each server, alternating
#     (small_push_s, the latency a user mostly sees), after replication has caught up.
# Prints the medians and the ratios on/off. Replication of one round finishes before the next
# round starts, so each push is timed with the other server idle.
#
# Environment: RUNS=5, SIZE_MB=100, SMALL=20, PATCHD_BIN (default .build/release/patchd),
#   PART_MB=64 (multipart part size).
# Needs: git, ssh-keygen, sqlite3, age, moto_server and aws (scripts/install-offsite-test-deps.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-100}
SMALL=${SMALL:-20}
PART_MB=${PART_MB:-64}
PATCHD_BIN=${PATCHD_BIN:-$ROOT/.build/release/patchd}
die() { echo "offsite.sh: error: $*" >&2; exit 1; }
log() { echo "offsite.sh: $*" >&2; }
[ -x "$PATCHD_BIN" ] || die "no patchd binary at $PATCHD_BIN (swift build -c release, or set PATCHD_BIN)"
for t in git ssh-keygen sqlite3 age age-keygen moto_server aws python3; do command -v $t >/dev/null || die "$t not found"; done

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 LC_ALL=C
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com

TMP=$(mktemp -d "${TMPDIR:-/tmp}/patchd-offsite-bench.XXXXXX")
PIDS=()
cleanup() {
  local status=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export HOME="$TMP/home"; mkdir -p "$HOME"
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# 1. moto with credential checks: an IAM user, its key, an s3:* policy, a bucket.
MOTO_PORT=$(free_port)
INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$TMP/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
E="--endpoint-url http://127.0.0.1:$MOTO_PORT --region us-east-1"
AWS_ACCESS_KEY_ID=setup AWS_SECRET_ACCESS_KEY=setup aws $E iam create-user --user-name patchd >/dev/null
AWS_ACCESS_KEY_ID=setup AWS_SECRET_ACCESS_KEY=setup aws $E iam create-access-key --user-name patchd >"$TMP/key.json"
AWS_ACCESS_KEY_ID=setup AWS_SECRET_ACCESS_KEY=setup aws $E iam put-user-policy --user-name patchd --policy-name s3 \
  --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
python3 -c 'import json,sys; k=json.load(open(sys.argv[1]))["AccessKey"]; print("[default]\naws_access_key_id = %s\naws_secret_access_key = %s" % (k["AccessKeyId"], k["SecretAccessKey"]))' \
  "$TMP/key.json" >"$TMP/credentials"
chmod 600 "$TMP/credentials"
AWS_SHARED_CREDENTIALS_FILE="$TMP/credentials" aws $E s3 mb s3://patchd-bench >/dev/null
age-keygen -o "$TMP/identity.txt" 2>/dev/null
cat >"$TMP/on.yaml" <<YAML
offsite:
  endpoint: http://127.0.0.1:$MOTO_PORT
  bucket: patchd-bench
  prefix: bench/
  credentials_file: $TMP/credentials
  age_recipients: $(age-keygen -y "$TMP/identity.txt")
  part_size_mb: $PART_MB
YAML
: >"$TMP/off.yaml"

# 2. The two servers.
ssh-keygen -q -t ed25519 -N "" -f "$TMP/key"
export GIT_SSH_COMMAND="ssh -F /dev/null -i $TMP/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
declare -A PORT
for mode in off on; do
  "$PATCHD_BIN" serve --data-dir "$TMP/data-$mode" --listen 127.0.0.1:0 --admin-key "$TMP/key.pub" --config "$TMP/$mode.yaml" \
    </dev/null >"$TMP/$mode.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    PORT[$mode]=$(sed -n 's/^patchd: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TMP/$mode.log" | head -1)
    [ -n "${PORT[$mode]}" ] && break; sleep 0.1
  done
  [ -n "${PORT[$mode]}" ] || { cat "$TMP/$mode.log" >&2; die "patchd ($mode) did not start"; }
done
log "patchd off on :${PORT[off]}, on on :${PORT[on]} (moto :$MOTO_PORT)"

# Waits until the replicating server's bucket manifest of repository $1 names commit $2 and nothing is queued.
replicated() {
  local db="$TMP/data-on/offsite.sqlite"
  sqlite3 -cmd ".timeout 5000" "$db" "SELECT manifest FROM repos WHERE name = '$1'" 2>/dev/null | grep -q "$2" \
    && [ "$(sqlite3 -cmd ".timeout 5000" "$db" "SELECT COUNT(*) FROM queue" 2>/dev/null)" = "0" ]
}
wait_replicated() { for _ in $(seq 1 6000); do replicated "$1" "$2" && return 0; sleep 0.02; done; die "no replication of $1 in 120 s"; }

# 3. Big pushes.
declare -a PUSH_OFF PUSH_ON LAG
for i in $(seq 1 "$RUNS"); do
  src="$TMP/src$i"; git init -q -b main "$src"
  for f in 1 2 3 4; do head -c $(( SIZE_MB * 250000 )) /dev/urandom >"$src/blob$f.bin"; done
  git -C "$src" add . && git -C "$src" commit -q -m "round $i"
  tip=$(git -C "$src" rev-parse HEAD)
  order="off on"; [ $(( i % 2 )) -eq 0 ] && order="on off"
  for mode in $order; do
    t0=$(now); git -C "$src" push -q "ssh://git@127.0.0.1:${PORT[$mode]}/big$i" main; t1=$(now)
    if [ "$mode" = on ]; then
      PUSH_ON+=("$(echo "$t1 - $t0" | bc)")
      wait_replicated "big$i" "$tip"; t2=$(now)
      LAG+=("$(echo "$t2 - $t1" | bc)")
    else
      PUSH_OFF+=("$(echo "$t1 - $t0" | bc)")
    fi
  done
  rm -rf "$src"
  log "round $i: push off ${PUSH_OFF[-1]} s, on ${PUSH_ON[-1]} s, lag ${LAG[-1]} s"
done

# 4. Small pushes to an existing repository.
small="$TMP/small"; git init -q -b main "$small"; echo 0 >"$small/n"; git -C "$small" add n; git -C "$small" commit -q -m 0
for mode in off on; do git -C "$small" push -q "ssh://git@127.0.0.1:${PORT[$mode]}/small" main; done
wait_replicated small "$(git -C "$small" rev-parse HEAD)"
declare -a SMALL_OFF SMALL_ON SMALL_LAG
for i in $(seq 1 "$SMALL"); do
  echo "$i" >"$small/n"; git -C "$small" commit -q -am "$i"
  tip=$(git -C "$small" rev-parse HEAD)
  order="off on"; [ $(( i % 2 )) -eq 0 ] && order="on off"
  for mode in $order; do
    t0=$(now); git -C "$small" push -q "ssh://git@127.0.0.1:${PORT[$mode]}/small" main; t1=$(now)
    if [ "$mode" = on ]; then SMALL_ON+=("$(echo "$t1 - $t0" | bc)"); wait_replicated small "$tip"; SMALL_LAG+=("$(echo "$(now) - $t1" | bc)")
    else SMALL_OFF+=("$(echo "$t1 - $t0" | bc)"); fi
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${PUSH_OFF[@]}"); mn=$(median "${PUSH_ON[@]}"); ml=$(median "${LAG[@]}")
so=$(median "${SMALL_OFF[@]}"); sn=$(median "${SMALL_ON[@]}"); sl=$(median "${SMALL_LAG[@]}")
echo
echo "patchd $("$PATCHD_BIN" version | cut -d' ' -f2), $(nproc) cores, ${SIZE_MB} MB pushes x $RUNS, small pushes x $SMALL, part ${PART_MB} MB"
printf '%-28s %10s %10s %8s\n' "" "off (s)" "on (s)" "on/off"
printf '%-28s %10.3f %10.3f %8.3f\n' "push ${SIZE_MB} MB (median)" "$mo" "$mn" "$(echo "$mn / $mo" | bc -l)"
printf '%-28s %10.3f %10.3f %8.3f\n' "push small commit (median)" "$so" "$sn" "$(echo "$sn / $so" | bc -l)"
printf '%-28s %10s %10.3f\n' "lag after ${SIZE_MB} MB push" "" "$ml"
printf '%-28s %10s %10.3f\n' "lag after small push" "" "$sl"
echo "all ${SIZE_MB} MB pushes off: ${PUSH_OFF[*]}"
echo "all ${SIZE_MB} MB pushes on:  ${PUSH_ON[*]}"
echo "all lags:                ${LAG[*]}"
