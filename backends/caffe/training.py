"""SSD fine-tuning files from a converted detector: train/test nets, solver, train.sh.

The train and test nets are the deploy net with the same layer names and parameters, so
``caffe train -weights deploy.caffemodel`` loads every converted weight, plus:

- an ``AnnotatedData`` layer whose transform reproduces the model's own preprocessing: TF computes
  ``a·x + b`` per pixel (e.g. ``x·2/255 − 1``); Caffe computes ``(x − mean)·scale``, so
  ``scale = a`` and ``mean = −b/a``. Caffe decodes images as BGR, so the model is converted to take
  BGR (its first convolutions' input channels reversed, deploy included). The deploy net's own
  normalisation layer is dropped from train/test (the data layer normalises).
  SSD's augmentation: photometric distortion, expansion, the 7 standard batch samplers, mirroring.
- train: ``MultiBoxLoss`` on the logits (``mbox_conf_logits``), matcher and loss settings from
  ``pipeline.config`` where given (LOGISTIC for a sigmoid score converter, SOFTMAX otherwise);
- test: the deploy tail (scores, ``DetectionOutput``) and ``DetectionEvaluate`` (overlap 0.5).

Dummy priors (see ssd-detection-output: a PriorBox square TF lacks, class logits −10⁴ so that it never
detects) are exact for inference but poison training: as a negative its background logit −10⁴ (sigmoid)
costs 10⁴ per prior, and as a positive each of its class logits does; one batch's loss is then ~3·10⁴.
When the model has any, ``finetune_init.caffemodel`` holds deploy's weights with those priors' class
biases reset to a fresh anchor's under the loss the train net uses (π = 0.01; LOGISTIC: logits +log(99)
for background and −log(99) for each class, probability π each; SOFTMAX: logits 0 and
log(π / ((1 − π)·K)) for K classes, π in all), and
train.sh starts from it; deploy.caffemodel stays exact.

Reshape layers written for deploy's batch of 1 take the batch's size (``dim: 0``), and squeeze-excite gates
scale per sample. Trainable layers get
``param { lr_mult: 1 decay_mult: 1 }`` for weights and ``{ lr_mult: 2 decay_mult: 0 }``
for biases. Folded batch norm stays folded (the convolutions carry the biases).

Weight-shared layers (the OD API's weight-shared box predictor runs one tower and one pair of predictor convolutions
at every FPN level, with a batch norm per level): deploy has per-level layers, and the train/test nets tie what TF
shares. They are found by their weights, structurally: convolutions of equal parameters whose weights are equal up
to a positive factor per output channel, ``W_l[o] = r_l[o]·W_0[o]`` (what folding one weight ``W`` with per-level
batch norms gives: ``W·s_l``), the factors read by least squares and checked to 1e-5:

- equal weights and biases (predictor convolutions, depthwise tower steps): the layers keep their names and tie
  both parameters with ``param { name: ... }``;
- proportional weights (a tower convolution with its per-level batch norm folded in): each level becomes
  ``<layer>/shared`` (Convolution without bias, weights ``W_0`` tied across levels) and ``<layer>/level``
  (Scale with bias: factors ``r_l`` and the level's folded bias), exactly the deploy layer:
  ``conv(x, W_0)·r_l + b_l = conv(x, W_l) + b_l``; the per-level Scale is the trainable per-level batch norm.
  Their weights are in ``finetune_init.caffemodel`` (deploy's layers of those names are not in the nets).
Solver: from ``train_config`` (RMSProp/momentum/Adam, exponential decay → ``lr_policy: "step"``,
``weight_decay = 2 ×`` the L2 regulariser weight since TF's loss adds ``w·‖θ‖²``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.backends.caffe.training_options import TrainingOptions
from transpiler.backends.caffe.writer import without_blobs
from transpiler.errors import BackendError
from transpiler.frontends.tf.pipeline_config import Message, find

TRAINABLE = {"Convolution": "convolution_param", "DepthwiseConvolution": "depthwise_conv_param",
             "InnerProduct": "inner_product_param", "Scale": "scale_param"}


def input_transform(report: dict[str, Any]) -> tuple[float, float]:
    """(scale, mean) with ``(x − mean)·scale`` equal to the graph's per-pixel normalisation."""
    a, b = 1.0, 0.0
    for step in report["ssd"]["normalization"]:
        c = float(step["value"])
        if step["op"] == "Mul":
            a, b = a * c, b * c
        elif step["op"] == "Div" and not step["scalar_first"]:
            a, b = a / c, b / c
        elif step["op"] == "Add":
            b += c
        elif step["op"] == "Sub":
            a, b = (-a, c - b) if step["scalar_first"] else (a, b - c)
        else:
            raise BackendError(f"preprocessing step {step} has no Caffe transform equivalent")
    return a, -b / a


