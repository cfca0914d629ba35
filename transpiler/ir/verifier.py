"""IR verifier: the invariants every pass must leave behind.

Checked: each node belongs to this graph; every input value is a graph input, a constant, or the
output of a node placed earlier (topological order); use-lists are exact (a value lists
``(node, i)`` iff ``node.inputs[i]`` is that value); each value has at most one producer; output
values are known; ops are registered; float constants are finite. Failures raise :class:`IRError`
naming the node and its source nodes.
"""

from __future__ import annotations

import weakref

import numpy as np

from transpiler.errors import IRError
from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import OPS


def verify(graph: Graph) -> None:
    """Raise :class:`IRError` at the first broken invariant."""
    available: set[int] = {id(v) for v in graph.inputs}
    produced: set[int] = set()
    values: dict[int, Value] = {id(v): v for v in graph.inputs}
    edges = 0
    for node in graph.nodes:
        # node.describe() only when failing: formatting it for every node of every verification costs more
        # than the checks (the IR is verified after each pass).
        if node.graph is not graph:
            raise IRError(f"{node.describe()} does not belong to graph '{graph.name}'")
        if node.op not in OPS:
            raise IRError(f"{node.describe()}: IR op '{node.op}' is not registered")
        edges += len(node.inputs)
        for i, v in enumerate(node.inputs):
            values[id(v)] = v
            if v.producer is None and not v.is_const and id(v) not in available:
                raise IRError(f"{node.describe()}: input {i} %{v.name} is neither a graph input, a constant nor "
                              "produced")
            if v.producer is not None and id(v) not in produced:
                raise IRError(f"{node.describe()}: input {i} %{v.name} is used before {v.producer.describe()} "
                              "produces it")
            if (node, i) not in v._uses:  # the list itself: the public view copies it
                raise IRError(f"{node.describe()}: use-list of %{v.name} misses input {i}")
            if v.is_const:
                _check_const(v, node)
        for out in node.outputs:
            if out.producer is not node:
                raise IRError(f"{node.describe()}: output %{out.name} names another producer")
            if id(out) in produced:
                raise IRError(f"{node.describe()}: output %{out.name} is produced twice")
            produced.add(id(out))
            values[id(out)] = out
    # Every input (node, i) is in its value's use-list (checked above), each value has one list: so the lists hold
    # nothing else exactly when their lengths add up to the number of inputs. Only then are they read entry by
    # entry, to name the stray one.
    if sum(len(v._uses) for v in values.values()) != edges:
        for v in values.values():
            for user, i in v._uses:
                if user.graph is not graph or i >= len(user.inputs) or user.inputs[i] is not v:
                    raise IRError(f"use-list of %{v.name} lists {user.describe()} input {i}, which reads something "
                                  "else")
            if len(v._uses) != len(set(map(_use_key, v._uses))):
                raise IRError(f"use-list of %{v.name} lists an input twice")
    for out in graph.outputs:
        if out.producer is None and id(out) not in available and not out.is_const:
            raise IRError(f"graph output %{out.name} is not produced")
        if out.producer is not None and out.producer.graph is not graph:
            raise IRError(f"graph output %{out.name} is produced by a removed node")


def _use_key(use: tuple[Node, int]) -> tuple[int, int]:
    return id(use[0]), use[1]


# Float arrays already found finite. Passes make new arrays rather than write into constants, so an array
# checked once needs no second look (the weights of a MobileNetV2 were scanned ~25 times per conversion).
_FINITE: dict[int, weakref.ref[np.ndarray]] = {}  # id(array) → the array (arrays are unhashable)


def _known_finite(const: np.ndarray) -> bool:
    ref = _FINITE.get(id(const))
    return ref is not None and ref() is const


def _remember_finite(const: np.ndarray) -> None:
    key = id(const)

    def forget(_: weakref.ref[np.ndarray]) -> None:
        _FINITE.pop(key, None)

    _FINITE[key] = weakref.ref(const, forget)


def _check_const(v: Value, node: Node) -> None:
    const = v.const
    assert const is not None
    if v.shape is not None and tuple(const.shape) != tuple(v.shape):
        raise IRError(f"{node.describe()}: constant %{v.name} has shape {const.shape}, value says {v.shape}")
    if const.dtype.kind == "f" and not _known_finite(const):
        if not np.all(np.isfinite(const)):
            raise IRError(f"{node.describe()}: constant %{v.name} holds NaN or Inf")
        _remember_finite(const)
