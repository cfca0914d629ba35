"""The IR op set: for every op, its attributes, shape/type inference and a numpy reference kernel.

Ops are framework-neutral. Feature-map ops read the layout of their first input (``NHWC`` or
``NCHW``). Attributes (all plain Python values):

- ``Conv(x, w[, b])``: ``strides=(sh,sw)``, ``dilations=(dh,dw)``, ``padding`` ``SAME``/``VALID``/
  ``EXPLICIT``, ``pads=(top,bottom,left,right)`` (used when EXPLICIT), ``group``, ``kernel_layout``
  ``HWIO`` (TF conv), ``HWCM`` (TF depthwise, multiplier M) or ``OIHW`` (Caffe; group conv weights
  are ``(O, I/group, kh, kw)``). Output ``out = floor((in + top + bottom − d·(k−1) − 1)/s) + 1``.
- ``Pool(x)``: ``mode`` max/avg, ``kernel``, ``strides``, ``padding``, ``pads``, ``global_pool``.
- ``BatchNorm(x, scale, offset, mean, var)``: ``epsilon``; ``y = (x−μ)·γ/√(σ²+ε) + β`` on the channel axis.
- ``Affine(x, scale, bias)``: ``y = x·scale + bias`` per channel (``axis``); folded BN, Caffe Scale.
- ``FullyConnected(x, w, b)``: ``y = x·wᵀ + b`` with ``w`` of shape (out, in) (Caffe InnerProduct), ``x``
  flattened from ``axis`` (default 1) on.
- ``MatMul(a, b)``: ``transpose_a``, ``transpose_b``; ``a`` may be a batch of matrices (rank > 2, not
  transposed) times one matrix ``b``.
- Element-wise binary with numpy broadcasting: ``Add Sub Mul Div Maximum Minimum``.
- Unary, element-wise (``layout_free``): ``Relu Relu6 Sigmoid Tanh Exp Log Sqrt Rsqrt Neg Square Abs
  Reciprocal Softplus Identity``; ``Clip(x)``: ``min``, ``max``; ``Elu(x)``: ``alpha``
  (``x > 0 ? x : α·(eˣ − 1)``); ``LeakyRelu(x)``: ``alpha`` (``x > 0 ? x : α·x``); ``Pow(x)``: ``exponent``
  (``x^e``, constant exponent). ``Softplus`` is ``log(1 + eˣ)``.
- ``PRelu(x, alpha)``: ``y = max(0, x) + α_c·min(0, x)`` (``x > 0 ? x : α_c·x``), ``alpha`` a constant of one
  value (shared) or one per channel of ``x`` (its layout's channel axis; the last of an [N, C] tensor). Like
  BatchNorm it follows the channel axis of its input's layout, so it is ``layout_free``.
- ``Concat``: ``axis``. ``Reshape``: ``shape``. ``Transpose``: ``perm``. ``Squeeze``: ``axes``.
  ``Flatten``: ``axis`` (dims from ``axis`` on are merged). ``Softmax``: ``axis``.
  ``LogSoftmax``: ``axis`` (``x − max − log Σ e^(x − max)``).
  ``ReduceMean``/``ReduceMax``/``ReduceMin``/``ReduceSum``: ``axes``, ``keepdims``.
  ``Pad``: ``pads`` ((begin,end) per axis), ``value``.
- ``PriorBox(feature, image)``: Caffe's prior generation (``min_size``, ``max_size``, ``aspect_ratios``,
  ``img_h``, ``img_w``, ``step_h``, ``step_w``, ``offset``, ``variance``, ``clip``), NCHW feature map.
- ``DetectionOutput(loc, conf, priors)``: decode + per-class NMS (``num_classes``, ``nms_threshold``,
  ``keep_top_k``, ``confidence_threshold``, ``top_k``, ``background_label_id``).
- ``SSDPostprocess(box_encodings, class_logits, anchors)``: a detector's decode + score conversion +
  NMS as the source framework describes it (``iou_threshold``, ``score_threshold``, ``max_per_class``,
  ``max_total``, ``scale_factors``, ``score_converter``, ``logit_scale``); lowered by ssd-detection-output.
- ``Cast``: ``to`` (a DType). ``Shape``. ``StridedSlice``/``Pack``/``Fill``/``Range``: shape arithmetic,
  only ever constant-folded.

Structural ops (``SliceAxis``, ``Deconv``, ``Upsample``, ``SpaceToBatch``/``BatchToSpace``, ``Refused``) are
described in their section near the end.

Shape inference (:func:`infer_node`) sets dtype and shape of a node's outputs; :func:`evaluate` runs a
node on numpy arrays (constant folding, and the reference interpreter in tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transpiler.errors import IRError
from transpiler.ir.core import Node, Shape
from transpiler.ir.dtypes import DType
from transpiler.plugins import caller_module, claim

InferFn = Callable[[Node], list[tuple[DType, Shape | None]]]
EvalFn = Callable[[Node, list[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class OpSpec:
    name: str
    infer: InferFn
    evaluate: EvalFn | None = None
    # Element-wise on its (single) feature-map input: the same in any layout, so to-nchw runs it on
    # the NCHW map as it is instead of wrapping it in Transpose pairs.
    layout_free: bool = False


OPS: dict[str, OpSpec] = {}


def register_op(name: str, infer: InferFn, evaluate: EvalFn | None = None, *, layout_free: bool = False) -> None:
    """Register (or replace) an IR op; plugins use this for ops of their own.

    ``layout_free=True`` declares the op element-wise (``y[i] = f(x[i])`` for every index ``i``), so its
    result does not depend on the memory order of the map and no layout change is inserted around it.
    """
    if claim("IR op", name, caller_module()):  # a plugin's op wins over a built-in one (transpiler.plugins)
        OPS[name] = OpSpec(name, infer, evaluate, layout_free)


def is_layout_free(op: str) -> bool:
    """Whether IR op ``op`` was registered as element-wise (``layout_free=True``)."""
    spec = OPS.get(op)
    return spec is not None and spec.layout_free


def infer_node(node: Node) -> None:
    """Set dtype/shape of ``node``'s outputs from its inputs and attributes."""
    spec = OPS.get(node.op)
    if spec is None:
        raise IRError(f"no shape inference for IR op {node.op} ({node.describe()})")
    results = spec.infer(node)
    for out, (dtype, shape) in zip(node.outputs, results, strict=True):
        out.dtype = dtype
        out.shape = tuple(shape) if shape is not None else None
        if node.op in LAYOUT_SETTING_OPS:
            continue  # these ops' output layout is set by whoever builds them
        rank4 = out.shape is not None and len(out.shape) == 4
        out.layout = next((v.layout for v in node.inputs if v.layout), None) if rank4 else None


