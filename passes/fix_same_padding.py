"""fix-same-padding: resolve TF's SAME padding to explicit pads and merge explicit Pad ops.

TF SAME: ``out = ceil(in/s)``, ``pad = max((out−1)·s + d·(k−1) + 1 − in, 0)``,
``begin = pad // 2``, ``end = pad − begin``: uneven (one more at the end) whenever ``pad`` is odd.
Every Conv/Pool with ``padding=SAME`` gets ``padding=EXPLICIT`` and ``pads=(top,bottom,left,right)``
computed from its static input size; the IR represents uneven pads exactly. A ``Pad`` of zeros on
the spatial axes only, all of whose users are convolutions, merges into those convolutions' pads
(Keras writes SAME with stride 2 as ``Pad((0,1),(0,1))`` + ``VALID``). Backends that can only pad
symmetrically run ``symmetric-padding`` afterwards.
"""

from __future__ import annotations

from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import kernel_hw, spatial_axes, window_pads
from transpiler.pass_manager import Pass, PassContext, register_pass


def _resolve(node: Node) -> bool:
    if node.attrs.get("padding") != "SAME" or node.attrs.get("global_pool"):
        return False
    x = node.inputs[0]
    assert x.shape is not None
    ah, aw = spatial_axes(x.layout)
    kh, kw = kernel_hw(node)[:2] if node.op == "Conv" else node.attrs["kernel"]
    node.attrs["pads"] = window_pads(node, x.shape[ah], x.shape[aw], kh, kw)
    node.attrs["padding"] = "EXPLICIT"
    return True


def _merge_pad(graph: Graph, pad: Node) -> bool:
    x = pad.inputs[0]
    users = pad.output.users
    if (not users or any(u.op != "Conv" for u in users) or float(pad.attrs.get("value", 0.0)) != 0.0
            or x.shape is None or len(x.shape) != 4 or any(o is pad.output for o in graph.outputs)):
        return False
    ah, aw = spatial_axes(x.layout)
    pads = pad.attrs["pads"]
    if any(tuple(pads[i]) != (0, 0) for i in range(4) if i not in (ah, aw)):
        return False  # pads batch or channels: a real Pad, not convolution padding
    for conv in users:
        if conv.attrs.get("padding") == "SAME":
            return False
    for conv in users:
        t, b, left, r = conv.attrs["pads"] if conv.attrs.get("padding") == "EXPLICIT" else (0, 0, 0, 0)
        conv.attrs["pads"] = (t + pads[ah][0], b + pads[ah][1], left + pads[aw][0], r + pads[aw][1])
        conv.attrs["padding"] = "EXPLICIT"
        conv.source_names = pad.source_names + conv.source_names
    graph.replace_all_uses_with(pad.output, x)
    graph.remove(pad)
    return True


@register_pass("fix-same-padding")
class FixSamePadding(Pass):
    """Make SAME padding explicit (uneven where TF is) and merge zero Pad ops into convolutions."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op in ("Conv", "Pool"):
                changed |= _resolve(node)
        for node in graph.nodes:
            if node.op == "Pad":
                changed |= _merge_pad(graph, node)
        return changed
