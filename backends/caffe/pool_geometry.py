"""How a TF/IR pooling window grid maps onto Caffe's Pooling layer, one spatial axis at a time.

IR ``Pool`` on an axis of size ``H`` with kernel ``k``, stride ``s`` and pads ``(b, e)`` (TF SAME:
``b = pad//2``, ``e = pad − b``) has ``O = floor((H + b + e − k)/s) + 1`` windows; window ``i`` covers
``[i·s − b, i·s − b + k)`` clipped to ``[0, H)``. MAX takes the maximum of the clipped window (TF pads
with −∞), AVG divides the clipped sum by the number of valid cells.

Caffe's Pooling pads both sides by ``p`` (``p < k``), makes
``C = ceil((H + 2p − k)/s) + 1`` windows, less one when some pad is non-zero and the last window would
start at or past ``H + p``; window ``j`` covers ``[j·s − p, j·s − p + k)`` clipped to ``[0, H)``. MAX never
reads padded cells. AVE divides by ``min(j·s − p + k, H + p) − (j·s − p)``: the window clipped to the
*padded* input, not to the valid cells.

With ``p = b + m·s`` Caffe's window ``j`` is TF's window ``j − m``, so the TF grid is Caffe's windows
``m … m + O − 1``: the ``m`` first and the surplus last ones are sliced off (Slice layers). For MAX that is
all. For AVE the kept windows' sums are TF's; their divisors differ wherever a window starts before 0 or
runs past ``H`` into Caffe's padding. There ``avg_tf = avg_caffe · (caffe_divisor / valid_count)``, a
per-position factor that separates into rows × columns: a ``Scale`` layer with a constant (O_h, O_w)
blob corrects it. That costs one extra float32 rounding (relative error ≤ 2⁻²³ more); where every
divisor already agrees (no begin pad, e.g. TF SAME with its only extra cell at the end) no Scale is written.
An axis with a single window covering all of it (the only case where ``k > H + 2b``) is pooled with kernel
``H`` and no pad instead: the same cells and TF's divisor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def caffe_pool_count(size: int, k: int, s: int, p: int, any_pad: bool) -> int:
    """Caffe's number of pooling windows (``any_pad``: a pad on either axis is non-zero)."""
    out = -(-(size + 2 * p - k) // s) + 1
    if any_pad and (out - 1) * s >= size + p:
        out -= 1  # Caffe drops a last window that starts inside the padding
    return out


@dataclass(frozen=True)
class AxisPlan:
    """Caffe pad on this axis, windows to drop before and after TF's grid, and the AVE divisor factor per
    kept window (``caffe_divisor / valid_count``; all ones where Caffe already divides like TF)."""

    pad: int
    drop_front: int
    drop_back: int
    factor: np.ndarray
    kernel: int


def tf_pool_count(size: int, k: int, s: int, b: int, e: int) -> int:
    return (size + b + e - k) // s + 1


def plan_axis(size: int, k: int, s: int, b: int, e: int, any_pad: bool) -> AxisPlan | None:
    """The smallest Caffe pad ``p = b + m·s < k`` (or ``p = 0``) whose windows contain TF's; None if none does.

    ``any_pad``: count windows as if the other axis were padded (Caffe's drop rule looks at both axes,
    OpenCV's at this one only: emit_pooling splits the pool where the two differ).
    """
    out = tf_pool_count(size, k, s, b, e)
    if out == 1 and k - b >= size:
        # one window holding the whole axis (only then can k exceed size + 2b): pool the axis with kernel = size,
        # no pad. Same cells, and AVE divides by size, TF's valid count. (OpenCV refuses kernels larger than
        # the padded input, which Caffe accepts.)
        return AxisPlan(0, 0, 0, np.ones(1), size)
    m = 0
    while True:
        p = b + m * s
        if p > 0 and p >= k:
            return None  # Caffe requires pad < kernel
        count = caffe_pool_count(size, k, s, p, any_pad or p > 0)
        if count >= out + m:
            starts = np.arange(m, m + out) * s - p
            caffe_div = np.minimum(starts + k, size + p) - starts
            valid = np.minimum(starts + k, size) - np.maximum(starts, 0)
            return AxisPlan(p, m, count - out - m, caffe_div / valid, k)
        m += 1
