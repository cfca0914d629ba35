"""Element-wise ops, activations, reductions, softmax, Pad and MatMul: each converted graph equals TensorFlow.

Each case is a small TF function (4-D NHWC maps with odd sizes, and 2-D tensors where the op applies),
frozen, converted for the ssd flavor, run in OpenCV dnn and in the real SSD-Caffe (tests/real_caffe.py) and
compared with TensorFlow's own outputs: ``max|Δ| ≤ 1e-5 · max|ref|`` (ops_harness.check_op). Every layer
these forms use is in every flavor (flavors.COMMON), so a few cases also run in the portable and bvlc
flavors. Inputs are uniform in the op's domain (positive for Sqrt/Log/Rsqrt/Reciprocal).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ops_harness import check_op, convert_graph, freeze, random_inputs

X4, X4B, X2 = (1, 5, 7, 3), (2, 3, 6, 5), (3, 7)
SIGNED, POSITIVE = (-2.0, 2.0), (0.25, 3.0)


def _const(*shape: int, low: float = 0.5, high: float = 2.0) -> Any:
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape) * 7 + len(shape))
    return tf.constant(rng.uniform(low, high, size=shape).astype(np.float32))


def _cases() -> dict[str, tuple[Callable[..., Any], list[tuple[int, ...]], tuple[float, float], list[str]]]:
    """name -> (TF function, input shapes, input range, Caffe layer types the conversion must contain)."""
    import tensorflow as tf

    tfm = tf.math
    cases: dict[str, tuple[Callable[..., Any], list[tuple[int, ...]], tuple[float, float], list[str]]] = {}

    def add(name: str, fn: Callable[..., Any], shapes: list[tuple[int, ...]], domain: tuple[float, float],
            layers: list[str]) -> None:
        cases[name] = (fn, shapes, domain, layers)

    for shape in (X4, X2):  # unary ops, on a feature map and on a matrix
        r = len(shape)
        add(f"square-{r}d", tf.square, [shape], SIGNED, ["Power"])
        add(f"sqrt-{r}d", tf.sqrt, [shape], POSITIVE, ["Power"])
        add(f"rsqrt-{r}d", tfm.rsqrt, [shape], POSITIVE, ["Power"])
        add(f"reciprocal-{r}d", tfm.reciprocal, [shape], POSITIVE, ["Power"])
        add(f"pow3-{r}d", lambda x: tf.pow(x, 3.0), [shape], SIGNED, ["Power"])
        add(f"pow-1.5-{r}d", lambda x: tf.pow(x, -1.5), [shape], POSITIVE, ["Power"])
        add(f"exp-{r}d", tf.exp, [shape], SIGNED, ["Exp"])
        add(f"log-{r}d", tfm.log, [shape], POSITIVE, ["Log"])
        add(f"tanh-{r}d", tf.tanh, [shape], SIGNED, ["TanH"])
        add(f"sigmoid-{r}d", tf.sigmoid, [shape], SIGNED, ["Sigmoid"])
        add(f"elu-{r}d", tf.nn.elu, [shape], SIGNED, ["ELU"])
        add(f"leaky_relu-{r}d", lambda x: tf.nn.leaky_relu(x, 0.15), [shape], SIGNED, ["ReLU"])
        add(f"softplus-{r}d", tf.nn.softplus, [shape], SIGNED, ["BNLL"])
        add(f"abs-{r}d", tf.abs, [shape], SIGNED, ["AbsVal"])
        add(f"neg-{r}d", lambda x: -tf.nn.relu(x), [shape], SIGNED, ["Power"])
        add(f"max-const-{r}d", lambda x: tf.maximum(x, 0.5), [shape], SIGNED, ["Power", "ReLU"])
        add(f"min-const-{r}d", lambda x: tf.minimum(x, -0.3), [shape], SIGNED, ["Power", "ReLU"])
        add(f"max-zero-{r}d", lambda x: tf.maximum(x, 0.0) * 3.0, [shape], SIGNED, ["ReLU"])
        add(f"const-div-{r}d", lambda x: 3.0 / x, [shape], POSITIVE, ["Power"])
        add(f"const-sub-{r}d", lambda x: 3.0 - tf.abs(x), [shape], SIGNED, ["Power"])
        add(f"log_softmax-{r}d", tf.nn.log_softmax, [shape], SIGNED, ["Exp", "Log", "Eltwise"])
        add(f"softmax-{r}d", tf.nn.softmax, [shape], SIGNED, ["Softmax"])
        add(f"add-maps-{r}d", lambda x, y: x + y, [shape, shape], SIGNED, ["Eltwise"])
        add(f"sub-maps-{r}d", lambda x, y: x - y, [shape, shape], SIGNED, ["Eltwise"])
        add(f"mul-maps-{r}d", lambda x, y: x * y, [shape, shape], SIGNED, ["Eltwise"])
        add(f"div-maps-{r}d", lambda x, y: x / (tf.abs(y) + 0.5), [shape, shape], SIGNED, ["Eltwise"])
        add(f"max-maps-{r}d", tf.maximum, [shape, shape], SIGNED, ["Eltwise"])
        add(f"min-maps-{r}d", tf.minimum, [shape, shape], SIGNED, ["Eltwise"])
        add(f"squared_difference-{r}d", tfm.squared_difference, [shape, shape], SIGNED, ["Eltwise", "Power"])

    # softmax on another axis: TF writes transposes around a last-axis softmax; they fold into Softmax's axis
    add("softmax-axis1-4d", lambda x: tf.nn.softmax(x, axis=1), [X4], SIGNED, ["Softmax"])
    add("softmax-axis2-4d", lambda x: tf.nn.softmax(x, axis=2), [X4B], SIGNED, ["Softmax"])
    add("log_softmax-axis1-4d", lambda x: tf.nn.log_softmax(x, axis=1), [X4B], SIGNED, ["Exp", "Log"])
    add("softmax-axis1-3d", lambda x: tf.nn.softmax(x, axis=1), [(2, 5, 4)], SIGNED, ["Softmax"])
    add("softmax-axis0-2d", lambda x: tf.nn.softmax(x, axis=0), [X2], SIGNED, ["Softmax"])
    # constants that vary over more than the channel axis (per-channel ones fold into a Scale as before)
    add("add-const-hwc", lambda x: x + _const(5, 7, 3), [X4], SIGNED, ["Scale"])
    add("sub-const-w", lambda x: x - _const(1, 7, 1), [X4], SIGNED, ["Scale"])
    add("const-sub-hw", lambda x: _const(5, 7, 1) - x, [X4], SIGNED, ["Scale"])
    add("mul-const-hwc", lambda x: x * _const(5, 7, 3, low=-2.0), [X4], SIGNED, ["Scale"])
    add("div-const-hwc", lambda x: x / _const(5, 7, 3), [X4], SIGNED, ["Scale"])
    add("const-div-hwc", lambda x: _const(5, 7, 3) / x, [X4], POSITIVE, ["Power", "Scale"])
    add("max-const-hwc", lambda x: tf.maximum(x, _const(5, 7, 3) - 1.25), [X4], SIGNED, ["Scale", "Eltwise"])
    add("min-const-hwc", lambda x: tf.minimum(x, _const(5, 7, 3) - 1.25), [X4], SIGNED, ["Scale", "Eltwise"])
    add("add-const-2d", lambda x: x + _const(3, 7), [X2], SIGNED, ["Scale"])
    # after a convolution (OpenCV fuses a following one-bottom Scale into it: only per-channel ones work there)
    kernel = _const(3, 3, 3, 4, low=-1.0, high=1.0)
    add("conv-add-const-hwc", lambda x: tf.nn.conv2d(x, kernel, 1, "SAME") + _const(5, 7, 4), [X4], SIGNED,
        ["Convolution", "Eltwise"])
    add("conv-mul-const-w", lambda x: tf.nn.conv2d(x, kernel, 1, "SAME") * _const(1, 7, 1), [X4], SIGNED,
        ["Convolution", "Eltwise"])
    add("conv-mul-const-per-channel", lambda x: tf.nn.conv2d(x, kernel, 1, "SAME") * _const(4), [X4], SIGNED,
        ["Convolution"])
    add("conv-max-const-hwc", lambda x: tf.maximum(tf.nn.conv2d(x, kernel, 1, "SAME"), _const(5, 7, 4)), [X4],
        SIGNED, ["Convolution", "Eltwise"])
    squeeze, expand = _const(1, 1, 4, 2, low=-1.0, high=1.0), _const(1, 1, 2, 4, low=-1.0, high=1.0)

    def se_block(x: Any) -> Any:  # squeeze-excite right after a convolution (two-bottom Scale behind a conv)
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        s = tf.nn.relu(tf.nn.conv2d(tf.reduce_mean(y, axis=[1, 2], keepdims=True), squeeze, 1, "VALID"))
        return y * tf.sigmoid(tf.nn.conv2d(s, expand, 1, "VALID"))

    add("conv-squeeze-excite", se_block, [(2, 5, 7, 3)], SIGNED, ["Convolution", "Scale"])
    add("conv-pad-value", lambda x: tf.pad(tf.nn.conv2d(x, kernel, 1, "SAME"), [[0, 0], [1, 0], [0, 2], [0, 0]],
                                           constant_values=2.0), [X4], SIGNED, ["Convolution", "Eltwise"])
    add("max-const-per-channel", lambda x: tf.maximum(x, _const(3) - 1.25), [X4], SIGNED, ["Scale", "Eltwise"])
    add("min-const-per-row", lambda x: tf.minimum(x, _const(1, 1, 7, 1) - 1.25), [X4], SIGNED, ["Scale", "Eltwise"])
    # a map broadcast into another (squeeze-excite and friends), batch 2
    add("squeeze-excite", lambda x, s: x * tf.sigmoid(s), [X4B, (2, 1, 1, 5)], SIGNED, ["Scale"])
    add("add-broadcast", lambda x, s: x + s, [X4B, (2, 1, 1, 5)], SIGNED, ["Scale", "Eltwise"])
    add("sub-broadcast-first", lambda x, s: s - x, [X4B, (2, 1, 1, 5)], SIGNED, ["Scale", "Eltwise"])
    add("div-broadcast", lambda x, s: x / (tf.abs(s) + 0.5), [X4B, (2, 1, 1, 5)], SIGNED, ["Scale", "Eltwise"])
    add("max-broadcast-hw", lambda x, s: tf.maximum(x, s), [X4B, (2, 3, 6, 1)], SIGNED, ["Concat", "Eltwise"])
    add("mul-broadcast-hw", lambda x, s: x * s, [X4B, (2, 3, 6, 1)], SIGNED, ["Concat", "Eltwise"])
    add("add-broadcast-hw-batch1", lambda x, s: x + s, [X4, (1, 5, 7, 1)], SIGNED, ["Scale", "Eltwise"])
    add("min-broadcast-rows", lambda x, s: tf.minimum(x, s), [X2, (3, 1)], SIGNED, ["Scale", "Eltwise"])
    add("mul-broadcast-rows", lambda x, s: x * s, [X2, (3, 1)], SIGNED, ["Scale"])
    add("sub-both-broadcast", lambda x, s: tf.reduce_max(x, axis=3, keepdims=True) - s, [X4B, (2, 1, 1, 5)], SIGNED,
        ["Concat", "Eltwise"])
    add("mul-both-broadcast-2d", lambda x, s: x * s, [(3, 1), (1, 7)], SIGNED, ["Concat", "Eltwise"])
    # reductions over every kind of axis set, with and without keepdims
    for op_name, op in (("mean", tf.reduce_mean), ("sum", tf.reduce_sum), ("max", tf.reduce_max),
                        ("min", tf.reduce_min)):
        for axes in ([3], [1], [2], [1, 2], [2, 3], [1, 3], [1, 2, 3], [0, 3]):
            for keep in (False, True):
                add(f"{op_name}-{''.join(map(str, axes))}-{'keep' if keep else 'drop'}",
                    lambda x, op=op, axes=axes, keep=keep: op(x, axis=axes, keepdims=keep), [X4B], SIGNED, [])
        add(f"{op_name}-2d-axis1", lambda x, op=op: op(x, axis=1), [X2], SIGNED, [])
        add(f"{op_name}-2d-axis0-keep", lambda x, op=op: op(x, axis=0, keepdims=True), [X2], SIGNED, [])
    # zero Pad that no convolution absorbs
    add("pad-spatial-uneven", lambda x: tf.pad(x, [[0, 0], [1, 2], [0, 3], [0, 0]]), [X4], SIGNED, ["Convolution"])
    add("pad-before-maxpool", lambda x: tf.nn.max_pool2d(tf.pad(x, [[0, 0], [1, 1], [2, 0], [0, 0]]), 3, 2, "VALID"),
        [X4], SIGNED, ["Convolution", "Pooling"])
    add("pad-channels", lambda x: tf.pad(x, [[0, 0], [1, 0], [0, 0], [2, 1]]), [X4], SIGNED, ["Convolution"])
    add("pad-2d", lambda x: tf.pad(x, [[0, 0], [2, 1]]), [X2], SIGNED, ["InnerProduct"])
    add("pad-value-spatial", lambda x: tf.pad(x, [[0, 0], [2, 1], [0, 1], [0, 0]], constant_values=-1.5), [X4],
        SIGNED, ["Convolution", "Eltwise"])
    add("pad-value-channels", lambda x: tf.pad(x, [[0, 0], [0, 1], [1, 1], [1, 0]], constant_values=0.75), [X4],
        SIGNED, ["Convolution", "Eltwise"])
    add("pad-value-2d", lambda x: tf.pad(x, [[0, 0], [1, 2]], constant_values=3.0), [X2], SIGNED, ["InnerProduct"])
    # common compositions: hard-swish (MobileNetV3), swish, L2 normalisation over channels, clip_by_value
    add("hard-swish", lambda x: x * tf.nn.relu6(x + 3.0) / 6.0, [X4], (-5.0, 5.0), ["Eltwise"])
    add("swish", lambda x: x * tf.sigmoid(x), [X4], SIGNED, ["Sigmoid", "Eltwise"])
    add("l2-normalize-channels", lambda x: tf.math.l2_normalize(x, axis=3), [X4B], SIGNED, ["Pooling"])
    add("clip-by-value", lambda x: tf.clip_by_value(x, -0.5, 1.25), [X4], SIGNED, ["ReLU"])
    # MatMul with a constant
    add("matmul", lambda x: tf.matmul(x, _const(7, 4, low=-1.0)), [X2], SIGNED, ["InnerProduct"])
    add("matmul-transpose-b", lambda x: tf.matmul(x, _const(5, 7, low=-1.0), transpose_b=True), [X2], SIGNED,
        ["InnerProduct"])
    add("batch-matmul", lambda x: tf.matmul(x, _const(7, 4, low=-1.0)), [(2, 5, 7)], SIGNED, ["InnerProduct"])
    dense = tf.keras.layers.Dense(6, kernel_initializer="glorot_uniform", bias_initializer="ones")
    add("keras-dense-3d", lambda x: dense(x), [(2, 5, 7)], SIGNED, ["InnerProduct"])
    return cases


CASE_NAMES = list(_cases())


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    return _cases()


@pytest.mark.parametrize("name", CASE_NAMES)
def test_op_matches_tf_in_opencv_and_real_caffe(tmp_path: Path, name: str, cases: dict[str, Any],
                                                real_caffe: Any) -> None:
    fn, shapes, (low, high), layers = cases[name]
    result = check_op(tmp_path, fn, shapes, flavor="ssd", runtimes=("opencv", real_caffe),
                      inputs=random_inputs(shapes, seed=len(name), low=low, high=high))
    assert set(layers) <= set(result.layer_types), result.layer_types
    if "softmax-axis" in name:
        assert "Permute" not in result.layer_types, result.layer_types


@pytest.mark.parametrize("flavor", ["portable", "bvlc"])
@pytest.mark.parametrize("name", ["softplus-4d", "min-const-hwc", "squeeze-excite", "add-broadcast", "sum-3-drop",
                                  "max-13-keep", "pad-spatial-uneven", "log_softmax-4d", "clip-by-value",
                                  "softmax-axis2-4d"])
def test_op_in_other_flavors(tmp_path: Path, name: str, flavor: str, cases: dict[str, Any], real_caffe: Any) -> None:
    fn, shapes, (low, high), _ = cases[name]
    check_op(tmp_path, fn, shapes, flavor=flavor, runtimes=("opencv", real_caffe),
             inputs=random_inputs(shapes, seed=3, low=low, high=high))


def test_harness_catches_a_wrong_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: Softplus written as a plain ReLU is caught (relu(x) ≠ log(1 + eˣ))."""
    import tensorflow as tf

    from transpiler.backends.caffe import emit_elementwise

    monkeypatch.setitem(emit_elementwise.SIMPLE, "Softplus", "ReLU")
    with pytest.raises(AssertionError, match=r"max\|Δ\|"):
        check_op(tmp_path, tf.nn.softplus, [X4])


