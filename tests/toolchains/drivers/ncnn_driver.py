"""ncnn 1.0.20261020 through ONNX: caffe2onnx 2.0.1 (Caffe → ONNX, its own caffe.proto), then the ``pnnx`` binary of
the pnnx 20261020 wheel (ONNX → ncnn ``.param``/``.bin``, ``fp16=0``: its default stores float16 weights), then
ncnn's CPU runtime (float32: fp16 storage and arithmetic off). The ncnn wheel ships no Caffe converter, so this is
the route its users take. caffe2onnx is run in-process (``loadcaffemodel`` + ``Caffe2Onnx``); pnnx's console script
imports torch, so its binary is run directly.

pnnx names the ncnn blobs ``in0`` and ``out0, out1, ...`` in the ONNX graph's output order, which follows the Caffe
net's outputs; ncnn Mats carry no batch dimension (the test reshapes).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, Outputs, feeds, main, stage


def run_net(spec: dict, clock: Clock) -> tuple[Outputs, list[str]]:
    from caffe2onnx.src.caffe2onnx import Caffe2Onnx
    from caffe2onnx.src.load_save_model import loadcaffemodel, saveonnxmodel

    work = Path(spec["result"]).parent / (Path(spec["result"]).stem + "_ncnn")
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "m.onnx"
    stage("convert")
    with clock("convert"):
        graph, params = loadcaffemodel(spec["prototxt"], spec["caffemodel"])
        saveonnxmodel(Caffe2Onnx(graph, params, str(onnx_path)).createOnnxModel(), str(onnx_path))
        shape = ",".join(str(d) for d in spec["shape"])
        proc = subprocess.run([PNNX, "m.onnx", f"inputshape=[{shape}]", "fp16=0"], cwd=work,
                              capture_output=True, text=True)
    if proc.returncode != 0 or not (work / "m.ncnn.param").exists():
        raise RuntimeError(f"pnnx failed (exit {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    import ncnn

    stage("load")
    with clock("load"):
        net = ncnn.Net()
        net.opt.num_threads = 2
        net.opt.use_fp16_packed = net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = False
        net.opt.use_bf16_storage = False
        if net.load_param(str(work / "m.ncnn.param")) != 0 or net.load_model(str(work / "m.ncnn.bin")) != 0:
            raise RuntimeError("ncnn could not load the converted model")
    stage("run")
    outputs = {}
    for pic, x in feeds(spec).items():
        with clock("run"):
            ex = net.create_extractor()
            ex.input("in0", ncnn.Mat(np.ascontiguousarray(x[0])).clone())
            got = []
            for i in range(len(spec["outputs"])):
                code, mat = ex.extract(f"out{i}")
                if code != 0:
                    raise RuntimeError(f"ncnn: no blob out{i}")
                got.append(np.array(mat))
        outputs[pic] = dict(zip(spec["outputs"], got, strict=True))
    return outputs, []


PNNX = str(Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
           / "pnnx" / "pnnx")


def warm() -> None:
    import caffe2onnx.src.caffe2onnx  # noqa: F401
    import ncnn  # noqa: F401


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main(run_net, warm=warm, versions=lambda: {"caffe2onnx": importlib.metadata.version("caffe2onnx"),
                                               "ncnn": importlib.metadata.version("ncnn"),
                                               "pnnx": importlib.metadata.version("pnnx")})
