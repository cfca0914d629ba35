"""trim-dead-taps: drop kernel rows/columns that only ever read padding.

A kernel row ``r`` of a convolution with stride ``s``, dilation ``d`` and top pad ``t`` reads input
rows ``i·s − t + r·d`` for ``i = 0 … out−1``. When all of them fall outside ``[0, in)`` the row
multiplies zeros only: removing it (and ``d`` from the pad on its side) changes no output value,
and the output size ``floor((in + t + b − d·(k−1) − 1)/s) + 1`` is unchanged. The typical case is a
3×3 convolution with pad 1 on a 1×1 map (SSD's last box predictor), which becomes a 1×1
convolution; OpenCV's depthwise kernel also computes that case wrongly, so this pass is needed for
exactness there, not only for speed.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import spatial_axes
from transpiler.pass_manager import Pass, PassContext, register_pass


def _live_range(size: int, out: int, k: int, s: int, d: int, pad_begin: int) -> tuple[int, int]:
    """First and one-past-last kernel taps that read at least one real input element."""
    live = [r for r in range(k) if any(0 <= i * s - pad_begin + r * d < size for i in range(out))]
    if not live:
        return 0, k  # nothing reads the input at all: leave it alone
    return live[0], live[-1] + 1


def _trim(graph: Graph, conv: Node) -> bool:
    w = conv.inputs[1].const
    x, y = conv.inputs[0].shape, conv.output.shape
    if w is None or x is None or y is None or conv.attrs.get("padding") != "EXPLICIT":
        return False
    if conv.attrs["kernel_layout"] != "OIHW":
        return False  # runs after to-nchw
    ah, aw = spatial_axes(conv.inputs[0].layout)
    t, b, left, r = conv.attrs["pads"]
    (sh, sw), (dh, dw) = conv.attrs["strides"], conv.attrs.get("dilations", (1, 1))
    kh, kw = w.shape[2], w.shape[3]
    h0, h1 = _live_range(int(x[ah]), int(y[ah]), kh, sh, dh, t)  # type: ignore[arg-type]
    w0, w1 = _live_range(int(x[aw]), int(y[aw]), kw, sw, dw, left)  # type: ignore[arg-type]
    if (h0, h1, w0, w1) == (0, kh, 0, kw):
        return False
    pads = (t - h0 * dh, b - (kh - h1) * dh, left - w0 * dw, r - (kw - w1) * dw)
    if min(pads) < 0:
        return False
    trimmed = np.ascontiguousarray(w[:, :, h0:h1, w0:w1])
    graph.set_input(conv, 1, graph.constant(conv.name + "/weights_trimmed", trimmed))
    conv.attrs["pads"] = pads
    return True


@register_pass("trim-dead-taps")
class TrimDeadTaps(Pass):
    """Remove convolution taps that read only padding (e.g. 3x3 pad 1 on a 1x1 map)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op == "Conv":
                changed |= _trim(graph, node)
        return changed