def test_unsupported_forms_are_listed_at_once_before_writing(tmp_path: Path) -> None:
    """A Pad with NaN and a Pad of the batch axis: both nodes are named, with the model file; nothing is written."""
    import tensorflow as tf

    from transpiler.errors import BackendError

    def fn(x: Any) -> Any:
        return (tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=float("nan")),
                tf.pad(x, [[1, 0], [0, 0], [0, 0], [0, 0]]))

    model = freeze(fn, [X4], tmp_path / "model.pb")
    with pytest.raises(BackendError) as info:
        convert_graph(model, tmp_path / "out", "ssd")
    message = str(info.value)
    assert str(model) in message and "2 node(s)" in message
    assert "value nan" in message and "batch axis" in message
    assert not (tmp_path / "out").exists()


def test_layout_free_plugin_op_gets_no_transposes() -> None:
    """An op registered with layout_free=True runs on the NCHW map as it is: to-nchw adds no Transpose."""
    from transpiler.ir import Graph, register_op
    from transpiler.ir.dtypes import DType
    from transpiler.ir.ops import OPS, infer_node, is_layout_free, same_as_input
    from transpiler.pass_manager import PassContext
    from transpiler.passes.to_nchw import ToNCHW

    def build(layout_free: bool) -> Graph:
        register_op("TestCube", same_as_input, lambda n, a: [a[0] ** 3], layout_free=layout_free)
        g = Graph("g")
        x = g.add_input("x", DType.FLOAT32, (1, 4, 5, 3), layout="NHWC")
        node = g.add_node("TestCube", [x], 1)
        infer_node(node)
        g.outputs = [node.output]
        ToNCHW().run(g, PassContext(options={}))
        return g

    try:
        assert is_layout_free("Relu") and is_layout_free("Elu") and not is_layout_free("Conv")
        assert [n.op for n in build(layout_free=True).nodes] == ["TestCube"]
        assert "Transpose" in [n.op for n in build(layout_free=False).nodes]  # the default wraps it
    finally:
        OPS.pop("TestCube", None)


