"""Handlers for TF's element-wise math ops (numpy broadcasting semantics in the IR)."""

from __future__ import annotations

from typing import Any

from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.ir.core import Value

BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
          "Maximum": "Maximum", "Minimum": "Minimum"}
UNARY = {"Rsqrt": "Rsqrt", "Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Neg": "Neg", "Square": "Square"}


@tf_op(*BINARY)
def binary(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(BINARY[node.op], node, [ctx.input(node, 0), ctx.input(node, 1)]).outputs


@tf_op(*UNARY)
def unary(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add(UNARY[node.op], node, [ctx.input(node, 0)]).outputs


@tf_op("Mean", "Max", "Sum")
def reduce(ctx: ImportContext, node: Any) -> list[Value]:
    axes = ctx.static_input(node, 1, "reduction axes").reshape(-1)
    op = {"Mean": "ReduceMean", "Max": "ReduceMax", "Sum": "ReduceSum"}[node.op]
    attrs = {"axes": tuple(int(a) for a in axes), "keepdims": bool(ctx.attr(node, "keep_dims", False))}
    return ctx.add(op, node, [ctx.input(node, 0)], attrs).outputs
