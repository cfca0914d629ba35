"""What ``--verify`` costs per flavor: OpenCV alone, or with numpy Clip (bvlc) or DepthwiseConvolution (kernels).

    python bench/bench_verify_runtime.py [MODEL.pb ...] [--runs 5]

For each model (default: the Keras MobileNetV2 fixture, 300×300) and flavor, the model is converted into
a temporary folder, then OpenCV dnn runs it on the CPU with Winograd off, as ``--verify`` does: the first
forward (which builds the layers, the numpy ones included) and the median of ``--runs`` further forwards.
Last, the whole ``python -m transpiler MODEL --flavor F --verify --per-layer`` process is timed once per
flavor (TF import, conversion, TF float32 and float64 runs, OpenCV, comparisons).

Measured (2 shared cores, OpenCV 4.14, TF 2.21), keras3_mnv2_300_notop: forward 0.048 s (ssd), 0.038 s
(bvlc, numpy Clip), 0.082 s (kernels, 17 numpy depthwise layers); the whole --verify --per-layer run
6-7 s in every flavor, mostly TF's import.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [REPO.parent / "shared" / "fixtures" / "keras3_mnv2_300_notop" / "model.pb"]
FLAVORS = ["ssd", "bvlc", "kernels"]


def forward_times(out: Path, runs: int) -> tuple[str, float, float]:
    from transpiler.verify.runners import load_opencv_net, run_opencv

    report = json.loads((out / "conversion.json").read_text())
    entry = report["inputs"][0]
    x = np.random.default_rng(0).uniform(-1, 1, entry["shape"]).astype(np.float32)
    layers = [o["caffe_layer"] for o in report["outputs"]]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    start = time.perf_counter()
    run_opencv(net, {entry["caffe_blob"]: x}, layers)
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_opencv(net, {entry["caffe_blob"]: x}, layers)
        times.append(time.perf_counter() - start)
    return net.runtime, first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for model in args.models:
        print(f"# {model}")
        print(f"{'flavor':<8} {'runtime':<48} {'first forward':>14} {'forward':>10} {'--verify --per-layer':>21}")
        for flavor in FLAVORS:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "out"
                subprocess.run([sys.executable, "-m", "transpiler", str(model), "-o", str(out), "--flavor", flavor],
                               check=True, capture_output=True)
                runtime, first, median = forward_times(out, args.runs)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "transpiler", str(model), "-o", str(Path(tmp) / "v"),
                                "--flavor", flavor, "--verify", "--per-layer"], check=True, capture_output=True)
                whole = time.perf_counter() - start
            print(f"{flavor:<8} {runtime:<48} {first:>12.3f} s {median:>8.3f} s {whole:>19.1f} s")


if __name__ == "__main__":
    main()
