"""Handlers for TF's neural-network ops: convolutions, pooling, batch norm, activations, softmax.

TF convolutions are NHWC with HWIO kernels (depthwise: HWCM, C input channels times multiplier M);
the IR keeps that layout (``kernel_layout``) until the ``to-nchw`` pass. ``padding`` stays symbolic
(SAME/VALID/EXPLICIT) until ``fix-same-padding`` resolves it.
"""

from __future__ import annotations

from typing import Any

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.ir.core import Value


def _nhwc_only(ctx: ImportContext, node: Any) -> None:
    fmt = ctx.attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise UnsupportedModelError(f"{ctx.where(node)}: data_format {fmt} is not supported (only NHWC)")


def _window_attrs(ctx: ImportContext, node: Any) -> dict[str, Any]:
    strides = ctx.int_list(node, "strides", 4, default=[1, 1, 1, 1])
    dilations = ctx.int_list(node, "dilations", 4, default=[1, 1, 1, 1])
    padding = ctx.attr(node, "padding", "VALID")
    if padding not in ("SAME", "VALID", "EXPLICIT"):
        raise UnsupportedModelError(f"{ctx.where(node)}: unknown padding {padding!r}")
    attrs: dict[str, Any] = {
        "strides": (int(strides[1]), int(strides[2])),
        "dilations": (int(dilations[1]), int(dilations[2])),
        "padding": padding,
        "pads": (0, 0, 0, 0),
    }
    if padding == "EXPLICIT":
        p = ctx.int_list(node, "explicit_paddings", 8, minimum=0)
        attrs["pads"] = (p[2], p[3], p[4], p[5])
    return attrs


@tf_op("Conv2D")
def conv2d(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc_only(ctx, node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    attrs = {**_window_attrs(ctx, node), "group": 1, "kernel_layout": "HWIO"}
    if w.shape is not None and x.shape is not None and x.shape[3] not in (None, w.shape[2]):
        attrs["group"] = int(x.shape[3]) // int(w.shape[2])  # type: ignore[arg-type]
    return ctx.add("Conv", node, [x, w], attrs).outputs


@tf_op("DepthwiseConv2dNative")
def depthwise_conv2d(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc_only(ctx, node)
    x, w = ctx.input(node, 0), ctx.input(node, 1)
    if w.shape is None:
        raise UnsupportedModelError(f"{ctx.where(node)}: depthwise weights of unknown shape")
    attrs = {**_window_attrs(ctx, node), "group": int(w.shape[2]), "kernel_layout": "HWCM"}  # type: ignore[arg-type]
    return ctx.add("Conv", node, [x, w], attrs).outputs


@tf_op("MaxPool", "AvgPool")
def pool(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc_only(ctx, node)
    ksize = ctx.int_list(node, "ksize", 4)
    attrs = {**_window_attrs(ctx, node), "mode": "max" if node.op == "MaxPool" else "avg",
             "kernel": (int(ksize[1]), int(ksize[2])), "global_pool": False}
    attrs.pop("dilations")
    return ctx.add("Pool", node, [ctx.input(node, 0)], attrs).outputs


@tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def fused_batch_norm(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc_only(ctx, node)
    if ctx.attr(node, "is_training", False):
        raise UnsupportedModelError(f"{ctx.where(node)}: is_training=true batch norm; export the graph for "
                                    "inference (moving statistics)")
    ins = ctx.inputs(node)[:5]
    out = ctx.add("BatchNorm", node, ins, {"epsilon": float(ctx.attr(node, "epsilon", 1e-3))}).output
    return [out]  # the batch statistics outputs (:1..:5) are training-only


@tf_op("Relu")
def relu(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Relu", node, [ctx.input(node, 0)]).outputs


@tf_op("Relu6")
def relu6(ctx: ImportContext, node: Any) -> list[Value]:
    # Imported as the generic clip; map-relu6 recognises it (and the min/max forms) as Relu6.
    return ctx.add("Clip", node, [ctx.input(node, 0)], {"min": 0.0, "max": 6.0}).outputs


@tf_op("Sigmoid", "Tanh", "Softplus")
def activation(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(node.op, node, [ctx.input(node, 0)]).outputs


@tf_op("Elu")
def elu(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Elu", node, [ctx.input(node, 0)], {"alpha": 1.0}).outputs  # TF's Elu has α = 1


@tf_op("LeakyRelu")
def leaky_relu(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("LeakyRelu", node, [ctx.input(node, 0)], {"alpha": float(ctx.attr(node, "alpha", 0.2))}).outputs


@tf_op("Softmax", "LogSoftmax")
def softmax(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(node.op, node, [ctx.input(node, 0)], {"axis": -1}).outputs  # TF's ops take the last axis


@tf_op("BiasAdd")
def bias_add(ctx: ImportContext, node: Any) -> list[Value]:
    _nhwc_only(ctx, node)
    return ctx.add("Add", node, [ctx.input(node, 0), ctx.input(node, 1)]).outputs


@tf_op("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def matmul(ctx: ImportContext, node: Any) -> list[Value]:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    batched = node.op != "MatMul"
    attrs = {"transpose_a": bool(ctx.attr(node, "adj_x" if batched else "transpose_a", False)),
             "transpose_b": bool(ctx.attr(node, "adj_y" if batched else "transpose_b", False))}
    if batched and b.const is not None and b.const.ndim > 2 and all(d == 1 for d in b.const.shape[:-2]):
        b = ctx.constant(node, b.const.reshape(b.const.shape[-2:]), "/matrix")  # one matrix for the whole batch
    return ctx.add("MatMul", node, [a, b], attrs).outputs
