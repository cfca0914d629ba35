"""Every layer form the Caffe backend emits, imported and run by each toolchain: the evidence behind the toolchain
flavors' tables (backends/caffe/flavors.py).

One small net per form (Input ``x`` 1×4×6×6 of seeded noise → the form → blob ``y``), converted/imported by the
toolchain's own importer through its driver (drivers/), run on the CPU, and compared with a float64 NumPy Caffe
(tests/caffe_numpy_runner.py, plus the element-wise layers defined here). A form is ``exact`` when
max|Δ| ≤ 1e-5·max|ref| (float16 toolchains: ``FORM_TOLERANCE``). The tests then hold the flavors to what was observed:

- every form the toolchain's flavor can emit (its layer types, symmetric pads, its ReLU6 spelling) is exact there;
- every form the flavor leaves out is refused or wrong there (the exclusion is needed, not a guess).

Observations are written to ``results/forms__<toolchain>.json`` (the README's layer-form table reads them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from caffe_numpy_runner import run_caffe_net
from google.protobuf import text_format
from toolchain_envs import TOOLCHAINS, ToolchainUnavailable, ensure_env, record_forms, run_driver

from transpiler.backends.caffe.flavors import get_flavor
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

SHAPE = (1, 4, 6, 6)
RNG_SEED = 7
EXACT = 1e-5  # float32 toolchains: one layer within 1e-5·max|ref| of float64
# RKNN's simulator computes in float16 only (unit roundoff u = 2^-11 ≈ 4.9e-4): the input, the weights and the
# output of a layer are each rounded, so one layer is within ~3u relative where it computes the same function;
# measured 0.9e-4..4.6e-4 on every form it runs, against 0.33 for its AVE pooling over padding (another function).
FORM_TOLERANCE = {"rknn": 2e-3}


def _net(build: Callable[[Any, np.random.Generator], None]) -> tuple[Any, Any]:
    """(prototxt net, weights net) for Input x → the layers ``build`` adds (last top: y)."""
    net = cp.NetParameter()
    x = net.layer.add()
    x.name, x.type = "x", "Input"
    x.top.append("x")
    x.input_param.shape.add().dim.extend(SHAPE)
    build(net, np.random.default_rng(RNG_SEED))
    weights = cp.NetParameter()
    weights.CopyFrom(net)
    for layer in net.layer:
        del layer.blobs[:]
    return net, weights


def _layer(net: Any, type_: str, bottoms: list[str], top: str = "y", name: str | None = None) -> Any:
    layer = net.layer.add()
    layer.name, layer.type = name or top, type_
    layer.bottom.extend(bottoms)
    layer.top.append(top)
    return layer


def _blob(layer: Any, a: np.ndarray) -> None:
    blob = layer.blobs.add()
    blob.shape.dim.extend(a.shape)
    blob.data.extend(a.astype(np.float32).reshape(-1).tolist())


def _conv(pad: str = "sym", group: int = 1, dilation: int = 1, kind: str = "Convolution") -> Callable[..., None]:
    def build(net: Any, rng: np.random.Generator) -> None:
        layer = _layer(net, kind, ["x"])
        out = 4 if group > 1 or kind == "DepthwiseConvolution" else 5
        if kind == "DepthwiseConvolution":
            p = layer.depthwise_conv_param
            p.num_output, p.channel_multiplier = 4, 1
            p.pad_top, p.pad_bottom, p.pad_left, p.pad_right = 0, 1, 0, 1
            p.stride_h = p.stride_w = 2
            p.kernel_h = p.kernel_w = 3
            p.dilation_h = p.dilation_w = 1
            _blob(layer, rng.normal(size=(4, 1, 3, 3)))
            _blob(layer, rng.normal(size=4))
            return
        p = layer.convolution_param
        p.num_output = out
        p.kernel_h = p.kernel_w = 3
        if pad == "four":  # OpenCV's [top, left, bottom, right]
            p.pad.extend([0, 0, 1, 1])
            p.stride_h = p.stride_w = 2
        else:
            p.pad_h = p.pad_w = dilation
        if group > 1:
            p.group = group
        if dilation > 1:
            p.dilation.append(dilation)
        _blob(layer, rng.normal(size=(out, 4 // group, 3, 3)))
        _blob(layer, rng.normal(size=out))
    return build


def _simple(type_: str, setup: Callable[[Any], None] = lambda layer: None) -> Callable[..., None]:
    def build(net: Any, rng: np.random.Generator) -> None:
        setup(_layer(net, type_, ["x"]))
    return build


def _two(type_: str, setup: Callable[[Any], None] = lambda layer: None) -> Callable[..., None]:
    """A two-bottom layer on x and relu(x) (one Input: every driver feeds one)."""
    def build(net: Any, rng: np.random.Generator) -> None:
        _layer(net, "ReLU", ["x"], "r")
        setup(_layer(net, type_, ["x", "r"]))
    return build


def _pool(method: str, global_: bool = False) -> Callable[..., None]:
    def setup(layer: Any) -> None:
        p = layer.pooling_param
        p.pool = getattr(cp.PoolingParameter, method)
        if global_:
            p.global_pooling = True
        else:
            p.kernel_size, p.stride, p.pad = 3, 2, 1
    return _simple("Pooling", setup)


def _weighted(type_: str, shapes: list[tuple[int, ...]], setup: Callable[[Any], None]) -> Callable[..., None]:
    def build(net: Any, rng: np.random.Generator) -> None:
        layer = _layer(net, type_, ["x"])
        setup(layer)
        for s in shapes:
            _blob(layer, rng.uniform(0.5, 1.5, size=s))
    return build


def _slice(net: Any, rng: np.random.Generator) -> None:
    """Slice channels 0 | 1..3, a 1×1 convolution on each part (distinct weights: swapped parts would show), summed."""
    cut = _layer(net, "Slice", ["x"], "a", name="slice")
    cut.top.append("b")
    cut.slice_param.axis = 1
    cut.slice_param.slice_point.append(1)
    for part, channels in (("a", 1), ("b", 3)):
        conv = _layer(net, "Convolution", [part], f"{part}_conv")
        conv.convolution_param.num_output = 2
        conv.convolution_param.kernel_size.append(1)
        conv.convolution_param.bias_term = False
        _blob(conv, rng.normal(size=(2, channels, 1, 1)))
    _layer(net, "Eltwise", ["a_conv", "b_conv"])


def _deconv(upsample: bool) -> Callable[..., None]:
    """The backend's two Deconvolution forms: nearest upsampling (depthwise, unit weights, kernel = stride = 2) and a
    transposed convolution (dense, kernel 3, stride 2, pad 1, bias)."""
    def build(net: Any, rng: np.random.Generator) -> None:
        layer = _layer(net, "Deconvolution", ["x"])
        p = layer.convolution_param
        p.num_output = 4 if upsample else 3
        p.stride_h = p.stride_w = 2
        if upsample:
            p.kernel_h = p.kernel_w = 2
            p.group = 4
            p.bias_term = False
            _blob(layer, np.ones((4, 1, 2, 2)))
        else:
            p.kernel_h = p.kernel_w = 3
            p.pad_h = p.pad_w = 1
            _blob(layer, rng.normal(size=(4, 3, 3, 3)))
            _blob(layer, rng.normal(size=3))
    return build


def deconvolution_reference(x: np.ndarray, layer: Any, blobs: list[np.ndarray]) -> np.ndarray:
    """Caffe's Deconvolution: y_full[o, i·s + t] += x[c, i]·w[c, o/g, t] within each group, cropped by pad, + bias."""
    p = layer.convolution_param
    w = blobs[0]
    group = p.group or 1
    sh, sw = p.stride_h, p.stride_w
    kh, kw = w.shape[2], w.shape[3]
    n, c, h, wd = x.shape
    out_per_group = w.shape[1]
    full = np.zeros((n, out_per_group * group, (h - 1) * sh + kh, (wd - 1) * sw + kw))
    cg = c // group
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg]
        ws = w[g * cg:(g + 1) * cg]
        outs = slice(g * out_per_group, (g + 1) * out_per_group)
        for t in range(kh):
            for u in range(kw):
                rows, cols = slice(t, t + sh * (h - 1) + 1, sh), slice(u, u + sw * (wd - 1) + 1, sw)
                full[:, outs, rows, cols] += np.einsum("nchw,co->nohw", xs, ws[:, :, t, u])
    y = full[:, :, p.pad_h:full.shape[2] - p.pad_h, p.pad_w:full.shape[3] - p.pad_w]
    return y + blobs[1].reshape(1, -1, 1, 1) if p.bias_term else y


