"""Handlers for TF's element-wise math ops and reductions (numpy broadcasting semantics in the IR).

``Pow(x, c)`` needs a constant scalar exponent (IR ``Pow``, Caffe ``Power``); ``SquaredDifference(a, b)``
is ``Square(Sub(a, b))``; ``Reciprocal``/``Inv`` is ``1/x``; ``ClipByValue`` with constant scalar bounds is
``Clip`` (map-relu6 recognises 0..6).
"""

from __future__ import annotations

from typing import Any

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.ir.core import Value

BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
          "Maximum": "Maximum", "Minimum": "Minimum"}
UNARY = {"Rsqrt": "Rsqrt", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Neg": "Neg", "Square": "Square",
         "Abs": "Abs", "Reciprocal": "Reciprocal", "Inv": "Reciprocal"}
REDUCE = {"Mean": "ReduceMean", "Max": "ReduceMax", "Sum": "ReduceSum", "Min": "ReduceMin"}


@tf_op(*BINARY)
def binary(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(BINARY[node.op], node, [ctx.input(node, 0), ctx.input(node, 1)]).outputs


@tf_op(*UNARY)
def unary(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(UNARY[node.op], node, [ctx.input(node, 0)]).outputs


@tf_op("Pow")
def power(ctx: ImportContext, node: Any) -> list[Value]:
    exponent = ctx.static(ctx.input(node, 1))
    if exponent is None or exponent.size != 1:
        raise UnsupportedModelError(f"{ctx.where(node)}: Pow needs a constant scalar exponent (Caffe Power)")
    return ctx.add("Pow", node, [ctx.input(node, 0)], {"exponent": float(exponent.reshape(-1)[0])}).outputs


@tf_op("ClipByValue")
def clip_by_value(ctx: ImportContext, node: Any) -> list[Value]:
    lo, hi = ctx.static(ctx.input(node, 1)), ctx.static(ctx.input(node, 2))
    if lo is None or hi is None or lo.size != 1 or hi.size != 1:
        raise UnsupportedModelError(f"{ctx.where(node)}: ClipByValue needs constant scalar bounds")
    attrs = {"min": float(lo.reshape(-1)[0]), "max": float(hi.reshape(-1)[0])}
    return ctx.add("Clip", node, [ctx.input(node, 0)], attrs).outputs


@tf_op("SquaredDifference")
def squared_difference(ctx: ImportContext, node: Any) -> list[Value]:
    diff = ctx.add("Sub", node, [ctx.input(node, 0), ctx.input(node, 1)], suffix="/sub").output
    diff.tf_name = None  # not a TF tensor: only the square is
    return ctx.add("Square", node, [diff]).outputs


@tf_op(*REDUCE)
def reduce(ctx: ImportContext, node: Any) -> list[Value]:
    axes = ctx.static_input(node, 1, "reduction axes").reshape(-1)
    op = REDUCE[node.op]
    attrs = {"axes": tuple(int(a) for a in axes), "keepdims": bool(ctx.attr(node, "keep_dims", False))}
    return ctx.add(op, node, [ctx.input(node, 0)], attrs).outputs
