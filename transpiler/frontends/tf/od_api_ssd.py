"""Recognise a TF Object Detection API SSD graph and import it as IR with one ``SSDPostprocess`` node.

The exporter's graph is ``image_tensor`` → ``Preprocessor`` (cast, per-image resize in a
``map_fn`` while-loop, ``x·(2/255) − 1``) → ``FeatureExtractor`` → ``BoxPredictor_*`` → raw box
encodings ``[N,A,4]`` and class logits ``[N,A,C+1]`` → ``Postprocessor`` (decode against the anchors,
score conversion, per-class NMS in while-loops, clip). The loops cannot become Caffe layers; their
*settings* can. This module finds, by op types and graph structure within the exporter's name
scopes:

- the tensor entering the feature extractor, and the element-wise normalisation between the raw
  pixels and it (replayed in the IR on a raw-pixel input ``data``; the resize is the identity when
  the input is already at the model's size, which is the Caffe model's contract);
- the raw box-encoding and class-logit tensors (inputs of the box decoder and the score converter),
  and the anchors tensor (the decoder's other input, computed from constants only);
- the NMS settings from the NMS ops' constant inputs (IoU and score thresholds, max per class,
  max total), the box coder's scale factors and the score converter.

The region between the feature-extractor input and the three tensors is imported as ordinary IR;
``SSDPostprocess(box_encodings, class_logits, anchors)`` stands for the postprocessor, and the
``ssd-detection-output`` pass turns it into Caffe's PriorBox/DetectionOutput layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import InputSpec, canonical_tensor_name, import_graphdef, split_tensor_name
from transpiler.frontends.tf.tensors import tensor_to_numpy
from transpiler.ir.core import Graph
from transpiler.ir.dtypes import DType
from transpiler.ir.ops import infer_node

NMS_OPS = frozenset({"NonMaxSuppression", "NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4",
                     "NonMaxSuppressionV5"})
AFFINE_OPS = {"Mul": "Mul", "Sub": "Sub", "Add": "Add", "AddV2": "Add", "RealDiv": "Div"}
RESIZE_OPS = frozenset({"ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea"})
TF_OUTPUTS = ["detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0"]


@dataclass
class SSDGraph:
    """What the recogniser found; every tensor name is ``node:index``."""

    image: str
    feature_input: str
    normalization: list[tuple[str, float, bool]]  # (IR op, scalar, scalar is the first operand)
    height: int
    width: int
    box_encodings: str
    class_logits: str
    anchors: str
    iou_threshold: float
    score_threshold: float
    max_per_class: int
    max_total: int
    scale_factors: tuple[float, float, float, float]
    score_converter: str
    logit_scale: float


class _Graph:
    """Name-indexed GraphDef with the few queries the recogniser needs."""

    def __init__(self, graphdef: Any, source: str) -> None:
        self.nodes: dict[str, Any] = {n.name: n for n in graphdef.node}
        self.source = source
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for n in graphdef.node:
            for i, inp in enumerate(x for x in n.input if not x.startswith("^")):
                self.consumers.setdefault(canonical_tensor_name(inp), []).append((n, i))

    def producer(self, tensor: str) -> Any:
        return self.nodes[split_tensor_name(tensor)[0]]

    def data_inputs(self, node: Any) -> list[str]:
        return [canonical_tensor_name(i) for i in node.input if not i.startswith("^")]

    def const(self, tensor: str) -> np.ndarray | None:
        """Value of a tensor produced by a Const, through Identity nodes."""
        node = self.producer(tensor)
        while node.op == "Identity":
            node = self.producer(self.data_inputs(node)[0])
        if node.op != "Const":
            return None
        return tensor_to_numpy(node.attr["value"].tensor)

    def scalar(self, tensor: str, what: str) -> float:
        value = self.const(tensor)
        if value is None or value.size != 1:
            raise self.error(f"{what} ('{tensor}') is not a constant scalar")
        return float(value.reshape(-1)[0])

    def error(self, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.source}: SSD graph: {message}")


def _in_scope(name: str, scope: str) -> bool:
    return name.startswith(scope + "/") or name == scope


def is_od_api_ssd(graphdef: Any) -> bool:
    nodes = graphdef.node
    return any(n.op in NMS_OPS for n in nodes) and any(_in_scope(n.name, "Postprocessor") for n in nodes)


def recognise(graphdef: Any, source: str) -> SSDGraph:
    g = _Graph(graphdef, source)
    nms = [n for n in g.nodes.values() if n.op in NMS_OPS]
    if not nms:
        raise g.error("no NonMaxSuppression op: not an Object Detection API detector")
    feature_input = _feature_input(g)
    image, normalization, size = _preprocessing(g, feature_input)
    logits, converter, logit_scale = _score_converter(g)
    encodings, scales, anchors = _box_decoder(g)
    iou, score, per_class, total = _nms_settings(g, nms)
    if size is None:
        raise g.error("found no resize in the Preprocessor; give the input size with --input image_tensor:1xHxWx3")
    return SSDGraph(image, feature_input, normalization, size[0], size[1], encodings, logits, anchors, iou, score,
                    per_class, total, scales, converter, logit_scale)


def _feature_input(g: _Graph) -> str:
    outside: set[str] = set()
    for node in g.nodes.values():
        if not _in_scope(node.name, "FeatureExtractor"):
            continue
        for t in g.data_inputs(node):
            p = g.producer(t)
            if not _in_scope(p.name, "FeatureExtractor") and p.op != "Const":
                outside.add(t)
    if len(outside) != 1:
        raise g.error(f"expected one tensor entering FeatureExtractor, found {sorted(outside) or 'none'}")
    return outside.pop()


def _preprocessing(g: _Graph, feature_input: str
                   ) -> tuple[str, list[tuple[str, float, bool]], tuple[int, int] | None]:
    """Walk from the feature-extractor input back to the image Placeholder."""
    ops: list[tuple[str, float, bool]] = []
    size: tuple[int, int] | None = None
    tensor = feature_input
    for _ in range(1000):
        node = g.producer(tensor)
        ins = g.data_inputs(node)
        if node.op == "Placeholder":
            ops.reverse()
            return tensor, ops, size
        if node.op in ("Identity", "Cast", "ToFloat"):
            tensor = ins[0]
        elif node.op in AFFINE_OPS:
            consts = [g.const(t) for t in ins]
            k = 0 if consts[0] is not None else 1
            c = consts[k]
            if c is None or c.size != 1 or consts[1 - k] is not None:
                raise g.error(f"preprocessing node '{node.name}' ({node.op}) is not a per-pixel scalar operation")
            ops.append((AFFINE_OPS[node.op], float(c.reshape(-1)[0]), k == 0))
            tensor = ins[1 - k]
        elif node.op == "TensorArrayGatherV3":  # end of a map_fn: continue at what the map unstacks
            scope = node.name.split("/TensorArrayStack")[0]
            scatter = [n for n in g.nodes.values() if n.op == "TensorArrayScatterV3" and _in_scope(n.name, scope)]
            resizes = [n for n in g.nodes.values() if n.op in RESIZE_OPS and _in_scope(n.name, scope)]
            if len(scatter) != 1:
                raise g.error(f"cannot follow the preprocessing map '{scope}'")
            for r in resizes:
                hw = g.const(g.data_inputs(r)[1])
                if hw is not None:
                    size = (int(hw[0]), int(hw[1]))
            tensor = g.data_inputs(scatter[0])[2]
        else:
            raise g.error(f"preprocessing node '{node.name}' ({node.op}) is not supported; cut the graph with "
                          "--input at the feature extractor and normalise the input yourself")
    raise g.error("preprocessing chain too long")


def _score_converter(g: _Graph) -> tuple[str, str, float]:
    found = [n for n in g.nodes.values() if n.op in ("Sigmoid", "Softmax") and _in_scope(n.name, "Postprocessor")]
    if len(found) != 1:
        raise g.error(f"expected one score converter (Sigmoid/Softmax) in Postprocessor, found {len(found)}")
    node, scale = found[0], 1.0
    tensor = g.data_inputs(node)[0]
    while _in_scope(g.producer(tensor).name, "Postprocessor"):
        p = g.producer(tensor)
        ins = g.data_inputs(p)
        if p.op == "Identity":
            tensor = ins[0]
        elif p.op in ("RealDiv", "Mul") and g.const(ins[1]) is not None:
            c = g.scalar(ins[1], "logit scale")
            scale *= c if p.op == "RealDiv" else 1.0 / c
            tensor = ins[0]
        else:
            raise g.error(f"unexpected op '{p.name}' ({p.op}) between the class logits and the score converter")
    return tensor, found[0].op.lower(), scale


def _box_decoder(g: _Graph) -> tuple[str, tuple[float, float, float, float], str]:
    """Encodings tensor, the coder's scale factors (ty, tx, th, tw) and the anchors tensor."""
    for unpack in g.nodes.values():
        if unpack.op != "Unpack" or not _in_scope(unpack.name, "Postprocessor"):
            continue
        scales: dict[int, float] = {}
        for k in range(4):
            for user, idx in g.consumers.get(f"{unpack.name}:{k}", []):
                ins = g.data_inputs(user)
                if user.op == "RealDiv" and idx == 0 and g.const(ins[1]) is not None:
                    scales[k] = g.scalar(ins[1], "box coder scale")
        if len(scales) != 4:
            continue
        tensor = g.data_inputs(unpack)[0]
        while _in_scope(g.producer(tensor).name, "Postprocessor"):
            tensor = g.data_inputs(g.producer(tensor))[0]
        return tensor, (scales[0], scales[1], scales[2], scales[3]), _anchors(g)
    raise g.error("found no FasterRCNN box decoder (Unpack of encodings divided by scale factors)")


