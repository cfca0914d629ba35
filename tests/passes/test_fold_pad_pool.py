"""fold-pad-into-pool: a zero Pad before max pooling becomes the pooling's padding only where that is exact.

Graphs built with TF (ResNet's stem pattern ``ReLU → Pad → MaxPool VALID``, uneven pads, ReLU6, and
the cases that must not fold: a map that can be negative, a pad as large as the kernel), converted
and run in OpenCV dnn and the real SSD-Caffe, compared with TF. A fold where the map can be negative
would be off by the negative values TF's zero padding hides, which the comparisons would catch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from e2e_helpers import convert_model, layer_types, rel_error, run_both

CASES = {  # id: (input H×W, activation, pads ((top, bottom), (left, right)), kernel, stride, folds)
    "resnet-stem-relu-even": ((16, 16), "relu", ((1, 1), (1, 1)), 3, 2, True),
    "resnet-stem-relu-odd": ((15, 13), "relu", ((1, 1), (1, 1)), 3, 2, True),
    "relu6-uneven": ((12, 11), "relu6", ((0, 1), (0, 1)), 2, 2, True),
    "relu-concat-stride1": ((9, 9), "relu_concat", ((1, 1), (2, 0)), 3, 1, True),
    "negative-map-kept": ((16, 16), "none", ((1, 1), (1, 1)), 3, 2, False),
    "pad-as-large-as-kernel-kept": ((10, 10), "relu", ((2, 2), (2, 2)), 2, 2, False),
}


def _graph(path: Path, hw: tuple[int, int], activation: str, pads: tuple[tuple[int, int], tuple[int, int]],
           kernel: int, stride: int) -> Path:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, *hw, 4), name="input")
        w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 4, 6)).astype(np.float32))
        y = tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME")
        if activation == "relu":
            y = tf.nn.relu(y)
        elif activation == "relu6":
            y = tf.nn.relu6(y)
        elif activation == "relu_concat":
            y = tf.concat([tf.nn.relu(y), tf.nn.max_pool2d(tf.nn.relu6(y), 3, 1, "SAME")], axis=3)
        y = tf.pad(y, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])
        y = tf.nn.max_pool2d(y, kernel, stride, "VALID")
        tf.identity(y, name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, dict, np.ndarray]]:
    out = {}
    for name, (hw, activation, pads, kernel, stride, _) in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        model = _graph(tmp / "m.pb", hw, activation, pads, kernel, stride)
        report = convert_model(model, tmp / "out", flavor="ssd")
        x = np.random.default_rng(1).normal(size=(1, *hw, 4)).astype(np.float32)
        out[name] = (model, tmp / "out", report, x)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_fold_only_where_exact_opencv(converted: dict, case: str) -> None:
    model, out, report, x = converted[case]
    folds = CASES[case][-1]
    copies = [n for n, kind, _ in layer_types(out) if kind == "Convolution" and "Pad" in n]
    assert (not copies) == folds, copies  # folded: no convolution copying the map into a padded one
    assert any(p["name"] == "fold-pad-into-pool" and p["changed"] == folds for p in report["passes"])
    for name, ref, got in run_both(model, out, report, x):
        assert rel_error(ref, got) <= 1e-6, name


@pytest.mark.parametrize("case", list(CASES))
def test_fold_only_where_exact_real_caffe(converted: dict, case: str, real_caffe: object) -> None:
    model, out, report, x = converted[case]
    for name, ref, got in run_both(model, out, report, x, real_caffe):
        assert rel_error(ref, got) <= 1e-6, name
