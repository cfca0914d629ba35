"""remove-identity: drop nodes that compute nothing.

``Identity(x) = x``; also ``Mul(x, 1)``, ``Add(x, 0)``, ``Sub(x, 0)``, ``Div(x, 1)`` with a scalar
constant, which some exporters leave behind. Each user is rerouted to ``x``.
"""

from __future__ import annotations

from transpiler.ir.core import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass

NEUTRAL = {"Mul": 1.0, "Div": 1.0, "Add": 0.0, "Sub": 0.0}


@register_pass("remove-identity")
class RemoveIdentity(Pass):
    """Remove Identity nodes and element-wise ops with a neutral scalar constant."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            source = None
            if node.op == "Identity":
                source = node.inputs[0]
            elif node.op in NEUTRAL and len(node.inputs) == 2:
                x, c = node.inputs
                if (c.const is not None and c.const.size == 1 and float(c.const.reshape(-1)[0]) == NEUTRAL[node.op]
                        and x.shape == node.output.shape and x.dtype == node.output.dtype):
                    source = x
            if source is None:
                continue
            out = node.output
            if source.tf_name is None:
                source.tf_name = out.tf_name
            graph.replace_all_uses_with(out, source)
            graph.remove(node)
            changed = True
        return changed
