"""A numpy reference for TF Object Detection API SSD detectors, and synthetic SSD graphs as IR.

The OD API is not installable here, so this module re-implements, from its documented semantics
(``ssd_anchor_generator.create_ssd_anchors``, ``MultipleGridAnchorGenerator``,
``FasterRcnnBoxCoder``, ``multiclass_non_max_suppression``; see ../shared/docs/FACTS.md), the two
pieces a converted detector must reproduce: the anchors and the postprocessor. Both are checked
against TensorFlow's recorded outputs of the OD API fixtures in tests/e2e/test_ssd_generality.py.

:func:`build_ssd_ir` builds the IR that ``import_od_api_ssd`` would produce for an SSD of any
configuration (anchors, class count, input size, head style, score converter), with a small random
backbone whose weights are calibrated on a picture so that scores spread over 0–1 and decoded boxes
move away from their anchors. :func:`reference_raw` evaluates its raw box encodings and class logits
with the reference interpreter (the stand-in for TensorFlow's ``Squeeze:0``/``concat_1:0``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transpiler.ir import DType, Graph, Value, evaluate, infer_node
from transpiler.ir.interpreter import run

TF_OUTPUTS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


# --------------------------------------------------------------------------------------- anchors
def ssd_box_specs(num_layers: int, *, min_scale: float = 0.2, max_scale: float = 0.95,
                  aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5, 3.0, 0.3333),
                  interpolated_scale_aspect_ratio: float = 1.0,
                  reduce_boxes_in_lowest_layer: bool = True) -> list[list[tuple[float, float]]]:
    """``create_ssd_anchors``' box specs: per layer, the ``(scale, aspect_ratio)`` of each cell anchor.

    ``s_k = min + (max − min)·k/(L − 1)`` for ``k < L`` and ``s_L = 1``. Layer ``k``: every aspect
    ratio at ``s_k``, then (if ``interpolated_scale_aspect_ratio > 0``) one box at ``√(s_k·s_{k+1})``
    with that aspect ratio. With ``reduce_boxes_in_lowest_layer`` layer 0 is
    ``[(0.1, 1.0), (s_0, 2.0), (s_0, 0.5)]``.
    """
    if num_layers < 2:
        raise ValueError("create_ssd_anchors needs at least 2 layers (the scale formula divides by L − 1)")
    scales = [min_scale + (max_scale - min_scale) * k / (num_layers - 1) for k in range(num_layers)] + [1.0]
    specs: list[list[tuple[float, float]]] = []
    for k in range(num_layers):
        if k == 0 and reduce_boxes_in_lowest_layer:
            specs.append([(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)])
            continue
        layer = [(scales[k], float(ar)) for ar in aspect_ratios]
        if interpolated_scale_aspect_ratio > 0.0:
            layer.append((math.sqrt(scales[k] * scales[k + 1]), float(interpolated_scale_aspect_ratio)))
        specs.append(layer)
    return specs


def multiple_grid_anchors(feature_maps: Sequence[tuple[int, int]], *, min_scale: float = 0.2,
                          max_scale: float = 0.95,
                          aspect_ratios: Sequence[float] = (1.0, 2.0, 0.5, 3.0, 0.3333),
                          interpolated_scale_aspect_ratio: float = 1.0, reduce_boxes_in_lowest_layer: bool = True,
                          base_anchor_size: tuple[float, float] = (1.0, 1.0),
                          image_size: tuple[int, int] = (300, 300),
                          anchor_strides: Sequence[tuple[float, float]] | None = None,
                          anchor_offsets: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """The anchors an OD API SSD computes: ``[A, 4]`` float32 ``(ymin, xmin, ymax, xmax)``, normalised.

    ``create_ssd_anchors`` box specs (:func:`ssd_box_specs`, one layer per feature map), tiled as
    ``MultipleGridAnchorGenerator._generate`` does for an image of ``image_size = (H, W)``:

    - ``base_anchor_size = (b_h·min(H,W)/H, b_w·min(H,W)/W)``, so an aspect-ratio-1 anchor is square
      in pixels on a non-square image (normalised width ≠ height);
    - anchor ``(s, ar)``: ``h = s/√ar · base_h``, ``w = s·√ar · base_w``;
    - stride ``(1/fm_h, 1/fm_w)`` and offset ``stride/2`` unless given (OD API ``anchor_strides``,
      ``anchor_offsets``): centre of cell ``(i, j)`` = ``(i·stride_y + off_y, j·stride_x + off_x)``;
    - order: layer by layer, cells row-major, then the cell's anchors in spec order;
      corners ``centre ∓ size/2``, not clipped.

    Computed in float64 and rounded once to float32 (TF computes in float32: differences ~1e-7).
    """
    specs = ssd_box_specs(len(feature_maps), min_scale=min_scale, max_scale=max_scale, aspect_ratios=aspect_ratios,
                          interpolated_scale_aspect_ratio=interpolated_scale_aspect_ratio,
                          reduce_boxes_in_lowest_layer=reduce_boxes_in_lowest_layer)
    im_h, im_w = image_size
    short = min(im_h, im_w)
    base_h, base_w = base_anchor_size[0] * short / im_h, base_anchor_size[1] * short / im_w
    out = []
    for k, ((fh, fw), layer) in enumerate(zip(feature_maps, specs, strict=True)):
        stride_y, stride_x = anchor_strides[k] if anchor_strides else (1.0 / fh, 1.0 / fw)
        off_y, off_x = anchor_offsets[k] if anchor_offsets else (0.5 * stride_y, 0.5 * stride_x)
        scales = np.array([s for s, _ in layer])
        ratios = np.sqrt(np.array([ar for _, ar in layer]))
        heights, widths = scales / ratios * base_h, scales * ratios * base_w
        cy = np.arange(fh) * stride_y + off_y
        cx = np.arange(fw) * stride_x + off_x
        yc = np.broadcast_to(cy[:, None, None], (fh, fw, len(layer)))
        xc = np.broadcast_to(cx[None, :, None], (fh, fw, len(layer)))
        boxes = np.stack([yc - heights / 2, xc - widths / 2, yc + heights / 2, xc + widths / 2], axis=-1)
        out.append(boxes.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


# ---------------------------------------------------------------------------------- postprocess
def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, scales: Sequence[float] = (10, 10, 5, 5)) -> np.ndarray:
    """FasterRcnnBoxCoder.decode, float32: ``[ty, tx, th, tw]`` → ``[ymin, xmin, ymax, xmax]``."""
    a = anchors.reshape(-1, 4).astype(np.float32)
    e = encodings.reshape(-1, 4).astype(np.float32)
    ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    yca, xca = a[:, 0] + ha / np.float32(2), a[:, 1] + wa / np.float32(2)
    ty, tx = e[:, 0] / np.float32(scales[0]), e[:, 1] / np.float32(scales[1])
    th, tw = e[:, 2] / np.float32(scales[2]), e[:, 3] / np.float32(scales[3])
    h, w = np.exp(th) * ha, np.exp(tw) * wa
    yc, xc = ty * ha + yca, tx * wa + xca
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1).astype(np.float32)


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU as TF's NMS kernel computes it (corners normalised by min/max; empty boxes overlap nothing)."""
    y1, x1 = np.minimum(box[0], box[2]), np.minimum(box[1], box[3])
    y2, x2 = np.maximum(box[0], box[2]), np.maximum(box[1], box[3])
    by1, bx1 = np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3])
    by2, bx2 = np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])
    area = (y2 - y1) * (x2 - x1)
    areas = (by2 - by1) * (bx2 - bx1)
    inter = np.maximum(np.minimum(y2, by2) - np.maximum(y1, by1), 0) * np.maximum(
        np.minimum(x2, bx2) - np.maximum(x1, bx1), 0)
    union = area + areas - inter
    ok = (area > 0) & (areas > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float,
               max_output: int) -> np.ndarray:
    """Indices TF's NonMaxSuppressionV3+ selects: score > threshold, best first (ties: lower index),
    a candidate is dropped when its IoU with a selected box is > ``iou_threshold``."""
    candidates = np.flatnonzero(scores > score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    b = boxes[order].astype(np.float64)
    alive = np.ones(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if len(keep) >= max_output:
            break
        if not alive[i]:
            continue
        keep.append(int(order[i]))
        alive[i + 1:] &= _iou_one_to_many(b[i], b[i + 1:]) <= iou_threshold
    return np.asarray(keep, dtype=np.int64)


def tf_postprocess(encodings: np.ndarray, logits: np.ndarray, anchors: np.ndarray, *,
                   scales: Sequence[float] = (10, 10, 5, 5), iou: float = 0.6, score_threshold: float = 1e-8,
                   max_per_class: int = 100, max_total: int = 100, score_converter: str = "sigmoid",
                   logit_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The OD API SSD postprocessor on one image, in numpy.

    Decode (FasterRcnnBoxCoder), ``logits / logit_scale`` → sigmoid (or softmax over all classes),
    drop the background column; per class, greedy NMS on the *unclipped* boxes (:func:`greedy_nms`,
    at most ``max_per_class``); merge the classes, sort by score (stable: class order on ties), clip
    to ``[0, 1]``, drop boxes left with zero area, keep ``max_total``. Returns
    ``(boxes [1,K,4], scores [1,K], classes [1,K] 1-based, num [1])`` padded to ``max_total``, as the
    exported graph's ``detection_*`` tensors.
    """
    boxes = decode_boxes(encodings, anchors, scales)
    x = logits.reshape(boxes.shape[0], -1).astype(np.float32) / np.float32(logit_scale)
    if score_converter == "sigmoid":
        converted = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    elif score_converter == "softmax":
        e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
        converted = e / e.sum(axis=1, keepdims=True)
    else:
        raise ValueError(f"score converter {score_converter}")
    probs = converted.astype(np.float32)[:, 1:]
    sel_boxes, sel_scores, sel_classes = [], [], []
    for c in range(probs.shape[1]):
        keep = greedy_nms(boxes, probs[:, c], iou, score_threshold, max_per_class)
        sel_boxes.append(boxes[keep])
        sel_scores.append(probs[keep, c])
        sel_classes.append(np.full(len(keep), c + 1, dtype=np.float32))
    all_boxes, all_scores = np.concatenate(sel_boxes), np.concatenate(sel_scores)
    all_classes = np.concatenate(sel_classes)
    order = np.argsort(-all_scores, kind="stable")
    clipped = np.clip(all_boxes[order], 0.0, 1.0)
    nonempty = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]) > 0
    order, clipped = order[nonempty][:max_total], clipped[nonempty][:max_total]
    n = len(order)
    out_boxes = np.zeros((1, max_total, 4), np.float32)
    out_scores = np.zeros((1, max_total), np.float32)
    out_classes = np.zeros((1, max_total), np.float32)
    out_boxes[0, :n], out_scores[0, :n], out_classes[0, :n] = clipped, all_scores[order], all_classes[order]
    return out_boxes, out_scores, out_classes, np.array([n], dtype=np.float32)


# ------------------------------------------------------------------------------ synthetic graphs
@dataclass(frozen=True)
class SSDConfig:
    """One member of the SSD family, as ``pipeline.config`` would describe it."""

    name: str
    height: int = 300
    width: int = 300
    num_classes: int = 1
    num_heads: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True
    base_anchor_size: tuple[float, float] = (1.0, 1.0)
    anchor_offsets: tuple[tuple[float, float], ...] | None = None  # per head, normalised (OD API anchor_offsets)
    box_kernel: int = 1  # 1: SSDLite (after a depthwise 3×3), 3: ssd_mobilenet_v2 conv heads
    depthwise_heads: bool = True  # SSDLite: depthwise 3×3 + ReLU6 before each 1×1 predictor
    score_converter: str = "sigmoid"
    logit_scale: float = 1.0
    iou_threshold: float = 0.6
    score_threshold: float = 1e-8
    max_per_class: int = 100
    max_total: int = 100
    channels: int = 8
    seed: int = 0

    @property
    def feature_maps(self) -> list[tuple[int, int]]:
        """Stride 16 (4 stride-2 SAME convs), then one more stride-2 conv per further head."""
        h, w = self.height, self.width
        out = []
        for i in range(4 + self.num_heads - 1):
            h, w = -(-h // 2), -(-w // 2)
            if i >= 3:
                out.append((h, w))
        return out

    def anchors(self) -> np.ndarray:
        fms = self.feature_maps
        offsets = None
        if self.anchor_offsets is not None:
            offsets = [(oy / fh, ox / fw) for (fh, fw), (oy, ox) in zip(fms, self.anchor_offsets, strict=True)]
        return multiple_grid_anchors(fms, min_scale=self.min_scale, max_scale=self.max_scale,
                                     aspect_ratios=self.aspect_ratios,
                                     interpolated_scale_aspect_ratio=self.interpolated_scale_aspect_ratio,
                                     reduce_boxes_in_lowest_layer=self.reduce_boxes_in_lowest_layer,
                                     base_anchor_size=self.base_anchor_size, image_size=(self.height, self.width),
                                     anchor_offsets=offsets)

    def anchors_per_cell(self) -> list[int]:
        specs = ssd_box_specs(self.num_heads, min_scale=self.min_scale, max_scale=self.max_scale,
                              aspect_ratios=self.aspect_ratios,
                              interpolated_scale_aspect_ratio=self.interpolated_scale_aspect_ratio,
                              reduce_boxes_in_lowest_layer=self.reduce_boxes_in_lowest_layer)
        return [len(s) for s in specs]

    def postprocess(self, encodings: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, ...]:
        return tf_postprocess(encodings, logits, self.anchors(), iou=self.iou_threshold,
                              score_threshold=self.score_threshold, max_per_class=self.max_per_class,
                              max_total=self.max_total, score_converter=self.score_converter,
                              logit_scale=self.logit_scale)


class _Builder:
    """Adds nodes like the TF importer does (shape inference at once, 4-D float maps NHWC, tf_name)
    and evaluates each one on a calibration picture, to set weight scales from real activations."""

    def __init__(self, graph: Graph, calibration: np.ndarray, seed: int) -> None:
        self.graph = graph
        self.rng = np.random.default_rng(seed)
        self.env: dict[int, np.ndarray] = {id(graph.inputs[0]): calibration}

    def value(self, v: Value) -> np.ndarray:
        return v.const if v.const is not None else self.env[id(v)]

    def op(self, op: str, inputs: list[Value], name: str, **attrs: Any) -> Value:
        node = self.graph.add_node(op, inputs, 1, attrs, name=name, source_names=[name])
        infer_node(node)
        out = node.output
        if out.layout is None and out.rank == 4 and out.dtype.is_float:
            out.layout = "NHWC"
        out.tf_name = f"{name}:0"
        self.env[id(out)] = evaluate(node, [self.value(v) for v in inputs])[0]
        return out

    def const(self, name: str, array: np.ndarray | float) -> Value:
        return self.graph.constant(name, np.asarray(array, dtype=np.float32))

    def conv(self, x: Value, scope: str, cout: int, kernel: int, *, stride: int = 1, depthwise: bool = False,
             mean: np.ndarray | float = 0.0, std: np.ndarray | float = 1.0) -> Value:
        """Conv2D (or depthwise) + BiasAdd whose outputs have the given per-channel mean/std on the
        calibration picture (the weights are random, then rescaled per channel)."""
        cin = int(x.static_shape[3])
        shape = (kernel, kernel, cin, 1) if depthwise else (kernel, kernel, cin, cout)
        w = self.rng.normal(size=shape)
        attrs = {"strides": (stride, stride), "dilations": (1, 1), "padding": "SAME", "pads": (0, 0, 0, 0),
                 "group": cin if depthwise else 1, "kernel_layout": "HWCM" if depthwise else "HWIO"}
        probe = self.graph.add_node("Conv", [x, self.const("probe", w)], 1, attrs, name="probe")
        infer_node(probe)
        y = evaluate(probe, [self.value(x), w.astype(np.float32)])[0].astype(np.float64)
        self.graph.remove(probe)
        # per-channel statistics where the map has enough pixels; on tiny maps (1×1...) per-layer ones
        # (a per-channel std over one pixel is 0, which would blow the weights up)
        axes = (0, 1, 2) if y.shape[1] * y.shape[2] >= 16 else (0, 1, 2, 3)
        mu, sd = y.mean(axis=axes), y.std(axis=axes) + 1e-6
        scale = np.broadcast_to(np.asarray(std) / sd, y.shape[3:])
        w = w * (scale[:, None] if depthwise else scale)  # output channel: HWCM axis 2 (M = 1), HWIO axis 3
        bias = np.asarray(mean) - mu * scale
        op_name = "depthwise" if depthwise else "Conv2D"
        out = self.op("Conv", [x, self.const(f"{scope}/weights", w)], f"{scope}/{op_name}", **attrs)
        return self.op("Add", [out, self.const(f"{scope}/biases", bias)], f"{scope}/BiasAdd")

    def relu6(self, x: Value, scope: str) -> Value:
        return self.op("Clip", [x], f"{scope}/Relu6", min=0.0, max=6.0)


def build_ssd_ir(cfg: SSDConfig, calibration: np.ndarray | None = None, *, postprocess: bool = True) -> Graph:
    """The IR ``import_od_api_ssd`` would produce for an OD API SSD described by ``cfg``.

    ``data`` [1,H,W,3] raw pixels (NHWC, ``image_tensor:0``) → ``Mul(2/255)`` → ``Sub(1)`` → a small
    backbone of stride-2 3×3 SAME convs + ReLU6 (``Clip 0..6``) → per head (feature maps
    ``cfg.feature_maps``) a box and a class predictor (SSDLite: depthwise 3×3 + ReLU6 + 1×1 conv;
    else a ``box_kernel``×``box_kernel`` conv), each ``Conv → BiasAdd → Reshape (1,−1,1,4)`` /
    ``(1,−1,C+1)`` → ``Concat`` axis 1 (box: ``Squeeze`` axis 2, as the exporter's ``Squeeze:0``) →
    ``SSDPostprocess(encodings, logits, anchors)``; the anchors are the constant of
    :func:`multiple_grid_anchors`. With ``postprocess=False`` the graph's outputs are the raw
    encodings and logits instead (for the reference interpreter).

    Weights are random (``cfg.seed``) and calibrated on ``calibration`` (NHWC float32 0–255, default
    a fixed smooth pattern): backbone pre-activations ~ N(1, 1.5²) per channel, box encodings std
    2.5 (ty, tx) and 1.5 (th, tw), class logits std 2.5 around a mean that falls with the class count.
    """
    h, w, c1 = cfg.height, cfg.width, cfg.num_classes + 1
    if calibration is None:
        yy, xx = np.mgrid[0:h, 0:w]
        calibration = np.stack([127 + 120 * np.sin(yy / 17.0 + k) * np.cos(xx / 23.0 - k) for k in range(3)],
                               axis=-1)[None].astype(np.float32)
    g = Graph(cfg.name)
    data = g.add_input("data", DType.FLOAT32, (1, h, w, 3), layout="NHWC", tf_name="image_tensor:0")
    b = _Builder(g, calibration.astype(np.float32), cfg.seed)
    x = b.op("Mul", [data, b.const("Preprocessor/normalize_0/c", 2.0 / 255.0)], "Preprocessor/mul")
    x = b.op("Sub", [x, b.const("Preprocessor/normalize_1/c", 1.0)], "Preprocessor/sub")
    features = []
    for i in range(4 + cfg.num_heads - 1):
        scope = f"FeatureExtractor/layer_{i}"
        x = b.relu6(b.conv(x, scope, cfg.channels, 3, stride=2, mean=1.0, std=1.5), scope)
        if i >= 3:
            features.append(x)
    per_cell = cfg.anchors_per_cell()
    box_outs, cls_outs = [], []
    log_c = math.log(cfg.num_classes)
    for k, (f, n) in enumerate(zip(features, per_cell, strict=True)):
        for kind, width in (("BoxEncodingPredictor", 4), ("ClassPredictor", c1)):
            scope = f"BoxPredictor_{k}/{kind}"
            y = f
            if cfg.depthwise_heads:
                y = b.relu6(b.conv(y, scope + "_depthwise", 0, 3, depthwise=True, mean=1.0, std=1.5),
                            scope + "_depthwise")
            if kind == "BoxEncodingPredictor":
                mean, std = np.zeros(n * 4), np.tile([2.5, 2.5, 1.5, 1.5], n)
            else:
                mean = np.tile(np.r_[0.0, np.full(cfg.num_classes, -3.0 - log_c)], n)
                std = np.full(n * c1, 2.5)
            y = b.conv(y, scope, n * width, cfg.box_kernel, mean=mean, std=std)
            if kind == "BoxEncodingPredictor":
                box_outs.append(b.op("Reshape", [y], f"BoxPredictor_{k}/Reshape", shape=(1, -1, 1, 4)))
            else:
                cls_outs.append(b.op("Reshape", [y], f"BoxPredictor_{k}/Reshape_1", shape=(1, -1, c1)))
    enc = b.op("Concat", box_outs, "concat", axis=1)
    enc = b.op("Squeeze", [enc], "Squeeze", axes=(2,))
    logits = b.op("Concat", cls_outs, "concat_1", axis=1)
    if not postprocess:
        g.outputs = [enc, logits]
        return g
    anchors = g.constant("MultipleGridAnchorGenerator/Concatenate/concat", cfg.anchors())
    anchors.tf_name = "Concatenate/concat:0"
    attrs = {"iou_threshold": cfg.iou_threshold, "score_threshold": cfg.score_threshold,
             "max_per_class": cfg.max_per_class, "max_total": cfg.max_total, "scale_factors": (10.0, 10.0, 5.0, 5.0),
             "score_converter": cfg.score_converter, "logit_scale": cfg.logit_scale}
    post = g.add_node("SSDPostprocess", [enc, logits, anchors], 1, attrs, name="detection_out",
                      source_names=["Postprocessor"])
    infer_node(post)
    g.outputs = [post.output]
    g.metadata["tf_inputs"] = ["image_tensor:0"]
    g.metadata["tf_input_dtypes"] = {"image_tensor:0": "u8"}
    g.metadata["tf_outputs"] = list(TF_OUTPUTS)
    g.metadata["ssd"] = {
        "feature_input": "Preprocessor/sub:0",
        "normalization": [{"op": "Mul", "value": 2.0 / 255.0, "scalar_first": False},
                          {"op": "Sub", "value": 1.0, "scalar_first": False}],
        "raw_box_encodings": "Squeeze:0",
        "raw_class_logits": "concat_1:0",
        "anchors": "Concatenate/concat:0",
        "input_size": [h, w],
    }
    return g


def reference_raw(cfg: SSDConfig, image: np.ndarray, calibration: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Raw box encodings ``[1,A,4]`` and class logits ``[1,A,C+1]`` of ``image`` (NHWC 0–255), from the
    reference interpreter on the graph before any pass (the stand-in for TensorFlow)."""
    graph = build_ssd_ir(cfg, image if calibration is None else calibration, postprocess=False)
    enc_v, logits_v = graph.outputs
    out = run(graph, {"data": image.astype(np.float32)})
    return out[enc_v.name], out[logits_v.name]
