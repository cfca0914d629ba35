"""TensorFlow frontend: frozen GraphDef (.pb / .pbtxt) or SavedModel → IR, without importing TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transpiler.errors import TranspilerError, UsageError, name_the_place
from transpiler.frontends.tf.importer import InputSpec, import_graphdef
from transpiler.frontends.tf.loader import load_graphdef
from transpiler.frontends.tf.od_api_ssd import (
    import_od_api_ssd,
    import_tf2_od_api_ssd,
    is_od_api_ssd,
    is_tf2_od_api_ssd,
)
from transpiler.frontends.tf.registry import TF_HANDLERS, tf_op
from transpiler.frontends.tf.saved_model import find_saved_model, import_saved_model, load_saved_model
from transpiler.ir.core import Graph


def load_tf_model(path: str | Path, *, inputs: Sequence[InputSpec] = (), outputs: Sequence[str] = (),
                  signature: str | None = None) -> Graph:
    """Read a frozen TF graph and import it as IR.

    An Object Detection API SSD detector (recognised by its postprocessor) is imported whole, with its
    pre/post-processing as IR (see :mod:`od_api_ssd`), unless ``--output`` asks for other tensors; so is a
    TF2 OD API SavedModel (exporter_lib_v2's, or the TFLite-friendly export), recognised by structure.
    Otherwise the region between ``inputs`` and ``outputs`` is imported as it is. A SavedModel
    (its directory or ``saved_model.pb``, recognised by content) is read without TensorFlow: its
    ``signature`` (default ``serving_default``) with the weights from its checkpoint (see :mod:`saved_model`).
    Every refusal names the model file (a helper's that could not know it gets it prefixed).
    """
    try:
        return _load(path, inputs, outputs, signature)
    except TranspilerError as exc:
        name_the_place(exc, str(path))
        raise


def _load(path: str | Path, inputs: Sequence[InputSpec], outputs: Sequence[str], signature: str | None) -> Graph:
    if find_saved_model(path) is not None:
        model = load_saved_model(path, signature)  # read once, for the detector check and the import
        if not outputs and is_tf2_od_api_ssd(model.graph, model.implements):
            p = Path(path)
            shape = next((spec.shape for spec in inputs if spec.shape), None)
            return import_tf2_od_api_ssd(model, p.name if p.is_dir() else p.resolve().parent.name, shape)
        return import_saved_model(path, inputs=inputs, outputs=outputs, signature=signature, loaded=model)
    if signature is not None:
        raise UsageError(f"{path}: --signature applies to SavedModels; this is not one")
    graphdef = load_graphdef(path)
    name = Path(path).stem if Path(path).stem != "model" else Path(path).resolve().parent.name
    if not outputs and is_od_api_ssd(graphdef):
        shape = next((spec.shape for spec in inputs if spec.shape), None)
        return import_od_api_ssd(graphdef, str(path), name, shape)
    return import_graphdef(graphdef, inputs=inputs, outputs=outputs, source=str(path), name=name)


__all__ = ["TF_HANDLERS", "InputSpec", "import_graphdef", "load_graphdef", "load_tf_model", "tf_op"]
