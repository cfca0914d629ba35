"""Caffe layers for the IR's element-wise ops, reductions, LogSoftmax and Pad (NCHW, lowered IR).

Every form is exact up to float32 rounding; where it adds roundings TF does not have, the bound is stated.
Layer types used are in every flavor (flavors.COMMON) unless said otherwise.

Unary: ``Power`` is ``y = (shift + scale·x)^power``: Sqrt (power ½), Rsqrt (−½), Square (2), Reciprocal
(−1), Pow with a constant exponent, Neg (scale −1). Abs → ``AbsVal``, Softplus → ``BNLL``
(``log(1 + eˣ)``: absolute error ≈ 1 ulp of 1, so a relative error grows for outputs ≪ 1, x < −10),
Elu → ``ELU`` (α), LeakyRelu → ``ReLU`` with ``negative_slope``; Sigmoid, Tanh, Exp, Log → their layers.
PRelu (``y = max(0, x) + α_c·min(0, x)``) → ``PReLU`` with its slope blob: one per channel (Caffe's channel
axis 1: NCHW maps, [N, C]), or ``channel_shared`` with one slope (a blob of no axes, Caffe's shape for it,
which OpenCV reads as one value). Where the flavor has no PReLU or the slopes run along another axis, TF's own
spelling ``relu(x) + (−α)·relu(−x)``: ReLU, Power(−1) → ReLU → Scale (per channel, on that axis) or Power
(shared), Eltwise SUM; exact, as the sum adds ±0 to the one non-zero term.

Binary, with a scalar constant ``k``: ``x ± k``, ``k − x``, ``k·x`` → one Power; ``x/k`` → Power scale 1/k
(≤ 1 ulp from TF's division); ``k/x`` → Power(scale 1/k, power −1) = (x/k)⁻¹ (2 roundings);
``max(x, 0)`` → ReLU; ``max(x, k) = relu(x − k) + k`` and ``min(x, k) = k − relu(k − x)``: Power → ReLU →
Power, ≤ 1 ulp of max(|x|, |k|) from TF (the subtraction and addition round).
With a constant tensor ``c`` that broadcasts into the map: per channel, one ``Scale``: ``x·c`` (scale),
``x ± c`` / ``c − x`` (scale ±1 plus bias), ``x/c`` (scale 1/c, ≤ 1 ulp). Otherwise ``c`` becomes a map,
``Scale(ones, c)`` with ``ones = Power(scale 0, shift 1)(x)`` (exact for finite x) and the blob ``c`` over
the axes from its first to its last non-1 axis, and the two-map forms below apply (max/min then exact).
OpenCV fuses a one-bottom Scale that follows a Convolution into it and fails unless its blob is per channel.
Two maps of one shape: ``Eltwise`` SUM (Sub: coefficients 1, −1), PROD, MAX; ``a/b = a·b⁻¹`` (Power −1,
2 roundings); ``min(a, b) = −max(−a, −b)`` (exact). A map ``y`` that broadcasts into ``x`` (its non-1 axes
one block that equals x's, e.g. squeeze-excite's (N, C, 1, 1) against (N, C, H, W)): ``x·y`` is a Scale
with two bottoms (``y`` reshaped to that block, ``axis`` its start); for the other ops ``y`` is first
broadcast exactly as ``Scale(ones, y)`` with ``ones = Power(scale 0, shift 1)(x)`` (finite x). A map whose
1-axes lie between its other axes (``(N, 1, H, W)`` into ``(N, C, H, W)``) is repeated by a Concat of copies,
and so are both operands when each grows (``(N, 1, H, W) − (N, C, 1, 1)``).

Reductions over any axes (``ReduceMean/Max/Min/Sum``): each run of adjacent reduced axes is a Reshape of
the blob to ``(P, 1, R, Q)`` (P: the axes before, R: the run, Q: those after; Caffe blobs are row-major)
and a ``Pooling`` with kernel ``(R, 1)``: MAX, or AVE, whose divisor is R. Sum = AVE · R (Power; 2
roundings), Min = −MAX(−x). A final Reshape gives the output shape. No Permute, so every flavor runs it.

LogSoftmax = ``z − log Σ eᶻ``, ``z = x − max x`` (TF's own formula): max and sum as above, broadcast back,
Exp, Log and Eltwise. (Softmax → Log would be −inf wherever a probability underflows: logit gaps beyond
≈ 88 in OpenCV, ≈ 103 in Caffe.)

Pad with zeros on spatial axes (and/or channels) of an NCHW map: a convolution that copies the input: one
tap of 1, kernel ``1 + |end − begin|`` per axis with symmetric pad ``max(begin, end)`` and the tap at the
end (begin < end) or start, the same trick as symmetric-padding. Spatial only: depthwise (group C);
with channel pads: a 1×1 embedding of C into C + before + after channels. [N, C] pads: InnerProduct
embedding. Both are exact: every output is one input times 1 plus zeros. A non-zero pad value ``v`` adds
``v·(1 − inside)``, ``inside`` being a map of ones (``Power(scale 0, shift 1)(x)``) padded the same way,
then ``Power(scale −v, shift v)``: exact (0 + v, x + 0). [N, C]: the InnerProduct's bias ``v·mask``.
"""

