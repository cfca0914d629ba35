"""MaxPool/AvgPool, SAME and VALID, over sizes, kernels and strides: converted models equal TF's outputs.

TF SAME pads unevenly (one more cell at the end) whenever the total pad is odd; Caffe pads both sides
alike, rounds its window count up and divides AVE sums by windows clipped to the padded input
(backends/caffe/pool_geometry.py). Each graph holds several pools of one input (one per kernel/stride
pair), so one conversion covers many cases; each runs in OpenCV dnn and in the real SSD-Caffe and every
output is compared with TensorFlow's own. Inputs are signed (N(0,1)), so a max that read a zero pad, or
an average that counted one, would show.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ops_harness import check_op

KERNELS_STRIDES = [(k, s) for k, s in itertools.product((1, 2, 3, 4, 5, 7), (1, 2, 3, 4)) if not (k == 1 and s == 1)]


def _pools(mode: str, padding: str) -> Any:
    import tensorflow as tf

    def fn(x: Any) -> tuple[Any, ...]:
        pool = tf.nn.max_pool2d if mode == "max" else tf.nn.avg_pool2d
        outs = [pool(x, (k, k), (s, s), padding) for k, s in KERNELS_STRIDES if padding == "SAME" or k <= 5]
        outs.append(pool(x, (3, 2), (2, 1), padding))  # non-square kernel and stride
        return tuple(outs)

    return fn


SIZES = [(5, 5), (6, 6), (7, 8), (9, 12), (10, 11)]
CASES = list(itertools.product(("max", "avg"), ("SAME", "VALID"), SIZES))


@pytest.mark.parametrize(("mode", "padding", "hw"), CASES, ids=[f"{m}-{p}-{h}x{w}" for m, p, (h, w) in CASES])
def test_pooling_matches_tf(tmp_path: Path, mode: str, padding: str, hw: tuple[int, int], real_caffe: Any) -> None:
    x = np.random.default_rng(hw[0] * 31 + hw[1]).normal(size=(1, *hw, 3)).astype(np.float32)
    result = check_op(tmp_path, _pools(mode, padding), [x.shape], flavor="ssd", inputs=[x],
                      runtimes=("opencv", real_caffe))
    expected = sum(1 for k, _ in KERNELS_STRIDES if padding == "SAME" or k <= 5) + 1
    assert len(result.report["outputs"]) == expected
    assert "Pooling" in result.layer_types


TINY = [(1, 1), (1, 3), (2, 2), (3, 4), (4, 4), (2, 5)]
TINY_CASES = list(itertools.product(("max", "avg"), TINY))


@pytest.mark.parametrize(("mode", "hw"), TINY_CASES, ids=[f"{m}-{h}x{w}" for m, (h, w) in TINY_CASES])
def test_same_pooling_on_maps_smaller_than_the_window(tmp_path: Path, mode: str, hw: tuple[int, int],
                                                      real_caffe: Any) -> None:
    """Kernels up to 5 and strides up to 4 on 1..5-cell axes: a single window covering the whole axis is pooled
    with the axis' size as kernel (OpenCV refuses kernels larger than the padded input; Caffe accepts them)."""
    import tensorflow as tf

    pool = tf.nn.max_pool2d if mode == "max" else tf.nn.avg_pool2d
    pairs = [(k, s) for k, s in itertools.product((1, 2, 3, 4, 5), (1, 2, 3, 4)) if not (k == 1 and s == 1)]
    x = np.random.default_rng(hw[0] * 7 + hw[1]).normal(size=(1, *hw, 2)).astype(np.float32)
    check_op(tmp_path, lambda x: tuple(pool(x, (k, k), (s, s), "SAME") for k, s in pairs), [x.shape], inputs=[x],
             runtimes=("opencv", real_caffe))