def _verify_graphs() -> dict[str, tuple[Callable[..., Any], list[tuple[int, ...]]]]:
    import tensorflow as tf

    def pools(x: Any, s: Any) -> Any:
        y = tf.nn.max_pool2d(x, 3, 2, "SAME")
        z = tf.nn.avg_pool2d(tf.nn.elu(y) * tf.sigmoid(s), 2, 1, "SAME")
        return tf.reduce_mean(tf.nn.softplus(z), axis=3), tf.nn.log_softmax(tf.reduce_sum(z, axis=[1, 2]))

    def unary(x: Any) -> Any:
        y = tf.sqrt(tf.abs(x) + 0.5) + tf.square(x) - tf.math.rsqrt(tf.exp(x) + 1.0)
        y = tf.nn.leaky_relu(tf.tanh(y) + tf.math.log(tf.abs(y) + 1.0), 0.1)
        return tf.pow(tf.maximum(y, -0.5) + 1.0, 1.5) / 3.0

    def binary(x: Any, y: Any, s: Any) -> Any:
        z = tf.minimum(x, y) * s + tf.maximum(x, _const(5, 7, 3)) - (x / (tf.abs(y) + 0.5))
        return tf.nn.softmax(tf.math.squared_difference(z, s), axis=2)

    def reductions(x: Any) -> Any:
        p = tf.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]], constant_values=0.5)
        m = tf.reduce_max(p, axis=3, keepdims=True) - tf.reduce_min(p, axis=[1, 2], keepdims=True)
        return tf.matmul(tf.reduce_sum(m, axis=[1, 2]), _const(3, 4, low=-1.0))

    return {"pools": (pools, [(1, 8, 9, 4), (1, 1, 1, 4)]), "unary": (unary, [X4]),
            "binary": (binary, [X4, X4, (1, 1, 1, 3)]), "reductions": (reductions, [X4])}


