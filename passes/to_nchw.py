"""to-nchw: convert the graph from TF's NHWC layout to Caffe's NCHW, in one place.

Every 4-D feature map ``v`` (layout NHWC) becomes ``v' = transpose(v, P)`` with ``P = (0,3,1,2)``;
NHWC axis ``a`` becomes NCHW axis ``P.index(a)`` (C: 3→1, H: 1→2, W: 2→3). Per op:

- Conv weights: HWIO → OIHW; depthwise HWCM → (C·M, 1, kh, kw) (output channel ``c·M + m``).
- Affine/Concat/Softmax/Reduce* axes and Pad pads are remapped; constant operands of element-wise
  ops are reshaped to rank 4 and transposed by ``P`` so broadcasting still pairs the same elements.
- Ops whose meaning depends on memory order (Reshape, Squeeze, Flatten, Transpose, MatMul...) get a
  ``Transpose(0,2,3,1)`` back to NHWC in front and, when they produce a 4-D map, a ``Transpose(P)``
  after. ``simplify-transposes`` then removes what is trivial (moves of size-1 axes) and folds a
  transpose before Flatten → FullyConnected into the FC weights (its columns permuted from HWC to CHW
  order).

Graph inputs and outputs keep their permutation in ``Value.tf_perm`` (recorded in conversion.json):
the Caffe input blob is NCHW.
"""

from __future__ import annotations

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.ir.core import Graph, Node, Value
from transpiler.ir.ops import is_layout_free, oihw_weights
from transpiler.pass_manager import Pass, PassContext, register_pass

TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)

ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Maximum", "Minimum"})
# Ops that read the layout from their input value (PriorBox only needs the spatial size); ops registered
# with ``register_op(..., layout_free=True)`` (element-wise, plugins' too) are treated the same.
LAYOUT_FREE = frozenset({"Relu", "Relu6", "Clip", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Rsqrt", "Neg",
                         "Square", "Identity", "Cast", "Pool", "BatchNorm", "PriorBox", "Deconv", "Upsample",
                         "Refused"})
AXIS_OPS = frozenset({"Concat", "Softmax", "LogSoftmax", "SliceAxis"})
REDUCE_OPS = frozenset({"ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin"})


def nchw_axis(axis: int, rank: int = 4) -> int:
    return TO_NCHW.index(axis % rank)


def _is_nchw(v: Value) -> bool:
    return v.layout == "NCHW" and v.rank == 4


def _convert_value(v: Value) -> None:
    if v.layout == "NHWC" and v.shape is not None and len(v.shape) == 4:
        v.shape = tuple(v.shape[p] for p in TO_NCHW)
        v.layout = "NCHW"
        v.tf_perm = TO_NCHW


def _transpose(graph: Graph, x: Value, perm: tuple[int, ...], layout: str | None, before: Node, tag: str) -> Value:
    assert x.shape is not None
    out = graph.new_value(f"{x.name}/{tag}", like=x, shape=tuple(x.shape[p] for p in perm), layout=layout)
    out.tf_name = x.tf_name if layout == "NHWC" else None
    graph.add_node("Transpose", [x], [out], {"perm": perm}, name=f"{before.name}/{tag}",
                   source_names=before.source_names, before=before)
    return out


def _rank4_const(c: np.ndarray) -> np.ndarray:
    if c.ndim == 0 or c.size == 1:
        return c
    return c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(TO_NCHW)