def ssd_blobs(report: dict[str, Any]) -> dict[str, str]:
    """The SSD tail's blob names, from conversion.json's raw_tensors."""
    raw = report["ssd"]["raw_tensors"]
    return {"loc": raw["box_encodings"]["caffe_blob"], "conf_logits": raw["class_logits"]["caffe_blob"],
            "priors": raw["anchors"]["caffe_blob"], "conf": raw["scores"]["caffe_blob"],
            "detections": raw["detections"]["caffe_blob"]}


SHARE_TOLERANCE = 1e-5


@dataclass
class SharedLayers:
    """Deploy layers that are one TF layer applied at several levels (see the module docstring)."""

    tied: dict[str, str] = field(default_factory=dict)  # layer → parameter name prefix (equal weights)
    split: dict[str, str] = field(default_factory=dict)  # layer → parameter name prefix (proportional weights)
    factors: dict[str, np.ndarray] = field(default_factory=dict)  # split layer → r_l per output channel
    shared_weights: dict[str, np.ndarray] = field(default_factory=dict)  # split layer → W_0
    groups: list[list[str]] = field(default_factory=list)


def _blob_array(blob: Any) -> np.ndarray:
    return np.asarray(blob.data, dtype=np.float64).reshape(tuple(blob.shape.dim))


def _factors(base: np.ndarray, other: np.ndarray) -> np.ndarray | None:
    """r with other[o] = r[o]·base[o] for every output channel o (to SHARE_TOLERANCE), r > 0; else None."""
    a, b = base.reshape(base.shape[0], -1), other.reshape(other.shape[0], -1)
    norms = (a * a).sum(axis=1)
    if (norms == 0).any():
        return None
    r = (a * b).sum(axis=1) / norms
    scale = np.abs(b).max(axis=1, initial=0.0) + 1e-30
    if (r <= 0).any() or (np.abs(b - r[:, None] * a).max(axis=1) > SHARE_TOLERANCE * scale).any():
        return None
    return r


def shared_layers(deploy: Any) -> SharedLayers:
    """Group deploy's convolutions that share one TF weight (equal, or proportional per output channel)."""
    found = SharedLayers()
    by_kind: dict[tuple[Any, ...], list[Any]] = {}
    for layer in deploy.layer:
        if layer.type not in ("Convolution", "DepthwiseConvolution") or not layer.blobs:
            continue
        key = (layer.type, getattr(layer, TRAINABLE[layer.type]).SerializeToString(deterministic=True),
               tuple(layer.blobs[0].shape.dim), len(layer.blobs))
        by_kind.setdefault(key, []).append(layer)
    for layers in by_kind.values():
        left = list(layers)
        while len(left) > 1:
            base, rest = left[0], left[1:]
            w0 = _blob_array(base.blobs[0])
            members: list[tuple[Any, np.ndarray]] = [(base, np.ones(w0.shape[0]))]
            for other in rest:
                r = _factors(w0, _blob_array(other.blobs[0]))
                if r is not None:
                    members.append((other, r))
            left = [x for x in rest if all(x is not m for m, _ in members)]
            if len(members) < 2:
                continue
            equal = all(np.abs(r - 1).max() <= SHARE_TOLERANCE for _, r in members) and all(
                len(m.blobs) < 2 or np.array_equal(_blob_array(m.blobs[1]), _blob_array(base.blobs[1]))
                for m, _ in members)
            found.groups.append([m.name for m, _ in members])
            for m, r in members:
                if equal:
                    found.tied[m.name] = base.name
                else:
                    found.split[m.name] = base.name
                    found.factors[m.name] = r
                    found.shared_weights[m.name] = w0
    return found


