"""The NumPy reference against independent implementations (TensorFlow) and finite differences.

Depthwise forward and all gradients are compared with `tf.nn.conv2d` (explicit four-sided padding)
on a block-diagonal dense filter, dilated explicitly, since TF's CPU kernels reject dilation in
DepthwiseConv2dNative and in the Conv2D gradients; plus `tf.nn.depthwise_conv2d` itself where it
applies (no dilation, equal strides). TF is imported inside the tests only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from transpiler.kernels import reference as ref

# (N, C, M, H, W, KH, KW, stride, pads(top,bottom,left,right), dilation)
TF_CASES = [
    (2, 3, 1, 8, 8, 3, 3, (2, 2), (0, 1, 0, 1), (1, 1)),
    (1, 4, 2, 7, 9, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 2, 3, 6, 7, 2, 3, (2, 1), (1, 0, 2, 0), (1, 1)),
    (1, 3, 1, 9, 10, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2)),
    (2, 2, 2, 11, 9, 3, 2, (2, 3), (1, 2, 0, 1), (2, 3)),
    (1, 5, 1, 1, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 3, 2, 1, 1, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1)),
    (3, 2, 1, 10, 10, 5, 5, (2, 2), (1, 2, 1, 2), (1, 1)),
    (1, 8, 1, 12, 5, 3, 1, (3, 1), (0, 2, 0, 0), (1, 1)),
    (2, 1, 4, 5, 5, 3, 3, (1, 2), (2, 0, 0, 2), (2, 1)),
]


@pytest.fixture(scope="module")
def tf() -> Any:
    import tensorflow

    return tensorflow


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


def _case(c: tuple[Any, ...], seed: int) -> Arrays:
    n, ch, m, h, w, kh, kw, stride, pads, dil = c
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, ch, h, w))
    wt = rng.standard_normal((ch * m, 1, kh, kw))
    b = rng.standard_normal(ch * m)
    oh, ow = ref.depthwise_output_hw(h, w, (kh, kw), stride, pads, dil)
    dy = rng.standard_normal((n, ch * m, oh, ow))
    return x, wt, b, dy, dict(stride=stride, pads=pads, dilation=dil)


def _dense_filter(w: np.ndarray, channels: int) -> np.ndarray:
    """(C·M)×1×KH×KW depthwise weights as a KH×KW×C×(C·M) block-diagonal dense TF filter."""
    cm, _, kh, kw = w.shape
    m = cm // channels
    dense = np.zeros((kh, kw, channels, cm))
    for o in range(cm):
        dense[:, :, o // m, o] = w[o, 0]
    return dense


@pytest.mark.parametrize("c", TF_CASES)
def test_reference_forward_and_gradients_match_tensorflow(tf: Any, c: tuple[Any, ...]) -> None:
    x, w, b, dy, g = _case(c, seed=sum(c[:7]))
    ch = x.shape[1]
    (pt, pb, pl, pr), (sh, sw), (dh, dw) = g["pads"], g["stride"], g["dilation"]
    x_t = tf.Variable(np.transpose(x, (0, 2, 3, 1)))
    f_t = tf.Variable(_dense_filter(w, ch))
    b_t = tf.Variable(b)
    kh, kw = w.shape[2:]
    # TF's CPU conv gradients reject dilation > 1, so dilate the filter explicitly (zeros between
    # taps) with 0/1 placement matrices, which keeps the graph differentiable w.r.t. the taps.
    place_h = np.zeros((dh * (kh - 1) + 1, kh))
    place_h[np.arange(kh) * dh, np.arange(kh)] = 1
    place_w = np.zeros((dw * (kw - 1) + 1, kw))
    place_w[np.arange(kw) * dw, np.arange(kw)] = 1
    with tf.GradientTape() as tape:
        f_dilated = tf.einsum("ap,bq,pqcm->abcm", place_h, place_w, f_t)
        y_t = tf.nn.conv2d(x_t, f_dilated, strides=[1, sh, sw, 1],
                           padding=[[0, 0], [pt, pb], [pl, pr], [0, 0]]) + b_t
        loss = tf.reduce_sum(y_t * np.transpose(dy, (0, 2, 3, 1)))
    gx, gf, gb = tape.gradient(loss, [x_t, f_t, b_t])

    y = ref.depthwise_conv2d_nchw(x, w, b, **g)
    np.testing.assert_allclose(y, np.transpose(y_t.numpy(), (0, 3, 1, 2)), rtol=1e-12, atol=1e-12)
    dx, dwt, db = ref.depthwise_conv2d_nchw_backward(dy, x, w, **g)
    np.testing.assert_allclose(dx, np.transpose(gx.numpy(), (0, 3, 1, 2)), rtol=1e-12, atol=1e-12)
    gf_np = gf.numpy()
    m = w.shape[0] // ch
    dw_tf = np.stack([gf_np[:, :, o // m, o] for o in range(w.shape[0])])[:, None]
    np.testing.assert_allclose(dwt, dw_tf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, gb.numpy(), rtol=1e-12, atol=1e-12)

    # TF's own depthwise op (needs equal strides, no dilation); HWCM filter f[p,q,c,m] = w[c·M+m,0,p,q]
    if (dh, dw) == (1, 1) and sh == sw:
        f_hwcm = np.transpose(w[:, 0].reshape(ch, m, *w.shape[2:]), (2, 3, 0, 1))
        y_dw = tf.nn.depthwise_conv2d(np.transpose(x, (0, 2, 3, 1)), f_hwcm, strides=[1, sh, sw, 1],
                                      padding=[[0, 0], [pt, pb], [pl, pr], [0, 0]])
        np.testing.assert_allclose(y - b[None, :, None, None], np.transpose(y_dw.numpy(), (0, 3, 1, 2)),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size,k,s,d", [(8, 3, 2, 1), (7, 3, 2, 1), (1, 3, 2, 1), (19, 3, 1, 1),
                                        (10, 5, 2, 1), (9, 3, 1, 2), (2, 3, 2, 1)])
def test_tf_same_pads(tf: Any, size: int, k: int, s: int, d: int) -> None:
    """Explicit (begin, end) pads reproduce TF's SAME padding exactly."""
    rng = np.random.default_rng(size * 100 + k)
    x = rng.standard_normal((1, size, size, 2))
    f = rng.standard_normal((k, k, 2, 1))
    same = tf.nn.depthwise_conv2d(x, f, strides=[1, s, s, 1], padding="SAME", dilations=[d, d]).numpy()
    b, e = ref.tf_same_pads(size, k, s, d)
    w_nchw = np.transpose(f, (2, 3, 0, 1)).reshape(2, 1, k, k)
    y = ref.depthwise_conv2d_nchw(np.transpose(x, (0, 3, 1, 2)), w_nchw, stride=(s, s), pads=(b, e, b, e),
                                  dilation=(d, d))
    np.testing.assert_allclose(y, np.transpose(same, (0, 3, 1, 2)), rtol=1e-12, atol=1e-12)