from __future__ import annotations

import numpy as np

from transpiler.backends.caffe.emitter import CaffeEmitter, caffe_op, set_blob
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import BackendError
from transpiler.ir.core import Node, Value
from transpiler.ir.ops import broadcast_shape, channel_axis


def power(e: CaffeEmitter, name: str, bottom: str, *, power: float = 1.0, scale: float = 1.0,
          shift: float = 0.0) -> str:
    layer = e.layer(name, "Power", [bottom])
    p = layer.power_param
    if power != 1.0:
        p.power = power
    if scale != 1.0:
        p.scale = scale
    if shift != 0.0:
        p.shift = shift
    return name


def relu(e: CaffeEmitter, name: str, bottom: str) -> str:
    e.layer(name, "ReLU", [bottom])
    return name


# ------------------------------------------------------------------------------- unary
POWERS = {"Sqrt": 0.5, "Rsqrt": -0.5, "Square": 2.0, "Reciprocal": -1.0}
SIMPLE = {"Sigmoid": "Sigmoid", "Tanh": "TanH", "Exp": "Exp", "Log": "Log", "Abs": "AbsVal", "Softplus": "BNLL"}


@caffe_op(*POWERS, "Pow", "Neg")
def _power_op(e: CaffeEmitter, node: Node) -> str:
    x = e.blob(node.inputs[0])
    if node.op == "Neg":
        return power(e, node.name, x, scale=-1.0)
    exponent = float(node.attrs["exponent"]) if node.op == "Pow" else POWERS[node.op]
    return power(e, node.name, x, power=exponent)


@caffe_op(*SIMPLE)
def _simple(e: CaffeEmitter, node: Node) -> str:
    e.layer(node.name, SIMPLE[node.op], [e.blob(node.inputs[0])])
    return node.name


@caffe_op("Elu")
def _elu(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "ELU", [e.blob(node.inputs[0])])
    layer.elu_param.alpha = float(node.attrs.get("alpha", 1.0))
    return node.name


@caffe_op("LeakyRelu")
def _leaky_relu(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "ReLU", [e.blob(node.inputs[0])])
    layer.relu_param.negative_slope = float(node.attrs["alpha"])
    return node.name


