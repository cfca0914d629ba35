"""What the command line prints and writes on success (issue 9, items 2 and 8): the input contract and outputs,
notes on shape overrides, progress lines, no TensorFlow log noise, --help/--version, folder permissions.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, fixture_model


def cli(*args: object, cwd: Path | None = None, umask: int | None = None,
        env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=full, timeout=300,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fully convolutional net with a fixed 1x16x16x3 Placeholder: conv 3x3/2 SAME → relu → conv 1x1."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        y = tf.nn.relu(tf.nn.conv2d(x, rng.normal(size=(3, 3, 3, 8)).astype(np.float32), [1, 2, 2, 1], "SAME"))
        y = tf.nn.conv2d(y, rng.normal(size=(1, 1, 8, 5)).astype(np.float32), [1, 1, 1, 1], "VALID")
        tf.identity(y, name="output")
    path = tmp_path_factory.mktemp("output") / "fcn.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def test_summary_states_the_input_contract_and_outputs(model: Path, tmp_path: Path) -> None:
    result = cli(model, "-o", tmp_path / "out", "--input-order", "bgr")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == ("input:  blob 'input' 1x3x16x16 float32 NCHW = TF 'input:0' 1x16x16x3 transposed [0, 3, 1, 2]; "
                        "channels BGR; values as TF's input takes them (no preprocessing added)")
    assert lines[2] == ("output: blob 'Conv2D_1' 1x5x8x8 (layer 'Conv2D_1') = TF 'output:0' 1x8x8x5 "
                        "transposed [0, 3, 1, 2]")


def test_detector_summary(tmp_path: Path) -> None:
    result = cli(fixture_model("pedestrian_ssdlite"), "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert ("input:  blob 'data' 1x3x300x300 float32 NCHW = TF 'image_tensor:0' 1x300x300x3 transposed [0, 3, 1, 2]; "
            "channels RGB; values as TF's u8 pixels (0-255), preprocessing inside the model") in result.stdout
    assert "output: blob 'detection_out' 1x1x100x7 (layer 'detection_out') <- TF detection_boxes:0" in result.stdout


def test_spatial_override_of_a_fixed_placeholder_is_a_note(model: Path, tmp_path: Path) -> None:
    result = cli(model, "-o", tmp_path / "out", "--input", "input:1x21x30x3")
    assert result.returncode == 0, result.stderr
    assert "note: input 'input' declared 1x16x16x3, converted at 1x21x30x3 as asked" in result.stdout
    report = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert report["inputs"][0]["shape"] == [1, 3, 21, 30] and report["outputs"][0]["tf_shape"] == [1, 11, 15, 5]
    assert "input 'input' declared 1x16x16x3, converted at 1x21x30x3 as asked" in report["notes"]


def test_verify_prints_progress_and_no_tensorflow_noise(model: Path, tmp_path: Path) -> None:
    result = cli(model, "-o", tmp_path / "out", "--verify", env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no oneDNN / absl / cpu_feature_guard lines
    lines = result.stdout.splitlines()
    loading = next(i for i, line in enumerate(lines) if line.startswith("verify: loading TensorFlow"))
    table = next(i for i, line in enumerate(lines) if line.startswith("output:0 "))
    assert loading < table and "ok" in lines[table]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_folder_follows_the_umask(model: Path, tmp_path: Path, umask: int) -> None:
    result = cli(model, "-o", tmp_path / "out", umask=umask)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "out" / "deploy.prototxt").stat().st_mode) == 0o666 & ~umask


def test_version_names_the_package() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("tf2caffe-transpiler ")


def test_help_lists_every_command() -> None:
    text = cli("--help").stdout
    for command in ("python -m transpiler inspect MODEL", "python -m transpiler demo", "python -m transpiler ops"):
        assert command in text
    assert "70 internal error" in text


def test_ops_command_lists_supported_ops() -> None:
    """``ops`` is wired to transpiler.op_table.run_ops (written with the op coverage work)."""
    result = cli("ops")
    assert result.returncode == 0, result.stderr
    assert "Conv2D" in result.stdout and "Relu6" in result.stdout
    flavor = cli("ops", "--flavor", "bvlc")
    assert flavor.returncode == 0 and "Clip" in flavor.stdout


def test_a_reader_that_stops_early_ends_it_quietly(model: Path, tmp_path: Path) -> None:
    """``tf2caffe MODEL | head -1`` with the pipe already closed when the summary is printed: exit 141 (as for a
    program killed by SIGPIPE), no 'internal error', no traceback; the model is written (the summary comes after)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is printed
    try:
        result = subprocess.run([sys.executable, "-m", "transpiler", str(model), "-o", str(tmp_path / "out")],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=300)
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "out" / "deploy.caffemodel").stat().st_size > 0