def _add_params(layer: Any, names: tuple[str | None, str | None] = (None, None)) -> None:
    weights = layer.param.add()
    weights.lr_mult, weights.decay_mult = 1.0, 1.0
    if names[0]:
        weights.name = names[0]
    if _has_bias(layer):
        bias = layer.param.add()
        bias.lr_mult, bias.decay_mult = 2.0, 0.0
        if names[1]:
            bias.name = names[1]


def _split_layer(layer: Any, base: str) -> list[Any]:
    """A proportional-weight layer as a tied bias-free convolution and a per-level Scale (same top)."""
    conv = cp.LayerParameter()
    conv.CopyFrom(layer)
    conv.name = f"{layer.name}/shared"
    conv.ClearField("top")
    conv.top.append(conv.name)
    getattr(conv, TRAINABLE[conv.type]).bias_term = False
    _add_params(conv, (f"{base}/shared_weights", None))
    scale = cp.LayerParameter()
    scale.name, scale.type = f"{layer.name}/level", "Scale"
    scale.bottom.append(conv.name)
    scale.top.extend(layer.top)
    scale.scale_param.axis = 1
    scale.scale_param.bias_term = True
    _add_params(scale)
    return [conv, scale]


def _network(deploy: Any, report: dict[str, Any], *, test: bool, shared: SharedLayers | None = None) -> list[Any]:
    """Deploy layers without Input and normalisation (their top becomes 'data'); the train net also
    stops before the scores and DetectionOutput."""
    blobs = ssd_blobs(report)
    data = report["inputs"][0]["caffe_blob"]
    renamed: dict[str, str] = {}
    layers = []
    for layer in deploy.layer:
        if layer.type == "Input":
            continue
        if layer.name.startswith("Preprocessor/"):  # the model's normalisation: the data layer does it
            renamed[layer.top[0]] = renamed.get(layer.bottom[0], layer.bottom[0])
            continue
        if not test and layer.name in (blobs["conf"], blobs["detections"]):
            continue
        copy = without_blobs(layer)
        for i, bottom in enumerate(copy.bottom):
            copy.bottom[i] = renamed.get(bottom, bottom)
        if copy.type == "Reshape" and copy.reshape_param.shape.dim and copy.reshape_param.shape.dim[0] == 1:
            copy.reshape_param.shape.dim[0] = 0  # deploy's batch of 1: keep the batch's size (Caffe: 0 copies it)
        if shared and copy.name in shared.split:
            layers.extend(_split_layer(copy, shared.split[copy.name]))
            continue
        if copy.type in TRAINABLE and (layer.blobs or copy.type != "Scale"):  # a two-bottom Scale has no weights
            base = shared.tied.get(copy.name) if shared else None
            _add_params(copy, (f"{base}/shared_weights", f"{base}/shared_bias") if base else (None, None))
            if copy.name.startswith(blobs["priors"] + "/"):  # constant priors (zero weights, priors as bias): frozen
                for p in copy.param:
                    p.lr_mult, p.decay_mult = 0.0, 0.0
        layers.append(copy)
    if any(data != "data" and data in layer.bottom for layer in layers):
        raise BackendError("the input blob must be named 'data' for SSD-Caffe's data layers")
    _batch_gates(layers)
    return layers


