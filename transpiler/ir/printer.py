"""Human-readable IR dumps: one deterministic line per node, and Graphviz DOT.

Text form (constants inline when they hold at most 8 elements, else as a typed reference)::

    %conv:0 <f32[1,32,150,150]> = Conv(%input, %w<f32[32,3,3,3]>, %b<f32[32]>) {group=1, ...}  # from tf/Conv2D

Attributes are printed sorted by name; numpy attributes are summarised. ``to_dot`` draws nodes
as boxes labelled ``op\\nname`` and edges labelled with the value's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transpiler.ir.core import Graph, Node, Value, format_shape

INLINE_LIMIT = 8


def format_value(v: Value, *, inline_consts: bool = True) -> str:
    text = f"%{v.name}"
    if v.is_const:
        assert v.const is not None
        if inline_consts and v.const.size <= INLINE_LIMIT:
            return f"{text}<{v.dtype.short}{format_shape(v.shape)}>={_fmt_array(v.const)}"
        return f"{text}<{v.dtype.short}{format_shape(v.shape)}>"
    return text


def _fmt_array(a: np.ndarray) -> str:
    flat = a.reshape(-1).tolist()
    return "[" + ",".join(_fmt_scalar(x) for x in flat) + "]" if a.ndim else _fmt_scalar(a.item())


def _fmt_scalar(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x) if isinstance(x, bytes) else str(x)


def _fmt_attr(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array<{x.dtype}{list(x.shape)}>" if x.size > INLINE_LIMIT else _fmt_array(x)
    if isinstance(x, (list, tuple)):
        return "[" + ",".join(_fmt_attr(i) for i in x) + "]"
    if isinstance(x, float):
        return f"{x:.6g}"
    if hasattr(x, "short"):
        return str(x.short)
    return str(x)


def format_node(node: Node) -> str:
    outs = ", ".join(
        f"%{o.name} <{o.dtype.short}{format_shape(o.shape)}{'' if o.layout is None else ' ' + o.layout}>"
        for o in node.outputs
    )
    args = ", ".join(format_value(v) for v in node.inputs)
    attrs = ", ".join(f"{k}={_fmt_attr(node.attrs[k])}" for k in sorted(node.attrs))
    line = f"{outs} = {node.op}({args})"
    if attrs:
        line += f" {{{attrs}}}"
    if node.source_names:
        line += f"  # from {', '.join(node.source_names)}"
    return line


def to_text(graph: Graph) -> str:
    lines = [f"graph {graph.name} {{"]
    for v in graph.inputs:
        lines.append(f"  input %{v.name} <{v.dtype.short}{format_shape(v.shape)}"
                     f"{'' if v.layout is None else ' ' + v.layout}>")
    for node in graph.nodes:
        lines.append("  " + format_node(node))
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_dot(graph: Graph) -> str:
    def q(s: str) -> str:
        return '"' + s.replace('"', "'") + '"'  # labels carry DOT's own \\n line breaks

    br = "\\n"

    lines = [f"digraph {q(graph.name)} {{", "  rankdir=TB;", "  node [shape=box, fontname=Helvetica];"]
    for v in graph.inputs:
        lines.append(f"  {q('in:' + v.name)} [shape=ellipse, label={q(v.name + br + format_shape(v.shape))}];")
    ids = {id(n): f"n{i}" for i, n in enumerate(graph.nodes)}
    for node in graph.nodes:
        lines.append(f"  {ids[id(node)]} [label={q(node.op + br + node.name)}];")
    for node in graph.nodes:
        for v in node.inputs:
            if v.producer is not None:
                src = ids[id(v.producer)]
            elif v.is_const:
                continue
            else:
                src = q("in:" + v.name)
            lines.append(f"  {src} -> {ids[id(node)]} [label={q(format_shape(v.shape))}];")
    for v in graph.outputs:
        lines.append(f"  {q('out:' + v.name)} [shape=ellipse, label={q(v.name)}];")
        if v.producer is not None:
            lines.append(f"  {ids[id(v.producer)]} -> {q('out:' + v.name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
