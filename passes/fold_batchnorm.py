"""fold-batchnorm: fold batch norm and per-channel affine ops into the preceding conv or FC.

Batch norm is first written as a per-channel affine ``y = x·s + b`` with
``s = γ/√(σ²+ε)`` and ``b = β − μ·s``. The decomposed form Keras 3 emits,
``Mul(x, c1)`` then ``Add(·, c2)`` (after constant folding of ``Rsqrt/Mul/Sub``), and ``Sub(x, c)``,
``Add(x, c)`` (BiasAdd) with per-channel constants become affines too. Consecutive affines merge:
``(x·s1 + b1)·s2 + b2 = x·(s1·s2) + (b1·s2 + b2)``. An affine whose input is the sole use of a
convolution or fully-connected output folds into its weights:
``w' = w·s`` (per output channel), ``b' = b·s + bias``. What remains (an affine not after a conv)
is one ``Affine`` node, which the Caffe backend writes as a single Scale layer.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node
from transpiler.ir.ops import channel_axis
from transpiler.pass_manager import Pass, PassContext, register_pass
from transpiler.passes.common import per_channel_vector, sole_user

AFFINE_SOURCES = ("BatchNorm", "Mul", "Add", "Sub", "Div")


def _as_affine(graph: Graph, node: Node) -> bool:
    """Rewrite a BatchNorm or per-channel-constant Mul/Add/Sub/Div as an Affine node."""
    if node.op == "BatchNorm":
        params = [v.const for v in node.inputs[1:]]
        if any(p is None for p in params):
            return False
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)  # type: ignore[arg-type]
        scale = gamma / np.sqrt(var + float(node.attrs["epsilon"]))
        bias = beta - mean * scale
        x = node.inputs[0]
    else:
        a, c = node.inputs
        if a.const is not None and node.op in ("Mul", "Add"):
            a, c = c, a  # commutative: put the feature map first
        if a.const is not None or c.const is None or a.shape != node.output.shape or not a.dtype.is_float:
            return False
        vec = per_channel_vector(c.const, a)
        if vec is None:
            return False
        ones, zeros = np.ones_like(vec), np.zeros_like(vec)
        if node.op == "Div":
            if not np.all(vec):
                return False
            scale, bias = 1.0 / vec, zeros
        else:
            scale, bias = {"Mul": (vec, zeros), "Add": (ones, vec), "Sub": (ones, -vec)}[node.op]
        x = a
    if x.shape is None:
        return False
    dtype = x.dtype.numpy
    axis = channel_axis(x.layout, len(x.shape))
    scale_v = graph.constant(node.name + "/scale", scale.astype(dtype))
    bias_v = graph.constant(node.name + "/bias", bias.astype(dtype))
    graph.rewrite(node, "Affine", [x, scale_v, bias_v], {"axis": axis})
    return True


def _merge_affines(graph: Graph, first: Node, second: Node) -> None:
    s1, b1 = (np.asarray(v.const, dtype=np.float64) for v in first.inputs[1:])
    s2, b2 = (np.asarray(v.const, dtype=np.float64) for v in second.inputs[1:])
    dtype = first.inputs[0].dtype.numpy
    graph.set_input(second, 0, first.inputs[0])
    graph.set_input(second, 1, graph.constant(second.name + "/scale", (s1 * s2).astype(dtype)))
    graph.set_input(second, 2, graph.constant(second.name + "/bias", (b1 * s2 + b2).astype(dtype)))
    second.source_names = first.source_names + second.source_names
    graph.remove(first)


def _fold_into_producer(graph: Graph, producer: Node, affine: Node) -> bool:
    """Fold ``affine`` into the conv / FC ``producer`` whose only use it is."""
    w = producer.inputs[1].const
    if w is None or (len(producer.inputs) > 2 and producer.inputs[2].const is None):
        return False
    scale, shift = (np.asarray(v.const, dtype=np.float64) for v in affine.inputs[1:])
    w64 = np.array(w, dtype=np.float64)  # a copy, always: scaled in place below
    if producer.op == "Conv":
        # Scale each output channel where the layout keeps it (no transposed copies of the weights): the last
        # axis in HWIO, the last two (C, M; channel c·M + m) in HWCM, the first in OIHW.
        layout = producer.attrs["kernel_layout"]
        if layout == "HWIO":
            w64 *= scale
        elif layout == "HWCM":
            w64 *= scale.reshape(w.shape[2], w.shape[3])
        else:
            w64 *= scale.reshape(-1, 1, 1, 1)
    else:  # FullyConnected: w is (out, in)
        w64 *= scale.reshape(-1, 1)
    old_bias = np.asarray(producer.inputs[2].const, dtype=np.float64) if len(producer.inputs) > 2 else 0.0
    dtype = w.dtype
    graph.set_input(producer, 1, graph.constant(producer.name + "/weights", w64.astype(dtype)))
    new_bias = graph.constant(producer.name + "/bias", (old_bias * scale + shift).astype(dtype))
    if len(producer.inputs) > 2:
        graph.set_input(producer, 2, new_bias)
    else:
        graph.set_inputs(producer, [*producer.inputs, new_bias])
    producer.source_names = producer.source_names + affine.source_names
    out = producer.output
    out.tf_name = affine.output.tf_name  # the conv output now equals what the affine computed
    graph.replace_all_uses_with(affine.output, out)
    graph.remove(affine)
    return True


@register_pass("fold-batchnorm", fixed_point=True)
class FoldBatchNorm(Pass):
    """Fold BatchNorm / per-channel Mul+Add into the preceding Conv or FullyConnected."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is graph and node.op in AFFINE_SOURCES:
                changed |= _as_affine(graph, node)
        for node in graph.nodes:
            if node.graph is not graph or node.op != "Affine":
                continue
            x = node.inputs[0]
            producer = x.producer
            if producer is None or sole_user(x) is not node or any(o is x for o in graph.outputs):
                continue
            if producer.op == "Affine" and int(producer.attrs["axis"]) == int(node.attrs["axis"]):
                _merge_affines(graph, producer, node)
                changed = True
            elif producer.op in ("Conv", "FullyConnected") and int(node.attrs["axis"]) == channel_axis(
                    x.layout, len(x.shape or ())):
                changed |= _fold_into_producer(graph, producer, node)
        return changed