def _batch_gates(layers: list[Any]) -> None:
    """Per-sample gates for batches: deploy multiplies a map (1, C, H, W) by a gate (1, C, 1, 1) (squeeze-excite)
    as a two-bottom Scale at axis 1 with the gate reshaped to (C); with N samples the gate is (N, C): reshape it
    to (0, C) (0 keeps the batch's size) and scale from axis 0."""
    producers = {top: layer for layer in layers for top in layer.top}
    for layer in layers:
        if layer.type != "Scale" or len(layer.bottom) != 2 or layer.scale_param.axis != 1:
            continue
        gate = producers.get(layer.bottom[1])
        if gate is not None and gate.type == "Reshape" and gate.reshape_param.shape.dim[0] != 0:
            gate.reshape_param.shape.dim.insert(0, 0)
            layer.scale_param.axis = 0


def _has_bias(layer: Any) -> bool:
    param = getattr(layer, TRAINABLE[layer.type])
    return bool(param.bias_term) if param.HasField("bias_term") or layer.type != "Scale" else False


def _data_layer(net: Any, report: dict[str, Any], source: str, batch: int, train: bool, label_map: str) -> None:
    height, width = report["inputs"][0]["shape"][2:4]
    scale, mean = input_transform(report)
    layer = net.layer.add()
    layer.name, layer.type = "data", "AnnotatedData"
    layer.top.extend(["data", "label"])
    layer.include.add().phase = cp.TRAIN if train else cp.TEST
    t = layer.transform_param
    t.scale = scale
    t.mean_value.extend([mean] * 3)
    t.resize_param.prob = 1.0
    t.resize_param.resize_mode = cp.ResizeParameter.WARP
    t.resize_param.height, t.resize_param.width = height, width
    t.resize_param.interp_mode.append(cp.ResizeParameter.LINEAR)
    if train:
        t.mirror = True
        t.resize_param.interp_mode.extend([cp.ResizeParameter.AREA, cp.ResizeParameter.NEAREST,
                                           cp.ResizeParameter.CUBIC, cp.ResizeParameter.LANCZOS4])
        t.emit_constraint.emit_type = cp.EmitConstraint.CENTER
        d = t.distort_param
        d.brightness_prob, d.brightness_delta = 0.5, 32.0
        d.contrast_prob, d.contrast_lower, d.contrast_upper = 0.5, 0.5, 1.5
        d.hue_prob, d.hue_delta = 0.5, 18.0
        d.saturation_prob, d.saturation_lower, d.saturation_upper = 0.5, 0.5, 1.5
        d.random_order_prob = 0.0
        t.expand_param.prob, t.expand_param.max_expand_ratio = 0.5, 4.0
    layer.data_param.source = source
    layer.data_param.batch_size = batch
    layer.data_param.backend = cp.DataParameter.LMDB
    a = layer.annotated_data_param
    a.label_map_file = label_map
    sampler = a.batch_sampler.add()
    sampler.max_sample, sampler.max_trials = 1, 1
    if train:
        for overlap in (0.1, 0.3, 0.5, 0.7, 0.9, None):
            s = a.batch_sampler.add()
            s.sampler.min_scale, s.sampler.max_scale = 0.3, 1.0
            s.sampler.min_aspect_ratio, s.sampler.max_aspect_ratio = 0.5, 2.0
            if overlap is None:
                s.sample_constraint.max_jaccard_overlap = 1.0
            else:
                s.sample_constraint.min_jaccard_overlap = overlap
            s.max_sample, s.max_trials = 1, 50


