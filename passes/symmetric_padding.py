"""symmetric-padding: express uneven convolution pads with symmetric ones, exactly, without crops.

Caffe pads both sides of an axis equally. For pads ``(begin, end)`` with ``begin < end`` the kernel
grows by ``end − begin`` zero taps at its start and the pad becomes ``end`` on both sides. Window
``i`` then starts at ``i·s − end``; its first ``end − begin`` taps are zero, so it reads
``i·s − begin … i·s − begin + k − 1`` exactly as before, and Caffe's output size
``floor((in + 2·end − (k + end − begin))/s) + 1 = floor((in + begin + end − k)/s) + 1`` is unchanged.
``begin > end`` appends the zero taps at the end instead. A dilated kernel is first written
undilated (zeros between taps), which keeps the trick exact for every dilation. Targets that pad
each side natively keep their pads as they are: depthwise convolutions in the ``kernels`` flavor
(DepthwiseConvolution), every convolution in the ``opencv`` flavor (four-value ``pad``).
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import BackendError
from transpiler.ir.core import Graph, Node
from transpiler.pass_manager import Pass, PassContext, register_pass


def _undilate(w: np.ndarray, dh: int, dw: int) -> np.ndarray:
    o, i, kh, kw = w.shape
    out = np.zeros((o, i, dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _symmetrize(graph: Graph, conv: Node) -> bool:
    t, b, left, r = conv.attrs["pads"]
    if t == b and left == r:
        return False
    if conv.attrs["kernel_layout"] != "OIHW":
        raise BackendError(f"symmetric-padding runs after to-nchw ({conv.describe()})")
    w = conv.inputs[1].const
    if w is None:
        raise BackendError(f"{conv.describe()}: uneven padding needs constant weights")
    dh, dw = conv.attrs.get("dilations", (1, 1))
    if (dh, dw) != (1, 1):
        w = _undilate(w, dh, dw)
        conv.attrs["dilations"] = (1, 1)
    # begin < end: zero taps in front of the kernel; begin > end: behind it.
    front_h, back_h = max(b - t, 0), max(t - b, 0)
    front_w, back_w = max(r - left, 0), max(left - r, 0)
    w = np.pad(w, ((0, 0), (0, 0), (front_h, back_h), (front_w, back_w)))
    graph.set_input(conv, 1, graph.constant(conv.name + "/weights_sym", w))
    conv.attrs["pads"] = (max(t, b), max(t, b), max(left, r), max(left, r))
    return True


def _is_depthwise(conv: Node) -> bool:
    w = conv.inputs[1].shape
    return int(conv.attrs.get("group", 1)) > 1 and w is not None and w[1] == 1


@register_pass("symmetric-padding")
class SymmetricPadding(Pass):
    """Turn uneven conv pads into symmetric pads by enlarging the kernel with zero taps."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        native = ctx.options.get("uneven_pads", "none")
        for node in graph.nodes:
            if node.op == "Conv" and (native == "all" or (native == "depthwise" and _is_depthwise(node))):
                continue  # the target pads each side on its own
            if node.op == "Conv" and node.attrs.get("padding") == "EXPLICIT":
                changed |= _symmetrize(graph, node)
            # Pool: uneven pads are the Caffe emitter's job (backends/caffe/pool_geometry.py)
        return changed
