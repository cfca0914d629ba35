"""The command line as a user meets it: conversion, inspect, plugins, --verify, and bad input.

Each bad input must give one clear message naming the file (and node), exit code 2, and leave
no output folder behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, fixture_model
from e2e_helpers import assert_converts_without_heavy_imports

HERE = Path(__file__).parent


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=300)


def small_graph(path: Path, shape: tuple[int | None, ...] = (1, 16, 16, 3), extra: str = "") -> Path:
    """conv → batch norm → relu6 → depthwise conv (→ selu, or cumsum → LRN) built with TF, frozen."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape, name="input")
        y = tf.nn.conv2d(x, rng.normal(size=(3, 3, 3, 8)).astype(np.float32), [1, 2, 2, 1], "SAME")
        y, *_ = tf.compat.v1.nn.fused_batch_norm(y, *(rng.uniform(0.5, 1.5, 8).astype(np.float32) for _ in range(4)),
                                                 is_training=False)
        y = tf.nn.relu6(y)
        y = tf.nn.depthwise_conv2d(y, rng.normal(size=(3, 3, 8, 1)).astype(np.float32), [1, 1, 1, 1], "SAME")
        if extra == "selu":
            y = tf.nn.selu(y)
        if extra == "unsupported":
            y = tf.nn.local_response_normalization(tf.math.cumsum(y, axis=3))
        tf.identity(y, name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def assert_bad_input(result: subprocess.CompletedProcess[str], *needles: str, out: Path | None = None) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    if out is not None:
        assert not out.exists()


def test_convert_writes_model_and_report(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    result = cli(model, "--target", "caffe", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "small_caffe"
    assert sorted(p.name for p in out.iterdir()) == ["conversion.json", "deploy.caffemodel", "deploy.prototxt"]
    report = json.loads((out / "conversion.json").read_text())
    assert report["inputs"][0]["tf_tensor"] == "input:0" and report["inputs"][0]["permutation"] == [0, 3, 1, 2]
    assert report["outputs"][0]["tf_tensor"] == "output:0"
    assert report["outputs"][0]["shape"] == [1, 8, 8, 8] and report["outputs"][0]["tf_shape"] == [1, 8, 8, 8]
    assert report["flavor"] == "ssd"
    fold = next(p for p in report["passes"] if p["name"] == "fold-batchnorm")
    assert fold["op_count_diff"] == {"BatchNorm": [1, 0]}


def test_verify_passes_and_per_layer_reports(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    result = cli(model, "-o", tmp_path / "out", "--verify", "--per-layer")
    assert result.returncode == 0, result.stderr
    assert "output:0" in result.stdout and "ok" in result.stdout
    assert "0 beyond tolerance" in result.stdout


def test_verify_fails_with_its_own_code_and_names_first_divergence(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    result = cli(model, "-o", tmp_path / "out", "--verify", "--per-layer", "--plugin", "plugin_break")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout
    assert "first divergence at Caffe blob 'depthwise'" in result.stdout


def test_plugin_adds_op_handler_and_pass(tmp_path: Path) -> None:
    """The README's example plugin, run as the README writes it (from the repository root, by path)."""
    model = small_graph(tmp_path / "selu.pb", extra="selu")
    plain = cli("inspect", model)
    assert plain.returncode == 2 and "Selu" in plain.stderr
    shown = cli("inspect", model, "--plugin", "examples/plugins/plugin_selu.py", "--all-passes")
    assert shown.returncode == 0, shown.stderr
    assert "count-selu" in shown.stdout.splitlines()[0]  # in the pipeline
    assert "= Selu(" in shown.stdout and "count-selu: no op-count change" in shown.stdout
    converted = cli(model, "-o", tmp_path / "out", "--plugin", "examples/plugins/plugin_selu.py", "--verify",
                    "--tolerance", "1e-5")
    assert converted.returncode == 0, converted.stderr
    assert "output:0" in converted.stdout and " ok" in converted.stdout
    text = (tmp_path / "out" / "deploy.prototxt").read_text()
    assert 'type: "ELU"' in text and "alpha: 1.67326" in text and 'type: "Permute"' not in text


def test_inspect_after_pass_and_dot(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    imported = cli("inspect", model)
    assert imported.returncode == 0 and "= BatchNorm(" in imported.stdout
    folded = cli("inspect", model, "--after", "fold-batchnorm")
    assert "= BatchNorm(" not in folded.stdout and "fold-batchnorm: BatchNorm -1 (1->0)" in folded.stdout
    dot = cli("inspect", model, "--after", "to-nchw", "--format", "dot")
    assert dot.returncode == 0 and "digraph" in dot.stdout


def test_dump_ir_writes_one_file_per_pass(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    result = cli(model, "-o", tmp_path / "out", "--dump-ir", tmp_path / "ir")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert names[0] == "00_import.ir.txt" and [int(n[:2]) for n in names] == list(range(len(names)))
    assert any(n.endswith("_fold-batchnorm.ir.txt") for n in names) and names[1] == "01_remove-identity.ir.txt"


def test_conversion_path_never_imports_tensorflow(tmp_path: Path) -> None:
    assert_converts_without_heavy_imports([fixture_model("tfkeras_mnv2_300_notop")], tmp_path, timeout=120)


def test_missing_file(tmp_path: Path) -> None:
    assert_bad_input(cli(tmp_path / "nope.pb", "-o", tmp_path / "o"), "nope.pb", out=tmp_path / "o")


def test_random_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pb"
    junk.write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    assert_bad_input(cli(junk, "-o", tmp_path / "o"), "junk.pb", out=tmp_path / "o")


def test_truncated_pb(tmp_path: Path) -> None:
    data = fixture_model("tfkeras_mnv2_300_notop").read_bytes()
    cut = tmp_path / "cut.pb"
    cut.write_bytes(data[: len(data) // 2])
    assert_bad_input(cli(cut, "-o", tmp_path / "o"), "cut.pb", out=tmp_path / "o")


def test_unknown_input_and_output_names(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    assert_bad_input(cli(model, "-o", tmp_path / "o", "--input", "nosuch"), "nosuch", "small.pb",
                     out=tmp_path / "o")
    assert_bad_input(cli(model, "-o", tmp_path / "o", "--output", "nosuch:0"), "nosuch", out=tmp_path / "o")


def test_input_of_unknown_shape_needs_input_flag(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "dyn.pb", shape=(None, None, None, 3))
    assert_bad_input(cli(model, "-o", tmp_path / "o"), "input", "--input", out=tmp_path / "o")
    ok = cli(model, "-o", tmp_path / "o", "--input", "input:1x20x24x3", "--verify")
    assert ok.returncode == 0, ok.stderr
    report = json.loads((tmp_path / "o" / "conversion.json").read_text())
    assert report["inputs"][0]["shape"] == [1, 3, 20, 24]


def test_unsupported_ops_listed_at_once(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "bad.pb", extra="unsupported")
    result = cli(model, "-o", tmp_path / "o")
    assert_bad_input(result, "Cumsum", "LRN", "bad.pb", out=tmp_path / "o")


def test_unknown_pass_and_flavor(tmp_path: Path) -> None:
    model = small_graph(tmp_path / "small.pb")
    assert_bad_input(cli(model, "-o", tmp_path / "o", "--passes", "dce,nosuch-pass"), "nosuch-pass",
                     out=tmp_path / "o")


@pytest.mark.parametrize("flavor", ["bvlc", "portable"])
def test_flavors_from_cli(tmp_path: Path, flavor: str) -> None:
    model = small_graph(tmp_path / "small.pb")
    args = [model, "-o", tmp_path / "o", "--flavor", flavor] + (["--verify"] if flavor == "portable" else [])
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "o" / "deploy.prototxt").read_text()
    assert ('type: "Clip"' in text) == (flavor == "bvlc")


def test_region_with_a_while_loop_names_the_loop(tmp_path: Path) -> None:
    model = fixture_model("ssdlite_mnv2_1cls_dm035")
    result = cli(model, "-o", tmp_path / "o", "--output", "Squeeze:0")
    assert_bad_input(result, "while-loop", "NextIteration", "--input", out=tmp_path / "o")


def test_verify_external_postprocess_matches_every_detection(tmp_path: Path) -> None:
    """--postprocess external --verify: the raw outputs against TF's tensors, then ssd_postprocess's detections
    against TF's with no excuse; priors shifted by one pixel afterwards make verify fail."""
    from transpiler.verify.harness import VerifyOptions, verify_model

    model = fixture_model("ssdlite_mnv2_coco90_dm035")
    out = tmp_path / "out"
    result = cli(model, "-o", out, "--postprocess", "external", "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Squeeze:0" in result.stdout and "concat_1:0" in result.stdout
    assert "detections: 100 matched, 0 TF-only, 0 Caffe-only" in result.stdout and ", 0 excused" in result.stdout
    assert {"priors.npy", "priors.bin", "priors.txt"} <= {p.name for p in out.iterdir()}
    priors = np.load(out / "priors.npy")
    np.save(out / "priors.npy", priors + np.float32(1 / 300))
    broken = verify_model(VerifyOptions(model, out))
    assert broken.detections is not None and not broken.detections.ok and not broken.ok
