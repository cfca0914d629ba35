"""The graph TensorFlow runs for ``--verify``: fed where the conversion was cut, at the size it was given.

The conversion may start at an inner tensor (``--input NAME`` naming one) and may override a
Placeholder's static shape (``--input input:1x300x300x3`` for a network frozen at 224×224). TF would
refuse to feed a tensor whose static shape disagrees, and would still build what lies upstream of
the cut. So, before importing the GraphDef:

- every fed tensor ``node:i`` becomes a fresh Placeholder with the fed array's dtype and shape (a
  fed Placeholder keeps its name and dtype and only gets the new shape); every reader of ``node:i``
  reads it;
- the graph is pruned to what the fetches need, which drops what the cut
  removed (preprocessing, the old input);
- recorded ``_output_shapes`` attributes are dropped, since they describe the old sizes.

:func:`as_float64` rewrites a graph to compute in float64: every ``float32`` type attribute becomes
``float64`` and every float32 constant is widened (exactly: float32 ⊂ float64). ``--per-layer`` runs
it to measure TF's own float32 rounding error at each tensor (see harness.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def split_tensor(name: str) -> tuple[str, int]:
    """``node:1`` → ``("node", 1)``; ``node`` → ``("node", 0)``."""
    node, _, index = name.partition(":")
    return node, int(index) if index else 0


def feed_graph(graph_def: Any, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> tuple[Any, dict[str, str]]:
    """A copy of ``graph_def`` fed at ``feeds`` (tensor name → array) and pruned to ``fetches``.

    Returns the new GraphDef and the renaming of tensor names (fed tensors that became Placeholders).
    """
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    by_name = {node.name: node for node in out.node}
    renamed: dict[str, str] = {}
    for tensor, array in feeds.items():
        node_name, index = split_tensor(tensor)
        node = by_name.get(node_name)
        if node is None:
            raise KeyError(f"tensor {tensor} is not in the graph")
        shape = tf.TensorShape(np.shape(array)).as_proto()
        if node.op == "Placeholder" and index == 0:
            node.attr["shape"].shape.CopyFrom(shape)  # its dtype stays: TF converts the fed array
            continue
        fresh = f"{node_name}/verify_feed_{index}"
        placeholder = out.node.add(name=fresh, op="Placeholder")
        # The tensor's own dtype is not in the GraphDef: the array's, with float meaning the graph's float32
        # (as_float64 widens it with everything else).
        dtype = np.float32 if np.asarray(array).dtype == np.float64 else np.asarray(array).dtype
        placeholder.attr["dtype"].type = tf.as_dtype(dtype).as_datatype_enum
        placeholder.attr["shape"].shape.CopyFrom(shape)
        renamed[tensor] = f"{fresh}:0"
        refs = {f"{node_name}:{index}"} | ({node_name} if index == 0 else set())
        for reader in out.node:
            for i, inp in enumerate(reader.input):
                if inp in refs:
                    reader.input[i] = fresh
    for node in out.node:
        if "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    return prune(out, [split_tensor(renamed.get(t, t))[0] for t in fetches]), renamed


def prune(graph_def: Any, keep: Sequence[str]) -> Any:
    """The nodes ``keep`` depend on (data and control inputs), in their original order."""
    by_name = {node.name: node for node in graph_def.node}
    needed: set[str] = set()
    stack = list(keep)
    while stack:
        name = stack.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        stack.extend(split_tensor(inp.lstrip("^"))[0] for inp in by_name[name].input)
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    out.node.extend(node for node in graph_def.node if node.name in needed)
    return out


def as_float64(graph_def: Any) -> Any:
    """A copy of ``graph_def`` that computes in float64 wherever it computed in float32."""
    import tensorflow as tf

    f32, f64 = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    _expand_batch_norms(out)
    for node in out.node:
        for attr in node.attr.values():
            kind = attr.WhichOneof("value")
            if kind == "type" and attr.type == f32:
                attr.type = f64
            elif kind == "list" and f32 in attr.list.type:
                types = [f64 if t == f32 else t for t in attr.list.type]
                del attr.list.type[:]
                attr.list.type.extend(types)
            elif kind == "tensor" and attr.tensor.dtype == f32:
                wide = tf.make_ndarray(attr.tensor).astype(np.float64)
                attr.tensor.CopyFrom(tf.make_tensor_proto(wide, dtype=tf.float64))
    return out


BATCH_NORMS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})


def _expand_batch_norms(graph_def: Any) -> None:
    """Inference FusedBatchNorm (float-only kernels) → ``(x − mean)·(scale·rsqrt(var + ε)) + offset``.

    Only where it is NHWC, not training, and only output 0 is read; the last op keeps the node's name.
    """
    import tensorflow as tf

    readers = {inp.lstrip("^") for node in graph_def.node for inp in node.input}
    nodes = list(graph_def.node)
    for node in nodes:
        if (node.op not in BATCH_NORMS or node.attr["is_training"].b
                or node.attr["data_format"].s not in (b"", b"NHWC")
                or any(f"{node.name}:{i}" in readers for i in range(1, 6))):
            continue
        x, scale, offset, mean, var = node.input[:5]
        dtype = node.attr["T"].type
        name = node.name

        def add(op: str, suffix: str, inputs: list[str], _name: str = name, _dtype: int = dtype) -> str:
            new = graph_def.node.add(name=f"{_name}/f64_{suffix}", op=op)
            new.input.extend(inputs)
            new.attr["T"].type = _dtype
            return new.name

        eps = graph_def.node.add(name=f"{name}/f64_epsilon", op="Const")
        eps.attr["dtype"].type = dtype
        eps.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(node.attr["epsilon"].f)))
        factor = add("Mul", "factor", [scale, add("Rsqrt", "rsqrt", [add("AddV2", "var_eps", [var, eps.name])])])
        scaled = add("Mul", "scaled", [add("Sub", "centred", [x, mean]), factor])
        control = [inp for inp in node.input if inp.startswith("^")]
        node.Clear()
        node.name, node.op = name, "AddV2"
        node.input.extend([scaled, offset, *control])
        node.attr["T"].type = dtype