# Ops whose output layout is not their input's: the frontend or the to-nchw pass sets it.
LAYOUT_SETTING_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Flatten", "Pack", "Fill", "StridedSlice",
                                "Slice", "Shape", "Range", "Tile"})


def evaluate(node: Node, arrays: list[np.ndarray]) -> list[np.ndarray]:
    spec = OPS.get(node.op)
    if spec is None or spec.evaluate is None:
        raise IRError(f"no reference kernel for IR op {node.op} ({node.describe()})")
    return spec.evaluate(node, arrays)


def can_evaluate(op: str) -> bool:
    spec = OPS.get(op)
    return spec is not None and spec.evaluate is not None


# ----------------------------------------------------------------------------- helpers
def _x(node: Node, i: int = 0) -> tuple[DType, Shape | None]:
    v = node.inputs[i]
    return v.dtype, v.shape


def same_as_input(node: Node) -> list[tuple[DType, Shape | None]]:
    return [_x(node)]


def channel_axis(layout: str | None, rank: int) -> int:
    """The channel axis of a value: 1 in NCHW, last otherwise (NHWC and rank < 4)."""
    return 1 if layout == "NCHW" and rank >= 2 else rank - 1


def spatial_axes(layout: str | None) -> tuple[int, int]:
    return (2, 3) if layout == "NCHW" else (1, 2)


def same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF SAME padding: out = ceil(in/s), pad = max((out−1)·s + d·(k−1) + 1 − in, 0), begin = pad//2."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return pad // 2, pad - pad // 2


def window_pads(node: Node, in_h: int | None, in_w: int | None, kh: int, kw: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for a Conv/Pool node, resolving SAME from the input size."""
    padding = node.attrs.get("padding", "VALID")
    sh, sw = node.attrs.get("strides", (1, 1))
    dh, dw = node.attrs.get("dilations", (1, 1))
    if padding == "VALID":
        return (0, 0, 0, 0)
    if padding == "EXPLICIT":
        t, b, left, r = node.attrs["pads"]
        return (int(t), int(b), int(left), int(r))
    if in_h is None or in_w is None:
        raise IRError(f"SAME padding needs a known input size ({node.describe()})")
    return (*same_pads(in_h, kh, sh, dh), *same_pads(in_w, kw, sw, dw))


def conv_out_size(size: int | None, k: int, s: int, d: int, pb: int, pe: int) -> int | None:
    if size is None:
        return None
    return (size + pb + pe - d * (k - 1) - 1) // s + 1


def kernel_hw(node: Node) -> tuple[int, int, int]:
    """(kh, kw, out_channels) of a Conv from its weight shape and kernel layout."""
    w = node.inputs[1].shape
    if w is None:
        raise IRError(f"Conv weights of unknown shape ({node.describe()})")
    layout = node.attrs["kernel_layout"]
    if layout == "HWIO":
        return int(w[0]), int(w[1]), int(w[3])  # type: ignore[arg-type]
    if layout == "HWCM":
        return int(w[0]), int(w[1]), int(w[2]) * int(w[3])  # type: ignore[arg-type]
    if layout == "OIHW":
        return int(w[2]), int(w[3]), int(w[0])  # type: ignore[arg-type]
    raise IRError(f"unknown kernel layout {layout} ({node.describe()})")


def _feature_shape(layout: str | None, n: Any, c: Any, h: Any, w: Any) -> Shape:
    return (n, c, h, w) if layout == "NCHW" else (n, h, w, c)


def _split_feature(layout: str | None, shape: Shape) -> tuple[Any, Any, Any, Any]:
    if layout == "NCHW":
        n, c, h, w = shape
    else:
        n, h, w, c = shape
    return n, c, h, w


# --------------------------------------------------------------------------------- Conv
def _infer_conv(node: Node) -> list[tuple[DType, Shape | None]]:
    x = node.inputs[0]
    if x.shape is None or len(x.shape) != 4:
        raise IRError(f"Conv input must be 4-D, got {x.shape} ({node.describe()})")
    n, c, h, w = _split_feature(x.layout, x.shape)
    kh, kw, co = kernel_hw(node)
    _check_conv_channels(node, c)
    t, b, left, r = window_pads(node, h, w, kh, kw)
    sh, sw = node.attrs.get("strides", (1, 1))
    dh, dw = node.attrs.get("dilations", (1, 1))
    oh = conv_out_size(h, kh, sh, dh, t, b)
    ow = conv_out_size(w, kw, sw, dw, left, r)
    return [(x.dtype, _feature_shape(x.layout, n, co, oh, ow))]


def _check_conv_channels(node: Node, channels: Any) -> None:
    """The input's channel count must be what the weights read: (input channels per group) × group."""
    wshape = node.inputs[1].shape
    if channels is None or wshape is None:
        return
    layout, group = node.attrs["kernel_layout"], int(node.attrs.get("group", 1))
    per_group = {"HWIO": wshape[2], "HWCM": 1, "OIHW": wshape[1]}.get(layout)
    group = int(wshape[2]) if layout == "HWCM" else group  # type: ignore[arg-type]
    if per_group is not None and int(per_group) * group != int(channels):
        raise IRError(f"the input has {channels} channels, the weights {layout} {list(wshape)} (group {group}) "
                      f"read {int(per_group) * group} ({node.describe()})")


def to_nchw_array(x: np.ndarray, layout: str | None) -> np.ndarray:
    return x.transpose(0, 3, 1, 2) if layout != "NCHW" else x


def from_nchw_array(x: np.ndarray, layout: str | None) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if layout != "NCHW" else x


def oihw_weights(w: np.ndarray, kernel_layout: str) -> np.ndarray:
    """Weights in Caffe's (O, I/group, kh, kw) layout, from any kernel layout."""
    if kernel_layout == "HWIO":
        return w.transpose(3, 2, 0, 1)
    if kernel_layout == "HWCM":
        kh, kw, c, m = w.shape
        return w.reshape(kh, kw, c * m, 1).transpose(2, 3, 0, 1)
    return w


def conv2d_nchw(
    x: np.ndarray,
    w: np.ndarray,
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    group: int,
) -> np.ndarray:
    """Reference grouped convolution in float64: x (N,C,H,W), w (O, C/group, kh, kw)."""
    t, b, left, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (left, r)))
    n, _, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    og = o // group
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
            for g in range(group):
                pg = patch[:, g * cg : (g + 1) * cg]
                wg = w[g * og : (g + 1) * og, :, i, j].astype(np.float64)
                out[:, g * og : (g + 1) * og] += np.einsum("nchw,oc->nohw", pg, wg)
    return out


