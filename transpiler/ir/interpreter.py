"""Reference interpreter: runs an IR graph on numpy arrays with each op's reference kernel.

Used by constant folding (one node at a time) and by tests, which check that a pass leaves the
numbers unchanged (``run(before) ≈ run(after)``) on hand-built graphs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from transpiler.errors import IRError
from transpiler.ir.core import Graph, Value
from transpiler.ir.ops import evaluate


def run(graph: Graph, feeds: Mapping[str, np.ndarray], *, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Evaluate ``graph``; returns its outputs by value name (every value when ``keep_all``)."""
    env: dict[int, np.ndarray] = {}
    names = {v.name for v in graph.inputs}
    for name in feeds:
        if name not in names:
            raise IRError(f"no graph input named {name!r} (inputs: {sorted(names)})")
    for v in graph.inputs:
        env[id(v)] = np.asarray(feeds[v.name])
    every: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        args = [_lookup(env, v) for v in node.inputs]
        results = evaluate(node, args)
        for out, arr in zip(node.outputs, results, strict=True):
            env[id(out)] = arr
            if keep_all:
                every[out.name] = arr
    outputs = {v.name: _lookup(env, v) for v in graph.outputs}
    return {**every, **outputs} if keep_all else outputs


def _lookup(env: dict[int, np.ndarray], v: Value) -> np.ndarray:
    if v.const is not None:
        return v.const
    try:
        return env[id(v)]
    except KeyError:
        raise IRError(f"value %{v.name} is read before it is computed") from None
