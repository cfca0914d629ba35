"""A small float64 NumPy interpreter for Caffe nets (test helper; runs what OpenCV cannot, e.g. kernels/ layers).

Layers run in prototxt order; each writes its tops into one blob table (in-place layers overwrite).
Weights come from the caffemodel's ``layer.blobs``, matched by layer name. Caffe semantics implemented:

- Convolution: output ⌊(H + 2·pad − (d·(k−1)+1)) / s⌋ + 1; pad/kernel_size/stride/dilation repeated
  (one value or one per axis) or pad_h/pad_w, kernel_h/kernel_w, stride_h/stride_w; ``group``;
  weights (O, C/group, KH, KW), optional bias (O).
- DepthwiseConvolution (kernels/depthwise_conv): four pads, channel multiplier, weights (C·M, 1, KH, KW).
- ReLU (negative_slope), ReLU6, Clip (min, max), Power: (shift + scale·x)^power, Sigmoid, Softmax (axis).
- Eltwise: SUM (per-bottom coeff), PROD, MAX. Scale: factor from a blob or a second bottom, broadcast from
  ``axis`` over its own shape; optional bias (blob) when bias_term.
- Pooling MAX/AVE: output ⌈(H + 2·pad − k) / s⌉ + 1, minus one if the last window starts in the bottom
  pad; MAX ignores the padding; AVE divides by the window clipped to H + pad (so padding counts, the
  overhang beyond it does not); global_pooling = one window over the whole map.
- InnerProduct (axis, transpose), Concat (axis), Flatten (axis, end_axis), Reshape (0 copies the
  input dimension, −1 is inferred; axis/num_axes), Permute (order; unnamed axes keep their order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.ir.ops import conv2d_nchw
from transpiler.kernels.reference import depthwise_conv2d_nchw, relu6

__all__ = ["run_caffe_net"]


def _pair(repeated: list[int], h: int | None, w: int | None, default: int) -> tuple[int, int]:
    """Caffe's 2-d parameter resolution: explicit _h/_w fields win, else one or two repeated values."""
    if h is not None and w is not None:
        return h, w
    if not repeated:
        return default, default
    return (repeated[0], repeated[0]) if len(repeated) == 1 else (repeated[0], repeated[1])


def _opt(msg: object, field: str) -> int | None:
    return int(getattr(msg, field)) if msg.HasField(field) else None  # type: ignore[attr-defined]


def _conv(x: np.ndarray, p: cp.ConvolutionParameter, blobs: list[np.ndarray]) -> np.ndarray:
    pad = _pair(list(p.pad), _opt(p, "pad_h"), _opt(p, "pad_w"), 0)
    kernel = _pair(list(p.kernel_size), _opt(p, "kernel_h"), _opt(p, "kernel_w"), 0)
    stride = _pair(list(p.stride), _opt(p, "stride_h"), _opt(p, "stride_w"), 1)
    dilation = _pair(list(p.dilation), None, None, 1)
    w = blobs[0]
    expected = (p.num_output, x.shape[1] // p.group, *kernel)
    if w.shape != expected:
        raise ValueError(f"Convolution weights {w.shape}, parameters say {expected}")
    y = conv2d_nchw(x, w, stride, dilation, (pad[0], pad[0], pad[1], pad[1]), p.group)
    return y + blobs[1].reshape(1, -1, 1, 1) if p.bias_term else y


def _depthwise(x: np.ndarray, p: cp.DepthwiseConvolutionParameter, blobs: list[np.ndarray]) -> np.ndarray:
    w = blobs[0]
    expected = (p.num_output, 1, p.kernel_h, p.kernel_w)
    if w.shape != expected or p.num_output != x.shape[1] * p.channel_multiplier:
        raise ValueError(f"DepthwiseConvolution weights {w.shape}, input {x.shape}, parameters say {expected} "
                         f"with multiplier {p.channel_multiplier}")
    return depthwise_conv2d_nchw(x, w, blobs[1] if p.bias_term else None, (p.stride_h, p.stride_w),
                                 (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right),
                                 (p.dilation_h, p.dilation_w), p.channel_multiplier)


def _pool(x: np.ndarray, p: cp.PoolingParameter) -> np.ndarray:
    n, c, h, w = x.shape
    if p.global_pooling:
        (kh, kw), (sh, sw), (ph, pw) = (h, w), (1, 1), (0, 0)
    else:
        kh, kw = _pair([p.kernel_size] if p.HasField("kernel_size") else [], _opt(p, "kernel_h"),
                       _opt(p, "kernel_w"), 0)
        sh, sw = _pair([p.stride], _opt(p, "stride_h"), _opt(p, "stride_w"), 1)
        ph, pw = _pair([p.pad], _opt(p, "pad_h"), _opt(p, "pad_w"), 0)

    def out_size(size: int, k: int, s: int, pad: int) -> int:
        o = -(-(size + 2 * pad - k) // s) + 1
        return o - 1 if pad > 0 and (o - 1) * s >= size + pad else o

    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    is_max = p.pool == cp.PoolingParameter.MAX
    if not is_max and p.pool != cp.PoolingParameter.AVE:
        raise NotImplementedError(f"Pooling method {p.pool}")
    extra_h, extra_w = max(0, (oh - 1) * sh + kh - h - ph), max(0, (ow - 1) * sw + kw - w - pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, extra_h), (pw, extra_w)), constant_values=-np.inf if is_max else 0.0)
    y = np.full((n, c, oh, ow), -np.inf if is_max else 0.0)
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            y = np.maximum(y, tap) if is_max else y + tap
    if is_max:
        return y
    count_h = np.minimum(np.arange(oh) * sh - ph + kh, h + ph) - (np.arange(oh) * sh - ph)
    count_w = np.minimum(np.arange(ow) * sw - pw + kw, w + pw) - (np.arange(ow) * sw - pw)
    return y / np.outer(count_h, count_w)