def _loss_settings(config: Message | None, converter: str) -> dict[str, Any]:
    ssd = find(config, "model", "ssd") if config else None
    matcher = find(ssd, "matcher", "argmax_matcher") if ssd else None
    loss = find(ssd, "loss") if ssd else None
    miner = find(loss, "hard_example_miner") if loss else None
    cls_weight = float(find(loss, "classification_weight") or 1.0) if loss else 1.0
    loc_weight = float(find(loss, "localization_weight") or 1.0) if loss else 1.0
    sigmoid = converter == "sigmoid"
    if loss and find(loss, "classification_loss") is not None:
        sigmoid = "weighted_sigmoid" in find(loss, "classification_loss") or \
            "weighted_sigmoid_focal" in find(loss, "classification_loss")
    return {
        "overlap_threshold": float(find(matcher, "matched_threshold") or 0.5) if matcher else 0.5,
        "neg_overlap": float(find(matcher, "unmatched_threshold") or 0.5) if matcher else 0.5,
        "neg_pos_ratio": float(find(miner, "max_negatives_per_positive") or 3.0) if miner else 3.0,
        "loc_weight": loc_weight / cls_weight,
        "logistic": sigmoid,
    }


def _loss_layer(net: Any, report: dict[str, Any], config: Message | None) -> dict[str, Any]:
    blobs, ssd = ssd_blobs(report), report["ssd"]
    settings = _loss_settings(config, ssd["score_converter"])
    layer = net.layer.add()
    layer.name, layer.type = "mbox_loss", "MultiBoxLoss"
    layer.bottom.extend([blobs["loc"], blobs["conf_logits"], blobs["priors"], "label"])
    layer.top.append("mbox_loss")
    layer.include.add().phase = cp.TRAIN
    layer.propagate_down.extend([True, True, False, False])
    layer.loss_param.normalization = cp.LossParameter.VALID
    p = layer.multibox_loss_param
    p.loc_loss_type = cp.MultiBoxLossParameter.SMOOTH_L1
    p.conf_loss_type = cp.MultiBoxLossParameter.LOGISTIC if settings["logistic"] else cp.MultiBoxLossParameter.SOFTMAX
    p.loc_weight = settings["loc_weight"]
    p.num_classes = ssd["num_classes"] + 1
    p.share_location = True
    p.match_type = cp.MultiBoxLossParameter.PER_PREDICTION
    p.overlap_threshold = settings["overlap_threshold"]
    p.use_prior_for_matching = True
    p.background_label_id = 0
    p.use_difficult_gt = True
    p.neg_pos_ratio = settings["neg_pos_ratio"]
    p.neg_overlap = settings["neg_overlap"]
    p.code_type = cp.PriorBoxParameter.CENTER_SIZE
    p.ignore_cross_boundary_bbox = False
    p.mining_type = cp.MultiBoxLossParameter.MAX_NEGATIVE
    return settings


def _evaluate_layer(net: Any, report: dict[str, Any]) -> None:
    layer = net.layer.add()
    layer.name, layer.type = "detection_eval", "DetectionEvaluate"
    layer.bottom.extend([ssd_blobs(report)["detections"], "label"])
    layer.top.append("detection_eval")
    layer.include.add().phase = cp.TEST
    p = layer.detection_evaluate_param
    p.num_classes = report["ssd"]["num_classes"] + 1
    p.background_label_id = 0
    p.overlap_threshold = 0.5
    p.evaluate_difficult_gt = False


def train_net(deploy: Any, report: dict[str, Any], config: Message | None, opts: TrainingOptions,
              shared: SharedLayers | None = None) -> Any:
    net = cp.NetParameter()
    net.name = f"{deploy.name}_train"
    batch = opts.batch_size or int(find(config, "train_config", "batch_size") or 32) if config else \
        (opts.batch_size or 32)
    _data_layer(net, report, opts.train_data, batch, True, opts.label_map_file)
    net.layer.extend(_network(deploy, report, test=False, shared=shared))
    _loss_layer(net, report, config)
    return net


