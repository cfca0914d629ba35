"""The toolchain flavors refuse, before anything is written, what their importer rejects or misreads, naming the
layer and the toolchain (the tables themselves are held to the importers by test_layer_forms.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import fixture_model, freeze_tf_function
from e2e_helpers import convert_model

from transpiler.backends.caffe.flavors import FLAVORS, GENERIC_FLAVORS, TOOLCHAIN_FLAVORS, get_flavor
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import BackendError
from transpiler.op_table import run_ops


def test_generic_flavors_are_unchanged() -> None:
    assert GENERIC_FLAVORS == ("ssd", "bvlc", "portable", "kernels", "opencv")
    assert set(TOOLCHAIN_FLAVORS) == {"mnn", "tpu-mlir", "paddle", "rknn", "ncnn", "nnie"}
    for name in GENERIC_FLAVORS:
        f = FLAVORS[name]
        assert not f.toolchain and f.postprocess == "caffe" and not f.identifier_names
        assert f.eltwise_coeff and f.two_bottom_scale and f.ave_pool_pads and f.permute_orders is None
        assert f.max_pool_pads and f.concat_4d and f.per_channel_scale and f.eltwise_ops == {"SUM", "PROD", "MAX"}


@pytest.mark.parametrize("flavor", TOOLCHAIN_FLAVORS)
def test_toolchain_flavor_basics(flavor: str, capsys: pytest.CaptureFixture[str]) -> None:
    f = get_flavor(flavor)
    assert f.uneven_pads == "none"  # MNN and x2paddle misread the four-value pad, TPU-MLIR/RKNN refuse it
    assert "DepthwiseConvolution" not in f.layer_types and "Clip" not in f.layer_types
    assert f.postprocess == ("caffe" if flavor in ("mnn", "tpu-mlir") else "external")
    assert run_ops(["--flavor", flavor]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["Relu6"].split()[-1] == ("ReLU+Power+Eltwise" if flavor == "nnie" else "ReLU6")


def _detector(out: Path, flavor: str, **kw: Any) -> dict[str, Any]:
    return convert_model(fixture_model("pedestrian_ssdlite"), out, flavor=flavor, **kw)


@pytest.mark.parametrize("flavor", ["rknn", "paddle", "ncnn", "nnie"])
def test_in_net_detection_output_is_refused_naming_the_toolchain(flavor: str, tmp_path: Path) -> None:
    with pytest.raises(BackendError) as info:
        _detector(tmp_path / "out", flavor, postprocess="caffe")
    message = str(info.value)
    assert f"{flavor}: layer 'detection_out'" in message and "DetectionOutput is not supported by" in message
    assert get_flavor(flavor).toolchain in message and "--postprocess external" in message
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["rknn", "nnie"])
def test_external_postprocess_is_the_default_and_passes_the_checks(flavor: str, tmp_path: Path) -> None:
    report = _detector(tmp_path / "out", flavor)
    assert "postprocess" in report and (tmp_path / "out" / "priors.npy").exists()
    kinds = {layer.split('"')[1] for layer in (tmp_path / "out" / "deploy.prototxt").read_text().split("type: ")[1:]}
    assert not kinds & {"PriorBox", "DetectionOutput"}


def _graph(tmp_path: Path, fn: Callable[[Any], Any], shape: tuple[int, ...] = (1, 8, 8, 4)) -> Path:
    return freeze_tf_function(fn, shape, tmp_path / "model.pb")


def _refusal(tmp_path: Path, model: Path, flavor: str) -> str:
    with pytest.raises(BackendError) as info:
        convert_model(model, tmp_path / "out", flavor=flavor)
    assert not (tmp_path / "out").exists()
    return str(info.value)


@pytest.mark.parametrize(("flavor", "layer_type"), [("paddle", "AbsVal"), ("rknn", "AbsVal"), ("tpu-mlir", "Power")])
def test_layer_type_the_importer_rejects_is_refused(tmp_path: Path, flavor: str, layer_type: str) -> None:
    import tensorflow as tf

    fn = (lambda x: tf.abs(x) + 1.0) if layer_type == "AbsVal" else (lambda x: tf.sqrt(tf.abs(x) + 1.0))
    message = _refusal(tmp_path, _graph(tmp_path, fn), flavor)
    assert f"layer type {layer_type} is not supported by {get_flavor(flavor).toolchain}" in message, message


@pytest.mark.parametrize("flavor", ["mnn", "paddle", "tpu-mlir"])
def test_two_bottom_scale_is_refused(tmp_path: Path, flavor: str) -> None:
    """A squeeze-excite gate (x · sigmoid(mean(x))) is a Scale with a second bottom: MNN's converter crashes on it."""
    import tensorflow as tf

    message = _refusal(tmp_path, _graph(tmp_path, lambda x: x * tf.sigmoid(tf.reduce_mean(x, [1, 2], keepdims=True))),
                       flavor)
    assert "a Scale whose factor is a second bottom" in message and get_flavor(flavor).toolchain in message


@pytest.mark.parametrize("flavor", ["ncnn", "tpu-mlir"])
def test_eltwise_coefficients_are_refused_where_dropped(tmp_path: Path, flavor: str) -> None:
    import tensorflow as tf

    message = _refusal(tmp_path, _graph(tmp_path, lambda x: tf.nn.relu(x) - x), flavor)
    assert "Eltwise coefficients [1.0, -1.0] are dropped by" in message, message


def test_check_net_forms() -> None:
    """Permute orders (nnie), Eltwise MAX and Power exponents (paddle), names (paddle), AVE over padding (rknn)."""
    net = cp.NetParameter()
    for name, type_, setup in [
        ("p", "Permute", lambda layer: layer.permute_param.order.extend([0, 3, 1, 2])),
        ("ok", "Permute", lambda layer: layer.permute_param.order.extend([0, 2, 3, 1])),
        ("m", "Eltwise", lambda layer: setattr(layer.eltwise_param, "operation", cp.EltwiseParameter.MAX)),
        ("sq", "Power", lambda layer: setattr(layer.power_param, "power", 2.0)),
        ("a/b", "ReLU", lambda layer: None),
        ("avg", "Pooling", lambda layer: layer.pooling_param.MergeFrom(cp.PoolingParameter(
            pool=cp.PoolingParameter.AVE, pad=1))),
    ]:
        layer = net.layer.add()
        layer.name, layer.type = name, type_
        layer.top.append(name)
        setup(layer)
    nnie = get_flavor("nnie").check_net(net)
    assert nnie == ["nnie: layer 'p' (Permute): Permute order (0, 3, 1, 2) is not supported by HiSilicon NNIE mapper "
                    "(only (0, 2, 3, 1))"]
    paddle = get_flavor("paddle").check_net(net)
    assert [p.split(":")[1].strip() for p in paddle] == ["layer 'm' (Eltwise)", "layer 'sq' (Power)",
                                                         "layer 'a/b' (ReLU)", "layer 'avg' (Pooling)"]
    assert any("not a lower-case Python identifier" in p for p in paddle)
    assert [p.split(":")[1].strip() for p in get_flavor("rknn").check_net(net)] == ["layer 'avg' (Pooling)"]
    for name in GENERIC_FLAVORS:
        assert get_flavor(name).check_net(net) == []


def test_identifier_names_rule() -> None:
    from transpiler.backends.caffe.flavors import is_identifier_name

    assert is_identifier_name("mobilenetv2_1_00_300_out_relu")
    for bad in ("mobilenetv2_1.00_300/out_relu", "Relu6", "1x", "class", "a-b"):
        assert not is_identifier_name(bad)
