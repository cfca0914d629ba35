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
from transpiler.passes.common import absorb_pad, pads_with, spatial_zero_pad


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
    extra = spatial_zero_pad(graph, pad)
    users = pad.output.users
    if extra is None or any(u.op != "Conv" or u.attrs.get("padding") == "SAME" for u in users):
        return False
    absorb_pad(graph, pad, [pads_with(conv, extra) for conv in users])
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
