"""CPU throughput of our depthwise forward vs an im2col + GEMM grouped convolution.

For every depthwise layer of SSDLite-MobileNetV2 at 300×300 (3×3, TF SAME pads), times
  * ours:    transpiler.kernels' C++ direct kernel (through ctypes; single thread), and
  * im2col:  what Caffe's `Convolution` with group = C does on the CPU: im2col of each channel
             (a C×9×(OH·OW) buffer) followed by one small GEMM per group, here a batched
             `np.matmul` (C, M, 9) @ (C, 9, OH·OW) on float32,
and prints milliseconds per call, the effective bandwidth of ours (input + output bytes / time) and
the ratio im2col/ours (> 1: ours is faster). BLAS threads are pinned to 1 (set before NumPy loads)
so both sides are single-threaded. Usage: python bench/bench_depthwise_cpu.py [--batch N] [--min-time S]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from numpy.lib.stride_tricks import as_strided  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mobilenet_shapes import MOBILENET_V2_SSDLITE_300  # noqa: E402

from transpiler.kernels import build  # noqa: E402
from transpiler.kernels import reference as ref  # noqa: E402


def im2col_gemm(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int,
                pads: tuple[int, int, int, int]) -> np.ndarray:
    """Grouped convolution (group = C) the way Caffe's CPU path computes it: im2col, then GEMM."""
    n, c, h, wd = x.shape
    cm, _, kh, kw = w.shape
    m = cm // c
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - kh) // stride + 1
    ow = (wd + pl + pr - kw) // stride + 1
    s = xp.strides
    out = np.empty((n, cm, oh * ow), dtype=x.dtype)
    wmat = w.reshape(c, m, kh * kw)
    for i in range(n):
        view = as_strided(xp[i], shape=(c, kh, kw, oh, ow),
                          strides=(s[1], s[2], s[3], s[2] * stride, s[3] * stride))
        cols = np.ascontiguousarray(view).reshape(c, kh * kw, oh * ow)  # the im2col buffer
        out[i] = np.matmul(wmat, cols).reshape(cm, oh * ow)
    out += b[None, :, None]
    return out.reshape(n, cm, oh, ow)


def timeit(fn: Callable[[], object], min_time: float) -> float:
    """Median seconds per call over 5 rounds of at least min_time/5 each."""
    fn()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 5 or reps >= 1 << 16:
            break
        reps *= 2
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        rounds.append((time.perf_counter() - t0) / reps)
    return float(np.median(rounds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.25, help="seconds of timing per layer and side")
    args = ap.parse_args()

    cpu = build.CPUKernels()
    rng = np.random.default_rng(0)
    print(f"# depthwise 3x3 forward, SSDLite-MobileNetV2 300x300 shapes, batch {args.batch}, float32, 1 thread")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy {np.__version__}")
    header = (f"{'layer':22s} {'C':>5s} {'in':>4s} {'s':>2s} {'out':>4s} {'ours ms':>9s} {'GB/s':>6s} "
              f"{'im2col ms':>10s} {'ratio':>6s}")
    print(header)
    print("-" * len(header))
    tot_ours = tot_ref = 0.0
    for layer in MOBILENET_V2_SSDLITE_300:
        x = rng.standard_normal((args.batch, layer.channels, layer.size, layer.size)).astype(np.float32)
        w = rng.standard_normal((layer.channels, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(layer.channels).astype(np.float32)
        stride, pads = (layer.stride, layer.stride), layer.pads()
        y = cpu.depthwise_forward(x, w, b, stride=stride, pads=pads)
        y2 = im2col_gemm(x, w, b, layer.stride, pads)
        err = ref.max_rel_error(y, y2)
        if err > 1e-5:
            print(f"MISMATCH on {layer.name}: rel err {err:.2e}", file=sys.stderr)
            return 1
        t_ours = timeit(partial(cpu.depthwise_forward, x, w, b, stride=stride, pads=pads), args.min_time)
        t_ref = timeit(partial(im2col_gemm, x, w, b, layer.stride, pads), args.min_time)
        gbs = (x.nbytes + y.nbytes) / t_ours / 1e9
        tot_ours += t_ours * layer.repeat
        tot_ref += t_ref * layer.repeat
        print(f"{layer.name:22s} {layer.channels:5d} {layer.size:4d} {layer.stride:2d} {layer.out_size():4d} "
              f"{t_ours * 1e3:9.3f} {gbs:6.2f} {t_ref * 1e3:10.3f} {t_ref / t_ours:6.2f}")
    print("-" * len(header))
    print(f"{'network total (x count)':22s} {'':5s} {'':4s} {'':2s} {'':4s} {tot_ours * 1e3:9.3f} {'':6s} "
          f"{tot_ref * 1e3:10.3f} {tot_ref / tot_ours:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
