#!/usr/bin/env bash
# Run the prepared GPU depthwise benchmark and keep its output (a few minutes on one GPU).
#   bench/gpu_depthwise.sh [extra args for gpu_depthwise.py]
# Writes gpu_depthwise_<host>.txt in $OUT if set, else in the current directory.
set -uo pipefail
cd "$(dirname "$0")/.."
dest="${OUT:-.}/gpu_depthwise_$(hostname).txt"
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no NVIDIA GPU visible (nvidia-smi -L failed)" | tee "$dest"
  exit 2
fi
export TRANSPILER_KERNELS_CACHE="${TRANSPILER_KERNELS_CACHE:-${TMPDIR:-/tmp}/transpiler-kernels-bench}"
timeout 900 python3 bench/gpu_depthwise.py "$@" 2>&1 | tee "$dest"
exit "${PIPESTATUS[0]}"