@caffe_op("PRelu")
def _prelu(e: CaffeEmitter, node: Node) -> str:
    x, slopes = node.inputs
    if slopes.const is None:
        raise BackendError(f"{node.describe()}: PReLU slopes must be constant (Caffe stores them as weights)")
    alpha = slopes.const.reshape(-1).astype(np.float64)
    shape = x.static_shape
    axis = channel_axis(x.layout, len(shape))
    n, xb = node.name, e.blob(x)
    if "PReLU" in e.flavor.layer_types and len(shape) >= 2 and (alpha.size == 1 or axis == 1):
        layer = e.layer(n, "PReLU", [xb])
        if alpha.size == 1:
            layer.prelu_param.channel_shared = True
            layer.blobs.add().data.append(float(alpha[0]))  # no shape: Caffe's shared slope blob has no axes
        else:
            set_blob(layer.blobs.add(), alpha)
        return n
    positive = relu(e, f"{n}/relu", xb)
    flipped = relu(e, f"{n}/relu_neg", power(e, f"{n}/neg", xb, scale=-1.0))
    negative = (power(e, f"{n}/mul", flipped, scale=-float(alpha[0])) if alpha.size == 1
                else _scale(e, f"{n}/mul", flipped, axis, -alpha))
    return _eltwise(e, n, [positive, negative], cp.EltwiseParameter.SUM)


# ------------------------------------------------------------------------------ binary
ELTWISE = {"Add": cp.EltwiseParameter.SUM, "Sub": cp.EltwiseParameter.SUM, "Mul": cp.EltwiseParameter.PROD,
           "Maximum": cp.EltwiseParameter.MAX}


@caffe_op("Add", "Sub", "Mul", "Div", "Maximum", "Minimum")
def _binary(e: CaffeEmitter, node: Node) -> str:
    a, b = node.inputs
    if a.const is not None and b.const is not None:
        raise BackendError(f"{node.describe()}: both operands are constant (fold-constants did not run)")
    for const_first, (x, c) in ((False, (a, b)), (True, (b, a))):
        if c.const is not None:
            if c.const.size == 1:
                return _with_scalar(e, node, x, float(c.const.reshape(-1)[0]), const_first)
            return _with_tensor(e, node, x, c.const, const_first)
    if a.shape == b.shape:
        return _two_maps(e, node, e.blob(a), e.blob(b))
    return _broadcast_maps(e, node, a, b)


def _with_scalar(e: CaffeEmitter, node: Node, x: Value, k: float, const_first: bool) -> str:
    n, xb, op = node.name, e.blob(x), node.op
    if op == "Add":
        return power(e, n, xb, shift=k)
    if op == "Sub":
        return power(e, n, xb, scale=-1.0, shift=k) if const_first else power(e, n, xb, shift=-k)
    if op == "Mul":
        return power(e, n, xb, scale=k)
    if op == "Div":
        if k == 0.0:
            raise BackendError(f"{node.describe()}: division {'of' if const_first else 'by'} the constant 0 has "
                               "no exact Caffe form")
        return power(e, n, xb, power=-1.0, scale=1.0 / k) if const_first else power(e, n, xb, scale=1.0 / k)
    if op == "Maximum":
        if k == 0.0:
            return relu(e, n, xb)
        return power(e, n, relu(e, f"{n}/relu", power(e, f"{n}/minus", xb, shift=-k)), shift=k)
    # Minimum: min(x, k) = k − relu(k − x)
    return power(e, n, relu(e, f"{n}/relu", power(e, f"{n}/neg", xb, scale=-1.0, shift=k)), scale=-1.0, shift=k)


def _scale(e: CaffeEmitter, name: str, bottom: str, axis: int, scale: np.ndarray, bias: np.ndarray | None = None
           ) -> str:
    layer = e.layer(name, "Scale", [bottom])
    layer.scale_param.axis = axis
    layer.scale_param.num_axes = scale.ndim
    set_blob(layer.blobs.add(), scale)
    if bias is not None:
        layer.scale_param.bias_term = True
        set_blob(layer.blobs.add(), bias)
    return name


