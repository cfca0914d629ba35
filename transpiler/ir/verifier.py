"""IR verifier: the invariants every pass must leave behind.

Checked: each node belongs to this graph; every input value is a graph input, a constant, or the
output of a node placed earlier (topological order); use-lists are exact (a value lists
``(node, i)`` iff ``node.inputs[i]`` is that value); each value has at most one producer; output
values are known; ops are registered; float constants are finite. Failures raise :class:`IRError`
naming the node and its source nodes.
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import IRError
from transpiler.ir.core import Graph, Value
from transpiler.ir.ops import OPS


def verify(graph: Graph) -> None:
    """Raise :class:`IRError` at the first broken invariant."""
    available: set[int] = {id(v) for v in graph.inputs}
    produced: set[int] = set()
    for node in graph.nodes:
        where = node.describe()
        if node.graph is not graph:
            raise IRError(f"{where} does not belong to graph '{graph.name}'")
        if node.op not in OPS:
            raise IRError(f"{where}: IR op '{node.op}' is not registered")
        for i, v in enumerate(node.inputs):
            if v.producer is None and not v.is_const and id(v) not in available:
                raise IRError(f"{where}: input {i} %{v.name} is neither a graph input, a constant nor produced")
            if v.producer is not None and id(v) not in produced:
                raise IRError(f"{where}: input {i} %{v.name} is used before {v.producer.describe()} produces it")
            if (node, i) not in v.uses:
                raise IRError(f"{where}: use-list of %{v.name} misses input {i}")
            if v.is_const:
                _check_const(v, where)
        for out in node.outputs:
            if out.producer is not node:
                raise IRError(f"{where}: output %{out.name} names another producer")
            if id(out) in produced:
                raise IRError(f"{where}: output %{out.name} is produced twice")
            produced.add(id(out))
    for v in graph.values():
        for user, i in v.uses:
            if user.graph is not graph or i >= len(user.inputs) or user.inputs[i] is not v:
                raise IRError(f"use-list of %{v.name} lists {user.describe()} input {i}, which reads something else")
    for out in graph.outputs:
        if out.producer is None and id(out) not in available and not out.is_const:
            raise IRError(f"graph output %{out.name} is not produced")
        if out.producer is not None and out.producer.graph is not graph:
            raise IRError(f"graph output %{out.name} is produced by a removed node")


def _check_const(v: Value, where: str) -> None:
    const = v.const
    assert const is not None
    if v.shape is not None and tuple(const.shape) != tuple(v.shape):
        raise IRError(f"{where}: constant %{v.name} has shape {const.shape}, value says {v.shape}")
    if const.dtype.kind == "f" and not np.all(np.isfinite(const)):
        raise IRError(f"{where}: constant %{v.name} holds NaN or Inf")
