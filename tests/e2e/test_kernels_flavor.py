"""The ``kernels`` flavor end to end: converted models equal TensorFlow, run in a real Caffe built with our
layers, and in the NumPy Caffe runner.

OpenCV cannot run ``DepthwiseConvolution``. These models run in SSD-Caffe built from source with our
layers installed by our installer (tests/real_caffe.py: the C++ layers themselves), and in
``caffe_numpy_runner`` (float64, with kernels/reference.py for the custom layers). The numpy runner is
first checked against OpenCV on the ``ssd`` flavor of the same fixture, which only uses layers OpenCV knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from caffe_numpy_runner import run_caffe_net
from conftest import fixture_model
from e2e_helpers import convert_model, rel_error
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow

BACKBONES = ["keras3_mnv2_300_notop", "tfkeras_mnv2_300_notop"]
PICTURES = ["astronaut", "camera", "coffee"]

Converted = tuple[str, Path, dict[str, Any]]


def _convert(tmp_path_factory: pytest.TempPathFactory, name: str, flavor: str) -> Converted:
    out = tmp_path_factory.mktemp(f"{name}_{flavor}")
    return name, out, convert_model(fixture_model(name), out, flavor=flavor)


def _run(converted: Converted, x_nhwc: np.ndarray) -> np.ndarray:
    """The first output of the converted net, run by the NumPy runner (Caffe layout)."""
    _, out, report = converted
    entry, output = report["inputs"][0], report["outputs"][0]
    blobs = run_caffe_net(out / "deploy.prototxt", out / "deploy.caffemodel",
                          {entry["caffe_blob"]: np.transpose(x_nhwc, entry["permutation"])})
    return blobs[output["caffe_blob"]]


def _net(out: Path) -> Any:
    return text_format.Parse((out / "deploy.prototxt").read_text(), cp.NetParameter())


@pytest.fixture(scope="module", params=BACKBONES)
def kernels_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    return _convert(tmp_path_factory, request.param, "kernels")


@pytest.fixture(scope="module")
def ssd_model(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    return _convert(tmp_path_factory, BACKBONES[0], "ssd")


@pytest.mark.parametrize("pic", PICTURES)
def test_kernels_flavor_matches_tf_reference(kernels_model: Converted, pic: str) -> None:
    name, _, report = kernels_model
    refs = fixture_model(name).parent
    ref = np.load(refs / f"ref_{pic}.npz")
    got = _run(kernels_model, ref["input"])
    perm = report["outputs"][0]["permutation"]
    assert rel_error(np.transpose(ref["output"], perm), got) <= 1e-4
    # the picture matters: another picture's reference is far away (so this test can fail)
    other = np.load(refs / f"ref_{PICTURES[PICTURES.index(pic) - 1]}.npz")
    assert rel_error(np.transpose(other["output"], perm), got) > 1e-2


@pytest.mark.parametrize("pic", PICTURES)
def test_kernels_flavor_in_real_caffe_matches_tf_reference(kernels_model: Converted, pic: str, real_caffe: Any) -> None:
    name, out, report = kernels_model
    ref = np.load(fixture_model(name).parent / f"ref_{pic}.npz")
    entry, output = report["inputs"][0], report["outputs"][0]
    blobs = real_caffe.forward(out / "deploy.prototxt", out / "deploy.caffemodel",
                               [np.transpose(ref["input"], entry["permutation"])])
    assert rel_error(np.transpose(ref["output"], output["permutation"]), blobs[output["caffe_blob"]]) <= 1e-4


def test_kernels_flavor_structure(kernels_model: Converted) -> None:
    _, out, _ = kernels_model
    layers = list(_net(out).layer)
    kinds = {layer.type for layer in layers}
    depthwise = [layer.depthwise_conv_param for layer in layers if layer.type == "DepthwiseConvolution"]
    assert len(depthwise) == 17  # every MobileNetV2 depthwise convolution is native
    assert any(p.pad_top != p.pad_bottom for p in depthwise), "uneven SAME padding must stay native"
    assert all(p.kernel_h == 3 and p.kernel_w == 3 for p in depthwise), "no enlarged kernels"
    assert all(layer.convolution_param.group == 1 for layer in layers if layer.type == "Convolution")
    assert "ReLU6" in kinds and not kinds & {"Clip", "Power", "ReLU"}, kinds


def _opencv_all(converted: Converted, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """OpenCV's output of every layer (by layer name) of the converted net."""
    _, out, report = converted
    entry = report["inputs"][0]
    names = [layer.name for layer in _net(out).layer if layer.type != "Input"]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    return run_opencv(net, {entry["caffe_blob"]: np.transpose(x_nhwc, entry["permutation"])}, names)


