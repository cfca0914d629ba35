"""What a Keras layer handler works with: the IR graph being built, the layer's config and weights.

Handlers build the same IR the TF importer builds from the frozen graph of that layer (NHWC maps, HWIO /
HWCM kernels, symbolic SAME/VALID padding, bias as a separate ``Add``, batch norm as ``BatchNorm``, relu6
as ``Clip(0, 6)``, Dense as ``MatMul`` + ``Add``), so every pass and the backend treat both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.keras.files import KerasModel, LayerWeights
from transpiler.frontends.nodes import add_source_node
from transpiler.ir.core import Graph, Value


@dataclass
class Layer:
    """One layer of the config: ``path`` (its name, inside the names of enclosing models), class, config."""

    path: str
    cls: str
    config: dict[str, Any]
    weights: LayerWeights
    # An operation's arguments in call order: IR values for tensors, numbers (or nested lists) for constants.
    operands: list[Any] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key, default)
        return default if value is None else value


@dataclass
class KerasContext:
    graph: Graph
    model: KerasModel

    @property
    def source(self) -> str:
        return self.model.source

    def where(self, layer: Layer) -> str:
        return f"{self.source}: layer '{layer.path}' ({layer.cls})"

    def add(self, op: str, layer: Layer, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
            suffix: str = "") -> Value:
        """An IR node made from ``layer``; shapes are inferred at once (a contradiction names the layer)."""
        return add_source_node(self.graph, op, inputs, attrs, name=layer.path + suffix, source_name=layer.path,
                               where=self.where(layer)).output

    def constant(self, layer: Layer, array: Any, suffix: str) -> Value:
        return self.graph.constant(layer.path + suffix, np.asarray(array, dtype=np.float32))

    def weights(self, layer: Layer, names: Sequence[str], aliases: dict[str, str] | None = None
                ) -> dict[str, np.ndarray]:
        """The layer's variables by name: ``names`` in creation order (how ``.keras`` stores them, by index);
        legacy ``.h5`` stores names (``aliases`` maps a stored name to ours, e.g. tf-keras' depthwise_kernel)."""
        w = layer.weights
        if w.ordered is not None:
            if len(w.ordered) != len(names):
                raise UnsupportedModelError(f"{self.where(layer)}: {len(w.ordered)} variables stored, the config "
                                            f"implies {len(names)} ({', '.join(names)})")
            found = dict(zip(names, w.ordered, strict=True))
        else:
            found = {(aliases or {}).get(k, k): v for k, v in w.named.items()}
            missing = [n for n in names if n not in found]
            if missing:
                raise UnsupportedModelError(f"{self.where(layer)}: weights {', '.join(missing)} not in the file "
                                            f"(stored: {', '.join(sorted(w.named)) or 'none'})")
        return {n: np.asarray(found[n], dtype=np.float32) for n in names}