def test_net(deploy: Any, report: dict[str, Any], opts: TrainingOptions, shared: SharedLayers | None = None) -> Any:
    net = cp.NetParameter()
    net.name = f"{deploy.name}_test"
    _data_layer(net, report, opts.test_data, opts.test_batch_size, False, opts.label_map_file)
    net.layer.extend(_network(deploy, report, test=True, shared=shared))
    _evaluate_layer(net, report)
    return net


def solver(report: dict[str, Any], config: Message | None, opts: TrainingOptions, name: str) -> tuple[Any, list[str]]:
    """SolverParameter from pipeline.config's train_config (SSD defaults otherwise) and notes."""
    s = cp.SolverParameter()
    notes: list[str] = []
    s.train_net, s.test_net[:] = "train.prototxt", ["test.prototxt"]
    s.test_iter.append(opts.test_iter)
    s.test_interval = opts.test_interval
    s.base_lr, s.lr_policy, s.gamma, s.stepsize = 0.001, "step", 0.1, 40000
    s.momentum, s.weight_decay, s.type = 0.9, 0.0005, "SGD"
    s.max_iter = 120000
    optimizer = find(config, "train_config", "optimizer") if config else None
    if optimizer:
        kind = next(iter(optimizer))
        body = optimizer[kind][0]
        types = {"rms_prop_optimizer": "RMSProp", "momentum_optimizer": "SGD", "adam_optimizer": "Adam"}
        s.type = types.get(kind, "SGD")
        if kind not in ("rms_prop_optimizer", "momentum_optimizer", "adam_optimizer"):
            notes.append(f"optimizer {kind} has no Caffe solver; using SGD with momentum")
        momentum = find(body, "momentum_optimizer_value")
        if momentum is not None:
            s.momentum = float(momentum)
        if kind == "rms_prop_optimizer":
            s.rms_decay = float(find(body, "decay") or 0.9)
            s.delta = float(find(body, "epsilon") or 1.0)
            if s.momentum:  # Caffe's RMSPropSolver CHECKs momentum == 0: TF's RMSProp momentum has no equivalent
                notes.append(f"RMSProp momentum {s.momentum:g} dropped: Caffe's RMSProp solver has no momentum "
                             "(it refuses one)")
            s.ClearField("momentum")
            notes.append("Caffe's RMSProp starts its mean-square history at 0 where TF's starts at 1, so its "
                         "first steps are larger than TF's; the loss may rise for a few iterations")
        _learning_rate(s, find(body, "learning_rate") or {}, notes)
    steps = find(config, "train_config", "num_steps") if config else None
    if steps:
        s.max_iter = int(steps)
    l2 = find(config, "model", "ssd", "feature_extractor", "conv_hyperparams", "regularizer", "l2_regularizer",
              "weight") if config else None
    if l2 is not None:
        s.weight_decay = 2.0 * float(l2)  # d/dθ of w·‖θ‖² is 2wθ; Caffe's weight_decay λ adds λθ
    s.snapshot, s.snapshot_prefix = 5000, f"snapshots/{name}"
    s.display, s.average_loss, s.iter_size = 10, 10, 1
    s.solver_mode = cp.SolverParameter.GPU
    s.eval_type, s.ap_version = "detection", "11point"
    s.test_initialization = False
    return s, notes


