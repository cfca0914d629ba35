"""Caffe layers for the IR's structural ops: SliceAxis (Slice), Deconv and Upsample (Deconvolution); a
``Refused`` node (a source op with no exact Caffe form) is reported with its reason by the emitter's sweep.

- ``SliceAxis`` ``x[b:e]`` on one axis: Caffe ``Slice`` layers. OpenCV's ``forward(layer)`` returns a layer's
  *first* top only, and a one-top Slice is refused by OpenCV, so the kept part is always the first top of
  the layer named after the node: ``b > 0`` first cuts ``[0:b) | [b:)`` (layer ``<name>/skip``), then
  ``[b:e) | [e:)``; where ``e`` is the end of the axis, a Reshape to the same shape (no copy in Caffe)
  names the result. Unused tops are allowed in Caffe and OpenCV.
- ``Deconv``: Caffe ``Deconvolution`` computes ``y_full[o, i·s + t − p] += x[c, i]·w[c, o, t]`` with weights
  (C_in, C_out, kh, kw), i.e. the IR's, output ``(in−1)·s + k − 2p``. With ``p = min(begin, end)`` per
  axis, the uneven remainder is cut with Slice as above: exact.
- ``Upsample`` by (fh, fw): a depthwise ``Deconvolution`` (group = C) with kernel = stride = (fh, fw) and
  all-ones weights: output pixel ``(i·fh + a, j·fw + b)`` receives exactly one product ``1·x[i, j]``, so
  the repetition is exact in float32, in every runtime.
"""

from __future__ import annotations

import numpy as np

from transpiler.backends.caffe.emitter import CaffeEmitter, caffe_op, set_blob
from transpiler.errors import BackendError
from transpiler.ir.core import Node


def slice_layers(e: CaffeEmitter, name: str, bottom: str, shape: tuple[int, ...], axis: int, begin: int,
                 end: int) -> str:
    """Blob ``name`` = ``bottom[begin:end]`` on ``axis`` (``bottom`` of ``shape``), top 0 of layer ``name``."""
    dim = shape[axis]
    if begin == 0 and end == dim:
        raise BackendError(f"slice '{name}' keeps the whole axis {axis} (internal: nothing to cut)")
    if begin > 0:
        skip = e.layer(f"{name}/skip", "Slice", [bottom])
        skip.top.append(f"{name}/from")
        skip.slice_param.axis = axis
        skip.slice_param.slice_point.append(begin)
        bottom, end, dim = f"{name}/from", end - begin, dim - begin
        if end == dim:  # nothing to cut at the end: name the tail
            out = tuple(end if i == axis else d for i, d in enumerate(shape))
            e.layer(name, "Reshape", [bottom]).reshape_param.shape.dim.extend(out)
            return name
    layer = e.layer(name, "Slice", [bottom])
    layer.top.append(f"{name}/rest")
    layer.slice_param.axis = axis
    layer.slice_param.slice_point.append(end)
    return name


@caffe_op("Refused")
def _refused(e: CaffeEmitter, node: Node) -> str:
    raise BackendError(f"node '{node.source_names[0] if node.source_names else node.name}' ({node.attrs['tf_op']}): "
                       f"{node.attrs['reason']}")


@caffe_op("SpaceToBatch", "BatchToSpace")
def _space_batch(e: CaffeEmitter, node: Node) -> str:
    raise BackendError(f"{node.describe()}: no Caffe layer moves space into the batch; only the pattern "
                       "SpaceToBatchND → Conv2D/DepthwiseConv2dNative (VALID, stride 1) → BatchToSpaceND (a dilated "
                       "convolution) converts")


@caffe_op("SliceAxis")
def _slice_axis(e: CaffeEmitter, node: Node) -> str:
    x = node.inputs[0]
    rank = len(x.static_shape)
    axis = int(node.attrs["axis"]) % rank
    return slice_layers(e, node.name, e.blob(x), x.static_shape, axis, int(node.attrs["begin"]),
                        int(node.attrs["end"]))


def _deconvolution(e: CaffeEmitter, name: str, bottom: str, w: np.ndarray, strides: tuple[int, int],
                   pads: tuple[int, int], group: int = 1, bias: np.ndarray | None = None) -> None:
    layer = e.layer(name, "Deconvolution", [bottom])
    p = layer.convolution_param
    p.num_output = int(w.shape[1]) * group
    p.kernel_h, p.kernel_w = int(w.shape[2]), int(w.shape[3])
    p.stride_h, p.stride_w = (int(s) for s in strides)
    p.pad_h, p.pad_w = (int(q) for q in pads)
    if group != 1:
        p.group = group
    p.bias_term = bias is not None
    set_blob(layer.blobs.add(), w)
    if bias is not None:
        set_blob(layer.blobs.add(), bias)


@caffe_op("Deconv")
def _deconv(e: CaffeEmitter, node: Node) -> str:
    w = node.inputs[1].const
    bias = node.inputs[2].const if len(node.inputs) > 2 else None
    if w is None or (len(node.inputs) > 2 and bias is None):
        raise BackendError(f"{node.describe()}: transposed-convolution weights must be constant")
    x = node.inputs[0]
    n, _, h, wd = x.static_shape
    t, b, left, r = (int(q) for q in node.attrs["pads"])
    sh, sw = (int(s) for s in node.attrs["strides"])
    ph, pw = min(t, b), min(left, r)
    uneven = (t, left) != (b, r)
    name = f"{node.name}/deconv" if uneven else node.name
    _deconvolution(e, name, e.blob(x), w, (sh, sw), (ph, pw), bias=bias)
    if not uneven:
        return name
    full = (n, int(w.shape[1]), (h - 1) * sh + int(w.shape[2]) - 2 * ph, (wd - 1) * sw + int(w.shape[3]) - 2 * pw)
    _, _, oh, ow = node.output.static_shape
    top, shape = name, full
    if t != b:
        last = left == r
        top = slice_layers(e, node.name if last else f"{node.name}/crop_h", top, shape, 2, t - ph, t - ph + oh)
        shape = (n, full[1], oh, full[3])
    if left != r:
        top = slice_layers(e, node.name, top, shape, 3, left - pw, left - pw + ow)
    return top


@caffe_op("Upsample")
def _upsample(e: CaffeEmitter, node: Node) -> str:
    x = node.inputs[0]
    c = int(x.static_shape[1])
    fh, fw = (int(f) for f in node.attrs["factors"])
    _deconvolution(e, node.name, e.blob(x), np.ones((c, 1, fh, fw), np.float32), (fh, fw), (0, 0), group=c)
    return node.name
