"""TPU-MLIR 1.30.2 (Sophgo): ``model_transform`` imports the Caffe model into its top-level MLIR (its own Caffe
frontend, float32), then its reference run of that MLIR on the CPU (``model_runner --model m.mlir``).
Compiling for a chip (``model_deploy`` → bmodel, run on the cmodel simulator) is left out: minutes per picture for
the detectors (TOOLCHAINS.md).

The tools are console scripts of the venv (run with its bin first on PATH: they call each other through
``#!/usr/bin/env python3``). ``mbox_priorbox`` is folded to a weight by the transform, so it is not asked for;
the driver returns the priors it computes itself only when TPU-MLIR keeps them (the test then reads the Caffe
model's PriorBox output from OpenCV instead).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, Outputs, feeds, main, stage


def run_net(spec: dict, clock: Clock) -> tuple[Outputs, list[str]]:
    work = Path(spec["result"]).parent / (Path(spec["result"]).stem + "_tpu")
    work.mkdir(parents=True, exist_ok=True)
    wanted = [b for b in spec["outputs"] if b != "mbox_priorbox"]
    shape = ",".join(str(d) for d in spec["shape"])
    cmd = ["model_transform", "--model_name", "m", "--model_def", spec["prototxt"], "--model_data",
           spec["caffemodel"], "--input_shapes", f"[[{shape}]]", "--mlir", "m.mlir"]
    if spec["options"].get("detections"):
        cmd += ["--output_names", ",".join(wanted)]
    stage("convert")
    with clock("convert"):
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    if proc.returncode != 0 or not (work / "m.mlir").exists():
        raise RuntimeError(f"model_transform failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    stage("run")
    outputs = {}
    for pic, x in feeds(spec).items():
        feed: dict[str, Any] = {spec["input"]: x}
        np.savez(work / f"in_{pic}.npz", **feed)
        with clock("run"):
            proc = subprocess.run(["model_runner", "--input", f"in_{pic}.npz", "--model", "m.mlir", "--output",
                                   f"out_{pic}.npz"], cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"model_runner failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
        with np.load(work / f"out_{pic}.npz") as data:
            got = {k: data[k] for k in data.files}
        blobs = {}
        for blob in wanted:
            key = blob if blob in got else next((k for k in got if k.startswith(blob + "_")), None)
            if key is None:
                raise RuntimeError(f"TPU-MLIR outputs {sorted(got)} lack {blob}")
            blobs[blob] = np.asarray(got[key])
        outputs[pic] = blobs
    return outputs, []


def warm() -> None:
    import tpu_mlir  # noqa: F401


if __name__ == "__main__":
    main(run_net, warm=warm, versions=lambda: {"tpu_mlir": importlib.metadata.version("tpu_mlir")})
