"""dce: remove nodes none of whose outputs reach a graph output.

A reverse sweep in topological order: a node is live if one of its outputs is a graph output or is
read by a live node.
"""

from __future__ import annotations

from transpiler.ir.core import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass


@register_pass("dce")
class DeadCodeElimination(Pass):
    """Remove nodes whose results are never used."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        outputs = {id(v) for v in graph.outputs}
        changed = False
        for node in reversed(graph.nodes):
            if any(id(o) in outputs or o.uses for o in node.outputs):
                continue
            graph.remove(node)
            changed = True
        return changed
