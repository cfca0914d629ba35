#!/usr/bin/env bash
# Debian packages the tests need beyond pip: a C++ compiler (kernels/ tests) and what the real Caffe
# runtime the tests build from source links against (tests/real_caffe.py). Installs only what is
# missing; uses sudo when not run as root. Safe to run again. When another apt or dpkg holds its lock
# (unattended-upgrades on a fresh machine), it waits for it (up to 10 minutes) instead of failing.
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
WAIT_S=${SYSTEM_DEPS_LOCK_WAIT:-600}

# apt-get with DPkg::Lock::Timeout waits for the dpkg lock; older apt (and the lists lock of some versions)
# fail at once with "Could not get lock", so that case is retried too until WAIT_S has passed.
apt_wait() {
  local start=$SECONDS log
  log=$(mktemp)
  while true; do
    if $SUDO apt-get -o DPkg::Lock::Timeout="$WAIT_S" "$@" 2>"$log"; then
      cat "$log" >&2; rm -f "$log"; return 0
    fi
    if grep -q "Could not get lock\|Unable to acquire the dpkg frontend lock\|Unable to lock" "$log" \
        && (( SECONDS - start < WAIT_S )); then
      echo "system-deps: another apt/dpkg holds the lock; waiting ..." >&2
      sleep 5
      continue
    fi
    cat "$log" >&2; rm -f "$log"; return 1
  done
}

apt_wait update -q
apt_wait install -y -q --no-install-recommends "${missing[@]}"