@pytest.mark.parametrize("graph", ["pools", "unary", "binary", "reductions"])
def test_verify_per_layer_reports_no_divergence(tmp_path: Path, graph: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--verify --per-layer on graphs chaining these ops: outputs agree and no blob is reported as diverging."""
    from transpiler.cli import main

    fn, shapes = _verify_graphs()[graph]
    model = freeze(fn, shapes, tmp_path / f"{graph}.pb")
    code = main([str(model), "-o", str(tmp_path / "out"), "--verify", "--per-layer"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 beyond tolerance" in out and "blobs compared" in out


@pytest.mark.parametrize(("fn_name", "reason"), [("transposed", "transposed"), ("two_maps", "not a constant matrix")])
def test_matmul_without_caffe_form_is_refused(tmp_path: Path, fn_name: str, reason: str) -> None:
    import tensorflow as tf

    from transpiler.errors import BackendError

    w = _const(7, 7)
    fns = {"transposed": (lambda x: tf.matmul(x, w, transpose_a=True), [(7, 7)]),
           "two_maps": (lambda x, y: tf.matmul(x, y), [(3, 7), (7, 4)])}
    fn, shapes = fns[fn_name]
    with pytest.raises(BackendError, match=f"MatMul.*{reason}"):
        convert_graph(freeze(fn, shapes, tmp_path / "m.pb"), tmp_path / "out", "ssd")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape", [(2, 5), (1, 3, 4, 6)])
def test_log_softmax_of_far_apart_logits(tmp_path: Path, shape: tuple[int, ...], real_caffe: Any) -> None:
    """Logit gaps of 150: the smallest probabilities underflow float32, yet TF's log-softmax stays finite
    (≈ −150); so must ours (Softmax → Log would give −inf here)."""
    import tensorflow as tf

    x = np.random.default_rng(9).uniform(-1.0, 1.0, size=shape).astype(np.float32)
    x.reshape(-1, shape[-1])[:, 0] -= 150.0
    result = check_op(tmp_path, tf.nn.log_softmax, [shape], inputs=[x], runtimes=("opencv", real_caffe))
    assert "Softmax" not in result.layer_types


def test_layout_refusals_are_listed_at_once(tmp_path: Path) -> None:
    """Two convolutions whose weights are graph inputs: to-nchw names both, with the model file."""
    import tensorflow as tf

    from transpiler.errors import UnsupportedModelError

    model = freeze(lambda x, w, v: (tf.nn.conv2d(x, w, 1, "SAME"), tf.nn.conv2d(x, v, 1, "SAME")),
                   [(1, 4, 4, 3), (3, 3, 3, 2), (1, 1, 3, 2)], tmp_path / "model.pb")
    with pytest.raises(UnsupportedModelError) as info:
        convert_graph(model, tmp_path / "out", "ssd")
    message = str(info.value)
    assert str(model) in message and "'Conv2D'" in message and "'Conv2D_1'" in message
    assert not (tmp_path / "out").exists()