def _with_tensor(e: CaffeEmitter, node: Node, x: Value, c: np.ndarray, const_first: bool) -> str:
    shape = x.static_shape
    try:
        fits = broadcast_shape(shape, c.shape) == tuple(shape) and c.ndim <= len(shape)
    except Exception:
        fits = False
    if not fits:
        raise BackendError(f"{node.describe()}: constant of shape {c.shape} does not broadcast into the map "
                           f"{tuple(shape)} without growing it")
    padded = c.reshape((1,) * (len(shape) - c.ndim) + c.shape).astype(np.float64)
    varying = [i for i, d in enumerate(padded.shape) if d != 1] or [len(shape) - 1]
    axis, end = varying[0], varying[-1] + 1
    # the values over axes axis..end−1 (c is constant before axis and after end: Scale broadcasts there)
    blob = np.broadcast_to(padded, shape)[(0,) * axis + (slice(None),) * (end - axis) + (0,) * (len(shape) - end)]
    n, xb, op = node.name, e.blob(x), node.op
    if op == "Div" and np.any(blob == 0):
        raise BackendError(f"{node.describe()}: division by a constant with zeros has no exact Caffe form")
    if varying == [channel_axis(x.layout, len(shape))] and op in ("Mul", "Add", "Sub", "Div") and not (
            op == "Div" and const_first):
        # one per-channel Scale (OpenCV may fuse it into a preceding convolution, which it does right)
        ones = np.ones_like(blob)
        if op == "Mul":
            return _scale(e, n, xb, axis, blob)
        if op == "Add":
            return _scale(e, n, xb, axis, ones, blob)
        if op == "Sub":
            return _scale(e, n, xb, axis, -ones, blob) if const_first else _scale(e, n, xb, axis, ones, -blob)
        return _scale(e, n, xb, axis, 1.0 / blob)
    # Any other constant becomes a map: Scale(ones, c) with ones = 0·x + 1, then the two-map form. (A one-bottom
    # Scale with a non-per-channel blob right after a Convolution crashes OpenCV, which fuses it into the conv.)
    if op == "Div" and not const_first:
        blob, op = 1.0 / blob, "Mul"
    ones_map = power(e, f"{n}/ones", xb, scale=0.0, shift=1.0)
    const_map = _scale(e, f"{n}/const", ones_map, axis, blob)
    return _two_maps(e, node, const_map, xb, op) if const_first else _two_maps(e, node, xb, const_map, op)


def _eltwise(e: CaffeEmitter, name: str, bottoms: list[str], op: int, coeff: tuple[float, ...] = ()) -> str:
    layer = e.layer(name, "Eltwise", bottoms)
    layer.eltwise_param.operation = op  # type: ignore[assignment]
    layer.eltwise_param.coeff.extend(coeff)
    return name


def _two_maps(e: CaffeEmitter, node: Node, a: str, b: str, op: str | None = None) -> str:
    n, op = node.name, op or node.op
    if op == "Sub":
        return _eltwise(e, n, [a, b], cp.EltwiseParameter.SUM, (1.0, -1.0))
    if op in ELTWISE:
        return _eltwise(e, n, [a, b], ELTWISE[op])
    if op == "Div":
        return _eltwise(e, n, [a, power(e, f"{n}/reciprocal", b, power=-1.0)], cp.EltwiseParameter.PROD)
    # Minimum: −max(−a, −b)
    neg_a, neg_b = power(e, f"{n}/neg_a", a, scale=-1.0), power(e, f"{n}/neg_b", b, scale=-1.0)
    return power(e, n, _eltwise(e, f"{n}/max", [neg_a, neg_b], cp.EltwiseParameter.MAX), scale=-1.0)


def _block(big: tuple[int, ...], small: tuple[int, ...]) -> tuple[int, int] | None:
    """The axes [lo, hi) where ``small`` (left-padded to big's rank) is not 1, if it equals ``big`` there."""
    padded = (1,) * (len(big) - len(small)) + tuple(small)
    axes = [i for i, d in enumerate(padded) if d != 1]
    lo, hi = (axes[0], axes[-1] + 1) if axes else (0, 1)
    if any(padded[i] != big[i] for i in range(lo, hi)):
        return None
    return lo, hi