def _set(**fields: Any) -> Callable[[Any], None]:
    def setup(layer: Any) -> None:
        for path, value in fields.items():
            msg_name, attr = path.split("__")
            msg = getattr(layer, msg_name)
            if isinstance(value, list):
                getattr(msg, attr).extend(value)
            elif hasattr(value, "DESCRIPTOR"):
                getattr(msg, attr).CopyFrom(value)
            else:
                setattr(msg, attr, value)
    return setup


# form id -> (layer type the flavor tables list, how the backend spells it, net builder)
FORMS: dict[str, tuple[str, Callable[..., None]]] = {
    "Convolution": ("Convolution", _conv()),
    "Convolution-four-value-pad": ("Convolution", _conv(pad="four")),
    "Convolution-group-depthwise": ("Convolution", _conv(group=4)),
    "Convolution-dilated": ("Convolution", _conv(dilation=2)),
    "DepthwiseConvolution": ("DepthwiseConvolution", _conv(kind="DepthwiseConvolution")),
    "Pooling-MAX": ("Pooling", _pool("MAX")),
    "Pooling-AVE": ("Pooling", _pool("AVE")),
    "Pooling-global-AVE": ("Pooling", _pool("AVE", global_=True)),
    "InnerProduct": ("InnerProduct", _weighted("InnerProduct", [(3, 144), (3,)],
                                               _set(inner_product_param__num_output=3))),
    "Scale-bias": ("Scale", _weighted("Scale", [(4,), (4,)], _set(scale_param__bias_term=True))),
    "Scale-two-bottoms": ("Scale", _two("Scale")),
    "Eltwise-SUM": ("Eltwise", _two("Eltwise")),
    "Eltwise-SUM-coeff": ("Eltwise", _two("Eltwise", _set(eltwise_param__coeff=[1.0, -1.0]))),
    "Eltwise-PROD": ("Eltwise", _two("Eltwise", _set(eltwise_param__operation=cp.EltwiseParameter.PROD))),
    "Eltwise-MAX": ("Eltwise", _two("Eltwise", _set(eltwise_param__operation=cp.EltwiseParameter.MAX))),
    "Concat": ("Concat", _two("Concat")),
    "Softmax": ("Softmax", _simple("Softmax")),
    "ReLU": ("ReLU", _simple("ReLU")),
    "ReLU-negative-slope": ("ReLU", _simple("ReLU", _set(relu_param__negative_slope=0.2))),
    "ReLU6": ("ReLU6", _simple("ReLU6")),
    "Clip": ("Clip", _simple("Clip", _set(clip_param__min=0.0, clip_param__max=1.0))),
    "Sigmoid": ("Sigmoid", _simple("Sigmoid")),
    "TanH": ("TanH", _simple("TanH")),
    "Power-shift": ("Power", _simple("Power", _set(power_param__shift=-0.5))),
    "Power-square": ("Power", _simple("Power", _set(power_param__power=2.0))),
    "Exp": ("Exp", _simple("Exp")),
    "AbsVal": ("AbsVal", _simple("AbsVal")),
    "BNLL": ("BNLL", _simple("BNLL")),
    "ELU": ("ELU", _simple("ELU")),
    "Flatten": ("Flatten", _simple("Flatten")),
    "Reshape": ("Reshape", _simple("Reshape", _set(reshape_param__shape=cp.BlobShape(dim=[0, 8, 3, 6])))),
    "Permute-0231": ("Permute", _simple("Permute", _set(permute_param__order=[0, 2, 3, 1]))),
    "Permute-0312": ("Permute", _simple("Permute", _set(permute_param__order=[0, 3, 1, 2]))),
    "Slice": ("Slice", _slice),
    "Deconvolution-upsample": ("Deconvolution", _deconv(upsample=True)),
    "Deconvolution": ("Deconvolution", _deconv(upsample=False)),
}
ELEMENTWISE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "TanH": np.tanh, "Exp": np.exp, "AbsVal": np.abs, "BNLL": lambda x: np.log1p(np.exp(x)),
    "ELU": lambda x: np.where(x > 0, x, np.expm1(x)),
}


