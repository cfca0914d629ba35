"""input-channel-order: let the model take BGR images (``--input-order bgr``) at no cost.

Feeding BGR where the model expects RGB reverses the channel axis of the input: ``x_bgr = x_rgb[..., ::-1]``.
Every path from the input to the first convolutions goes through per-channel ops only (Affine /
element-wise with per-channel constants, Relu6...): reversing their channel vectors and the
convolution weights' input-channel axis (HWIO axis 2, or OIHW axis 1) makes the network compute on
``x_bgr`` exactly what it computed on ``x_rgb``. Anything else on that path is refused.
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import channel_axis
from transpiler.pass_manager import Pass, PassContext, register_pass

CHANNEL_FREE = frozenset({"Relu", "Relu6", "Clip", "Sigmoid", "Tanh", "Identity", "Pad"})


def _reverse_const(graph: Graph, node: Node, index: int, axis: int) -> None:
    c = node.inputs[index].const
    assert c is not None
    if c.ndim == 0 or c.size == 1:
        return
    graph.set_input(node, index, graph.constant(node.inputs[index].name + "/bgr", np.flip(c, axis=axis).copy()))


def _visit(graph: Graph, value: Value, done: set[int]) -> None:
    for node in value.users:
        if id(node) in done:
            continue
        done.add(id(node))
        if node.op == "Conv":
            if int(node.attrs.get("group", 1)) != 1:
                raise UnsupportedModelError(f"--input-order bgr: {node.describe()} is a grouped convolution on "
                                            "the input; reorder the channels yourself")
            axis = {"HWIO": 2, "OIHW": 1}[node.attrs["kernel_layout"]]
            _reverse_const(graph, node, 1, axis)
        elif node.op == "Affine":
            _reverse_const(graph, node, 1, 0)
            _reverse_const(graph, node, 2, 0)
            _visit(graph, node.output, done)
        elif node.op in ("Mul", "Add", "Sub", "Div"):
            for i, v in enumerate(node.inputs):
                if v.const is not None:
                    _reverse_const(graph, node, i, channel_axis(value.layout, v.const.ndim) if v.const.ndim else 0)
            _visit(graph, node.output, done)
        elif node.op in CHANNEL_FREE:
            _visit(graph, node.output, done)
        else:
            raise UnsupportedModelError(f"--input-order bgr: the input reaches {node.describe()}, which mixes "
                                        "channels before any convolution")


@register_pass("input-channel-order")
class InputChannelOrder(Pass):
    """With input_order=bgr, reverse the input channel axis of the first layers' weights."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if ctx.options.get("input_order", "rgb") != "bgr" or graph.metadata.get("input_order") == "bgr":
            return False
        for value in graph.inputs:
            _visit(graph, value, set())
        graph.metadata["input_order"] = "bgr"
        return True