def _tile(e: CaffeEmitter, prefix: str, blob: str, small: tuple[int, ...], big: tuple[int, ...]) -> str:
    """``blob`` (shape ``small``, same rank) repeated along each axis where it is 1 and ``big`` is not: Concat of
    copies of the same blob, exact."""
    shape = list(small)
    for axis, (s, b) in enumerate(zip(small, big, strict=True)):
        if s == 1 and b != 1:
            name = f"{prefix}/tile{axis}"
            layer = e.layer(name, "Concat", [blob] * int(b))
            layer.concat_param.axis = axis
            blob, shape[axis] = name, b
    return blob


def broadcast_blob(e: CaffeEmitter, name: str, small: str, small_shape: tuple[int, ...], big: str,
                   big_shape: tuple[int, ...]) -> str:
    """Blob ``small`` broadcast to ``big_shape`` exactly: ``Scale(ones, small)`` (ones = 0·big + 1) when its
    non-1 axes are one block equal to big's, else repeated by Concat along each axis it broadcasts on."""
    padded = (1,) * (len(big_shape) - len(small_shape)) + tuple(small_shape)
    block = _block(big_shape, small_shape)
    if block is None:  # 1s between its non-1 axes (e.g. (N, 1, H, W) into (N, C, H, W))
        if len(padded) != len(small_shape):
            layer = e.layer(f"{name}/rank", "Reshape", [small])
            layer.reshape_param.shape.dim.extend(padded)
            small = f"{name}/rank"
        return _tile(e, name, small, padded, big_shape)
    lo, hi = block
    if tuple(small_shape) != tuple(big_shape[lo:hi]):
        layer = e.layer(f"{name}/block", "Reshape", [small])
        layer.reshape_param.shape.dim.extend(big_shape[lo:hi])
        small = f"{name}/block"
    ones = power(e, f"{name}/ones", big, scale=0.0, shift=1.0)
    layer = e.layer(name, "Scale", [ones, small])
    layer.scale_param.axis = lo
    return name


def _broadcast_maps(e: CaffeEmitter, node: Node, a: Value, b: Value) -> str:
    out = tuple(node.output.static_shape)
    big, small = (a, b) if tuple(a.static_shape) == out else (b, a)
    if tuple(big.static_shape) != out:  # both grow, e.g. (N, 1, H, W) − (N, C, 1, 1): repeat each by Concat
        tiled: list[str] = []
        for i, v in enumerate((a, b)):
            shape = (1,) * (len(out) - len(v.static_shape)) + tuple(v.static_shape)
            blob = e.blob(v)
            if len(shape) != len(v.static_shape):
                layer = e.layer(f"{node.name}/rank{i}", "Reshape", [blob])
                layer.reshape_param.shape.dim.extend(shape)
                blob = f"{node.name}/rank{i}"
            tiled.append(_tile(e, f"{node.name}/in{i}", blob, shape, out))
        return _two_maps(e, node, tiled[0], tiled[1])
    shape, small_shape = tuple(big.static_shape), tuple(small.static_shape)
    block = _block(shape, small_shape)
    if node.op == "Mul" and block is not None:  # one Scale with two bottoms
        lo, hi = block
        sb = e.blob(small)
        if small_shape != shape[lo:hi]:
            layer = e.layer(f"{node.name}/block", "Reshape", [sb])
            layer.reshape_param.shape.dim.extend(shape[lo:hi])
            sb = f"{node.name}/block"
        layer = e.layer(node.name, "Scale", [e.blob(big), sb])
        layer.scale_param.axis = lo
        return node.name
    full = broadcast_blob(e, f"{node.name}/broadcast", e.blob(small), small_shape, e.blob(big), shape)
    pair = (e.blob(a), full) if big is a else (full, e.blob(b))
    return _two_maps(e, node, *pair)


