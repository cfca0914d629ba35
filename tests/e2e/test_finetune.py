"""Fine-tuning outputs and class selection for converted detectors.

- every emitted prototxt parses with our schema; train/test/deploy share names and parameters of
  every layer with weights (so ``caffe train -weights deploy.caffemodel`` loads them all);
- the data layer's transform reproduces TF's Preprocessor on a real picture (TF run in-process);
- ``--keep-classes`` on the 90-class fixture gives the full model's raw scores for those classes and
  the full model's detections of those classes, relabelled (both models through OpenCV dnn);
- bad input: unknown class names, a label map that does not fit, ``--emit train`` on a classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_model
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import UsageError
from transpiler.verify.detections import caffe_detections
from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow

COCO90 = "ssdlite_mnv2_coco90_dm035"
EMIT = ("deploy", "train", "test", "solver")


def parse(path: Path, message: Any) -> Any:
    return text_format.Parse(path.read_text(), message)


@pytest.fixture(scope="module", params=["pedestrian_ssdlite", "ssdlite_mnv2_1cls_dm035", COCO90,
                                        "ssd_mnv2_voc20_dm035"])
def finetune(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    name = request.param
    out = tmp_path_factory.mktemp(f"ft_{name}")
    config = fixture_model(name).parent / "pipeline.config"
    report = convert_model(fixture_model(name), out, emit=EMIT, pipeline_config=config)
    return name, out, report


def test_every_file_parses_and_nets_share_weights(finetune: tuple[str, Path, dict]) -> None:
    _, out, report = finetune
    deploy = parse(out / "deploy.prototxt", cp.NetParameter())
    train = parse(out / "train.prototxt", cp.NetParameter())
    test = parse(out / "test.prototxt", cp.NetParameter())
    solver = parse(out / "solver.prototxt", cp.SolverParameter())
    labels = parse(out / "labelmap.prototxt", cp.LabelMap())
    weights = cp.NetParameter()
    weights.ParseFromString((out / "deploy.caffemodel").read_bytes())
    classes = report["ssd"]["num_classes"]
    assert [i.label for i in labels.item] == list(range(classes + 1))
    assert solver.train_net == "train.prototxt" and list(solver.test_net) == ["test.prototxt"]
    trainable = [layer for layer in weights.layer if layer.blobs and not layer.name.startswith("Preprocessor/")]
    assert len(trainable) > 50
    by_name = {net.name: {layer.name: layer for layer in net.layer} for net in (deploy, train, test)}
    for layer in trainable:
        for net in (train, test):
            twin = by_name[net.name][layer.name]
            # the deploy net's normalisation layer is replaced by the data layer's transform
            bottoms = ["data" if b.startswith("Preprocessor/") else b for b in by_name[deploy.name][layer.name].bottom]
            assert twin.type == layer.type and list(twin.bottom) == bottoms
            params = [f for f, _ in twin.ListFields() if f.name.endswith("_param") and f.name != "param"]
            for field in params:
                assert getattr(twin, field.name) == getattr(layer, field.name), (layer.name, field.name)
            if net is train:
                assert [p.lr_mult for p in twin.param][:1] == [1.0]
    loss = next(layer for layer in train.layer if layer.type == "MultiBoxLoss")
    assert loss.multibox_loss_param.num_classes == classes + 1
    assert loss.multibox_loss_param.conf_loss_type == cp.MultiBoxLossParameter.LOGISTIC  # weighted_sigmoid
    assert list(loss.bottom)[:2] == ["mbox_loc", "mbox_conf_logits"]
    evaluate = next(layer for layer in test.layer if layer.type == "DetectionEvaluate")
    assert evaluate.detection_evaluate_param.overlap_threshold == pytest.approx(0.5)
    assert report["inputs"][0]["channel_order"] == "bgr"
    assert any("loads every converted weight" in n for n in report["notes"])


def test_data_transform_reproduces_tf_preprocessing(finetune: tuple[str, Path, dict]) -> None:
    name, out, report = finetune
    train = parse(out / "train.prototxt", cp.NetParameter())
    transform = train.layer[0].transform_param
    ref = np.load(fixture_model(name).parent / "ref_coffee.npz")
    rgb = ref["input"]  # uint8 [1,300,300,3], already at the input size (resize excluded)
    feature = report["ssd"]["feature_input"]
    tf_pre = run_tensorflow(fixture_model(name), {"image_tensor:0": rgb}, [feature])[feature]
    bgr = rgb[..., ::-1].astype(np.float32)  # what Caffe's data layer decodes
    caffe = (bgr - np.asarray(transform.mean_value, np.float32)) * np.float32(transform.scale)
    np.testing.assert_allclose(caffe[..., ::-1], tf_pre, atol=2e-6)


def assert_selection_restricts(full_dir: Path, sel_dir: Path, kept: list[int], refs: list[Path]) -> None:
    """The selected model's scores are the full model's columns (background, kept...), and its detections are
    the full model's detections of the kept classes, relabelled 1..K (both through OpenCV dnn, on the pictures
    of the reference npz files)."""
    nets = {d: load_opencv_net(d / "deploy.prototxt", d / "deploy.caffemodel") for d in (full_dir, sel_dir)}
    for ref in refs:
        x = np.load(ref)["input"].astype(np.float32).transpose(0, 3, 1, 2)
        got = {d: run_opencv(net, {"data": x}, ["mbox_conf", "detection_out"]) for d, net in nets.items()}
        scores_sel = got[sel_dir]["mbox_conf"].reshape(-1, len(kept) + 1)
        scores_full = got[full_dir]["mbox_conf"].reshape(scores_sel.shape[0], -1)
        np.testing.assert_allclose(scores_sel, scores_full[:, [0, *kept]], rtol=1e-5, atol=1e-6)
        dets_full = caffe_detections(got[full_dir]["detection_out"])
        dets_sel = caffe_detections(got[sel_dir]["detection_out"])
        floor = min(d.score for d in dets_full)  # below it the full model's list is cut by keep_top_k
        relabel = {tf_id: i for i, tf_id in enumerate(kept, start=1)}
        want = sorted((relabel[d.label], round(d.score, 5)) for d in dets_full if d.label in relabel
                      and d.score > floor)
        have = sorted((d.label, round(d.score, 5)) for d in dets_sel if d.score > floor)
        assert have == want and want, ref.name


def _full_and_selected(tmp_path: Path, keep: str) -> tuple[dict, Path, Path]:
    convert_model(fixture_model(COCO90), tmp_path / "full")
    selected = convert_model(fixture_model(COCO90), tmp_path / "sel", keep_classes=keep)
    return selected, tmp_path / "full", tmp_path / "sel"


@pytest.mark.parametrize("keep", ["person,car,dog", "coco-to-voc"])
def test_keep_classes_equals_full_model_restricted(tmp_path: Path, keep: str) -> None:
    selected, full_dir, sel_dir = _full_and_selected(tmp_path, keep)
    kept = selected["ssd"]["class_selection"]["tf_class_ids"]
    assert len(kept) == (3 if "," in keep else 20)
    labels = parse(sel_dir / "labelmap.prototxt", cp.LabelMap())
    assert len(labels.item) == len(kept) + 1
    if keep == "coco-to-voc":
        assert labels.item[1].name == "aeroplane" and kept[0] == 5 and kept[-1] == 72  # airplane ... tv
    else:
        assert kept == [1, 3, 18]
    assert_selection_restricts(full_dir, sel_dir, kept, [fixture_model(COCO90).parent / f"ref_{pic}.npz"
                                                         for pic in ("astronaut", "coffee")])
    from transpiler.verify.harness import VerifyOptions, verify_model

    verified = verify_model(VerifyOptions(fixture_model(COCO90), sel_dir))  # --verify understands the selection
    assert verified.ok and verified.detections is not None and verified.detections.matched > 0


def test_unknown_class_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown class name.*unicorn"):
        convert_model(fixture_model(COCO90), tmp_path / "o", keep_classes="person,unicorn")
    assert not (tmp_path / "o").exists()


def test_label_map_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text('item { id: 1 name: "person" }\nitem { id: 2 name: "bicycle" }\n')
    with pytest.raises(UsageError, match=r"outside the model's 1..1"):
        convert_model(fixture_model("pedestrian_ssdlite"), tmp_path / "o", label_map=label_map)
    assert not (tmp_path / "o").exists()
    fitting = tmp_path / "one.pbtxt"
    fitting.write_text('item {\n  id: 1\n  name: "pedestrian"\n}\n')
    ok = convert_model(fixture_model("pedestrian_ssdlite"), tmp_path / "ok", label_map=fitting)
    assert ok["labels"] == [{"label": 1, "tf_class": 1, "name": "pedestrian", "display_name": "pedestrian"}]
    assert 'display_name: "pedestrian"' in (tmp_path / "ok" / "labelmap.prototxt").read_text()


def test_emit_train_on_a_classifier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="applies to SSD detectors"):
        convert_model(fixture_model("tfkeras_mnv2_300_notop"), tmp_path / "o", emit=("deploy", "train"))
    assert not (tmp_path / "o").exists()


def test_finetune_init_differs_from_deploy_only_in_dummy_class_biases(finetune: tuple[str, Path, dict]) -> None:
    _, out, report = finetune
    heads = [h for h in report["ssd"]["heads"] if h["dummy_slots"]]
    assert heads, "every fixture has reduce_boxes_in_lowest_layer, hence a dummy prior"
    deploy, init = cp.NetParameter(), cp.NetParameter()
    deploy.ParseFromString((out / "deploy.caffemodel").read_bytes())
    init.ParseFromString((out / "finetune_init.caffemodel").read_bytes())
    changed = {}
    for a, b in zip(deploy.layer, init.layer, strict=True):
        for i, (x, y) in enumerate(zip(a.blobs, b.blobs, strict=True)):
            diff = np.flatnonzero(np.asarray(x.data) != np.asarray(y.data))
            if diff.size:
                changed[a.name, i] = (np.asarray(x.data)[diff], np.asarray(y.data)[diff], diff)
    width = report["ssd"]["num_classes"] + 1
    assert set(changed) == {(h["conf_layer"], 1) for h in heads}  # only class-conv biases
    for head in heads:
        before, after, where = changed[head["conf_layer"], 1]
        slots = [slot * width + c for slot in head["dummy_slots"] for c in range(width)]
        assert list(where) == slots and np.all(before == -1e4)
        # sigmoid: background at +log(99), each foreground class at −log(99): probability 0.01
        np.testing.assert_allclose(after.reshape(-1, width), [[np.log(99)] + [-np.log(99)] * (width - 1)] *
                                   len(head["dummy_slots"]), rtol=1e-6)
    assert "--weights=finetune_init.caffemodel" in (out / "train.sh").read_text()
    assert any("RMSProp momentum" in n for n in report["notes"])  # pipeline.config: rms_prop with momentum
    assert "momentum" not in (out / "solver.prototxt").read_text()  # Caffe's RMSProp refuses one


def test_finetune_init_for_softmax_models() -> None:
    from transpiler.backends.caffe.training import finetune_init_weights

    net = cp.NetParameter()
    layer = net.layer.add(name="cls", type="Convolution")
    layer.blobs.add().data.extend([0.0] * 8)
    layer.blobs.add().data.extend([1e4, 0, 0, 0, 0.5, -1, -2, -3])  # 2 priors × (background + 3 classes)
    report = {"ssd": {"score_converter": "softmax", "heads": [
        {"conf_layer": "cls", "priors_per_cell": 2, "dummy_slots": [0]}]}}
    bias = list(finetune_init_weights(net, report, logistic=False).layer[0].blobs[1].data)
    # softmax: background logit 0, each of K=3 classes log(0.01 / (0.99·3)): foreground 0.01 in all
    fg = np.log(0.01 / (0.99 * 3))
    np.testing.assert_allclose(bias, [0, fg, fg, fg, 0.5, -1, -2, -3], rtol=1e-6)
    probs = np.exp(bias[:4]) / np.exp(bias[:4]).sum()
    assert probs[1:].sum() == pytest.approx(0.01, rel=1e-6)
    assert finetune_init_weights(net, {"ssd": {"score_converter": "softmax", "heads": [
        {"conf_layer": "cls", "priors_per_cell": 2, "dummy_slots": []}]}}, logistic=False) is None
