"""map-relu6: recognise ReLU6 in all its spellings and make it one ``Relu6`` node.

``Clip(x, 0, 6)`` (TF's Relu6), ``Minimum(Relu(x), 6)``, ``Minimum(Maximum(x, 0), 6)`` and
``Maximum(Minimum(x, 6), 0)`` all compute ``min(max(x, 0), 6)``. The backend then writes the
flavor's own encoding (a ReLU6 layer, Clip, or the portable ReLU/Power/ReLU/Eltwise chain), never
a plain ReLU.
"""

from __future__ import annotations

from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.common import scalar_operand


def _relu6_input(node: Node) -> Value | None:
    if node.op == "Clip" and node.attrs.get("min") == 0.0 and node.attrs.get("max") == 6.0:
        return node.inputs[0]
    outer = scalar_operand(node, "Minimum")
    if outer is not None and outer[1] == 6.0 and outer[0].producer is not None:
        inner = outer[0].producer
        if inner.op == "Relu" and len(outer[0].uses) == 1:
            return inner.inputs[0]
        lower = scalar_operand(inner, "Maximum")
        if lower is not None and lower[1] == 0.0 and len(outer[0].uses) == 1:
            return lower[0]
    outer = scalar_operand(node, "Maximum")
    if outer is not None and outer[1] == 0.0 and outer[0].producer is not None:
        upper = scalar_operand(outer[0].producer, "Minimum")
        if upper is not None and upper[1] == 6.0 and len(outer[0].uses) == 1:
            return upper[0]
    return None


@register_pass("map-relu6")
class MapRelu6(Pass):
    """Canonicalise every ReLU6 spelling to a Relu6 node."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is not graph:
                continue
            x = _relu6_input(node)
            if x is None:
                continue
            inner = next((v.producer for v in node.inputs if v.const is None), None) if node.op != "Clip" else None
            graph.rewrite(node, "Relu6", [x])
            if inner is not None and not inner.output.uses:
                node.source_names = inner.source_names + node.source_names
                graph.remove(inner)
            changed = True
        return changed
