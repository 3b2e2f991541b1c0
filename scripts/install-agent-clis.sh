#!/usr/bin/env bash
# Installs the real agent CLIs from PyPI wheels: Claude Code (inside claude-agent-sdk) and OpenAI's
# Codex (openai-codex-cli-bin), for the integration tests, CI and servers that want them.
#
#   scripts/install-agent-clis.sh [DIR]     # default: $PATCHD_AGENT_CLIS or ~/.cache/patchd/agent-clis
#
# Afterwards DIR/bin/claude and DIR/bin/codex (with codex-code-mode-host beside it) are the CLIs.
# The wheels are only unpacked (pip download + zipfile): no Python package is installed, so this
# works under PEP 668 too. Pinned versions; idempotent (a second run costs nothing).
set -euo pipefail
dir="${1:-${PATCHD_AGENT_CLIS:-${XDG_CACHE_HOME:-$HOME/.cache}/patchd/agent-clis}}"
claude_version="${PATCHD_CLAUDE_SDK_VERSION:-0.2.189}"   # claude_agent_sdk/_bundled/claude
codex_version="${PATCHD_CODEX_VERSION:-0.163.0}"         # codex_cli_bin/bin/codex

python="$(command -v python3 || true)"
[ -n "$python" ] || { echo "install-agent-clis: python3 is needed (apt-get install python3 python3-pip)" >&2; exit 1; }
if ! "$python" -m pip --version >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  else
    echo "install-agent-clis: pip is needed: apt-get install python3-pip" >&2; exit 1
  fi
fi

# unpack NAME VERSION DEST: the wheel for this machine, unpacked into DEST (kept once done).
unpack() {
  local name="$1" version="$2" dest="$3"
  [ -f "$dest/.complete" ] && return 0
  rm -rf "$dest" "$dest.tmp"
  mkdir -p "$dest.tmp/wheel"
  "$python" -m pip download -q --no-deps --only-binary=:all: "$name==$version" -d "$dest.tmp/wheel" >&2
  "$python" -m zipfile -e "$dest.tmp/wheel"/*.whl "$dest.tmp"
  rm -rf "$dest.tmp/wheel"
  touch "$dest.tmp/.complete"
  mv "$dest.tmp" "$dest"
}

mkdir -p "$dir/bin"
unpack claude-agent-sdk "$claude_version" "$dir/claude-agent-sdk-$claude_version"
unpack openai-codex-cli-bin "$codex_version" "$dir/openai-codex-cli-bin-$codex_version"
claude="$dir/claude-agent-sdk-$claude_version/claude_agent_sdk/_bundled/claude"
codex_bin="$dir/openai-codex-cli-bin-$codex_version/codex_cli_bin/bin"
# zipfile keeps no mode bits.
chmod 0755 "$claude" "$codex_bin/codex" "$codex_bin/codex-code-mode-host"
ln -sfn "$claude" "$dir/bin/claude"
ln -sfn "$codex_bin/codex" "$dir/bin/codex"
ln -sfn "$codex_bin/codex-code-mode-host" "$dir/bin/codex-code-mode-host"
echo "install-agent-clis: claude $("$dir/bin/claude" --version 2>/dev/null | head -1), codex $("$dir/bin/codex" --version 2>/dev/null | head -1) in $dir/bin" >&2
echo "$dir/bin"
