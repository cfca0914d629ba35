"""NumPy reference implementations of the custom Caffe layers (ReLU6, DepthwiseConvolution).

These are the trusted, readable versions of what the C++/CUDA kernels compute. The tests check the
kernels against them and check them against TensorFlow; the `kernels` backend flavor can run a
converted model end to end on the CPU with them. Everything is NCHW, as in Caffe. Results keep the
floating dtype of the inputs (pass float64 for a high-precision reference).

ReLU6
    y = min(max(x, 0), 6)
    dL/dx = dL/dy · [0 < x < 6]         (also valid with y in place of x, so in-place is fine)

DepthwiseConvolution, channel multiplier M, input x: N×C×H×W, weight w: (C·M)×1×KH×KW (Caffe's
layout for a group-C convolution), bias b: C·M, four independent pads (top, bottom, left, right):
    OH = ⌊(H + pt + pb − (DH·(KH−1) + 1)) / SH⌋ + 1,   OW likewise with W, pl, pr, DW, KW, SW
    y[n, o, i, j] = b[o] + Σ_{p<KH, q<KW} w[o, 0, p, q] · x̃[n, ⌊o/M⌋, i·SH − pt + p·DH, j·SW − pl + q·DW]
where x̃ reads zero outside the image. Output channel o = c·M + m reads input channel c. Gradients:
    dL/db[o]          = Σ_{n,i,j} dy[n, o, i, j]
    dL/dw[o, 0, p, q] = Σ_{n,i,j} dy[n, o, i, j] · x̃[n, ⌊o/M⌋, i·SH − pt + p·DH, j·SW − pl + q·DW]
    dL/dx[n, c, u, v] = Σ dy[n, c·M+m, i, j] · w[c·M+m, 0, p, q]
                        over m, p, q, i, j with i·SH − pt + p·DH = u and j·SW − pl + q·DW = v

TensorFlow's depthwise filter HWCM maps to this layout as w[c·M + m, 0, p, q] = f[p, q, c, m], and
TF's SAME padding is `tf_same_pads` on each axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "depthwise_conv2d_nchw",
    "depthwise_conv2d_nchw_backward",
    "depthwise_output_hw",
    "max_rel_error",
    "relu6",
    "relu6_backward",
    "tf_same_pads",
]

Array = NDArray[np.floating]


def max_rel_error(actual: NDArray[np.generic], reference: NDArray[np.generic]) -> float:
    """max|actual − reference| / max|reference| (0 when both are all zero), computed in float64."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {r.shape}")
    if r.size == 0:
        return 0.0
    err = float(np.max(np.abs(a - r)))
    scale = float(np.max(np.abs(r)))
    if scale == 0.0:
        return 0.0 if err == 0.0 else float("inf")
    return err / scale


def relu6(x: Array) -> Array:
    """y = min(max(x, 0), 6), elementwise (NaN propagates)."""
    x = np.asarray(x)
    return np.minimum(np.maximum(x, 0), 6).astype(x.dtype, copy=False)


def relu6_backward(x: Array, dy: Array) -> Array:
    """dL/dx = dy where 0 < x < 6, else 0. `x` may be the layer's input or its output."""
    x = np.asarray(x)
    dy = np.asarray(dy)
    return np.where((x > 0) & (x < 6), dy, np.zeros_like(dy))


def tf_same_pads(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding on one axis: out = ⌈size/stride⌉, total = max((out−1)·s + d·(k−1) + 1 − size, 0),
    returned as (begin, end) = (total // 2, total − total // 2)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def depthwise_output_hw(
    height: int,
    width: int,
    kernel: tuple[int, int],
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
) -> tuple[int, int]:
    """(OH, OW) of the depthwise convolution; raises ValueError when the kernel does not fit."""
    kh, kw = kernel
    sh, sw = stride
    pt, pb, pl, pr = pads
    dh, dw = dilation
    if min(height, width, kh, kw, sh, sw, dh, dw) <= 0 or min(pt, pb, pl, pr) < 0:
        raise ValueError(f"invalid depthwise geometry: {height}x{width}, k={kernel}, s={stride}, "
                         f"pads={pads}, d={dilation}")
    span_h = height + pt + pb - (dh * (kh - 1) + 1)
    span_w = width + pl + pr - (dw * (kw - 1) + 1)
    if span_h < 0 or span_w < 0:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) larger than padded input "
                         f"{height + pt + pb}x{width + pl + pr}")
    return span_h // sh + 1, span_w // sw + 1


