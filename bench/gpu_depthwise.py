"""GPU benchmark: our CUDA depthwise forward vs PyTorch `conv2d(groups=C)` on MobileNetV2 shapes.

Prepared for a machine with an NVIDIA GPU and nvcc (a few minutes; non-interactive). It
  1. builds kernels/*/..._cuda.cu + bench/gpu_depthwise_timer.cu with nvcc (``-arch=native``, falling
     back to sm_90 and then to compute_75 PTX);
  2. checks our forward against the NumPy reference (float64) on a few shapes, and against PyTorch on
     every benchmarked shape when PyTorch with CUDA is importable;
  3. for every depthwise layer of SSDLite-MobileNetV2 at 300×300 (3×3, TF SAME pads) at batch 1 and 32,
     measures
       hot  : per-call time inside a CUDA graph of back-to-back calls (L2 warm, no launch overhead),
       cold : median time of single calls after evicting L2 (a memset of 4× the L2 size),
     for ours and for PyTorch's conv2d(groups=C) (PyTorch picks cuDNN or its own depthwise kernel;
     with --cudnn-direct also `torch.cudnn_convolution`), and the achieved DRAM bandwidth of the cold
     calls, bytes = input + output + weights + bias, as a fraction of the card's peak.

PyTorch's baseline pads symmetrically (padding=1); where TF SAME is uneven (stride 2 on an even input:
pads 0/1) the output size and the work are the same, only the window alignment differs.
Peak bandwidth: a table of known cards (H100 SXM/PCIe/NVL, H200, A100, ...), else 2·clock·bus width.
Targets (issue 4): faster than cuDNN at batch 1; ≥ 60% of peak bandwidth on the big layers.

A second table per batch times our kernel with 1, 2 and 4 outputs per thread (the strip kernel), to
check the launcher's choice (tk::dw_default_vec).

Usage: python bench/gpu_depthwise.py [--batches 1,32] [--hot-iters 50] [--cold-iters 30] [--cudnn-direct]
                                     [--no-variants]
Exit code: 0 measured, 2 no GPU / nvcc, 1 a correctness check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from mobilenet_shapes import MOBILENET_V2_SSDLITE_300, DwLayer  # noqa: E402


def _load(name: str) -> ModuleType:
    """transpiler.kernels.<name>, or kernels/<name>.py by path when the package is not installed."""
    try:
        return importlib.import_module(f"transpiler.kernels.{name}")
    except ImportError:
        spec = importlib.util.spec_from_file_location(f"tk_{name}", REPO / "kernels" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod


build: Any = _load("build")
ref: Any = _load("reference")

# Peak DRAM bandwidth (GB/s) by device-name substring; first match wins (most specific first).
PEAK_GBPS: list[tuple[str, float]] = [
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100 SXM", 3350.0),
    ("H100 80GB HBM3", 3350.0),  # SXM5 parts report this name
    ("H100", 3350.0),
    ("GH200", 4000.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("L4", 300.0),
    ("V100", 900.0),
    ("T4", 320.0),
]


def peak_gbps(name: str, mem_clock_khz: int, bus_bits: int) -> tuple[float, str]:
    for key, gbps in PEAK_GBPS:
        if key.lower() in name.lower():
            return gbps, f"table ({key})"
    return 2.0 * mem_clock_khz * 1e3 * bus_bits / 8 / 1e9, "2 x memory clock x bus width"


def build_library() -> Path:
    sources = (*build.CUDA_SOURCES, HERE / "gpu_depthwise_timer.cu")
    nvcc = build.find_nvcc()
    if nvcc is None:
        raise build.BuildError("nvcc not found")
    errors = []
    for arch in (("-arch=native",), ("-gencode=arch=compute_90,code=sm_90",),
                 ("-gencode=arch=compute_75,code=compute_75",)):
        try:
            return build.compile_shared(sources, compiler=nvcc, flags=(*build.NVCCFLAGS, *arch), name="tk_bench")
        except build.BuildError as exc:
            errors.append(str(exc).splitlines()[0])
    raise build.BuildError("all nvcc attempts failed:\n" + "\n".join(errors))


def geometry(layer: DwLayer, batch: int, pads: tuple[int, int, int, int] | None = None) -> Any:
    return build.DepthwiseGeometry(batch, layer.channels, 1, layer.size, layer.size, 3, 3, layer.stride,
                                   layer.stride, 1, 1, *(pads or layer.pads()))


def layer_bytes(layer: DwLayer, batch: int) -> int:
    out = layer.out_size()
    return 4 * (batch * layer.channels * (layer.size**2 + out**2) + layer.channels * 10)


def try_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def torch_timer(torch: Any, fn: Callable[[], Any], hot_iters: int, cold_iters: int,
                flush: Any) -> tuple[float, float, str]:
    """(hot µs, cold µs, how) for a PyTorch callable, mirroring gpu_depthwise_timer.cu."""
    stream = torch.cuda.Stream()
    how = "graph"
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                for _ in range(hot_iters):
                    fn()
            graph.replay()
            start.record(stream)
            for _ in range(3):
                graph.replay()
            end.record(stream)
        except Exception:  # capture refused: eager loop (includes launch overhead)
            how = "eager"
            torch.cuda.synchronize()
            start.record(stream)
            for _ in range(3 * hot_iters):
                fn()
            end.record(stream)
        end.synchronize()
        hot = start.elapsed_time(end) * 1000.0 / (3 * hot_iters)
        times = []
        for i in range(cold_iters):
            flush.fill_(i & 0xFF)
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) * 1000.0)
    return hot, float(np.median(times)), how


def check_against_reference(lib_path: Path) -> float:
    """Max relative error of our CUDA forward vs the float64 NumPy reference on a few shapes."""
    cuda = build.CUDAKernels(lib_path)
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, c, h, s, pads in [(2, 32, 38, 2, (0, 1, 0, 1)), (1, 96, 19, 1, (1, 1, 1, 1)),
                             (3, 16, 7, 2, (1, 1, 1, 1)), (1, 64, 1, 1, (1, 1, 1, 1))]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        y = cuda.depthwise_forward(x, w, b, stride=(s, s), pads=pads)
        y_ref = ref.depthwise_conv2d_nchw(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                          stride=(s, s), pads=pads)
        worst = max(worst, ref.max_rel_error(y, y_ref))
    return float(worst)


def main() -> int:
    try:
        return run()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--hot-iters", type=int, default=50)
    ap.add_argument("--cold-iters", type=int, default=30)
    ap.add_argument("--cudnn-direct", action="store_true", help="also time torch.cudnn_convolution")
    ap.add_argument("--no-variants", dest="variants", action="store_false",
                    help="skip the table comparing 1, 2 and 4 outputs per thread")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    t_start = time.time()

    smi = shutil.which("nvidia-smi")
    if smi:
        proc = subprocess.run([smi, "--query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem",
                               "--format=csv,noheader"], capture_output=True, text=True, check=False)
        print(f"# nvidia-smi: {proc.stdout.strip() or proc.stderr.strip()}")
    try:
        lib_path = build_library()
    except build.BuildError as exc:
        print(f"error: cannot build the CUDA library: {exc}", file=sys.stderr)
        return 2
    lib = ctypes.CDLL(str(lib_path))
    if lib.tk_cuda_device_count() == 0:
        print("error: no CUDA device visible", file=sys.stderr)
        return 2
    name_buf = ctypes.create_string_buffer(256)
    ints = [ctypes.c_int() for _ in range(6)]
    rc = lib.tk_bench_device_info(name_buf, 256, *(ctypes.byref(i) for i in ints))
    if rc != 0:
        print(f"error: device query failed ({rc})", file=sys.stderr)
        return 2
    name = name_buf.value.decode()
    clock_khz, bus_bits, l2_bytes, sms, ccmaj, ccmin = (i.value for i in ints)
    peak, peak_src = peak_gbps(name, clock_khz, bus_bits)
    print(f"# device: {name}, sm_{ccmaj}{ccmin}, {sms} SMs, L2 {l2_bytes / 2**20:.0f} MiB, "
          f"peak DRAM {peak:.0f} GB/s ({peak_src})")
    print(f"# library: {lib_path}")

    err = check_against_reference(lib_path)
    print(f"# ours vs NumPy float64 reference: max rel err {err:.2e}")
    if err > 1e-5:
        print("error: CUDA forward disagrees with the reference", file=sys.stderr)
        return 1

    torch = try_torch()
    flush = None
    if torch is None:
        print("# PyTorch with CUDA not available: timing ours only")
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        flush = torch.empty(max(4 * l2_bytes, 64 << 20), dtype=torch.uint8, device="cuda")
        print(f"# torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")

    lib.tk_bench_dwconv_forward.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p]

    def time_ours(layer: DwLayer, batch: int, vec: int) -> tuple[float, float] | None:
        hot, cold = ctypes.c_float(), ctypes.c_float()
        rc = lib.tk_bench_dwconv_forward(geometry(layer, batch).as_array(), vec, args.hot_iters, args.cold_iters,
                                         flush_bytes, ctypes.byref(hot), ctypes.byref(cold))
        if rc == -2:
            return None
        if rc != 0:
            raise RuntimeError(f"timing {layer.name} (batch {batch}, vec {vec}) failed: CUDA error {rc}")
        return hot.value, cold.value

    lib.tk_dwconv_forward_cuda_f32.argtypes = [ctypes.c_void_p] * 6
    lib.tk_bench_default_vec.argtypes = [ctypes.c_void_p]
    flush_bytes = max(4 * l2_bytes, 64 << 20)
    conv = torch.nn.functional.conv2d if torch is not None else None
    failures = 0
    summary: dict[int, dict[str, float]] = {}
    for batch in batches:
        cols = (f"{'layer':22s} {'C':>5s} {'in':>4s} {'s':>2s} | {'ours hot':>9s} {'torch hot':>9s} {'speedup':>7s} | "
                f"{'ours cold':>9s} {'%peak':>6s} {'torch cold':>10s} {'%peak':>6s}")
        print(f"\n## batch {batch}  (times in microseconds; speedup = torch/ours, hot)")
        print(cols)
        print("-" * len(cols))
        tot = {"ours": 0.0, "torch": 0.0}
        big: list[float] = []
        for layer in MOBILENET_V2_SSDLITE_300:
            timed = time_ours(layer, batch, 0)
            assert timed is not None
            hot_us, cold_us = timed
            nbytes = layer_bytes(layer, batch)
            ours_pct = 100.0 * nbytes / (cold_us * 1e-6) / (peak * 1e9)
            tot["ours"] += hot_us * layer.repeat
            if nbytes >= 2 * l2_bytes:
                big.append(ours_pct)
            t_hot = t_cold = float("nan")
            how = ""
            if torch is not None:
                x = torch.randn(batch, layer.channels, layer.size, layer.size, device="cuda")
                w = torch.randn(layer.channels, 1, 3, 3, device="cuda")
                b = torch.randn(layer.channels, device="cuda")

                def fn(x: Any = x, w: Any = w, b: Any = b, s: int = layer.stride,
                       c: int = layer.channels, conv: Any = conv) -> Any:
                    return conv(x, w, b, stride=s, padding=1, groups=c)

                y_t = fn()
                y_o = torch.empty_like(y_t)
                g_sym = geometry(layer, batch, pads=(1, 1, 1, 1))
                torch.cuda.synchronize()
                rc = lib.tk_dwconv_forward_cuda_f32(g_sym.as_array(), x.data_ptr(), w.data_ptr(), b.data_ptr(),
                                                    y_o.data_ptr(), None)
                torch.cuda.synchronize()
                rel = float((y_o - y_t).abs().max() / y_t.abs().max())
                if rc != 0 or rel > 1e-5:
                    print(f"error: {layer.name} batch {batch}: ours vs torch rel err {rel:.2e} (rc {rc})",
                          file=sys.stderr)
                    failures += 1
                t_hot, t_cold, how = torch_timer(torch, fn, args.hot_iters, args.cold_iters, flush)
                tot["torch"] += t_hot * layer.repeat
                if args.cudnn_direct and hasattr(torch, "cudnn_convolution"):
                    def fn2(x: Any = x, w: Any = w, s: int = layer.stride, c: int = layer.channels) -> Any:
                        return torch.cudnn_convolution(x, w, (1, 1), (s, s), (1, 1), c, True, False, False)
                    try:
                        d_hot, d_cold, _ = torch_timer(torch, fn2, args.hot_iters, args.cold_iters, flush)
                        how += f" cudnn_convolution hot {d_hot:.1f} cold {d_cold:.1f}"
                    except Exception as exc:
                        how += f" cudnn_convolution failed: {type(exc).__name__}"
                del x, w, b, y_t, y_o
            torch_pct = 100.0 * nbytes / (t_cold * 1e-6) / (peak * 1e9) if torch is not None else float("nan")
            speed = t_hot / hot_us if torch is not None else float("nan")
            print(f"{layer.name:22s} {layer.channels:5d} {layer.size:4d} {layer.stride:2d} | {hot_us:9.1f} "
                  f"{t_hot:9.1f} {speed:7.2f} | {cold_us:9.1f} {ours_pct:6.1f} {t_cold:10.1f} "
                  f"{torch_pct:6.1f}{'  [' + how + ']' if how and how != 'graph' else ''}")
        print("-" * len(cols))
        ratio = tot["torch"] / tot["ours"] if torch is not None else float("nan")
        print(f"{'network total (x count)':22s} {'':5s} {'':4s} {'':2s} | {tot['ours']:9.1f} {tot['torch']:9.1f} "
              f"{ratio:7.2f} |")
        if args.variants:
            print(f"\n### batch {batch}: outputs per thread (vec) -- hot / cold microseconds; * = default choice")
            print(f"{'layer':22s} {'vec=1':>15s} {'vec=2':>15s} {'vec=4':>15s}")
            for layer in MOBILENET_V2_SSDLITE_300:
                default = lib.tk_bench_default_vec(geometry(layer, batch).as_array())
                cells = []
                for vec in (1, 2, 4):
                    t = time_ours(layer, batch, vec)
                    mark = "*" if vec == default else " "
                    cells.append(f"{t[0]:6.1f} /{t[1]:6.1f}{mark}" if t else f"{'n/a':>14s} ")
                print(f"{layer.name:22s} {' '.join(cells)}")
        summary[batch] = {"ours": tot["ours"], "torch": tot["torch"],
                          "big_min_pct": min(big) if big else float("nan"),
                          "big_mean_pct": float(np.mean(big)) if big else float("nan"), "big_n": len(big)}

    print("\n## summary")
    for batch, s in summary.items():
        line = f"batch {batch}: ours {s['ours']:.1f} us per network pass (hot)"
        if torch is not None:
            line += f", torch {s['torch']:.1f} us -> {'FASTER' if s['ours'] < s['torch'] else 'slower'} " \
                    f"({s['torch'] / s['ours']:.2f}x)"
        if s["big_n"]:
            line += (f"; big layers (>= 2x L2, {s['big_n']}): cold bandwidth {s['big_mean_pct']:.0f}% of peak mean, "
                     f"{s['big_min_pct']:.0f}% min -> {'>= 60%' if s['big_min_pct'] >= 60 else '< 60%'}")
        else:
            line += "; no layer is >= 2x L2 at this batch"
        print(line)
    print(f"# total wall time {time.time() - t_start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
