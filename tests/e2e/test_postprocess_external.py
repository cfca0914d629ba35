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
from ssd_reference import SSDConfig, build_ssd_ir, reference_raw

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
    name, out, report = external
    ref = reference(name, pic)
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    got = run_opencv(net, {"data": ref["input"].astype(np.float32).transpose(0, 3, 1, 2)}, OUTPUTS)
    check_detections(ref, got["mbox_loc"], got["mbox_conf_logits"], out)
    # the verify helper's matching (what --verify of an external conversion reports) finds the same: no excuse
    from transpiler.verify.detections import match_postprocessed, postprocessed_detections, tf_detections

    tf = tf_detections(ref["detection_boxes"], ref["detection_scores"], ref["detection_classes"],
                       ref["num_detections"])
    result = match_postprocessed(tf, postprocessed_detections(report, out, got["mbox_loc"], got["mbox_conf_logits"]))
    assert result.ok and result.matched == len(tf) and not result.excused


def test_real_caffe_plus_ssd_postprocess_gives_tf_detections(external: Converted, real_caffe: Any) -> None:
    name, out, _ = external
    ref = reference(name, "astronaut")
    blobs = real_caffe.forward(out / "deploy.prototxt", out / "deploy.caffemodel",
                               [ref["input"].astype(np.float32).transpose(0, 3, 1, 2)])
    check_detections(ref, blobs["mbox_loc"], blobs["mbox_conf_logits"], out)


# ------------------------------------------------------------------ forms every toolchain reads (issue 12, item 0)
def _variant(out: Path, dest: Path, edit: Any) -> Path:
    """A copy of the converted model whose prototxt ``edit`` changed (weights shared)."""
    from google.protobuf import text_format

    from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

    net = text_format.Parse((out / "deploy.prototxt").read_text(), cp.NetParameter())
    edit(net)
    dest.mkdir()
    (dest / "deploy.prototxt").write_text(text_format.MessageToString(net))
    (dest / "deploy.caffemodel").write_bytes((out / "deploy.caffemodel").read_bytes())
    return dest


@pytest.fixture(scope="module")
def in_net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """pedestrian_ssdlite converted with the in-net postprocessing, and a variant with the old forms: PriorBox
    step_h/step_w written (image size / layer size) and DetectionOutput's top_k unset."""
    out = tmp_path_factory.mktemp("pedestrian_in_net")
    report = convert_model(fixture_model("pedestrian_ssdlite"), out)

    def old_forms(net: Any) -> None:
        for layer in net.layer:
            if layer.type == "PriorBox":
                head = int(layer.name.split("_")[1])  # mbox_<head>[_<group>]_priorbox
                feature = next(h["feature_map"] for h in report["ssd"]["heads"] if h["head"] == head)
                layer.prior_box_param.step_h = 300 / feature[0]
                layer.prior_box_param.step_w = 300 / feature[1]
            if layer.type == "DetectionOutput":
                layer.detection_output_param.nms_param.ClearField("top_k")

    return out, _variant(out, tmp_path_factory.mktemp("old") / "m", old_forms), report


def test_prior_step_is_left_to_the_runtime_and_top_k_written(in_net: tuple[Path, Path, dict[str, Any]]) -> None:
    out, _, report = in_net
    text = (out / "deploy.prototxt").read_text()
    assert "step_h" not in text and "step_w" not in text and "step:" not in text
    assert f"top_k: {report['ssd']['num_priors']}" in text and report["ssd"]["nms"]["top_k"] == 2278
    assert not [w for w in report["warnings"] if "step" in w]


