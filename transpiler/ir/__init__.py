"""The typed IR: :class:`Value`, :class:`Node`, :class:`Graph`, the op set, verifier and printers."""

from transpiler.ir.core import Graph, Node, Shape, Value, format_shape
from transpiler.ir.dtypes import DType
from transpiler.ir.ops import OPS, evaluate, infer_node, is_layout_free, register_op
from transpiler.ir.printer import to_dot, to_text
from transpiler.ir.verifier import verify

__all__ = [
    "OPS",
    "DType",
    "Graph",
    "Node",
    "Shape",
    "Value",
    "evaluate",
    "format_shape",
    "infer_node",
    "is_layout_free",
    "register_op",
    "to_dot",
    "to_text",
    "verify",
]
