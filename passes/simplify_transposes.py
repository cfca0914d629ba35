"""simplify-transposes: remove the layout shuffles that to-nchw leaves where they cost nothing.

- ``Transpose(Transpose(x, p), q)`` → ``Transpose(x, p∘q)``; identity permutations vanish.
- A Transpose that only moves size-1 axes (the other axes keep their order) is a Reshape.
- ``Transpose(Softmax(Transpose(x, P), a), P⁻¹)`` → ``Softmax(x, P[a])`` (LogSoftmax too).
- ``Reshape(Reshape(x))`` → one Reshape; a Reshape to the input's own shape vanishes.
- ``FullyConnected(Reshape(Transpose(x, (0,2,3,1)), (N,−1)), w)``: the transpose folds into the
  weights. With ``x`` of shape (N,C,H,W), the NHWC flattening reads column ``(h·W + w)·C + c``; the
  NCHW one reads ``(c·H + h)·W + w``; so ``w'[:, (c·H + h)·W + w] = w[:, (h·W + w)·C + c]`` and the
  FC reads ``x`` flattened directly. The flattened value then holds ``transpose(tf(x), tf_perm(x))``
  flattened, not TF's flattening: it takes ``x``'s TF name and permutation (conversion.json records
  it as a reshaped view), or none.
"""

from __future__ import annotations

import numpy as np

from transpiler.ir.core import Graph, Node
from transpiler.pass_manager import Pass, PassContext, register_pass

TO_NHWC = (0, 2, 3, 1)


def _only_unit_moves(shape: tuple[int | None, ...], perm: tuple[int, ...]) -> bool:
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def _drop(graph: Graph, node: Node) -> None:
    src, out = node.inputs[0], node.output
    graph.replace_all_uses_with(out, src)
    graph.remove(node)


def _softmax_between(graph: Graph, before: Node) -> bool:
    """``Transpose(Softmax(Transpose(x, P), a), Q)`` with ``P[Q[k]] = k`` is ``Softmax(x, P[a])`` (TF writes a
    softmax on another axis as transposes around a last-axis softmax)."""
    perm = tuple(before.attrs["perm"])
    soft = before.output.users[0] if len(before.output.uses) == 1 else None
    if soft is None or soft.op not in ("Softmax", "LogSoftmax") or len(soft.output.uses) != 1:
        return False
    after = soft.output.users[0]
    if (after.op != "Transpose" or any(o is soft.output or o is before.output for o in graph.outputs)
            or any(perm[q] != k for k, q in enumerate(after.attrs["perm"]))):
        return False
    soft.attrs["axis"] = perm[int(soft.attrs.get("axis", -1)) % len(perm)]
    graph.set_input(soft, 0, before.inputs[0])
    out, final = soft.output, after.output
    out.shape, out.layout, out.tf_name, out.tf_perm = final.shape, final.layout, final.tf_name, final.tf_perm
    graph.replace_all_uses_with(final, out)
    graph.remove(after)
    graph.remove(before)
    return True


def _fold_into_fc(graph: Graph, transpose: Node) -> bool:
    x = transpose.inputs[0]
    reshape = transpose.output.users[0] if len(transpose.output.uses) == 1 else None
    if (tuple(transpose.attrs["perm"]) != TO_NHWC or reshape is None or reshape.op != "Reshape"
            or x.shape is None or len(reshape.output.shape or ()) != 2 or None in x.shape):
        return False
    fcs = reshape.output.users
    if not fcs or any(u.op != "FullyConnected" or u.inputs[0] is not reshape.output or u.inputs[1].const is None
                      for u in fcs):
        return False
    _, c, h, w = (int(d) for d in x.shape)  # type: ignore[arg-type]
    # new column j = (c·H + h)·W + w takes old column (h·W + w)·C + c
    old_cols = np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    for fc in fcs:
        weights = fc.inputs[1].const
        assert weights is not None
        graph.set_input(fc, 1, graph.constant(fc.name + "/weights_nchw", weights[:, old_cols]))
    graph.set_input(reshape, 0, x)
    graph.remove(transpose)
    # The Reshape now flattens x in NCHW order: it no longer equals TF's (NHWC-order) flattening,
    # but TF's x transposed like x and flattened; without a TF name for x it equals no TF tensor.
    flat = reshape.output
    flat.tf_name, flat.tf_perm = (x.tf_name, x.tf_perm) if x.tf_name else (None, None)
    return True


@register_pass("simplify-transposes", fixed_point=True)
class SimplifyTransposes(Pass):
    """Compose, drop or fold Transpose/Reshape chains."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.graph is not graph:
                continue
            x = node.inputs[0] if node.inputs else None
            if node.op == "Transpose" and x is not None and x.shape is not None:
                perm = tuple(node.attrs["perm"])
                prev = x.producer
                if perm == tuple(range(len(perm))):
                    _drop(graph, node)
                elif prev is not None and prev.op == "Transpose" and len(x.uses) == 1:
                    node.attrs["perm"] = tuple(prev.attrs["perm"][p] for p in perm)
                    graph.set_input(node, 0, prev.inputs[0])
                    graph.remove(prev)
                elif _fold_into_fc(graph, node) or _softmax_between(graph, node):
                    pass
                elif _only_unit_moves(x.shape, perm) and node.output.shape is not None:
                    node.op = "Reshape"
                    node.attrs = {"shape": tuple(node.output.shape)}
                else:
                    continue
                changed = True
            elif node.op == "Reshape" and x is not None:
                prev = x.producer
                if node.output.shape == x.shape and not any(o is node.output for o in graph.outputs):
                    _drop(graph, node)
                elif prev is not None and prev.op == "Reshape" and len(x.uses) == 1:
                    graph.set_input(node, 0, prev.inputs[0])
                    graph.remove(prev)
                else:
                    continue
                changed = True
        return changed