def _eval_conv(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    layout = node.inputs[0].layout
    x = to_nchw_array(a[0], layout)
    w = oihw_weights(a[1], node.attrs["kernel_layout"])
    kh, kw = w.shape[2], w.shape[3]
    pads = window_pads(node, x.shape[2], x.shape[3], kh, kw)
    y = conv2d_nchw(x, w, node.attrs.get("strides", (1, 1)), node.attrs.get("dilations", (1, 1)), pads,
                    int(node.attrs.get("group", 1)))
    if len(a) > 2:
        y = y + a[2].reshape(1, -1, 1, 1)
    return [from_nchw_array(y, layout).astype(a[0].dtype)]


# --------------------------------------------------------------------------------- Pool
def _infer_pool(node: Node) -> list[tuple[DType, Shape | None]]:
    x = node.inputs[0]
    if x.shape is None or len(x.shape) != 4:
        raise IRError(f"pooling needs a 4-D input of known shape, got {x.shape} ({node.describe()})")
    n, c, h, w = _split_feature(x.layout, x.shape)
    if node.attrs.get("global_pool"):
        return [(x.dtype, _feature_shape(x.layout, n, c, 1, 1))]
    kh, kw = node.attrs["kernel"]
    t, b, left, r = window_pads(node, h, w, kh, kw)
    sh, sw = node.attrs["strides"]
    return [(x.dtype, _feature_shape(x.layout, n, c, conv_out_size(h, kh, sh, 1, t, b),
                                     conv_out_size(w, kw, sw, 1, left, r)))]


def _eval_pool(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    layout = node.inputs[0].layout
    x = to_nchw_array(a[0], layout).astype(np.float64)
    mode = node.attrs["mode"]
    if node.attrs.get("global_pool"):
        y = x.max(axis=(2, 3), keepdims=True) if mode == "max" else x.mean(axis=(2, 3), keepdims=True)
        return [from_nchw_array(y, layout).astype(a[0].dtype)]
    kh, kw = node.attrs["kernel"]
    sh, sw = node.attrs["strides"]
    t, b, left, r = window_pads(node, x.shape[2], x.shape[3], kh, kw)
    fill = -np.inf if mode == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=fill)
    ones = np.pad(np.ones_like(x), ((0, 0), (0, 0), (t, b), (left, r)))
    oh = (xp.shape[2] - kh) // sh + 1
    ow = (xp.shape[3] - kw) // sw + 1
    acc = np.full((*x.shape[:2], oh, ow), fill)
    cnt = np.zeros_like(acc)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            if mode == "max":
                acc = np.maximum(acc, win)
            else:
                acc = acc + win
                cnt = cnt + ones[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
    y = acc if mode == "max" else acc / np.maximum(cnt, 1)  # TF averages over valid taps only
    return [from_nchw_array(y, layout).astype(a[0].dtype)]


# ------------------------------------------------------------------------ per-channel
def _channel_shaped(vec: np.ndarray, layout: str | None, rank: int) -> np.ndarray:
    shape = [1] * rank
    shape[channel_axis(layout, rank)] = -1
    return vec.reshape(shape)


def _eval_batchnorm(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x, scale, offset, mean, var = a
    layout, rank = node.inputs[0].layout, x.ndim
    inv = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + float(node.attrs["epsilon"]))
    y = (x - _channel_shaped(mean, layout, rank)) * _channel_shaped(inv, layout, rank)
    return [(y + _channel_shaped(offset, layout, rank)).astype(x.dtype)]


def _eval_affine(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x, scale, bias = a
    rank = x.ndim
    axis = int(node.attrs.get("axis", channel_axis(node.inputs[0].layout, rank))) % rank
    shape = [1] * rank
    shape[axis] = -1
    return [(x.astype(np.float64) * scale.reshape(shape) + bias.reshape(shape)).astype(x.dtype)]


def _infer_fc(node: Node) -> list[tuple[DType, Shape | None]]:
    x, w = node.inputs[0], node.inputs[1]
    if x.shape is None or w.shape is None:
        raise IRError(f"fully-connected input or weights of unknown shape ({node.describe()})")
    axis = int(node.attrs.get("axis", 1))
    return [(x.dtype, (*x.shape[:axis], w.shape[0]))]


def _eval_fc(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs.get("axis", 1))
    x = a[0].reshape(*a[0].shape[:axis], -1).astype(np.float64)
    y = x @ a[1].T.astype(np.float64)
    if len(a) > 2:
        y = y + a[2]
    return [y.astype(a[0].dtype)]


def _infer_matmul(node: Node) -> list[tuple[DType, Shape | None]]:
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if a is None or b is None or len(a) < 2 or len(b) != 2 or (node.attrs.get("transpose_a") and len(a) != 2):
        raise IRError(f"MatMul needs a matrix (or a batch of them, not transposed) times a matrix, of known "
                      f"shapes; got {a} and {b} ({node.describe()})")
    m = a[1] if node.attrs.get("transpose_a") else a[-2]
    n = b[0] if node.attrs.get("transpose_b") else b[1]
    return [(node.inputs[0].dtype, (*a[:-2], m, n))]


def _eval_matmul(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].T if node.attrs.get("transpose_a") else a[0]
    w = a[1].T if node.attrs.get("transpose_b") else a[1]
    return [(x.astype(np.float64) @ w.astype(np.float64)).astype(a[0].dtype)]


# ------------------------------------------------------------------------ element-wise
def broadcast_shape(a: Shape | None, b: Shape | None) -> Shape | None:
    if a is None or b is None:
        return None
    rank = max(len(a), len(b))
    a2 = (1,) * (rank - len(a)) + tuple(a)
    b2 = (1,) * (rank - len(b)) + tuple(b)
    out: list[int | None] = []
    for x, y in zip(a2, b2, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y or y is None:
            out.append(x)
        elif x is None:
            out.append(y)
        else:
            raise IRError(f"shapes {a} and {b} do not broadcast")
    return tuple(out)


def _infer_binary(node: Node) -> list[tuple[DType, Shape | None]]:
    a, b = node.inputs
    try:
        shape = broadcast_shape(a.shape, b.shape)
    except IRError as exc:
        raise IRError(f"{exc} ({node.describe()})") from None
    return [(a.dtype, shape)]


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Maximum": np.maximum,
    "Minimum": np.minimum,
}

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Identity": lambda x: x,
    "Relu": lambda x: np.maximum(x, 0),
    "Relu6": lambda x: np.clip(x, 0, 6),
    "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Tanh": np.tanh,
    "Exp": np.exp,
    "Log": np.log,
    "Sqrt": np.sqrt,
    "Rsqrt": lambda x: 1.0 / np.sqrt(x),
    "Neg": np.negative,
    "Square": np.square,
    "Abs": np.abs,
    "Reciprocal": lambda x: 1.0 / x,
    "Softplus": lambda x: np.logaddexp(0.0, x),
}


def _binary_eval(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> EvalFn:
    def run(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
        out = fn(a[0], a[1])
        return [np.asarray(out).astype(np.result_type(a[0].dtype, a[1].dtype) if a[0].dtype != a[1].dtype
                                       else a[0].dtype)]
    return run


def _unary_eval(fn: Callable[[np.ndarray], np.ndarray]) -> EvalFn:
    def run(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(fn(a[0])).astype(a[0].dtype)]
    return run


def _eval_clip(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.clip(a[0], node.attrs["min"], node.attrs["max"]).astype(a[0].dtype)]


def _eval_elu(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].astype(np.float64)
    return [np.where(x > 0, x, float(node.attrs.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0))).astype(a[0].dtype)]


def _eval_leaky_relu(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].astype(np.float64)
    return [np.where(x > 0, x, float(node.attrs["alpha"]) * x).astype(a[0].dtype)]


def _infer_prelu(node: Node) -> list[tuple[DType, Shape | None]]:
    x, slopes = node.inputs[0].shape, node.inputs[1].shape
    if x is not None and slopes is not None and any(d != 1 for d in slopes):  # not one shared value
        channels = x[channel_axis(node.inputs[0].layout, len(x))] if x else 0
        if len(slopes) != 1 or channels not in (None, slopes[0]):
            raise IRError(f"PRelu slopes of shape {slopes} are neither one value nor one per channel of {x} "
                          f"({node.describe()})")
    return [_x(node)]


def _eval_prelu(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x, alpha = a[0], a[1].astype(a[0].dtype)
    slope = alpha.reshape(()) if alpha.size == 1 else _channel_shaped(alpha, node.inputs[0].layout, x.ndim)
    return [np.where(x > 0, x, slope * x).astype(x.dtype)]


def _eval_pow(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.power(a[0].astype(np.float64), float(node.attrs["exponent"])).astype(a[0].dtype)]


def _eval_log_softmax(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].astype(np.float64)
    axis = int(node.attrs.get("axis", -1))
    z = x - x.max(axis=axis, keepdims=True)
    return [(z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(a[0].dtype)]


# ----------------------------------------------------------------------------- shapes
def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _infer_concat(node: Node) -> list[tuple[DType, Shape | None]]:
    shapes = [v.shape for v in node.inputs]
    if any(s is None for s in shapes):
        return [(node.inputs[0].dtype, None)]
    first = list(shapes[0])  # type: ignore[arg-type]
    axis = _norm_axis(int(node.attrs["axis"]), len(first))
    for s in shapes:
        others = [(d, e) for i, (d, e) in enumerate(zip(first, s, strict=False)) if i != axis]  # type: ignore[arg-type]
        if len(s) != len(first) or not 0 <= axis < len(first) or any(  # type: ignore[arg-type]
                d is not None and e is not None and d != e for d, e in others):
            raise IRError(f"shapes {[list(t) for t in shapes]} do not concatenate on axis {axis} "  # type: ignore[arg-type]
                          f"({node.describe()})")
    total: int | None = 0
    for s in shapes:
        d = s[axis]  # type: ignore[index]
        total = None if total is None or d is None else total + d
    first[axis] = total
    return [(node.inputs[0].dtype, tuple(first))]


def _eval_concat(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate(a, axis=int(node.attrs["axis"]))]


def resolve_reshape(in_shape: Shape | None, target: Sequence[int]) -> Shape:
    """TF/numpy reshape target with at most one -1, resolved when the input size is known."""
    target = [int(t) for t in target]
    if -1 not in target:
        return tuple(target)
    if in_shape is None or any(d is None for d in in_shape):
        return tuple(None if t == -1 else t for t in target)
    total = math.prod(in_shape)  # type: ignore[arg-type]
    known = math.prod(t for t in target if t != -1)
    return tuple(total // known if t == -1 else t for t in target)


def _infer_reshape(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    out = resolve_reshape(s, node.attrs["shape"])
    if s is not None and None not in s and None not in out and math.prod(s) != math.prod(out):  # type: ignore[arg-type]
        raise IRError(f"cannot reshape {s} ({math.prod(s)} elements) to {out} ({node.describe()})")  # type: ignore[arg-type]
    return [(node.inputs[0].dtype, out)]


def _eval_reshape(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [a[0].reshape(node.attrs["shape"])]


def _infer_transpose(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    perm = node.attrs["perm"]
    if s is not None and sorted(int(p) for p in perm) != list(range(len(s))):
        raise IRError(f"permutation {list(perm)} does not fit shape {s} ({node.describe()})")
    return [(node.inputs[0].dtype, None if s is None else tuple(s[p] for p in perm))]


def _infer_squeeze(node: Node) -> list[tuple[DType, Shape | None]]:
    s = known_shape(node)
    axes = node.attrs.get("axes") or [i for i, d in enumerate(s) if d == 1]
    axes = {_norm_axis(int(i), len(s)) for i in axes}
    if any(not 0 <= i < len(s) or s[i] != 1 for i in axes):
        raise IRError(f"cannot squeeze axes {sorted(axes)} of shape {s} ({node.describe()})")
    return [(node.inputs[0].dtype, tuple(d for i, d in enumerate(s) if i not in axes))]


def _eval_squeeze(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    axes = node.attrs.get("axes") or [i for i, d in enumerate(a[0].shape) if d == 1]
    return [np.squeeze(a[0], axis=tuple(int(i) for i in axes))]


def _infer_flatten(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    if s is None:
        raise IRError(f"Flatten of a tensor of unknown rank ({node.describe()})")
    axis = int(node.attrs.get("axis", 1))
    tail = s[axis:]
    size = None if any(d is None for d in tail) else math.prod(tail)  # type: ignore[arg-type]
    return [(node.inputs[0].dtype, (*s[:axis], size))]


def _eval_flatten(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs.get("axis", 1))
    return [a[0].reshape(*a[0].shape[:axis], -1)]


def _infer_softmax(node: Node) -> list[tuple[DType, Shape | None]]:
    return [_x(node)]


def _eval_softmax(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].astype(np.float64)
    axis = int(node.attrs.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [(e / e.sum(axis=axis, keepdims=True)).astype(a[0].dtype)]


def _infer_reduce(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    if s is None:
        raise IRError(f"reduction over an input of unknown rank ({node.describe()})")
    axes = {_norm_axis(int(i), len(s)) for i in node.attrs["axes"]}
    if any(not 0 <= a < len(s) for a in axes):
        raise IRError(f"reduction axes {node.attrs['axes']} out of range for shape {s} ({node.describe()})")
    if node.attrs.get("keepdims"):
        return [(node.inputs[0].dtype, tuple(1 if i in axes else d for i, d in enumerate(s)))]
    return [(node.inputs[0].dtype, tuple(d for i, d in enumerate(s) if i not in axes))]


def _reduce_eval(fn: Callable[..., np.ndarray]) -> EvalFn:
    def run(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
        axes = tuple(int(i) for i in node.attrs["axes"])
        out = fn(a[0].astype(np.float64), axis=axes, keepdims=bool(node.attrs.get("keepdims")))
        return [np.asarray(out).astype(a[0].dtype)]
    return run


def _infer_pad(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    pads = node.attrs["pads"]
    if s is None or len(s) != len(pads):
        raise IRError(f"Pad of {len(pads)} axes on an input of shape {s} ({node.describe()})")
    return [(node.inputs[0].dtype,
             tuple(None if d is None else d + int(b) + int(e) for d, (b, e) in zip(s, pads, strict=True)))]


def _eval_pad(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    pads = [(int(b), int(e)) for b, e in node.attrs["pads"]]
    return [np.pad(a[0], pads, constant_values=node.attrs.get("value", 0))]


def _infer_cast(node: Node) -> list[tuple[DType, Shape | None]]:
    return [(node.attrs["to"], node.inputs[0].shape)]


def _eval_cast(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [a[0].astype(node.attrs["to"].numpy)]


def _infer_shape_op(node: Node) -> list[tuple[DType, Shape | None]]:
    s = node.inputs[0].shape
    return [(node.attrs.get("out_type", DType.INT32), (None if s is None else len(s),))]


def _eval_shape_op(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(a[0].shape, dtype=node.attrs.get("out_type", DType.INT32).numpy)]


def _infer_unknown_rank(node: Node) -> list[tuple[DType, Shape | None]]:
    """Shape arithmetic ops are folded before anything needs their shape; leave it open."""
    return [(node.attrs.get("dtype", node.inputs[0].dtype if node.inputs else DType.INT32), None)]


def _eval_pack(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(a, axis=int(node.attrs.get("axis", 0)))]


def _eval_fill(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.full(tuple(int(d) for d in a[0]), a[1])]


def _eval_range(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    start, limit, delta = (x.item() for x in a[:3])
    return [np.arange(start, limit, delta).astype(a[0].dtype)]


def strided_slice(x: np.ndarray, begin: np.ndarray, end: np.ndarray, strides: np.ndarray,
                  attrs: dict[str, Any]) -> np.ndarray:
    """TF StridedSlice semantics (begin/end/ellipsis/new_axis/shrink_axis masks)."""
    index: list[Any] = []
    shrink: list[int] = []
    dim = 0
    bm, em = int(attrs.get("begin_mask", 0)), int(attrs.get("end_mask", 0))
    elm, nam, sam = (int(attrs.get(k, 0)) for k in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"))
    for i in range(len(begin)):
        bit = 1 << i
        if elm & bit:
            index.append(Ellipsis)
            dim = x.ndim - (len(begin) - i - 1)
            continue
        if nam & bit:
            index.append(None)
            continue
        if sam & bit:
            index.append(int(begin[i]))
            shrink.append(dim)
            dim += 1
            continue
        b = None if bm & bit else int(begin[i])
        e = None if em & bit else int(end[i])
        index.append(slice(b, e, int(strides[i])))
        dim += 1
    return np.asarray(x[tuple(index)])


def _eval_strided_slice(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [strided_slice(a[0], a[1], a[2], a[3], node.attrs)]


def _eval_tile(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    return [np.tile(a[0], tuple(int(m) for m in a[1].reshape(-1)))]


def _eval_slice(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    begin, size = a[1], a[2]
    idx = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s)) for b, s in zip(begin, size, strict=True))
    return [a[0][idx]]


# ---------------------------------------------------------------------------- SSD ops
def _infer_priorbox(node: Node) -> list[tuple[DType, Shape | None]]:
    """``PriorBox(feature, image)``: (1, 2, H·W·P·4), row 0 boxes, row 1 variances (Caffe layout)."""
    f = node.inputs[0].shape
    assert f is not None
    ah, aw = spatial_axes(node.inputs[0].layout)
    per_cell = 1 + len(node.attrs.get("max_size", ())) + len(node.attrs.get("aspect_ratios", ()))
    return [(DType.FLOAT32, (1, 2, int(f[ah]) * int(f[aw]) * per_cell * 4))]  # type: ignore[arg-type]


def priorbox_sizes(min_size: float, max_sizes: Sequence[float], aspect_ratios: Sequence[float], *,
                   truncate: bool = False) -> list[tuple[float, float]]:
    """(width, height) in pixels of one cell's priors, in Caffe's order: min square, √(min·max) square,
    then ``min·√ar × min/√ar`` per ratio. ``truncate`` reproduces SSD-Caffe's int sizes."""
    mn = float(int(min_size)) if truncate else float(min_size)
    sizes = [(mn, mn)]
    for mx in max_sizes:
        side = float(np.sqrt(mn * (float(int(mx)) if truncate else float(mx))))
        sizes.append((side, side))
    sizes += [(mn * float(np.sqrt(ar)), mn / float(np.sqrt(ar))) for ar in aspect_ratios]
    return sizes


def priorbox_grid(height: int, width: int, img_h: float, img_w: float, step_h: float, step_w: float,
                  sizes: Sequence[tuple[float, float]], offset: float = 0.5) -> np.ndarray:
    """(H·W·P, 4) boxes ``[xmin, ymin, xmax, ymax]`` normalised by the image size, cell by cell."""
    cy = (np.arange(height) + offset) * step_h
    cx = (np.arange(width) + offset) * step_w
    out = np.zeros((height, width, len(sizes), 4))
    for p, (bw, bh) in enumerate(sizes):
        out[:, :, p, 0] = (cx[None, :] - bw / 2) / img_w
        out[:, :, p, 1] = (cy[:, None] - bh / 2) / img_h
        out[:, :, p, 2] = (cx[None, :] + bw / 2) / img_w
        out[:, :, p, 3] = (cy[:, None] + bh / 2) / img_h
    return out.reshape(-1, 4)


def priorbox_reference(node: Node, height: int, width: int) -> np.ndarray:
    """PriorBox outputs of a node with float sizes (OpenCV's semantics), flattened."""
    a = node.attrs
    img_h, img_w = int(a["img_h"]), int(a["img_w"])
    sizes = priorbox_sizes(a["min_size"], a.get("max_size", ()), a.get("aspect_ratios", ()))
    out = priorbox_grid(height, width, img_h, img_w, a.get("step_h") or img_h / height,
                        a.get("step_w") or img_w / width, sizes, float(a.get("offset", 0.5)))
    if a.get("clip"):
        out = np.clip(out, 0.0, 1.0)
    return out.reshape(-1)


def _eval_priorbox(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    ah, aw = spatial_axes(node.inputs[0].layout)
    h, w = a[0].shape[ah], a[0].shape[aw]
    boxes = priorbox_reference(node, h, w)
    variances = np.tile(np.asarray(node.attrs["variance"], dtype=np.float64), boxes.size // 4)
    return [np.stack([boxes, variances])[None].astype(np.float32)]


def _infer_detection_output(node: Node) -> list[tuple[DType, Shape | None]]:
    return [(DType.FLOAT32, (1, 1, int(node.attrs["keep_top_k"]), 7))]


def _infer_ssd_postprocess(node: Node) -> list[tuple[DType, Shape | None]]:
    return [(DType.FLOAT32, (1, 1, int(node.attrs["max_total"]), 7))]


# ============================================================ structural ops (shape ops, issue 9 item 6)
# ``SliceAxis(x)``: ``axis``, ``begin``, ``end``: ``x[..., begin:end, ...]`` on one axis, stride 1
#   (Caffe Slice). TF StridedSlice/Slice/Split/SplitV/Unpack become chains of these plus a Reshape.
# ``Deconv(x, w[, b])``: transposed convolution (Caffe Deconvolution), ``w`` of shape (C_in, C_out, kh, kw),
#   ``strides``, ``pads=(top,bottom,left,right)``: rows/columns cut from the full result, whose size is
#   ``(in−1)·s + k``; ``y_full[o, i·s + t] += x[c, i]·w[c, o, t]`` (per axis), ``out = (in−1)·s + k − top − bottom``.
#   It is the adjoint of ``Conv`` with OIHW weights ``w`` (O = C_in, I = C_out), so TF's Conv2DBackpropInput
#   filter (kh, kw, C_out, C_in) is ``w = filter.transpose(3, 2, 0, 1)``, with no flipping.
# ``Upsample(x)``: ``factors=(fh, fw)``, nearest neighbour by whole factors: ``y[i, j] = x[i // fh, j // fw]``.
# ``SpaceToBatch(x)``/``BatchToSpace(x)``: TF's SpaceToBatchND/BatchToSpaceND on an NHWC map, ``block``
#   (bh, bw) and ``pads``/``crops`` ((top, bottom), (left, right)); only ever folded into a dilated Conv.
# ``Refused(x...)``: a source node with no exact Caffe form (``reason``, ``tf_op``), kept with its output
#   ``shape``/``dtype`` so the backend's up-front sweep lists it with every other node it cannot write.

def known_shape(node: Node, i: int = 0) -> tuple[int, ...]:
    """The fully known static shape of input ``i``; an :class:`IRError` naming the node otherwise."""
    s = node.inputs[i].shape
    if s is None or any(d is None for d in s):
        raise IRError(f"input {i} of unknown shape {s} ({node.describe()})")
    return tuple(int(d) for d in s)  # type: ignore[arg-type]


def _infer_slice_axis(node: Node) -> list[tuple[DType, Shape | None]]:
    s = known_shape(node)
    axis = _norm_axis(int(node.attrs["axis"]), len(s))
    begin, end = int(node.attrs["begin"]), int(node.attrs["end"])
    if not 0 <= axis < len(s) or not 0 <= begin < end <= s[axis]:
        raise IRError(f"slice [{begin}:{end}] of axis {axis} does not fit shape {s} ({node.describe()})")
    return [(node.inputs[0].dtype, tuple(end - begin if i == axis else d for i, d in enumerate(s)))]


def _eval_slice_axis(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    axis = _norm_axis(int(node.attrs["axis"]), a[0].ndim)
    index = [slice(None)] * a[0].ndim
    index[axis] = slice(int(node.attrs["begin"]), int(node.attrs["end"]))
    return [a[0][tuple(index)]]


def deconv_out_size(size: int, k: int, s: int, pb: int, pe: int) -> int:
    return (size - 1) * s + k - pb - pe


def _infer_deconv(node: Node) -> list[tuple[DType, Shape | None]]:
    x, w = known_shape(node, 0), known_shape(node, 1)
    if len(x) != 4 or len(w) != 4:
        raise IRError(f"Deconv needs a 4-D input and (C_in, C_out, kh, kw) weights, got {x} and {w} "
                      f"({node.describe()})")
    layout = node.inputs[0].layout
    n, c, h, wd = _split_feature(layout, x)
    if c != w[0]:
        raise IRError(f"the input has {c} channels, the weights {list(w)} read {w[0]} ({node.describe()})")
    sh, sw = node.attrs["strides"]
    t, b, left, r = node.attrs["pads"]
    oh, ow = deconv_out_size(h, w[2], sh, t, b), deconv_out_size(wd, w[3], sw, left, r)
    if oh < 1 or ow < 1:
        raise IRError(f"Deconv output {oh}x{ow} is empty ({node.describe()})")
    return [(node.inputs[0].dtype, _feature_shape(layout, n, w[1], oh, ow))]


def deconv2d_nchw(x: np.ndarray, w: np.ndarray, strides: Sequence[int], pads: Sequence[int]) -> np.ndarray:
    """Reference transposed convolution in float64: x (N, C_in, H, W), w (C_in, C_out, kh, kw)."""
    n, _, h, wd = x.shape
    _, co, kh, kw = w.shape
    sh, sw = strides
    full = np.zeros((n, co, (h - 1) * sh + kh, (wd - 1) * sw + kw))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i : i + sh * (h - 1) + 1 : sh, j : j + sw * (wd - 1) + 1 : sw] += np.einsum(
                "nchw,co->nohw", x.astype(np.float64), w[:, :, i, j].astype(np.float64))
    t, b, left, r = pads
    return full[:, :, t : full.shape[2] - b, left : full.shape[3] - r]


def _eval_deconv(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    layout = node.inputs[0].layout
    y = deconv2d_nchw(to_nchw_array(a[0], layout), a[1], node.attrs["strides"], node.attrs["pads"])
    if len(a) > 2:
        y = y + a[2].reshape(1, -1, 1, 1)
    return [from_nchw_array(y, layout).astype(a[0].dtype)]


def _infer_upsample(node: Node) -> list[tuple[DType, Shape | None]]:
    s = known_shape(node)
    if len(s) != 4:
        raise IRError(f"Upsample needs a 4-D map, got {s} ({node.describe()})")
    layout = node.inputs[0].layout
    n, c, h, w = _split_feature(layout, s)
    fh, fw = (int(f) for f in node.attrs["factors"])
    return [(node.inputs[0].dtype, _feature_shape(layout, n, c, h * fh, w * fw))]


def _eval_upsample(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    ah, aw = spatial_axes(node.inputs[0].layout)
    fh, fw = (int(f) for f in node.attrs["factors"])
    return [a[0].repeat(fh, axis=ah).repeat(fw, axis=aw)]


def _infer_space_to_batch(node: Node) -> list[tuple[DType, Shape | None]]:
    n, h, w, c = known_shape(node)
    (bh, bw), ((t, b), (left, r)) = node.attrs["block"], node.attrs["pads"]
    if (h + t + b) % bh or (w + left + r) % bw:
        raise IRError(f"padded size {h + t + b}x{w + left + r} is not a multiple of the block {bh}x{bw} "
                      f"({node.describe()})")
    return [(node.inputs[0].dtype, (n * bh * bw, (h + t + b) // bh, (w + left + r) // bw, c))]


def _eval_space_to_batch(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    (bh, bw), ((t, b), (left, r)) = node.attrs["block"], node.attrs["pads"]
    xp = np.pad(a[0], ((0, 0), (t, b), (left, r), (0, 0)))
    n, hp, wp, c = xp.shape
    # TF: output batch (i·bw + j)·N + n holds xp[n, i::bh, j::bw]
    y = xp.reshape(n, hp // bh, bh, wp // bw, bw, c).transpose(2, 4, 0, 1, 3, 5)
    return [y.reshape(bh * bw * n, hp // bh, wp // bw, c)]


def _infer_batch_to_space(node: Node) -> list[tuple[DType, Shape | None]]:
    nb, h, w, c = known_shape(node)
    (bh, bw), ((t, b), (left, r)) = node.attrs["block"], node.attrs["crops"]
    if nb % (bh * bw) or h * bh - t - b < 1 or w * bw - left - r < 1:
        raise IRError(f"batch {nb} / block {bh}x{bw} / crops {node.attrs['crops']} do not fit {(nb, h, w, c)} "
                      f"({node.describe()})")
    return [(node.inputs[0].dtype, (nb // (bh * bw), h * bh - t - b, w * bw - left - r, c))]


def _eval_batch_to_space(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    (bh, bw), ((t, b), (left, r)) = node.attrs["block"], node.attrs["crops"]
    nb, h, w, c = a[0].shape
    n = nb // (bh * bw)
    y = a[0].reshape(bh, bw, n, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, h * bh, w * bw, c)
    return [y[:, t : h * bh - b, left : w * bw - r]]


def _infer_refused(node: Node) -> list[tuple[DType, Shape | None]]:
    return [(node.attrs["dtype"], tuple(node.attrs["shape"]))]


def _register_shape_ops() -> None:
    register_op("Refused", _infer_refused)
    register_op("SliceAxis", _infer_slice_axis, _eval_slice_axis)
    register_op("Deconv", _infer_deconv, _eval_deconv)
    register_op("Upsample", _infer_upsample, _eval_upsample)
    register_op("SpaceToBatch", _infer_space_to_batch, _eval_space_to_batch)
    register_op("BatchToSpace", _infer_batch_to_space, _eval_batch_to_space)
# ======================================================== end of structural ops (shape ops)


def _register_builtin() -> None:
    register_op("Conv", _infer_conv, _eval_conv)
    register_op("Pool", _infer_pool, _eval_pool)
    register_op("BatchNorm", same_as_input, _eval_batchnorm)
    register_op("Affine", same_as_input, _eval_affine)
    register_op("FullyConnected", _infer_fc, _eval_fc)
    register_op("MatMul", _infer_matmul, _eval_matmul)
    for name, fn in _BINARY.items():
        register_op(name, _infer_binary, _binary_eval(fn))
    for name, ufn in _UNARY.items():
        register_op(name, same_as_input, _unary_eval(ufn), layout_free=True)
    register_op("Clip", same_as_input, _eval_clip, layout_free=True)
    register_op("Concat", _infer_concat, _eval_concat)
    register_op("Reshape", _infer_reshape, _eval_reshape)
    register_op("Transpose", _infer_transpose, lambda n, a: [a[0].transpose(n.attrs["perm"])])
    register_op("Squeeze", _infer_squeeze, _eval_squeeze)
    register_op("Flatten", _infer_flatten, _eval_flatten)
    register_op("Softmax", _infer_softmax, _eval_softmax)
    register_op("ReduceMean", _infer_reduce, _reduce_eval(np.mean))
    register_op("ReduceMax", _infer_reduce, _reduce_eval(np.max))
    register_op("ReduceSum", _infer_reduce, _reduce_eval(np.sum))
    register_op("ReduceMin", _infer_reduce, _reduce_eval(np.min))
    register_op("Elu", same_as_input, _eval_elu, layout_free=True)
    register_op("LeakyRelu", same_as_input, _eval_leaky_relu, layout_free=True)
    register_op("PRelu", _infer_prelu, _eval_prelu, layout_free=True)  # slopes indexed by the layout's channel
    register_op("Pow", same_as_input, _eval_pow, layout_free=True)
    register_op("LogSoftmax", _infer_softmax, _eval_log_softmax)
    register_op("Pad", _infer_pad, _eval_pad)
    register_op("Cast", _infer_cast, _eval_cast)
    register_op("Shape", _infer_shape_op, _eval_shape_op)
    register_op("Pack", _infer_unknown_rank, _eval_pack)
    register_op("Fill", _infer_unknown_rank, _eval_fill)
    register_op("Range", _infer_unknown_rank, _eval_range)
    register_op("StridedSlice", _infer_unknown_rank, _eval_strided_slice)
    register_op("Slice", _infer_unknown_rank, _eval_slice)
    register_op("Tile", _infer_unknown_rank, _eval_tile)
    register_op("PriorBox", _infer_priorbox, _eval_priorbox)
    register_op("DetectionOutput", _infer_detection_output)
    register_op("SSDPostprocess", _infer_ssd_postprocess)


_register_builtin()
_register_shape_ops()
