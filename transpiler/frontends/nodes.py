"""What every frontend does when it adds an IR node: infer its shapes at once and name the source on failure.

TF and Keras feature maps are channels-last (``data_format="NCHW"`` and ``channels_first`` are refused up front),
so a 4-D float output without a layout gets ``NHWC``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transpiler.errors import IRError, TranspilerError, UnsupportedModelError
from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import infer_checked


def add_source_node(graph: Graph, op: str, inputs: Sequence[Value], attrs: dict[str, Any] | None, *, name: str,
                    source_name: str, where: str, num_outputs: int = 1) -> Node:
    """Add ``op`` made from the source node ``source_name``; an inference failure is re-raised prefixed with
    ``where`` (file and node), a contradiction as :class:`UnsupportedModelError`."""
    node = graph.add_node(op, inputs, num_outputs, attrs, name=name, source_names=[source_name])
    try:
        infer_checked(node)
    except IRError as exc:
        raise UnsupportedModelError(f"{where}: {exc}") from None
    except TranspilerError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    for out in node.outputs:
        if out.layout is None and out.rank == 4 and out.dtype.is_float:
            out.layout = "NHWC"
    return node
