#!/usr/bin/env bash
# Installs what the offsite replication tests need when missing: age (Debian), moto[server] and the AWS CLI (PyPI).
set -euo pipefail
if ! command -v age >/dev/null || ! command -v age-keygen >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends age >/dev/null
fi
pip_install() {
  # Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told.
  python3 -m pip install -q "$@" || python3 -m pip install -q --break-system-packages "$@"
}
command -v moto_server >/dev/null || pip_install 'moto[server]'
command -v aws >/dev/null || pip_install awscli
command -v moto_server >/dev/null && command -v aws >/dev/null
