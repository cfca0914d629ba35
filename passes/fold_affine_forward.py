"""fold-affine-forward: per-channel affines that can go: neutral ones dropped, others folded into the
convolutions that read them, where that is exact.

Keras models begin with ``Rescaling``/``Normalization`` (``x·s + b`` per input channel, one ``Affine``
after fold-batchnorm) and spell swish as ``x·sigmoid(1·x)`` (an ``Affine`` with ``s = 1, b = 0``).

- An affine with ``s = 1`` and ``b = 0`` everywhere is the identity: dropped (bit for bit).
- An affine read only by convolutions (as their input) folds into their weights. With groups
  (``O = g·O_g`` outputs, ``I`` input channels per group), output ``o``'s tap ``i`` reads input channel
  ``c(o, i) = ⌊o/O_g⌋·I + i``, so ``conv(x·s + b) = conv'(x)`` with
  ``w'[o,i,·,·] = w[o,i,·,·]·s[c(o,i)]`` and ``b'[o] = b[o] + Σ_{i,kh,kw} w[o,i,kh,kw]·b[c(o,i)]``.
  That holds where every tap reads the map. A padded convolution's border taps read zeros, which the
  source would have shifted by ``b`` too: so with ``b ≠ 0`` only unpadded convolutions take the fold
  (with ``b = 0``, ``pad(x)·s = pad(x·s)`` and every convolution does). Otherwise the affine stays one
  Scale layer.

Runs after to-nchw (kernels in OIHW).
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import channel_axis, window_pads
from transpiler.pass_manager import Pass, PassContext, register_pass


def _neutral(node: Node) -> bool:
    scale, bias = (v.const for v in node.inputs[1:3])
    return scale is not None and bias is not None and bool((scale == 1).all() and (bias == 0).all())


def _padded(conv: Node) -> bool:
    x = conv.inputs[0]
    w = conv.inputs[1].const
    assert x.shape is not None and w is not None
    return any(window_pads(conv, x.shape[2], x.shape[3], int(w.shape[2]), int(w.shape[3])))


def _fold(graph: Graph, affine: Node) -> bool:
    x, out = affine.inputs[0], affine.output
    scale, bias = (v.const for v in affine.inputs[1:3])
    users = out.users
    if (scale is None or bias is None or not users or x.shape is None or len(x.shape) != 4
            or x.layout != "NCHW" or int(affine.attrs.get("axis", 1)) % 4 != channel_axis(x.layout, 4)
            or any(o is out for o in graph.outputs)):
        return False
    for conv in users:
        if (conv.op != "Conv" or conv.inputs[0] is not out or any(v is out for v in conv.inputs[1:])
                or conv.attrs.get("kernel_layout") != "OIHW" or conv.inputs[1].const is None
                or (len(conv.inputs) > 2 and conv.inputs[2].const is None)):
            return False
        if (bias != 0).any() and _padded(conv):
            return False  # border taps would read unshifted zeros where the source read b
    s, b = np.asarray(scale, np.float64).reshape(-1), np.asarray(bias, np.float64).reshape(-1)
    for conv in users:
        w = np.asarray(conv.inputs[1].const, np.float64)
        out_ch, per_group = w.shape[:2]
        group = int(conv.attrs.get("group", 1))
        channel = (np.arange(out_ch)[:, None] // (out_ch // group)) * per_group + np.arange(per_group)[None, :]
        dtype = conv.inputs[1].const.dtype  # type: ignore[union-attr]
        old = np.asarray(conv.inputs[2].const, np.float64) if len(conv.inputs) > 2 else np.zeros(out_ch)
        new_bias = old + (w * b[channel][:, :, None, None]).sum(axis=(1, 2, 3))
        graph.set_input(conv, 1, graph.constant(conv.name + "/weights_in", (w * s[channel][:, :, None, None])
                                                .astype(dtype)))
        bias_v = graph.constant(conv.name + "/bias_in", new_bias.astype(dtype))
        if len(conv.inputs) > 2:
            graph.set_input(conv, 2, bias_v)
        else:
            graph.set_inputs(conv, [*conv.inputs, bias_v])
        conv.source_names = affine.source_names + conv.source_names
    graph.replace_all_uses_with(out, x)
    graph.remove(affine)
    return True


@register_pass("fold-affine-forward")
class FoldAffineForward(Pass):
    """Drop identity affines; fold input-side affines (Rescaling/Normalization) into the convs reading them."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.graph is not graph or node.op != "Affine":
                continue
            if _neutral(node) and not any(o is node.output for o in graph.outputs):
                graph.replace_all_uses_with(node.output, node.inputs[0])
                graph.remove(node)
                changed = True
            else:
                changed |= _fold(graph, node)
        return changed
