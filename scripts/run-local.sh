#!/usr/bin/env bash
# `make run`: start patchd with the invoking user's SSH key as admin, and say how to use it.
set -euo pipefail

bin="${PATCHD_BIN:-.build/release/patchd}"
key=""
for t in ed25519 ecdsa rsa; do
  if [ -f "$HOME/.ssh/id_$t.pub" ]; then key="$HOME/.ssh/id_$t.pub"; break; fi
done
if [ -z "$key" ]; then
  mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$HOME/.ssh/id_ed25519" -C "$(whoami)@patchd"
  key="$HOME/.ssh/id_ed25519.pub"
  echo "patchd: created $HOME/.ssh/id_ed25519 (no passphrase) as your admin key"
fi

listen="${PATCHD_LISTEN:-127.0.0.1:2222}"
port="${listen##*:}"
host="${listen%:*}"
[ "$host" = "0.0.0.0" ] && host=127.0.0.1
cat <<MSG
patchd: admin key $key
patchd: in a git repository, add the remote and push a branch with a task:
    git remote add patchd ssh://git@$host:$port/\$(basename "\$PWD")
    mkdir -p .patchd && printf -- '---\nagent: command\nrun: |\n  echo hello > HELLO.txt\n---\nSay hello.\n' > .patchd/task.md
    git add .patchd && git commit -m 'try patchd' && git push -o wait patchd HEAD:try
    git fetch patchd agent/try && git diff HEAD FETCH_HEAD
or just: ssh -p $port git@$host help
MSG
exec "$bin" serve --admin-key "$key" --listen "$listen" "$@"