@pytest.mark.parametrize("pic", PICTURES)
def test_runner_agrees_with_opencv_end_to_end(ssd_model: Converted, pic: str) -> None:
    # 52 float32 convolutions in OpenCV drift ~3e-5 from the float64 runner (as from TF's float32 run):
    # the per-layer test below holds each layer to 1e-5; a semantic slip would be off by > 1e-2.
    _, _, report = ssd_model
    x = np.load(fixture_model(BACKBONES[0]).parent / f"ref_{pic}.npz")["input"]
    cv = _opencv_all(ssd_model, x)[report["outputs"][0]["caffe_layer"]]
    assert rel_error(cv, _run(ssd_model, x)) <= 1e-4


def test_runner_matches_opencv_layer_by_layer(ssd_model: Converted, tmp_path: Path) -> None:
    """Each layer alone, fed OpenCV's own values of its bottoms, gives OpenCV's output to float32 rounding."""
    _, out, report = ssd_model
    x = np.load(fixture_model(BACKBONES[0]).parent / f"ref_{PICTURES[0]}.npz")["input"]
    cv = _opencv_all(ssd_model, x)
    cv[report["inputs"][0]["caffe_blob"]] = np.transpose(x, report["inputs"][0]["permutation"])
    weights = cp.NetParameter()
    weights.ParseFromString((out / "deploy.caffemodel").read_bytes())
    stored = {layer.name: layer for layer in weights.layer}
    producer: dict[str, str] = {}
    checked = set()
    for layer in _net(out).layer:
        if layer.type != "Input":
            single, model = cp.NetParameter(), cp.NetParameter()
            feeds = {b: cv[producer[b]] for b in layer.bottom}
            for i, (blob, value) in enumerate(feeds.items()):
                feed = single.layer.add(name=f"feed{i}", type="Input", top=[blob])
                feed.input_param.shape.add(dim=value.shape)
            single.layer.add().CopyFrom(layer)
            if layer.name in stored:
                model.layer.add().CopyFrom(stored[layer.name])
            (tmp_path / "one.prototxt").write_text(text_format.MessageToString(single))
            (tmp_path / "one.caffemodel").write_bytes(model.SerializeToString())
            got = run_caffe_net(tmp_path / "one.prototxt", tmp_path / "one.caffemodel", feeds)[layer.top[0]]
            assert rel_error(cv[layer.name], got) <= 1e-5, (layer.type, layer.name)
            checked.add(layer.type)
        producer.update(dict.fromkeys(layer.top, layer.name))
    assert checked == {"Convolution", "ReLU6", "Eltwise"}


def test_depthwise_multiplier_2_stride_2_uneven_pads(tmp_path: Path) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        inp = tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        filt = tf.constant(rng.standard_normal((3, 3, 3, 2)).astype(np.float32))
        y = tf.nn.depthwise_conv2d(inp, filt, strides=[1, 2, 2, 1], padding="SAME")
        y = tf.nn.bias_add(y, tf.constant(rng.standard_normal(6).astype(np.float32)))
        tf.identity(y, name="output")
    model = tmp_path / "model.pb"
    model.write_bytes(graph.as_graph_def().SerializeToString())
    out = tmp_path / "out"
    report = convert_model(model, out, flavor="kernels")

    (p,) = [layer.depthwise_conv_param for layer in _net(out).layer if layer.type == "DepthwiseConvolution"]
    assert (p.num_output, p.channel_multiplier, p.stride_h, p.stride_w) == (6, 2, 2, 2)
    assert (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) == (0, 1, 0, 1)
    assert (p.kernel_h, p.kernel_w) == (3, 3)
    expected = run_tensorflow(model, {"input:0": x}, [report["outputs"][0]["tf_tensor"]])
    ref = np.transpose(next(iter(expected.values())), report["outputs"][0]["permutation"])
    got = _run(("dw", out, report), x)
    assert got.shape == (1, 6, 8, 8)
    assert rel_error(ref, got) <= 1e-5
