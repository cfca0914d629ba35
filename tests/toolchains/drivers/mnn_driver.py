"""MNN 3.6.1: Caffe → .mnn through the C++ converter entry ``_tools.mnnconvert`` (never the ``mnnconvert``
script or ``MNN.tools``: importing ``MNN/tools/utils/log.py`` runs ``pip install`` and contacts a telemetry
endpoint), then the Module API on the CPU, precision High (float32).

The input is fed in the model's own format (NC4HW4): a plain NCHW variable gives silently wrong outputs when the
first layer is not a Convolution. Asking for a blob MNN fused away segfaults the process, so only existing
outputs are asked for. MNN's DetectionOutput writes ``[1,1,K,6]`` rows (no image_id column): the driver puts
the column back, so the test reads Caffe's ``[1,1,K,7]`` form.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, Outputs, feeds, main, stage


def run_net(spec: dict, clock: Clock) -> tuple[Outputs, list[str]]:
    import _tools  # the C++ converter (pybind11), no Python wrapper
    import MNN.expr as F
    import MNN.nn as nn

    model = Path(spec["result"]).with_suffix(".mnn")
    stage("convert")
    with clock("convert"):
        code = _tools.mnnconvert(["mnnconvert", "-f", "CAFFE", "--modelFile", spec["caffemodel"],
                                  "--prototxt", spec["prototxt"], "--MNNModel", str(model), "--bizCode", "tf2caffe"])
    if not model.exists() or model.stat().st_size == 0:
        raise RuntimeError(f"MNN converter wrote no model (returned {code})")
    stage("load")
    with clock("load"):
        module = nn.load_module_from_file(str(model), [spec["input"]], spec["outputs"],
                                          precision_mode=F.PrecisionMode.High, thread_num=2)
    stage("run")
    outputs = {}
    for pic, x in feeds(spec).items():
        with clock("run"):
            var = F.convert(F.const(x, list(x.shape), F.NCHW), F.NC4HW4)
            got = [np.array(F.convert(o, F.NCHW).read()) for o in module.onForward([var])]
        blobs = dict(zip(spec["outputs"], got, strict=True))
        for name, a in blobs.items():
            if a.ndim == 4 and a.shape[-1] == 6 and name == spec["options"].get("detections"):
                blobs[name] = np.concatenate([np.zeros((*a.shape[:-1], 1), a.dtype), a], axis=-1)
        outputs[pic] = blobs
    return outputs, []


def warm() -> None:
    import MNN.nn  # noqa: F401


if __name__ == "__main__":
    main(run_net, warm=warm, versions=lambda: {"MNN": importlib.metadata.version("MNN")})