def _learning_rate(s: Any, lr: Message, notes: list[str]) -> None:
    if "exponential_decay_learning_rate" in lr:
        e = lr["exponential_decay_learning_rate"][0]
        s.base_lr = float(find(e, "initial_learning_rate") or 0.004)
        s.lr_policy, s.gamma = "step", float(find(e, "decay_factor") or 0.95)
        s.stepsize = int(find(e, "decay_steps") or 800720)
        if find(e, "staircase") is False:
            s.lr_policy = "exp"
            s.gamma = s.gamma ** (1.0 / s.stepsize)
    elif "constant_learning_rate" in lr:
        s.base_lr, s.lr_policy = float(find(lr["constant_learning_rate"][0], "learning_rate") or 0.001), "fixed"
    elif "manual_step_learning_rate" in lr:
        m = lr["manual_step_learning_rate"][0]
        s.base_lr, s.lr_policy = float(find(m, "initial_learning_rate") or 0.001), "multistep"
        schedule = m.get("schedule", [])
        rates = [s.base_lr] + [float(find(x, "learning_rate")) for x in schedule]
        s.stepvalue.extend(int(find(x, "step")) for x in schedule)
        ratios = {round(b / a, 6) for a, b in itertools.pairwise(rates)}
        s.gamma = ratios.pop() if len(ratios) == 1 else 0.1
        if ratios:
            notes.append("manual_step learning rates are not a constant ratio; multistep uses gamma 0.1")
    elif "cosine_decay_learning_rate" in lr:
        c = lr["cosine_decay_learning_rate"][0]
        s.base_lr = float(find(c, "learning_rate_base") or 0.004)
        s.lr_policy, s.power = "poly", 1.0
        notes.append("cosine decay has no Caffe lr_policy; using poly (power 1) to the same end step")
    if lr and "warmup_learning_rate" in str(lr):
        notes.append("learning-rate warm-up is not reproduced (Caffe has no warm-up policy)")


FRESH_ANCHOR_FOREGROUND = 0.01  # π: a fresh prior's probability per foreground class


def _split_weights(net: Any, shared: SharedLayers) -> None:
    """Append the ``<layer>/shared`` and ``<layer>/level`` weights of every split layer to ``net``."""
    layers = {layer.name: layer for layer in net.layer}
    for name in shared.split:
        layer = layers[name]
        conv = net.layer.add()
        conv.name, conv.type = f"{name}/shared", layer.type
        blob = conv.blobs.add()
        blob.shape.dim.extend(layer.blobs[0].shape.dim)
        blob.data.extend(shared.shared_weights[name].astype(np.float32).reshape(-1).tolist())
        scale = net.layer.add()
        scale.name, scale.type = f"{name}/level", "Scale"
        factors = shared.factors[name].astype(np.float32)
        bias = _blob_array(layer.blobs[1]).astype(np.float32) if len(layer.blobs) > 1 else np.zeros_like(factors)
        for values in (factors, bias):
            b = scale.blobs.add()
            b.shape.dim.append(values.size)
            b.data.extend(values.tolist())


def finetune_init_weights(deploy: Any, report: dict[str, Any], logistic: bool,
                          shared: SharedLayers | None = None) -> Any | None:
    """Deploy's weights with every dummy prior's class biases set to a fresh anchor's under the training loss
    (`logistic`: MultiBoxLoss's LOGISTIC, else SOFTMAX), plus the split weight-shared layers' weights; None
    when the model has neither."""
    heads = [h for h in report["ssd"]["heads"] if h["dummy_slots"]]
    if not heads and not (shared and shared.split):
        return None
    net = cp.NetParameter()
    net.CopyFrom(deploy)
    if shared and shared.split:
        _split_weights(net, shared)
    layers = {layer.name: layer for layer in net.layer}
    pi = FRESH_ANCHOR_FOREGROUND
    for head in heads:
        layer = layers.get(head["conf_layer"])
        if layer is None or len(layer.blobs) < 2:
            raise BackendError(f"dummy priors: class convolution '{head['conf_layer']}' not found with a bias")
        bias = layer.blobs[1].data
        width = len(bias) // head["priors_per_cell"]  # background + foreground classes per prior
        foreground = width - 1
        if logistic:
            background_logit, foreground_logit = math.log((1 - pi) / pi), math.log(pi / (1 - pi))
        else:
            background_logit, foreground_logit = 0.0, math.log(pi / ((1 - pi) * foreground))
        for slot in head["dummy_slots"]:
            bias[slot * width] = background_logit
            for c in range(1, width):
                bias[slot * width + c] = foreground_logit
    return net


