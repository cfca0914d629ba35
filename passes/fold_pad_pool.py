"""fold-pad-into-pool: a zero ``Pad`` before max pooling becomes the pooling's own padding, where exact.

Keras writes ResNet's stem as ``ZeroPadding2D(1) → MaxPool2D(3, 2, VALID)``. TF takes the maximum over
a window of the padded map, zeros included: ``y = max(max over valid cells, 0)`` when the window
reaches the padding. The IR's (and Caffe's) padded max pooling never reads padded cells:
``y' = max over valid cells``. The two agree exactly when

- every input value is ≥ 0, so ``max(m, 0) = m`` (proved from the producer: ReLU, ReLU6, Clip with
  a lower bound ≥ 0, Sigmoid, Exp, Softmax..., or ops that only move, pick or take maxima of such
  values: max/avg pooling, Concat, Reshape, Transpose...), and
- no window lies wholly in the padding (each pad < the kernel on its side), where TF's 0 would face
  the IR's −∞.

Otherwise the ``Pad`` stays, and the backend writes it as a convolution copying the map into a
zero-padded one (exact for any sign). Only spatial zero pads of 4-D maps are folded, into users
that are all non-global max poolings.
"""

from __future__ import annotations

from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.common import absorb_pad, pads_with, spatial_zero_pad

# Ops whose output is ≥ 0 whatever their input.
_NON_NEGATIVE = frozenset({"Relu", "Relu6", "Sigmoid", "Exp", "Abs", "Square", "Sqrt", "Softmax"})
# Ops whose output values are inputs' values moved, picked, or averaged: ≥ 0 when all data inputs are.
_PRESERVING = frozenset({"Pool", "Concat", "Identity", "Reshape", "Transpose", "Squeeze", "Flatten",
                         "Maximum", "Minimum", "ReduceMax", "ReduceMin", "ReduceMean", "Mul"})
_DEPTH = 16


def non_negative(value: Value, depth: int = _DEPTH) -> bool:
    """Whether every element of ``value`` is provably ≥ 0 (a sound, incomplete test)."""
    if value.const is not None:
        return bool((value.const >= 0).all())
    node = value.producer
    if node is None or depth == 0:
        return False
    if node.op in _NON_NEGATIVE:
        return True
    if node.op == "Clip":
        return float(node.attrs.get("min", float("-inf"))) >= 0.0
    if node.op == "Maximum":  # max(a, b) ≥ 0 as soon as one operand is
        return any(non_negative(v, depth - 1) for v in node.inputs)
    if node.op in _PRESERVING:
        data = node.inputs if node.op in ("Concat", "Minimum", "Mul") else node.inputs[:1]
        return all(non_negative(v, depth - 1) for v in data)
    return False


def _fold(graph: Graph, pad: Node) -> bool:
    extra = spatial_zero_pad(graph, pad)
    users = pad.output.users
    if extra is None or any(u.op != "Pool" or u.attrs.get("mode") != "max" or u.attrs.get("global_pool")
                            or u.attrs.get("padding", "VALID") not in ("VALID", "EXPLICIT") for u in users):
        return False
    merged = []
    for pool in users:
        new = pads_with(pool, extra)
        kh, kw = pool.attrs["kernel"]
        if max(new[:2]) >= kh or max(new[2:]) >= kw:
            return False  # a window of padding only: TF gives 0 there, padded max pooling −∞
        merged.append(new)
    if not non_negative(pad.inputs[0]):
        return False
    absorb_pad(graph, pad, merged)
    return True


@register_pass("fold-pad-into-pool")
class FoldPadIntoPool(Pass):
    """Fold zero Pad ops into the max poolings reading them where the padded map is ≥ 0."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "Pad":
                changed |= _fold(graph, node)
        return changed
