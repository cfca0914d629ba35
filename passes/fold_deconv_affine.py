"""fold-deconv-affine: fold a per-channel affine (a BiasAdd, a batch norm) into the transposed convolution before it.

A ``Deconv`` output channel ``o`` is ``y[o] = Σ_c x[c] ⋆ w[c, o] (+ b[o])`` (weights (C_in, C_out, kh, kw)),
linear in ``w[:, o]``, so ``y[o]·s[o] + t[o]`` is the Deconv with ``w'[:, o] = w[:, o]·s[o]`` and
``b'[o] = b[o]·s[o] + t[o]``: Keras' Conv2DTranspose bias (s = 1, exact) becomes the Deconvolution's own
bias term instead of a separate Scale layer. Runs after fold-batchnorm, which writes those affines.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import channel_axis
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.common import sole_user


def _fold(graph: Graph, affine: Node) -> bool:
    x = affine.inputs[0]
    deconv = x.producer
    if (deconv is None or deconv.op != "Deconv" or sole_user(x) is not affine or any(o is x for o in graph.outputs)
            or x.shape is None or int(affine.attrs["axis"]) != channel_axis(x.layout, len(x.shape))):
        return False
    w = deconv.inputs[1].const
    bias = deconv.inputs[2].const if len(deconv.inputs) > 2 else np.zeros(1)
    scale, shift = affine.inputs[1].const, affine.inputs[2].const
    if w is None or bias is None or scale is None or shift is None:
        return False
    s64, t64 = np.asarray(scale, dtype=np.float64).reshape(-1), np.asarray(shift, dtype=np.float64).reshape(-1)
    weights = (np.asarray(w, dtype=np.float64) * s64.reshape(1, -1, 1, 1)).astype(w.dtype)
    new_bias = (np.asarray(bias, dtype=np.float64) * s64 + t64).astype(w.dtype)
    inputs = [deconv.inputs[0], graph.constant(affine.name + "/weights", weights),
              graph.constant(affine.name + "/bias", new_bias)]
    graph.rewrite(affine, "Deconv", inputs, dict(deconv.attrs))
    affine.source_names = deconv.source_names + affine.source_names
    graph.remove(deconv)
    return True


@register_pass("fold-deconv-affine")
class FoldDeconvAffine(Pass):
    """Fold a per-channel Affine (BiasAdd, batch norm) into the preceding Deconv."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is graph and node.op == "Affine":
                changed |= _fold(graph, node)
        return changed
