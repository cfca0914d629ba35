#!/usr/bin/env bash
# Debian packages the tests need beyond pip: a C++ compiler (kernels/ tests) and what the real Caffe
# runtime the tests build from source links against (tests/real_caffe.py). Installs only what is
# missing; uses sudo when not run as root. Safe to run again.
set -euo pipefail

PACKAGES=(g++ protobuf-compiler libprotobuf-dev libgoogle-glog-dev libgflags-dev libboost-system-dev
          libboost-thread-dev libboost-filesystem-dev libopenblas-dev libhdf5-dev libgtest-dev)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
