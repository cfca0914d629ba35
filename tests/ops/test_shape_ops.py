"""Structural ops (issue 9 item 6): slicing, splitting, stacking, reshaping, transposing, tiling, transposed
convolution, nearest upsampling and TF's SpaceToBatch dilated convolution, converted and run against TF.

Each case is a small TF function over odd sizes and several axes, often with several outputs (one
conversion covers many slices). ``check_op`` (tests/ops/ops_harness.py) converts it, runs it in OpenCV dnn
and in the real SSD-Caffe (tests/real_caffe.py), and compares every output with TensorFlow's own at
1e-5 of the output's largest magnitude. Pure data movement (slices, reshapes, tiles, nearest upsampling)
must come out bit-exact (0 error); convolutions are bounded by float32 summation order.

Cases whose Caffe form needs ``Permute`` (memory order changes between NCHW and TF's NHWC) are also
converted for the ``bvlc`` flavor, which has no Permute layer: there they must be refused with a message
naming the layer type; the others must run under ``bvlc`` too. Refused inputs (a reversed slice, a stride
on the channel axis, align_corners resizing, a dilated transposed conv) must name the TF node and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ops_harness import check_op, convert_graph, freeze

from transpiler.errors import TranspilerError


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _weights(*shape: int, seed: int = 0) -> Any:
    return _tf().constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]
    permute: bool  # whether the Caffe form needs a Permute (so bvlc must refuse it)
    layers: frozenset[str]  # the only Caffe layer types the conversion may contain (besides Input)
    exact: bool = True  # pure data movement: bit-exact


def _strided(x: Any) -> tuple[Any, ...]:
    return (x[:, 1:4, :, 2:5], x[:, :, 1:, :], x[..., 1:3], x[:, 2:3], x[:, -3:-1, 1:2, :])


def _strides_spatial(x: Any) -> tuple[Any, ...]:
    return (x[:, 1::2, 0:5:3, :], x[:, ::3], x[:, :, 1::2, 2:4])


def _shrink(x: Any) -> tuple[Any, ...]:
    return (x[:, 2], x[:, :, :, 4], x[0, 1:3, 2])


def _slice_op(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.slice(x, [0, 1, 2, 0], [1, 3, -1, 2]), tf.slice(x, [0, 0, 0, 3], [-1, -1, -1, 1]))


def _split(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (*tf.split(x, 3, axis=3), *tf.split(x, [1, -1, 2], axis=1), *tf.split(x, [2, 3], axis=2))


def _unstack_channels(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return tuple(tf.expand_dims(t, -1) for t in tf.unstack(x, axis=3))


def _unstack_spatial(x: Any) -> tuple[Any, ...]:
    return tuple(_tf().unstack(x, axis=2))


def _rank2(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (x[:, 3:7], *tf.split(x, [4, 7], axis=1), tf.tile(x, [2, 3]), tf.stack([x, x * 2.0], axis=1),
            *tf.unstack(tf.reshape(x, [1, 11, 1]), axis=2))


def _concat(x: Any, y: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.concat([x, y], axis=3), tf.concat([x, y, x], axis=-1), tf.concat([x[:, :2], y], axis=1),
            tf.concat([y, x[:, :, 1:]], axis=2))


def _pack(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.stack([x, x * 2.0], axis=3), tf.stack([x, x * 3.0, x], axis=1), tf.stack([x, x + 1.0], axis=-1))


def _fpn_upsample(x: Any) -> tuple[Any, ...]:
    """Nearest upsampling as FPNs write it without a resize op: Pack + Reshape twice, and the TF OD API's
    nearest_neighbor_upsampling (two Packs, one Reshape); factors 2×2, 3×2 and 1×3."""
    tf = _tf()
    n, h, w, c = x.shape
    y = tf.reshape(tf.stack([x, x], axis=3), [n, h, 2 * w, c])
    twice = tf.reshape(tf.stack([y, y], axis=2), [n, 2 * h, 2 * w, c])
    od_api = tf.reshape(tf.stack([tf.stack([x] * 2, axis=3)] * 3, axis=2), [n, 3 * h, 2 * w, c])
    wide = tf.reshape(tf.stack([x] * 3, axis=3), [n, h, 3 * w, c])
    return (twice, od_api, wide)


def _not_upsampling(x: Any) -> tuple[Any, ...]:
    """Stack + Reshape spellings that are *not* a nearest upsampling (the copies land elsewhere): they must
    keep their general form."""
    tf = _tf()
    n, h, w, c = x.shape
    return (tf.reshape(tf.stack([x, x], axis=3), [n, 2 * h, w, c]),
            tf.reshape(tf.stack([x, x], axis=1), [n, h, 2 * w, c]))


def _squeeze_expand(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    pooled = tf.reduce_max(x, axis=[1, 2], keepdims=True)  # (1, 1, 1, C): Keras' global pool shape
    return (tf.squeeze(pooled, [1, 2]), tf.squeeze(pooled, [2]), tf.expand_dims(tf.squeeze(pooled, [1, 2]), 1))


def _reshape(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.reshape(x, [1, 24, 3]), tf.reshape(x, [1, 2, 12, 3]), tf.reshape(x, [1, -1]))


def _reshape_up(x: Any) -> Any:
    tf = _tf()
    return tf.nn.relu(tf.reshape(x, [1, 2, 3, 5]))


def _squeeze_excite(x: Any) -> tuple[Any, ...]:
    """A vector made a 1×1 map again (squeeze-and-excitation): only size-1 axes move, so no Permute."""
    tf = _tf()
    pooled = tf.reduce_mean(x, axis=[1, 2])
    gate = tf.nn.sigmoid(tf.nn.conv2d(tf.reshape(pooled, [1, 1, 1, 6]), _weights(1, 1, 6, 6, seed=12), 1, "VALID"))
    return x * gate, tf.expand_dims(tf.expand_dims(pooled, 1), 1)


def _odd_axes(x: Any) -> tuple[Any, ...]:
    """Negative axes, new axes with an ellipsis, the batch axis, an integer index on the batch."""
    tf = _tf()
    return (x[..., tf.newaxis, 1:3], tf.concat([x, x * 2.0], axis=0), x[0, :, :, 0], tf.squeeze(x[:, :, 2:3], [-2]),
            tf.expand_dims(x[:, 1], -2))


def _transpose(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.transpose(x, [0, 2, 1, 3]), tf.transpose(x, [0, 3, 1, 2]), tf.transpose(x, [3, 1, 2, 0]))


def _tile(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    return (tf.tile(x, [1, 2, 1, 3]), tf.tile(x, [1, 1, 3, 1]), tf.tile(x, [2, 1, 1, 1]))


def _tile_then_max(x: Any) -> Any:
    tf = _tf()
    return tf.reduce_max(tf.tile(x, [1, 2, 3, 1]), axis=[1, 2], keepdims=True)


def _deconv(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    w = _weights(3, 3, 4, 5, seed=1)
    w2 = _weights(2, 2, 4, 5, seed=2)
    w3 = _weights(3, 2, 4, 5, seed=3)
    return (
        tf.nn.conv2d_transpose(x, w, [1, 8, 10, 4], 2, "SAME"),  # even: pads (0, 1), cropped by Slice
        tf.nn.conv2d_transpose(x, w, [1, 7, 9, 4], 2, "SAME"),  # odd: pads (1, 1)
        tf.nn.conv2d_transpose(x, w, [1, 4, 5, 4], 1, "SAME"),
        tf.nn.conv2d_transpose(x, w2, [1, 8, 10, 4], 2, "VALID"),  # the common ×2 learnt upsampling
        tf.nn.conv2d_transpose(x, w3, [1, 10, 15, 4], [2, 3], "VALID"),  # trailing row + column TF leaves at 0
        tf.nn.bias_add(tf.nn.conv2d_transpose(x, w, [1, 9, 11, 4], 2, "VALID"), tf.range(4, dtype=tf.float32)),
        # a per-channel affine (batch norm after the layer): folded into the Deconvolution's weights and bias
        tf.nn.conv2d_transpose(x, w2, [1, 8, 10, 4], 2, "VALID") * tf.constant([0.5, -2.0, 1.5, 3.0]) + 0.25,
    )


def _resize(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    v1 = tf.compat.v1.image.resize_nearest_neighbor
    return (v1(x, [8, 10]), v1(x, [4, 15]), v1(x, [12, 5], half_pixel_centers=True),
            tf.image.resize(x, [8, 20], method="nearest"))


def _atrous(x: Any) -> tuple[Any, ...]:
    tf = _tf()
    wd = _weights(3, 3, 4, 2, seed=4)
    wc = _weights(3, 3, 4, 5, seed=5)
    return (
        tf.nn.depthwise_conv2d(x, wd, [1, 1, 1, 1], "SAME", dilations=[2, 2]),
        tf.nn.depthwise_conv2d(x, wd, [1, 1, 1, 1], "VALID", dilations=[3, 3]),
        tf.nn.relu(tf.nn.bias_add(tf.nn.atrous_conv2d(x, wc, 2, "SAME"), tf.range(5, dtype=tf.float32))),
        tf.nn.atrous_conv2d(x, _weights(2, 3, 4, 5, seed=6), 3, "SAME"),
    )


FEATURE = (1, 6, 5, 7)
CASES = [
    Case("strided_slice", _strided, (FEATURE,), False, frozenset({"Slice", "Reshape"})),
    Case("strided_slice_spatial_strides", _strides_spatial, ((1, 7, 5, 6),), False,
         frozenset({"Slice", "Pooling", "Reshape"})),
    Case("strided_slice_shrink", _shrink, (FEATURE,), True, frozenset({"Slice", "Permute", "Reshape"})),
    Case("slice", _slice_op, (FEATURE,), False, frozenset({"Slice", "Reshape"})),
    Case("split_splitv", _split, ((1, 6, 5, 6),), False, frozenset({"Slice", "Reshape"})),
    Case("unpack_channels", _unstack_channels, ((1, 4, 3, 3),), False, frozenset({"Slice", "Reshape"})),
    Case("unpack_spatial", _unstack_spatial, ((1, 4, 3, 2),), True, frozenset({"Slice", "Reshape", "Permute"})),
    Case("rank2_slice_split_tile_pack_unpack", _rank2, ((1, 11),), False,
         frozenset({"Slice", "Reshape", "Concat", "Power", "Scale", "Flatten"})),
    Case("concat_any_axis", _concat, ((1, 4, 5, 3), (1, 4, 5, 3)), False, frozenset({"Slice", "Concat", "Reshape"})),
    Case("pack", _pack, ((1, 4, 5, 3),), True,
         frozenset({"Concat", "Reshape", "Permute", "Power", "Scale", "Flatten"})),
    Case("pack_fpn_upsampling", _fpn_upsample, ((1, 3, 4, 5),), False, frozenset({"Deconvolution"})),
    Case("pack_reshape_not_upsampling", _not_upsampling, ((1, 3, 4, 5),), True,
         frozenset({"Concat", "Reshape", "Permute"})),
    Case("squeeze_expand_dims", _squeeze_expand, ((1, 5, 4, 6),), False,
         frozenset({"Pooling", "Reshape", "Flatten"})),
    Case("reshape", _reshape, ((1, 4, 6, 3),), True, frozenset({"Reshape", "Permute", "Flatten"})),
    Case("reshape_rank3_to_map", _reshape_up, ((1, 6, 5),), True, frozenset({"Reshape", "Permute", "ReLU"})),
    Case("reshape_vector_to_map", _squeeze_excite, ((1, 5, 4, 6),), False,
         frozenset({"Pooling", "Flatten", "Reshape", "Convolution", "Sigmoid", "Scale"}), exact=False),
    Case("odd_axes", _odd_axes, ((1, 4, 5, 6),), True, frozenset({"Slice", "Permute", "Reshape", "Concat", "Scale"})),
    Case("transpose", _transpose, ((1, 4, 5, 3),), True, frozenset({"Permute", "Reshape"})),
    Case("tile", _tile, ((1, 3, 4, 5),), False, frozenset({"Concat"})),
    Case("tile_then_max", _tile_then_max, ((1, 3, 4, 5),), False, frozenset({"Concat", "Reduction", "Pooling",
                                                                             "Convolution", "Permute", "Reshape"})),
    Case("conv2d_backprop_input", _deconv, ((1, 4, 5, 5),), False,
         frozenset({"Deconvolution", "Slice", "Reshape"}), exact=False),
    Case("resize_nearest", _resize, ((1, 4, 5, 3),), False, frozenset({"Deconvolution"})),
    Case("space_to_batch_dilated_conv", _atrous, ((1, 9, 10, 4),), False, frozenset({"Convolution", "ReLU"}),
         exact=False),
]


def _bound(case: Case) -> float:
    # convolution sums of ≤ 36 float32 products: a few ulps of the output scale; data movement: exact
    return 0.0 if case.exact else 1e-5


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shape_op_matches_tf(tmp_path: Path, case: Case, real_caffe: Any) -> None:
    result = check_op(tmp_path, case.fn, case.shapes, flavor="ssd", runtimes=("opencv", real_caffe),
                      tol=max(_bound(case), 1e-12))
    types = set(result.layer_types) - {"Input"}
    assert types <= case.layers, types - case.layers
    assert ("Permute" in types) == case.permute, result.layer_types
    assert {runtime for runtime, _ in result.errors} == {"opencv", "real-caffe"}
    worst = max(result.errors.values())
    assert worst <= _bound(case), (case.name, worst)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shape_op_bvlc(tmp_path: Path, case: Case, real_caffe: Any) -> None:
    """BVLC Caffe has no Permute: what needs one is refused naming it; everything else runs as in ssd."""
    if not case.permute:
        check_op(tmp_path, case.fn, case.shapes, flavor="bvlc", runtimes=("opencv", real_caffe),
                 tol=max(_bound(case), 1e-12))
        return
    model = freeze(case.fn, case.shapes, tmp_path / "model.pb")
    with pytest.raises(TranspilerError, match=r"Permute.*'bvlc' does not have") as info:
        convert_graph(model, tmp_path / "out", "bvlc")
    assert "Traceback" not in str(info.value)
    assert not (tmp_path / "out" / "deploy.prototxt").exists()


def test_slice_layers_name_the_kept_part(tmp_path: Path) -> None:
    """OpenCV's forward(layer) returns a layer's first top: the kept part is the first top of the layer named
    after the node, whatever part of the axis it is."""
    result = check_op(tmp_path, lambda x: (x[:, :, 2:], x[:, :, 1:3], x[:, :, :2]), [(1, 3, 5, 4)])
    text = (result.out / "deploy.prototxt").read_text()
    for entry in result.report["outputs"]:
        layer = entry["caffe_layer"]
        assert f'name: "{layer}"' in text
        block = text.split(f'name: "{layer}"', 1)[1]
        assert block.split("top: ", 1)[1].startswith(f'"{entry["caffe_blob"]}"'), block[:300]


def test_resize_is_depthwise_deconvolution_with_unit_weights(tmp_path: Path) -> None:
    import tensorflow as tf

    result = check_op(tmp_path, lambda x: tf.compat.v1.image.resize_nearest_neighbor(x, [6, 9]), [(1, 2, 3, 4)])
    assert result.layer_types == ["Input", "Deconvolution"]
    text = (result.out / "deploy.prototxt").read_text()
    for line in ("group: 4", "kernel_h: 3", "kernel_w: 3", "stride_h: 3", "stride_w: 3", "bias_term: false"):
        assert line in text, line


def test_space_to_batch_pair_is_one_dilated_convolution(tmp_path: Path) -> None:
    import tensorflow as tf

    w = np.random.default_rng(7).normal(size=(3, 3, 4, 6)).astype(np.float32)
    result = check_op(tmp_path, lambda x: tf.nn.atrous_conv2d(x, tf.constant(w), 2, "SAME"), [(1, 8, 7, 4)])
    assert result.layer_types == ["Input", "Convolution"]
    text = (result.out / "deploy.prototxt").read_text()
    assert "dilation: 2" in text and "pad_h: 2" in text and "pad_w: 2" in text


REFUSED = [
    ("reversed_slice", lambda x: x[:, ::-1], "strided_slice", "reversed slice"),
    ("channel_stride", lambda x: x[:, :, :, ::2], "strided_slice", "stride 2 on axis 3"),
    ("align_corners", lambda x: _tf().compat.v1.image.resize_nearest_neighbor(x, [8, 10], align_corners=True),
     "ResizeNearestNeighbor", "align_corners"),
    ("resize_fraction", lambda x: _tf().compat.v1.image.resize_nearest_neighbor(x, [6, 10]),
     "ResizeNearestNeighbor", "not by whole factors"),
    ("dilated_deconv", lambda x: _tf().nn.conv2d_transpose(x, _weights(3, 3, 2, 3), [1, 8, 10, 2], 1, "SAME",
                                                           dilations=2),
     "conv2d_transpose", "dilated transposed convolution"),
]


@pytest.mark.parametrize(("fn", "node", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_names_node_and_reason(tmp_path: Path, fn: Callable[..., Any], node: str, reason: str) -> None:
    model = freeze(fn, [(1, 4, 5, 3)], tmp_path / "model.pb")
    with pytest.raises(TranspilerError) as info:
        convert_graph(model, tmp_path / "out", "ssd")
    message = str(info.value)
    assert str(model) in message and f"'{node}" in message and reason in message, message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _mixed_net(x: Any) -> Any:
    """Conv → Split/Concat → SpaceToBatch dilated depthwise → strided slice → Tile → nearest ×2 → transposed
    conv → Transpose: every structural op in one network."""
    tf = _tf()
    y = tf.nn.relu(tf.nn.conv2d(x, _weights(3, 3, 4, 6, seed=8) * 0.3, 1, "SAME"))
    a, b = tf.split(y, [2, 4], axis=3)
    y = tf.nn.depthwise_conv2d(tf.concat([b, a], axis=3), _weights(3, 3, 6, 1, seed=9) * 0.3, [1, 1, 1, 1], "SAME",
                               dilations=[2, 2])
    y = tf.tile(y[:, 1:8, ::2, :], [1, 1, 2, 1])
    y = tf.compat.v1.image.resize_nearest_neighbor(y, [14, 20])
    y = tf.nn.conv2d_transpose(y, _weights(3, 3, 5, 6, seed=10) * 0.3, [1, 28, 40, 5], 2, "SAME")
    return tf.transpose(y, [0, 2, 1, 3])


def test_cli_verify_per_layer_finds_no_divergence(tmp_path: Path, capsys: Any) -> None:
    """`--verify --per-layer` (TF vs OpenCV, blob by blob) on a network using the structural ops: exit 0, every
    blob within its bound."""
    from transpiler.cli import main

    model = freeze(_mixed_net, [(1, 9, 10, 4)], tmp_path / "mixed.pb")
    assert main([str(model), "-o", str(tmp_path / "out"), "--verify", "--per-layer"]) == 0
    out = capsys.readouterr().out
    compared = [line for line in out.splitlines() if "blobs compared" in line]
    assert compared and compared[0].rstrip().endswith(" 0 beyond tolerance"), out
    assert int(compared[0].split("verify: ")[1].split()[0]) >= 8, out


BAD_SHAPES = [
    ("Squeeze", (1, 4, 5, 3), {"axes": (1,)}, r"cannot squeeze axes \[1\]"),
    ("Reshape", (1, 4, 5, 3), {"shape": (1, 7, -1)}, "cannot reshape"),
    ("Transpose", (1, 4, 5), {"perm": (0, 2, 1, 3)}, "does not fit shape"),
    ("SliceAxis", (1, 4, 5, 3), {"axis": 2, "begin": 3, "end": 7}, "does not fit shape"),
    ("Upsample", (1, 4, 5), {"factors": (2, 2)}, "needs a 4-D map"),
    ("Flatten", None, {"axis": 1}, "unknown rank"),
]


@pytest.mark.parametrize(("op", "shape", "attrs", "reason"), BAD_SHAPES, ids=[b[0] for b in BAD_SHAPES])
def test_shape_inference_names_the_node_never_asserts(op: str, shape: Any, attrs: dict[str, Any], reason: str
                                                     ) -> None:
    from transpiler.errors import IRError
    from transpiler.ir import DType, Graph, infer_node

    g = Graph("bad")
    x = g.add_input("x", DType.FLOAT32, shape)
    node = g.add_node(op, [x], 1, attrs, name="the_node")
    with pytest.raises(IRError, match=reason) as info:
        infer_node(node)
    assert "'the_node'" in str(info.value)


def test_concat_of_mismatched_shapes_names_the_node() -> None:
    from transpiler.errors import IRError
    from transpiler.ir import DType, Graph, infer_node

    g = Graph("bad")
    a, b = g.add_input("a", DType.FLOAT32, (1, 4, 5, 3)), g.add_input("b", DType.FLOAT32, (1, 4, 6, 3))
    with pytest.raises(IRError, match=r"do not concatenate on axis 3.*'cat'"):
        infer_node(g.add_node("Concat", [a, b], 1, {"axis": 3}, name="cat"))


OTHER_FLAVORS = [("opencv", ("opencv",)), ("portable", ("opencv", "real")), ("kernels", ("real",))]
FLAVOR_CASES = [(c, f, r) for c in CASES if c.name in ("strided_slice_spatial_strides", "split_splitv", "tile",
                                                        "conv2d_backprop_input", "resize_nearest",
                                                        "space_to_batch_dilated_conv", "transpose")
                for f, r in OTHER_FLAVORS]


@pytest.mark.parametrize(("case", "flavor", "runtimes"), FLAVOR_CASES,
                         ids=[f"{c.name}-{f}" for c, f, _ in FLAVOR_CASES])
def test_shape_op_other_flavors(tmp_path: Path, case: Case, flavor: str, runtimes: tuple[str, ...],
                                request: Any) -> None:
    """The same layers in the other flavors; kernels (our DepthwiseConvolution, with native dilation for the
    SpaceToBatch case) runs in the real SSD-Caffe only, as OpenCV cannot create that layer."""
    chosen = [r if r == "opencv" else request.getfixturevalue("real_caffe") for r in runtimes]
    check_op(tmp_path, case.fn, case.shapes, flavor=flavor, runtimes=chosen, tol=max(_bound(case), 1e-12))


def test_every_refused_node_is_listed_at_once(tmp_path: Path) -> None:
    """Refusals do not stop the import: the backend's sweep names them all (and the file), nothing is written."""
    tf = _tf()

    def fn(x: Any) -> tuple[Any, ...]:
        return (tf.identity(x[:, ::-1], name="flip"),
                tf.identity(tf.compat.v1.image.resize_nearest_neighbor(x, [8, 10], align_corners=True), name="ac"),
                tf.nn.relu(x[:, :, :, ::2]))

    model = freeze(fn, [(1, 4, 5, 3)], tmp_path / "model.pb")
    with pytest.raises(TranspilerError) as info:
        convert_graph(model, tmp_path / "out", "ssd")
    message = str(info.value)
    assert message.startswith(str(model)) and "3 node(s) cannot be written" in message, message
    for reason in ("reversed slice", "align_corners", "stride 2 on axis 3"):
        assert reason in message, message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_space_to_batch_without_its_conv_is_refused_with_the_pattern(tmp_path: Path) -> None:
    tf = _tf()
    model = freeze(lambda x: tf.nn.relu(tf.space_to_batch_nd(x, [2, 2], [[0, 0], [1, 0]])), [(1, 4, 5, 3)],
                   tmp_path / "model.pb")
    with pytest.raises(TranspilerError, match=r"SpaceToBatchND.*only the pattern") as info:
        convert_graph(model, tmp_path / "out", "ssd")
    assert str(model) in str(info.value)


