"""Padding is exact: TF SAME and Pad+VALID convolutions, through OpenCV dnn and SSD-Caffe, equal TensorFlow.

Covers strides 1 and 2, even and odd inputs (non-square too), kernels 1/3/5, dilation 2, regular
and depthwise convolutions, asymmetric explicit Pads. Every case goes TF graph → transpiler →
OpenCV dnn (and, for the ssd and kernels flavors, the real SSD-Caffe of tests/real_caffe.py), compared
with TF's own output.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from e2e_helpers import convert_model, layer_types, rel_error, run_both


def _graph(path: Path, hw: tuple[int, int], kernel: int, stride: int, depthwise: bool, mode: str,
           dilation: int = 1, pads: tuple[tuple[int, int], tuple[int, int]] | None = None) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(kernel * 100 + stride * 10 + hw[0] + hw[1])
    channels = 4
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, *hw, channels), name="input")
        if depthwise:
            w = tf.constant(rng.normal(size=(kernel, kernel, channels, 2)).astype(np.float32))
        else:
            w = tf.constant(rng.normal(size=(kernel, kernel, channels, 6)).astype(np.float32))
        strides = [1, stride, stride, 1]
        padding = "SAME"
        if mode == "pad_valid":
            if pads is None:
                eff = dilation * (kernel - 1) + 1
                pads = tuple(  # type: ignore[assignment]
                    (p // 2, p - p // 2)
                    for p in (max((-(-n // stride) - 1) * stride + eff - n, 0) for n in hw)
                )
            x_in = tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])  # type: ignore[index]
            padding = "VALID"
        else:
            x_in = x
        if depthwise:
            y = tf.nn.depthwise_conv2d(x_in, w, strides, padding, dilations=[dilation, dilation])
        else:
            y = tf.nn.conv2d(x_in, w, strides, padding, dilations=[dilation, dilation])
        tf.identity(y, name="output")
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


CASES = list(itertools.product([1, 2], [(7, 7), (8, 8), (8, 7)], [1, 3, 5], [False, True], ["same", "pad_valid"],
                               ["ssd", "opencv"]))


@pytest.mark.parametrize(("stride", "hw", "kernel", "depthwise", "mode", "flavor"), CASES,
                         ids=[f"s{s}-{h}x{w}-k{k}-{'dw' if d else 'conv'}-{m}-{f}"
                              for s, (h, w), k, d, m, f in CASES])
def test_padding_exact_through_opencv(tmp_path: Path, stride: int, hw: tuple[int, int], kernel: int,
                                      depthwise: bool, mode: str, flavor: str) -> None:
    model = _graph(tmp_path / "m.pb", hw, kernel, stride, depthwise, mode)
    report = convert_model(model, tmp_path / "out", flavor=flavor)
    x = np.random.default_rng(0).normal(size=(1, *hw, 4)).astype(np.float32)
    for name, ref, got in run_both(model, tmp_path / "out", report, x):
        assert rel_error(ref, got) <= 1e-5, name
    kinds = [k for _, k, _ in layer_types(tmp_path / "out")]
    assert kinds == ["Input", "Convolution"], kinds  # Pad merged, no Slice/Crop
    if flavor == "opencv":  # native four-value pads: the kernel keeps its size
        assert f"kernel_h: {kernel}" in (tmp_path / "out" / "deploy.prototxt").read_text()


# in SSD-Caffe itself: the ssd flavor (enlarged kernels) and the kernels flavor (our DepthwiseConvolution
# with native uneven pads for the depthwise cases)
REAL_CAFFE_CASES = [(*c[:-1], f) for c in CASES if c[-1] == "ssd" for f in ("ssd", "kernels")]


@pytest.mark.parametrize(("stride", "hw", "kernel", "depthwise", "mode", "flavor"), REAL_CAFFE_CASES,
                         ids=[f"s{s}-{h}x{w}-k{k}-{'dw' if d else 'conv'}-{m}-{f}"
                              for s, (h, w), k, d, m, f in REAL_CAFFE_CASES])
def test_padding_exact_in_real_caffe(tmp_path: Path, stride: int, hw: tuple[int, int], kernel: int,
                                     depthwise: bool, mode: str, flavor: str, real_caffe: object) -> None:
    model = _graph(tmp_path / "m.pb", hw, kernel, stride, depthwise, mode)
    report = convert_model(model, tmp_path / "out", flavor=flavor)
    x = np.random.default_rng(0).normal(size=(1, *hw, 4)).astype(np.float32)
    for name, ref, got in run_both(model, tmp_path / "out", report, x, real_caffe):
        assert rel_error(ref, got) <= 1e-5, name


@pytest.mark.parametrize("flavor", ["ssd", "portable", "opencv"])
@pytest.mark.parametrize(("pads", "depthwise"), [(((1, 0), (0, 1)), False), (((0, 2), (2, 1)), True),
                                                 (((3, 1), (1, 1)), False)])
def test_asymmetric_explicit_pad(tmp_path: Path, pads: tuple[tuple[int, int], tuple[int, int]], depthwise: bool,
                                 flavor: str) -> None:
    model = _graph(tmp_path / "m.pb", (9, 10), 3, 2, depthwise, "pad_valid", pads=pads)
    report = convert_model(model, tmp_path / "out", flavor=flavor)
    x = np.random.default_rng(1).normal(size=(1, 9, 10, 4)).astype(np.float32)
    for name, ref, got in run_both(model, tmp_path / "out", report, x):
        assert rel_error(ref, got) <= 1e-5, name


@pytest.mark.parametrize("flavor", ["ssd", "opencv"])
def test_dilated_same_convolution(tmp_path: Path, flavor: str) -> None:
    model = _graph(tmp_path / "m.pb", (10, 9), 3, 1, False, "same", dilation=2)
    report = convert_model(model, tmp_path / "out", flavor=flavor)
    x = np.random.default_rng(2).normal(size=(1, 10, 9, 4)).astype(np.float32)
    for name, ref, got in run_both(model, tmp_path / "out", report, x):
        assert rel_error(ref, got) <= 1e-5, name


@pytest.mark.parametrize("flavor", ["ssd", "opencv", "kernels"])
def test_dilated_depthwise_converts_exactly(tmp_path: Path, flavor: str, real_caffe: object) -> None:
    """TF writes it as SpaceToBatchND → depthwise conv → BatchToSpaceND; fold-space-to-batch makes it one
    dilated convolution, equal to TF in OpenCV (not for kernels: OpenCV lacks DepthwiseConvolution) and in
    the real SSD-Caffe."""
    model = _graph(tmp_path / "m.pb", (10, 9), 3, 1, True, "same", dilation=2)
    report = convert_model(model, tmp_path / "out", flavor=flavor)
    kinds = [k for _, k, _ in layer_types(tmp_path / "out")]
    assert "SpaceToBatchND" not in str(kinds) and len(kinds) == 2, kinds
    assert "dilation" in (tmp_path / "out" / "deploy.prototxt").read_text()
    x = np.random.default_rng(2).normal(size=(1, 10, 9, 4)).astype(np.float32)
    runtimes = ([] if flavor == "kernels" else ["opencv"]) + ([real_caffe] if flavor != "opencv" else [])
    for runtime in runtimes:
        for name, ref, got in run_both(model, tmp_path / "out", report, x, runtime):
            assert rel_error(ref, got) <= 1e-5, name
