"""mean-to-pool: a mean over both spatial axes is global average pooling.

``ReduceMean(x, axes=(H, W))`` = ``Pool(x, avg, global)`` (output N×1×1×C); without ``keepdims`` a
Reshape to (N, C) follows. Runs before to-nchw, on NHWC axes (1, 2) — or (2, 3) on NCHW graphs.
"""

from __future__ import annotations

from transpiler.ir.core import Graph
from transpiler.ir.ops import spatial_axes
from transpiler.pass_manager import Pass, PassContext, register_pass


@register_pass("mean-to-pool")
class MeanToPool(Pass):
    """Turn spatial ReduceMean/ReduceMax into global pooling."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            x = node.inputs[0] if node.inputs else None
            if node.op not in ("ReduceMean", "ReduceMax") or x is None or x.rank != 4 or x.shape is None:
                continue
            axes = tuple(sorted(int(a) % 4 for a in node.attrs["axes"]))
            if axes != spatial_axes(x.layout):
                continue
            mode = "avg" if node.op == "ReduceMean" else "max"
            pooled_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
            keep = bool(node.attrs.get("keepdims"))
            pooled = graph.new_value(node.output.name + ("" if keep else "/pool"), like=x, shape=pooled_shape)
            pooled.tf_name = node.output.tf_name if keep else None
            graph.add_node("Pool", [x], [pooled], {"mode": mode, "global_pool": True, "kernel": (0, 0),
                                                   "strides": (1, 1), "padding": "VALID", "pads": (0, 0, 0, 0)},
                           name=node.name, source_names=node.source_names, before=node)
            result = pooled
            if not keep:
                flat = graph.new_value(node.output.name, like=node.output, tf_name=node.output.tf_name)
                graph.add_node("Reshape", [pooled], [flat], {"shape": tuple(node.output.shape or ())},
                               name=node.name + "/flatten", source_names=node.source_names, before=node)
                result = flat
            graph.replace_all_uses_with(node.output, result)
            graph.remove(node)
            changed = True
        return changed
