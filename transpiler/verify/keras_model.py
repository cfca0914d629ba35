"""``--verify`` for a Keras model file (``.keras`` / legacy ``.h5``): Keras itself loads that very file and
predicts, OpenCV runs the converted files, and the outputs are compared.

The Keras that wrote the file loads it: Keras 3 for Keras 3 files, tf-keras for Keras 2 / tf-keras files (their
activations differ: ``hard_sigmoid`` is ``relu6(x + 3)/6`` in Keras 3 and ``clip(0.2·x + 0.5, 0, 1)`` in Keras 2,
so loading a Keras 2 file with Keras 3 would compare against another function). Outputs are the model's
outputs or top-level layers (a sub-model to them is built); a layer inside a nested model is refused by name,
as Keras cannot fetch it without rebuilding the nested model. Per-layer comparison is limited to the outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.errors import UsageError
from transpiler.verify.compare import compare_arrays
from transpiler.verify.runners import OpenCVNet, run_opencv


def load_keras(model: Path, keras_version: str) -> tuple[Any, str]:
    """The model loaded by the Keras that wrote it, and that Keras' name and version."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if int(keras_version.split(".")[0] or 3) >= 3:
        import keras

        return _load(keras.saving.load_model, model, f"Keras {keras.__version__}")
    try:
        import tf_keras
    except ImportError:
        raise UsageError(f"{model}: --verify of a file written by Keras {keras_version} needs tf-keras (pip install "
                         "tf-keras --no-deps, for the TensorFlow installed): Keras 3 computes some of its "
                         "activations differently") from None
    return _load(tf_keras.models.load_model, model, f"tf-keras {tf_keras.__version__}")


def _load(loader: Any, model: Path, who: str) -> tuple[Any, str]:
    try:
        return loader(str(model), compile=False), who
    except Exception as exc:  # Keras' own loader: whatever it raises means it cannot read its file
        raise UsageError(f"{model}: --verify runs the model in {who}, which cannot load this file itself "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); the conversion "
                         "was written; save the model as .keras (Keras 3) to verify it") from None


def run_keras(model: Path, keras_info: dict[str, Any], feeds: list[np.ndarray], outputs: list[str]
              ) -> tuple[dict[str, np.ndarray], str]:
    """``outputs`` (model outputs or top-level layer names) of the model on ``feeds`` (in input order)."""
    loaded, who = load_keras(model, str(keras_info.get("keras_version", "3")))
    model_outputs = list(keras_info.get("model_outputs", []))
    fetch = loaded
    if [o for o in outputs if o not in model_outputs]:
        tensors = []
        for name in outputs:
            if name in model_outputs:
                tensors.append(_as_list(loaded.outputs)[model_outputs.index(name)])
                continue
            try:
                tensors.append(loaded.get_layer(name).output)
            except ValueError:
                raise UsageError(f"{model}: --verify runs the Keras model, which cannot fetch '{name}' (a layer inside "
                                 f"a nested model); verify at the model's outputs ({', '.join(model_outputs)}) or at "
                                 "top-level layers") from None
        fetch = type(loaded)(loaded.inputs, tensors) if hasattr(loaded, "inputs") else loaded
        names = list(outputs)
    else:
        names = model_outputs
    results = fetch(feeds if len(feeds) > 1 else feeds[0], training=False)
    arrays = [np.asarray(r) for r in _as_list(results)]
    return dict(zip(names, arrays, strict=True)), f"{who} loading {model}"


def _as_list(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return list(x.values())
    return list(x) if isinstance(x, (list, tuple)) else [x]


def verify_keras_model(model: Path, report: dict[str, Any], net: OpenCVNet, tf_feeds: dict[str, np.ndarray],
                       caffe_feeds: dict[str, np.ndarray], tolerance: float, per_layer: bool) -> Any:
    from transpiler.verify.harness import VerifyResult

    outputs = report["outputs"]
    feeds = [tf_feeds[entry["tf_tensor"]] for entry in report["inputs"]]
    ref, who = run_keras(model, report["keras"], feeds, [e["tf_tensor"] for e in outputs])
    got = run_opencv(net, caffe_feeds, list(dict.fromkeys(e["caffe_layer"] for e in outputs)))
    result = VerifyResult([
        compare_arrays(e["tf_tensor"], e["caffe_blob"], got[e["caffe_layer"]],
                       np.transpose(ref[e["tf_tensor"]], e["permutation"]), tolerance)
        for e in outputs
    ], runtime=net.runtime, tf_side=who)
    if per_layer:
        result.notes.append("per-layer comparison is limited to the outputs for a Keras model file: Keras runs the "
                            "model as a whole; for every blob, verify a frozen graph of the same model")
    return result
