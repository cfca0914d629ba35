"""Small pattern helpers shared by the rewrite passes."""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import channel_axis


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