def _anchors(g: _Graph) -> str:
    """The [A,4] tensor the Postprocessor reads that comes from the anchor generator (constants only)."""
    found: set[str] = set()
    for node in g.nodes.values():
        if not _in_scope(node.name, "Postprocessor"):
            continue
        for t in g.data_inputs(node):
            p = g.producer(t)
            if _in_scope(p.name, "Postprocessor") or p.op == "Const":
                continue
            if _depends_only_on_constants(g, t):
                found.add(t)
    if len(found) != 1:
        raise g.error(f"expected one constant anchors tensor read by the Postprocessor, found {sorted(found)}")
    return found.pop()


def _depends_only_on_constants(g: _Graph, tensor: str) -> bool:
    seen: set[str] = set()
    stack = [split_tensor_name(tensor)[0]]
    has_op = False
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = g.nodes[name]
        if node.op == "Placeholder" or _in_scope(name, "Preprocessor") or _in_scope(name, "FeatureExtractor"):
            return False
        has_op |= node.op not in ("Const", "Identity")
        stack.extend(split_tensor_name(t)[0] for t in g.data_inputs(node))
    return has_op or len(seen) > 1


def _nms_settings(g: _Graph, nms: list[Any]) -> tuple[float, float, int, int]:
    ious, scores, per_class = set(), set(), set()
    for n in nms:
        ins = g.data_inputs(n)
        if len(ins) < 5:
            raise g.error(f"'{n.name}' ({n.op}) has no score threshold input; only NonMaxSuppressionV3+ is supported")
        ious.add(g.scalar(ins[3], "IoU threshold"))
        scores.add(g.scalar(ins[4], "score threshold"))
        if n.op == "NonMaxSuppressionV5" and g.scalar(ins[5], "soft-NMS sigma") != 0.0:
            raise g.error(f"'{n.name}' uses soft-NMS (sigma != 0), which Caffe's DetectionOutput cannot do")
        limit = g.const(ins[2])
        if limit is None:
            p = g.producer(ins[2])
            values = [g.const(t) for t in g.data_inputs(p)] if p.op == "Minimum" else []
            limit = next((v for v in values if v is not None), None)
        if limit is None:
            raise g.error(f"cannot read the max detections per class of '{n.name}'")
        per_class.add(int(np.asarray(limit).reshape(-1)[0]))
    if len(ious) != 1 or len(scores) != 1 or len(per_class) != 1:
        raise g.error(f"NMS settings differ between classes (IoU {ious}, score {scores}, max {per_class})")
    scope = nms[0].name.split("/MultiClassNonMaxSuppression/")[0] + "/MultiClassNonMaxSuppression"
    nms_inputs = {canonical_tensor_name(i) for n in nms for i in n.input}
    totals: set[int] = set()
    for node in g.nodes.values():
        if node.op == "Minimum" and _in_scope(node.name, scope) and f"{node.name}:0" not in nms_inputs:
            values = [g.const(t) for t in g.data_inputs(node)]
            totals.update(int(np.asarray(v).reshape(-1)[0]) for v in values if v is not None)
    if len(totals) != 1:
        raise g.error(f"cannot find the max total detections in '{scope}' (candidates {sorted(totals)})")
    return ious.pop(), scores.pop(), per_class.pop(), totals.pop()