@pytest.mark.parametrize("runtime", ["opencv", "caffe"])
def test_derived_step_and_explicit_top_k_change_nothing(in_net: tuple[Path, Path, dict[str, Any]], runtime: str,
                                                        request: pytest.FixtureRequest) -> None:
    """Both runtimes derive a missing step as float32(image size) / layer size: the priors are bit for bit those of
    the written 300/19 = 15.789…, and top_k = the prior count gives exactly the detections of an unset top_k."""
    out, old, _ = in_net
    assert "step_h: 15.78947" in (old / "deploy.prototxt").read_text()
    x = reference("pedestrian_ssdlite", "camera")["input"].astype(np.float32).transpose(0, 3, 1, 2)
    blobs = ["mbox_priorbox", "detection_out"]
    if runtime == "opencv":
        new_run = run_opencv(load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel"), {"data": x}, blobs)
        old_run = run_opencv(load_opencv_net(old / "deploy.prototxt", old / "deploy.caffemodel"), {"data": x}, blobs)
    else:
        caffe = request.getfixturevalue("real_caffe")
        new_run = caffe.forward(out / "deploy.prototxt", out / "deploy.caffemodel", [x])
        old_run = caffe.forward(old / "deploy.prototxt", old / "deploy.caffemodel", [x])
    for blob in blobs:
        np.testing.assert_array_equal(new_run[blob], old_run[blob])
    assert int((new_run["detection_out"][0, 0, :, 2] > 0).sum()) == 100


def test_a_step_that_must_be_written_is_flagged() -> None:
    """A step the runtimes would not derive (anchor strides of their own) is written; a fractional one is
    refused where the flavor's runtimes include a truncating one (MNN), and warned about elsewhere."""
    from transpiler.errors import UnsupportedModelError
    from transpiler.pass_manager import PassContext
    from transpiler.passes.ssd_detection_output import step_attrs

    ctx = PassContext(options={"prior_runtimes": ("ssd-caffe", "opencv")})
    assert step_attrs(300 / 19, 300 / 19, 300, 300, 19, 19, "p", ctx) == {"step_h": None, "step_w": None}
    assert step_attrs(8.0, 8.0, 300, 300, 38, 38, "p", ctx) == {"step_h": 8.0, "step_w": 8.0}
    assert not ctx.warnings  # a whole step reads the same everywhere
    assert step_attrs(7.5, 7.5, 300, 300, 38, 38, "p", ctx) == {"step_h": 7.5, "step_w": 7.5}
    assert len(ctx.warnings) == 1 and "MNN" in ctx.warnings[0] and "truncate" in ctx.warnings[0]
    with pytest.raises(UnsupportedModelError, match=r"MNN 3\.6\.1 truncate"):
        step_attrs(7.5, 7.5, 300, 300, 38, 38, "p", PassContext(options={"prior_runtimes": ("mnn", "opencv")}))


def test_identifier_names_keep_the_model_and_its_tf_names(tmp_path: Path) -> None:
    """--names identifiers: every layer and blob a unique lower-case identifier, the TF names in conversion.json,
    the same outputs bit for bit, the same names on every conversion."""
    from google.protobuf import text_format

    from transpiler.backends.caffe.flavors import is_identifier_name
    from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

    model = fixture_model("keras3_mnv2_300_notop")
    plain = convert_model(model, tmp_path / "tf")
    named = convert_model(model, tmp_path / "ids", names="identifiers")
    again = convert_model(model, tmp_path / "again", names="identifiers")
    text = (tmp_path / "ids" / "deploy.prototxt").read_text()
    assert text == (tmp_path / "again" / "deploy.prototxt").read_text() and named["blobs"] == again["blobs"]
    net = text_format.Parse(text, cp.NetParameter())
    layer_names = [layer.name for layer in net.layer]
    assert len(set(layer_names)) == len(layer_names)
    assert all(is_identifier_name(n) for layer in net.layer for n in (layer.name, *layer.top, *layer.bottom))
    original = named["original_names"]
    assert original["mobilenetv2_1_00_300_1_conv1_1_convolution"] == "mobilenetv2_1.00_300_1/Conv1_1/convolution"
    # every renamed blob maps back to the blob of the TF-named conversion, with the same TF tensor
    assert {original.get(b, b): e["tf_tensor"] for b, e in named["blobs"].items()} == {
        b: e["tf_tensor"] for b, e in plain["blobs"].items()}
    x = np.load(model.parent / "ref_coffee.npz")["input"].transpose(0, 3, 1, 2)
    outs = []
    for folder, report in ((tmp_path / "tf", plain), (tmp_path / "ids", named)):
        net_cv = load_opencv_net(folder / "deploy.prototxt", folder / "deploy.caffemodel")
        layer = report["outputs"][0]["caffe_layer"]
        outs.append(run_opencv(net_cv, {"input": np.ascontiguousarray(x)}, [layer])[layer])
    np.testing.assert_array_equal(outs[0], outs[1])


def _external_flavors() -> list[str]:
    from transpiler.backends.caffe.flavors import FLAVORS

    return sorted(name for name, f in FLAVORS.items() if f.postprocess == "external")


@pytest.mark.parametrize("flavor", _external_flavors())
def test_toolchain_flavors_export_the_network_alone_by_default(flavor: str, tmp_path: Path) -> None:
    """Flavors whose toolchain lacks DetectionOutput default to --postprocess external (and their own name rules):
    the files run in OpenCV and postprocess to TF's detections."""
    from transpiler.backends.caffe.flavors import FLAVORS, is_identifier_name

    report = convert_model(fixture_model("pedestrian_ssdlite"), tmp_path, flavor=flavor)
    assert "postprocess" in report and "ssd" not in report
    kinds = {k for _, k, _ in layer_types(tmp_path)}
    assert not kinds & {"PriorBox", "DetectionOutput"}
    if FLAVORS[flavor].identifier_names:
        assert all(is_identifier_name(n) for name, _, bottoms in layer_types(tmp_path) for n in (name, *bottoms))
    ref = reference("pedestrian_ssdlite", "astronaut")
    net = load_opencv_net(tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel")
    blobs = [report["postprocess"]["outputs"][k]["caffe_blob"] for k in ("box_encodings", "class_logits")]
    got = run_opencv(net, {"data": ref["input"].astype(np.float32).transpose(0, 3, 1, 2)}, blobs)
    check_detections(ref, got[blobs[0]], got[blobs[1]], tmp_path)


# ----------------------------------------------------------------- the NMS against TF's kernel, the C++ header
def _random_case(seed: int, anchors: int = 300, classes: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw tensors that exercise the corners: scores quantised to 1/64 (many exact ties, across and within
    classes), duplicated anchors (equal boxes), boxes partly or wholly outside the image, empty anchors."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-0.2, 1.2, (anchors, 2))
    size = rng.uniform(0.0, 0.5, (anchors, 2)) * (rng.random((anchors, 1)) > 0.05)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)
    boxes[1::7] = boxes[0::7][: len(boxes[1::7])]
    enc = rng.normal(0, 1.5, (anchors, 4)).astype(np.float32)
    enc[1::7] = enc[0::7][: len(enc[1::7])]
    probs = np.round(rng.uniform(0, 1, (anchors, classes + 1)) * 64) / 64
    logits = np.log(np.clip(probs, 1e-6, 1 - 1e-6) / np.clip(1 - probs, 1e-6, 1)).astype(np.float32)
    return enc, logits, boxes


@pytest.mark.parametrize("seed", range(6))
def test_nms_is_tf_non_max_suppression_v5(seed: int) -> None:
    """Our per-class NMS selects what TF's own NonMaxSuppressionV5 kernel selects, in its order (ties included)."""
    import tensorflow as tf

    from transpiler.runtime.ssd_postprocess import convert_scores, decode_boxes, nms

    enc, logits, anchors = _random_case(seed)
    boxes = decode_boxes(enc, anchors)
    boxes[3::11] = boxes[3::11][:, [2, 3, 0, 1]]  # corners given in the other order
    scores = convert_scores(logits, len(boxes))
    for c in range(scores.shape[1]):
        for iou, threshold, limit in ((0.6, 1e-8, 100), (0.3, 0.5, 20), (0.0, 0.0, 300)):
            want = tf.raw_ops.NonMaxSuppressionV5(
                boxes=boxes, scores=scores[:, c], max_output_size=limit, iou_threshold=np.float32(iou),
                score_threshold=np.float32(threshold), soft_nms_sigma=np.float32(0.0))[0].numpy()
            np.testing.assert_array_equal(nms(boxes, scores[:, c], iou, threshold, limit), want)


def test_score_converters_are_tf_s() -> None:
    import tensorflow as tf

    from transpiler.runtime.ssd_postprocess import convert_scores

    _, logits, _ = _random_case(0)
    logits = logits * np.float32(3)
    np.testing.assert_allclose(convert_scores(logits, len(logits), "sigmoid"), tf.sigmoid(logits).numpy()[:, 1:],
                               rtol=1e-6, atol=1e-12)  # TF's float32 sigmoid is within a few ulp of exact
    np.testing.assert_allclose(convert_scores(logits, len(logits), "softmax", 2.0),
                               tf.nn.softmax(logits / np.float32(2.0)).numpy()[:, 1:], rtol=1e-6, atol=1e-12)


@pytest.fixture(scope="module")
def native() -> Any:
    from transpiler.kernels.build import BuildError
    from transpiler.runtime import native as module

    try:
        module.library()
    except BuildError as exc:  # pragma: no cover - CI has g++
        pytest.skip(f"no C++ compiler: {exc}")
    return module


@pytest.mark.parametrize("name", DETECTORS)
def test_c_header_equals_numpy_on_the_fixtures(native: Any, name: str) -> None:
    for pic in PICTURES:
        ref = reference(name, pic)
        args = (ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"])
        want, got = postprocess(*args), native.postprocess_native(*args)
        for field in ("boxes", "scores", "classes", "anchors"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@pytest.mark.parametrize("seed", range(8))
def test_c_header_equals_numpy_on_corner_cases(native: Any, seed: int) -> None:
    enc, logits, anchors = _random_case(seed)
    settings = [PostprocessSettings(), PostprocessSettings(iou_threshold=0.3, score_threshold=0.5, max_per_class=7,
                                                           max_total=25),
                PostprocessSettings(score_converter="softmax", logit_scale=2.0, max_per_class=200, max_total=300),
                PostprocessSettings(scale_factors=(5.0, 5.0, 2.0, 2.0), clip_window=(0.1, 0.2, 0.8, 0.9))][seed % 4]
    want, got = postprocess(enc, logits, anchors, settings), native.postprocess_native(enc, logits, anchors, settings)
    assert len(want) > 0
    for field in ("boxes", "scores", "classes", "anchors"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


# ------------------------------------------------- other members of the family (synthetic OD API graphs)
SYNTHETIC = [
    # softmax with a logit scale, a per-class cap under the total, another IoU/threshold, a non-square input
    SSDConfig("ext_softmax", height=300, width=500, num_classes=5, score_converter="softmax", logit_scale=2.0,
              iou_threshold=0.5, score_threshold=0.05, max_per_class=10, max_total=30, seed=3),
    # anchor offsets of their own, which PriorBox cannot express (the in-net path refuses this model)
    SSDConfig("ext_offsets", num_classes=3, anchor_offsets=((0.25, 0.75),) * 6, seed=4),
]


@pytest.mark.parametrize("cfg", SYNTHETIC, ids=lambda c: c.name)
def test_external_follows_any_family_member(cfg: SSDConfig, tmp_path: Path) -> None:
    """OpenCV + ssd_postprocess against the OD API reference postprocessor (tests/ssd_reference.py, written from
    the API's documented semantics) evaluated on the reference interpreter's raw tensors."""
    from conftest import picture

    from transpiler.convert import ConvertOptions, convert

    calibration = picture("astronaut", (cfg.height, cfg.width)).astype(np.float32)[None]
    if cfg.anchor_offsets is not None:
        from transpiler.errors import UnsupportedModelError

        with pytest.raises(UnsupportedModelError, match="offset"):
            convert(ConvertOptions(model=Path("synthetic"), out_dir=tmp_path / "in_net"),
                    graph=build_ssd_ir(cfg, calibration))
    convert(ConvertOptions(model=Path("synthetic"), out_dir=tmp_path, postprocess="external"),
            graph=build_ssd_ir(cfg, calibration))
    np.testing.assert_array_equal(load_priors(tmp_path), cfg.anchors())
    settings = PostprocessSettings.from_report(tmp_path)
    assert (settings.score_converter, settings.logit_scale, settings.max_per_class) == (
        cfg.score_converter, cfg.logit_scale, cfg.max_per_class)
    net = load_opencv_net(tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel")
    for pic in ("coffee", "chelsea"):
        x = picture(pic, (cfg.height, cfg.width)).astype(np.float32)[None]
        enc, logits = reference_raw(cfg, x, calibration)
        boxes, scores, classes, num = cfg.postprocess(enc, logits)
        n = int(num[0])
        on_ref = postprocess(enc, logits, cfg.anchors(), settings)  # the same raw tensors: the same list
        assert len(on_ref) == n and n > 0
        np.testing.assert_array_equal(on_ref.classes, classes[0, :n])
        np.testing.assert_allclose(on_ref.scores, scores[0, :n], rtol=0, atol=2e-7)
        np.testing.assert_allclose(on_ref.boxes, boxes[0, :n], rtol=0, atol=2e-7)
        got = run_opencv(net, {"data": x.transpose(0, 3, 1, 2)}, OUTPUTS)
        det = postprocess(got["mbox_loc"], got["mbox_conf_logits"], load_priors(tmp_path), settings)
        assert sorted(zip(det.anchors.tolist(), det.classes.tolist(), strict=True)) == sorted(
            zip(on_ref.anchors.tolist(), on_ref.classes.tolist(), strict=True))
