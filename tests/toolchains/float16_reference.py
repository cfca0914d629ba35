"""TensorFlow computing a fixture in float16: the yardstick for toolchains whose simulator has no float32 path.

RKNN-Toolkit2's simulator computes in float16 only, so it cannot meet 1e-4 of TF's float32 outputs; its bound is
what float16 arithmetic itself costs on that network: TF's own error when the same frozen graph computes in float16
(every float32 constant rounded to float16, every op's type set to half; batch norm's statistics stay float32, as
TF's FusedBatchNorm requires), against TF's float32 reference. On the MobileNetV2 backbone fixtures that is
0.11..0.17 of max|ref| on the three pictures (measured 2026-12-06, TF 2.21).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np


@cache
def tf_float16_error(model_pb: Path, picture_npz: Path, input_name: str = "input:0",
                     output_name: str = "Identity:0") -> float:
    """max|TF16 − TF32| / max|TF32| of the graph's output on the fixture picture (TF32 = the recorded reference)."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import tensor_util

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(model_pb.read_bytes())
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
    ref = np.load(picture_npz)
    with tf.compat.v1.Session(graph=graph) as sess:
        out = sess.run(output_name, {input_name: ref["input"].astype(np.float16)})
    expected = ref["output"].astype(np.float64)
    return float(np.abs(out.astype(np.float64) - expected).max() / np.abs(expected).max())