def reference(prototxt: Path, caffemodel: Path, x: np.ndarray) -> np.ndarray:
    net = text_format.Parse(prototxt.read_text(), cp.NetParameter())
    last = net.layer[-1]
    if last.type in ELEMENTWISE:
        return ELEMENTWISE[last.type](x.astype(np.float64))
    if last.type == "Deconvolution" or net.layer[1].type == "Slice":
        weights = cp.NetParameter()
        weights.ParseFromString(caffemodel.read_bytes())
        params = {layer.name: [np.asarray(b.data, np.float64).reshape(b.shape.dim) for b in layer.blobs]
                  for layer in weights.layer}
        if last.type == "Deconvolution":
            return deconvolution_reference(x.astype(np.float64), last, params[last.name])
        a, b = x[:, :1].astype(np.float64), x[:, 1:].astype(np.float64)
        return (np.einsum("nchw,oc->nohw", a, params["a_conv"][0][:, :, 0, 0])
                + np.einsum("nchw,oc->nohw", b, params["b_conv"][0][:, :, 0, 0]))
    if last.type == "Convolution" and len(last.convolution_param.pad) == 4:  # OpenCV's meaning, the opencv flavor's
        from transpiler.ir.ops import conv2d_nchw

        weights = cp.NetParameter()
        weights.ParseFromString(caffemodel.read_bytes())
        w, b = (np.asarray(blob.data, np.float64).reshape(blob.shape.dim) for blob in weights.layer[-1].blobs)
        t, left, bottom, r = last.convolution_param.pad
        stride = (last.convolution_param.stride_h, last.convolution_param.stride_w)
        return conv2d_nchw(x.astype(np.float64), w, stride, (1, 1), (t, bottom, left, r), 1) + b.reshape(1, -1, 1, 1)
    return run_caffe_net(prototxt, caffemodel, {"x": x})["y"]


