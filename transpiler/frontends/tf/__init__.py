"""TensorFlow frontend: frozen GraphDef (.pb / .pbtxt) → IR, without importing TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transpiler.frontends.tf.importer import InputSpec, import_graphdef
from transpiler.frontends.tf.loader import load_graphdef
from transpiler.frontends.tf.registry import TF_HANDLERS, tf_op
from transpiler.ir.core import Graph


def load_tf_model(path: str | Path, *, inputs: Sequence[InputSpec] = (), outputs: Sequence[str] = ()) -> Graph:
    """Read a frozen TF graph and import the region between ``inputs`` and ``outputs`` as IR."""
    graphdef = load_graphdef(path)
    return import_graphdef(graphdef, inputs=inputs, outputs=outputs, source=str(path), name=Path(path).stem)


__all__ = ["TF_HANDLERS", "InputSpec", "import_graphdef", "load_graphdef", "load_tf_model", "tf_op"]
