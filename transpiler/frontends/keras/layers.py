"""Keras layers → IR: one handler per layer class, plus the activations Keras layers name.

Each handler builds what TensorFlow computes for the layer at inference (as the frozen graph has it):

- ``Conv2D``: ``Conv(x, kernel HWIO)`` (``groups`` → ``group``), ``Add(bias)``, activation. ``DepthwiseConv2D``:
  kernel (kh, kw, C, M) is HWCM, ``group = C``. ``SeparableConv2D``: depthwise (strides, dilation, padding),
  then a 1×1 VALID ``Conv`` with the pointwise kernel, bias, activation (``tf.nn.separable_conv2d``).
- ``Conv2DTranspose``: output size per axis ``in·s + max(k − s, 0)`` (valid) or ``in·s`` (same), or with
  ``output_padding`` p ``(in − 1)·s + k − 2·pad + p`` (pad = k//2 for same); the IR ``Deconv`` cuts
  ``begin = same_pads(out, k, s)[0]`` (same) or 0 rows from the full ``(in − 1)·s + k`` result, as
  TF's ``conv2d_transpose`` does (weights ``kernel.transpose(3, 2, 0, 1)``, zero taps where the full result
  is shorter than ``out``).
- ``BatchNormalization`` (last axis): ``BatchNorm(x, γ or 1, β or 0, moving mean, moving variance, ε)``.
- ``Dense``: ``MatMul(x, kernel) + bias`` (matmul-to-fc makes it a fully-connected layer).
- ``ReLU(max_value m, negative_slope s)``: ``relu`` / ``Clip(0, m)`` / ``LeakyRelu(s)`` /
  ``min(LeakyRelu(s), m)`` (Keras: ``clip(relu(x), 0, m) − s·relu(−x)``, equal since s, m ≥ 0); a threshold
  θ ≠ 0 (``x·[x > θ]``) has no exact Caffe form and is refused.
- ``PReLU``: ``relu(x) + (−α)·relu(−x)``, Keras' own formula, as the frozen graph has it (``Relu``, ``Neg``,
  ``Relu``, ``Mul`` by ``−α`` read from the file, ``Add``); fold-prelu makes it one ``PRelu`` where α is one value
  or one per channel (``shared_axes`` covering every other axis), and any other α (a slope per pixel) stays those
  exact element-wise ops.
- Activations: ``hard_sigmoid`` is ``relu6(x + 3)/6`` in Keras 3 and ``clip(0.2·x + 0.5, 0, 1)`` in Keras 2 /
  tf-keras (each file's own Keras version decides); ``hard_swish``/``hard_silu`` = ``x·relu6(x + 3)/6``;
  ``swish``/``silu`` = ``x·sigmoid(x)``; ``elu`` (α = 1), ``relu6`` = ``Clip(0, 6)``, softmax on the last axis.
  ``gelu``, ``selu`` and others without an exact Caffe form are refused.
- ``Rescaling``: ``x·scale + offset``. ``Normalization``: ``(x − mean) / max(√variance, 1e-7)`` (inverted:
  ``mean + x·max(√variance, 1e-7)``), mean/variance from the config or the stored variables.
- Merges: ``Add``/``Subtract``/``Multiply``/``Maximum``/``Minimum`` fold left over the inputs (as Keras does),
  ``Average`` is their sum divided by their count; ``Concatenate`` on ``axis``.
- Pooling: ``Pool`` (strides default to the pool size); global pooling is ``ReduceMean``/``ReduceMax`` over
  (1, 2) (mean-to-pool makes it a global Pool). ``ZeroPadding2D`` → ``Pad``; ``Cropping2D`` → ``SliceAxis``
  on H and W; ``UpSampling2D`` (nearest) → ``Upsample``; ``Flatten``/``Reshape`` → ``Reshape`` (batch kept);
  ``Permute(dims)`` → ``Transpose((0, *dims))``; ``Dropout``/``SpatialDropout*``/``Gaussian*``/
  ``ActivityRegularization`` are the identity at inference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.keras.context import KerasContext, Layer
from transpiler.ir.core import Value
from transpiler.ir.ops import same_pads

Handler = Callable[[KerasContext, Layer, list[Value]], Value]
KERAS_LAYERS: dict[str, Handler] = {}
# Config checks run for every layer before anything is built, so all problems are reported at once.
KERAS_CHECKS: dict[str, Callable[[Layer], list[str]]] = {}

IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                   "GaussianDropout", "AlphaDropout", "ActivityRegularization")
EXACT_ACTIVATIONS = frozenset({"linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "elu", "swish", "silu",
                               "hard_sigmoid", "hard_swish", "hard_silu", "softplus", "exponential",
                               "leaky_relu"})
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(), the floor of Normalization's standard deviation


def keras_layer(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            KERAS_LAYERS[n] = fn
        return fn
    return register


def keras_check(*names: str) -> Callable[[Callable[[Layer], list[str]]], Callable[[Layer], list[str]]]:
    def register(fn: Callable[[Layer], list[str]]) -> Callable[[Layer], list[str]]:
        for n in names:
            KERAS_CHECKS[n] = fn
        return fn
    return register


def check_layer(layer: Layer, keras_major: int) -> list[str]:
    """What in ``layer``'s config has no exact conversion (empty when it converts)."""
    problems = list(KERAS_CHECKS.get(layer.cls, lambda _: [])(layer))
    act = layer.config.get("activation")
    if act is not None and not _activation_ok(act, keras_major):
        problems.append(f"activation {act!r} has no exact Caffe form")
    if layer.config.get("data_format", "channels_last") != "channels_last":
        problems.append(f"data_format {layer.config['data_format']!r} (only channels_last)")
    return problems


