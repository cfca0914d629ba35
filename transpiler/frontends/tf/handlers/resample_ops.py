"""Handlers for TF ops that change a feature map's spatial size: transposed convolution, nearest-neighbour
upsampling, and the SpaceToBatchND/BatchToSpaceND pair TF wraps around a dilated convolution.

- ``Conv2DBackpropInput(input_sizes, filter, x)`` (``conv2d_transpose``) is the adjoint of the convolution
  that maps ``input_sizes`` to ``x``: ``y_full = deconv(x)`` of size ``(in−1)·s + k`` per axis, then
  ``y = y_full[pad_begin : pad_begin + out]`` with the forward convolution's pads (SAME: TF's
  ``same_pads(out, k, s, 1)``; VALID: 0). Where ``out`` is larger than ``y_full − pad_begin`` (VALID whose
  forward convolution dropped trailing rows), those rows get no contribution in TF (zero): the kernel is
  extended with zero taps at its end, which lengthens ``y_full`` by the same count and adds exact zeros.
  The IR ``Deconv`` keeps weights as (C_in, C_out, kh, kw) = ``filter.transpose(3, 2, 0, 1)``.
- ``ResizeNearestNeighbor`` by whole factors ``f = out/in``: without ``align_corners`` TF reads
  ``src = floor(dst/f)`` (legacy) or ``floor((dst + 0.5)/f)`` (half-pixel centers); both are ``dst // f``
  for integer ``f``, so the result is each pixel repeated f×f times (IR ``Upsample``). ``align_corners``
  reads ``round(dst·(in−1)/(out−1))``, which is not a repetition: refused unless in = 1.
- ``SpaceToBatchND``/``BatchToSpaceND`` become IR ``SpaceToBatch``/``BatchToSpace``; the
  ``fold-space-to-batch`` pass turns the pair around a convolution into one dilated convolution.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.handlers.array_ops import refuse
from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.ir.core import Value
from transpiler.ir.ops import same_pads


def _nhwc(ctx: ImportContext, node: Any) -> None:
    fmt = ctx.attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise UnsupportedModelError(f"{ctx.where(node)}: data_format {fmt} is not supported (only NHWC)")


def _static_map(ctx: ImportContext, node: Any, v: Value) -> tuple[int, int, int, int]:
    if v.shape is None or len(v.shape) != 4 or None in v.shape:
        raise UnsupportedModelError(f"{ctx.where(node)}: needs a 4-D NHWC input of static shape, got {v.shape}")
    n, h, w, c = (int(d) for d in v.shape)  # type: ignore[arg-type]
    return n, h, w, c


@tf_op("Conv2DBackpropInput")
def conv2d_backprop_input(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc(ctx, node)
    sizes = [int(s) for s in ctx.static_input(node, 0, "input_sizes").reshape(-1)]
    filt = ctx.static_input(node, 1, "filter")
    x = ctx.input(node, 2)
    _, h, w, c = _static_map(ctx, node, x)
    strides = [int(s) for s in ctx.attr(node, "strides", [1, 1, 1, 1])]
    dilations = [int(d) for d in ctx.attr(node, "dilations", [1, 1, 1, 1])]
    padding = ctx.attr(node, "padding", "VALID")
    if len(sizes) != 4 or filt.ndim != 4:
        raise UnsupportedModelError(f"{ctx.where(node)}: input_sizes {sizes} / filter {list(filt.shape)} are not "
                                    "those of a 2-D transposed convolution")
    if dilations[1:3] != [1, 1]:
        return [refuse(ctx, node, [x], tuple(sizes), f"dilated transposed convolution (dilations "
                       f"{dilations[1:3]}) is not supported")]
    if padding not in ("SAME", "VALID"):
        return [refuse(ctx, node, [x], tuple(sizes), f"padding {padding} is not supported (SAME, VALID)")]
    kh, kw, cout, cin = filt.shape
    if cin != c or sizes[3] != cout:
        raise UnsupportedModelError(f"{ctx.where(node)}: filter {list(filt.shape)} does not fit input channels {c} "
                                    f"and output channels {sizes[3]}")
    pads: list[int] = []
    grow: list[int] = []
    for size, k, s, i in ((sizes[1], kh, strides[1], h), (sizes[2], kw, strides[2], w)):
        if (-(-size // s) if padding == "SAME" else (size - k) // s + 1) != i:  # the forward conv's output size
            raise UnsupportedModelError(f"{ctx.where(node)}: output size {size} does not convolve back to input "
                                        f"size {i} (kernel {k}, stride {s}, {padding})")
        begin = same_pads(size, k, s, 1)[0] if padding == "SAME" else 0
        end = (i - 1) * s + k - begin - size  # what the full result has past the wanted rows
        grow.append(max(-end, 0))  # zero taps appended to the kernel supply missing (zero) trailing rows
        pads += [begin, max(end, 0)]
    weights = filt.transpose(3, 2, 0, 1)
    if any(grow):
        weights = np.pad(weights, ((0, 0), (0, 0), (0, grow[0]), (0, grow[1])))
    wv = ctx.constant(node, np.ascontiguousarray(weights), "/weights")
    attrs = {"strides": (strides[1], strides[2]), "pads": tuple(pads)}
    return ctx.add("Deconv", node, [x, wv], attrs).outputs


@tf_op("ResizeNearestNeighbor")
def resize_nearest(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    n, h, w, c = _static_map(ctx, node, x)
    oh, ow = (int(s) for s in ctx.static_input(node, 1, "size").reshape(-1))
    if oh % h or ow % w:
        return [refuse(ctx, node, [x], (n, oh, ow, c), f"resizing {h}x{w} to {oh}x{ow} is not by whole factors; "
                       "no exact Caffe form")]
    fh, fw = oh // h, ow // w
    if ctx.attr(node, "align_corners", False) and ((fh > 1 and h > 1) or (fw > 1 and w > 1)):
        return [refuse(ctx, node, [x], (n, oh, ow, c), "align_corners=True nearest resizing does not repeat "
                       "pixels evenly; no exact Caffe form")]
    if (fh, fw) == (1, 1):
        return ctx.add("Identity", node, [x]).outputs
    return ctx.add("Upsample", node, [x], {"factors": (fh, fw)}).outputs


def _block_pairs(ctx: ImportContext, node: Any, what: str) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]]:
    block = [int(b) for b in ctx.static_input(node, 1, "block_shape").reshape(-1)]
    pairs = ctx.static_input(node, 2, what).reshape(-1, 2)
    if len(block) != 2 or pairs.shape[0] != 2:
        raise UnsupportedModelError(f"{ctx.where(node)}: only 2-D (spatial) blocks are supported, got {block}")
    return (block[0], block[1]), tuple((int(a), int(b)) for a, b in pairs)


@tf_op("SpaceToBatchND")
def space_to_batch(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    _static_map(ctx, node, x)
    block, pads = _block_pairs(ctx, node, "paddings")
    return ctx.add("SpaceToBatch", node, [x], {"block": block, "pads": pads}).outputs


@tf_op("BatchToSpaceND")
def batch_to_space(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    _static_map(ctx, node, x)
    block, crops = _block_pairs(ctx, node, "crops")
    return ctx.add("BatchToSpace", node, [x], {"block": block, "crops": crops}).outputs
