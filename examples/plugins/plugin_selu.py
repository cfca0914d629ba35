"""Example plugin: TF ``Selu`` (which the package does not convert) → IR ``Selu`` → Caffe ``ELU`` + ``Power``.

``selu(x) = λ·x`` for ``x > 0`` and ``λ·α·(eˣ − 1)`` otherwise (α ≈ 1.6733, λ ≈ 1.0507), which is
``λ·elu_α(x)``: Caffe's ``ELU`` layer with ``alpha = α`` followed by ``Power`` with ``scale = λ``, exact
to float rounding (both layers run in OpenCV dnn and SSD-Caffe).

It shows every piece a plugin can register: a TF op handler, an IR op (shape inference, a numpy
reference kernel, and ``layout_free=True``: it is element-wise, so no Permute is put around it), a
Caffe emitter, and a pass that joins the default pipeline. Run it from the repository root:

    python -m transpiler MODEL.pb --plugin examples/plugins/plugin_selu.py --verify
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

# TF's constants (tensorflow/core/kernels/relu_op_functor.h).
ALPHA = 1.6732632423543772848170429916717
SCALE = 1.0507009873554804934193349852946


def _selu(node: Node, a: list[np.ndarray]) -> list[np.ndarray]:
    x = a[0].astype(np.float64)
    return [(SCALE * np.where(x > 0, x, ALPHA * np.expm1(x))).astype(a[0].dtype)]


register_op("Selu", same_as_input, _selu, layout_free=True)


@tf_op("Selu")
def selu(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Selu", node, [ctx.input(node, 0)]).outputs


@caffe_op("Selu")
def emit_selu(e: CaffeEmitter, node: Node) -> str:
    elu = e.layer(f"{node.name}/elu", "ELU", [e.blob(node.inputs[0])])
    elu.elu_param.alpha = ALPHA
    scale = e.layer(node.name, "Power", [f"{node.name}/elu"])
    scale.power_param.scale = SCALE
    return node.name


@register_pass("count-selu", run_after="map-relu6")
class CountSelu(Pass):
    """Count the Selu nodes into the graph's metadata (shows a plugin pass in the default pipeline)."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        count = sum(node.op == "Selu" for node in graph.nodes)
        if graph.metadata.get("selu_nodes") == count:
            return False
        graph.metadata["selu_nodes"] = count
        return True
