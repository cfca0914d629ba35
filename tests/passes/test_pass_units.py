"""Each pass on small hand-built IR: whether it changed the graph, the op sequence it leaves, and
that the numbers are unchanged (reference interpreter before vs after)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import transpiler.passes  # noqa: F401
from transpiler.ir import DType, Graph, Value, infer_node
from transpiler.ir.interpreter import run
from transpiler.pass_manager import PassContext, PassManager, get_pass, infer_shapes

RNG = np.random.default_rng(0)


def conv_attrs(**kw: object) -> dict[str, object]:
    attrs: dict[str, object] = {"strides": (1, 1), "dilations": (1, 1), "padding": "SAME", "pads": (0, 0, 0, 0),
                                "group": 1, "kernel_layout": "HWIO"}
    attrs.update(kw)
    return attrs


def build(fn: Callable[[Graph, Value], Value], shape: tuple[int, ...] = (1, 6, 7, 3)) -> Graph:
    """The graph ``fn`` builds, with the same random weights each time it is called."""
    global RNG
    RNG = np.random.default_rng(0)
    g = Graph("t")
    x = g.add_input("x", DType.FLOAT32, shape, layout="NHWC" if len(shape) == 4 else None)
    g.outputs = [fn(g, x)]
    infer_shapes(g)
    return g


def node(g: Graph, op: str, inputs: list[Value], **attrs: object) -> Value:
    n = g.add_node(op, inputs, 1, attrs, name=op.lower())
    infer_node(n)
    if n.output.rank == 4 and n.output.layout is None:
        n.output.layout = "NHWC"
    return n.output


def const(g: Graph, arr: np.ndarray) -> Value:
    return g.constant("c", np.asarray(arr, dtype=np.float32))


def check_numerics(before: Graph, after: Graph, x: np.ndarray, x_after: np.ndarray | None = None) -> None:
    (ref,) = run(before, {"x": x}).values()
    (got,) = run(after, {"x": x if x_after is None else x_after}).values()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def apply(names: list[str], fn: Callable[[Graph, Value], Value], shape: tuple[int, ...] = (1, 6, 7, 3)
          ) -> tuple[Graph, Graph, bool]:
    before, after = build(fn, shape), build(fn, shape)
    global RNG
    RNG = np.random.default_rng(1)
    changed = False
    for name in names:
        changed |= get_pass(name).run(after, PassContext())
        infer_shapes(after)
    PassManager([]).run(after)  # verifies
    return before, after, changed


def conv_bn(g: Graph, x: Value) -> Value:
    y = node(g, "Conv", [x, const(g, RNG.normal(size=(3, 3, 3, 5)))], **conv_attrs())
    stats = [const(g, RNG.uniform(0.5, 1.5, 5)), const(g, RNG.normal(size=5)), const(g, RNG.normal(size=5)),
             const(g, RNG.uniform(0.5, 2, 5))]
    return node(g, "BatchNorm", [y, *stats], epsilon=1e-3)


def test_fold_batchnorm_into_conv() -> None:
    before, after, changed = apply(["fold-batchnorm"], conv_bn)
    assert changed and [n.op for n in after.nodes] == ["Conv"]
    check_numerics(before, after, RNG.normal(size=(1, 6, 7, 3)).astype(np.float32))


def test_fold_decomposed_batchnorm_mul_add_and_sub() -> None:
    def decomposed(g: Graph, x: Value) -> Value:
        y = node(g, "Conv", [x, const(g, RNG.normal(size=(3, 3, 3, 2)))], **conv_attrs(group=3, kernel_layout="HWCM"))
        y = node(g, "Mul", [y, const(g, RNG.uniform(0.5, 2, 6))])
        y = node(g, "Add", [const(g, RNG.normal(size=6)), y])
        return node(g, "Sub", [y, const(g, RNG.normal(size=(1, 1, 1, 6)))])

    before, after, changed = apply(["fold-batchnorm"], decomposed)
    assert changed and [n.op for n in after.nodes] == ["Conv"]
    check_numerics(before, after, RNG.normal(size=(1, 6, 7, 3)).astype(np.float32))


def test_batchnorm_not_after_conv_becomes_one_affine() -> None:
    def bn_then_bias(g: Graph, x: Value) -> Value:
        stats = [const(g, RNG.uniform(0.5, 1.5, 3)), const(g, RNG.normal(size=3)), const(g, RNG.normal(size=3)),
                 const(g, RNG.uniform(0.5, 2, 3))]
        y = node(g, "BatchNorm", [node(g, "Relu", [x]), *stats], epsilon=1e-3)
        return node(g, "Add", [y, const(g, RNG.normal(size=3))])

    before, after, changed = apply(["fold-batchnorm"], bn_then_bias)
    assert changed and [n.op for n in after.nodes] == ["Relu", "Affine"]
    check_numerics(before, after, RNG.normal(size=(1, 6, 7, 3)).astype(np.float32))


def test_mul_by_spatially_varying_constant_is_not_folded() -> None:
    def spatial(g: Graph, x: Value) -> Value:
        y = node(g, "Conv", [x, const(g, RNG.normal(size=(1, 1, 3, 3)))], **conv_attrs())
        return node(g, "Mul", [y, const(g, RNG.normal(size=(1, 6, 7, 1)))])

    _, after, changed = apply(["fold-batchnorm"], spatial)
    assert not changed and [n.op for n in after.nodes] == ["Conv", "Mul"]


@pytest.mark.parametrize("spelling", ["clip", "min_relu", "min_max", "max_min"])
def test_map_relu6_spellings(spelling: str) -> None:
    def relu6(g: Graph, x: Value) -> Value:
        six, zero = g.constant("six", np.float32(6)), g.constant("zero", np.float32(0))
        if spelling == "clip":
            return node(g, "Clip", [x], min=0.0, max=6.0)
        if spelling == "min_relu":
            return node(g, "Minimum", [node(g, "Relu", [x]), six])
        if spelling == "min_max":
            return node(g, "Minimum", [node(g, "Maximum", [x, zero]), six])
        return node(g, "Maximum", [zero, node(g, "Minimum", [six, x])])

    before, after, changed = apply(["map-relu6"], relu6)
    assert changed and [n.op for n in after.nodes] == ["Relu6"]
    check_numerics(before, after, RNG.normal(scale=8, size=(1, 6, 7, 3)).astype(np.float32))


def test_clip_to_other_bounds_is_not_relu6() -> None:
    _, after, changed = apply(["map-relu6"], lambda g, x: node(g, "Clip", [x], min=0.0, max=4.0))
    assert not changed and [n.op for n in after.nodes] == ["Clip"]


def test_fix_same_padding_uneven_and_pad_merge() -> None:
    def padded(g: Graph, x: Value) -> Value:
        y = node(g, "Conv", [x, const(g, RNG.normal(size=(3, 3, 3, 4)))], **conv_attrs(strides=(2, 2)))
        p = node(g, "Pad", [y], pads=((0, 0), (1, 2), (0, 1), (0, 0)), value=0.0)
        return node(g, "Conv", [p, const(g, RNG.normal(size=(3, 3, 4, 2)))], **conv_attrs(padding="VALID"))

    before, after, changed = apply(["fix-same-padding"], padded, shape=(1, 8, 9, 3))
    assert changed and [n.op for n in after.nodes] == ["Conv", "Conv"]
    assert after.nodes[0].attrs["pads"] == (0, 1, 1, 1)  # 8 even, stride 2: pad 1 = 0 before + 1 after
    assert after.nodes[1].attrs["pads"] == (1, 2, 0, 1)
    check_numerics(before, after, RNG.normal(size=(1, 8, 9, 3)).astype(np.float32))


def test_pad_of_channels_is_not_merged() -> None:
    def channel_pad(g: Graph, x: Value) -> Value:
        p = node(g, "Pad", [x], pads=((0, 0), (0, 0), (0, 0), (1, 0)), value=0.0)
        return node(g, "Conv", [p, const(g, RNG.normal(size=(1, 1, 4, 2)))], **conv_attrs(padding="VALID"))

    _, after, _ = apply(["fix-same-padding"], channel_pad)
    assert [n.op for n in after.nodes] == ["Pad", "Conv"]


def test_to_nchw_and_symmetric_padding_keep_numbers() -> None:
    def net(g: Graph, x: Value) -> Value:
        y = node(g, "Conv", [x, const(g, RNG.normal(size=(3, 3, 3, 1)))],
                 **conv_attrs(strides=(2, 2), group=3, kernel_layout="HWCM"))
        y = node(g, "Add", [y, const(g, RNG.normal(size=3))])
        z = node(g, "Concat", [y, node(g, "Relu", [y])], axis=3)
        z = node(g, "ReduceMean", [z], axes=(1, 2), keepdims=False)
        return node(g, "MatMul", [z, const(g, RNG.normal(size=(6, 4)))])

    x = RNG.normal(size=(1, 8, 7, 3)).astype(np.float32)
    passes = ["fix-same-padding", "mean-to-pool", "matmul-to-fc", "to-nchw", "simplify-transposes",
              "symmetric-padding", "dce"]
    before, after, changed = apply(passes, net, shape=(1, 8, 7, 3))
    assert changed
    assert after.inputs[0].shape == (1, 3, 8, 7) and after.inputs[0].layout == "NCHW"
    assert "Transpose" not in [n.op for n in after.nodes]
    check_numerics(before, after, x, x.transpose(0, 3, 1, 2))


def test_flatten_before_fc_folds_transpose_into_weights() -> None:
    def net(g: Graph, x: Value) -> Value:
        y = node(g, "Relu", [x])
        return node(g, "MatMul", [node(g, "Reshape", [y], shape=(1, -1)), const(g, RNG.normal(size=(2 * 3 * 4, 5)))])

    x = RNG.normal(size=(1, 2, 3, 4)).astype(np.float32)
    before, after, _ = apply(["matmul-to-fc", "to-nchw", "simplify-transposes"], net, shape=(1, 2, 3, 4))
    assert [n.op for n in after.nodes] == ["Relu", "Reshape", "FullyConnected"]
    check_numerics(before, after, x, x.transpose(0, 3, 1, 2))


def test_constant_folding_and_dce() -> None:
    def net(g: Graph, x: Value) -> Value:
        c = node(g, "Rsqrt", [const(g, np.array([4.0, 16.0, 1.0]))])
        node(g, "Exp", [x])  # dead
        return node(g, "Mul", [x, c])

    before, after, changed = apply(["fold-constants", "dce"], net)
    assert changed and [n.op for n in after.nodes] == ["Mul"]
    np.testing.assert_allclose(after.nodes[0].inputs[1].const, [0.5, 0.25, 1.0])
    check_numerics(before, after, RNG.normal(size=(1, 6, 7, 3)).astype(np.float32))


def test_pass_manager_logs_op_count_diff_and_dumps(tmp_path: object) -> None:
    from pathlib import Path

    g = build(conv_bn)
    pm = PassManager(["fold-batchnorm", "dce"], dump_dir=Path(str(tmp_path)))
    pm.run(g)
    assert pm.records[0].diff_text() == "BatchNorm -1 (1->0)"
    assert sorted(p.name for p in Path(str(tmp_path)).iterdir()) == [
        "00_import.ir.txt", "01_fold-batchnorm.ir.txt", "02_dce.ir.txt"]
