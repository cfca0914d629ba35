"""``--verify`` on a SavedModel: TensorFlow runs that very SavedModel (its signature, loaded by TF's own
SavedModel loader), not a frozen copy, and OpenCV runs the converted files.

Models: a small Keras 3 network (conv, batch norm, ReLU6, depthwise, dense; batch-norm statistics of its
real input) saved by ``model.export`` and by ``tf.saved_model.save``. A conversion broken on purpose (a
plugin scales one convolution's weights by 1.01) must fail with exit code 3: the comparison can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transpiler.cli import main

REPO = Path(__file__).resolve().parents[2]
SIZE = (1, 24, 24, 3)


def _picture() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "astronaut.png"


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(8, *SIZE[1:])).astype(np.float32)
    inp = keras.Input(SIZE[1:])
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    y = keras.layers.BatchNormalization(momentum=0.0)(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.BatchNormalization(momentum=0.0)(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(12, 1)(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(5)(y)
    model = keras.Model(inp, y)
    model(x, training=True)  # momentum 0: moving statistics := those of this batch's real input
    root = tmp_path_factory.mktemp("saved")
    model.export(str(root / "keras_export"), verbose=False)
    tf.saved_model.save(model, str(root / "saved_model_save"))
    return {"keras_export": root / "keras_export", "saved_model_save": root / "saved_model_save"}


@pytest.mark.parametrize("which", ["keras_export", "saved_model_save"])
def test_verify_runs_the_saved_model(saved_models: dict[str, Path], which: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = saved_models[which]
    code = main([str(model), "-o", str(tmp_path / "out"), "--verify", "--per-layer",
                 "--verify-input", str(_picture())])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"TF side run by TensorFlow's SavedModel loader on {model}, signature 'serving_default'" in text
    assert "the inner blobs with TF running the signature as this converter inlined it" in text
    assert "TF rerun in float64" in text and " 0 beyond tolerance" in text, text
    rows = [line for line in text.splitlines() if line.startswith("StatefulPartitionedCall")]
    assert rows and all(" ok" in line for line in rows) and "FAIL" not in text, text


def test_verify_names_a_tensor_inside_the_functions(saved_models: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """An --output inside the signature's functions cannot be fetched from the SavedModel: said clearly."""
    from transpiler.convert import ConvertOptions, lower

    graph, _, _ = lower(ConvertOptions(model=saved_models["keras_export"], passes=[]))
    inner = next(v.tf_name for n in graph.nodes if n.op == "Conv" for v in n.outputs)
    code = main([str(saved_models["keras_export"]), "-o", str(tmp_path / "out"), "--output", inner, "--verify"])
    captured = capsys.readouterr()
    assert code == 2, captured.out
    assert "lies inside its functions" in captured.err and "output_0" in captured.err, captured.err


def test_broken_conversion_of_saved_model_fails_verify(saved_models: dict[str, Path], tmp_path: Path) -> None:
    """A conversion corrupted on purpose (one convolution's weights ×1.01) exits 3: the check can fail."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "cli"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "transpiler", str(saved_models["keras_export"]), "-o",
                             str(tmp_path / "out"), "--verify", "--per-layer", "--plugin", "plugin_break"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "SavedModel loader" in result.stdout
    assert "first divergence at Caffe blob" in result.stdout, result.stdout  # the broken conv, named




def test_tf_refusing_the_call_is_a_value_error(saved_models: dict[str, Path]) -> None:
    """A call TF refuses (here 4 channels into a 3-channel convolution) comes back as one line, no TF error type:
    the harness turns it into a message naming the SavedModel and signature (exit 2)."""
    from transpiler.frontends.tf.saved_model import load_saved_model
    from transpiler.verify.runners import run_saved_model

    model = saved_models["keras_export"]
    (key,) = load_saved_model(model).inputs  # keras_tensor, or keras_tensor_N after other Keras models
    x = np.zeros((1, 24, 24, 4), np.float32)
    with pytest.raises(ValueError, match="depth"):
        run_saved_model(model, "serving_default", {key: x}, ["output_0"])
