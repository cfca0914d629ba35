"""matmul-to-fc: ``MatMul(x, W)`` with constant ``W`` becomes ``FullyConnected(x, Wᵀ)``.

Caffe's InnerProduct computes ``y = x·wᵀ + b`` with ``w`` of shape (out, in); TF's MatMul reads
``W`` as (in, out) unless ``transpose_b``. A following bias Add is folded by fold-batchnorm. A batch of
matrices ``x`` (rank r > 2, TF's BatchMatMul with one constant matrix) multiplies along its last axis:
InnerProduct with ``axis = r − 1`` (Caffe flattens from ``axis`` on, here only the last axis).
``MatMul`` with ``transpose_a`` or with a non-constant ``W`` stays and the backend refuses it.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph
from transpiler.pass_manager import Pass, PassContext, register_pass


@register_pass("matmul-to-fc")
class MatMulToFC(Pass):
    """Turn MatMul with constant weights into FullyConnected."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op != "MatMul" or node.attrs.get("transpose_a") or node.inputs[1].const is None:
                continue
            w = node.inputs[1].const
            w_out_in = w if node.attrs.get("transpose_b") else np.ascontiguousarray(w.T)
            rank = node.inputs[0].rank or 2
            graph.rewrite(node, "FullyConnected", [node.inputs[0], graph.constant(node.name + "/weights", w_out_in)],
                          {"axis": rank - 1} if rank > 2 else {})
            changed = True
        return changed
