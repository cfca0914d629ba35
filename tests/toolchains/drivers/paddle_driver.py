"""x2paddle 1.6.0 + PaddlePaddle 2.6.2: Caffe → Paddle inference model with x2paddle's API (``caffe2paddle``,
``disable_feedback=True``: otherwise it sends a request to paddlepaddle.org.cn at start and end), then Paddle
Inference on the CPU (float32, MKL-DNN off: its fused kernels differ from the plain ones by more than rounding).

x2paddle names the inference model's outputs itself; they are matched to our blobs by the order of the Caffe net's
outputs (the tops no layer reads), which it keeps, and their shapes are checked.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Clock, Outputs, feeds, main, stage


def run_net(spec: dict, clock: Clock) -> tuple[Outputs, list[str]]:
    from x2paddle.convert import caffe2paddle

    save = Path(spec["result"]).parent / (Path(spec["result"]).stem + "_paddle")
    stage("convert")
    with clock("convert"):
        caffe2paddle(spec["prototxt"], spec["caffemodel"], str(save), None, disable_feedback=True)
    import paddle.inference as pi

    stage("load")
    with clock("load"):
        cfg = pi.Config()
        cfg.set_prog_file(str(save / "inference_model" / "model.pdmodel"))
        params = save / "inference_model" / "model.pdiparams"
        if params.exists():  # a net without weights has no parameter file
            cfg.set_params_file(str(params))
        cfg.disable_gpu()
        cfg.disable_mkldnn()
        cfg.set_cpu_math_library_num_threads(2)
        predictor = pi.create_predictor(cfg)
    names = predictor.get_output_names()
    if len(names) != len(spec["outputs"]):
        raise RuntimeError(f"x2paddle model has outputs {names}, expected {spec['outputs']}")
    stage("run")
    outputs = {}
    for pic, x in feeds(spec).items():
        with clock("run"):
            handle = predictor.get_input_handle(predictor.get_input_names()[0])
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
            predictor.run()
            got = [predictor.get_output_handle(n).copy_to_cpu() for n in names]
        outputs[pic] = dict(zip(spec["outputs"], got, strict=True))
    return outputs, [f"paddle outputs {names}"]


def warm() -> None:
    import paddle.inference  # noqa: F401
    import x2paddle.convert  # noqa: F401


if __name__ == "__main__":
    main(run_net, warm=warm, versions=lambda: {"x2paddle": importlib.metadata.version("x2paddle"),
                           "paddlepaddle": importlib.metadata.version("paddlepaddle")})
