#!/usr/bin/env bash
# Prepares podman for the container sandbox tests: installs podman (and runc), makes it work on
# this host, and builds the small test image localhost/patchd-sandbox-test from Debian's own
# packages with debootstrap (no registry is needed). Idempotent; about 40 s the first time.
#
#   scripts/setup-container-sandbox.sh            # as root
#   PATCHD_TEST_IMAGE=name scripts/setup-container-sandbox.sh
#
# The real sandbox image (Ubuntu, Python, Node, build tools) is container/Containerfile.sandbox;
# this one carries only what the tests run: bash, coreutils, git, python3, socat.
set -euo pipefail
image="${PATCHD_TEST_IMAGE:-localhost/patchd-sandbox-test}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-container-sandbox: run as root (installs podman and writes /etc/containers)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap >/dev/null
fi

# crun (podman's default runtime on Debian 12) fails on some hosts where runc works: it refuses
# hybrid cgroups (v1 controllers plus a v2 mount) and, in some containers, setting rlimits that
# runc sets fine. Decided by trying: if the default runtime fails and runc works, use runc.
probe_dir="$(mktemp -d)"
trap 'rm -rf "$probe_dir"' EXIT
if ! podman image exists "$image"; then
  release="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  echo "setup-container-sandbox: building $image from Debian $release (debootstrap)..." >&2
  debootstrap --variant=minbase --include=git,ca-certificates,python3,socat \
    "$release" "$probe_dir/rootfs" "$mirror" >"$probe_dir/debootstrap.log" 2>&1 \
    || { tail -20 "$probe_dir/debootstrap.log" >&2; exit 1; }
  # uid 1000 "agent", as patchd's sandboxes name it.
  echo 'agent:x:1000:1000:patchd agent:/tmp:/bin/bash' >>"$probe_dir/rootfs/etc/passwd"
  echo 'agent:x:1000:' >>"$probe_dir/rootfs/etc/group"
  # Lets the tests tell the image's files from the host's.
  echo 'patchd-sandbox-test' >"$probe_dir/rootfs/etc/patchd-test-image"
  rm -rf "$probe_dir/rootfs/var/cache/apt/archives/"*.deb "$probe_dir/rootfs/var/lib/apt/lists/"*
  tar -C "$probe_dir/rootfs" -c . | podman import --quiet - "$image" >/dev/null
fi

# The same ulimits patchd passes (ContainerSandbox.arguments): its own hard limits, nproc at most pid_max.
nofile="$(ulimit -Hn)"; [ "$nofile" = unlimited ] && nofile=1048576
nproc="$(ulimit -Hu)"; pid_max="$(cat /proc/sys/kernel/pid_max)"
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc="$pid_max"; fi
run_probe() {
  podman "$@" run --rm --network none --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" "$image" true 2>&1
}
if ! out="$(run_probe)"; then
  if runc_out="$(run_probe --runtime runc)"; then
    echo "setup-container-sandbox: the default runtime fails here ($out); using runc" >&2
    mkdir -p /etc/containers/containers.conf.d
    printf '# patchd: the default OCI runtime fails on this host, runc works\n[engine]\nruntime = "runc"\n' \
      >/etc/containers/containers.conf.d/50-patchd-runc.conf
  else
    echo "setup-container-sandbox: podman cannot run $image: $out; with runc: $runc_out" >&2
    exit 1
  fi
fi
echo "setup-container-sandbox: $image ready ($(podman --version), runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'))" >&2
