"""Small pattern helpers shared by the rewrite passes."""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import channel_axis, spatial_axes


def sole_user(value: Value) -> Node | None:
    """The only node reading ``value``, when it has exactly one use and is not a graph output."""
    uses = value.uses
    if len(uses) != 1:
        return None
    return uses[0][0]


def is_graph_output(graph: Graph, value: Value) -> bool:
    return any(v is value for v in graph.outputs)


def producer_op(value: Value, op: str) -> Node | None:
    node = value.producer
    return node if node is not None and node.op == op else None


def scalar_value(v: Value) -> float | None:
    """The value of a one-element constant, else None."""
    if v.const is None or v.const.size != 1:
        return None
    return float(v.const.reshape(-1)[0])


def scalar_operand(node: Node, op: str) -> tuple[Value, float] | None:
    """(x, c) for ``op(x, c)`` / ``op(c, x)`` with a one-element constant ``c``."""
    if node.op != op or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    for x, c in ((a, scalar_value(b)), (b, scalar_value(a))):
        if c is not None:
            return x, c
    return None


def per_channel_vector(const: np.ndarray, feature: Value) -> np.ndarray | None:
    """``const`` as a length-C vector if it broadcasts against ``feature`` only along its channel axis.

    Scalars broadcast to every channel. Returns None for constants that vary along other axes.
    """
    if feature.shape is None:
        return None
    rank = len(feature.shape)
    axis = channel_axis(feature.layout, rank)
    channels = feature.shape[axis]
    if channels is None or const.ndim > rank:
        return None
    if const.size == 1:
        return np.full(channels, const.reshape(-1)[0], dtype=np.float64)
    padded = (1,) * (rank - const.ndim) + const.shape
    if any(d != 1 for i, d in enumerate(padded) if i != axis) or padded[axis] != channels:
        return None
    return const.reshape(-1).astype(np.float64)


def replace_node_output(graph: Graph, node: Node, new_value: Value) -> None:
    """Reroute every use of ``node``'s single output to ``new_value``, then remove ``node``."""
    old = node.output
    if new_value.tf_name is None:
        new_value.tf_name = old.tf_name
    graph.replace_all_uses_with(old, new_value)
    graph.remove(node)


Pads4 = tuple[int, int, int, int]  # (top, bottom, left, right)


def spatial_zero_pad(graph: Graph, pad: Node) -> Pads4 | None:
    """A ``Pad`` of zeros on the two spatial axes of a 4-D map only, which has readers and is not a graph
    output: its ``(top, bottom, left, right)``; None for any other Pad (a real one, not window padding)."""
    x = pad.inputs[0]
    if (not pad.output.users or x.shape is None or len(x.shape) != 4 or float(pad.attrs.get("value", 0.0)) != 0.0
            or is_graph_output(graph, pad.output)):
        return None
    ah, aw = spatial_axes(x.layout)
    pads = pad.attrs["pads"]
    if any(tuple(pads[i]) != (0, 0) for i in range(4) if i not in (ah, aw)):
        return None
    return (pads[ah][0], pads[ah][1], pads[aw][0], pads[aw][1])


def pads_with(node: Node, extra: Pads4) -> Pads4:
    """``node``'s explicit window pads (0 where it has none) plus ``extra``."""
    t, b, left, r = node.attrs["pads"] if node.attrs.get("padding") == "EXPLICIT" else (0, 0, 0, 0)
    return (t + extra[0], b + extra[1], left + extra[2], r + extra[3])


def absorb_pad(graph: Graph, pad: Node, new_pads: list[Pads4]) -> None:
    """Give each reader of ``pad`` (in ``pad.output.users`` order) its ``new_pads`` entry as explicit window
    pads, then read ``pad``'s input instead and remove ``pad``."""
    for user, pads in zip(pad.output.users, new_pads, strict=True):
        user.attrs["pads"] = pads
        user.attrs["padding"] = "EXPLICIT"
        user.source_names = pad.source_names + user.source_names
    graph.replace_all_uses_with(pad.output, pad.inputs[0])
    graph.remove(pad)
