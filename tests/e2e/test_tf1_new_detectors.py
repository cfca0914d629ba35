"""TF1 Object Detection API exports of the newer SSDs convert with default options and detect what TF detects.

Each detector is exported at test time by ``tests/od_api_scripts/export_tf1.py`` with the OD API 2.8's own TF1
exporter (``exporter.export_inference_graph``, graph mode, as the fixtures were made), random weights with batch
norm calibrated on real pictures and the heads spread; the export and TF's outputs on the pictures are cached
under the test cache, keyed by the script and the config:

- ``ssd_mnv3_small``: ssd_mobilenet_v3_small (hard-swish, squeeze-excite, the extractor's depthwise extra
  layers, SSDLite heads), 7 classes, 320×320; ``ssd_mnv3_large``: ssd_mobilenet_v3_large, width 0.5, 5 classes;
- ``ssd_mnv1_fpn``: ssd_mobilenet_v1_fpn (FPN levels 3..7: nearest-neighbour upsampling as Pack/Reshape and
  top-down adds), the weight-shared convolutional box predictor (one tower, batch norm per level),
  ``multiscale_anchor_generator`` (levels 3..7, 2 scales per octave, ratios 1, 2, ½, anchor scale 4),
  5 classes, 320×320. Level 7's stride 128 does not divide 320: TF puts its centres at 0, 128, 256 px
  (offset 0), so its PriorBox writes ``step: 128`` and ``offset: 0``. The 2^½ scales are irrational sizes
  (45.25 px...): SSD-Caffe truncates PriorBox sizes to integers, so the default flavor writes the priors as a
  constant blob (exact in OpenCV and SSD-Caffe), and ``--flavor opencv`` as PriorBox layers (float sizes);
- ``ssdlite_mnv2_fpnlite``: an FPN-lite-style detector (ssd_mobilenet_v2_fpn with depthwise convolutions,
  weight-shared predictor with depthwise tower and ``share_prediction_tower``), 1 scale per octave (integral
  sizes 32..512 px: exact in SSD-Caffe too), 4 classes, 256×256.

Checked per picture, in OpenCV dnn and (flavors SSD-Caffe runs) the real SSD-Caffe (tests/real_caffe.py):
raw box encodings and class logits within 1e-4·max|ref| of TF's, priors within 1e-5 of TF's anchors, and
every TF detection matched box by box (same class, score within 1e-3, IoU ≥ 0.98; only the documented
excuses of ``match_detections``). ``--keep-classes`` gives the full model's scores and detections of the kept
classes. ``--emit train,test,solver``: the FPN-lite's train net ties the weight-shared predictor (param names),
SSD-Caffe builds it and trains a few steps on a fixed batch with decreasing loss, and afterwards one weight
reproduces every level of each tied convolution (fitted from the test net's blobs).

``ssd_mnv3_small_static``: the MobileNetV3-small model exported with ``use_static_shapes: true`` (no NMS op: one
call of TF's ``non_max_suppression_padded`` per class). Besides the defaults (raw tensors and detections as
above), against its own TF outputs: ``--keep-classes`` (the full model restricted, and ``--verify``);
``--emit train,test,solver`` (SSD-Caffe trains it with decreasing loss, and its test net with deploy's weights
detects TF's detections box by box on the BGR fine-tuning batch); ``--postprocess external`` (raw outputs and
``ssd_postprocess`` give every TF detection, paired one to one, in OpenCV and SSD-Caffe); and ``--verify``
through the CLI with each of these (exit 0).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_helpers import convert_model, detector_blobs, layer_types, match_tf_detections
from google.protobuf import text_format
from od_api import export_detector

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.verify.detections import compare_raw
from transpiler.verify.runners import load_opencv_net, run_opencv

SCRIPT = Path(__file__).resolve().parents[1] / "od_api_scripts" / "export_tf1.py"
PICTURES = ["astronaut", "camera", "coffee"]


def _hyperparams(initializer: str, batch_norm: str = "decay: 0.97 center: true scale: true epsilon: 0.001") -> str:
    return f"""conv_hyperparams {{
        activation: RELU_6
        regularizer {{ l2_regularizer {{ weight: 0.00004 }} }}
        initializer {{ {initializer} }}
        batch_norm {{ {batch_norm} }}
      }}"""


COMMON = """
    box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 } }
    matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 ignore_thresholds: false
      negatives_lower_than_unmatched: true force_match_for_each_row: true use_matmul_gather: true } }
    similarity_calculator { iou_similarity { } }
    encode_background_as_zeros: true
    loss {
      classification_loss { weighted_sigmoid_focal { alpha: 0.25 gamma: 2.0 } }
      localization_loss { weighted_smooth_l1 { } }
      classification_weight: 1.0 localization_weight: 1.0
    }
    normalize_loss_by_num_matches: true
    normalize_loc_loss_by_codesize: true
    post_processing {
      batch_non_max_suppression { score_threshold: 1e-8 iou_threshold: 0.6 max_detections_per_class: 100
        max_total_detections: 100 }
      score_converter: SIGMOID
    }"""
TRAIN = """
train_config {
  batch_size: 64
  optimizer { momentum_optimizer { learning_rate { cosine_decay_learning_rate {
    learning_rate_base: 0.04 total_steps: 25000 warmup_learning_rate: 0.013333 warmup_steps: 2000 } }
    momentum_optimizer_value: 0.9 } use_moving_average: false }
}
"""
NORMAL_001 = "random_normal_initializer { mean: 0.0 stddev: 0.01 }"
TRUNCATED_003 = "truncated_normal_initializer { mean: 0.0 stddev: 0.03 }"

# ssd_mobilenet_v3_small/large as the TF1 zoo configures them (SSDLite heads)
def _mnv3_config(variant: str, classes: int, depth_multiplier: float) -> str:
    return f"""model {{
  ssd {{
    num_classes: {classes}
    image_resizer {{ fixed_shape_resizer {{ height: 320 width: 320 }} }}
    feature_extractor {{
      type: "ssd_mobilenet_v3_{variant}"
      depth_multiplier: {depth_multiplier}
      min_depth: 16
      use_depthwise: true
      {_hyperparams(TRUNCATED_003, "decay: 0.97 center: true scale: true epsilon: 0.001 train: true")}
      override_base_feature_extractor_hyperparams: true
    }}
    anchor_generator {{
      ssd_anchor_generator {{
        num_layers: 6 min_scale: 0.2 max_scale: 0.95
        aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5 aspect_ratios: 3.0 aspect_ratios: 0.3333
      }}
    }}
    box_predictor {{
      convolutional_box_predictor {{
        min_depth: 0 max_depth: 0 num_layers_before_predictor: 0 use_dropout: false
        dropout_keep_probability: 0.8 kernel_size: 3 use_depthwise: true box_code_size: 4
        apply_sigmoid_to_scores: false class_prediction_bias_init: -4.6
        {_hyperparams("random_normal_initializer { mean: 0.0 stddev: 0.03 }")}
      }}
    }}{COMMON}
  }}
}}{TRAIN}"""


MNV3_SMALL = _mnv3_config("small", 7, 1.0)
MNV3_LARGE = _mnv3_config("large", 5, 0.5)
# The MobileNetV3 SSD configs set batch_non_max_suppression { use_static_shapes: true }: each class then calls
# TF's non_max_suppression_padded (v2), a library function (PartitionedCall), instead of a NonMaxSuppression op.
MNV3_SMALL_STATIC_NMS = MNV3_SMALL.replace("max_total_detections: 100 }",
                                           "max_total_detections: 100 use_static_shapes: true }")


def _fpn_config(*, extractor: str, classes: int, size: int, depth_multiplier: float, scales_per_octave: int,
                lite: bool) -> str:
    lite_extractor = "use_depthwise: true" if lite else ""
    lite_predictor = "use_depthwise: true share_prediction_tower: true" if lite else ""
    return f"""model {{
  ssd {{
    num_classes: {classes}
    image_resizer {{ fixed_shape_resizer {{ height: {size} width: {size} }} }}
    feature_extractor {{
      type: "{extractor}"
      {lite_extractor}
      fpn {{ min_level: 3 max_level: 7 additional_layer_depth: 32 }}
      depth_multiplier: {depth_multiplier}
      min_depth: 16
      {_hyperparams(NORMAL_001, "decay: 0.997 center: true scale: true epsilon: 0.001")}
      override_base_feature_extractor_hyperparams: true
    }}
    anchor_generator {{
      multiscale_anchor_generator {{
        min_level: 3 max_level: 7 anchor_scale: 4.0
        aspect_ratios: 1.0 aspect_ratios: 2.0 aspect_ratios: 0.5
        scales_per_octave: {scales_per_octave}
      }}
    }}
    box_predictor {{
      weight_shared_convolutional_box_predictor {{
        depth: 32
        class_prediction_bias_init: -4.6
        {_hyperparams(NORMAL_001, "scale: true decay: 0.997 epsilon: 0.001")}
        num_layers_before_predictor: 2
        kernel_size: 3
        {lite_predictor}
      }}
    }}{COMMON}
  }}
}}{TRAIN}"""


@dataclass(frozen=True)
class Model:
    config: str
    size: int
    flavors: tuple[str, ...]  # flavors converted and checked (OpenCV; SSD-Caffe too unless "opencv")
    constant_priors: tuple[str, ...] = ()  # flavors whose PriorBox cannot be exact: priors as a constant blob


MODELS = {
    "ssd_mnv3_small": Model(MNV3_SMALL, 320, ("ssd",)),
    "ssd_mnv3_large": Model(MNV3_LARGE, 320, ("ssd",)),
    "ssd_mnv1_fpn": Model(_fpn_config(extractor="ssd_mobilenet_v1_fpn", classes=5, size=320, depth_multiplier=0.25,
                                      scales_per_octave=2, lite=False), 320, ("ssd", "opencv"),
                          constant_priors=("ssd",)),
    "ssdlite_mnv2_fpnlite": Model(_fpn_config(extractor="ssd_mobilenet_v2_fpn", classes=4, size=256,
                                              depth_multiplier=0.35, scales_per_octave=1, lite=True), 256, ("ssd",)),
}
CASES = [(m, f, rt) for m, spec in MODELS.items() for f in spec.flavors
         for rt in (("opencv",) if f == "opencv" else ("opencv", "caffe"))]
# the same model (same weights) exported with static shapes: checked by the tests at the end of this file
STATIC = "ssd_mnv3_small_static"
EXPORTS = {**MODELS, STATIC: Model(MNV3_SMALL_STATIC_NMS, 320, ("ssd",))}


def exported(name: str) -> Path:
    spec = EXPORTS[name]
    return export_detector(SCRIPT, spec.config, PICTURES, spec.size)


_CONVERSIONS: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
Converted = tuple[str, Path, dict[str, Any], str]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: "-".join(p))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """(model, output folder, conversion report, runtime), converted once per model and flavor with defaults."""
    name, flavor, runtime = request.param
    if (name, flavor) not in _CONVERSIONS:
        out = tmp_path_factory.mktemp(f"{name}_{flavor}")
        shutil.rmtree(out)
        _CONVERSIONS[name, flavor] = out, convert_model(exported(name) / "model.pb", out, flavor=flavor)
    return (name, *_CONVERSIONS[name, flavor], runtime)


def run_picture(converted: Converted, pic: str, request: pytest.FixtureRequest) -> tuple[Any, dict[str, np.ndarray]]:
    name, out, _, runtime = converted
    ref = np.load(exported(name) / f"ref_{pic}.npz")
    x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)  # raw 0..255 RGB pixels, NCHW
    runner = "opencv" if runtime == "opencv" else request.getfixturevalue("real_caffe")
    return ref, detector_blobs(out, x, runner, pic)


@pytest.mark.parametrize("pic", PICTURES)
def test_raw_tensors_and_priors_equal_tf(converted: Converted, pic: str, request: pytest.FixtureRequest) -> None:
    _, _, report, _ = converted
    ref, got = run_picture(converted, pic, request)
    rows = compare_raw(report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"],
                       ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"], 1e-4)
    assert all(r.ok for r in rows[:2]), [(r.name, r.rel) for r in rows]
    assert rows[2].max_abs <= 1e-5, ("priors differ from TF's anchors", rows[2].max_abs)
    mapped = np.asarray(report["ssd"]["prior_to_anchor"])
    assert np.array_equal(np.sort(mapped[mapped >= 0]), np.arange(ref["anchors"].shape[0]))  # one prior per anchor


@pytest.mark.parametrize("pic", PICTURES)
def test_detections_match_tf_box_by_box(converted: Converted, pic: str, request: pytest.FixtureRequest) -> None:
    _, _, report, _ = converted
    ref, got = run_picture(converted, pic, request)
    # rows whose box lies wholly outside the picture (TF drops them) and detections beyond TF's per-class cap
    # take keep_top_k slots: the documented excuses, counted exactly
    result = match_tf_detections(ref, got["detection_out"], report)
    assert result.ok, (result.unmatched_tf[:3], result.unmatched_caffe[:3])
    classes = ref["detection_classes"][0][:int(ref["num_detections"][0])]
    assert classes.size == 100 and result.matched >= 90, (result.matched, result.excused)
    assert len(set(classes.tolist())) > 1  # the spread heads detect several classes


def test_feature_pyramid_and_prior_grid(converted: Converted) -> None:
    """FPN upsampling is one depthwise Deconvolution per top-down step (no Permute/Concat chains), followed by
    the top-down Eltwise; multiscale priors carry the step and offset TF's anchors have. (The MobileNetV3 SSD:
    no upsampling, every PriorBox on the default grid.)"""
    name, out, report, _ = converted
    layers = layer_types(out)
    if "fpn" not in name:
        assert not any(t == "Deconvolution" for _, t, _ in layers)
        assert all(h["prior_box"]["offset"] == 0.5 and h["prior_box"]["step_h"] is None for h in report["ssd"]["heads"])
        return
    deconvs = [n for n, t, _ in layers if t == "Deconvolution"]
    assert len(deconvs) == 2, deconvs  # levels 5→4→3
    consumers = {b: t for _, t, bottoms in layers for b in bottoms}
    assert all(consumers[d] == "Eltwise" for d in deconvs)
    assert not any(t in ("Reshape", "Concat") and "upsampl" in n.lower() for n, t, _ in layers)
    heads = report["ssd"]["heads"]
    assert sorted({tuple(h["feature_map"]) for h in heads}, reverse=True) == \
        ([(40, 40), (20, 20), (10, 10), (5, 5), (3, 3)] if name == "ssd_mnv1_fpn" else
         [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)])
    if name == "ssd_mnv1_fpn":  # the PriorBox parameters (written in the opencv flavor)
        level7 = [h["prior_box"] for h in heads if h["feature_map"] == [3, 3]]
        assert all(p["offset"] == 0.0 and p["step_h"] == p["step_w"] == 128.0 for p in level7), level7
        assert all(h["prior_box"]["offset"] == 0.5 for h in heads if h["feature_map"] != [3, 3])


def test_priors_are_priorbox_layers_where_exact_else_a_constant_blob(converted: Converted) -> None:
    """SSD-Caffe truncates PriorBox sizes to integers: the FPN's 2^½ scales (45.25 px...) cannot be PriorBox
    layers in the default flavor, so its priors are a constant blob (zero-weight InnerProduct, anchors as bias),
    said in a warning; where PriorBox is exact (opencv flavor: float sizes; integral sizes) it is used."""
    name, out, report, _ = converted
    flavor = report["flavor"]
    types = [t for _, t, _ in layer_types(out)]
    if flavor in MODELS[name].constant_priors:
        assert report["ssd"]["priors_written_as"] == "constant" and "PriorBox" not in types
        assert any("45.255" in w and "constant blob" in w for w in report["warnings"]), report["warnings"]
    else:
        assert report["ssd"]["priors_written_as"] == "PriorBox" and "InnerProduct" not in types
        assert types.count("PriorBox") == sum(1 for _ in report["ssd"]["heads"])


# ----------------------------------------------------------------------------------------- fine-tuning
TRAIN_MODELS = ["ssdlite_mnv2_fpnlite", "ssd_mnv3_small", STATIC]  # the ones SSD-Caffe runs exactly (flavor ssd)
TRAIN_PICTURES = ["astronaut", "coffee"]
TRAIN_STEPS = 6
TRAIN_RATE = 1e-5


@pytest.fixture(scope="module", params=TRAIN_MODELS)
def finetune(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, Path, list[np.ndarray]]:
    """(model, output folder, batch): --emit train,test,solver for an export, and one fixed batch made the way
    the data layer makes it (BGR pixels through the train net's transform), TF's top detection of each picture
    as ground truth."""
    out = tmp_path_factory.mktemp(f"finetune_{request.param}")
    shutil.rmtree(out)
    export = exported(request.param)
    convert_model(export / "model.pb", out, emit=("deploy", "train", "test", "solver"),
                  pipeline_config=export / "pipeline.config")
    train = text_format.Parse((out / "train.prototxt").read_text(), cp.NetParameter())
    transform = next(layer for layer in train.layer if layer.type == "AnnotatedData").transform_param
    mean = np.asarray(transform.mean_value, np.float32)
    images, boxes = [], []
    for item, pic in enumerate(TRAIN_PICTURES):
        ref = np.load(export / f"ref_{pic}.npz")
        bgr = ref["input"][0, ..., ::-1].astype(np.float32)
        images.append(((bgr - mean) * transform.scale).transpose(2, 0, 1))
        ymin, xmin, ymax, xmax = ref["detection_boxes"][0][0]
        boxes.append([item, int(ref["detection_classes"][0][0]), 0, xmin, ymin, xmax, ymax, 0])
    return request.param, out, [np.stack(images), np.asarray(boxes, np.float32)[None, None]]


def _tied(net: Any) -> dict[str, list[Any]]:
    """Layers by shared parameter name."""
    groups: dict[str, list[Any]] = {}
    for layer in net.layer:
        for p in layer.param:
            if p.name:
                groups.setdefault(p.name, []).append(layer)
    return groups


def test_train_net_ties_the_weight_shared_predictor(finetune: tuple[str, Path, list]) -> None:
    """Every predictor convolution is one parameter set for the five levels; towers (batch norm per level folded
    in deploy) become a tied convolution and a per-level Scale, whose product is deploy's layer exactly."""
    name, out, _ = finetune
    train = text_format.Parse((out / "train.prototxt").read_text(), cp.NetParameter())
    test = text_format.Parse((out / "test.prototxt").read_text(), cp.NetParameter())
    groups = _tied(train)
    if "fpn" not in name:
        assert not groups  # an SSD's per-layer heads are distinct convolutions: nothing to tie
        return
    assert groups and all(len(layers) == 5 for layers in groups.values()), {k: len(v) for k, v in groups.items()}
    assert _tied(test).keys() == groups.keys()
    init = cp.NetParameter()
    init.ParseFromString((out / "finetune_init.caffemodel").read_bytes())
    deploy = cp.NetParameter()
    deploy.ParseFromString((out / "deploy.caffemodel").read_bytes())
    init_layers = {layer.name: layer for layer in init.layer}
    split = [layer.name[:-len("/shared")] for layers in groups.values() for layer in layers
             if layer.name.endswith("/shared")]
    assert split, "the depthwise tower's pointwise convolutions carry per-level batch norms"
    for layer in deploy.layer:
        if layer.name in split:  # deploy weight = shared weight x per-level factor, bias = the Scale's
            w = np.asarray(layer.blobs[0].data).reshape(tuple(layer.blobs[0].shape.dim))
            shared = np.asarray(init_layers[layer.name + "/shared"].blobs[0].data).reshape(w.shape)
            factor, bias = (np.asarray(b.data) for b in init_layers[layer.name + "/level"].blobs)
            np.testing.assert_allclose(shared * factor[:, None, None, None], w, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(bias, layer.blobs[1].data, rtol=1e-6)
    assert "--weights=finetune_init.caffemodel" in (out / "train.sh").read_text()


def _im2col(x: np.ndarray, k: int, pad: int) -> np.ndarray:
    """(N·H·W, C·k·k) patches of an NCHW map, stride 1, channel-major like Caffe's weights (O, C, k, k)."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.stack([padded[:, :, i:i + h, j:j + w] for i in range(k) for j in range(k)], axis=2)  # N,C,k·k,H,W
    return cols.reshape(n, c * k * k, h * w).transpose(0, 2, 1).reshape(n * h * w, c * k * k)


def test_fpnlite_trains_in_real_ssd_caffe_and_tied_weights_stay_one(
        real_caffe: Any, finetune: tuple[str, Path, list]) -> None:
    """SSD-Caffe builds the train net (sharing the named parameters), SGD steps on a fixed batch lower the loss;
    after them the test net (sharing the trained layers) computes every level of a tied convolution with one
    weight: the weight solved from level 0's input/output predicts the other levels' outputs."""
    name, out, batch = finetune
    weights = out / "finetune_init.caffemodel"  # both have one: v3's lowest layer has dummy priors
    assert f"--weights={weights.name}" in (out / "train.sh").read_text()
    # The config's rate (0.04, for batches of 64 after a warm-up Caffe lacks) diverges on these random-weight
    # models and a batch of 2; the steps run with a small constant rate instead.
    solver = text_format.Parse((out / "solver.prototxt").read_text(), cp.SolverParameter())
    solver.base_lr, solver.lr_policy = TRAIN_RATE, "fixed"
    (out / "solver_small_rate.prototxt").write_text(text_format.MessageToString(solver))
    losses, blobs = real_caffe.train(out / "solver_small_rate.prototxt", weights, batch, TRAIN_STEPS)
    assert len(losses) == TRAIN_STEPS and all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    if "fpn" not in name:
        return
    train = text_format.Parse((out / "train.prototxt").read_text(), cp.NetParameter())
    init = cp.NetParameter()
    init.ParseFromString((out / "finetune_init.caffemodel").read_bytes())
    init_layers = {layer.name: layer for layer in init.layer}
    checked, moved = 0, 0.0
    for layers in _tied(train).values():
        conv = layers[0].convolution_param
        if layers[0].type != "Convolution" or conv.group > 1:  # depthwise steps: checked through their outputs
            continue
        k, pad = (conv.kernel_size[0] if conv.kernel_size else conv.kernel_h), (conv.pad[0] if conv.pad else conv.pad_h)
        bias = conv.bias_term
        xs = [_im2col(blobs[layer.bottom[0]].astype(np.float64), k, pad) for layer in layers]
        xs = [np.concatenate([x, np.ones((x.shape[0], 1))], axis=1) if bias else x for x in xs]
        ys = [blobs[layer.top[0]].astype(np.float64) for layer in layers]
        ys = [y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1]) for y in ys]
        # one weight for all five levels: the least-squares fit over all of them reproduces each level
        weight, *_ = np.linalg.lstsq(np.concatenate(xs), np.concatenate(ys), rcond=None)
        for layer, x, y in zip(layers, xs, ys, strict=True):
            assert np.abs(x @ weight - y).max() <= 1e-5 * np.abs(y).max(), layer.name
        first = init_layers[layers[0].name].blobs
        start = np.asarray(first[0].data).reshape(ys[0].shape[1], -1).T
        if bias:
            start = np.concatenate([start, np.asarray(first[1].data)[None]])
        moved = max(moved, *(float(np.abs(x @ start - y).max() / np.abs(y).max()) for x, y in zip(xs, ys, strict=True)))
        checked += 1
    # the steps moved the outputs by 10x the tolerance: untied per-level weights would have moved apart
    assert moved > 1e-4, f"the steps did not change the shared weights ({moved:.2g}): the check would be vacuous"
    assert checked >= 4  # towers (split) and predictor convolutions (tied)


@pytest.mark.parametrize("name", ["ssd_mnv3_small", "ssd_mnv1_fpn", STATIC])
def test_keep_classes_equals_full_model_restricted(name: str, tmp_path: Path) -> None:
    """--keep-classes on a MobileNetV3 SSD (with TF's NMS ops, and with static shapes: its padded-NMS calls) and
    on the FPN's weight-shared predictor: the full model's scores of those classes and its detections of them,
    relabelled. (The full models match TF box by box above; the selection against TF: ``--verify`` below.)"""
    from test_finetune import assert_selection_restricts

    flavor = EXPORTS[name].flavors[0]
    full = next((out for (n, f), (out, _) in _CONVERSIONS.items() if (n, f) == (name, flavor)), None)
    if full is None:
        full = tmp_path / "full"
        convert_model(exported(name) / "model.pb", full, flavor=flavor)
    report = convert_model(exported(name) / "model.pb", tmp_path / "sel", flavor=flavor, keep_classes="2,4")
    assert report["ssd"]["class_selection"]["tf_class_ids"] == [2, 4]
    assert_selection_restricts(full, tmp_path / "sel", [2, 4], [exported(name) / f"ref_{p}.npz" for p in PICTURES])


# ------------------------------------------------ use_static_shapes: TF's padded NMS function, no NMS op
@pytest.fixture(scope="module")
def static_nms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(export, output folder, conversion report): the static-shape export converted with defaults."""
    assert MNV3_SMALL_STATIC_NMS != MNV3_SMALL
    export = exported(STATIC)
    if (STATIC, "ssd") not in _CONVERSIONS:
        out = tmp_path_factory.mktemp("static_nms")
        shutil.rmtree(out)
        _CONVERSIONS[STATIC, "ssd"] = out, convert_model(export / "model.pb", out)
    return export, *_CONVERSIONS[STATIC, "ssd"]


def test_static_shapes_nms_is_read_from_the_padded_nms_calls(static_nms: tuple[Path, Path, dict[str, Any]]) -> None:
    """The export has no NMS op, one call of the padded-NMS function per class; the settings are the config's."""
    from transpiler.frontends.tf.loader import load_graphdef

    export, _, report = static_nms
    graph = load_graphdef(export / "model.pb")
    assert not any(n.op.startswith("NonMaxSuppression") for n in graph.node)
    calls = [n for n in graph.node if n.op == "PartitionedCall"
             and n.attr["f"].func.name.startswith("__inference_non_max_suppression_padded")]
    assert len(calls) == 7  # one per class
    tf_nms = report["ssd"]["tf_nms"]
    assert (tf_nms["max_per_class"], tf_nms["max_total"]) == (100, 100)
    assert np.float32(tf_nms["iou_threshold"]) == np.float32(0.6)
    assert np.float32(tf_nms["score_threshold"]) == np.float32(1e-8)
    # its one difference from DetectionOutput (IoU >= t suppresses, not > t) is stated, not left implicit
    from transpiler.frontends.tf.od_api_ssd import PADDED_NMS_NOTE

    assert report["ssd"]["padded_nms"] is True and PADDED_NMS_NOTE in report["notes"]


def test_padded_nms_detects_what_nms_v5_detects(static_nms: tuple[Path, Path, dict[str, Any]]) -> None:
    """TF's padded NMS equals NonMaxSuppressionV5 (what DetectionOutput stands for) for these settings: the export
    with use_static_shapes and the one without (same weights) give the same raw tensors and the same detections."""
    export = static_nms[0]
    for pic in PICTURES:
        padded, v5 = np.load(export / f"ref_{pic}.npz"), np.load(exported("ssd_mnv3_small") / f"ref_{pic}.npz")
        assert all(np.array_equal(padded[k], v5[k]) for k in ("input", "raw_box_encodings", "raw_class_logits"))
        for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
            np.testing.assert_array_equal(padded[key], v5[key], err_msg=f"{pic}: {key}")


@pytest.mark.parametrize("runtime", ["opencv", "caffe"])
@pytest.mark.parametrize("pic", PICTURES)
def test_static_shapes_nms_matches_tf(static_nms: tuple[Path, Path, dict[str, Any]], pic: str, runtime: str,
                                      request: pytest.FixtureRequest) -> None:
    """Raw tensors, priors and every TF detection box by box, in OpenCV and the real SSD-Caffe."""
    export, out, report = static_nms
    ref = np.load(export / f"ref_{pic}.npz")
    x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)
    got = detector_blobs(out, x, "opencv" if runtime == "opencv" else request.getfixturevalue("real_caffe"),
                         ("static_nms", pic))
    rows = compare_raw(report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"],
                       ref["raw_box_encodings"], ref["raw_class_logits"], ref["anchors"], 1e-4)
    assert all(r.ok for r in rows[:2]) and rows[2].max_abs <= 1e-5, [(r.name, r.rel, r.max_abs) for r in rows]
    result = match_tf_detections(ref, got["detection_out"], report)
    assert result.ok, (result.unmatched_tf[:3], result.unmatched_caffe[:3])
    assert int(ref["num_detections"][0]) == 100 and result.matched >= 90, (result.matched, result.excused)


def test_padded_nms_is_recognised_by_its_body_not_by_position(static_nms: tuple[Path, Path, dict[str, Any]]) -> None:
    """A function with the padded NMS's signature whose score test reads another argument is no padded NMS (the
    export is then no detector); sorted_input true (TF would trust the boxes' order) is refused, saying why."""
    from transpiler.errors import UnsupportedModelError
    from transpiler.frontends.tf.loader import load_graphdef
    from transpiler.frontends.tf.od_api_ssd import is_od_api_ssd, recognise

    model = static_nms[0] / "model.pb"
    graph = load_graphdef(model)
    assert is_od_api_ssd(graph)
    (padded,) = (f for f in graph.library.function if f.signature.name.startswith("__inference_non_max_suppression"))
    (test,) = (n for n in padded.node_def if n.op == "Greater" and n.input[1] == "score_threshold")
    test.input[1] = "iou_threshold"
    assert not is_od_api_ssd(graph)
    graph = load_graphdef(model)
    calls = [n for n in graph.node if n.op == "PartitionedCall"]
    flag = next(n for n in graph.node if n.name == calls[0].input[5])
    flag.attr["value"].tensor.bool_val[:] = [True]
    with pytest.raises(UnsupportedModelError, match="sorted_input"):
        recognise(graph, str(model))


@pytest.mark.parametrize("finetune", [STATIC], indirect=True)
def test_static_shapes_test_net_detects_what_tf_detects(real_caffe: Any, finetune: tuple[str, Path, list]) -> None:
    """The fine-tuning test net (its DetectionOutput from the padded-NMS calls' settings) with deploy's weights,
    built by SSD-Caffe from the solver and fed the fine-tuning batch (BGR through the train transform), detects
    in each picture of the batch what TF detects, box by box."""
    _, out, batch = finetune
    _, blobs = real_caffe.train(out / "solver.prototxt", out / "deploy.caffemodel", batch, 0)
    report = json.loads((out / "conversion.json").read_text())
    detections = blobs["detection_out"]
    for item, pic in enumerate(TRAIN_PICTURES):
        ref = np.load(exported(STATIC) / f"ref_{pic}.npz")
        rows = detections[..., detections[0, 0, :, 0] == item, :]
        result = match_tf_detections(ref, rows, report)
        assert result.ok and result.matched >= 90, (pic, result.matched, result.unmatched_tf[:3],
                                                    result.unmatched_caffe[:3])


@pytest.fixture(scope="module")
def static_external(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """(export, output folder, conversion report): the static-shape export with ``--postprocess external``."""
    out = tmp_path_factory.mktemp("static_external")
    shutil.rmtree(out)
    return exported(STATIC), out, convert_model(exported(STATIC) / "model.pb", out, postprocess="external")


@pytest.mark.parametrize("runtime", ["opencv", "caffe"])
@pytest.mark.parametrize("pic", PICTURES)
def test_static_shapes_postprocess_external_gives_tf_detections(
        static_external: tuple[Path, Path, dict[str, Any]], pic: str, runtime: str,
        request: pytest.FixtureRequest) -> None:
    """``--postprocess external``: the net's outputs are TF's raw tensors, the priors files TF's anchors, the
    settings the padded-NMS calls' (the config's), and ssd_postprocess on the outputs gives TF's detections of
    the static-shape export, every one, paired one to one (test_postprocess_external.check_detections)."""
    from test_postprocess_external import OUTPUTS, check_detections

    from transpiler.runtime.ssd_postprocess import load_priors

    export, out, report = static_external
    ref = np.load(export / f"ref_{pic}.npz")
    np.testing.assert_array_equal(load_priors(out), ref["anchors"])
    nms = report["postprocess"]["nms"]
    assert (nms["max_per_class"], nms["max_total"], np.float32(nms["iou_threshold"]),
            np.float32(nms["score_threshold"])) == (100, 100, np.float32(0.6), np.float32(1e-8))
    assert "non_max_suppression_padded" in nms["semantics"] and "IoU >= iou_threshold" in nms["semantics"]
    x = ref["input"].astype(np.float32).transpose(0, 3, 1, 2)
    if runtime == "opencv":
        got = run_opencv(load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel"), {"data": x}, OUTPUTS)
    else:
        got = request.getfixturevalue("real_caffe").forward(out / "deploy.prototxt", out / "deploy.caffemodel", [x])
    det = check_detections(ref, got["mbox_loc"], got["mbox_conf_logits"], out)
    assert len(det) == int(ref["num_detections"][0]) == 100


@pytest.mark.parametrize("options", [[], ["--keep-classes", "2,4"], ["--postprocess", "external"],
                                     ["--emit", "deploy,train,test,solver", "--pipeline-config", "PIPELINE"]],
                         ids=["defaults", "keep-classes", "postprocess-external", "emit-train"])
def test_static_shapes_cli_verify(options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--verify`` through the CLI on the static-shape export (TF runs the padded NMS itself, on the astronaut):
    exit 0, every TF detection matched (of the kept classes, relabelled, with --keep-classes; by ssd_postprocess
    with no excuse when external; with the BGR input the fine-tuning files imply)."""
    from transpiler.cli import main

    export = exported(STATIC)
    options = [str(export / "pipeline.config") if o == "PIPELINE" else o for o in options]
    assert main([str(export / "model.pb"), "-o", str(tmp_path / "out"), *options, "--verify"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("verify: detections:"))
    matched = int(line.split()[2])
    assert matched >= (10 if "--keep-classes" in options else 90) and " 0 TF-only, 0 Caffe-only" in line, line
