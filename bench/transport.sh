#!/usr/bin/env bash
# bench/transport.sh: how fast patchd serves a clone, against stock OpenSSH.
#
# Measures the wall-clock time of `git clone --no-checkout` of one ~100 MB repository of
# incompressible content (one existing pack, so the server mostly streams bytes) from
#   - patchd (libssh server spawning git-upload-pack), and
#   - OpenSSH's sshd on the same machine, running plain git-upload-pack on a bare copy,
# with the same ssh client, the same git and the client's default algorithms for both.
# Clones alternate between the two servers (pairs, first one swapped each pair), every
# clone is checked (HEAD matches), and the script prints the median time of each, the
# median of the per-pair ratios patchd/openssh, the throughput (MB = 10^6 bytes of pack)
# and the cipher each side negotiated. Two more columns help read a noisy machine:
#   server_cpu_s  CPU seconds the server used per clone, its git children included (less
#                 sensitive to other load than wall-clock time);
#   setup_s       median `git ls-remote` time: connection, key exchange, auth, ref
#                 advertisement, no pack (the fixed part of every clone).
#
# Environment:
#   RUNS=5          clones per server (after one untimed warm-up clone of each)
#   SIZE_MB=100     repository size; the repository is built once and cached in bench/out/
#   FILES=4         random files, one per commit
#   PATCHD_BIN      patchd binary (default .build/release/patchd; build it with
#                   `swift build -c release`, or use `make bench`)
#   CLONE_FLAGS     extra flags for git clone (default --no-checkout: the checkout writes the
#                   same files for both servers and only dilutes the comparison)
# Needs: git, ssh, ssh-keygen, /usr/sbin/sshd (openssh-server), and root for sshd's /run/sshd.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/bench/out"
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-100}
FILES=${FILES:-4}
PATCHD_BIN=${PATCHD_BIN:-$ROOT/.build/release/patchd}
CLONE_FLAGS=${CLONE_FLAGS:---no-checkout}
SSHD=/usr/sbin/sshd

die() { echo "transport.sh: error: $*" >&2; exit 1; }
log() { echo "transport.sh: $*" >&2; }

[ -x "$PATCHD_BIN" ] || die "no patchd binary at $PATCHD_BIN (swift build -c release, or set PATCHD_BIN)"
[ -x "$SSHD" ] || die "no $SSHD (apt-get install openssh-server)"
case "$RUNS" in ''|*[!0-9]*|0) die "RUNS must be a positive integer" ;; esac
PATCHD_BIN=$(cd "$(dirname "$PATCHD_BIN")" && pwd)/$(basename "$PATCHD_BIN")

# Git isolated from the user's and the system's configuration.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0 LC_ALL=C
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
export GIT_AUTHOR_DATE="2025-01-01T00:00:00Z" GIT_COMMITTER_DATE="2025-01-01T00:00:00Z"

# ---------------------------------------------------------------------------------------
# 1. The repository, built once: FILES commits, each adding one file of random bytes,
#    fully packed. bench/out/bench.git is the bare copy OpenSSH serves.
SRC="$OUT/src"
BARE="$OUT/bench.git"
STAMP="$OUT/repo.stamp"
want_stamp="size_mb=$SIZE_MB files=$FILES"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_stamp" ]; then
  log "building a ${SIZE_MB} MB repository in $SRC (once)"
  rm -rf "$SRC" "$BARE" "$STAMP"
  mkdir -p "$SRC"
  git -C "$SRC" init -q -b main
  per_file=$(( SIZE_MB * 1000000 / FILES ))
  for i in $(seq 1 "$FILES"); do
    head -c "$per_file" /dev/urandom > "$SRC/blob$i.bin"
    git -C "$SRC" add "blob$i.bin"
    git -C "$SRC" commit -q -m "random blob $i"
  done
  git -C "$SRC" gc -q --prune=now
  git clone -q --bare --no-local "$SRC" "$BARE"
  git -C "$BARE" repack -adq
  echo "$want_stamp" > "$STAMP"
