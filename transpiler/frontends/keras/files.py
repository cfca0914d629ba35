"""Reading Keras model files without Keras or TensorFlow: the JSON config and the weights, as numpy arrays.

Two containers, told apart by their first bytes (not their names):

- ``.keras`` (Keras 3, ``PK\\x03\\x04``: a zip): ``config.json`` (the model's config), ``metadata.json``
  (``keras_version``) and ``model.weights.h5``. In the HDF5 file a model's layers sit under
  ``layers/<key>/``, their variables as datasets ``vars/0 … vars/n`` in creation order, a nested model's own
  layers under ``layers/<key>/layers/…``. The key is not the layer's name but its class name in snake case,
  numbered by occurrence among the model's layers (``conv2d``, ``conv2d_1``, ``batch_normalization``...;
  a Sequential model does not count its InputLayer); recent Keras versions also store the layer's name as the
  ``name`` attribute of ``vars``, which is checked where present.
- legacy ``.h5`` (HDF5 signature ``\\x89HDF\\r\\n\\x1a\\n``; Keras 2 / tf-keras and Keras 3's legacy save): the
  config is the ``model_config`` attribute, the weights are under ``model_weights/<layer name>/``, listed in
  order by the group's ``weight_names`` attribute (``conv1/kernel:0``, ``sequential/dense/bias``...). A nested
  model's group lists every weight of all its layers; each name ends ``<layer>/<variable>``, which binds it.

The result is a :class:`KerasModel`: the config and, per layer, its weights (:class:`LayerWeights`).
h5py is imported only here, only when such a file is read.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.errors import ModelLoadError

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})


def keras_file_kind(path: str | Path) -> str | None:
    """``"keras"`` for a Keras 3 zip (with ``config.json``), ``"h5"`` for an HDF5 file, else None."""
    p = Path(path)
    if not p.is_file():
        return None
    with p.open("rb") as f:
        head = f.read(8)
    if head == HDF5_MAGIC:
        return "h5"
    if head[:4] == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(p) as z:
                return "keras" if "config.json" in z.namelist() else None
        except zipfile.BadZipFile:
            return "keras" if p.suffix == ".keras" else None
    return None


@dataclass
class LayerWeights:
    """A layer's stored variables: in creation order (``.keras``) or by variable name (legacy ``.h5``)."""

    ordered: list[np.ndarray] | None = None
    named: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class KerasModel:
    """A model's config (``{"class_name", "config"}``), the weights of every layer and the Keras version.

    ``weights`` is keyed by the layer's path: the names of the models enclosing it and its own, joined by
    ``/`` (``mobilenetv2_1.00_224/Conv1``), the top-level model's name left out."""

    source: str
    config: dict[str, Any]
    keras_version: str
    weights: dict[str, LayerWeights]

    @property
    def keras_major(self) -> int:
        m = re.match(r"\d+", self.keras_version)
        return int(m.group()) if m else 3


def read_keras_model(path: str | Path) -> KerasModel:
    """Read a ``.keras`` or legacy ``.h5`` model file; :class:`ModelLoadError` naming the file if it is not one."""
    source = str(path)
    kind = keras_file_kind(path)
    try:
        if kind == "keras":
            return _read_keras_zip(Path(path), source)
        if kind == "h5":
            return _read_legacy_h5(Path(path), source)
    except ModelLoadError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{source}: not a readable Keras model file ({type(exc).__name__}: {exc})") from None
    raise ModelLoadError(f"{source}: not a Keras model file (.keras zip or HDF5)")


# ------------------------------------------------------------------------------------- .keras (Keras 3)
def _read_keras_zip(path: Path, source: str) -> KerasModel:
    import h5py

    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        missing = [n for n in ("config.json", "model.weights.h5") if n not in names]
        if missing:
            raise ModelLoadError(f"{source}: a .keras file must hold config.json and model.weights.h5; "
                                 f"missing {', '.join(missing)}")
        config = json.loads(z.read("config.json"))
        version = "3"
        if "metadata.json" in names:
            version = str(json.loads(z.read("metadata.json")).get("keras_version", "3"))
        weights_bytes = z.read("model.weights.h5")
    _check_model_config(config, source)
    weights: dict[str, LayerWeights] = {}
    with h5py.File(io.BytesIO(weights_bytes), "r") as f:
        _walk_v3(config, f, "", weights, source)
    return KerasModel(source, config, version, weights)