def _check(x: Array, w: Array, multiplier: int | None) -> tuple[int, int]:
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"expected x N×C×H×W and w (C·M)×1×KH×KW, got {x.shape} and {w.shape}")
    channels = x.shape[1]
    if w.shape[0] % channels != 0:
        raise ValueError(f"weight has {w.shape[0]} output channels, not a multiple of C={channels}")
    m = w.shape[0] // channels
    if multiplier is not None and multiplier != m:
        raise ValueError(f"multiplier={multiplier} but weight {w.shape} and C={channels} imply {m}")
    return channels, m


def _tap_slices(
    p: int, q: int, oh: int, ow: int, stride: Sequence[int], dilation: Sequence[int]
) -> tuple[slice, slice]:
    """Rows/columns of the padded input read by tap (p, q) for all outputs."""
    sh, sw = stride
    dh, dw = dilation
    r0, c0 = p * dh, q * dw
    return slice(r0, r0 + sh * (oh - 1) + 1, sh), slice(c0, c0 + sw * (ow - 1) + 1, sw)


def depthwise_conv2d_nchw(
    x: Array,
    w: Array,
    b: Array | None = None,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    multiplier: int | None = None,
) -> Array:
    """Depthwise convolution, NCHW; w is (C·M)×1×KH×KW; pads = (top, bottom, left, right)."""
    x = np.asarray(x)
    w = np.asarray(w)
    _, m = _check(x, w, multiplier)
    n, _c, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = depthwise_output_hw(h, wd, (kh, kw), stride, pads, dilation)
    pt, pb, pl, pr = pads
    dtype = np.result_type(x, w)
    xp = np.pad(x.astype(dtype, copy=False), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = np.zeros((n, w.shape[0], oh, ow), dtype=dtype)
    for p in range(kh):
        for q in range(kw):
            rs, cs = _tap_slices(p, q, oh, ow, stride, dilation)
            patch = np.repeat(xp[:, :, rs, cs], m, axis=1)  # N×(C·M)×OH×OW
            y += patch * w[None, :, 0, p, q, None, None]
    if b is not None:
        y += np.asarray(b, dtype=dtype)[None, :, None, None]
    return y


def depthwise_conv2d_nchw_backward(
    dy: Array,
    x: Array,
    w: Array,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    multiplier: int | None = None,
) -> tuple[Array, Array, Array]:
    """Gradients (dL/dx, dL/dw, dL/db) of `depthwise_conv2d_nchw` given dL/dy."""
    x = np.asarray(x)
    w = np.asarray(w)
    dy = np.asarray(dy)
    c, m = _check(x, w, multiplier)
    n, _c, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    oh, ow = depthwise_output_hw(h, wd, (kh, kw), stride, pads, dilation)
    if dy.shape != (n, c * m, oh, ow):
        raise ValueError(f"dy has shape {dy.shape}, expected {(n, c * m, oh, ow)}")
    pt, pb, pl, pr = pads
    dtype = np.result_type(x, w, dy)
    xp = np.pad(x.astype(dtype, copy=False), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape, dtype=dtype)
    for p in range(kh):
        for q in range(kw):
            rs, cs = _tap_slices(p, q, oh, ow, stride, dilation)
            patch = np.repeat(xp[:, :, rs, cs], m, axis=1)
            dw[:, 0, p, q] = np.einsum("nohw,nohw->o", dy, patch)
            contrib = dy * w[None, :, 0, p, q, None, None]
            dxp[:, :, rs, cs] += contrib.reshape(n, c, m, oh, ow).sum(axis=2)
    dx = dxp[:, :, pt : pt + h, pl : pl + wd]
    db = dy.sum(axis=(0, 2, 3))
    return np.ascontiguousarray(dx), dw, db