@caffe_op("MatMul")
def _matmul(e: CaffeEmitter, node: Node) -> str:
    """What matmul-to-fc left: no Caffe layer multiplies two feature maps or transposes InnerProduct's input."""
    a, b = node.inputs
    why = ("the first operand is transposed (transpose_a/adj_x)" if node.attrs.get("transpose_a")
           else "the second operand is not a constant matrix" if b.const is None else "its operands' shapes")
    raise BackendError(f"{node.describe()}: MatMul of {a.shape} by {b.shape} has no Caffe form: {why} "
                       "(InnerProduct multiplies by constant weights only)")


# -------------------------------------------------------------------------- reductions
def reduce_blob(e: CaffeEmitter, name: str, top: str, in_shape: tuple[int, ...], axes: list[int], op: str,
                out_shape: tuple[int, ...]) -> str:
    """``op`` (ReduceMean/Max/Min/Sum) of blob ``top`` over ``axes``, written as blob ``name`` of ``out_shape``."""
    shape = list(in_shape)
    axes = sorted({int(a) % len(shape) for a in axes})
    if op == "ReduceMin":
        top = power(e, f"{name}/neg", top, scale=-1.0)
    runs: list[list[int]] = []
    for a in axes:  # runs of adjacent axes, each one Reshape + Pooling
        if runs and runs[-1][-1] == a - 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    count = 1
    for k, run in enumerate(runs):
        lo, hi = run[0], run[-1] + 1
        p, r, q = (int(np.prod(shape[:lo])), int(np.prod(shape[lo:hi])), int(np.prod(shape[hi:])))
        reshape = e.layer(f"{name}/rows{k}", "Reshape", [top])
        reshape.reshape_param.shape.dim.extend([p, 1, r, q])
        pool = e.layer(f"{name}/pool{k}", "Pooling", [f"{name}/rows{k}"])
        pp = pool.pooling_param
        pp.pool = cp.PoolingParameter.AVE if op in ("ReduceMean", "ReduceSum") else cp.PoolingParameter.MAX
        pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w = r, 1, 1, 1
        top = f"{name}/pool{k}"
        count *= r
        shape[lo:hi] = [1] * (hi - lo)
    if op == "ReduceSum":
        top = power(e, f"{name}/sum", top, scale=float(count))
    elif op == "ReduceMin":
        top = power(e, f"{name}/min", top, scale=-1.0)
    final = e.layer(name, "Reshape", [top])
    final.reshape_param.shape.dim.extend(int(d) for d in out_shape)
    return name


