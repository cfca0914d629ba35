"""fold-space-to-batch: TF's dilated convolution ``SpaceToBatch → Conv(VALID) → BatchToSpace`` → one dilated Conv.

TF writes a convolution with dilation d (``atrous_conv2d``, ``depthwise_conv2d(dilations=…)``) as: pad the
map by ``(pt, pb)`` per axis and split it into d×d phase images (SpaceToBatchND, block d), run the plain
VALID convolution on each phase, interleave the results (BatchToSpaceND) and crop ``(ct, cb)``. Phase
``i`` of the padded map ``xp`` is ``xp[i::d]``, so output row ``a·d + i`` of the interleave is
``Σ_t w[t]·xp[(a + t)·d + i] = Σ_t w[t]·xp[a·d + i + t·d]``: row ``a·d + i`` of the dilated VALID convolution
of ``xp`` (both have ``size(xp) − d·(k−1)`` rows). Cropping ``ct`` rows off the start of a stride-1 result
equals padding ``ct`` fewer rows, so the whole is ``Conv(x, dilations=d, pads=(pt − ct, pb − cb))``, exact;
it is folded only where both pads are ≥ 0 and the convolution has stride 1 and no dilation of its own.
Runs before ``fix-same-padding`` (the pads it writes are EXPLICIT).
"""

from __future__ import annotations

from transpiler.ir.core import Graph, Node
from transpiler.pass_manager import Pass, PassContext, register_pass


def _fold(graph: Graph, b2s: Node) -> bool:
    conv = b2s.inputs[0].producer
    if conv is None or conv.op != "Conv" or len(conv.output.uses) != 1 or any(o is conv.output for o in graph.outputs):
        return False
    s2b = conv.inputs[0].producer
    if s2b is None or s2b.op != "SpaceToBatch" or len(s2b.output.uses) != 1:
        return False
    if (tuple(s2b.attrs["block"]) != tuple(b2s.attrs["block"]) or tuple(conv.attrs.get("strides", (1, 1))) != (1, 1)
            or tuple(conv.attrs.get("dilations", (1, 1))) != (1, 1)
            or (conv.attrs.get("padding") != "VALID" and any(conv.attrs.get("pads", (0, 0, 0, 0))))
            or conv.attrs.get("padding") == "SAME"):
        return False
    (pt, pb), (pl, pr) = s2b.attrs["pads"]
    (ct, cb), (cl, cr) = b2s.attrs["crops"]
    pads = (pt - ct, pb - cb, pl - cl, pr - cr)
    if min(pads) < 0:
        return False
    attrs = {**conv.attrs, "dilations": tuple(int(b) for b in b2s.attrs["block"]), "padding": "EXPLICIT",
             "pads": pads}
    graph.rewrite(b2s, "Conv", [s2b.inputs[0], *conv.inputs[1:]], attrs)
    b2s.source_names = s2b.source_names + conv.source_names + b2s.source_names
    graph.remove(conv)
    graph.remove(s2b)
    return True


@register_pass("fold-space-to-batch")
class FoldSpaceToBatch(Pass):
    """Fold SpaceToBatchND → Conv → BatchToSpaceND (TF's dilated convolution) into one dilated Conv."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is graph and node.op == "BatchToSpace":
                changed |= _fold(graph, node)
        return changed
