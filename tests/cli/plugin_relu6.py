"""Test plugin overriding a built-in: TF ``Relu6`` → IR ``BoundedRelu`` → Caffe ``ReLU → Power → ReLU → Eltwise``.

``min(relu(x), 6) = relu(x) − relu(relu(x) − 6)``, exact. The built-in handler maps Relu6 to ``Clip`` and
the ``ssd`` flavor writes one ``ReLU6`` layer, so the four layers show that the plugin's handler won.
``BoundedRelu`` is element-wise and declared ``layout_free`` unless ``PLUGIN_RELU6_LAYOUT_FREE=0`` (then
to-nchw must put Transposes, i.e. Caffe Permutes, around it: the test of the flag needs both).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from transpiler.backends.caffe.emitter import CaffeEmitter, caffe_op
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.frontends.tf import tf_op
from transpiler.frontends.tf.importer import ImportContext
from transpiler.ir import Node, Value, register_op
from transpiler.ir.ops import same_as_input

register_op("BoundedRelu", same_as_input, lambda node, a: [np.clip(a[0], 0, 6)],
            layout_free=os.environ.get("PLUGIN_RELU6_LAYOUT_FREE", "1") == "1")


@tf_op("Relu6")
def relu6(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("BoundedRelu", node, [ctx.input(node, 0)]).outputs


@caffe_op("BoundedRelu")
def emit_bounded_relu(e: CaffeEmitter, node: Node) -> str:
    e.layer(f"{node.name}/relu", "ReLU", [e.blob(node.inputs[0])])
    shift = e.layer(f"{node.name}/minus6", "Power", [f"{node.name}/relu"])
    shift.power_param.shift = -6.0
    e.layer(f"{node.name}/excess", "ReLU", [f"{node.name}/minus6"])
    sub = e.layer(node.name, "Eltwise", [f"{node.name}/relu", f"{node.name}/excess"])
    sub.eltwise_param.operation = cp.EltwiseParameter.SUM
    sub.eltwise_param.coeff.extend([1.0, -1.0])
    return node.name