def test_uneven_same_max_pool_is_one_pooling_layer(tmp_path: Path) -> None:
    """3×3/2 SAME on an even input pads (0, 1): Caffe's round-up covers it, no extra layer."""
    import tensorflow as tf

    result = check_op(tmp_path, lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME"), [(1, 8, 8, 4)], flavor="ssd")
    assert result.layer_types == ["Input", "Pooling"]
    assert "pad_h: 0" in (result.out / "deploy.prototxt").read_text() or "pad_h" not in (
        result.out / "deploy.prototxt").read_text()


def test_same_avg_pool_with_begin_pad_gets_divisor_correction(tmp_path: Path, real_caffe: Any) -> None:
    """3×3/1 SAME pads (1, 1): Caffe divides border windows by 9, TF by the valid count; a Scale fixes it."""
    import tensorflow as tf

    x = np.random.default_rng(4).normal(size=(1, 7, 6, 2)).astype(np.float32)
    result = check_op(tmp_path, lambda x: tf.nn.avg_pool2d(x, 3, 1, "SAME"), [x.shape], flavor="portable",
                      runtimes=("opencv", real_caffe), inputs=[x])
    assert result.layer_types == ["Input", "Pooling", "Scale"]
    # the Scale is needed: Caffe's own average (the Pooling blob) differs from TF's at the border
    entry, output = result.report["inputs"][0], result.report["outputs"][0]
    blobs = real_caffe.forward(result.out / "deploy.prototxt", result.out / "deploy.caffemodel",
                               [x.transpose(entry["permutation"])])
    pooled, final = blobs[f"{output['caffe_blob']}/pool"], blobs[output["caffe_blob"]]
    assert np.abs(pooled - final)[:, :, 1:-1, 1:-1].max() < 1e-6  # interior windows: 9 valid cells in both
    assert np.abs(pooled - final).max() > 1e-2


def test_pool_without_caffe_window_grid_is_refused() -> None:
    """Pads Caffe cannot reach (here 3 at the end of a 2-wide window: no pad < kernel aligns the windows) are
    refused naming the node, not written approximately."""
    from transpiler.backends.caffe.emitter import emit_caffe
    from transpiler.backends.caffe.flavors import get_flavor
    from transpiler.errors import BackendError
    from transpiler.ir import Graph
    from transpiler.ir.dtypes import DType
    from transpiler.ir.ops import infer_node

    g = Graph("pool")
    x = g.add_input("x", DType.FLOAT32, (1, 2, 4, 4), layout="NCHW")
    node = g.add_node("Pool", [x], 1, {"mode": "max", "kernel": (2, 2), "strides": (1, 1), "padding": "EXPLICIT",
                                       "pads": (0, 3, 0, 0), "global_pool": False}, name="odd_pool")
    infer_node(node)
    g.outputs = [node.output]
    with pytest.raises(BackendError, match=r"odd_pool.*pad < kernel"):
        emit_caffe(g, get_flavor("ssd"))


@pytest.mark.parametrize(("k", "s", "hw"), [(2, 1, (6, 5)), (4, 1, (7, 7)), (3, 3, (8, 10)), (1, 2, (7, 6))])
@pytest.mark.parametrize("flavor", ["opencv", "bvlc", "kernels"])
def test_pooling_in_every_flavor(tmp_path: Path, k: int, s: int, hw: tuple[int, int], flavor: str,
                                 real_caffe: Any) -> None:
    import tensorflow as tf

    x = np.random.default_rng(k * 10 + s).normal(size=(1, *hw, 3)).astype(np.float32)
    runtimes = ("opencv",) if flavor == "opencv" else ("opencv", real_caffe)
    check_op(tmp_path, lambda x: (tf.nn.max_pool2d(x, k, s, "SAME"), tf.nn.avg_pool2d(x, k, s, "SAME")), [x.shape],
             flavor=flavor, inputs=[x], runtimes=runtimes)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_split_per_axis_where_caffe_and_opencv_count_differently(tmp_path: Path, mode: str,
                                                                      real_caffe: Any) -> None:
    """3×3 stride 4 SAME on 9×12 pads H by 1 and W by 0; Caffe (any pad on either axis) drops W's last window
    starting at 12, OpenCV (per axis) keeps it: the pool is written as two per-axis Poolings."""
    import tensorflow as tf

    pool = tf.nn.max_pool2d if mode == "max" else tf.nn.avg_pool2d
    result = check_op(tmp_path, lambda x: pool(x, 3, 4, "SAME"), [(1, 9, 12, 2)], runtimes=("opencv", real_caffe))
    assert result.layer_types.count("Pooling") == 2
