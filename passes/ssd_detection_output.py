"""ssd-detection-output: lower ``SSDPostprocess`` to Caffe's SSD layers, exactly.

Input pattern (NHWC IR, before to-nchw): the box encodings are ``Concat(axis 1)`` (maybe under a
Squeeze/Reshape) of one ``Reshape(Conv)`` per head, likewise the class logits, and the anchors are
a constant ``[A, 4]`` (``ymin, xmin, ymax, xmax``, head by head, cell by cell). Per head the anchors
of one cell are grouped into PriorBox layers (:mod:`ssd_priors`), and the head's two convolutions
are rewritten so that their output channels follow Caffe's prior order:

- box channels ``[ty, tx, th, tw]`` per anchor become ``[tx, ty, tw, th]`` (Caffe decodes
  ``CENTER_SIZE`` in x/y order; TF's scale factors 10,10,5,5 are the variances 0.1,0.1,0.2,0.2);
- anchors within a cell are reordered to Caffe's ``[min, √(min·max), ratios…]``; a group whose
  ``min`` square TF lacks gets a dummy prior with zero box weights and class logits of −10⁴ for every
  foreground class (score 0: never detected, so detections are unchanged).

Output: per head ``Reshape(conv, (1,−1))`` (Caffe: Permute + Flatten), ``Concat`` → ``mbox_loc``,
``mbox_conf`` (→ Sigmoid/Softmax), ``PriorBox`` per group → ``mbox_priorbox``, and
``DetectionOutput`` with the graph's NMS settings. The priors are computed here with both
SSD-Caffe's (integer sizes) and OpenCV's (float sizes) semantics and compared with the graph's
anchors; a difference above 1e-5 refuses the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.ssd_priors import PriorGroup, constant_priors, head_groups, prior_boxes, prior_steps, snap

PRIOR_TOLERANCE = 1e-5
DUMMY_LOGIT = -1.0e4
BOX_ORDER = (1, 0, 3, 2)  # Caffe [tx, ty, tw, th] from TF [ty, tx, th, tw]


@dataclass
class Head:
    box_conv: Node
    cls_conv: Node
    height: int
    width: int
    per_cell: int


def heads_of(value: Value, what: str) -> list[Node]:
    """The per-head convolutions concatenated into ``value``."""
    node = value.producer
    while node is not None and node.op in ("Squeeze", "Reshape", "Identity"):
        node = node.inputs[0].producer
    if node is None or node.op != "Concat":
        raise UnsupportedModelError(f"SSD {what}: expected a Concat of the box predictor outputs, found "
                                    f"{node.describe() if node else 'a graph input'}")
    convs = []
    for v in node.inputs:
        p = v.producer
        while p is not None and p.op in ("Reshape", "Identity"):
            p = p.inputs[0].producer
        if p is None or p.op != "Conv" or p.attrs.get("kernel_layout") != "HWIO" or p.inputs[1].const is None:
            raise UnsupportedModelError(f"SSD {what}: a box predictor output is not a convolution with constant "
                                        f"weights ({p.describe() if p else 'graph input'})")
        convs.append(p)
    return convs


def _select(graph: Graph, conv: Node, channels: list[int | None], width: int, dummy_bias: np.ndarray,
            name: str) -> Value:
    """A copy of ``conv`` computing the given output channel groups (None = dummy group)."""
    w = conv.inputs[1].const
    b = conv.inputs[2].const if len(conv.inputs) > 2 else None
    assert w is not None
    new_w = np.zeros((*w.shape[:3], len(channels) * width), dtype=w.dtype)
    new_b = np.zeros(len(channels) * width, dtype=w.dtype)
    for k, c in enumerate(channels):
        if c is None:
            new_b[k * width:(k + 1) * width] = dummy_bias
            continue
        new_w[..., k * width:(k + 1) * width] = w[..., c * width:(c + 1) * width]
        if b is not None:
            new_b[k * width:(k + 1) * width] = b[c * width:(c + 1) * width]
    node = graph.add_node("Conv", [conv.inputs[0], graph.constant(name + "/weights", new_w),
                                   graph.constant(name + "/bias", new_b)], 1, dict(conv.attrs), name=name,
                          source_names=conv.source_names, after=conv)
    return node.output


def _reorder_box_weights(conv: Node, graph: Graph) -> None:
    """Swap the y/x pairs of every anchor's four box channels, in place."""
    w = conv.inputs[1].const
    assert w is not None
    perm = np.arange(w.shape[3]).reshape(-1, 4)[:, BOX_ORDER].reshape(-1)
    graph.set_input(conv, 1, graph.constant(conv.name + "/weights_xy", w[..., perm]))
    if len(conv.inputs) > 2 and conv.inputs[2].const is not None:
        graph.set_input(conv, 2, graph.constant(conv.name + "/bias_xy", conv.inputs[2].const[perm]))


