"""Deployment toolchains: load/compile time and CPU inference time of our converted fixtures in each toolchain.

    python bench/bench_toolchains.py [--toolchains mnn,paddle,tpu-mlir,rknn] [--models M,...] [--runs 10]

For each toolchain (its cached venv, tests/toolchains/toolchain_envs.py: built on first use) and fixture
(default: the Keras 3 MobileNetV2 backbone and the pedestrian SSDLite detector), the fixture is converted with
that toolchain's flavor and handed to the toolchain's driver (tests/toolchains/drivers/, network cut off), fed
``--runs`` copies of the fixture's astronaut picture. Printed: the toolchain's import/compile time (MNN's
converter, x2paddle, TPU-MLIR's model_transform, RKNN's load_caffe + build), its load time (runtime/simulator
start), and the median per-picture inference time after the first run (2 threads where the runtime takes a
count; TPU-MLIR's figure is a model_runner process per picture, its MLIR reference interpreter, not a chip).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
sys.path[:0] = [str(REPO / "tests" / "toolchains")]

from toolchain_envs import TOOLCHAINS, ToolchainUnavailable, env_info, run_driver  # noqa: E402

from transpiler.convert import ConvertOptions, convert  # noqa: E402


def bench(toolchain: str, model: str, runs: int, work: Path) -> list[str]:
    out = work / f"{toolchain}_{model}"
    convert(ConvertOptions(model=FIXTURES / model / "model.pb", out_dir=out / "caffe", flavor=toolchain))
    report = json.loads((out / "caffe" / "conversion.json").read_text())
    entry = report["inputs"][0]
    x = np.load(FIXTURES / model / "ref_astronaut.npz")["input"].astype(np.float32).transpose(entry["permutation"])
    np.savez(out / "feeds.npz", **{f"run{i:03d}": x for i in range(runs)})
    blobs = (["mbox_loc", "mbox_conf_logits", "detection_out"] if "ssd" in report
             else [o["caffe_blob"] for o in report["outputs"]])
    spec = {"prototxt": str(out / "caffe" / "deploy.prototxt"), "caffemodel": str(out / "caffe" / "deploy.caffemodel"),
            "input": entry["caffe_blob"], "shape": entry["shape"], "outputs": blobs, "feeds": str(out / "feeds.npz"),
            "result": str(out / "result.npz"), "options": {"detections": "detection_out"}}
    answer = run_driver(toolchain, spec, out / "work", timeout=3600)
    each = answer["each"].get("run", [])
    steady = statistics.median(each[1:] if len(each) > 1 else each)
    versions = ", ".join(f"{k} {v}" for k, v in answer["versions"].items())
    return [toolchain, model, f"{answer['times'].get('convert', 0):.2f}", f"{answer['times'].get('load', 0):.2f}",
            f"{1000 * steady:.1f}", f"{1000 * each[0]:.1f}", versions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toolchains", default=",".join(TOOLCHAINS))
    parser.add_argument("--models", default="keras3_mnv2_300_notop,pedestrian_ssdlite")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    head = ["toolchain", "model", "compile s", "load s", "infer ms (median)", "first ms", "versions"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-toolchains-") as tmp:
        for toolchain in args.toolchains.split(","):
            for model in args.models.split(","):
                try:
                    rows.append(bench(toolchain, model, args.runs, Path(tmp)))
                except ToolchainUnavailable as exc:
                    rows.append([toolchain, model, "n/a", "", "", "", f"not installed: {exc}"[:80]])
                except AssertionError as exc:
                    rows.append([toolchain, model, "failed", "", "", "", str(exc).splitlines()[0][:80]])
                print(" | ".join(rows[-1]), flush=True)
            info = env_info(toolchain)
            if info:
                print(f"  ({toolchain} venv: built in {info['build_s']} s, {info['size_mb']} MB)", flush=True)
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