def _convert_node(graph: Graph, node: Node) -> None:
    ins = node.inputs
    nchw_in = [_is_nchw(v) for v in ins]
    if node.op == "Conv":
        w = ins[1].const
        if w is None:
            raise UnsupportedModelError(f"{node.describe()}: convolution weights must be constant")
        graph.set_input(node, 1, graph.constant(ins[1].name + "/oihw", oihw_weights(w, node.attrs["kernel_layout"])))
        node.attrs["kernel_layout"] = "OIHW"
    elif node.op == "Affine" and nchw_in[0]:
        node.attrs["axis"] = nchw_axis(int(node.attrs["axis"]))
    elif node.op in ELEMENTWISE and any(nchw_in):
        for i, v in enumerate(ins):
            if v.const is not None:
                graph.set_input(node, i, graph.constant(v.name + "/nchw", _rank4_const(v.const)))
            elif not nchw_in[i] and (v.rank or 0) > 0:
                raise UnsupportedModelError(f"{node.describe()}: broadcasting a rank-{v.rank} tensor against a "
                                            "feature map is not supported")
    elif node.op in AXIS_OPS and any(nchw_in):
        node.attrs["axis"] = nchw_axis(int(node.attrs["axis"]))
    elif node.op in REDUCE_OPS and nchw_in[0]:
        node.attrs["axes"] = tuple(sorted(nchw_axis(int(a)) for a in node.attrs["axes"]))
        if not node.attrs.get("keepdims"):
            # The reduced result has no layout; axis order of what remains must match TF's.
            kept = [a for a in range(4) if a not in node.attrs["axes"]]
            tf_kept = [TO_NCHW[a] for a in kept]
            if tf_kept != sorted(tf_kept):
                _restore_nhwc(graph, node, 0)
                node.attrs["axes"] = tuple(sorted(TO_NCHW[a] for a in node.attrs["axes"]))
    elif node.op == "Pad" and nchw_in[0]:
        pads = node.attrs["pads"]
        node.attrs["pads"] = tuple(tuple(pads[p]) for p in TO_NCHW)
    elif node.op in LAYOUT_FREE or is_layout_free(node.op) or not (any(nchw_in) or _makes_map(node)):
        pass
    else:
        for i, is_nchw in enumerate(nchw_in):
            if is_nchw:
                _restore_nhwc(graph, node, i)
        for out in node.outputs:
            if out.layout == "NHWC" and out.rank == 4:
                _to_nchw_after(graph, node, out)
        return
    for out in node.outputs:
        _convert_value(out)


def _makes_map(node: Node) -> bool:
    """A 4-D NHWC map computed from data of another rank (e.g. a Reshape or Pack of 3-D or 5-D tensors): its
    elements are in NHWC order, so readers need a Transpose to NCHW, not just a relabelled shape."""
    return (any(v.const is None for v in node.inputs)
            and any(o.layout == "NHWC" and o.rank == 4 for o in node.outputs))


def _restore_nhwc(graph: Graph, node: Node, index: int) -> None:
    x = node.inputs[index]
    graph.set_input(node, index, _transpose(graph, x, TO_NHWC, "NHWC", node, "to_nhwc"))


def _to_nchw_after(graph: Graph, node: Node, out: Value) -> None:
    """Readers of ``out`` (NHWC) read ``transpose(out, P)`` instead."""
    users = list(out.uses)
    is_output = any(o is out for o in graph.outputs)
    nxt = _next_node(graph, node)
    t_out = graph.new_value(f"{out.name}/nchw", like=out, layout="NCHW")
    assert out.shape is not None
    t_out.shape = tuple(out.shape[p] for p in TO_NCHW)
    t_out.tf_name, t_out.tf_perm = out.tf_name, TO_NCHW
    kwargs = {"before": nxt} if nxt is not None else {}
    graph.add_node("Transpose", [out], [t_out], {"perm": TO_NCHW}, name=f"{node.name}/to_nchw",
                   source_names=node.source_names, **kwargs)
    for user, i in users:
        graph.set_input(user, i, t_out)
    if is_output:
        graph.outputs = [t_out if o is out else o for o in graph.outputs]


def _next_node(graph: Graph, node: Node) -> Node | None:
    nodes = graph.nodes
    for i, n in enumerate(nodes):
        if n is node:
            return nodes[i + 1] if i + 1 < len(nodes) else None
    return None


@register_pass("to-nchw")
class ToNCHW(Pass):
    """Convert NHWC feature maps, weights and axes to NCHW."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if graph.metadata.get("layout") == "NCHW":
            return False
        for v in graph.inputs:
            _convert_value(v)
        problems: list[str] = []
        for node in graph.nodes:
            try:
                _convert_node(graph, node)
            except UnsupportedModelError as exc:  # every such node is reported, at once
                problems.append(str(exc))
        if problems:
            source = graph.metadata.get("source", graph.name)
            raise UnsupportedModelError(f"{source}: {len(problems)} node(s) have no NCHW form", problems)
        graph.metadata["layout"] = "NCHW"
        return True