def _flatten(graph: Graph, x: Value, name: str) -> Value:
    node = graph.add_node("Reshape", [x], 1, {"shape": (1, -1)}, name=name, source_names=x.producer.source_names
                          if x.producer else ())
    return node.output


def _lower(graph: Graph, post: Node, ctx: PassContext) -> None:
    encodings, logits, anchors_v = post.inputs
    settings = dict(post.attrs)
    anchors = anchors_v.const
    if anchors is None:
        raise UnsupportedModelError("SSD anchors are not constant after folding: the anchor generator depends on "
                                    "the input in a way PriorBox cannot express")
    anchors = anchors.reshape(-1, 4).astype(np.float64)
    box_convs, cls_convs = heads_of(encodings, "box encodings"), heads_of(logits, "class logits")
    if len(box_convs) != len(cls_convs):
        raise UnsupportedModelError(f"SSD heads: {len(box_convs)} box predictors but {len(cls_convs)} class predictors")
    data = graph.inputs[0]
    img_h, img_w = data.static_shape[1], data.static_shape[2]
    short = min(img_h, img_w)
    heads: list[Head] = []
    for box, cls in zip(box_convs, cls_convs, strict=True):
        (_, fh, fw, box_ch), (_, fh2, fw2, _) = box.output.static_shape, cls.output.static_shape
        if (fh, fw) != (fh2, fw2) or box_ch % 4:
            raise UnsupportedModelError(f"SSD head {box.describe()}: box and class maps differ "
                                        f"({fh}x{fw} vs {fh2}x{fw2})")
        heads.append(Head(box, cls, fh, fw, box_ch // 4))
    classes = {int(hd.cls_conv.output.static_shape[3]) // hd.per_cell for hd in heads}
    if len(classes) != 1:
        raise UnsupportedModelError(f"SSD heads disagree on the class count: {sorted(classes)}")
    num_classes = classes.pop()  # includes background
    total = sum(hd.height * hd.width * hd.per_cell for hd in heads)
    if total != anchors.shape[0]:
        raise UnsupportedModelError(f"SSD: the heads predict {total} boxes but the graph has "
                                    f"{anchors.shape[0]} anchors")

    # group every head's cell anchors, then pick one virtual image size for all PriorBoxes
    offset = 0
    plans: list[tuple[Head, int, list[PriorGroup]]] = []
    for hd in heads:
        count = hd.height * hd.width * hd.per_cell
        plans.append((hd, offset, head_groups(anchors[offset:offset + count], hd.height, hd.width, hd.per_cell,
                                              img_w / short, img_h / short)))
        offset += count
    # Sizes in pixels of the real input: OpenCV's PriorBox divides by the data blob's size and ignores
    # img_h/img_w, so no virtual image size can serve every runtime.
    unit = float(short)

    scales = settings["scale_factors"]
    variance = [1.0 / float(scales[1]), 1.0 / float(scales[0]), 1.0 / float(scales[3]), 1.0 / float(scales[2])]
    softmax = settings["score_converter"] == "softmax"
    dummy_cls = np.full(num_classes, DUMMY_LOGIT, dtype=np.float32)
    if softmax:
        dummy_cls = np.where(np.arange(num_classes) == 0, -DUMMY_LOGIT, 0.0).astype(np.float32)
    locs: list[Value] = []
    confs: list[Value] = []
    priors: list[Value] = []
    mapping: list[np.ndarray] = []
    layout: list[dict[str, Any]] = []
    for i, (h, start, groups) in enumerate(plans):
        _reorder_box_weights(h.box_conv, graph)
        for j, g in enumerate(groups):
            tag = f"{h.box_conv.name.rsplit('/', 2)[0]}/caffe_group{j}" if len(groups) > 1 else None
            order = [None if a < 0 else a for a in g.cell_order]
            identity = order == list(range(h.per_cell))
            loc = h.box_conv.output if identity else _select(graph, h.box_conv, order, 4, np.zeros(4, np.float32),
                                                               (tag or h.box_conv.name) + "/caffe_order")
            conf = h.cls_conv.output if identity else _select(graph, h.cls_conv, order, num_classes, dummy_cls,
                                                                (tag or h.cls_conv.name) + "/caffe_order")
            base = f"mbox_{i}" if len(groups) == 1 else f"mbox_{i}_{j}"
            locs.append(_flatten(graph, loc, f"{base}_loc_flat"))
            confs.append(_flatten(graph, conf, f"{base}_conf_flat"))
            step_h, step_w = prior_steps(g, h.height, h.width, img_h, img_w)
            attrs: dict[str, Any] = {
                "min_size": snap(g.min_size * unit), "max_size": [] if g.max_size is None else
                [snap(g.max_size * unit)], "aspect_ratios": [float(r) for r in g.aspect_ratios],
                "img_h": img_h, "img_w": img_w, "offset": g.offset, "variance": variance, "clip": False,
                **step_attrs(step_h, step_w, img_h, img_w, h.height, h.width, f"{base}_priorbox", ctx),
            }
            priors.append(graph.add_node("PriorBox", [loc, data], 1, attrs, name=f"{base}_priorbox",
                                         source_names=["MultipleGridAnchorGenerator"]).output)
            cells = np.arange(h.height * h.width)[:, None] * h.per_cell
            tf_index = np.where(np.asarray(g.cell_order)[None, :] < 0, -1, start + cells + np.asarray(g.cell_order))
            mapping.append(tf_index.reshape(-1))
            layout.append({"head": i, "group": j, "feature_map": [h.height, h.width], "priors_per_cell":
                           g.priors_per_cell, "dummy_priors_per_cell": order.count(None),
                           "dummy_slots": [k for k, a in enumerate(order) if a is None],
                           "conf_layer": conf.producer.name if conf.producer else None, "prior_box": attrs})
    prior_to_anchor = np.concatenate(mapping)
    try:
        _check_priors(plans, img_h, img_w, unit, anchors, prior_to_anchor,
                      ctx.options.get("prior_runtimes", ("ssd-caffe", "opencv")))
        exact_priorbox = True
    except UnsupportedModelError as exc:  # no PriorBox reproduces the anchors there: a constant prior blob does
        exact_priorbox = False
        ctx.warn(f"{exc}; the priors are written as a constant blob instead (mbox_priorbox: the anchors as the "
                 "bias of a zero-weight InnerProduct, exact in every runtime)")

    loc = graph.add_node("Concat", locs, 1, {"axis": 1}, name="mbox_loc", source_names=encodings.producer.source_names
                         if encodings.producer else ()).output
    conf_logits = graph.add_node("Concat", confs, 1, {"axis": 1}, name="mbox_conf_logits",
                                 source_names=logits.producer.source_names if logits.producer else ()).output
    conf = _score(graph, conf_logits, settings, num_classes)
    if exact_priorbox:
        prior = graph.add_node("Concat", priors, 1, {"axis": 2}, name="mbox_priorbox").output
    else:
        boxes = np.concatenate([prior_boxes(h.height, h.width, img_h, img_w, replace(
            g, min_size=g.min_size * unit, max_size=None if g.max_size is None else g.max_size * unit),
            truncate=False) for h, _, groups in plans for g in groups])
        real = prior_to_anchor >= 0  # TF's anchors; dummy priors (never detected) where PriorBox would put them
        boxes[real] = anchors[prior_to_anchor[real]][:, [1, 0, 3, 2]]
        prior = constant_priors(graph, data, boxes, variance, "mbox_priorbox")
    loc.tf_name, conf_logits.tf_name = None, None
    # top_k (candidates per class before NMS) is the prior count: no candidate is cut, exactly as when unset
    # (TF limits results after NMS, not candidates), and written because tpu-mlir and x2paddle read an unset
    # top_k as 0. --nms-top-k sets a lower one, for speed (OpenCV's NMS is quadratic in the candidates per class).
    top_k = ctx.options.get("nms_top_k")
    if top_k is None:
        top_k = int(prior_to_anchor.size)
    else:
        ctx.warn(f"--nms-top-k {top_k}: DetectionOutput keeps only the {top_k} best candidates per class before "
                 "NMS; TF limits after NMS, so detections can differ from TF's")
    det_attrs: dict[str, Any] = {
        "num_classes": num_classes, "background_label_id": 0, "nms_threshold": float(settings["iou_threshold"]),
        "top_k": top_k, "keep_top_k": int(settings["max_total"]),
        "confidence_threshold": float(settings["score_threshold"]),
    }
    graph.rewrite(post, "DetectionOutput", [loc, conf, prior], det_attrs)
    graph.topological_sort()
    if int(settings["max_per_class"]) < det_attrs["keep_top_k"]:
        ctx.warn(f"TF keeps at most {settings['max_per_class']} detections per class after NMS; Caffe's "
                 "DetectionOutput has no per-class limit (only keep_top_k overall)")
    ctx.warn("TF clips detections to the image after NMS and drops boxes left empty; DetectionOutput keeps "
             "unclipped boxes: clip [xmin, ymin, xmax, ymax] to [0, 1] and drop empty ones")
    graph.metadata.setdefault("ssd", {}).update({
        "num_classes": num_classes - 1,
        "num_anchors": int(anchors.shape[0]),
        "num_priors": int(prior_to_anchor.size),
        "prior_to_anchor": prior_to_anchor.tolist(),
        "box_coordinate_order": list(BOX_ORDER),
        "heads": layout,
        "prior_runtimes_checked": list(ctx.options.get("prior_runtimes", ("ssd-caffe", "opencv"))),
        "priors_written_as": "PriorBox" if exact_priorbox else "constant",
        "nms": {k: det_attrs[k] for k in ("nms_threshold", "confidence_threshold", "keep_top_k", "top_k")},
        "tf_nms": {k: settings[k] for k in ("iou_threshold", "score_threshold", "max_per_class", "max_total")},
        "score_converter": settings["score_converter"],
        "box_coder_scale_factors": list(settings["scale_factors"]),
        "blobs": {"loc": "mbox_loc", "conf_logits": "mbox_conf_logits", "conf": conf.producer.name
                  if conf.producer else "", "priors": "mbox_priorbox", "detections": post.name},
    })


# Runtimes that read a PriorBox step as an integer (MNN 3.6.1 truncates 15.789 to 15: its priors shift); OpenCV
# and SSD-Caffe read it as a float.
TRUNCATING_STEP_RUNTIMES = {"mnn": "MNN 3.6.1"}


def step_attrs(step_h: float, step_w: float, img_h: int, img_w: int, layer_h: int, layer_w: int, name: str,
               ctx: PassContext) -> dict[str, float | None]:
    """PriorBox ``step_h``/``step_w``: None (not written) where the runtimes derive the same float32 value.

    SSD-Caffe and OpenCV both compute a missing step as ``float(image size) / layer size`` in float32 (image
    size: SSD-Caffe's ``img_h``/``img_w`` when set, OpenCV's data blob; we write ``img_h``/``img_w`` = the data
    blob's size, so both agree), which is also what a written step reads back as. Leaving it out is therefore
    exact, and spares runtimes that truncate a written step to an integer. A step that differs from the derived
    value (anchor strides or offsets of their own) must be written: a fractional one is refused for a flavor
    that targets such a runtime, and warned about otherwise.
    """
    derived = (np.float32(img_h) / np.float32(layer_h), np.float32(img_w) / np.float32(layer_w))
    if np.float32(step_h) == derived[0] and np.float32(step_w) == derived[1]:
        return {"step_h": None, "step_w": None}
    if step_h != int(step_h) or step_w != int(step_w):
        runtimes = list(ctx.options.get("prior_runtimes", ()))
        truncating = [TRUNCATING_STEP_RUNTIMES[r] for r in runtimes if r in TRUNCATING_STEP_RUNTIMES]
        what = (f"PriorBox {name}: step {step_h:.6g} x {step_w:.6g} is not a whole number and differs from "
                f"image size / layer size ({float(derived[0]):.6g} x {float(derived[1]):.6g}), so it must be written")
        if truncating:
            raise UnsupportedModelError(f"{what}; {', '.join(truncating)} truncate(s) it to an integer (priors "
                                        "shift)")
        ctx.warn(f"{what}: runtimes that truncate it to an integer ({', '.join(TRUNCATING_STEP_RUNTIMES.values())}) "
                 "shift the priors; OpenCV and SSD-Caffe read it exactly")
    return {"step_h": float(step_h), "step_w": float(step_w)}


def _score(graph: Graph, logits: Value, settings: dict[str, Any], num_classes: int) -> Value:
    x = logits
    scale = float(settings.get("logit_scale", 1.0))
    if scale != 1.0:
        c = graph.constant("mbox_conf/inv_scale", np.asarray(1.0 / scale, dtype=np.float32))
        x = graph.add_node("Mul", [x, c], 1, name="mbox_conf_scaled").output
    converter = settings["score_converter"]
    if converter == "sigmoid":
        return graph.add_node("Sigmoid", [x], 1, name="mbox_conf").output
    if converter == "softmax":
        per_anchor = graph.add_node("Reshape", [x], 1, {"shape": (1, -1, num_classes)}, name="mbox_conf_reshape")
        soft = graph.add_node("Softmax", [per_anchor.output], 1, {"axis": 2}, name="mbox_conf_softmax")
        return graph.add_node("Reshape", [soft.output], 1, {"shape": (1, -1)}, name="mbox_conf").output
    raise UnsupportedModelError(f"SSD score converter '{converter}' is not supported (sigmoid, softmax)")


def _check_priors(plans: list[tuple[Head, int, list[PriorGroup]]], img_h: int, img_w: int, unit: float,
                  anchors: np.ndarray, prior_to_anchor: np.ndarray, runtimes: tuple[str, ...]) -> None:
    """Refuse the model unless the target runtimes' priors equal TF's anchors.

    SSD-Caffe truncates ``min_size``/``max_size`` to integers; OpenCV uses them as floats.
    """
    tf_xyxy = anchors[:, [1, 0, 3, 2]]
    real = prior_to_anchor >= 0
    for truncate in [r == "ssd-caffe" for r in runtimes]:
        boxes = []
        for h, _, groups in plans:
            for g in groups:
                scaled = replace(g, min_size=snap(g.min_size * unit),
                                 max_size=None if g.max_size is None else snap(g.max_size * unit))
                boxes.append(prior_boxes(h.height, h.width, img_h, img_w, scaled, truncate=truncate))
        caffe = np.concatenate(boxes)
        err = float(np.abs(caffe[real] - tf_xyxy[prior_to_anchor[real]]).max())
        if err > PRIOR_TOLERANCE:
            if truncate:
                sizes = sorted({round(g.min_size * unit, 3) for _, _, groups in plans for g in groups})
                raise UnsupportedModelError(
                    f"SSD anchors at this input size give PriorBox sizes {sizes} px that are not integers; "
                    f"SSD-Caffe truncates them (priors off by {err:.3g} > {PRIOR_TOLERANCE}). OpenCV uses "
                    "float sizes: --flavor opencv converts this model exactly for OpenCV dnn")
            raise UnsupportedModelError(f"SSD anchors cannot be expressed with PriorBox: OpenCV's priors differ "
                                        f"from the graph's anchors by {err:.3g} (> {PRIOR_TOLERANCE})")


def _lower_external(graph: Graph, post: Node, ctx: PassContext) -> None:
    """``--postprocess external``: the net ends at the raw tensors, in TF's order; the rest runs outside.

    ``mbox_loc`` [1, A·4] is TF's box encodings (``Squeeze:0``, ``[ty, tx, th, tw]`` per anchor) and
    ``mbox_conf_logits`` [1, A·(C+1)] TF's class logits (``concat_1:0``), each head's map flattened in NHWC
    order (Permute + Flatten in Caffe) and concatenated as TF does: anchor ``a`` of the outputs is TF's
    anchor ``a``, so TF's anchors serve as the priors unchanged and NMS ties break on the same indices.
    """
    encodings, logits, anchors_v = post.inputs
    if anchors_v.const is None:
        raise UnsupportedModelError("SSD anchors are not constant after folding: they cannot be written to "
                                    "priors.npy")
    anchors = np.asarray(anchors_v.const, dtype=np.float32).reshape(-1, 4)
    box_convs, cls_convs = heads_of(encodings, "box encodings"), heads_of(logits, "class logits")
    if len(box_convs) != len(cls_convs):
        raise UnsupportedModelError(f"SSD heads: {len(box_convs)} box predictors but {len(cls_convs)} class predictors")
    total = sum(int(np.prod(b.output.static_shape[1:])) // 4 for b in box_convs)
    if total != anchors.shape[0]:
        raise UnsupportedModelError(f"SSD: the heads predict {total} boxes but the graph has "
                                    f"{anchors.shape[0]} anchors")
    locs = [_flatten(graph, b.output, f"mbox_{i}_loc_flat") for i, b in enumerate(box_convs)]
    confs = [_flatten(graph, c.output, f"mbox_{i}_conf_flat") for i, c in enumerate(cls_convs)]
    loc = graph.add_node("Concat", locs, 1, {"axis": 1}, name="mbox_loc", source_names=encodings.producer.source_names
                         if encodings.producer else ()).output
    conf_logits = graph.add_node("Concat", confs, 1, {"axis": 1}, name="mbox_conf_logits",
                                 source_names=logits.producer.source_names if logits.producer else ()).output
    settings = dict(post.attrs)
    num_classes = int(logits.static_shape[-1])
    graph.outputs = [loc, conf_logits]
    graph.remove(post)
    graph.topological_sort()
    graph.metadata.setdefault("ssd", {}).update({
        "num_classes": num_classes - 1,
        "num_anchors": int(anchors.shape[0]),
        "tf_shapes": {"box_encodings": list(encodings.static_shape), "class_logits": list(logits.static_shape)},
        "tf_nms": {k: settings[k] for k in ("iou_threshold", "score_threshold", "max_per_class", "max_total")},
        "score_converter": settings["score_converter"],
        "logit_scale": float(settings.get("logit_scale", 1.0)),
        "box_coder_scale_factors": [float(s) for s in settings["scale_factors"]],
        "postprocess": "external",
        "anchors_array": anchors,
    })


@register_pass("ssd-detection-output")
class SSDDetectionOutput(Pass):
    """Replace SSDPostprocess by PriorBox/Concat/Sigmoid/DetectionOutput with exact priors (or, with
    ``postprocess: external``, end the net at the raw box and class tensors)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op == "SSDPostprocess":
                if ctx.options.get("postprocess", "caffe") == "external":
                    _lower_external(graph, node, ctx)
                else:
                    _lower(graph, node, ctx)
                changed = True
        return changed
