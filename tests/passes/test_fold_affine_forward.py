"""fold-affine-forward: an input-side per-channel affine (Keras Rescaling/Normalization) folds into the
convolutions reading it only where exact, and an identity affine (swish's ``sigmoid(1·x)``) is dropped.

Each graph is built with TF, converted, and run in OpenCV dnn and the real SSD-Caffe against TF. A fold
with ``b ≠ 0`` into a padded convolution would be off at the borders by ``Σ w·b`` over the padded taps;
the padded cases here would show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from e2e_helpers import convert_model, layer_types, rel_error, run_both

CASES = {  # id: (affine bias, conv kind, padding, stride, whether the affine folds)
    "bias-valid-conv": (True, "conv", "VALID", 1, True),
    "bias-valid-depthwise": (True, "depthwise", "VALID", 2, True),
    "bias-same-conv-kept": (True, "conv", "SAME", 2, False),
    "bias-same-depthwise-kept": (True, "depthwise", "SAME", 1, False),
    "scale-only-same-conv": (False, "conv", "SAME", 2, True),
    "scale-only-same-depthwise": (False, "depthwise", "SAME", 1, True),
    "also-read-elsewhere-kept": (True, "two_users", "VALID", 1, False),
    "swish-identity-dropped": (False, "swish", "SAME", 1, True),
}


def _graph(path: Path, bias: bool, kind: str, padding: str, stride: int) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(3)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 11, 10, 3), name="input")
        y = x * rng.uniform(0.5, 2.0, 3).astype(np.float32)
        if bias:
            y = y + rng.uniform(-1.0, 1.0, 3).astype(np.float32)
        w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
        if kind == "depthwise":
            y = tf.nn.depthwise_conv2d(y, w[:, :, :, :2], [1, stride, stride, 1], padding)
        else:
            y = tf.nn.conv2d(y, w, [1, stride, stride, 1], padding)
        if kind == "two_users":
            y = tf.concat([y, tf.nn.max_pool2d(x * 2.0 + 1.0, 3, 1, "VALID")], axis=3)
        if kind == "swish":
            y = tf.nn.silu(y, beta=1.0)  # x·sigmoid(1·x): Keras 3's swish
        tf.identity(y, name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, dict, np.ndarray]]:
    out = {}
    for name, (bias, kind, padding, stride, _) in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        model = _graph(tmp / "m.pb", bias, kind, padding, stride)
        report = convert_model(model, tmp / "out", flavor="ssd")
        x = np.random.default_rng(4).normal(size=(1, 11, 10, 3)).astype(np.float32)
        out[name] = (model, tmp / "out", report, x)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_affine_folds_only_where_exact(converted: dict, case: str) -> None:
    model, out, report, x = converted[case]
    folds = CASES[case][-1]
    scales = [n for n, kind, _ in layer_types(out) if kind == "Scale"]
    assert (not scales) == folds, scales
    for name, ref, got in run_both(model, out, report, x):
        assert rel_error(ref, got) <= 1e-5, name


@pytest.mark.parametrize("case", list(CASES))
def test_affine_fold_in_real_caffe(converted: dict, case: str, real_caffe: object) -> None:
    model, out, report, x = converted[case]
    for name, ref, got in run_both(model, out, report, x, real_caffe):
        assert rel_error(ref, got) <= 1e-5, name