fi
HEAD_OID=$(git -C "$SRC" rev-parse HEAD)
[ "$(git -C "$BARE" rev-parse HEAD)" = "$HEAD_OID" ] || die "$BARE does not match $SRC; rm -rf $OUT and rerun"
PACK_BYTES=$(cat "$BARE"/objects/pack/*.pack | wc -c)

# ---------------------------------------------------------------------------------------
# 2. Scratch space, a client key, and cleanup of everything this script starts.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/patchd-bench.XXXXXX")
PATCHD_PID=""
SSHD_PID=""
stop_pid() { # SIGTERM, up to 10 s to exit, then SIGKILL
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local status=$?
  [ -z "$PATCHD_PID" ] || stop_pid "$PATCHD_PID"
  [ -z "$SSHD_PID" ] || stop_pid "$SSHD_PID"
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export HOME="$TMP/home"
mkdir -p "$HOME"
KEY="$TMP/bench_key"
ssh-keygen -q -t ed25519 -N "" -C bench@patchd -f "$KEY"

# The same ssh client and options for both servers: no user config (-F /dev/null), the
# client's default algorithms.
SSH_OPTS="-F /dev/null -i $KEY -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
export GIT_SSH_COMMAND="ssh $SSH_OPTS -o LogLevel=ERROR"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------
# 3. patchd on port 0 with a fresh data dir; the first push creates the repository.
PATCHD_LOG="$TMP/patchd.log"
: > "$PATCHD_LOG"
"$PATCHD_BIN" serve --data-dir "$TMP/patchd-data" --listen 127.0.0.1:0 --admin-key "$KEY.pub" \
  </dev/null >"$PATCHD_LOG" 2>&1 &
PATCHD_PID=$!
PATCHD_PORT=""
for _ in $(seq 1 300); do
  PATCHD_PORT=$(sed -n 's/^patchd: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$PATCHD_LOG" | head -1)
  [ -n "$PATCHD_PORT" ] && break
  kill -0 "$PATCHD_PID" 2>/dev/null || { cat "$PATCHD_LOG" >&2; die "patchd exited at start"; }
  sleep 0.1
done
[ -n "$PATCHD_PORT" ] || { cat "$PATCHD_LOG" >&2; die "patchd did not print its ready line"; }
PATCHD_URL="ssh://git@127.0.0.1:$PATCHD_PORT/bench"
log "patchd (pid $PATCHD_PID) on 127.0.0.1:$PATCHD_PORT; pushing the repository"
timeout 600 git -C "$SRC" push -q "$PATCHD_URL" main
# Same on-disk layout as the OpenSSH copy: one pack made by the same repack.
timeout 600 git -C "$TMP/patchd-data/repos/bench.git" repack -adq

# ---------------------------------------------------------------------------------------
# 4. OpenSSH's sshd, alone, on a free loopback port, with its own config and host key.
mkdir -p "$TMP/sshd"
ssh-keygen -q -t ed25519 -N "" -f "$TMP/sshd/host_ed25519"
[ -d /run/sshd ] || mkdir -p /run/sshd || die "sshd needs /run/sshd (run as root)"
SSHD_PORT=""
for _ in $(seq 1 20); do
  p=$(( 20000 + RANDOM % 40000 ))
  port_free "$p" || continue
  cat > "$TMP/sshd/sshd_config" <<EOF
Port $p
ListenAddress 127.0.0.1
HostKey $TMP/sshd/host_ed25519
PidFile $TMP/sshd/sshd.pid
AuthorizedKeysFile $KEY.pub
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
# git sends GIT_PROTOCOL=version=2; patchd honours it, so sshd must too.
AcceptEnv GIT_PROTOCOL
# Keeps bash from sourcing ~/.bashrc for the command (it does when run by sshd with
# SHLVL unset), which would add the user's shell start-up to every OpenSSH clone.
SetEnv SHLVL=1
LogLevel ERROR
EOF
  "$SSHD" -f "$TMP/sshd/sshd_config" -D -E "$TMP/sshd/sshd.log" &
  SSHD_PID=$!
  for _ in $(seq 1 50); do
    port_free "$p" || break
    kill -0 "$SSHD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SSHD_PID" 2>/dev/null && ! port_free "$p"; then SSHD_PORT=$p; break; fi
  wait "$SSHD_PID" 2>/dev/null || true
  SSHD_PID=""
done
[ -n "$SSHD_PORT" ] || { cat "$TMP/sshd/sshd.log" >&2 || true; die "could not start sshd"; }
OPENSSH_URL="ssh://$(id -un)@127.0.0.1:$SSHD_PORT$BARE"
log "sshd (pid $SSHD_PID) on 127.0.0.1:$SSHD_PORT serving $BARE"

# ---------------------------------------------------------------------------------------
# 5. What each side negotiates with the client's defaults.
negotiated() { # PORT USER COMMAND -> "CIPHER MAC M (kex K)"
  local v cipher kex
  # shellcheck disable=SC2086
  v=$(timeout 30 ssh -v $SSH_OPTS -p "$1" "$2@127.0.0.1" "$3" </dev/null 2>&1 >/dev/null || true)
  cipher=$(sed -n 's/.*kex: server->client cipher: \([^ ]*\) MAC: \([^ ]*\).*/\1 MAC \2/p' <<<"$v" | head -1)
  kex=$(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' <<<"$v" | head -1)
  echo "${cipher:-unknown} (kex ${kex:-unknown})"
}
CIPHER_PATCHD=$(negotiated "$PATCHD_PORT" git "git-upload-pack 'bench'")
CIPHER_OPENSSH=$(negotiated "$SSHD_PORT" "$(id -un)" "git-upload-pack '$BARE'")

# ---------------------------------------------------------------------------------------
# 6. The clones, alternating.
TIMES="$TMP/times"
: > "$TIMES"
# CPU seconds a server used so far: its own, plus that of its reaped children (sshd's
# session processes, git upload-pack and pack-objects): utime+stime+cutime+cstime.
TICK=$(getconf CLK_TCK)
server_cpu() { sed 's/^.*) //' "/proc/$1/stat" | awk -v hz="$TICK" '{ printf "%.3f\n", ($12 + $13 + $14 + $15) / hz }'; }
clone_once() { # NAME URL SERVER_PID -> prints "wall_seconds server_cpu_seconds"
  local dir="$TMP/clone-$1" t0 t1 c0 c1
  rm -rf "$dir"
  c0=$(server_cpu "$3")
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  timeout 600 git clone -q $CLONE_FLAGS "$2" "$dir" || die "clone from $1 failed"
  t1=$(date +%s.%N)
  [ "$(git -C "$dir" rev-parse HEAD)" = "$HEAD_OID" ] || die "clone from $1: HEAD is not $HEAD_OID"
  rm -rf "$dir"
  sleep 0.3 # lets the server reap its session processes, so their CPU is counted
  c1=$(server_cpu "$3")
  echo "$t0 $t1 $c0 $c1" | awk '{ printf "%.3f %.2f\n", $2 - $1, $4 - $3 }'
}
url_of() { if [ "$1" = patchd ]; then echo "$PATCHD_URL"; else echo "$OPENSSH_URL"; fi; }
pid_of() { if [ "$1" = patchd ]; then echo "$PATCHD_PID"; else echo "$SSHD_PID"; fi; }

# The fixed cost of one connection (connect, key exchange, auth, start upload-pack, ref
# advertisement) without a pack: `git ls-remote`, alternating the same way.
SETUP="$TMP/setup"
: > "$SETUP"
lsremote_once() { # URL -> seconds
  local t0 t1
  t0=$(date +%s.%N)
  timeout 120 git ls-remote "$1" >/dev/null || die "ls-remote $1 failed"
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}
for i in $(seq 1 "$RUNS"); do
  a=$(lsremote_once "$PATCHD_URL"); b=$(lsremote_once "$OPENSSH_URL")
  echo "$a $b" >> "$SETUP"
done

log "warm-up: one untimed clone from each"
clone_once patchd "$PATCHD_URL" "$PATCHD_PID" >/dev/null
clone_once openssh "$OPENSSH_URL" "$SSHD_PID" >/dev/null
for i in $(seq 1 "$RUNS"); do
  if [ $(( i % 2 )) -eq 1 ]; then order="patchd openssh"; else order="openssh patchd"; fi
  declare -A t=()
  for name in $order; do t[$name]=$(clone_once "$name" "$(url_of "$name")" "$(pid_of "$name")"); done
  # run patchd_wall patchd_cpu openssh_wall openssh_cpu
  echo "$i ${t[patchd]} ${t[openssh]}" >> "$TIMES"
  log "run $i/$RUNS: patchd ${t[patchd]% *} s, openssh ${t[openssh]% *} s (load $(cut -d' ' -f1 /proc/loadavg))"
  unset t
done
mkdir -p "$OUT"
cp "$TIMES" "$OUT/transport-last.txt"

# ---------------------------------------------------------------------------------------
# 7. The table.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
MED_P=$(awk '{ print $2 }' "$TIMES" | median)
MED_O=$(awk '{ print $4 }' "$TIMES" | median)
MED_R=$(awk '{ print $2 / $4 }' "$TIMES" | median)
CPU_P=$(awk '{ print $3 }' "$TIMES" | median)
CPU_O=$(awk '{ print $5 }' "$TIMES" | median)
SET_P=$(awk '{ print $1 }' "$SETUP" | median)
SET_O=$(awk '{ print $2 }' "$SETUP" | median)

echo
echo "patchd transport benchmark: git clone $CLONE_FLAGS of a $(awk -v b="$PACK_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB pack ($FILES commits), $RUNS alternating runs each"
echo "machine: $(nproc) cores, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "client: $(git --version), $(ssh -V 2>&1 | cut -d, -f1); servers: $("$PATCHD_BIN" version 2>/dev/null | head -1) / $("$SSHD" -V 2>&1 | head -1 | cut -d, -f1 || true)"
echo "cipher patchd : ${CIPHER_PATCHD:-unknown}"
echo "cipher openssh: ${CIPHER_OPENSSH:-unknown}"
[ "${CIPHER_PATCHD% (kex*}" = "${CIPHER_OPENSSH% (kex*}" ] || echo "note: the two servers negotiated different ciphers with the same client defaults"
[ "$CIPHER_PATCHD" = "$CIPHER_OPENSSH" ] || echo "note: the key exchanges differ; that only changes the connection set-up (setup_s)"
echo
printf '%-4s %10s %10s %8s %12s %12s\n' run patchd_s openssh_s ratio patchd_cpu_s openssh_cpu_s
awk '{ printf "%-4s %10.3f %10.3f %8.3f %12.2f %12.2f\n", $1, $2, $4, $2 / $4, $3, $5 }' "$TIMES"
echo
printf '%-8s %10s %8s %12s %10s\n' server median_s MB/s server_cpu_s setup_s
awk -v b="$PACK_BYTES" -v p="$MED_P" -v o="$MED_O" -v cp="$CPU_P" -v co="$CPU_O" -v sp="$SET_P" -v so="$SET_O" 'BEGIN {
  printf "%-8s %10.3f %8.1f %12.2f %10.3f\n", "patchd", p, b / 1e6 / p, cp, sp
  printf "%-8s %10.3f %8.1f %12.2f %10.3f\n", "openssh", o, b / 1e6 / o, co, so
}'
awk -v r="$MED_R" -v p="$MED_P" -v o="$MED_O" 'BEGIN {
  printf "\nratio patchd/openssh (median of per-pair ratios): %.3f  (ratio of medians: %.3f; goal <= 1.10)\n", r, p / o
}'
