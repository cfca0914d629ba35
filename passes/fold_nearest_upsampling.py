"""fold-nearest-upsampling: nearest-neighbour upsampling written as stacks and reshapes → one ``Upsample``.

The TF Object Detection API's FPN upsamples without a resize op (``nearest_neighbor_upsampling``):
``stack([x]·k, axis=a)`` then a reshape that merges the new axis into the one before it. Stacking k
copies of ``x`` on a new axis ``a`` and merging it into axis ``a−1`` yields, along that axis,
``x[0], x[0], …, x[1], x[1], …``: each element repeated k times, i.e. ``np.repeat(x, k, axis=a−1)``;
on the two spatial axes of an NHWC map that is nearest upsampling by ``(fh, fw)``.

The frontend lowers ``Pack`` to Reshape (insert a size-1 axis) + Concat, so the pattern is a final 4-D
``Reshape`` whose input is computed from one 4-D map ``x`` by Reshape/Concat nodes only. Rather than match
every spelling, the pass runs that chain on an index map (``ids = arange(x.size)`` shaped like ``x``, through
the IR ops' own reference kernels) and rewrites the Reshape as ``Upsample(x, (fh, fw))`` exactly when the
result equals ``repeat(repeat(ids, fh, H), fw, W)``: equal indices mean equal values for every input. The
chain's other nodes then die (dce). One Caffe Deconvolution replaces Permute/Reshape/Concat chains, and
runs in flavors without Permute (bvlc).
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import evaluate
from transpiler.pass_manager import Pass, PassContext, register_pass

MOVES = frozenset({"Reshape", "Concat", "Identity"})
MAX_NODES = 64  # the patterns are a handful of nodes; bigger data-movement regions are left alone


def _region(out: Value) -> tuple[Value, list[Node]] | None:
    """The single non-move value feeding ``out`` through move ops, and those nodes (inputs first)."""
    leaves: set[int] = set()
    leaf: Value | None = None
    nodes: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(out, False)]
    while stack:
        v, done = stack.pop()
        node = v.producer
        if done:
            if node is not None:
                nodes.append(node)
            continue
        if node is None or node.op not in MOVES or v.const is not None:
            leaves.add(id(v))
            leaf = v
            if len(leaves) > 1:
                return None
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            return None
        stack.append((v, True))
        stack.extend((i, False) for i in node.inputs)
    return (leaf, nodes) if leaf is not None else None


def _factors(graph: Graph, reshape: Node) -> tuple[Value, tuple[int, int]] | None:
    out = reshape.output
    region = _region(out)
    if region is None:
        return None
    x, nodes = region
    if (x.shape is None or out.shape is None or len(x.shape) != 4 or len(out.shape) != 4 or x.layout != "NHWC"
            or None in x.shape or None in out.shape or x.const is not None):
        return None
    n, h, w, c = (int(d) for d in x.shape)  # type: ignore[arg-type]
    on, oh, ow, oc = (int(d) for d in out.shape)  # type: ignore[arg-type]
    if (on, oc) != (n, c) or oh % h or ow % w or (oh, ow) == (h, w):
        return None
    fh, fw = oh // h, ow // w
    ids = np.arange(n * h * w * c, dtype=np.int64).reshape(n, h, w, c)
    arrays: dict[int, np.ndarray] = {id(x): ids}
    for node in nodes:
        results = evaluate(node, [arrays[id(v)] for v in node.inputs])
        arrays[id(node.output)] = results[0]
    expected = ids.repeat(fh, axis=1).repeat(fw, axis=2)
    got = arrays[id(out)]
    if got.shape != expected.shape or not np.array_equal(got, expected):
        return None
    return x, (fh, fw)


@register_pass("fold-nearest-upsampling")
class FoldNearestUpsampling(Pass):
    """Rewrite stack/reshape nearest-neighbour upsampling (FPN's) as one Upsample."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in reversed(graph.nodes):  # last Reshape first: a two-step spelling becomes one Upsample
            if node.graph is not graph or node.op != "Reshape":
                continue
            found = _factors(graph, node)
            if found is not None:
                x, factors = found
                graph.rewrite(node, "Upsample", [x], {"factors": factors})
                changed = True
        return changed
