"""``--verify`` gives a verdict for every flavor, and feeds TF where and at the size the conversion was given.

The bvlc flavor's ``Clip`` and the kernels flavor's ``DepthwiseConvolution`` are not OpenCV layers: they run
as numpy custom layers inside OpenCV (transpiler.verify.custom_layers), the rest of the emitted files as
written. Every verdict is a comparison with TensorFlow on the source graph (and, for detectors, box by box).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_model

from transpiler.cli import main
from transpiler.verify.harness import VerifyOptions, verify_model

CASES = [  # (flavor, fixture, layer type OpenCV lacks, numpy layer named in the report)
    ("bvlc", "tfkeras_mnv2_300_notop", "Clip", "numpy Clip"),
    ("kernels", "keras3_mnv2_300_notop", "DepthwiseConvolution", "numpy DepthwiseConvolution"),
    ("kernels", "ssdlite_mnv2_1cls_dm035", "DepthwiseConvolution", "numpy DepthwiseConvolution"),
    ("kernels", "pedestrian_ssdlite", "DepthwiseConvolution", "numpy DepthwiseConvolution"),
]


def cut_graph(path: Path) -> Path:
    """A fixed 16×16 Placeholder → Cumsum (no Caffe form) ``pre`` → conv → relu6 → depthwise conv."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        pre = tf.math.cumsum(x, axis=2, name="pre")
        y = tf.nn.relu6(tf.nn.conv2d(pre, rng.normal(size=(3, 3, 3, 8)).astype(np.float32), [1, 2, 2, 1], "SAME"))
        y = tf.nn.depthwise_conv2d(y, rng.normal(size=(3, 3, 8, 1)).astype(np.float32), [1, 1, 1, 1], "SAME")
        tf.identity(y, name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.mark.parametrize(("flavor", "fixture", "layer_type", "runtime"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_flavor_verifies_against_tf(flavor: str, fixture: str, layer_type: str, runtime: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main([str(fixture_model(fixture)), "-o", str(out), "--flavor", flavor, "--verify", "--per-layer"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f'type: "{layer_type}"' in (out / "deploy.prototxt").read_text()  # run as written, not rewritten
    assert f"Caffe side run by OpenCV dnn {cv2_version()} + {runtime}" in text
    assert " 0 beyond tolerance" in text and "FAIL" not in text
    assert "TF rerun in float64" in text  # each blob judged against TF's own rounding, not the fallback
    if "ssdlite" in fixture:
        assert "0 TF-only, 0 Caffe-only" in text


def cv2_version() -> str:
    import cv2

    return str(cv2.__version__)


def test_bvlc_refuses_detectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """BVLC Caffe has no PriorBox/DetectionOutput: a detector is refused before anything is written."""
    out = tmp_path / "out"
    assert main([str(fixture_model("ssdlite_mnv2_1cls_dm035")), "-o", str(out), "--flavor", "bvlc", "--verify"]) == 2
    assert "DetectionOutput, which flavor 'bvlc' does not have" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flavor", ["bvlc", "kernels"])
def test_numpy_layers_are_registered_only_while_verifying(flavor: str, tmp_path: Path) -> None:
    """After verification OpenCV no longer knows the type: a fresh net of the same files fails to run."""
    import cv2

    model = cut_graph(tmp_path / "cut.pb")
    out = tmp_path / "out"
    assert main([str(model), "-o", str(out), "--flavor", flavor, "--input", "pre:0:1x16x16x3"]) == 0
    result = verify_model(VerifyOptions(model, out))
    assert result.ok and "+ numpy" in result.runtime
    net = cv2.dnn.readNetFromCaffe(str(out / "deploy.prototxt"), str(out / "deploy.caffemodel"))
    net.setInput(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(cv2.error):
        net.forward()


def test_verify_at_overridden_placeholder_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A MobileNetV2 frozen at 300×300 converted for 224×224: TF runs at 224 too (7×7 output)."""
    out = tmp_path / "out"
    code = main([str(fixture_model("keras3_mnv2_300_notop")), "-o", str(out), "--input", "input:1x224x224x3",
                 "--verify"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Identity:0  1x1280x7x7 " in text


@pytest.mark.parametrize("flavor", ["ssd", "kernels"])
def test_verify_fed_at_an_inner_tensor_of_another_size(flavor: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``--input pre:0:1x20x22x3`` cuts off the Placeholder (16×16) and the Cumsum: TF is fed at ``pre:0``,
    20×22, with what lies upstream pruned."""
    model = cut_graph(tmp_path / "cut.pb")
    out = tmp_path / "out"
    code = main([str(model), "-o", str(out), "--flavor", flavor, "--input", "pre:0:1x20x22x3", "--verify",
                 "--per-layer"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "output:0    1x8x10x11 " in text and " 0 beyond tolerance" in text
