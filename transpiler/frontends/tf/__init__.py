"""TensorFlow frontend: frozen GraphDef (.pb / .pbtxt) → IR, without importing TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transpiler.frontends.tf.importer import InputSpec, import_graphdef
from transpiler.frontends.tf.loader import load_graphdef
from transpiler.frontends.tf.od_api_ssd import import_od_api_ssd, is_od_api_ssd
from transpiler.frontends.tf.registry import TF_HANDLERS, tf_op
from transpiler.ir.core import Graph


def load_tf_model(path: str | Path, *, inputs: Sequence[InputSpec] = (), outputs: Sequence[str] = ()) -> Graph:
    """Read a frozen TF graph and import it as IR.

    An Object Detection API SSD detector (recognised by its postprocessor) is imported whole, with its
    pre/post-processing as IR (see :mod:`od_api_ssd`), unless ``--output`` asks for other tensors.
    Otherwise the region between ``inputs`` and ``outputs`` is imported as it is.
    """
    graphdef = load_graphdef(path)
    name = Path(path).stem if Path(path).stem != "model" else Path(path).resolve().parent.name
    if not outputs and is_od_api_ssd(graphdef):
        shape = next((spec.shape for spec in inputs if spec.shape), None)
        return import_od_api_ssd(graphdef, str(path), name, shape)
    return import_graphdef(graphdef, inputs=inputs, outputs=outputs, source=str(path), name=name)


__all__ = ["TF_HANDLERS", "InputSpec", "import_graphdef", "load_graphdef", "load_tf_model", "tf_op"]
