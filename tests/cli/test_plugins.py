"""Plugins load after the built-ins and win, with a note (issue 9, item 7), and a layout-free plugin op is
run on NCHW maps as it is (no Permute pair). Every converted model is checked against TensorFlow with
``--verify`` (OpenCV dnn running the emitted files).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

HERE = Path(__file__).parent


def cli(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(HERE), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=full, timeout=300)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv 3x3 → relu6 → conv 1x1, odd sizes, with TF."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 13, 11, 3), name="input")
        y = tf.nn.conv2d(x, 3 * rng.normal(size=(3, 3, 3, 6)).astype(np.float32), [1, 1, 1, 1], "SAME")
        y = tf.nn.relu6(y)
        y = tf.nn.conv2d(y, rng.normal(size=(1, 1, 6, 4)).astype(np.float32), [1, 1, 1, 1], "VALID")
        tf.identity(y, name="output")
    path = tmp_path_factory.mktemp("plugins") / "relu6.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def layer_types(out: Path) -> list[str]:
    return [line.split('"')[1] for line in (out / "deploy.prototxt").read_text().splitlines()
            if line.strip().startswith("type:")]


def test_builtin_relu6_without_plugin(model: Path, tmp_path: Path) -> None:
    """The control: without the plugin, the ssd flavor writes TF's Relu6 as one ReLU6 layer."""
    result = cli(model, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "ReLU6" in layer_types(tmp_path / "out") and "replaces" not in result.stdout


def test_plugin_overriding_relu6_takes_effect_and_says_so(model: Path, tmp_path: Path) -> None:
    result = cli(model, "-o", tmp_path / "out", "--plugin", "plugin_relu6", "--verify", "--tolerance", "1e-5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("note: plugin 'plugin_relu6' replaces the TF handler for Relu6 (from "
            "transpiler.frontends.tf.handlers.nn_ops)") in result.stdout
    types = layer_types(tmp_path / "out")
    assert "ReLU6" not in types and types.count("ReLU") == 2 and "Eltwise" in types  # the plugin's four layers
    assert "output:0" in result.stdout and " ok" in result.stdout


def test_plugin_replacing_a_builtin_emitter_and_pass_is_noted(tmp_path: Path, model: Path) -> None:
    plugin = tmp_path / "my_conv.py"
    plugin.write_text(
        "from transpiler.backends.caffe.emitter import EMITTERS, caffe_op\n"
        "from transpiler.pass_manager import PASSES, register_pass\n"
        "builtin = EMITTERS['Conv']\n"
        "caffe_op('Conv')(lambda e, node: builtin(e, node))\n"
        "@register_pass('dce')\n"
        "class Dce(PASSES['dce']):\n"
        "    pass\n")
    result = cli(model, "-o", tmp_path / "out", "--plugin", plugin)
    assert result.returncode == 0, result.stderr
    assert "note: plugin 'my_conv' replaces the Caffe emitter for Conv (from transpiler.backends.caffe.emitter)" \
        in result.stdout
    assert "note: plugin 'my_conv' replaces the pass for dce (from transpiler.passes.dead_code)" in result.stdout


@pytest.mark.parametrize("layout_free", [True, False])
def test_layout_free_plugin_op_emits_no_permute(model: Path, tmp_path: Path, layout_free: bool) -> None:
    """Declared layout-free, the plugin op runs on the NCHW map as it is; otherwise to-nchw must wrap it in
    Transposes (Permute layers). Both conversions match TF."""
    result = cli(model, "-o", tmp_path / "out", "--plugin", "plugin_relu6", "--verify", "--tolerance", "1e-5",
                 env={"PLUGIN_RELU6_LAYOUT_FREE": "1" if layout_free else "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("Permute" in layer_types(tmp_path / "out")) != layout_free


def test_a_builtin_registered_after_a_plugin_does_not_take_its_place() -> None:
    """Order independence: whichever is imported first, the plugin's entry stays, and the replacement is noted."""
    from transpiler import plugins

    kind = "test entry"
    assert plugins.claim(kind, "Op", "my_plugin")
    assert not plugins.claim(kind, "Op", "transpiler.frontends.tf.handlers.nn_ops")  # built-in, later: refused
    assert plugins.registered_by(kind, "Op") == "my_plugin" and plugins.plugin_of(kind, "Op") == "my_plugin"
    assert plugins.claim(kind, "Other", "transpiler.ir.ops") and plugins.plugin_of(kind, "Other") is None
    assert plugins.claim(kind, "Other", "my_plugin")  # a plugin replaces a built-in
    assert plugins.plugin_of(kind, "Other") == "my_plugin"
    assert any("plugin 'my_plugin' replaces the test entry for Other (from transpiler.ir.ops)" in n
               for notes in plugins._NOTES.values() for n in notes)