def observe_all(toolchain: str, folder: Path, tolerance: float = EXACT) -> dict[str, dict[str, Any]]:
    """What the toolchain does with each form: {"status": exact|wrong|refused, "rel" or "detail"}; one driver
    process for all forms."""
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    nets: list[dict[str, Any]] = []
    for form, (_, build) in FORMS.items():
        net, weights = _net(build)
        d = folder / form
        d.mkdir(parents=True)
        (d / "deploy.prototxt").write_text(text_format.MessageToString(net))
        (d / "deploy.caffemodel").write_bytes(weights.SerializeToString())
        np.savez(d / "feeds.npz", noise=x)
        nets.append({"prototxt": str(d / "deploy.prototxt"), "caffemodel": str(d / "deploy.caffemodel"),
                     "input": "x", "shape": list(SHAPE), "outputs": ["y"], "feeds": str(d / "feeds.npz"),
                     "result": str(d / "result.npz"), "answer": str(d / "answer.json")})
    run_driver(toolchain, {"nets": nets}, folder / "work", timeout=1800)
    observed: dict[str, dict[str, Any]] = {}
    for form in FORMS:
        d = folder / form
        answer = json.loads((d / "answer.json").read_text()) if (d / "answer.json").exists() else {"error": "none"}
        if "error" in answer:
            observed[form] = {"status": "refused", "detail": answer["error"].splitlines()[-1][-300:]}
            continue
        ref = reference(d / "deploy.prototxt", d / "deploy.caffemodel", x)
        got = np.load(d / "result.npz")["noise/y"]
        if got.size != ref.size:
            observed[form] = {"status": "wrong", "detail": f"shape {list(got.shape)}, expected {list(ref.shape)}"}
            continue
        rel = float(np.abs(got.reshape(ref.shape) - ref).max() / max(float(np.abs(ref).max()), 1e-12))
        observed[form] = {"status": "exact" if rel <= tolerance else "wrong", "rel": rel}
    return observed


def emitted_by(flavor_name: str, form: str) -> bool:
    """Whether the flavor can write this form (its tables and its parameter choices)."""
    flavor = get_flavor(flavor_name)
    layer_type = FORMS[form][0]
    if layer_type not in flavor.layer_types:
        return False
    if form == "Convolution-four-value-pad":
        return flavor.uneven_pads == "all"
    if form == "Eltwise-SUM-coeff":
        return flavor.eltwise_coeff
    if form == "Scale-two-bottoms":
        return flavor.two_bottom_scale
    if form in ("Eltwise-MAX", "Eltwise-PROD"):
        return form.split("-")[1] in flavor.eltwise_ops
    if form == "Pooling-MAX":  # 3×3/2 with pad 1
        return flavor.max_pool_pads
    if form == "Concat":  # of two 4-D maps
        return flavor.concat_4d
    if form == "Scale-bias":  # per-channel factors and biases
        return flavor.per_channel_scale
    if form == "Power-square":
        return flavor.power_exponent
    if form == "Pooling-AVE":  # 3×3/2 with pad 1: the padding is counted (Caffe's AVE)
        return flavor.ave_pool_pads
    if layer_type == "Permute" and flavor.permute_orders is not None:
        return tuple(int(c) for c in form.split("-")[1]) in flavor.permute_orders
    return True


_OBSERVED: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.mark.slow
@pytest.mark.parametrize("toolchain", list(TOOLCHAINS))
def test_flavor_table_matches_the_importer(toolchain: str, tmp_path: Path) -> None:
    try:
        ensure_env(toolchain)
    except ToolchainUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"toolchain {toolchain} unavailable in CI: {exc}")
        pytest.skip(f"toolchain {toolchain} unavailable: {exc}")
    observed = observe_all(toolchain, tmp_path, FORM_TOLERANCE.get(toolchain, EXACT))
    record_forms(toolchain, observed)
    wrong = [f"{form}: emitted by flavor {toolchain} but {o['status']} ({o.get('rel', o.get('detail'))})"
             for form, o in observed.items() if emitted_by(toolchain, form) and o["status"] != "exact"]
    needless = [f"{form}: left out of flavor {toolchain} but exact there" for form, o in observed.items()
                if not emitted_by(toolchain, form) and o["status"] == "exact"]
    assert not wrong and not needless, wrong + needless
