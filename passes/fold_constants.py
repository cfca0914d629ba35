"""fold-constants: evaluate nodes whose inputs are all constants, with numpy.

``y = op(c1, ..., cn)`` with every ``ci`` constant becomes the constant ``y``, computed by the op's
reference kernel. ``Shape`` of a value with a static shape folds too. Rsqrt/Mul chains over batch
norm statistics (Keras 3's decomposed batch norm) reduce to per-channel constants this way.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph
from transpiler.ir.ops import can_evaluate, evaluate
from transpiler.pass_manager import Pass, PassContext, register_pass


@register_pass("fold-constants")
class FoldConstants(Pass):
    """Replace nodes of constant inputs by their computed values."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op == "Shape":
                shape = node.inputs[0].shape
                if shape is None or None in shape:
                    continue
                results = [np.asarray(shape, dtype=node.output.dtype.numpy)]
            elif node.inputs and all(v.const is not None for v in node.inputs) and can_evaluate(node.op):
                results = evaluate(node, [v.const for v in node.inputs])  # type: ignore[misc]
            else:
                continue
            for out, arr in zip(list(node.outputs), results, strict=True):
                folded = graph.constant(out.name + "/folded", np.asarray(arr))
                folded.tf_name = out.tf_name
                graph.replace_all_uses_with(out, folded)
            graph.remove(node)
            changed = True
        return changed
