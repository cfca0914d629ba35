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

TF2 exports (SavedModels, read by ``saved_model.py``) are recognised by structure alone, no name used
(see the section below): the map loop over the image (its body read from the function library), the
score converter feeding the NMS scores, the box decoder and the anchors its arithmetic reads. The box
decoder (and the max-total search) serve TF1 exports too. The TFLite-friendly export is lowered from its
``TFLite_Detection_PostProcess`` call's attributes.

Exports made with ``use_static_shapes: true`` (the MobileNetV3 SSD configs) have no NMS op: each class calls
TF's ``non_max_suppression_padded`` (v2), a library function of plain ops and functional while-loops
(``PartitionedCall`` → ``__inference_non_max_suppression_padded_v2_*``). Such a call is recognised by its
function's structure (see ``_is_padded_nms``), and its settings are read from the call's constant inputs in the
argument order TF's Python API fixes (boxes, scores, max_output_size, iou_threshold, score_threshold,
sorted_input, canonicalized_coordinates, tile_size) — the positions NonMaxSuppressionV3+ use for the first
five, checked against the body: ``max_output_size`` is the TopKV2's k, ``score_threshold`` the threshold of
``scores > t`` on the reshaped scores, ``iou_threshold`` a while-loop variable that a loop body compares with
an IoU (a quotient). The tiled algorithm selects what greedy NMS selects, with two differences of measure zero
or of no consequence after TF's clip: it suppresses at IoU ≥ t (V5 and DetectionOutput: IoU > t; its IoU
divides by union + 1e-8), and a selected box with no coordinate > 0 (wholly above-left of the picture, which
TF's clip drops afterwards) is not counted against the per-class limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import (
    InputSpec,
    NodeTable,
    canonical_tensor_name,
    data_inputs_of,
    import_graphdef,
    split_tensor_name,
)
from transpiler.frontends.tf.tensors import numpy_to_tensor, tensor_to_numpy
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
    padded_nms: bool = False  # TF's non_max_suppression_padded (use_static_shapes): suppresses at IoU ≥ t


# What a conversion notes when the graph's NMS is non_max_suppression_padded (see the module docstring).
PADDED_NMS_NOTE = ("the graph's NMS is TF's non_max_suppression_padded (use_static_shapes: true), which suppresses "
                   "a box at IoU ≥ iou_threshold; DetectionOutput and ssd_postprocess suppress at IoU > iou_threshold: "
                   "the same detections unless an IoU equals the threshold exactly")


class _Graph:
    """Name-indexed GraphDef with the few queries the recogniser needs."""

    def __init__(self, graphdef: Any, source: str, table: NodeTable | None = None) -> None:
        if table is None:
            nodes = {n.name: n for n in graphdef.node}
            table = NodeTable(nodes, {name: data_inputs_of(n) for name, n in nodes.items()})
        self.table = table
        self.nodes: dict[str, Any] = table.nodes
        self.source = source
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for name, reads in table.inputs.items():
            n = table.nodes[name]
            for i, tensor in enumerate(reads):
                self.consumers.setdefault(tensor, []).append((n, i))

    def producer(self, tensor: str) -> Any:
        return self.nodes[split_tensor_name(tensor)[0]]

    def data_inputs(self, node: Any) -> list[str]:
        name = node.name
        if self.nodes.get(name) is node:
            return list(self.table.inputs[name])
        return data_inputs_of(node)  # a node not of this graph (a function body's)

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
    return ((any(n.op in NMS_OPS for n in nodes) or bool(_padded_nms_calls(nodes, graphdef.library)))
            and any(_in_scope(n.name, "Postprocessor") for n in nodes))


