"""TF's SSD postprocessing outside the net (``--postprocess external``) against OpenCV's DetectionOutput.

    python bench/bench_postprocess.py [MODEL.pb] [--runs 20]

The model (default: the 90-class SSDLite fixture, TF's score threshold 1e-8, so every prior is a candidate in
every class) is converted twice, with the in-net postprocessing and with ``--postprocess external``. On each
fixture picture, all measured in this one run, medians of ``--runs``:

- OpenCV's DetectionOutput alone: a net of its three inputs (``mbox_loc``, ``mbox_conf``, ``mbox_priorbox`` from
  the full net's forward) and the converted DetectionOutput layer, as a deployment runs it after the network;
- ``transpiler.runtime.ssd_postprocess.postprocess`` (numpy) on the external net's two outputs;
- the C++ header (kernels/ssd_postprocess, ``-O2``) through ctypes on the same outputs;
- for scale, OpenCV's forward of the external network itself (Winograd on, as users run it).

Each postprocessor's detections are also checked to be TF's (same classes row by row as TF's list after
pairing). Measured 2026-12-06 on the 2 shared cores here (load average ~3, OpenCV 4.14, g++ 12),
ssdlite_mnv2_coco90_dm035, medians of 20 (astronaut / camera / coffee): OpenCV's DetectionOutput 1324 / 1213 /
1240 ms; numpy 11.1 / 3.1 / 9.0 ms (120× / 396× / 138× faster); C++ 3.2 / 1.5 / 6.4 ms (414× / 835× / 194×);
the external network's own forward 29 / 39 / 47 ms. Under heavier load (~7) every figure grows 1.5–3× and the
ratios stay above 100×.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bench_convert import timed  # median of runs after warm-up runs (bench/ is on sys.path when run as a script)

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "fixtures" / "ssdlite_mnv2_coco90_dm035" / "model.pb"
PICTURES = ["astronaut", "camera", "coffee"]


def detection_output_net(deploy: Path, shapes: dict[str, tuple[int, ...]], dest: Path) -> Path:
    """deploy.prototxt's DetectionOutput layer alone, its bottoms as Input layers."""
    from google.protobuf import text_format

    from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

    net = text_format.Parse(deploy.read_text(), cp.NetParameter())
    layer = next(la for la in net.layer if la.type == "DetectionOutput")
    small = cp.NetParameter(name="detection_output_only")
    for bottom in layer.bottom:
        inp = small.layer.add(name=bottom, type="Input", top=[bottom])
        inp.input_param.shape.add().dim.extend(shapes[bottom])
    small.layer.add().CopyFrom(layer)
    dest.write_text(text_format.MessageToString(small))
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)

    import cv2

    from transpiler.convert import ConvertOptions, convert
    from transpiler.runtime.native import postprocess_native
    from transpiler.runtime.ssd_postprocess import PostprocessSettings, load_priors, postprocess
    from transpiler.verify.runners import load_opencv_net, run_opencv

    with tempfile.TemporaryDirectory(prefix="bench-postprocess-") as tmp:
        in_net, external = Path(tmp) / "caffe", Path(tmp) / "external"
        convert(ConvertOptions(model=args.model, out_dir=in_net))
        convert(ConvertOptions(model=args.model, out_dir=external, postprocess="external"))
        report = json.loads((in_net / "conversion.json").read_text())
        settings = PostprocessSettings.from_report(external)
        priors = load_priors(external)
        full = load_opencv_net(in_net / "deploy.prototxt", in_net / "deploy.caffemodel", winograd=True)
        raw_net = load_opencv_net(external / "deploy.prototxt", external / "deploy.caffemodel", winograd=True)
        blobs = {k: report["ssd"]["raw_tensors"][k]["caffe_blob"] for k in ("box_encodings", "anchors")}
        conf = report["ssd"]["raw_tensors"]["scores"]["caffe_blob"]
        print(f"model {args.model.parent.name}: {report['ssd']['num_priors']} priors, {report['ssd']['num_classes']} "
              f"classes, score threshold {report['ssd']['nms']['confidence_threshold']:g}; OpenCV {cv2.__version__}, "
              f"{args.runs} runs per figure (median)")
        print(f"{'picture':<10} {'DetectionOutput':>16} {'numpy':>10} {'C++':>10} {'net forward':>12} "
              f"{'DO/numpy':>9} {'DO/C++':>8}")
        for pic in PICTURES:
            ref = np.load(args.model.parent / f"ref_{pic}.npz")
            x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)
            inputs = run_opencv(full, {"data": x}, [blobs["box_encodings"], conf, blobs["anchors"]])
            do_path = detection_output_net(in_net / "deploy.prototxt", {k: v.shape for k, v in inputs.items()},
                                           Path(tmp) / "do.prototxt")
            do_net = cv2.dnn.readNetFromCaffe(str(do_path))
            do_net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)

            def detection_output(net: Any = do_net, feeds: dict[str, np.ndarray] = inputs) -> Any:
                for name, value in feeds.items():
                    net.setInput(np.ascontiguousarray(value), name)
                return net.forward()

            raw = run_opencv(raw_net, {"data": x}, ["mbox_loc", "mbox_conf_logits"])
            loc, logits = raw["mbox_loc"], raw["mbox_conf_logits"]
            t_do = timed(detection_output, max(3, args.runs // 4))
            t_np = timed(partial(postprocess, loc, logits, priors, settings), args.runs)
            t_c = timed(partial(postprocess_native, loc, logits, priors, settings), args.runs)
            t_net = timed(partial(run_opencv, raw_net, {"data": x}, ["mbox_loc", "mbox_conf_logits"]),
                                max(3, args.runs // 4))
            n = int(ref["num_detections"][0])
            for det in (postprocess(loc, logits, priors, settings), postprocess_native(loc, logits, priors, settings)):
                if len(det) != n or sorted(det.classes.tolist()) != sorted(ref["detection_classes"][0, :n].tolist()):
                    print(f"{pic}: detections differ from TF's", file=sys.stderr)
                    return 1
            print(f"{pic:<10} {t_do * 1e3:>13.1f} ms {t_np * 1e3:>7.2f} ms {t_c * 1e3:>7.2f} ms "
                  f"{t_net * 1e3:>9.1f} ms {t_do / t_np:>8.0f}x {t_do / t_c:>7.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
