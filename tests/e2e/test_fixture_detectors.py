"""The shared OD API detector fixtures convert with default options and detect what TF detects.

References are TensorFlow's recorded outputs on real pictures (raw box encodings, class logits,
anchors, final detections). Caffe side, fed the same pixels: OpenCV dnn 4.x, and SSD-Caffe itself
(built from source with our layers, tests/real_caffe.py), whose PriorBox/DetectionOutput are the
ones SSD-Caffe deployments run. Raw tensors are compared through conversion.json's prior_to_anchor mapping; detections
are matched box by box after clipping Caffe's boxes to the image as TF does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_case, convert_model, detector_blobs, float64_raw_tensors, layer_types

from transpiler.errors import UnsupportedModelError
from transpiler.verify.detections import caffe_detections, compare_raw, match_detections, tf_detections
from transpiler.verify.runners import load_opencv_net, run_opencv

DETECTORS = ["pedestrian_ssdlite", "ssdlite_mnv2_1cls_dm035", "ssdlite_mnv2_coco90_dm035", "ssd_mnv2_voc20_dm035"]
PICTURES = ["astronaut", "camera", "coffee"]
LAYERS = ["mbox_loc", "mbox_conf_logits", "mbox_priorbox", "detection_out"]
RUNTIMES = ["opencv", "caffe"]  # OpenCV dnn, and SSD-Caffe itself built from source (tests/real_caffe.py)
# (model, flavor, runtime): every flavor SSD-Caffe runs, in both runtimes; the kernels flavor's
# DepthwiseConvolution exists only in a Caffe built with our layers, so it runs in the real Caffe alone
CASES = ([(m, "ssd", rt) for m in DETECTORS for rt in RUNTIMES]
         + [(m, "portable", rt) for m in ("pedestrian_ssdlite", "ssdlite_mnv2_coco90_dm035") for rt in RUNTIMES]
         + [(m, "kernels", "caffe") for m in ("pedestrian_ssdlite", "ssd_mnv2_voc20_dm035")])
_CONVERSIONS: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
Converted = tuple[str, Path, dict[str, Any], Any]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: "-".join(p))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """(model, output folder, conversion report, runtime: "opencv" or the real Caffe runner)."""
    return convert_case(request, tmp_path_factory, _CONVERSIONS)


def run_picture(name: str, out: Path, pic: str, runtime: Any = "opencv") -> tuple[Any, dict[str, np.ndarray]]:
    ref = np.load(fixture_model(name).parent / f"ref_{pic}.npz")
    x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)  # raw 0..255 RGB pixels, NCHW
    return ref, detector_blobs(out, x, runtime, pic)  # one run serves both tests of a picture


@pytest.mark.parametrize("pic", PICTURES)
def test_raw_tensors_and_priors_equal_tf(converted: Converted, pic: str) -> None:
    name, out, report, runtime = converted
    ref, got = run_picture(name, out, pic, runtime)
    rows = compare_raw(report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"],
                       ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"], 1e-4)
    assert rows[2].ok, (rows[2].max_abs, "priors differ from TF's anchors")
    if not (rows[0].ok and rows[1].ok):
        # Float32 rounding of TF's own run can exceed 1e-4 on these random-weight heads (box encodings are
        # scaled x8; the worst element is in the deepest, 1x1 head, after ~60 layers). Then the float64
        # evaluation is the reference: Caffe must be within 1e-4 of it, or within the order of TF's own
        # float32 error (two float32 implementations summing in different orders land at errors of the same
        # order, in either direction: at most twice TF's). Caffe-vs-TF then follows by the triangle inequality.
        enc64, logit64 = float64_raw_tensors(fixture_model(name), report["ssd"], ref["input"], (300, 300))
        exact = compare_raw(report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"], enc64, logit64,
                            None, 1e-4)
        for row, to64, ref64, tf_ref in zip(rows[:2], exact, (enc64, logit64),
                                            (ref["raw_box_encodings"], ref["raw_class_logits"]), strict=True):
            tf_error = float(np.abs(tf_ref - ref64.reshape(tf_ref.shape)).max()) / row.ref_max
            assert to64.rel <= max(1e-4, 2 * tf_error), (row.name, to64.rel, tf_error, row.rel)
    priors = got["mbox_priorbox"].reshape(2, -1, 4)
    assert np.allclose(priors[1], [0.1, 0.1, 0.2, 0.2])  # variances = 1 / (10, 10, 5, 5)


@pytest.mark.parametrize("pic", PICTURES)
def test_detections_match_tf_box_by_box(converted: Converted, pic: str) -> None:
    name, out, report, runtime = converted
    ref, got = run_picture(name, out, pic, runtime)
    tf = tf_detections(ref["detection_boxes"], ref["detection_scores"], ref["detection_classes"],
                       ref["num_detections"])
    caffe = caffe_detections(got["detection_out"])
    nms = report["ssd"]["nms"]
    result = match_detections(tf, caffe, keep_top_k=nms["keep_top_k"], nms_threshold=nms["nms_threshold"])
    assert result.ok, (result.unmatched_tf[:3], result.unmatched_caffe[:3])
    strong = [d for d in tf if d.score >= 0.01]
    assert result.matched >= len(strong)
    if name == "pedestrian_ssdlite" and pic in ("astronaut", "camera"):
        # the trained detector finds the astronaut and the cameraman, in both runtimes
        assert tf[0].score > 0.9 and caffe[0].score > 0.9 and caffe[0].label == 1


def test_prototxt_settings_follow_the_graph(converted: Converted) -> None:
    _, out, report, _ = converted
    text = (out / "deploy.prototxt").read_text()
    assert "clip: false" in text  # written explicitly: OpenCV would clip by default
    # top_k = the prior count: no pre-NMS cut, and written (tpu-mlir and x2paddle read an unset top_k as 0)
    num_priors = report["ssd"]["num_priors"]
    assert f"top_k: {num_priors}" in text and report["ssd"]["nms"]["top_k"] == num_priors
    # the runtimes derive the same float32 step from the layer sizes (MNN truncates an explicit fractional one)
    assert "step_h" not in text and "step_w" not in text
    assert "keep_top_k: 100" in text and "nms_threshold: 0.6" in text and "confidence_threshold: 1e-08" in text
    kinds = [k for _, k, _ in layer_types(out)]
    assert kinds[0] == "Input" and kinds[-1] == "DetectionOutput" and "Slice" not in kinds
    assert report["inputs"][0]["tf_tensor"] == "image_tensor:0" and report["inputs"][0]["shape"] == [1, 3, 300, 300]
    assert report["outputs"][0]["caffe_blob"] == "detection_out" and report["outputs"][0]["shape"] == [1, 1, 100, 7]
    ssd = report["ssd"]
    assert ssd["num_anchors"] == 1917 and len(ssd["prior_to_anchor"]) == ssd["num_priors"]
    assert sorted(a for a in ssd["prior_to_anchor"] if a >= 0) == list(range(1917))
    assert ssd["heads"][0]["dummy_priors_per_cell"] == 1  # reduce_boxes_in_lowest_layer: exact, via a dummy
    assert ssd["raw_tensors"]["box_encodings"]["tf_tensor"] == "Squeeze:0"
    assert any("clips" in w for w in report["warnings"])


def _edited_graph(name: str, tmp_path: Path, edit: Any) -> Path:
    from transpiler.frontends.tf.loader import load_graphdef

    graph = load_graphdef(fixture_model(name))
    edit(graph)
    path = tmp_path / "edited.pb"
    path.write_bytes(graph.SerializeToString())
    return path


def test_soft_nms_is_refused(tmp_path: Path) -> None:
    from transpiler.frontends.tf.tensors import numpy_to_tensor

    def soft(graph: Any) -> None:
        nodes = {n.name: n for n in graph.node}
        nms = next(n for n in graph.node if n.op == "NonMaxSuppressionV5")
        sigma = nodes[nms.input[5].split(":")[0]]
        sigma.attr["value"].tensor.CopyFrom(numpy_to_tensor(np.asarray(0.5, np.float32)))

    model = _edited_graph("ssdlite_mnv2_1cls_dm035", tmp_path, soft)
    with pytest.raises(UnsupportedModelError, match="soft-NMS"):
        convert_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_anchors_priorbox_cannot_express_are_refused(tmp_path: Path) -> None:
    from transpiler.frontends.tf.tensors import numpy_to_tensor

    anchors = np.load(fixture_model("pedestrian_ssdlite").parent / "ref_camera.npz")["anchors"].copy()
    anchors[5] += 0.01  # one anchor of the 19x19 layer moves: no PriorBox grid produces that

    def replace(graph: Any) -> None:
        node = next(n for n in graph.node if n.name == "Concatenate/concat")
        node.op = "Const"
        del node.input[:]
        node.attr.clear()
        node.attr["dtype"].type = 1
        node.attr["value"].tensor.CopyFrom(numpy_to_tensor(anchors))

    model = _edited_graph("pedestrian_ssdlite", tmp_path, replace)
    with pytest.raises(UnsupportedModelError, match="anchor"):
        convert_model(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bgr_input_order_feeds_cv2_images_directly(tmp_path: Path) -> None:
    report = convert_model(fixture_model("pedestrian_ssdlite"), tmp_path, input_order="bgr")
    assert report["inputs"][0]["channel_order"] == "bgr"
    ref = np.load(fixture_model("pedestrian_ssdlite").parent / "ref_camera.npz")
    net = load_opencv_net(tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel")
    bgr = ref["input"][..., ::-1].astype(np.float32).transpose(0, 3, 1, 2)  # what cv2.imread gives
    got = run_opencv(net, {"data": np.ascontiguousarray(bgr)}, LAYERS)
    rows = compare_raw(report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"],
                       ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"], 1e-4)
    assert all(r.ok for r in rows), [(r.name, r.rel) for r in rows]


def test_pipeline_config_overrides_nms_and_must_fit_the_model(tmp_path: Path) -> None:
    from transpiler.errors import UsageError

    config = (fixture_model("pedestrian_ssdlite").parent / "pipeline.config").read_text()
    edited = tmp_path / "pipeline.config"
    edited.write_text(config.replace("iou_threshold: 0.6", "iou_threshold: 0.45"))
    report = convert_model(fixture_model("pedestrian_ssdlite"), tmp_path / "out", pipeline_config=edited)
    assert "nms_threshold: 0.45" in (tmp_path / "out" / "deploy.prototxt").read_text()
    assert any("iou_threshold" in w and "differ" in w for w in report["warnings"])
    other = fixture_model("ssd_mnv2_voc20_dm035").parent / "pipeline.config"
    with pytest.raises(UsageError, match="num_classes is 20"):
        convert_model(fixture_model("pedestrian_ssdlite"), tmp_path / "bad", pipeline_config=other)
    assert not (tmp_path / "bad").exists()


def test_nms_top_k_is_opt_in_and_reported(tmp_path: Path) -> None:
    report = convert_model(fixture_model("ssdlite_mnv2_coco90_dm035"), tmp_path, options={"nms_top_k": 200})
    assert report["ssd"]["nms"]["top_k"] == 200 and "top_k: 200" in (tmp_path / "deploy.prototxt").read_text()
    assert any("--nms-top-k 200" in w for w in report["warnings"])