def snake_case(name: str) -> str:
    """Keras' own rule for the weight-file key of a layer class: ``DepthwiseConv2D`` → ``depthwise_conv2d``,
    ``ReLU`` → ``re_lu``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def is_operation(layer: dict[str, Any]) -> bool:
    """A Keras 3 op applied to symbolic tensors (``x + 3`` → ``keras.src.ops.numpy.Add``): not a layer, holds no
    weights. Keras 3's legacy ``.h5`` drops the module; an op's config is its name alone (a layer's has more)."""
    if "module" in layer:
        return str(layer["module"]).startswith("keras.src.ops")
    return layer.get("class_name") != "TFOpLambda" and set(layer.get("config", {})) <= {"name"}


def _walk_v3(model: dict[str, Any], group: Any, prefix: str, out: dict[str, LayerWeights], source: str) -> None:
    layers = model["config"]["layers"]
    sequential = model["class_name"] == "Sequential"
    container = group.get("layers")
    counts: dict[str, int] = {}
    for layer in layers:
        if is_operation(layer) or (sequential and layer["class_name"] == "InputLayer"):
            continue
        name = layer_name(layer)
        key = snake_case(layer["class_name"])
        counts[key] = counts.get(key, -1) + 1
        key = key if counts[key] == 0 else f"{key}_{counts[key]}"
        sub = container[key] if container is not None and key in container else None
        path = prefix + name
        if sub is None:
            out[path] = LayerWeights(ordered=[])
            continue
        stored = sub["vars"].attrs.get("name") if "vars" in sub else None
        if stored is not None and _text(stored) != name:
            raise ModelLoadError(f"{source}: the weights stored at 'layers/{key}' belong to layer '{_text(stored)}', "
                                 f"the config puts layer '{name}' there (file written by another Keras?)")
        if layer["class_name"] in MODEL_CLASSES:
            _walk_v3(layer, sub, path + "/", out, source)
            continue
        vars_ = sub.get("vars", {})
        out[path] = LayerWeights(ordered=[np.asarray(vars_[str(i)]) for i in range(len(vars_))])


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def layer_name(layer: dict[str, Any]) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name", ""))


# --------------------------------------------------------------------------------------- legacy .h5
def _read_legacy_h5(path: Path, source: str) -> KerasModel:
    import h5py

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ModelLoadError(f"{source}: an HDF5 file without a 'model_config' attribute (weights only, saved "
                                 "with save_weights?): the model's structure is not in it")
        config = json.loads(_text(f.attrs["model_config"]))
        _check_model_config(config, source)
        version = _text(f.attrs.get("keras_version", "2"))
        root = f.get("model_weights", f)
        weights: dict[str, LayerWeights] = {}
        _walk_h5(config, root, "", weights, source, None)
    return KerasModel(source, config, version, weights)


# Variables tf-keras names without their layer's scope (``mean:0``): inside a nested model they are bound to the
# layers of these classes that have none of their own, in order (the order tf-keras itself loads them in).
UNSCOPED_VARIABLES = {"Normalization": ("mean", "variance", "count")}


@dataclass
class _NestedWeights:
    owned: dict[tuple[str, str], np.ndarray]  # (layer, variable) → array
    unowned: list[tuple[str, np.ndarray]]  # (variable, array) of names without a layer, in stored order


def _walk_h5(model: dict[str, Any], root: Any, prefix: str, out: dict[str, LayerWeights], source: str,
             inner: _NestedWeights | None) -> None:
    """Top level: each layer's group; inside a nested model, that model's table of weights."""
    for layer in model["config"]["layers"]:
        name = layer_name(layer)
        path = prefix + name
        if inner is None:
            table = _group_weights(root[name], source) if name in root else []
            if layer["class_name"] in MODEL_CLASSES:
                nested = _NestedWeights({(owner, var): a for owner, var, a in table if owner},
                                        [(var, a) for owner, var, a in table if not owner])
                _walk_h5(layer, root, path + "/", out, source, nested)
            else:
                out[path] = LayerWeights(named={var: a for _, var, a in table})
        elif layer["class_name"] in MODEL_CLASSES:
            _walk_h5(layer, root, path + "/", out, source, inner)
        else:
            named = {var: a for (owner, var), a in inner.owned.items() if owner == name}
            wanted = UNSCOPED_VARIABLES.get(layer["class_name"], ())
            if not named and wanted and layer.get("config", {}).get("mean") is None:
                for var in wanted:
                    hit = next((i for i, (v, _) in enumerate(inner.unowned) if re.sub(r"_\d+$", "", v) == var), None)
                    if hit is not None:
                        named[var] = inner.unowned.pop(hit)[1]
            out[path] = LayerWeights(named=named)


def _group_weights(group: Any, source: str) -> list[tuple[str, str, np.ndarray]]:
    """(layer, variable, array) for each name in the group's ``weight_names``, in order."""
    found = []
    for raw in group.attrs.get("weight_names", []):
        wname = _text(raw)
        if wname not in group:
            raise ModelLoadError(f"{source}: weight '{wname}' is listed for layer '{group.name}' but not stored")
        parts = wname.split(":")[0].split("/")
        found.append((parts[-2] if len(parts) > 1 else "", parts[-1], np.asarray(group[wname])))
    return found


def _check_model_config(config: Any, source: str) -> None:
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelLoadError(f"{source}: the model config is not a Keras model config")
    if config["class_name"] not in MODEL_CLASSES or "layers" not in config["config"]:
        raise ModelLoadError(f"{source}: the model is a '{config['class_name']}', not a Functional or Sequential "
                             "model; a subclassed model has no layer graph in its file: export it as a SavedModel "
                             "(model.export(...)) and convert that")
