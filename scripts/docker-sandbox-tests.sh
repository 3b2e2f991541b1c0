#!/usr/bin/env bash
# Runs the container sandbox suite against docker too (CI, after `make test`): installs Debian's
# docker.io, starts a dockerd of its own (private data root, no bridge or iptables: the sandbox
# uses --network none), loads the test image from podman, runs ContainerSandboxTests with
# container_engine docker, and stops dockerd by its PID. Needs root and the podman image from
# scripts/setup-container-sandbox.sh. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${PATCHD_TEST_IMAGE:-localhost/patchd-sandbox-test}"
if [ "$(id -u)" -ne 0 ]; then
  echo "docker-sandbox-tests: run as root (starts dockerd)" >&2
  exit 1
fi
command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
if [ -S /var/run/docker.sock ] && docker info >/dev/null 2>&1; then
  echo "docker-sandbox-tests: a docker daemon already runs; using it" >&2
  pid=""
else
  root="$(mktemp -d /tmp/patchd-dockerd-XXXXXX)"
  dockerd --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
    --iptables=false --bridge=none --host unix:///var/run/docker.sock >"$root/dockerd.log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$root"' EXIT
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker-sandbox-tests: dockerd did not start:" >&2; tail -20 "$root/dockerd.log" >&2; exit 1; }
fi
docker image inspect "$image" >/dev/null 2>&1 || podman save "$image" | docker load -q
PATCHD_TEST_CONTAINER_ENGINE=docker PATCHD_REQUIRE_CONTAINER_TESTS=1 PATCHD_BIN="$PWD/.build/debug/patchd" \
  timeout 900 swift test --skip-build --filter ContainerSandboxTests
