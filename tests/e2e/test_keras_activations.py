"""Keras 3 activations and squeeze-excite blocks as they appear in frozen graphs and SavedModels, in every
flavor, checked by ``--verify --per-layer`` (TF on the frozen graph, or TF's SavedModel loader on the
export for the outputs and TF on the inlined signature for inner blobs, against the converted files in
OpenCV dnn) and in the real SSD-Caffe.

Keras 3 writes ``hard_sigmoid`` as ``relu6(x + 3) / 6``, ``hard_swish``/``hard_silu`` as
``x · relu6(x + 3) / 6``, ``swish``/``silu`` as ``x · sigmoid(1 · x)`` (IdentityN for the custom gradient);
squeeze-excite is global average pooling → 1×1 conv → ReLU → 1×1 conv → sigmoid or hard-sigmoid → a
broadcast multiply of the (N, C, H, W) map by the (N, C, 1, 1) gate (MobileNetV3, EfficientNet).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import freeze_tf_function
from e2e_helpers import layer_types, rel_error, run_both

from transpiler.cli import main

FLAVORS = ("ssd", "opencv", "bvlc", "portable", "kernels")
SIZE = (1, 14, 13, 8)


def _model() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(SIZE[1:])
    y = keras.layers.Conv2D(16, 3, padding="same")(inp)
    outs = []
    for act in ("hard_sigmoid", "hard_swish", "hard_silu", "swish", "silu", "relu6", "sigmoid"):
        outs.append(keras.layers.Activation(act)(y))
    x = keras.layers.Activation("hard_swish")(y)
    for gate in ("hard_sigmoid", "sigmoid"):
        s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
        s = keras.layers.Conv2D(4, 1, activation="relu")(s)
        s = keras.layers.Conv2D(16, 1, activation=gate)(s)
        x = keras.layers.Multiply()([x, s])
    outs.append(x)
    return keras.Model(inp, keras.layers.Concatenate()(outs))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    tmp = tmp_path_factory.mktemp("activations")
    model = _model()
    frozen = freeze_tf_function(lambda x: model(x, training=False), SIZE, tmp / "model.pb")
    model.export(str(tmp / "saved"), verbose=False)
    keras.backend.clear_session()
    return {"frozen": frozen, "saved": tmp / "saved"}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("route", ["frozen", "saved"])
def test_verify_every_flavor(models: dict[str, Path], route: str, flavor: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(models[route]), "-o", str(tmp_path / "out"), "--flavor", flavor, "--verify", "--per-layer",
                 "--tolerance", "1e-5"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert " ok" in text and "FAIL" not in text, text
    # every blob fetched from TF too (swish's Sigmoid included, which TF's remapper would fuse away)
    assert " 0 beyond tolerance" in text and "TF rerun in float64" in text, text
    types = json.loads((tmp_path / "out" / "conversion.json").read_text())["layer_types"]
    assert types.get("Sigmoid") == 4, types  # swish, silu, sigmoid, one gate (the other is hard)
    layers = layer_types(tmp_path / "out")
    kind = {name: t for name, t, _ in layers}
    # swish's sigmoid(1·x): the identity Scale before the Sigmoid is gone
    assert all(kind.get(bottoms[0]) != "Scale" for _, t, bottoms in layers if t == "Sigmoid"), layers


@pytest.mark.parametrize("flavor", ["ssd", "kernels"])
def test_real_caffe(models: dict[str, Path], flavor: str, tmp_path: Path, real_caffe: object) -> None:
    from e2e_helpers import convert_model

    report = convert_model(models["frozen"], tmp_path / "out", flavor=flavor)
    x = np.random.default_rng(0).uniform(-5, 5, size=SIZE).astype(np.float32)  # both sides of ±3
    for name, ref, got in run_both(models["frozen"], tmp_path / "out", report, x, real_caffe):
        assert rel_error(ref, got) <= 1e-5, name
