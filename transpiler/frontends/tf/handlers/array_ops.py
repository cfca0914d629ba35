"""Handlers for TF's tensor-shaping ops and the shape arithmetic that feeds them.

Shape arguments (Reshape's shape, Pad's paddings, Concat's axis...) are read with
``ctx.static``, which evaluates shape arithmetic on static shapes, so the IR gets plain attributes.
"""

from __future__ import annotations

from typing import Any

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.frontends.tf.tensors import tensor_to_numpy
from transpiler.ir.core import Value
from transpiler.ir.dtypes import DType


@tf_op("Const")
def const(ctx: ImportContext, node: Any) -> list[Value]:
    array = tensor_to_numpy(node.attr["value"].tensor)
    value = ctx.graph.constant(node.name, array)
    return [value]


@tf_op("Identity", "StopGradient", "Snapshot", "PreventGradient", "PlaceholderWithDefault", "EnsureShape")
def identity(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Identity", node, [ctx.input(node, 0)]).outputs


@tf_op("IdentityN")
def identity_n(ctx: ImportContext, node: Any) -> list[Value]:
    return [ctx.add("Identity", node, [v], suffix=f"_{i}").output for i, v in enumerate(ctx.inputs(node))]


@tf_op("Reshape")
def reshape(ctx: ImportContext, node: Any) -> list[Value]:
    shape = ctx.static_input(node, 1, "target shape").reshape(-1)
    out = ctx.add("Reshape", node, [ctx.input(node, 0)], {"shape": tuple(int(s) for s in shape)}).output
    return [out]


@tf_op("ExpandDims")
def expand_dims(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    axis = int(ctx.static_input(node, 1, "axis").reshape(-1)[0])
    if x.shape is None or None in x.shape:
        raise UnsupportedModelError(f"{ctx.where(node)}: ExpandDims of a tensor of unknown shape")
    shape = list(x.shape)
    axis = axis + len(shape) + 1 if axis < 0 else axis
    shape.insert(axis, 1)
    return ctx.add("Reshape", node, [x], {"shape": tuple(int(s) for s in shape)}).outputs  # type: ignore[arg-type]


@tf_op("Squeeze")
def squeeze(ctx: ImportContext, node: Any) -> list[Value]:
    axes = tuple(int(a) for a in ctx.attr(node, "squeeze_dims", []) or [])
    return ctx.add("Squeeze", node, [ctx.input(node, 0)], {"axes": axes}).outputs


@tf_op("ConcatV2", "Concat")
def concat(ctx: ImportContext, node: Any) -> list[Value]:
    ins = ctx.inputs(node)
    if node.op == "ConcatV2":
        axis, values = ctx.static_input(node, len(ins) - 1, "axis"), ins[:-1]
    else:
        axis, values = ctx.static_input(node, 0, "axis"), ins[1:]
    return ctx.add("Concat", node, values, {"axis": int(axis.reshape(-1)[0])}).outputs


@tf_op("Transpose")
def transpose(ctx: ImportContext, node: Any) -> list[Value]:
    perm = ctx.static_input(node, 1, "permutation").reshape(-1)
    return ctx.add("Transpose", node, [ctx.input(node, 0)], {"perm": tuple(int(p) for p in perm)}).outputs


@tf_op("Pad", "PadV2")
def pad(ctx: ImportContext, node: Any) -> list[Value]:
    paddings = ctx.static_input(node, 1, "paddings").reshape(-1, 2)
    value = 0.0
    if node.op == "PadV2":
        value = float(ctx.static_input(node, 2, "constant value").reshape(-1)[0])
    attrs = {"pads": tuple((int(b), int(e)) for b, e in paddings), "value": value}
    return ctx.add("Pad", node, [ctx.input(node, 0)], attrs).outputs


@tf_op("Cast")
def cast(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Cast", node, [ctx.input(node, 0)], {"to": ctx.attr(node, "DstT")}).outputs


@tf_op("Shape")
def shape(ctx: ImportContext, node: Any) -> list[Value]:
    out_type = ctx.attr(node, "out_type", DType.INT32)
    return ctx.add("Shape", node, [ctx.input(node, 0)], {"out_type": out_type}).outputs


@tf_op("StridedSlice")
def strided_slice(ctx: ImportContext, node: Any) -> list[Value]:
    keys = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    attrs: dict[str, Any] = {k: int(ctx.attr(node, k, 0)) for k in keys}
    x = ctx.input(node, 0)
    attrs["dtype"] = x.dtype
    return ctx.add("StridedSlice", node, ctx.inputs(node)[:4], attrs).outputs


@tf_op("Slice")
def slice_(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Slice", node, ctx.inputs(node)[:3], {"dtype": ctx.input(node, 0).dtype}).outputs


@tf_op("Tile")
def tile(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Tile", node, ctx.inputs(node)[:2], {"dtype": ctx.input(node, 0).dtype}).outputs


@tf_op("Pack")
def pack(ctx: ImportContext, node: Any) -> list[Value]:
    ins = ctx.inputs(node)
    return ctx.add("Pack", node, ins, {"axis": int(ctx.attr(node, "axis", 0)), "dtype": ins[0].dtype}).outputs


@tf_op("Fill")
def fill(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Fill", node, ctx.inputs(node)[:2], {"dtype": ctx.input(node, 1).dtype}).outputs


@tf_op("Range")
def range_(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Range", node, ctx.inputs(node)[:3], {"dtype": ctx.input(node, 0).dtype}).outputs