def test_relu6_matches_tensorflow(tf: Any) -> None:
    x = np.random.default_rng(0).uniform(-4, 10, size=(3, 4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(ref.relu6(x), tf.nn.relu6(x).numpy())
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.relu6(xv) * 2.0)
    grad = tape.gradient(loss, xv).numpy()
    np.testing.assert_array_equal(ref.relu6_backward(x, np.full_like(x, 2.0)), grad)


@pytest.mark.parametrize("c", [TF_CASES[i] for i in (0, 2, 4, 6, 9)])
def test_reference_gradients_finite_differences(c: tuple[Any, ...]) -> None:
    """Reference backward = central differences of the reference forward (float64)."""
    x, w, b, dy, g = _case(c, seed=99)
    x, w, b = x[:1].copy(), w.copy(), b.copy()
    dy = dy[:1]

    def loss() -> float:
        return float(np.sum(ref.depthwise_conv2d_nchw(x, w, b, **g) * dy))

    def numeric(arr: np.ndarray) -> np.ndarray:
        out = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + 1e-6
            lp = loss()
            arr[idx] = old - 1e-6
            lm = loss()
            arr[idx] = old
            out[idx] = (lp - lm) / 2e-6
        return out

    dx, dwt, db = ref.depthwise_conv2d_nchw_backward(dy, x, w, **g)
    for got, arr in ((dx, x), (dwt, w), (db, b)):
        assert ref.max_rel_error(got, numeric(arr)) < 1e-7


def test_reference_validates_shapes() -> None:
    with pytest.raises(ValueError):
        ref.depthwise_conv2d_nchw(np.zeros((1, 2, 4, 4)), np.zeros((3, 1, 3, 3)))
    with pytest.raises(ValueError):
        ref.depthwise_conv2d_nchw(np.zeros((1, 2, 4, 4)), np.zeros((4, 1, 3, 3)), multiplier=3)
    with pytest.raises(ValueError):
        ref.depthwise_conv2d_nchw(np.zeros((1, 2, 2, 2)), np.zeros((2, 1, 3, 3)))
    assert ref.depthwise_conv2d_nchw(np.zeros((1, 2, 4, 4)), np.zeros((4, 1, 3, 3))).shape == (1, 4, 2, 2)
