"""Inference time in SSD-Caffe itself: depthwise convolution as Caffe's grouped Convolution (the `ssd` and
`portable` flavors) against this project's DepthwiseConvolution layer (the `kernels` flavor).

    python bench/bench_real_caffe.py [MODEL ...] [--repeats 20] [--threads 1,2] [--markdown]

The Caffe is the one the tests build (tests/real_caffe.py: SSD-Caffe from source, CPU, OpenBLAS, our
layers installed); the first run builds it (~2.5 min). For each model and flavor: the median whole
forward time, and the summed median time of the depthwise layers (grouped Convolution with
group = channels, or DepthwiseConvolution), timed layer by layer in the same process. The ratio column
is ssd / kernels (> 1: ours is faster). Inputs: the fixture's recorded astronaut picture.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
sys.path.insert(0, str(REPO / "tests"))

from real_caffe import RealCaffe, build  # noqa: E402

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp  # noqa: E402
from transpiler.convert import ConvertOptions, convert  # noqa: E402

DEFAULT = ["keras3_mnv2_300_notop", "pedestrian_ssdlite"]
FLAVORS = ["ssd", "portable", "kernels"]


def depthwise_layers(prototxt: Path) -> set[str]:
    net = text_format.Parse(prototxt.read_text(), cp.NetParameter())
    return {layer.name for layer in net.layer if layer.type == "DepthwiseConvolution"
            or (layer.type == "Convolution" and layer.convolution_param.group > 1)}


def measure(caffe: RealCaffe, model: str, flavor: str, threads: int, repeats: int, work: Path) -> dict[str, Any]:
    out = work / f"{model}_{flavor}"
    if not out.exists():
        convert(ConvertOptions(model=FIXTURES / model / "model.pb", out_dir=out, flavor=flavor))
    ref = np.load(FIXTURES / model / "ref_astronaut.npz")
    x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)
    total, layers = caffe.time(out / "deploy.prototxt", out / "deploy.caffemodel", [x], repeats, threads)
    dw = depthwise_layers(out / "deploy.prototxt")
    return {"total": total, "depthwise": sum(ms for name, _, ms in layers if name in dw), "count": len(dw)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=DEFAULT, help="fixture folder names")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    caffe = RealCaffe(build())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for threads in (int(t) for t in args.threads.split(",")):
                results = {f: measure(caffe, model, f, threads, args.repeats, Path(tmp)) for f in FLAVORS}
                rows.append((model, threads, results))
                print(f"measured {model}, {threads} thread(s)", file=sys.stderr, flush=True)
    head = ["model", "threads", *(f"{f} total ms" for f in FLAVORS), "ssd / kernels total",
            "depthwise ms ssd", "depthwise ms kernels", "ssd / kernels depthwise"]
    lines = []
    for model, threads, r in rows:
        lines.append([model, str(threads), *(f"{r[f]['total']:.1f}" for f in FLAVORS),
                      f"{r['ssd']['total'] / r['kernels']['total']:.2f}×", f"{r['ssd']['depthwise']:.1f}",
                      f"{r['kernels']['depthwise']:.1f}", f"{r['ssd']['depthwise'] / r['kernels']['depthwise']:.2f}×"])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