def _reshape(x: np.ndarray, p: cp.ReshapeParameter) -> np.ndarray:
    axis = p.axis if p.axis >= 0 else x.ndim + p.axis + 1
    end = x.ndim if p.num_axes == -1 else axis + p.num_axes
    dims = [x.shape[axis + i] if d == 0 else int(d) for i, d in enumerate(p.shape.dim)]
    return x.reshape(*x.shape[:axis], *dims, *x.shape[end:])


def _scale(bottoms: list[np.ndarray], p: cp.ScaleParameter, blobs: list[np.ndarray]) -> np.ndarray:
    x = bottoms[0]
    factor = bottoms[1] if len(bottoms) > 1 else blobs[0]
    axis = p.axis % x.ndim

    def bcast(v: np.ndarray) -> np.ndarray:
        return v.reshape(v.shape + (1,) * (x.ndim - axis - v.ndim))

    y = x * bcast(factor)
    return y + bcast(blobs[-1]) if p.bias_term else y


def _forward(layer: cp.LayerParameter, xs: list[np.ndarray], blobs: list[np.ndarray]) -> np.ndarray:
    kind, x = layer.type, (xs[0] if xs else np.empty(0))
    if kind == "Convolution":
        return _conv(x, layer.convolution_param, blobs)
    if kind == "DepthwiseConvolution":
        return _depthwise(x, layer.depthwise_conv_param, blobs)
    if kind == "ReLU6":
        return relu6(x)
    if kind == "ReLU":
        return np.where(x > 0, x, x * layer.relu_param.negative_slope)
    if kind == "Clip":
        return np.clip(x, layer.clip_param.min, layer.clip_param.max)
    if kind == "Power":
        pp = layer.power_param
        return np.power(pp.shift + pp.scale * x, pp.power)
    if kind == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "Softmax":
        e = np.exp(x - x.max(axis=layer.softmax_param.axis, keepdims=True))
        return e / e.sum(axis=layer.softmax_param.axis, keepdims=True)
    if kind == "Eltwise":
        ep = layer.eltwise_param
        if ep.operation == cp.EltwiseParameter.SUM:
            coeff = list(ep.coeff) or [1.0] * len(xs)
            return sum((c * b for c, b in zip(coeff, xs, strict=True)), np.zeros_like(x))
        return np.prod(np.stack(xs), axis=0) if ep.operation == cp.EltwiseParameter.PROD else np.max(np.stack(xs), 0)
    if kind == "Scale":
        return _scale(xs, layer.scale_param, blobs)
    if kind == "Pooling":
        return _pool(x, layer.pooling_param)
    if kind == "InnerProduct":
        ip = layer.inner_product_param
        flat = x.reshape(int(np.prod(x.shape[: ip.axis])), -1)
        y = flat @ (blobs[0] if ip.transpose else blobs[0].T)
        y = y + blobs[1] if ip.bias_term else y
        return y.reshape(*x.shape[: ip.axis], -1)
    if kind == "Concat":
        cc = layer.concat_param
        return np.concatenate(xs, axis=cc.axis if cc.HasField("axis") or not cc.HasField("concat_dim")
                              else cc.concat_dim)
    if kind == "Flatten":
        a, e = layer.flatten_param.axis % x.ndim, layer.flatten_param.end_axis % x.ndim
        return x.reshape(*x.shape[:a], -1, *x.shape[e + 1 :])
    if kind == "Reshape":
        return _reshape(x, layer.reshape_param)
    if kind == "Permute":
        order = list(layer.permute_param.order)
        return np.transpose(x, order + [i for i in range(x.ndim) if i not in order])
    raise NotImplementedError(f"caffe_numpy_runner: layer type {kind!r} (layer {layer.name!r})")


def _blob_shape(blob: cp.BlobProto) -> tuple[int, ...]:
    """``shape`` when given, else the legacy 4-d num/channels/height/width."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    return blob.num, blob.channels, blob.height, blob.width


def run_caffe_net(prototxt: Path, caffemodel: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the net on ``feeds`` (Input top name → array, Caffe layout) in float64; every top blob by name."""
    net = text_format.Parse(Path(prototxt).read_text(), cp.NetParameter())
    weights = cp.NetParameter()
    weights.ParseFromString(Path(caffemodel).read_bytes())
    params = {layer.name: [np.asarray(b.data, dtype=np.float64).reshape(_blob_shape(b)) for b in layer.blobs]
              for layer in weights.layer}
    values: dict[str, np.ndarray] = {}
    for layer in net.layer:
        if layer.type == "Input":
            shapes = [tuple(s.dim) for s in layer.input_param.shape]
            for i, top in enumerate(layer.top):
                values[top] = np.asarray(feeds[top], dtype=np.float64)
                if shapes and shapes[min(i, len(shapes) - 1)] != values[top].shape:
                    raise ValueError(f"feed {top!r} has shape {values[top].shape}, Input declares {shapes}")
            continue
        values[layer.top[0]] = _forward(layer, [values[b] for b in layer.bottom], params.get(layer.name, []))
    return values