def _activation_ok(act: Any, keras_major: int) -> bool:
    if not isinstance(act, str):
        return False
    if act in ("hard_swish", "hard_silu") and keras_major < 3:
        return False  # not a Keras 2 activation: the name would mean a custom function
    return act in EXACT_ACTIVATIONS


def activation(ctx: KerasContext, layer: Layer, x: Value, act: str | None, suffix: str = "/act") -> Value:
    """``x`` through the named Keras activation (see the module docstring for each formula)."""
    if act in (None, "linear"):
        return x
    if act == "relu":
        return ctx.add("Relu", layer, [x], suffix=suffix)
    if act == "relu6":
        return ctx.add("Clip", layer, [x], {"min": 0.0, "max": 6.0}, suffix=suffix)
    if act in ("sigmoid", "tanh", "softplus", "exponential"):
        op = {"sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "exponential": "Exp"}[act]
        return ctx.add(op, layer, [x], suffix=suffix)
    if act == "softmax":
        return ctx.add("Softmax", layer, [x], {"axis": -1}, suffix=suffix)
    if act == "elu":
        return ctx.add("Elu", layer, [x], {"alpha": 1.0}, suffix=suffix)
    if act == "leaky_relu":
        return ctx.add("LeakyRelu", layer, [x], {"alpha": 0.2}, suffix=suffix)  # Keras 3's default slope
    if act in ("swish", "silu"):
        gate = ctx.add("Sigmoid", layer, [x], suffix=suffix + "/sigmoid")
        return ctx.add("Mul", layer, [x, gate], suffix=suffix)
    if act == "hard_sigmoid":
        return _hard_sigmoid(ctx, layer, x, suffix)
    if act in ("hard_swish", "hard_silu"):
        gate = _hard_sigmoid(ctx, layer, x, suffix + "/hard_sigmoid")
        return ctx.add("Mul", layer, [x, gate], suffix=suffix)
    raise UnsupportedModelError(f"{ctx.where(layer)}: activation {act!r} has no exact Caffe form")


def _hard_sigmoid(ctx: KerasContext, layer: Layer, x: Value, suffix: str) -> Value:
    if ctx.model.keras_major >= 3:  # relu6(x + 3) / 6
        shifted = ctx.add("Add", layer, [x, ctx.constant(layer, 3.0, suffix + "/3")], suffix=suffix + "/add")
        clipped = ctx.add("Clip", layer, [shifted], {"min": 0.0, "max": 6.0}, suffix=suffix + "/relu6")
        return ctx.add("Div", layer, [clipped, ctx.constant(layer, 6.0, suffix + "/6")], suffix=suffix)
    # Keras 2 / tf-keras: clip(0.2·x + 0.5, 0, 1)
    scaled = ctx.add("Mul", layer, [x, ctx.constant(layer, 0.2, suffix + "/0.2")], suffix=suffix + "/mul")
    shifted = ctx.add("Add", layer, [scaled, ctx.constant(layer, 0.5, suffix + "/0.5")], suffix=suffix + "/add")
    return ctx.add("Clip", layer, [shifted], {"min": 0.0, "max": 1.0}, suffix=suffix)


def _pair(value: Any, name: str, layer: Layer) -> tuple[int, int]:
    v = [value, value] if isinstance(value, int) else list(value)
    if len(v) != 2:
        raise UnsupportedModelError(f"layer '{layer.path}': {name} {value!r} is not 2-D")
    return int(v[0]), int(v[1])


def _padding(layer: Layer) -> str:
    return str(layer.get("padding", "valid")).upper()


@keras_check("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "MaxPooling2D",
             "AveragePooling2D")
def _check_window(layer: Layer) -> list[str]:
    problems = []
    if str(layer.get("padding", "valid")) not in ("valid", "same"):
        problems.append(f"padding {layer.get('padding')!r} (valid and same convert)")
    if layer.cls == "Conv2DTranspose" and _pair(layer.get("dilation_rate", 1), "dilation_rate", layer) != (1, 1):
        problems.append("dilated transposed convolution")
    return problems


def _bias_act(ctx: KerasContext, layer: Layer, y: Value, w: dict[str, np.ndarray]) -> Value:
    if "bias" in w:
        y = ctx.add("Add", layer, [y, ctx.constant(layer, w["bias"], "/bias")], suffix="/bias_add")
    return activation(ctx, layer, y, layer.get("activation"))


def _window(layer: Layer) -> dict[str, Any]:
    return {"strides": _pair(layer.get("strides", 1), "strides", layer),
            "dilations": _pair(layer.get("dilation_rate", 1), "dilation_rate", layer),
            "padding": _padding(layer), "pads": (0, 0, 0, 0)}


def _with_bias(layer: Layer, *names: str) -> list[str]:
    return [*names, "bias"] if layer.get("use_bias", True) else list(names)


@keras_layer("Conv2D")
def conv2d(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    w = ctx.weights(layer, _with_bias(layer, "kernel"))
    groups = int(layer.get("groups", 1))
    y = ctx.add("Conv", layer, [xs[0], ctx.constant(layer, w["kernel"], "/kernel")],
                {**_window(layer), "group": groups, "kernel_layout": "HWIO"}, suffix="/conv")
    return _bias_act(ctx, layer, y, w)


@keras_layer("DepthwiseConv2D")
def depthwise_conv2d(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    w = ctx.weights(layer, _with_bias(layer, "kernel"), {"depthwise_kernel": "kernel"})
    kernel = w["kernel"]
    y = ctx.add("Conv", layer, [xs[0], ctx.constant(layer, kernel, "/kernel")],
                {**_window(layer), "group": int(kernel.shape[2]), "kernel_layout": "HWCM"}, suffix="/depthwise")
    return _bias_act(ctx, layer, y, w)


@keras_layer("SeparableConv2D")
def separable_conv2d(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    w = ctx.weights(layer, _with_bias(layer, "depthwise_kernel", "pointwise_kernel"))
    dw = w["depthwise_kernel"]
    y = ctx.add("Conv", layer, [xs[0], ctx.constant(layer, dw, "/depthwise_kernel")],
                {**_window(layer), "group": int(dw.shape[2]), "kernel_layout": "HWCM"}, suffix="/depthwise")
    y = ctx.add("Conv", layer, [y, ctx.constant(layer, w["pointwise_kernel"], "/pointwise_kernel")],
                {"strides": (1, 1), "dilations": (1, 1), "padding": "VALID", "pads": (0, 0, 0, 0), "group": 1,
                 "kernel_layout": "HWIO"}, suffix="/pointwise")
    return _bias_act(ctx, layer, y, w)


@keras_layer("Conv2DTranspose")
def conv2d_transpose(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    w = ctx.weights(layer, _with_bias(layer, "kernel"))
    kernel = w["kernel"]  # (kh, kw, out, in)
    x = xs[0]
    if x.shape is None or len(x.shape) != 4 or None in x.shape:
        raise UnsupportedModelError(f"{ctx.where(layer)}: needs a 4-D input of static shape, got {x.shape}")
    strides = _pair(layer.get("strides", 1), "strides", layer)
    padding = _padding(layer)
    out_pad = layer.get("output_padding")
    out_pad = None if out_pad is None else _pair(out_pad, "output_padding", layer)
    pads: list[int] = []
    grow: list[int] = []
    for axis in (0, 1):
        size_in, k, s = int(x.shape[1 + axis]), int(kernel.shape[axis]), strides[axis]  # type: ignore[arg-type]
        if out_pad is None:
            size = size_in * s + max(k - s, 0) if padding == "VALID" else size_in * s
        else:
            size = (size_in - 1) * s + k - 2 * (k // 2 if padding == "SAME" else 0) + out_pad[axis]
        begin = same_pads(size, k, s, 1)[0] if padding == "SAME" else 0
        end = (size_in - 1) * s + k - begin - size  # what the full result has past the wanted rows
        if begin < 0 or size < 1:
            raise UnsupportedModelError(f"{ctx.where(layer)}: output size {size} is not a transposed convolution "
                                        f"of {size_in} (kernel {k}, stride {s})")
        grow.append(max(-end, 0))  # zero taps appended to the kernel give TF's zero trailing rows
        pads += [begin, max(end, 0)]
    weights = kernel.transpose(3, 2, 0, 1)
    if any(grow):
        weights = np.pad(weights, ((0, 0), (0, 0), (0, grow[0]), (0, grow[1])))
    y = ctx.add("Deconv", layer, [x, ctx.constant(layer, weights, "/kernel")],
                {"strides": strides, "pads": tuple(pads)}, suffix="/deconv")
    return _bias_act(ctx, layer, y, w)


@keras_check("BatchNormalization")
def _check_bn(layer: Layer) -> list[str]:
    axis = layer.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    return [] if axes in ([-1], [3], [1]) else [f"batch norm over axis {axis} (only the channel axis, last)"]


@keras_layer("BatchNormalization")
def batch_norm(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    x = xs[0]
    axis = layer.get("axis", -1)
    axis = int(axis[0] if isinstance(axis, list) else axis)
    if x.rank is not None and axis % x.rank != x.rank - 1:
        raise UnsupportedModelError(f"{ctx.where(layer)}: batch norm over axis {axis} of a rank-{x.rank} input "
                                    "(only the last axis)")
    names = [*(["gamma"] if layer.get("scale", True) else []), *(["beta"] if layer.get("center", True) else []),
             "moving_mean", "moving_variance"]
    w = ctx.weights(layer, names)
    channels = w["moving_mean"].shape
    gamma = w.get("gamma", np.ones(channels, np.float32))
    beta = w.get("beta", np.zeros(channels, np.float32))
    params = [ctx.constant(layer, a, f"/{n}") for n, a in (("gamma", gamma), ("beta", beta),
                                                            ("moving_mean", w["moving_mean"]),
                                                            ("moving_variance", w["moving_variance"]))]
    return ctx.add("BatchNorm", layer, [x, *params], {"epsilon": float(layer.get("epsilon", 1e-3))})


@keras_layer("Dense")
def dense(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    w = ctx.weights(layer, _with_bias(layer, "kernel"))
    y = ctx.add("MatMul", layer, [xs[0], ctx.constant(layer, w["kernel"], "/kernel")],
                {"transpose_a": False, "transpose_b": False}, suffix="/matmul")
    return _bias_act(ctx, layer, y, w)


@keras_check("ReLU")
def _check_relu(layer: Layer) -> list[str]:
    if float(layer.get("threshold", 0.0)) != 0.0:
        return [f"threshold {layer.get('threshold')} (x·[x > θ] has no exact Caffe form)"]
    if float(layer.get("negative_slope", 0.0)) < 0 or (layer.get("max_value") is not None
                                                       and float(layer.get("max_value")) < 0):
        return ["negative max_value or negative_slope"]
    return []


@keras_layer("ReLU")
def relu(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    slope = float(layer.get("negative_slope", 0.0))
    top = layer.get("max_value")
    x = xs[0]
    if slope == 0.0:
        if top is None:
            return ctx.add("Relu", layer, [x])
        return ctx.add("Clip", layer, [x], {"min": 0.0, "max": float(top)})  # relu then clip(0, m)
    leaky = ctx.add("LeakyRelu", layer, [x], {"alpha": slope}, suffix="" if top is None else "/leaky")
    if top is None:
        return leaky
    return ctx.add("Minimum", layer, [leaky, ctx.constant(layer, float(top), "/max_value")])


@keras_layer("LeakyReLU")
def leaky_relu(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    slope = layer.get("negative_slope", layer.get("alpha", 0.3))  # Keras 3 / tf-keras spelling and default
    return ctx.add("LeakyRelu", layer, xs[:1], {"alpha": float(slope)})


@keras_layer("PReLU")
def prelu(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    x = xs[0]
    alpha = ctx.weights(layer, ["alpha"])["alpha"]
    positive = ctx.add("Relu", layer, [x], suffix="/relu")
    flipped = ctx.add("Relu", layer, [ctx.add("Neg", layer, [x], suffix="/neg")], suffix="/relu_neg")
    negative = ctx.add("Mul", layer, [ctx.constant(layer, -alpha, "/neg_alpha"), flipped], suffix="/mul")
    if negative.shape != x.shape:
        raise UnsupportedModelError(f"{ctx.where(layer)}: alpha of shape {alpha.shape} does not fit its input "
                                    f"{x.shape}")
    return ctx.add("Add", layer, [positive, negative])


@keras_layer("ELU")
def elu(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    alpha = float(layer.get("alpha", 1.0))
    return ctx.add("Elu", layer, xs[:1], {"alpha": alpha})


@keras_layer("Activation")
def activation_layer(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    act = layer.get("activation", "linear")
    y = activation(ctx, layer, xs[0], act, suffix="")
    return y if y is not xs[0] else ctx.add("Identity", layer, xs[:1])


@keras_check("Softmax")
def _check_softmax(layer: Layer) -> list[str]:
    axis = layer.get("axis", -1)
    return [] if isinstance(axis, int) or (isinstance(axis, list) and len(axis) == 1) else [
        f"softmax over several axes {axis}"]


@keras_layer("Softmax")
def softmax(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    axis = layer.get("axis", -1)
    return ctx.add("Softmax", layer, xs[:1], {"axis": int(axis[0] if isinstance(axis, list) else axis)})


@keras_layer(*IDENTITY_LAYERS)
def identity(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    return ctx.add("Identity", layer, xs[:1])


@keras_layer("Rescaling")
def rescaling(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    scale = np.asarray(layer.get("scale", 1.0), dtype=np.float32)
    offset = np.asarray(layer.get("offset", 0.0), dtype=np.float32)
    y = ctx.add("Mul", layer, [xs[0], ctx.constant(layer, scale, "/scale")], suffix="/scale")
    return ctx.add("Add", layer, [y, ctx.constant(layer, offset, "/offset")])


@keras_check("Normalization")
def _check_normalization(layer: Layer) -> list[str]:
    axis = layer.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    return [] if axes in ([-1], [3]) else [f"normalization over axis {axis} (only the last axis)"]


@keras_layer("Normalization")
def normalization(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    if layer.config.get("mean") is not None and layer.config.get("variance") is not None:
        mean = np.asarray(layer.config["mean"], dtype=np.float32)
        var = np.asarray(layer.config["variance"], dtype=np.float32)
    else:
        w = ctx.weights(layer, ["mean", "variance", "count"])
        mean, var = w["mean"], w["variance"]
    channels = xs[0].shape[-1] if xs[0].shape else None
    mean, var = mean.reshape(-1), var.reshape(-1)
    if mean.size not in (1, channels) or var.size not in (1, channels):
        raise UnsupportedModelError(f"{ctx.where(layer)}: mean/variance of {mean.size}/{var.size} values for "
                                    f"{channels} channels")
    std = np.maximum(np.sqrt(var), np.float32(KERAS_EPSILON)).astype(np.float32)
    if layer.get("invert", False):
        y = ctx.add("Mul", layer, [xs[0], ctx.constant(layer, std, "/std")], suffix="/scale")
        return ctx.add("Add", layer, [y, ctx.constant(layer, mean, "/mean")])
    y = ctx.add("Sub", layer, [xs[0], ctx.constant(layer, mean, "/mean")], suffix="/center")
    return ctx.add("Div", layer, [y, ctx.constant(layer, std, "/std")])


MERGE_OPS = {"Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Maximum", "Minimum": "Minimum",
             "Average": "Add"}


@keras_layer(*MERGE_OPS)
def merge(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    if len(xs) < 2 or (layer.cls == "Subtract" and len(xs) != 2):
        raise UnsupportedModelError(f"{ctx.where(layer)}: {len(xs)} inputs")
    y = xs[0]
    last = len(xs) - 1
    for i, x in enumerate(xs[1:], start=1):
        final = i == last and layer.cls != "Average"
        y = ctx.add(MERGE_OPS[layer.cls], layer, [y, x], suffix="" if final else f"/{i}")
    if layer.cls == "Average":
        y = ctx.add("Div", layer, [y, ctx.constant(layer, float(len(xs)), "/count")])
    return y


@keras_layer("Concatenate")
def concatenate(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    rank = xs[0].rank or 0
    return ctx.add("Concat", layer, xs, {"axis": int(layer.get("axis", -1)) % max(rank, 1)})


@keras_layer("MaxPooling2D", "AveragePooling2D")
def pool(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    kernel = _pair(layer.get("pool_size", 2), "pool_size", layer)
    strides = _pair(layer.get("strides") or kernel, "strides", layer)
    attrs = {"mode": "max" if layer.cls == "MaxPooling2D" else "avg", "kernel": kernel, "strides": strides,
             "padding": _padding(layer), "pads": (0, 0, 0, 0), "global_pool": False}
    return ctx.add("Pool", layer, xs[:1], attrs)


@keras_layer("GlobalAveragePooling2D", "GlobalMaxPooling2D")
def global_pool(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    op = "ReduceMean" if layer.cls == "GlobalAveragePooling2D" else "ReduceMax"
    return ctx.add(op, layer, xs[:1], {"axes": (1, 2), "keepdims": bool(layer.get("keepdims", False))})


@keras_layer("ZeroPadding2D")
def zero_padding(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    (t, b), (left, r) = _pads2d(layer, "padding")
    return ctx.add("Pad", layer, xs[:1], {"pads": ((0, 0), (t, b), (left, r), (0, 0)), "value": 0.0})


def _pads2d(layer: Layer, key: str) -> tuple[tuple[int, int], tuple[int, int]]:
    p = layer.get(key, 1)
    if isinstance(p, int):
        return (p, p), (p, p)
    a, b = p
    pa = (a, a) if isinstance(a, int) else (int(a[0]), int(a[1]))
    pb = (b, b) if isinstance(b, int) else (int(b[0]), int(b[1]))
    return pa, pb


@keras_layer("Cropping2D")
def cropping(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    crops = _pads2d(layer, "cropping")
    x = xs[0]
    shape = x.static_shape
    cuts = [(axis, b, shape[axis] - e) for axis, (b, e) in zip((1, 2), crops, strict=True) if b or e]
    if not cuts:
        return ctx.add("Identity", layer, [x])
    for i, (axis, begin, end) in enumerate(cuts):
        x = ctx.add("SliceAxis", layer, [x], {"axis": axis, "begin": begin, "end": end},
                    suffix="" if i == len(cuts) - 1 else f"/axis{axis}")
    return x


@keras_check("UpSampling2D")
def _check_upsampling(layer: Layer) -> list[str]:
    mode = layer.get("interpolation", "nearest")
    return [] if mode == "nearest" else [f"interpolation {mode!r} (nearest converts)"]


@keras_layer("UpSampling2D")
def upsampling(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    return ctx.add("Upsample", layer, xs[:1], {"factors": _pair(layer.get("size", 2), "size", layer)})


@keras_layer("Flatten")
def flatten(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    shape = xs[0].static_shape
    return ctx.add("Reshape", layer, xs[:1], {"shape": (shape[0], int(np.prod(shape[1:])))})


@keras_layer("Reshape")
def reshape(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    target = tuple(int(d) for d in layer.get("target_shape", ()))
    return ctx.add("Reshape", layer, xs[:1], {"shape": (xs[0].static_shape[0], *target)})


@keras_layer("Permute")
def permute(ctx: KerasContext, layer: Layer, xs: list[Value]) -> Value:
    dims = tuple(int(d) for d in layer.get("dims", ()))
    return ctx.add("Transpose", layer, xs[:1], {"perm": (0, *dims)})