def recognise(graphdef: Any, source: str) -> SSDGraph:
    g = _Graph(graphdef, source)
    nms = [n for n in g.nodes.values() if n.op in NMS_OPS] + _padded_nms_calls(graphdef.node, graphdef.library)
    if not nms:
        raise g.error("no NonMaxSuppression op: not an Object Detection API detector")
    for call in (n for n in nms if n.op in CALL_OPS):
        sorted_input = g.const(g.data_inputs(call)[5])
        if sorted_input is None or bool(sorted_input.reshape(-1)[0]):
            raise g.error(f"'{call.name}' calls non_max_suppression_padded with sorted_input not constant False "
                          "(it would trust the boxes' order): not supported")
    feature_input = _feature_input(g)
    image, normalization, size = _preprocessing(g, feature_input)
    logits, converter, logit_scale = _score_converter(g)
    encodings, scales, anchors = _decoder(g)
    iou, score, per_class, total = _nms_settings(g, nms)
    if size is None:
        raise g.error("found no resize in the Preprocessor; give the input size with --input image_tensor:1xHxWx3")
    return SSDGraph(image, feature_input, normalization, size[0], size[1], encodings, logits, anchors, iou, score,
                    per_class, total, scales, converter, logit_scale, any(n.op in CALL_OPS for n in nms))


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
            step, operand = _affine_step(g, node, [g.const(t) for t in ins])
            ops.append(step)
            tensor = ins[operand]
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


def _affine_step(g: _Graph, node: Any, consts: list[np.ndarray | None]) -> tuple[tuple[str, float, bool], int]:
    """A per-pixel scalar operation: (IR op, scalar, scalar first) and which input is the image."""
    k = 0 if consts[0] is not None else 1
    c = consts[k]
    if c is None or c.size != 1 or consts[1 - k] is not None:
        raise g.error(f"preprocessing node '{node.name}' ({node.op}) is not a per-pixel scalar operation")
    return (AFFINE_OPS[node.op], float(c.reshape(-1)[0]), k == 0), 1 - k


def _score_converter(g: _Graph) -> tuple[str, str, float]:
    found = [n for n in g.nodes.values() if n.op in ("Sigmoid", "Softmax") and _in_scope(n.name, "Postprocessor")]
    if len(found) != 1:
        raise g.error(f"expected one score converter (Sigmoid/Softmax) in Postprocessor, found {len(found)}")
    return _logits_before(g, found[0])


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
    # The total: min(max_total, number of boxes kept) is the limit of the Range that gathers the sorted
    # boxes (a Minimum with a constant, read by a Range, that is no NMS input).
    nms_inputs = {canonical_tensor_name(i) for n in nms for i in n.input}
    totals: set[int] = set()
    for node in g.nodes.values():
        if node.op != "Minimum" or f"{node.name}:0" in nms_inputs:
            continue
        if not any(user.op == "Range" and idx == 1 for user, idx in g.consumers.get(f"{node.name}:0", [])):
            continue
        values = [g.const(t) for t in g.data_inputs(node)]
        totals.update(int(np.asarray(v).reshape(-1)[0]) for v in values if v is not None)
    if len(totals) != 1:
        raise g.error(f"cannot find the max total detections (candidates {sorted(totals)})")
    return ious.pop(), scores.pop(), per_class.pop(), totals.pop()


CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
_DT_INT32, _DT_BOOL = 3, 10
# non_max_suppression_padded's arguments: boxes, scores, max_output_size, iou_threshold, score_threshold,
# sorted_input, canonicalized_coordinates, tile_size
_PADDED_NMS_ARGS = (1, 1, _DT_INT32, 1, 1, _DT_BOOL, _DT_BOOL, _DT_INT32)  # 1: DT_FLOAT
_IOU_TESTS = frozenset({"Greater", "GreaterEqual", "Less", "LessEqual"})


def _padded_nms_calls(nodes: Any, library: Any) -> list[Any]:
    """The graph's calls of TF's ``non_max_suppression_padded`` (v2), recognised by their function's body."""
    functions = {f.signature.name: f for f in library.function}
    verdicts: dict[str, bool] = {}
    calls = []
    for node in nodes:
        name = node.attr["f"].func.name if node.op in CALL_OPS and "f" in node.attr else ""
        if name in functions:
            if name not in verdicts:
                verdicts[name] = _is_padded_nms(functions[name], functions)
            if verdicts[name]:
                calls.append(node)
    return calls