def check_same_weights(deploy: Any, nets: list[Any], split: frozenset[str] = frozenset()) -> int:
    """Every deploy layer with weights has a same-named, same-typed, same-parameter layer in each net (`split`
    layers: a ``/shared`` convolution and a ``/level`` Scale instead)."""
    count = 0
    for layer in deploy.layer:
        if not layer.blobs or layer.name.startswith("Preprocessor/"):
            continue
        if layer.name in split:
            for net in nets:
                names = {x.name: x.type for x in net.layer}
                if names.get(f"{layer.name}/shared") != layer.type or names.get(f"{layer.name}/level") != "Scale":
                    raise BackendError(f"{net.name}: weight-shared layer '{layer.name}' not split")
            count += 1
            continue
        count += 1
        for net in nets:
            twin = next((x for x in net.layer if x.name == layer.name), None)
            if twin is None or twin.type != layer.type:
                raise BackendError(f"{net.name}: layer '{layer.name}' missing or of another type")
            field = TRAINABLE.get(layer.type)
            if field and getattr(twin, field) != getattr(layer, field):
                raise BackendError(f"{net.name}: layer '{layer.name}' has other parameters than deploy's")
    return count


def training_files(deploy: Any, report: dict[str, Any], config: Message | None, emit: set[str],
                   opts: TrainingOptions) -> tuple[dict[str, str | bytes], list[str]]:
    """{file name: content} for the requested train/test/solver files (and finetune_init.caffemodel when
    the model has dummy priors), and notes for the report."""
    files: dict[str, str | bytes] = {}
    notes: list[str] = []
    nets = []
    shared = shared_layers(deploy)
    if "train" in emit:
        nets.append(train_net(deploy, report, config, opts, shared))
        files["train.prototxt"] = text_format.MessageToString(nets[-1])
    if "test" in emit:
        nets.append(test_net(deploy, report, opts, shared))
        files["test.prototxt"] = text_format.MessageToString(nets[-1])
    if nets:
        count = check_same_weights(deploy, nets, frozenset(shared.split))
        if not shared.split:
            notes.append(f"train/test nets: all {count} layers with weights have deploy's names and parameters; "
                         "caffe train -weights loads every converted weight")
        if shared.groups:
            notes.append(f"train/test nets: {len(shared.groups)} weight-shared layers (one TF layer at "
                         f"{max(len(g) for g in shared.groups)} levels) tied with param names; "
                         f"{len(shared.split)} per-level layers with their batch norm folded in are split into a "
                         "tied '/shared' convolution and a per-level '/level' Scale (weights in "
                         "finetune_init.caffemodel)")
    weights = "deploy.caffemodel"
    if "train" in emit:
        logistic = _loss_settings(config, report["ssd"]["score_converter"])["logistic"]  # as the loss layer's
        init = finetune_init_weights(deploy, report, logistic, shared)
        if init is not None:
            weights = "finetune_init.caffemodel"
            files[weights] = init.SerializeToString()
            if any(h["dummy_slots"] for h in report["ssd"]["heads"]):
                notes.append("finetune_init.caffemodel: deploy's weights with the dummy priors' class biases set to "
                             f"a fresh anchor's (foreground probability {FRESH_ANCHOR_FOREGROUND}); fine-tune from "
                             "it, not from deploy.caffemodel, whose −1e4 dummy logits would dominate the loss")
    if "solver" in emit:
        s, solver_notes = solver(report, config, opts, deploy.name)
        notes.extend(solver_notes)
        files["solver.prototxt"] = text_format.MessageToString(s)
        files["train.sh"] = ("#!/usr/bin/env sh\n"
                             "# Fine-tune the converted detector (run from this folder; needs SSD-Caffe).\n"
                             "set -e\nmkdir -p snapshots\n"
                             "\"${CAFFE_ROOT:-.}/build/tools/caffe\" train --solver=solver.prototxt "
                             f"--weights={weights} --gpu=${{GPU:-0}} 2>&1 | tee train.log\n")
    return files, notes