def test_keras_decoder_layers(tmp_path: Path, real_caffe: Any) -> None:
    """The Keras spellings: Conv2DTranspose (dynamic output shape, folded), UpSampling2D, Cropping2D,
    Concatenate, a dilated Conv2D; the transposed conv's bias folds into the Deconvolution."""
    tf = _tf()
    keras = tf.keras
    inp = keras.Input((9, 10, 4), batch_size=1)
    y = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(inp)
    y = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same")(y)
    y = keras.layers.Cropping2D(((1, 2), (0, 3)))(y)
    u = keras.layers.Cropping2D(((1, 2), (0, 3)))(keras.layers.UpSampling2D((2, 2))(inp))
    y = keras.layers.Conv2D(3, 3, padding="same", dilation_rate=2)(keras.layers.Concatenate()([y, u]))
    model = keras.Model(inp, y)
    rng = np.random.default_rng(11)
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype(np.float32) * 0.3)
    result = check_op(tmp_path, lambda x: model(x), [(1, 9, 10, 4)], runtimes=("opencv", real_caffe))
    assert set(result.layer_types) == {"Input", "Convolution", "ReLU", "Deconvolution", "Slice", "Concat"}


def test_space_to_batch_with_larger_crops_than_pads_is_refused(tmp_path: Path) -> None:
    """Crops beyond the pads would need a negative pad: not folded, so refused (never converted wrongly)."""
    tf = _tf()
    w = _weights(3, 3, 3, 2, seed=13)

    def fn(x: Any) -> Any:
        y = tf.nn.conv2d(tf.space_to_batch_nd(x, [2, 2], [[0, 0], [0, 0]]), w, 1, "VALID")
        return tf.compat.v1.batch_to_space_nd(y, [2, 2], [[1, 1], [0, 0]])

    model = freeze(fn, [(1, 8, 8, 3)], tmp_path / "model.pb")
    with pytest.raises(TranspilerError, match=r"BatchToSpaceND.*only the pattern"):
        convert_graph(model, tmp_path / "out", "ssd")