def _is_padded_nms(fdef: Any, functions: dict[str, Any]) -> bool:
    """``non_max_suppression_padded``'s signature and body: ``max_output_size`` is the k of the TopKV2 that
    picks the selected boxes, ``score_threshold`` the threshold of ``Greater(reshaped scores, t)``, and
    ``iou_threshold`` goes into a while-loop whose body (or a nested loop's) compares an IoU quotient with it."""
    if tuple(a.type for a in fdef.signature.input_arg) != _PADDED_NMS_ARGS:
        return False
    body = _Function(fdef)
    _, scores, max_size, iou, score = body.args[:5]
    topk = any(n.op == "TopKV2" and n.input[1] == max_size for n in body.nodes.values())
    filtered = any(n.op == "Greater" and n.input[1] == score and _arg_behind(body, n.input[0]) == scores
                   for n in body.nodes.values())
    return topk and filtered and _compares_iou(body, iou, functions, 3)


def _arg_behind(body: _Function, ref: str) -> str | None:
    """The argument a value is a reshape (or copy) of, if it is one."""
    for _ in range(100):
        if ref in body.args:
            return ref
        node = body.producer(ref)
        if node is None or node.op not in ("Reshape", "Identity"):
            return None
        ref = node.input[0]
    return None


def _compares_iou(body: _Function, threshold: str, functions: dict[str, Any], depth: int) -> bool:
    """Whether ``threshold`` (an argument of ``body``) is compared with a quotient (the IoU) in ``body`` or in
    the body of a while-loop it is passed to."""
    for node in body.nodes.values():
        ins = [i for i in node.input if not i.startswith("^")]
        if node.op in _IOU_TESTS and len(ins) == 2 and ins[1] == threshold:
            quotient = body.producer(ins[0])
            if quotient is not None and quotient.op == "RealDiv":
                return True
        if node.op in LOOP_OPS and depth > 0 and threshold in ins:
            fdef = functions.get(node.attr["body"].func.name)
            loop = _Function(fdef) if fdef is not None else None
            if loop is not None and _compares_iou(loop, loop.args[ins.index(threshold)], functions, depth - 1):
                return True
    return False


