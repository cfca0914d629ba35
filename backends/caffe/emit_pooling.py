"""Caffe layers for the IR's Pool: TF's window grid (uneven SAME pads, VALID's round-down) inside Caffe's.

The geometry is pool_geometry.py: per axis a symmetric Caffe pad, the windows to slice off before and
after TF's, and for AVE the per-position divisor correction. Written as:

``Pooling`` → ``Slice`` on H and/or W (only the kept middle top is used) → ``Scale`` (AVE whose divisors
differ from TF's valid-cell counts, blob (O_h, O_w)) or an identity ``Power`` (when the last Slice keeps its
second top, which OpenCV cannot fetch by layer name).

Caffe drops a last window that starts in the padding when *either* axis is padded; OpenCV 4.x decides per
axis. Where that makes their window counts differ (one axis padded, the other not, a stride longer than the
kernel), the pool is written as two separable Poolings, one per axis, so each sees only its own pad:
max over a rectangle is the max of row maxima, and an average over a clipped rectangle is the average of
row averages (both divisors are products of per-axis counts), within one more float32 rounding.
"""

from __future__ import annotations

import numpy as np

from transpiler.backends.caffe.emitter import CaffeEmitter, caffe_op, set_blob
from transpiler.backends.caffe.pool_geometry import AxisPlan, caffe_pool_count, plan_axis
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import BackendError
from transpiler.ir.core import Node


def _plans(node: Node) -> tuple[AxisPlan, AxisPlan, bool]:
    """Both axes' plans, each made as if only its own pad counted (OpenCV's rule), and whether Caffe's
    both-axes rule would count differently (then the pool is split per axis)."""
    t, b, left, r = node.attrs.get("pads", (0, 0, 0, 0))
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["strides"]
    x = node.inputs[0].static_shape
    ph, pw = plan_axis(x[2], kh, sh, t, b, False), plan_axis(x[3], kw, sw, left, r, False)
    if ph is None or pw is None:
        raise BackendError(f"{node.describe()}: no Caffe pooling window grid contains TF's for pads "
                           f"{node.attrs.get('pads')} (kernel {kh}x{kw}, stride {sh}x{sw}, input {x[2]}x{x[3]}): "
                           "Caffe needs pad < kernel")
    split = False
    for plan, other, size, s in ((ph, pw, x[2], sh), (pw, ph, x[3], sw)):
        if plan.pad == 0 and other.pad > 0:
            split |= caffe_pool_count(size, plan.kernel, s, 0, True) != caffe_pool_count(size, plan.kernel, s, 0, False)
    return ph, pw, split


def _pooling(e: CaffeEmitter, name: str, bottom: str, mode: str, kernel: tuple[int, int], stride: tuple[int, int],
             pad: tuple[int, int]) -> str:
    layer = e.layer(name, "Pooling", [bottom])
    p = layer.pooling_param
    p.pool = cp.PoolingParameter.MAX if mode == "max" else cp.PoolingParameter.AVE
    p.kernel_h, p.kernel_w = kernel
    p.stride_h, p.stride_w = stride
    p.pad_h, p.pad_w = pad
    return name


@caffe_op("Pool")
def _pool(e: CaffeEmitter, node: Node) -> str:
    mode = node.attrs["mode"]
    if node.attrs.get("global_pool"):
        layer = e.layer(node.name, "Pooling", [e.blob(node.inputs[0])])
        layer.pooling_param.pool = cp.PoolingParameter.MAX if mode == "max" else cp.PoolingParameter.AVE
        layer.pooling_param.global_pooling = True
        return node.name
    ph, pw, split = _plans(node)
    sh, sw = node.attrs["strides"]
    fix = np.outer(ph.factor, pw.factor)
    needs_fix = mode == "avg" and not np.all(fix == 1.0)
    # slices that drop windows in front first: their kept blob is a second top, which OpenCV cannot fetch by
    # layer name, so another layer must follow them (the next slice, the Scale, or an identity Power)
    steps = sorted((a for a, plan in ((2, ph), (3, pw)) if plan.drop_front or plan.drop_back),
                   key=lambda a: -(ph if a == 2 else pw).drop_front)
    identity = bool(steps) and (ph if steps[-1] == 2 else pw).drop_front > 0 and not needs_fix
    name = node.name if not steps and not needs_fix else f"{node.name}/pool"
    x = e.blob(node.inputs[0])
    if split:
        rows = _pooling(e, f"{node.name}/rows", x, mode, (ph.kernel, 1), (sh, 1), (ph.pad, 0))
        top = _pooling(e, name, rows, mode, (1, pw.kernel), (1, sw), (0, pw.pad))
    else:
        top = _pooling(e, name, x, mode, (ph.kernel, pw.kernel), (sh, sw), (ph.pad, pw.pad))
    y = node.output.static_shape
    for k, axis in enumerate(steps):  # crop Caffe's extra windows: keep the middle part of a Slice
        plan = ph if axis == 2 else pw
        last = k == len(steps) - 1 and not needs_fix and not identity
        kept = f"{node.name}/crop{axis}" if not last else node.name
        points = [plan.drop_front] if plan.drop_front else []
        points += [plan.drop_front + int(y[axis])] if plan.drop_back else []
        tops = ([f"{kept}/front"] if plan.drop_front else []) + [kept] + ([f"{kept}/back"] if plan.drop_back else [])
        sl = e.layer(kept, "Slice", [top], tops[0])
        sl.top.extend(tops[1:])
        sl.slice_param.axis = axis
        sl.slice_param.slice_point.extend(points)
        e.result.layer_of_blob[kept] = kept
        top = kept
    if needs_fix:  # avg_tf = avg_caffe · caffe_divisor / valid_count, per output position
        scale = e.layer(node.name, "Scale", [top])
        scale.scale_param.axis = 2
        scale.scale_param.num_axes = 2
        set_blob(scale.blobs.add(), fix)
    elif identity:
        e.layer(node.name, "Power", [top])  # y = (0 + 1·x)^1 = x: names the blob for OpenCV
    return node.name
