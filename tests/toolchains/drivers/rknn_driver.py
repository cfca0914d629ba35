"""RKNN-Toolkit2 2.5.0: ``load_caffe`` → ``build`` (no quantization: float16, the NPU's only float type) for rk3588
→ ``init_runtime()`` without a target, i.e. the x86 simulator; inputs fed NHWC (the model does its own scaling:
mean 0, std 1). The simulator computes in float16, so its outputs carry float16 rounding.

Its float32 path (spec option ``float32_reference``): ``accuracy_analysis(inputs=[<picture as NCHW .npy>],
output_dir)`` executes the imported graph in float32 and writes every tensor's "golden" value as text
(``golden/<file>.txt``: one ``%f`` number per line, 6 decimals, i.e. within 5e-7 of the float32 value; NCHW order,
as Caffe's blobs), the file named in ``map_name_to_file.txt`` beside it (tensor name → file: ``/`` and ``.``
become ``_``). Those of the net's outputs come back as ``<blob>@float32`` next to the simulator's ``<blob>``.

No network calls were found in the package (Python sources and strings of its extension modules); the tests
still run it with the network cut off.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, Outputs, feeds, main, stage


def run_net(spec: dict, clock: Clock) -> tuple[Outputs, list[str]]:
    from rknn.api import RKNN

    rknn = RKNN(verbose=False)
    try:
        rknn.config(mean_values=[[0.0] * spec["shape"][1]], std_values=[[1.0] * spec["shape"][1]],
                    target_platform=spec["options"].get("target", "rk3588"))
        stage("convert")
        with clock("convert"):
            if rknn.load_caffe(model=spec["prototxt"], blobs=spec["caffemodel"]) != 0:
                raise RuntimeError("rknn: load_caffe failed")
            if rknn.build(do_quantization=False) != 0:
                raise RuntimeError("rknn: build failed")
        stage("load")
        with clock("load"):
            if rknn.init_runtime() != 0:
                raise RuntimeError("rknn: init_runtime (simulator) failed")
        stage("run")
        outputs = {}
        for pic, x in feeds(spec).items():
            with clock("run"):
                got = rknn.inference(inputs=[np.ascontiguousarray(x.transpose(0, 2, 3, 1))], data_format="nhwc")
            if len(got) != len(spec["outputs"]):
                raise RuntimeError(f"rknn returned {len(got)} outputs, expected {spec['outputs']}")
            outputs[pic] = dict(zip(spec["outputs"], got, strict=True))
        if spec["options"].get("float32_reference"):
            stage("float32 reference")
            for pic, x in feeds(spec).items():
                with clock("float32_reference"):
                    golden = float32_reference(rknn, x, spec["outputs"], Path(f"float32_{pic}"))
                outputs[pic].update({f"{blob}{FLOAT32}": a for blob, a in golden.items()})
    finally:
        rknn.release()
    return outputs, []


FLOAT32 = "@float32"  # key suffix of accuracy_analysis's float32 outputs (test_toolchains.py reads it)


def float32_reference(rknn: Any, x: np.ndarray, blobs: list[str], folder: Path) -> dict[str, np.ndarray]:
    """RKNN's float32 execution of the imported graph on one NCHW input: ``accuracy_analysis``'s golden values of
    ``blobs`` (flat, NCHW order)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "input_nchw.npy", np.ascontiguousarray(x, np.float32))
    if rknn.accuracy_analysis(inputs=[str(folder / "input_nchw.npy")], output_dir=str(folder / "snap")) != 0:
        raise RuntimeError("rknn: accuracy_analysis failed")
    rows = [line.split() for line in (folder / "snap" / "map_name_to_file.txt").read_text().splitlines()]
    files = {row[0]: row[1] for row in rows if len(row) == 2}  # also the header row; the dashes are one word
    missing = [b for b in blobs if b not in files]
    if missing:
        raise RuntimeError(f"rknn: accuracy_analysis wrote no golden tensor for {missing}")
    golden = {b: np.loadtxt(folder / "snap" / "golden" / files[b], dtype=np.float32, ndmin=1) for b in blobs}
    shutil.rmtree(folder / "snap")  # every tensor of both runs as text: ~400 MB for a MobileNetV2
    return golden


def warm() -> None:
    import rknn.api  # noqa: F401


if __name__ == "__main__":
    main(run_net, warm=warm, versions=lambda: {"rknn-toolkit2": importlib.metadata.version("rknn-toolkit2")})
