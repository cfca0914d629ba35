"""fold-prelu: recognise PReLU written with element-wise ops and make it one ``PRelu`` node.

Keras (3 and tf-keras) computes ``PReLU`` as ``relu(x) + (−α)·relu(−x)``: in the graph ``Relu(x)``,
``Neg(x)``, ``Relu``, ``Mul`` by the constant ``−α`` (``Neg`` of the variable, folded), ``AddV2``. With
``p(x)`` the positive part (``Relu(x)`` or ``Maximum(x, 0)``) and the negative part written as
``Relu(Neg(x)) = −min(x, 0)`` or ``Minimum(x, 0)``, the forms

- ``p(x) + k·Relu(−x)``  (α = −k), ``p(x) − k·Relu(−x)``  (α = k),
- ``p(x) + k·min(x, 0)`` (α = k),  ``p(x) − k·min(x, 0)`` (α = −k)

(``k`` a constant, either operand order of ``Add`` and ``Mul``) all equal ``y = max(0, x) + α·min(0, x)``
bit for bit: where ``x > 0`` one term is ``x`` and the other ``±0``; where ``x < 0`` the first is 0 and the
second ``α·x`` rounded once (negations are exact). The rewrite is made only when the constant proves the
form: ``k`` is one value (a shared slope) or varies along the channel axis of ``x`` alone (one slope per
channel, ``k`` not widening ``x``), and both parts read the same value ``x``. Any other ``k`` (a slope per
pixel) is left to the element-wise ops, which compute it exactly too. The ``Add``/``Sub`` node becomes the
``PRelu`` (its name and TF tensor kept); the pattern's other nodes go when nothing else reads them.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.common import per_channel_vector, scalar_operand


def _positive_part(v: Value) -> tuple[Value, list[Node]] | None:
    """x for ``v = max(x, 0)`` (``Relu(x)`` or ``Maximum(x, 0)``), with the node."""
    node = v.producer
    if node is None:
        return None
    if node.op == "Relu":
        return node.inputs[0], [node]
    found = scalar_operand(node, "Maximum")
    return (found[0], [node]) if found is not None and found[1] == 0.0 else None


def _negative_part(v: Value) -> tuple[Value, float, list[Node]] | None:
    """(x, s, nodes) for ``v = s·min(x, 0)``: ``Relu(Neg(x))`` (s = −1) or ``Minimum(x, 0)`` (s = 1)."""
    node = v.producer
    if node is None:
        return None
    if node.op == "Relu":
        neg = node.inputs[0].producer
        if neg is not None and neg.op == "Neg":
            return neg.inputs[0], -1.0, [node, neg]
        return None
    found = scalar_operand(node, "Minimum")
    return (found[0], 1.0, [node]) if found is not None and found[1] == 0.0 else None


def _slopes(k: np.ndarray, x: Value) -> np.ndarray | None:
    """The slopes ``k`` gives for ``x``: one value (shared), or one per channel; None for any other shape."""
    if k.size == 1:
        return k.reshape(1).astype(np.float64)
    return per_channel_vector(k, x)


def _match(node: Node) -> tuple[Value, np.ndarray, list[Node]] | None:
    """(x, α, the pattern's other nodes) when ``node`` is one of the PReLU forms of the module docstring."""
    if node.op not in ("Add", "Sub") or len(node.inputs) != 2:
        return None
    orders = [(0, 1), (1, 0)] if node.op == "Add" else [(0, 1)]
    for i, j in orders:
        pos, term = node.inputs[i], node.inputs[j]
        mul = term.producer
        positive = _positive_part(pos)
        if positive is None or mul is None or mul.op != "Mul" or len(mul.inputs) != 2:
            continue
        a, b = mul.inputs
        const, part = (a, b) if a.const is not None else (b, a)
        negative = _negative_part(part)
        if const.const is None or negative is None or negative[0] is not positive[0]:
            continue
        x, sign, neg_nodes = negative
        if x.shape is None or None in x.shape or term.shape != x.shape or not x.dtype.is_float:
            continue
        slopes = _slopes(const.const, x)
        if slopes is None:
            continue
        # y = p(x) ± k·(s·min(x, 0))  ⇒  α = ±s·k
        alpha = slopes * sign * (1.0 if node.op == "Add" else -1.0)
        return x, alpha, [mul, *neg_nodes, *positive[1]]
    return None


@register_pass("fold-prelu")
class FoldPRelu(Pass):
    """Make PReLU written as relu(x) − α·relu(−x) (Keras) one PRelu node (shared or per-channel slopes)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is not graph:
                continue
            found = _match(node)
            if found is None:
                continue
            x, alpha, inner = found
            slopes = graph.constant(node.name + "/alpha", alpha.astype(x.dtype.numpy))
            graph.rewrite(node, "PRelu", [x, slopes])
            for dead in inner:  # readers before their inputs: mul, then the parts
                if dead.graph is graph and not dead.output.uses and not any(o is dead.output for o in graph.outputs):
                    node.source_names = dead.source_names + node.source_names
                    graph.remove(dead)
            changed = True
        return changed
