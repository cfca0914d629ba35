"""RKNN-Toolkit2 2.5.0: ``load_caffe`` → ``build`` (no quantization: float16, the NPU's only float type) for rk3588
→ ``init_runtime()`` without a target, i.e. the x86 simulator; inputs fed NHWC (the model does its own scaling:
mean 0, std 1). The simulator computes in float16, so its outputs carry float16 rounding.

No network calls were found in the package (Python sources and strings of its extension modules); the tests
still run it with the network cut off.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

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
    finally:
        rknn.release()
    return outputs, []


def warm() -> None:
    import rknn.api  # noqa: F401


if __name__ == "__main__":
    main(run_net, warm=warm, versions=lambda: {"rknn-toolkit2": importlib.metadata.version("rknn-toolkit2")})
