"""TensorFlow computing a fixture in float16: the yardstick for toolchains whose simulator has no float32 path.

RKNN-Toolkit2's simulator computes in float16 only, so it cannot meet 1e-4 of TF's float32 outputs; its bound is
what float16 arithmetic itself costs on that network: TF's own error when the same frozen graph computes in float16
(every float32 constant rounded to float16, every op's type set to half; batch norm's statistics stay float32, as
TF's FusedBatchNormV2/V3 require; a TF1 FusedBatchNorm, float-only, becomes the identical FusedBatchNormV2),
against TF's float32 reference. On the MobileNetV2 backbone fixtures that is 0.11..0.17 of max|ref| on the three
pictures; on the detectors' raw tensors 7e-3 (pedestrian) to 0.11 (the dm035 ones) (measured 2026-12-06, TF 2.21).
A float16 toolchain is held to twice TF's float16 error on the same picture: two implementations of the same
arithmetic land at errors of the same order, in either direction (the project's float32 rule against float64 is the
same, tests/e2e/test_fixture_detectors.py).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


@cache
def tf_float16_error(model_pb: Path, picture_npz: Path, input_name: str = "input:0",
                     output_name: str = "Identity:0") -> float:
    """max|TF16 − TF32| / max|TF32| of the backbone's output on the fixture picture (TF32 = the recorded reference)."""
    ref = np.load(picture_npz)
    return tf_float16_errors(model_pb, input_name, ref["input"], {output_name: ref["output"]})[output_name]


def detector_float16_errors(model_pb: Path, picture_npz: Path, ssd: dict[str, Any]) -> dict[str, float]:
    """The same for a detector's raw tensors (Squeeze:0, concat_1:0), fed at its feature input (conversion.json's
    ``ssd.feature_input``) with the picture normalised as ``ssd.normalization`` says, in float32 as TF does, then
    rounded to float16."""
    key = (model_pb, picture_npz, ssd["feature_input"], json.dumps(ssd["normalization"]))
    if key not in _DETECTOR_ERRORS:
        ref = np.load(picture_npz)
        x = ref["input"].astype(np.float32)
        ops = {"Mul": np.multiply, "Sub": np.subtract, "Add": np.add, "Div": np.divide}
        for step in ssd["normalization"]:
            value = np.float32(step["value"])
            x = ops[step["op"]](*((value, x) if step["scalar_first"] else (x, value))).astype(np.float32)
        _DETECTOR_ERRORS[key] = tf_float16_errors(model_pb, ssd["feature_input"], x, {
            "Squeeze:0": ref["raw_box_encodings"], "concat_1:0": ref["raw_class_logits"]})
    return _DETECTOR_ERRORS[key]


_DETECTOR_ERRORS: dict[tuple[Any, ...], dict[str, float]] = {}


def tf_float16_errors(model_pb: Path, input_name: str, x: np.ndarray, expected: dict[str, np.ndarray]
                      ) -> dict[str, float]:
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import tensor_util

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(model_pb.read_bytes())
    cut = input_name.split(":")[0]
    for node in graph_def.node:  # the input becomes a Placeholder: what feeds it (preprocessing loops) drops out
        if node.name == cut and node.op != "Placeholder":
            node.op = "Placeholder"
            del node.input[:]
            node.attr.clear()
            node.attr["dtype"].type = types_pb2.DT_FLOAT
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(graph_def, [n.split(":")[0] for n in expected])
    by_name = {n.name: n for n in graph_def.node}
    keep: set[str] = set()  # FusedBatchNorm's scale/offset/mean/variance (type U stays float32) and their Identities
    for node in graph_def.node:
        if node.op.startswith("FusedBatchNorm"):
            todo = [i.split(":")[0] for i in node.input[1:]]
            while todo:
                name = todo.pop()
                if name not in keep:
                    keep.add(name)
                    if by_name[name].op == "Identity":
                        todo.append(by_name[name].input[0].split(":")[0])
    for node in graph_def.node:
        if node.op == "FusedBatchNorm":  # v1 is float-only; V2 is the same op with T (half) and U (float) apart
            node.op = "FusedBatchNormV2"
            node.attr["U"].type = types_pb2.DT_FLOAT
        if node.name in keep:
            continue
        if node.op == "Const" and node.attr["dtype"].type == types_pb2.DT_FLOAT:
            value = tensor_util.MakeNdarray(node.attr["value"].tensor).astype(np.float16)
            node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
            node.attr["dtype"].type = types_pb2.DT_HALF
            continue
        for key in ("T", "dtype", "DstT", "SrcT"):
            if key in node.attr and node.attr[key].type == types_pb2.DT_FLOAT:
                node.attr[key].type = types_pb2.DT_HALF
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    names = list(expected)
    with tf.compat.v1.Session(graph=graph) as sess:
        outs = sess.run(names, {input_name: x.astype(np.float16)})
    return {name: float(np.abs(out.astype(np.float64) - expected[name].astype(np.float64)).max()
                        / np.abs(expected[name]).max()) for name, out in zip(names, outs, strict=True)}
