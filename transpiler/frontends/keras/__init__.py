"""Keras frontend: ``.keras`` (Keras 3) and legacy ``.h5`` model files → IR, without Keras or TensorFlow.

The file is recognised by content (:func:`is_keras_file`); its config and weights are read with h5py
(:mod:`files`), and its layer graph is imported layer by layer (:mod:`importer`, :mod:`layers`) into the same IR
the TF frontend builds from the frozen graph, so the passes and the backend treat both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transpiler.errors import UnsupportedModelError, UsageError
from transpiler.ir.core import Graph


def is_keras_file(path: str | Path) -> bool:
    """A ``.keras`` zip or an HDF5 file (by its first bytes, whatever its name)."""
    if not Path(path).is_file():
        return False  # e.g. a SavedModel directory: the file reader is not even loaded (1 ms)
    from transpiler.frontends.keras.files import keras_file_kind

    return keras_file_kind(path) is not None


def load_keras_model(path: str | Path, *, inputs: Sequence[Any] = (), outputs: Sequence[str] = (),
                     signature: str | None = None) -> Graph:
    """Read a Keras model file and import it as IR (``inputs``: ``InputSpec``-like, name and optional shape)."""
    if signature is not None:
        raise UsageError(f"{path}: --signature applies to SavedModels; this is a Keras model file")
    from transpiler.frontends.keras.files import read_keras_model
    from transpiler.frontends.keras.importer import import_keras_model  # only for Keras files (4 ms)

    model = read_keras_model(path)
    try:
        return import_keras_model(model, inputs=inputs, outputs=outputs)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        # a config that is JSON but not what Keras writes (hand-edited, truncated lists...)
        raise UnsupportedModelError(f"{path}: the model config is malformed ({type(exc).__name__}: {exc})") from None


__all__ = ["is_keras_file", "load_keras_model"]
