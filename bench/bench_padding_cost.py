"""What exact TF SAME padding costs at inference, against the naive symmetric padding of the old scripts.

    python bench/bench_padding_cost.py [MODEL.pb ...] [--runs 50] [--threads 1]

Exact, ``ssd`` flavor (SSD-Caffe and OpenCV): uneven pads become an enlarged kernel with zero taps and
a symmetric pad (``symmetric-padding``). Exact, ``opencv`` flavor: OpenCV's own four-value ``pad``
(pads_begin, pads_end), the kernel unchanged. Naive: every uneven pad ``(begin, end)`` replaced by
``(max, max)`` — what the hand-written converters did; it shifts every stride-2 window by one pixel.
All are timed in OpenCV dnn (defaults, Winograd on) on the same input, interleaved, median of
``--runs``; the table also shows how far the naive model's raw outputs are from the exact one's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.convert import ConvertOptions, convert, default_pipeline
from transpiler.ir.core import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.verify.runners import load_opencv_net

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
DEFAULT = [FIXTURES / n / "model.pb" for n in ("pedestrian_ssdlite", "ssdlite_mnv2_coco90_dm035")]


@register_pass("naive-symmetric-padding")
class NaiveSymmetricPadding(Pass):
    """Benchmark only: pad (begin, end) → (max, max), the old scripts' inexact shortcut."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op == "Conv" and node.attrs.get("padding") == "EXPLICIT":
                t, b, left, r = node.attrs["pads"]
                if (t, left) != (b, r):
                    node.attrs["pads"] = (max(t, b), max(t, b), max(left, r), max(left, r))
                    changed = True
        return changed


def timed(fn: Any, runs: int) -> float:
    for _ in range(3):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=Path, default=DEFAULT)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    exact_passes = default_pipeline("ssd")
    naive_passes = [("naive-symmetric-padding" if n == "symmetric-padding" else n) for n in exact_passes]
    variants = (("exact", "ssd", exact_passes), ("native", "opencv", exact_passes), ("naive", "ssd", naive_passes))
    print(f"OpenCV {cv2.__version__}, {args.threads} thread(s), median of {args.runs} runs")
    print(f"{'model':<28} {'ssd ms':>8} {'opencv ms':>10} {'naive ms':>9} {'ssd/naive':>10} {'opencv/naive':>13} "
          f"{'naive max|Δ| (rel)':>19}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            nets, outs = {}, {}
            for label, flavor, passes in variants:
                out = Path(tmp) / f"{model.parent.name}_{label}"
                result = convert(ConvertOptions(model=model, out_dir=out, passes=passes, flavor=flavor))
                nets[label] = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel", winograd=True)
                shape = result.report["inputs"][0]["shape"]
                layer = result.report.get("ssd", {}).get("raw_tensors", {}).get("box_encodings", {}).get(
                    "caffe_blob", result.report["outputs"][0]["caffe_layer"])
                outs[label] = layer
            x = np.random.default_rng(0).uniform(0, 255, size=shape).astype(np.float32)
            results = {}
            for label, net in nets.items():
                net.setInput(x, result.report["inputs"][0]["caffe_blob"])  # type: ignore[attr-defined]
                results[label] = net.forward(outs[label]).copy()  # type: ignore[attr-defined]
            times: dict[str, list[float]] = {label: [] for label, _, _ in variants}
            rounds = 5  # interleaved, so load drifts hit both alike
            for _ in range(rounds):
                for label, net in nets.items():
                    times[label].append(timed(lambda net=net, layer=outs[label]: net.forward(layer),
                                              max(args.runs // rounds, 1)))
            exact, native, naive = (statistics.median(times[k]) for k in ("exact", "native", "naive"))
            err = float(np.abs(results["exact"] - results["naive"]).max() / np.abs(results["exact"]).max())
            same = float(np.abs(results["exact"] - results["native"]).max() / np.abs(results["exact"]).max())
            assert same < 1e-4, f"the two exact variants differ by {same}"
            print(f"{model.parent.name:<28} {exact * 1e3:>8.2f} {native * 1e3:>10.2f} {naive * 1e3:>9.2f} "
                  f"{exact / naive:>10.3f} {native / naive:>13.3f} {err:>19.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
