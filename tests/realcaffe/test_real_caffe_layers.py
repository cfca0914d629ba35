"""Our ReLU6 and DepthwiseConvolution layers, installed into a real SSD-Caffe tree by our installer and
built with it, compute what the numpy reference computes, forward and backward (data, weights, bias).

Independent reference: kernels/reference.py (plain numpy, float64; itself checked against finite
differences and TF in tests/kernels). Each case is a one-layer net with `force_backward`, run through
Caffe's own Net::Forward/Backward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.kernels import reference as ref

# (N, C, H, W, M, KH, KW, stride, dilation, pads (top, bottom, left, right))
CASES = [
    (1, 8, 12, 12, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),
    (2, 6, 12, 12, 1, 3, 3, (2, 2), (1, 1), (0, 1, 0, 1)),  # TF SAME, stride 2, even input: uneven pads
    (1, 5, 11, 9, 1, 3, 3, (2, 2), (1, 1), (1, 1, 1, 1)),
    (1, 4, 10, 10, 2, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # channel multiplier 2
    (1, 4, 13, 13, 1, 3, 3, (1, 1), (2, 2), (2, 2, 2, 2)),  # dilation 2
    (2, 3, 1, 1, 1, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # 1x1 map: only the centre tap is live
    (1, 7, 9, 14, 1, 5, 5, (1, 1), (1, 1), (2, 2, 2, 2)),
    (1, 3, 10, 7, 3, 5, 3, (2, 1), (1, 2), (1, 3, 0, 2)),  # everything uneven at once
    (1, 16, 19, 19, 1, 3, 3, (2, 2), (1, 1), (0, 1, 0, 1)),
    (1, 2, 6, 6, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
]


def _blob(array: np.ndarray) -> Any:
    blob = cp.BlobProto()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(array.astype(np.float32).ravel().tolist())
    return blob


def _write_weights(path: Path, layer: str, layer_type: str, *arrays: np.ndarray) -> Path:
    net = cp.NetParameter(name="one_layer")
    entry = net.layer.add(name=layer, type=layer_type)
    for a in arrays:
        entry.blobs.append(_blob(a))
    path.write_bytes(net.SerializeToString())
    return path


def _input(shape: tuple[int, ...]) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}\n'


def _case_id(c: tuple) -> str:
    return "x".join(map(str, c[:5])) + f"-k{c[5]}{c[6]}-s{c[7]}-d{c[8]}-p{c[9]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_depthwise_convolution_forward_and_backward(real_caffe: Any, tmp_path: Path, case: tuple) -> None:
    n, c, h, w, m, kh, kw, stride, dilation, pads = case
    rng = np.random.default_rng(sum(case[:7]))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weights = rng.standard_normal((c * m, 1, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(c * m).astype(np.float32)
    pt, pb, pl, pr = pads
    prototxt = tmp_path / "dw.prototxt"
    prototxt.write_text(
        'name: "dw" force_backward: true\n' + _input((n, c, h, w))
        + 'layer { name: "dw" type: "DepthwiseConvolution" bottom: "x" top: "y" depthwise_conv_param {'
        f" channel_multiplier: {m} kernel_h: {kh} kernel_w: {kw} stride_h: {stride[0]} stride_w: {stride[1]}"
        f" dilation_h: {dilation[0]} dilation_w: {dilation[1]}"
        f" pad_top: {pt} pad_bottom: {pb} pad_left: {pl} pad_right: {pr} }} }}\n")
    model = _write_weights(tmp_path / "dw.caffemodel", "dw", "DepthwiseConvolution", weights, bias)

    expected = ref.depthwise_conv2d_nchw(x.astype(np.float64), weights.astype(np.float64), bias.astype(np.float64),
                                         stride, pads, dilation, m)
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    run = real_caffe.run(prototxt, model, [x], top_diffs={"y": dy})

    assert run.blobs["y"].shape == expected.shape
    assert ref.max_rel_error(run.blobs["y"], expected) <= 1e-5
    dx, dw, db = ref.depthwise_conv2d_nchw_backward(dy.astype(np.float64), x.astype(np.float64),
                                                    weights.astype(np.float64), stride, pads, dilation, m)
    assert ref.max_rel_error(run.diffs["x"], dx) <= 1e-5
    got_dw, got_db = run.param_diffs["dw"]
    assert ref.max_rel_error(got_dw, dw) <= 1e-5
    assert ref.max_rel_error(got_db, db) <= 1e-5


def test_depthwise_convolution_rejects_a_bad_multiplier(real_caffe: Any, tmp_path: Path) -> None:
    from real_caffe import CaffeRunError

    prototxt = tmp_path / "bad.prototxt"
    prototxt.write_text(_input((1, 4, 5, 5)) + 'layer { name: "dw" type: "DepthwiseConvolution" bottom: "x" top: "y"'
                        " depthwise_conv_param { num_output: 6 kernel_h: 3 kernel_w: 3 } }\n")
    with pytest.raises(CaffeRunError, match="multiple"):
        real_caffe.run(prototxt, None, [np.zeros((1, 4, 5, 5), np.float32)])


def test_relu6_forward_and_backward_in_place(real_caffe: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    x = rng.uniform(-3, 9, (2, 3, 7, 5)).astype(np.float32)
    x.flat[:4] = [0.0, 6.0, -0.0, 5.999999]  # the edges of the linear region
    dy = rng.standard_normal(x.shape).astype(np.float32)
    prototxt = tmp_path / "relu6.prototxt"
    # in place, as converted models use it: the blob "x" holds the output, its diff the input gradient
    prototxt.write_text('name: "r" force_backward: true\n' + _input(x.shape)
                        + 'layer { name: "r6" type: "ReLU6" bottom: "x" top: "x" }\n')
    run = real_caffe.run(prototxt, None, [x], top_diffs={"x": dy})
    assert np.array_equal(run.blobs["x"], ref.relu6(x))
    assert np.array_equal(run.diffs["x"], ref.relu6_backward(x, dy))


def test_timing_mode_reports_the_net_and_each_layer(real_caffe: Any, tmp_path: Path) -> None:
    """bench/bench_real_caffe.py's measurement: a whole-net median and one row per layer."""
    prototxt = tmp_path / "t.prototxt"
    prototxt.write_text(_input((1, 4, 8, 8)) + 'layer { name: "r6" type: "ReLU6" bottom: "x" top: "y" }\n')
    total, layers = real_caffe.time(prototxt, None, [np.ones((1, 4, 8, 8), np.float32)], repeats=3)
    assert total > 0 and [(name, kind) for name, kind, _ in layers] == [("x", "Input"), ("r6", "ReLU6")]