def import_od_api_ssd(graphdef: Any, source: str, name: str, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Import an OD API SSD detector as IR: raw pixels ``data`` → ... → ``SSDPostprocess``."""
    return _import_ssd(graphdef, recognise(graphdef, source), source, name, input_shape)


def _import_ssd(graphdef: Any, spec: SSDGraph, source: str, name: str, input_shape: tuple[int, ...] | None,
                tf_outputs: list[str] = TF_OUTPUTS, table: NodeTable | None = None) -> Graph:
    height, width = (input_shape[1], input_shape[2]) if input_shape else (spec.height, spec.width)
    shape = (1, height, width, 3)
    graph = import_graphdef(graphdef, inputs=[InputSpec(spec.feature_input, shape)],
                            outputs=[spec.box_encodings, spec.class_logits, spec.anchors], source=source, name=name,
                            table=table)
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
    graph.metadata["tf_outputs"] = list(tf_outputs)
    graph.metadata["ssd"] = {
        "feature_input": spec.feature_input,
        "normalization": [{"op": op, "value": v, "scalar_first": f} for op, v, f in spec.normalization],
        "raw_box_encodings": spec.box_encodings,
        "raw_class_logits": spec.class_logits,
        "anchors": spec.anchors,
        "input_size": [height, width],
        "padded_nms": spec.padded_nms,
    }
    if spec.padded_nms:
        graph.metadata.setdefault("notes", []).append(PADDED_NMS_NOTE)
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


# --- TF2 exports (SavedModel), recognised by structure alone ------------------------------------------------
#
# exporter_lib_v2's serving function, inlined (saved_model.py): the image Placeholder → a ``map_fn``
# (``StatelessWhile`` over TensorLists; its body casts, normalises and resizes each image) → the network
# (Keras layers: names differ from TF1 and between exports, so none is used) → the raw box encodings and class
# logits → the postprocessor (decode against constant-folding anchors, score converter, unrolled per-class
# ``NonMaxSuppressionV5``, clip, sort). The TFLite-friendly export (export_tflite_graph_lib_tf2) has no
# pre- or postprocessing ops: the normalised image in, and a call of a composite function with
# ``_implements: TFLite_Detection_PostProcess`` whose attributes hold the postprocessor's settings.

LOOP_OPS = frozenset({"While", "StatelessWhile"})
# Ops that only move or reshape a single image's values (batch of one): the map body's plumbing.
_IMAGE_PLUMBING = frozenset({"Identity", "Cast", "StridedSlice", "Pack", "Unpack", "ExpandDims", "Squeeze",
                             "Reshape", "StopGradient", "Snapshot"})
_RESHAPES = frozenset({"Transpose", "Reshape", "Identity", "Tile", "ExpandDims", "Snapshot"})
_ANCHOR_ARITHMETIC = frozenset({"Sub", "RealDiv", "Mul", "AddV2", "Add", "Identity", "Exp"})
_DT_FLOAT = 1
TFLITE_POSTPROCESS = "TFLite_Detection_PostProcess"


class _Function:
    """A FunctionDef's body, with inputs named ``node:output_arg:index`` or by argument name."""

    def __init__(self, fdef: Any) -> None:
        self.nodes = {n.name: n for n in fdef.node_def}
        self.args = [a.name for a in fdef.signature.input_arg]

    def producer(self, ref: str) -> Any | None:
        return self.nodes.get(ref.split(":", 1)[0]) if ref not in self.args else None

    def const(self, ref: str) -> np.ndarray | None:
        node = self.producer(ref)
        return tensor_to_numpy(node.attr["value"].tensor) if node is not None and node.op == "Const" else None


def is_tf2_od_api_ssd(graphdef: Any, implements: dict[str, tuple[str, Any, list[str]]]) -> bool:
    """A SavedModel signature whose graph runs per-class NMS or calls TFLite's detection postprocess."""
    return (any(n.op in NMS_OPS for n in graphdef.node)
            or any(attr.func.name == TFLITE_POSTPROCESS for _, attr, _ in implements.values()))


def recognise_tf2(graphdef: Any, library: Mapping[str, Any], image: str, source: str,
                  table: NodeTable | None = None) -> SSDGraph:
    """The exporter_lib_v2 detector's settings and tensors (see above), by structure (``table``: the graph's,
    where the loader has it)."""
    g = _Graph(graphdef, source, table)
    nms = [n for n in g.nodes.values() if n.op in NMS_OPS]
    if not nms:
        raise g.error("no NonMaxSuppression op: not an Object Detection API detector")
    feature_input, normalization, size = _map_preprocessing(g, library, image)
    logits, converter, logit_scale = _converter_of(g, nms)
    encodings, scales, anchors = _decoder(g)
    iou, score, per_class, total = _nms_settings(g, nms)
    return SSDGraph(image, feature_input, normalization, size[0], size[1], encodings, logits, anchors, iou, score,
                    per_class, total, scales, converter, logit_scale)


def _map_preprocessing(g: _Graph, library: Mapping[str, Any], image: str
                       ) -> tuple[str, list[tuple[str, float, bool]], tuple[int, int]]:
    """The ``map_fn`` over the image: its float output (the network's input), and from its body the
    per-pixel scalar operations (in order) and the resize's output size."""
    loops = []
    for node in g.nodes.values():
        if node.op not in LOOP_OPS:
            continue
        for k, t in enumerate(g.data_inputs(node)):
            p = _skip(g, t, ("Identity",))
            if p.op == "TensorListFromTensor" and _skip(g, g.data_inputs(p)[0], ("Identity",)).name == \
                    split_tensor_name(image)[0]:
                loops.append((node, k))
    if len(loops) != 1:
        raise g.error(f"expected one map loop over the image '{image}', found {len(loops)}")
    loop, unstacked = loops[0]
    stacks = []
    for node in g.nodes.values():
        if node.op == "TensorListStack" and node.attr["element_dtype"].type == _DT_FLOAT:
            source = _skip(g, g.data_inputs(node)[0], ("Identity", "StopGradient"))
            if source is loop:
                handle = g.data_inputs(node)[0]
                while g.producer(handle) is not loop:
                    handle = g.data_inputs(g.producer(handle))[0]
                stacks.append((node, split_tensor_name(handle)[1]))
    if len(stacks) != 1:
        raise g.error(f"expected one float image list out of the map loop '{loop.name}', found {len(stacks)}")
    stack, k = stacks[0]
    body_name = loop.attr["body"].func.name
    if body_name not in library:
        raise g.error(f"the body '{body_name}' of the map loop '{loop.name}' is not in the function library")
    body = _Function(library[body_name])
    writes = [n for n in body.nodes.values() if n.op == "TensorListSetItem" and n.input[0] == body.args[k]]
    if len(writes) != 1:
        raise g.error(f"cannot find where the map loop '{loop.name}' writes its images")
    ops: list[tuple[str, float, bool]] = []
    size: tuple[int, int] | None = None
    ref = writes[0].input[2]
    for _ in range(1000):
        node = body.producer(ref)
        if node is None:
            raise g.error(f"the map loop '{loop.name}' writes an argument, not a function of the image")
        ins = [i for i in node.input if not i.startswith("^")]
        if node.op == "TensorListGetItem":
            if ins[0] != body.args[unstacked]:
                raise g.error(f"the map loop '{loop.name}' reads another list than the image")
            if size is None:
                raise g.error(f"found no resize in the map loop '{loop.name}'; give the input size with --input")
            ops.reverse()
            return f"{stack.name}:0", ops, size
        if node.op in _IMAGE_PLUMBING:
            _check_plumbing(g, body, node, ins)
            ref = ins[0]
        elif node.op in RESIZE_OPS:
            hw = body.const(ins[1])
            if hw is None or hw.size != 2:
                raise g.error(f"the resize '{node.name}' in the map loop has no constant size")
            size = (int(hw[0]), int(hw[1]))
            ref = ins[0]
        elif node.op in AFFINE_OPS:
            step, operand = _affine_step(g, node, [body.const(t) for t in ins])
            ops.append(step)
            ref = ins[operand]
        else:
            raise g.error(f"preprocessing node '{node.name}' ({node.op}) in the map loop is not supported")
    raise g.error("preprocessing chain too long")


def _check_plumbing(g: _Graph, body: _Function, node: Any, ins: list[str]) -> None:
    """Plumbing must keep every value of the one image: a slice only adds axes, drops the batch axis of one
    image or takes everything; Pack/Unpack only of one."""
    if node.op == "StridedSlice":
        begin, end, strides = (body.const(t) for t in ins[1:4])
        if begin is None or end is None or strides is None:
            raise g.error(f"the slice '{node.name}' in the map loop is not constant")
        masks = {k: int(node.attr[k].i) for k in ("begin_mask", "end_mask", "new_axis_mask", "shrink_axis_mask",
                                                   "ellipsis_mask")}
        for i in range(begin.size):
            bit = 1 << i
            if masks["new_axis_mask"] & bit or masks["ellipsis_mask"] & bit:
                continue
            whole = ((masks["begin_mask"] & bit or begin[i] == 0) and masks["end_mask"] & bit and strides[i] == 1)
            first = masks["shrink_axis_mask"] & bit and begin[i] == 0
            if not (whole or first):
                raise g.error(f"the slice '{node.name}' in the map loop crops the image, which is not supported")
    elif node.op in ("Pack", "Unpack") and (len(ins) != 1 or int(node.attr["N" if node.op == "Pack" else "num"].i)
                                            != 1):
        raise g.error(f"'{node.name}' ({node.op}) in the map loop combines several tensors")


def _skip(g: _Graph, tensor: str, ops: tuple[str, ...]) -> Any:
    node = g.producer(tensor)
    while node.op in ops:
        node = g.producer(g.data_inputs(node)[0])
    return node


def _converter_of(g: _Graph, nms: list[Any]) -> tuple[str, str, float]:
    """The score converter (Sigmoid/Softmax) feeding the NMS ops' scores, and the logits before it."""
    found: set[str] = set()
    for n in nms:
        stack, seen = [g.data_inputs(n)[1]], set()
        while stack:
            node = g.producer(stack.pop())
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op in ("Sigmoid", "Softmax"):
                found.add(node.name)
            elif node.op in _IMAGE_PLUMBING | _RESHAPES | {"Slice", "GatherV2", "ConcatV2"}:
                stack.extend(t for t in g.data_inputs(node) if g.const(t) is None)
    if len(found) != 1:
        raise g.error(f"expected one score converter (Sigmoid/Softmax) before the NMS scores, found {sorted(found)}")
    node = g.nodes[found.pop()]
    return _logits_before(g, node)


def _logits_before(g: _Graph, converter: Any) -> tuple[str, str, float]:
    scale, tensor = 1.0, g.data_inputs(converter)[0]
    while True:
        p = g.producer(tensor)
        ins = g.data_inputs(p)
        if p.op == "Identity":
            tensor = ins[0]
        elif p.op in ("RealDiv", "Mul") and g.const(ins[1]) is not None:
            c = g.scalar(ins[1], "logit scale")
            scale *= c if p.op == "RealDiv" else 1.0 / c
            tensor = ins[0]
        else:
            return tensor, converter.op.lower(), scale


def _decoder(g: _Graph) -> tuple[str, tuple[float, float, float, float], str]:
    """The FasterRCNN box decoder: an Unpack of the encodings whose four parts are divided by the coder's
    scale factors; the anchors are the other Unpack its arithmetic reads (their centres and sizes)."""
    found: list[tuple[Any, tuple[float, float, float, float], Any]] = []
    for unpack in g.nodes.values():
        if unpack.op != "Unpack":
            continue
        scales: dict[int, float] = {}
        divisions: dict[int, Any] = {}
        for k in range(4):
            for user, idx in g.consumers.get(f"{unpack.name}:{k}", []):
                ins = g.data_inputs(user)
                if user.op == "RealDiv" and idx == 0 and g.const(ins[1]) is not None:
                    scales[k] = g.scalar(ins[1], "box coder scale")
                    divisions[k] = user
        if len(scales) == 4:
            found.append((unpack, (scales[0], scales[1], scales[2], scales[3]), divisions[0]))
    if len(found) != 1:
        raise g.error(f"expected one FasterRCNN box decoder (an Unpack of encodings divided by scale factors), "
                      f"found {len(found)}")
    unpack, factors, ty = found[0]
    encodings = _through_reshapes(g, g.data_inputs(unpack)[0], ("Transpose", "Reshape", "Identity"))
    anchor_unpacks: set[str] = set()
    for user, _ in g.consumers.get(f"{ty.name}:0", []):  # ty·h_a: h_a comes from the anchors' Unpack
        stack = [t for t in g.data_inputs(user) if t != f"{ty.name}:0"]
        seen: set[str] = set()
        while stack:
            node = g.producer(stack.pop())
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op == "Unpack" and node is not unpack and int(node.attr["num"].i) == 4:
                anchor_unpacks.add(node.name)
            elif node.op in _ANCHOR_ARITHMETIC:
                stack.extend(t for t in g.data_inputs(node) if g.const(t) is None)
    if len(anchor_unpacks) != 1:
        raise g.error(f"cannot find the anchors the box decoder reads (found {sorted(anchor_unpacks)})")
    anchors = _through_reshapes(g, g.data_inputs(g.nodes[anchor_unpacks.pop()])[0], tuple(_RESHAPES))
    if not _constant_only(g, anchors):
        raise g.error(f"the anchors '{anchors}' depend on the input, not on constants only")
    return encodings, factors, anchors


def _through_reshapes(g: _Graph, tensor: str, ops: tuple[str, ...]) -> str:
    while g.producer(tensor).op in ops:
        tensor = g.data_inputs(g.producer(tensor))[0]
    return tensor


def _constant_only(g: _Graph, tensor: str) -> bool:
    seen: set[str] = set()
    stack = [split_tensor_name(tensor)[0]]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = g.nodes[name]
        if node.op == "Placeholder" or node.op in LOOP_OPS or node.op.startswith("TensorList"):
            return False
        stack.extend(split_tensor_name(t)[0] for t in g.data_inputs(node))
    return True


def import_tf2_od_api_ssd(model: Any, name: str, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Import a TF2 OD API SSD SavedModel signature (``saved_model.SavedModelGraph``) as IR, like a TF1
    export: raw pixels ``data`` at the model's size → ... → ``SSDPostprocess``; or, for the TFLite-friendly
    export, its normalised input → ... → ``SSDPostprocess`` lowered from TFLite_Detection_PostProcess."""
    if any(attr.func.name == TFLITE_POSTPROCESS for _, attr, _ in model.implements.values()):
        return _import_tflite_ssd(model, name, input_shape)
    if len(model.inputs) != 1:
        raise UnsupportedModelError(f"{model.source}: SSD graph: expected one image input, the signature has "
                                    f"{sorted(model.inputs)}")
    (key, image), = model.inputs.items()
    try:
        spec = recognise_tf2(model.graph, model.library, image, model.source, model.table)
    except UnsupportedModelError as exc:  # NMS ops, but not the OD API's structure
        raise UnsupportedModelError(f"{exc} (the signature runs NMS, so it was read as an Object Detection API "
                                    "SSD; --output names the tensors to convert otherwise)") from None
    outputs = [model.declared_outputs[k] for k in ("detection_boxes", "detection_scores", "detection_classes",
                                                   "num_detections") if k in model.declared_outputs]
    if len(outputs) != 4:
        raise UnsupportedModelError(f"{model.source}: SSD graph: the signature lacks the detection outputs "
                                    f"(it has {sorted(model.declared_outputs)})")
    graph = _import_ssd(model.graph, spec, model.source, name, input_shape, outputs, model.table)
    graph.metadata["tf_inputs"] = [model.declared_inputs[key]]
    graph.metadata["tf_input_dtypes"] = {model.declared_inputs[key]: "u8"}
    graph.metadata["signature"] = {"name": model.signature, "inputs": dict(model.declared_inputs),
                                   "outputs": dict(model.declared_outputs)}
    return graph


def _import_tflite_ssd(model: Any, name: str, input_shape: tuple[int, ...] | None) -> Graph:
    """export_tflite_graph_lib_tf2's SavedModel: the normalised image → the network → ``raw_outputs/
    box_encodings`` [1,A,4], ``raw_outputs/class_predictions`` (score converter applied, background kept) and
    constant ``anchors`` [A,4] in centre-size form (yc, xc, h, w) → a call of a composite function
    ``_implements: TFLite_Detection_PostProcess`` whose body only returns constants: its attributes are the
    postprocessor's settings (TFLite's detection_postprocess op). The input stays the normalised image (the
    export has no preprocessing ops); the logits are read before the converter; the anchors are given to
    the lowering in corner form (ymin = yc − h/2, ...)."""
    source = model.source
    calls = [(call, attr, args) for call, (_, attr, args) in model.implements.items()
             if attr.func.name == TFLITE_POSTPROCESS]
    if len(calls) != 1 or len(calls[0][2]) != 3:
        raise UnsupportedModelError(f"{source}: SSD graph: expected one {TFLITE_POSTPROCESS} call of three inputs")
    call, attr, (encodings, predictions, anchors_in) = calls[0]
    settings = {k: v for k, v in attr.func.attr.items()}

    def setting(key: str, default: float | None = None) -> float:
        if key in settings:
            v = settings[key]
            return float(getattr(v, v.WhichOneof("value")))
        if default is None:
            raise UnsupportedModelError(f"{source}: {TFLITE_POSTPROCESS} ('{call}') has no attribute '{key}'")
        return default

    g = _Graph(model.graph, source)
    converter = _skip(g, predictions, ("Identity", "Snapshot"))
    if converter.op not in ("Sigmoid", "Softmax"):
        raise g.error(f"the class predictions '{predictions}' do not come from a Sigmoid or Softmax")
    logits, score_converter, logit_scale = _logits_before(g, converter)
    centre = g.const(anchors_in)
    if centre is None or centre.ndim != 2 or centre.shape[1] != 4:
        raise g.error(f"the anchors '{anchors_in}' are not a constant [A, 4] tensor")
    yc, xc, h, w = (centre[:, i].astype(np.float32) for i in range(4))
    corners = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1).astype(np.float32)
    anchors_node = model.graph.node.add()
    model.table = None  # the graph has changed
    anchors_node.name = f"{split_tensor_name(anchors_in)[0]}/corners"
    anchors_node.op = "Const"
    anchors_node.attr["dtype"].type = _DT_FLOAT
    anchors_node.attr["value"].tensor.CopyFrom(numpy_to_tensor(corners))
    if len(model.inputs) != 1:
        raise g.error(f"expected one image input, the signature has {sorted(model.inputs)}")
    (key, image), = model.inputs.items()
    shape = _static_shape(g, image)
    notes = []
    score = setting("nms_score_threshold")
    if score == 0.0:
        notes.append(f"{TFLITE_POSTPROCESS}'s nms_score_threshold reads 0 (the exporter writes it with '%f', so "
                     "a config's 1e-8 becomes 0): DetectionOutput uses 0 as TFLite does; --pipeline-config "
                     "applies the config's value")
    if "use_regular_nms" not in settings or not settings["use_regular_nms"].b:  # TFLite's default: fast NMS
        notes.append(f"{TFLITE_POSTPROCESS} uses TFLite's fast NMS (use_regular_nms false: the best class per box, "
                     "NMS across classes); Caffe's DetectionOutput does per-class NMS, so detections can differ "
                     "(export with use_regular_nms for an exact model)")
    spec = SSDGraph(image, image, [], shape[1], shape[2], encodings, logits, f"{anchors_node.name}:0",
                    setting("nms_iou_threshold"), score, int(setting("detections_per_class", 100.0)),
                    int(setting("max_detections")),
                    (setting("y_scale"), setting("x_scale"), setting("h_scale"), setting("w_scale")),
                    score_converter, logit_scale)
    graph = _import_ssd(model.graph, spec, source, name, input_shape, list(model.declared_outputs.values()))
    graph.metadata["tf_inputs"] = [model.declared_inputs[key]]
    graph.metadata["tf_input_dtypes"] = {}
    graph.metadata["warnings"] = notes
    graph.metadata["signature"] = {"name": model.signature, "inputs": dict(model.declared_inputs),
                                   "outputs": dict(model.declared_outputs)}
    return graph


def _static_shape(g: _Graph, tensor: str) -> tuple[int, ...]:
    node = g.producer(tensor)
    dims = [int(d.size) for d in node.attr["shape"].shape.dim] if "shape" in node.attr else []
    if len(dims) != 4 or any(d < 0 for d in dims[1:]):
        raise g.error(f"the input '{tensor}' has no static N×H×W×C shape ({dims})")
    return tuple(dims)
