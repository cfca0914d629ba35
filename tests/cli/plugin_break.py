"""A plugin pass that corrupts one convolution (×1.01), so --verify must fail and name it."""

from __future__ import annotations

from transpiler.ir import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass


@register_pass("break-second-conv", run_after="fold-batchnorm")
class BreakSecondConv(Pass):
    """Scale the second convolution's weights by 1.01."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        convs = [n for n in graph.nodes if n.op == "Conv"]
        w = convs[1].inputs[1]
        assert w.const is not None
        graph.set_input(convs[1], 1, graph.constant(w.name + "/broken", w.const * 1.01))
        return True
