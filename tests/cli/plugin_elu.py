"""Example plugin (used by the tests and shown in the README): TF ``Elu`` → IR ``Elu`` → Caffe ``ELU``.

It registers a TF op handler, an IR op with shape inference and a reference kernel, a Caffe
emitter, and a pass that the default pipeline runs after map-relu6.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transpiler.backends.caffe.emitter import CaffeEmitter, caffe_op
from transpiler.frontends.tf import tf_op
from transpiler.frontends.tf.importer import ImportContext
from transpiler.ir import Graph, Node, Value, register_op
from transpiler.ir.ops import same_as_input
from transpiler.pass_manager import Pass, PassContext, register_pass

register_op("Elu", same_as_input, lambda node, a: [np.where(a[0] > 0, a[0], np.expm1(a[0])).astype(a[0].dtype)])


@tf_op("Elu")
def elu(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Elu", node, [ctx.input(node, 0)]).outputs


@caffe_op("Elu")
def emit_elu(e: CaffeEmitter, node: Node) -> str:
    e.layer(node.name, "ELU", [e.blob(node.inputs[0])]).elu_param.alpha = 1.0
    return node.name


@register_pass("mark-elu", run_after="map-relu6")
class MarkElu(Pass):
    """Tag every Elu node (shows that plugin passes run and can rewrite attributes)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes:
            if node.op == "Elu" and not node.attrs.get("plugin_seen"):
                node.attrs["plugin_seen"] = True
                changed = True
        return changed
