"""``--postprocess external`` + ``transpiler.runtime.ssd_postprocess`` give TF's detections, every one of them.

References: TensorFlow's recorded outputs of the four OD API detector fixtures on three real pictures (final
detections, and the raw box encodings, class logits and anchors they were computed from).

1. The postprocessor alone, fed TF's own raw tensors, reproduces TF's detection list row by row: same count,
   classes in the same order, scores and boxes within 2e-7 (TF's float32 sigmoid and exp differ from numpy's
   in the last bit or two; nothing else differs).
2. Converted with ``--postprocess external`` and run in OpenCV dnn (and in the real SSD-Caffe): the net's two
   outputs are TF's raw tensors in TF's order, the priors files are TF's anchors bit for bit, and the
   postprocessed detections are TF's: the same number, each TF detection paired one to one with a detection
   of the same class, from the same anchor as the postprocessor picks on TF's raw tensors. Scores and boxes
   then differ only by the float32 noise of the raw tensors (TF's own run is ~1e-4·max off a float64 one):
   ``|Δscore| ≤ max|Δlogit|/4`` (the sigmoid's slope is at most 1/4) and ``|Δbox| ≤ 1e-4``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_model, layer_types

from transpiler.runtime.ssd_postprocess import Detections, PostprocessSettings, load_priors, postprocess
from transpiler.verify.runners import load_opencv_net, run_opencv

DETECTORS = ["pedestrian_ssdlite", "ssdlite_mnv2_1cls_dm035", "ssdlite_mnv2_coco90_dm035", "ssd_mnv2_voc20_dm035"]
PICTURES = ["astronaut", "camera", "coffee"]
OUTPUTS = ["mbox_loc", "mbox_conf_logits"]
Converted = tuple[str, Path, dict[str, Any]]


def reference(name: str, pic: str) -> Any:
    return np.load(fixture_model(name).parent / f"ref_{pic}.npz")


def tf_list(ref: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(ref["num_detections"][0])
    return ref["detection_boxes"][0, :n], ref["detection_scores"][0, :n], ref["detection_classes"][0, :n]


@pytest.fixture(scope="module", params=DETECTORS)
def external(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    out = tmp_path_factory.mktemp(f"{request.param}_external")
    return request.param, out, convert_model(fixture_model(request.param), out, postprocess="external")


@pytest.mark.parametrize("pic", PICTURES)
@pytest.mark.parametrize("name", DETECTORS)
def test_postprocess_reproduces_tf_from_its_raw_tensors(name: str, pic: str) -> None:
    ref = reference(name, pic)
    det = postprocess(ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"], PostprocessSettings())
    boxes, scores, classes = tf_list(ref)
    assert len(det) == len(scores) == 100
    np.testing.assert_array_equal(det.classes, classes)  # same order, row by row
    np.testing.assert_allclose(det.scores, scores, rtol=0, atol=2e-7)
    np.testing.assert_allclose(det.boxes, boxes, rtol=0, atol=2e-7)
    padded = det.padded(100)
    assert padded["detection_boxes"].shape == ref["detection_boxes"].shape
    np.testing.assert_array_equal(padded["num_detections"], ref["num_detections"])


def test_external_conversion_writes_the_raw_net_priors_and_settings(external: Converted) -> None:
    name, out, report = external
    kinds = {k for _, k, _ in layer_types(out)}
    assert not kinds & {"PriorBox", "DetectionOutput", "Sigmoid", "Softmax"}, kinds
    anchors = reference(name, "camera")["anchors"]
    np.testing.assert_array_equal(load_priors(out), anchors)  # TF's anchors, bit for bit
    assert np.fromfile(out / "priors.bin", dtype="<f4").tobytes() == anchors.astype("<f4").tobytes()
    np.testing.assert_array_equal(np.loadtxt(out / "priors.txt", dtype=np.float32).reshape(-1, 4), anchors)
    section = report["postprocess"]
    assert [o["caffe_blob"] for o in report["outputs"]] == OUTPUTS
    assert section["outputs"]["box_encodings"]["tf_tensor"] == "Squeeze:0"
    assert section["outputs"]["class_logits"]["tf_tensor"] == "concat_1:0"
    assert section["anchors"]["count"] == len(anchors) and section["box_coder"]["scale_factors"] == [10, 10, 5, 5]
    assert section["nms"]["score_threshold"] == pytest.approx(1e-8) and section["nms"]["iou_threshold"] == 0.6
    assert section["nms"]["max_per_class"] == 100 and section["nms"]["max_total"] == 100
    assert section["score_converter"] == "sigmoid" and "ssd" not in report
    assert PostprocessSettings.from_report(out) == PostprocessSettings()  # these fixtures use TF's defaults
    assert json.loads((out / "conversion.json").read_text()) == report


def check_detections(ref: Any, loc: np.ndarray, logits: np.ndarray, out: Path) -> Detections:
    """The raw outputs equal TF's raw tensors (TF's order), and their postprocessing gives TF's detections."""
    tf_loc, tf_logits = ref["raw_box_encodings"], ref["raw_class_logits"]
    d_logit = float(np.abs(logits.reshape(-1) - tf_logits.reshape(-1)).max())
    d_loc = float(np.abs(loc.reshape(-1) - tf_loc.reshape(-1)).max())
    assert d_loc <= 2e-4 * np.abs(tf_loc).max() and d_logit <= 2e-4 * np.abs(tf_logits).max(), (d_loc, d_logit)
    settings = PostprocessSettings.from_report(out)
    det = postprocess(loc, logits, load_priors(out), settings)
    on_tf = postprocess(tf_loc, tf_logits, ref["anchors"], settings)
    boxes, scores, classes = tf_list(ref)
    assert len(det) == len(scores) and np.array_equal(on_tf.classes, classes)
    # the same detections (anchor, class) as from TF's raw tensors: nothing gained, lost or swapped for another
    ours = list(zip(det.anchors.tolist(), det.classes.tolist(), strict=True))
    theirs = list(zip(on_tf.anchors.tolist(), on_tf.classes.tolist(), strict=True))
    assert sorted(ours) == sorted(theirs)
    # paired one to one with TF's recorded list (its rows are on_tf's rows, test 1)
    row = {key: i for i, key in enumerate(ours)}
    pairs = [row[key] for key in theirs]
    np.testing.assert_array_equal(det.classes[pairs], classes)
    np.testing.assert_allclose(det.scores[pairs], scores, rtol=0, atol=d_logit / 4 + 2e-7)
    np.testing.assert_allclose(det.boxes[pairs], boxes, rtol=0, atol=1e-4)
    return det


@pytest.mark.parametrize("pic", PICTURES)
def test_opencv_plus_ssd_postprocess_gives_tf_detections(external: Converted, pic: str) -> None:
    name, out, _ = external
    ref = reference(name, pic)
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    got = run_opencv(net, {"data": ref["input"].astype(np.float32).transpose(0, 3, 1, 2)}, OUTPUTS)
    check_detections(ref, got["mbox_loc"], got["mbox_conf_logits"], out)


def test_real_caffe_plus_ssd_postprocess_gives_tf_detections(external: Converted, real_caffe: Any) -> None:
    name, out, _ = external
    ref = reference(name, "astronaut")
    blobs = real_caffe.forward(out / "deploy.prototxt", out / "deploy.caffemodel",
                               [ref["input"].astype(np.float32).transpose(0, 3, 1, 2)])
    check_detections(ref, blobs["mbox_loc"], blobs["mbox_conf_logits"], out)
