"""``--per-layer`` judges each blob against float32 rounding, and blob metadata says what a blob holds.

The reference is TensorFlow: its float32 run for Δ, its float64 run (the same graph retyped) for the
rounding error it makes itself. Graphs are small, built with TF once per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from transpiler.cli import main
from transpiler.verify.harness import VerifyOptions, verify_model
from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow

CLI_PLUGINS = REPO / "tests" / "cli"  # plugin_break: scales the second convolution's weights by 1.01


def tiny_activation_graph(path: Path) -> Path:
    """input → conv → relu → ``big`` (±50, 16 nearly equal channels) → ``tiny`` (a 3×3 conv whose weights
    sum to zero over input channels: the ±50 cancel, max|tiny| ≈ 0.02) → ``output = side + tiny``.

    ``tiny`` carries the rounding error of ``big`` (~1e-5) through a sum that cancels, a large fraction of
    its own size; the output, dominated by ``side`` (±10), agrees with TF to ~1e-6."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        c1 = tf.nn.relu(tf.nn.conv2d(x, rng.normal(0, 0.5, (3, 3, 3, 32)).astype(np.float32), [1, 1, 1, 1], "SAME"))
        base = rng.normal(0, 1, (3, 3, 32, 1))
        w_big = (base + 0.0002 * rng.normal(size=(3, 3, 32, 16))).astype(np.float32)
        big = tf.nn.conv2d(c1, w_big, [1, 1, 1, 1], "SAME", name="big")
        n = rng.normal(size=(3, 3, 16, 8))
        w_tiny = ((n - n.mean(axis=2, keepdims=True)) * 0.125).astype(np.float32)
        tiny = tf.nn.conv2d(big, w_tiny, [1, 1, 1, 1], "SAME", name="tiny")
        side = tf.nn.conv2d(x, rng.normal(size=(3, 3, 3, 8)).astype(np.float32), [1, 1, 1, 1], "SAME", name="side")
        tf.identity(tf.add(side, tiny), name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def flatten_graph(path: Path) -> Path:
    """conv → relu → Reshape to (1, H·W·C) (Keras Flatten of an NHWC map) → MatMul."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 6, 5, 3), name="input")
        y = tf.nn.relu(tf.nn.conv2d(x, rng.normal(size=(3, 3, 3, 4)).astype(np.float32), [1, 1, 1, 1], "SAME"))
        flat = tf.reshape(y, [1, -1], name="flatten")
        tf.identity(tf.matmul(flat, rng.normal(size=(120, 7)).astype(np.float32)), name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    model = tiny_activation_graph(folder / "tiny.pb")
    assert main([str(model), "-o", str(folder / "out")]) == 0
    return model, folder / "out"


@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_activations_are_no_divergence(tiny: tuple[Path, Path], seed: int) -> None:
    model, out = tiny
    result = verify_model(VerifyOptions(model, out, per_layer=True, seed=seed))
    assert result.ok and result.first_divergence is None, [(c.blob, c.max_abs, c.bound) for c in result.layers]
    blob = next(c for c in result.layers if c.blob == "tiny")
    assert blob.ref_max < 0.05  # the blob is tiny...
    assert blob.rel > 2e-4  # ...and a plain relative tolerance (1e-4) would have called it a divergence
    assert "TF rerun in float64" in result.layer_rule and "max|TF32 − TF64|" in result.layer_rule
    output = result.outputs[0]
    assert output.rel < 1e-5


def test_cli_prints_the_rule_and_no_divergence(tiny: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = tiny
    assert main([str(model), "-o", str(tmp_path / "out"), "--verify", "--per-layer"]) == 0
    text = capsys.readouterr().out
    assert "per-layer rule: a blob diverges when max|Δ| > max(0.0001·max|ref|, 16·max|TF32 − TF64|)" in text
    assert "6 blobs compared with their TF tensors, 0 beyond tolerance" in text
    assert "first divergence" not in text


def test_corrupted_weight_is_named(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    """plugin_break scales the second convolution in IR order (the first conv, 'Conv2D') by 1.01. The
    output hardly moves (``big`` cancels in ``tiny``, ``side`` dominates), but that blob is named."""
    model, _ = tiny
    env = {**os.environ, "PYTHONPATH": str(CLI_PLUGINS), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "transpiler", str(model), "-o", str(tmp_path / "out"), "--verify",
                             "--per-layer", "--plugin", "plugin_break"], capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=300)
    named = "first divergence at Caffe blob 'Conv2D' (TF tensor Conv2D:0)"
    assert named in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_flatten_blob_is_the_nchw_flattening(tmp_path: Path) -> None:
    """The Flatten folded into the InnerProduct holds TF's map in NCHW order, flattened: conversion.json
    says so, OpenCV's blob equals it, and --per-layer compares it that way."""
    model = flatten_graph(tmp_path / "flat.pb")
    out = tmp_path / "out"
    assert main([str(model), "-o", str(out)]) == 0
    report = json.loads((out / "conversion.json").read_text())
    entry = report["blobs"]["flatten"]
    assert entry == {"tf_tensor": "Relu:0", "layer": "flatten", "permutation": [0, 3, 1, 2], "view": "reshape",
                     "shape": [1, 120]}
    x = np.random.default_rng(3).uniform(-1, 1, (1, 6, 5, 3)).astype(np.float32)
    tf_map = run_tensorflow(model, {"input:0": x}, ["Relu:0"])["Relu:0"]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    blob = run_opencv(net, {"input": x.transpose(0, 3, 1, 2)}, ["flatten"])["flatten"]
    nchw_flat = tf_map.transpose(entry["permutation"]).reshape(entry["shape"])
    assert np.abs(blob - nchw_flat).max() <= 1e-5 * np.abs(nchw_flat).max()
    nhwc_flat = tf_map.reshape(1, -1)  # what the old metadata claimed: far off
    assert np.abs(blob - nhwc_flat).max() > 0.1 * np.abs(nhwc_flat).max()
    result = verify_model(VerifyOptions(model, out, per_layer=True))
    assert result.ok and result.first_divergence is None
    assert any(c.blob == "flatten" for c in result.layers)


def test_fallback_rule_when_tf_cannot_run_float64() -> None:
    """Without a float64 run, each blob is held to the tolerance times the largest magnitude up to it."""
    from transpiler.verify.per_layer import compare_blobs

    def no_float64(fetches: list[str], feeds: object) -> dict[str, np.ndarray]:
        raise TypeError("Value for attr 'T' of double is not in the list of allowed values")

    big = np.full((1, 2, 2, 3), 50.0, np.float32)
    tiny = np.full((1, 2, 2, 3), 0.02, np.float32)
    entries = [(name, {"tf_tensor": f"{name}:0", "layer": name, "permutation": [0, 3, 1, 2]})
               for name in ("big", "tiny", "after")]
    ref = {"big:0": big, "tiny:0": tiny, "after:0": tiny}
    got = {"big": big.transpose(0, 3, 1, 2), "tiny": tiny.transpose(0, 3, 1, 2) + 3e-6,  # rounding-sized
           "after": tiny.transpose(0, 3, 1, 2) * 1.5}  # a real slip
    report = compare_blobs(entries, ref, got, 1e-4, no_float64)
    assert "largest max|ref| up to it" in report.rule and "could not run in float64: Value for attr" in report.rule
    assert [c.ok for c in report.layers] == [True, True, False]
    assert report.first_divergence is not None and report.first_divergence.blob == "after"
