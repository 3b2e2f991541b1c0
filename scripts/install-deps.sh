#!/usr/bin/env bash
# Installs the Debian packages patchd builds and runs with, when any is missing.
# Used by `make run`, `make test` and CI. Needs root (or sudo) only if something is missing.
set -euo pipefail

packages=(libssh-dev libgit2-dev libcurl4-openssl-dev libsqlite3-dev bubblewrap git openssh-client pkg-config
          util-linux socat squid age bsdutils procps sqlite3 python3)  # prlimit, unshare (sandbox limits, cache overlays), socat (API and egress bridges), squid (egress proxy), age (secrets); script, pgrep, sqlite3, python3 (tests)
if [ "${1:-}" = "--with-bench" ]; then
  packages+=(openssh-server hyperfine)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "patchd: installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "patchd: error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