@caffe_op("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
def _reduce(e: CaffeEmitter, node: Node) -> str:
    return reduce_blob(e, node.name, e.blob(node.inputs[0]), tuple(node.inputs[0].static_shape),
                       list(node.attrs["axes"]), node.op, tuple(node.output.static_shape))


# --------------------------------------------------------------------------- softmax
@caffe_op("LogSoftmax")
def _log_softmax(e: CaffeEmitter, node: Node) -> str:
    """``z − log Σ eᶻ`` with ``z = x − max x`` along the axis, as TF computes it (Softmax → Log would give −inf
    where a probability underflows: logit gaps beyond ≈ 88 in OpenCV, ≈ 103 in Caffe)."""
    n, x = node.name, e.blob(node.inputs[0])
    shape = tuple(node.inputs[0].static_shape)
    axis = int(node.attrs.get("axis", -1)) % len(shape)
    kept = tuple(1 if i == axis else d for i, d in enumerate(shape))
    peak = reduce_blob(e, f"{n}/max", x, shape, [axis], "ReduceMax", kept)
    z = _eltwise(e, f"{n}/shifted", [x, broadcast_blob(e, f"{n}/max_b", peak, kept, x, shape)],
                 cp.EltwiseParameter.SUM, (1.0, -1.0))
    e.layer(f"{n}/exp", "Exp", [z])
    total = reduce_blob(e, f"{n}/sum", f"{n}/exp", shape, [axis], "ReduceSum", kept)
    e.layer(f"{n}/log_sum", "Log", [total])
    return _eltwise(e, n, [z, broadcast_blob(e, f"{n}/log_sum_b", f"{n}/log_sum", kept, z, shape)],
                    cp.EltwiseParameter.SUM, (1.0, -1.0))


# -------------------------------------------------------------------------------- pad
def _tap_kernel(begin: int, end: int) -> tuple[int, int, int]:
    """(kernel size, symmetric pad, index of the 1-tap) of a copy along one axis padded (begin, end)."""
    return 1 + abs(end - begin), max(begin, end), abs(end - begin) if end >= begin else 0


@caffe_op("Pad")
def _pad(e: CaffeEmitter, node: Node) -> str:
    pads = [(int(b), int(a)) for b, a in node.attrs["pads"]]
    shape = node.inputs[0].static_shape
    value = float(node.attrs.get("value", 0.0))
    if not np.isfinite(value):
        raise BackendError(f"{node.describe()}: Pad with the value {value} has no exact Caffe form (the padded "
                           "cells are added as value·mask, which needs a finite value)")
    if pads[0] != (0, 0):
        raise BackendError(f"{node.describe()}: padding the batch axis has no Caffe form")
    x = e.blob(node.inputs[0])
    if len(shape) == 2:
        inside = np.zeros(node.output.static_shape[1], dtype=bool)
        inside[pads[1][0]:pads[1][0] + shape[1]] = True
        cb, ce = pads[1]
        w = np.zeros((shape[1] + cb + ce, shape[1]))
        w[np.arange(cb, cb + shape[1]), np.arange(shape[1])] = 1.0
        layer = e.layer(node.name, "InnerProduct", [x])
        layer.inner_product_param.num_output = int(w.shape[0])
        layer.inner_product_param.bias_term = value != 0.0
        set_blob(layer.blobs.add(), w)
        if value != 0.0:
            set_blob(layer.blobs.add(), np.where(inside, 0.0, value))
        return node.name
    if len(shape) != 4 or node.inputs[0].layout != "NCHW":
        raise BackendError(f"{node.describe()}: Pad of a rank-{len(shape)} tensor has no Caffe form (NCHW maps and "
                           "[N, C] only)")
    (cb, ce), (hb, he), (wb, we) = pads[1], pads[2], pads[3]
    c = int(shape[1])
    kh, ph, th = _tap_kernel(hb, he)
    kw, pw, tw = _tap_kernel(wb, we)
    if cb or ce:  # 1×1 embedding of C channels into C + cb + ce
        w = np.zeros((c + cb + ce, c, kh, kw))
        w[np.arange(cb, cb + c), np.arange(c), th, tw] = 1.0
    else:  # depthwise copy
        w = np.zeros((c, 1, kh, kw))
        w[:, 0, th, tw] = 1.0

    def copy(name: str, bottom: str) -> str:
        layer = e.layer(name, "Convolution", [bottom])
        p = layer.convolution_param
        p.num_output = int(w.shape[0])
        if w.shape[1] == 1 and c > 1:
            p.group = c
        p.kernel_h, p.kernel_w, p.pad_h, p.pad_w = kh, kw, ph, pw
        p.bias_term = False
        set_blob(layer.blobs.add(), w)
        return name

    if value == 0.0:
        return copy(node.name, x)
    # padded cells: 0 + v, the others: x + 0, with the mask from padding a map of ones the same way (exact)
    zeros = copy(f"{node.name}/zeros", x)
    mask = copy(f"{node.name}/inside", power(e, f"{node.name}/ones", x, scale=0.0, shift=1.0))
    fill = power(e, f"{node.name}/fill", mask, scale=-value, shift=value)
    return _eltwise(e, node.name, [zeros, fill], cp.EltwiseParameter.SUM)
