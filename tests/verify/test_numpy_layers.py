"""The numpy layers ``--verify`` runs inside OpenCV agree with Caffe itself, each bound to its own layer.

Reference: the real SSD-Caffe the tests build (tests/real_caffe.py), with our DepthwiseConvolution
installed by kernels/. Hand-written nets hold several depthwise layers that differ only in parameters
or only in weights, so a mix-up between OpenCV's instances and the prototxt's layers would show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.verify.custom_layers import RuntimeRunError
from transpiler.verify.runners import load_opencv_net, run_opencv

DW = ('layer {{ name: "{name}" type: "DepthwiseConvolution" bottom: "{bottom}" top: "{name}" depthwise_conv_param {{ '
      'num_output: {out} channel_multiplier: {m} bias_term: {bias} kernel_h: {kh} kernel_w: {kw} stride_h: {sh} '
      'stride_w: {sw} pad_top: {pt} pad_bottom: {pb} pad_left: {pl} pad_right: {pr} dilation_h: {dh} '
      'dilation_w: {dw} }} }}\n')
# (name, bottom, out, m, bias, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw)
LAYERS = [
    ("dw_a", "data", 6, 2, "true", 3, 2, 2, 1, 0, 1, 1, 0, 1, 2),
    ("dw_b", "dw_a", 6, 1, "false", 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
    ("dw_c", "dw_b", 6, 1, "false", 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),  # dw_b's parameters, other weights
    ("dw_d", "dw_c", 6, 1, "true", 3, 3, 1, 1, 0, 2, 2, 0, 1, 1),  # dw_b's shapes, other pads
    ("dw_e", "dw_d", 12, 2, "true", 2, 3, 2, 2, 1, 0, 0, 1, 2, 1),
]


def _net(layers: list[tuple[Any, ...]]) -> str:
    keys = ("name", "bottom", "out", "m", "bias", "kh", "kw", "sh", "sw", "pt", "pb", "pl", "pr", "dh", "dw")
    head = ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 11 dim: 9 } } }'
            '\n')
    return head + "".join(DW.format(**dict(zip(keys, spec, strict=True))) for spec in layers)


def _write(folder: Path, text: str, rng: np.random.Generator) -> tuple[Path, Path]:
    prototxt, caffemodel = folder / "net.prototxt", folder / "net.caffemodel"
    prototxt.write_text(text)
    net: Any = text_format.Parse(text, cp.NetParameter())
    for layer in net.layer:
        if layer.type != "DepthwiseConvolution":
            continue
        p = layer.depthwise_conv_param
        for shape in [(p.num_output, 1, p.kernel_h, p.kernel_w)] + ([(p.num_output,)] if p.bias_term else []):
            blob = layer.blobs.add()
            blob.shape.dim.extend(shape)
            blob.data.extend(rng.normal(size=shape).astype(np.float32).reshape(-1).tolist())
    caffemodel.write_bytes(net.SerializeToString())
    return prototxt, caffemodel


def test_depthwise_layers_match_real_caffe(real_caffe: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    prototxt, caffemodel = _write(tmp_path, _net(LAYERS), rng)
    x = rng.uniform(-1, 1, (1, 3, 11, 9)).astype(np.float32)
    want = real_caffe.forward(prototxt, caffemodel, [x])
    net = load_opencv_net(prototxt, caffemodel)
    assert net.custom_types == ["DepthwiseConvolution"]
    names = [spec[0] for spec in LAYERS]
    for asked in (names, names[::-1][:1]):  # every blob, or only the last (OpenCV then builds in another order)
        got = run_opencv(load_opencv_net(prototxt, caffemodel), {"data": x}, asked)
        for name in asked:
            ref = want[name].astype(np.float64)
            err = np.abs(got[name].reshape(ref.shape) - ref).max()
            assert err <= 1e-5 * np.abs(ref).max(), (name, err)


def test_instances_that_cannot_be_told_apart_are_refused(tmp_path: Path) -> None:
    """Two layers holding the same weights, differing only in pads: if OpenCV passed no pad, the binder
    refuses to guess; given a pad, it binds the layer that has it; given weights no layer has, it refuses."""
    from transpiler.verify import custom_layers

    rng = np.random.default_rng(0)
    text = _net([LAYERS[1], ("dw_twin", "dw_b", 6, 1, "false", 3, 3, 1, 1, 0, 2, 2, 0, 1, 1)])
    prototxt, _ = _write(tmp_path, text, rng)
    layers = [layer for layer in custom_layers._parse(prototxt).layer if layer.type == "DepthwiseConvolution"]
    same = rng.normal(size=(6, 1, 3, 3)).astype(np.float32)
    binder = custom_layers._Binder(custom_layers.NUMPY_LAYERS["DepthwiseConvolution"], layers,
                                   {"dw_b": [same.reshape(-1)], "dw_twin": [same.reshape(-1)]})
    with pytest.raises(RuntimeRunError, match="could be any of 'dw_b', 'dw_twin'"):
        binder.bind({"num_output": "6"}, [same])
    assert binder.bind({"num_output": "6", "pad_top": "0"}, [same]).name == "dw_twin"
    with pytest.raises(RuntimeRunError, match="matches no layer"):
        binder.bind({"num_output": "6"}, [same + 1])  # weights no layer holds


@pytest.mark.parametrize(("low", "high"), [(0.0, 6.0), (-0.5, 0.25)])
def test_clip_reads_its_bounds(tmp_path: Path, low: float, high: float) -> None:
    """BVLC's Clip is ``min(max(x, min), max)`` (the SSD-Caffe built here predates it); the bounds are the
    layer's own, not ReLU6's."""
    prototxt = tmp_path / "clip.prototxt"
    prototxt.write_text('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 '
                        'dim: 4 } } }\nlayer { name: "clip" type: "Clip" bottom: "data" top: "clip" '
                        f'clip_param {{ min: {low} max: {high} }} }}\n')
    caffemodel = tmp_path / "clip.caffemodel"
    caffemodel.write_bytes(cp.NetParameter().SerializeToString())
    x = np.linspace(-8, 8, 24, dtype=np.float32).reshape(1, 2, 3, 4)
    got = run_opencv(load_opencv_net(prototxt, caffemodel), {"data": x}, ["clip"])["clip"]
    np.testing.assert_array_equal(got, np.minimum(np.maximum(x, np.float32(low)), np.float32(high)))
