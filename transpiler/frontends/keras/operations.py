"""Operations applied to symbolic tensors in a functional model, which its config keeps beside the layers:
Keras 3 ops (``x + 3.0`` → ``keras.src.ops.numpy.Add`` with args ``[tensor, 3.0]``) and tf-keras ``TFOpLambda``
layers (``tf.__operators__.add`` with ``{"y": 3.0}``). MobileNetV3 builds its hard-sigmoid so:
``ReLU(6)(x + 3) · (1/6)``.

Element-wise binary ops take two tensors or a tensor and a constant (cast to float32, broadcast as numpy
does: TF's ``AddV2``/``Mul``/``RealDiv``... on the same operands); activation ops are the activations of
:mod:`layers` (Keras 3's ``hard_sigmoid`` is ``relu6(x + 3)/6``). Anything else is refused by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.keras.context import KerasContext, Layer
from transpiler.frontends.keras.files import is_operation
from transpiler.frontends.keras.layers import activation
from transpiler.ir.core import Value

BINARY_OPS = {
    # Keras 3 (keras.src.ops.numpy)
    "Add": "Add", "Subtract": "Sub", "Multiply": "Mul", "Divide": "Div", "TrueDivide": "Div",
    "Maximum": "Maximum", "Minimum": "Minimum",
    # tf-keras TFOpLambda functions
    "tf.__operators__.add": "Add", "tf.math.add": "Add", "tf.math.subtract": "Sub", "tf.math.multiply": "Mul",
    "tf.math.truediv": "Div", "tf.math.divide": "Div", "tf.math.maximum": "Maximum", "tf.math.minimum": "Minimum",
}
UNARY_OPS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Silu": "silu", "HardSigmoid":
    "hard_sigmoid", "HardSilu": "hard_silu", "Softmax": "softmax", "Elu": "elu",
    "tf.nn.relu": "relu", "tf.nn.relu6": "relu6", "tf.math.sigmoid": "sigmoid", "tf.nn.sigmoid": "sigmoid",
    "tf.math.tanh": "tanh", "tf.nn.silu": "silu", "tf.nn.swish": "silu",
}


def operation_key(cfg: dict[str, Any]) -> str | None:
    """``tf.<function>`` for a TFOpLambda, the op class for a Keras 3 op, None for a layer."""
    if cfg.get("class_name") == "TFOpLambda":
        return "tf." + str(cfg.get("config", {}).get("function"))
    return str(cfg.get("class_name")) if is_operation(cfg) else None


def is_supported_operation(key: str) -> bool:
    return key in BINARY_OPS or key in UNARY_OPS


def operation(ctx: KerasContext, layer: Layer, key: str) -> Value:
    operands = [o for o in (layer.operands or []) if o is not None]
    if key in UNARY_OPS:
        if len(operands) != 1 or not isinstance(operands[0], Value):
            raise UnsupportedModelError(f"{ctx.where(layer)}: expected one tensor argument, got {operands!r}")
        y = activation(ctx, layer, operands[0], UNARY_OPS[key], suffix="")
        return y if y is not operands[0] else ctx.add("Identity", layer, [y])
    if len(operands) != 2 or not any(isinstance(o, Value) for o in operands):
        raise UnsupportedModelError(f"{ctx.where(layer)}: expected a tensor and a tensor or constant, got "
                                    f"{[_describe(o) for o in operands]}")
    values = [o if isinstance(o, Value) else ctx.constant(layer, _number(ctx, layer, o), f"/operand{i}")
              for i, o in enumerate(operands)]
    return ctx.add(BINARY_OPS[key], layer, values)


def _number(ctx: KerasContext, layer: Layer, o: Any) -> np.ndarray:
    try:
        return np.asarray(o, dtype=np.float32)
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"{ctx.where(layer)}: argument {o!r} is neither a tensor nor a number") from None


def _describe(o: Any) -> str:
    return "tensor" if isinstance(o, Value) else repr(o)