def import_od_api_ssd(graphdef: Any, source: str, name: str, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Import an OD API SSD detector as IR: raw pixels ``data`` → ... → ``SSDPostprocess``."""
    spec = recognise(graphdef, source)
    height, width = (input_shape[1], input_shape[2]) if input_shape else (spec.height, spec.width)
    shape = (1, height, width, 3)
    graph = import_graphdef(graphdef, inputs=[InputSpec(spec.feature_input, shape)],
                            outputs=[spec.box_encodings, spec.class_logits, spec.anchors], source=source, name=name)
    normalized_in = graph.inputs[0]
    data = graph.add_input("data", DType.FLOAT32, shape, layout="NHWC", tf_name=spec.image)
    graph.inputs = [data]
    first = graph.nodes[0] if graph.nodes else None
    x = data
    for i, (op, value, const_first) in enumerate(spec.normalization):
        c = graph.constant(f"Preprocessor/normalize_{i}/c", np.asarray(value, dtype=np.float32))
        node = graph.add_node(op, [c, x] if const_first else [x, c], 1, name=f"Preprocessor/normalize_{i}",
                              source_names=["Preprocessor"], before=first)
        infer_node(node)
        x = node.output
    x.tf_name = spec.feature_input
    graph.replace_all_uses_with(normalized_in, x)
    encodings, logits, anchors = graph.outputs
    post = graph.add_node("SSDPostprocess", [encodings, logits, anchors], 1, _postprocess_attrs(spec),
                          name="detection_out", source_names=["Postprocessor"])
    infer_node(post)
    graph.outputs = [post.output]
    graph.metadata["tf_inputs"] = [spec.image]
    graph.metadata["tf_input_dtypes"] = {spec.image: "u8"}
    graph.metadata["tf_outputs"] = list(TF_OUTPUTS)
    graph.metadata["ssd"] = {
        "feature_input": spec.feature_input,
        "normalization": [{"op": op, "value": v, "scalar_first": f} for op, v, f in spec.normalization],
        "raw_box_encodings": spec.box_encodings,
        "raw_class_logits": spec.class_logits,
        "anchors": spec.anchors,
        "input_size": [height, width],
    }
    return graph


def _postprocess_attrs(spec: SSDGraph) -> dict[str, Any]:
    return {
        "iou_threshold": spec.iou_threshold,
        "score_threshold": spec.score_threshold,
        "max_per_class": spec.max_per_class,
        "max_total": spec.max_total,
        "scale_factors": spec.scale_factors,
        "score_converter": spec.score_converter,
        "logit_scale": spec.logit_scale,
    }
