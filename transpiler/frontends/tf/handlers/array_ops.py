"""Handlers for TF's tensor-shaping ops and the shape arithmetic that feeds them.

Shape arguments (Reshape's shape, Pad's paddings, Concat's axis...) are read with
``ctx.static``, which evaluates shape arithmetic on static shapes, so the IR gets plain attributes.

On data (a float tensor of static shape that constants do not determine) the structural ops are lowered
to IR ops the Caffe backend writes exactly; on shape arithmetic they stay as the generic ops that
constant folding evaluates:

- StridedSlice/Slice/Split/SplitV/Unpack: ``x[index]`` in numpy terms → one ``SliceAxis`` per cut axis
  (Caffe Slice), a 1×1 max ``Pool`` of stride s for a stride on a spatial axis (window i reads element
  i·s alone), and a ``Reshape`` for dropped (integer index) or added (new-axis) axes.
- Pack on ``axis``: each input reshaped with a size-1 axis there, then ``Concat`` on it.
- Tile by ``m`` on an axis: ``Concat`` of m copies on it (np.tile, exact).
- What has no exact Caffe form (a reversed slice, a stride on a non-spatial axis) becomes a ``Refused``
  node of the TF shape: the backend lists every such node at once, before writing anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.importer import ImportContext
from transpiler.frontends.tf.registry import tf_op
from transpiler.frontends.tf.tensors import tensor_to_numpy
from transpiler.ir.core import Value
from transpiler.ir.dtypes import DType


@tf_op("Const")
def const(ctx: ImportContext, node: Any) -> list[Value]:
    array = tensor_to_numpy(node.attr["value"].tensor)
    value = ctx.graph.constant(node.name, array)
    return [value]


@tf_op("Identity", "StopGradient", "Snapshot", "PreventGradient", "PlaceholderWithDefault", "EnsureShape")
def identity(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Identity", node, [ctx.input(node, 0)]).outputs


@tf_op("IdentityN")
def identity_n(ctx: ImportContext, node: Any) -> list[Value]:
    return [ctx.add("Identity", node, [v], suffix=f"_{i}").output for i, v in enumerate(ctx.inputs(node))]


@tf_op("Reshape")
def reshape(ctx: ImportContext, node: Any) -> list[Value]:
    shape = ctx.static_input(node, 1, "target shape").reshape(-1)
    out = ctx.add("Reshape", node, [ctx.input(node, 0)], {"shape": tuple(int(s) for s in shape)}).output
    return [out]


@tf_op("ExpandDims")
def expand_dims(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    axis = int(ctx.static_input(node, 1, "axis").reshape(-1)[0])
    if x.shape is None or None in x.shape:
        raise UnsupportedModelError(f"{ctx.where(node)}: ExpandDims of a tensor of unknown shape")
    shape = list(x.shape)
    axis = axis + len(shape) + 1 if axis < 0 else axis
    shape.insert(axis, 1)
    return ctx.add("Reshape", node, [x], {"shape": tuple(int(s) for s in shape)}).outputs  # type: ignore[arg-type]


@tf_op("Squeeze")
def squeeze(ctx: ImportContext, node: Any) -> list[Value]:
    axes = tuple(int(a) for a in ctx.attr(node, "squeeze_dims", []) or [])
    return ctx.add("Squeeze", node, [ctx.input(node, 0)], {"axes": axes}).outputs


@tf_op("ConcatV2", "Concat")
def concat(ctx: ImportContext, node: Any) -> list[Value]:
    ins = ctx.inputs(node)
    if node.op == "ConcatV2":
        axis, values = ctx.static_input(node, len(ins) - 1, "axis"), ins[:-1]
    else:
        axis, values = ctx.static_input(node, 0, "axis"), ins[1:]
    return ctx.add("Concat", node, values, {"axis": int(axis.reshape(-1)[0])}).outputs


@tf_op("Transpose")
def transpose(ctx: ImportContext, node: Any) -> list[Value]:
    perm = ctx.static_input(node, 1, "permutation").reshape(-1)
    return ctx.add("Transpose", node, [ctx.input(node, 0)], {"perm": tuple(int(p) for p in perm)}).outputs


@tf_op("Pad", "PadV2")
def pad(ctx: ImportContext, node: Any) -> list[Value]:
    paddings = ctx.static_input(node, 1, "paddings").reshape(-1, 2)
    value = 0.0
    if node.op == "PadV2":
        value = float(ctx.static_input(node, 2, "constant value").reshape(-1)[0])
    attrs = {"pads": tuple((int(b), int(e)) for b, e in paddings), "value": value}
    return ctx.add("Pad", node, [ctx.input(node, 0)], attrs).outputs


@tf_op("Cast")
def cast(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Cast", node, [ctx.input(node, 0)], {"to": ctx.attr(node, "DstT")}).outputs


@tf_op("Shape")
def shape(ctx: ImportContext, node: Any) -> list[Value]:
    out_type = ctx.attr(node, "out_type", DType.INT32)
    return ctx.add("Shape", node, [ctx.input(node, 0)], {"out_type": out_type}).outputs


@tf_op("StridedSlice")
def strided_slice(ctx: ImportContext, node: Any) -> list[Value]:
    keys = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    attrs: dict[str, Any] = {k: int(ctx.attr(node, k, 0)) for k in keys}
    x = ctx.input(node, 0)
    begin, end, strides = (ctx.static(v) for v in ctx.inputs(node)[1:4])
    if _is_map(ctx, x) and begin is not None and end is not None and strides is not None:
        index = strided_index(len(x.shape or ()), begin.reshape(-1), end.reshape(-1), strides.reshape(-1), attrs)
        return [_slice_chain(ctx, node, x, index)]
    attrs["dtype"] = x.dtype  # shape arithmetic: folded by ctx.static / fold-constants
    return ctx.add("StridedSlice", node, ctx.inputs(node)[:4], attrs).outputs


@tf_op("Slice")
def slice_(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    begin, size = ctx.static(ctx.input(node, 1)), ctx.static(ctx.input(node, 2))
    if _is_map(ctx, x) and begin is not None and size is not None:
        index: list[Any] = [slice(int(b), None if int(s) == -1 else int(b) + int(s))
                            for b, s in zip(begin.reshape(-1), size.reshape(-1), strict=True)]
        return [_slice_chain(ctx, node, x, index)]
    return ctx.add("Slice", node, ctx.inputs(node)[:3], {"dtype": x.dtype}).outputs


@tf_op("Split", "SplitV")
def split(ctx: ImportContext, node: Any) -> list[Value]:
    if node.op == "Split":
        axis_in, x = ctx.static_input(node, 0, "axis"), ctx.input(node, 1)
    else:
        x, axis_in = ctx.input(node, 0), ctx.static_input(node, 2, "axis")
    known = ctx.static(x)
    shape = tuple(known.shape) if known is not None else _map_shape(ctx, node, x)
    axis = _axis(ctx, node, int(axis_in.reshape(-1)[0]), len(shape))
    if node.op == "Split":
        count = int(ctx.attr(node, "num_split", 1))
        if shape[axis] % count:
            raise UnsupportedModelError(f"{ctx.where(node)}: axis {axis} of size {shape[axis]} does not split into "
                                        f"{count} equal parts")
        sizes = [shape[axis] // count] * count
    else:
        sizes = [int(s) for s in ctx.static_input(node, 1, "size_splits").reshape(-1)]
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = shape[axis] - sum(s for s in sizes if s != -1)
    if sum(sizes) != shape[axis] or any(s < 0 for s in sizes):
        raise UnsupportedModelError(f"{ctx.where(node)}: sizes {sizes} do not split axis {axis} of size {shape[axis]}")
    value = ctx.static(x)
    if value is not None:  # computable from constants (an anchor grid of unknown IR shape): constants
        parts = np.split(value, np.cumsum(sizes)[:-1], axis=axis)
        return [ctx.constant(node, np.ascontiguousarray(p), f"/part{i}" if i else "") for i, p in enumerate(parts)]
    outs, begin = [], 0
    for i, size in enumerate(sizes):
        index = [slice(None)] * len(shape)
        index[axis] = slice(begin, begin + size)
        outs.append(_slice_chain(ctx, node, x, index, suffix=f"/part{i}" if i else ""))
        begin += size
    return outs


@tf_op("Unpack")
def unpack(ctx: ImportContext, node: Any) -> list[Value]:
    x = ctx.input(node, 0)
    shape = _map_shape(ctx, node, x)
    axis = _axis(ctx, node, int(ctx.attr(node, "axis", 0)), len(shape))
    outs = []
    for i in range(shape[axis]):
        index: list[Any] = [slice(None)] * len(shape)
        index[axis] = i  # an integer index drops the axis, as Unpack does
        outs.append(_slice_chain(ctx, node, x, index, suffix=f"/part{i}" if i else ""))
    return outs


@tf_op("Tile")
def tile(ctx: ImportContext, node: Any) -> list[Value]:
    """np.tile along each axis is a Concat of ``m`` copies along it (exact in every runtime; OpenCV 4.x cannot
    read Caffe's own Tile layer)."""
    x = ctx.input(node, 0)
    multiples = ctx.static(ctx.input(node, 1))
    if not _is_map(ctx, x) or multiples is None:
        return ctx.add("Tile", node, ctx.inputs(node)[:2], {"dtype": x.dtype}).outputs
    reps = [int(m) for m in multiples.reshape(-1)]
    if len(reps) != len(x.shape) or any(m < 1 for m in reps):  # type: ignore[arg-type]
        raise UnsupportedModelError(f"{ctx.where(node)}: multiples {reps} do not fit shape {list(x.shape)}")  # type: ignore[arg-type]
    axes = [a for a, m in enumerate(reps) if m > 1]
    if not axes:
        return ctx.add("Identity", node, [x]).outputs
    for k, a in enumerate(axes):
        last = k == len(axes) - 1
        x = ctx.add("Concat", node, [x] * reps[a], {"axis": a}, suffix="" if last else f"/axis{a}").output
    return [x]


@tf_op("Pack")
def pack(ctx: ImportContext, node: Any) -> list[Value]:
    """Stacking along ``axis`` = Concat of the inputs each reshaped with a size-1 axis inserted there."""
    ins = ctx.inputs(node)
    axis = int(ctx.attr(node, "axis", 0))
    if not all(_is_map(ctx, v) for v in ins):
        return ctx.add("Pack", node, ins, {"axis": axis, "dtype": ins[0].dtype}).outputs
    shape = list(_map_shape(ctx, node, ins[0]))
    axis = _axis(ctx, node, axis, len(shape) + 1)
    expanded = [ctx.add("Reshape", node, [v], {"shape": (*shape[:axis], 1, *shape[axis:])},
                        suffix=f"/expand{i}").output for i, v in enumerate(ins)]
    if len(expanded) == 1:
        return ctx.add("Identity", node, expanded).outputs
    return ctx.add("Concat", node, expanded, {"axis": axis}).outputs


# ----------------------------------------------------------------- slicing feature maps
def refuse(ctx: ImportContext, node: Any, inputs: list[Value], shape: tuple[int, ...], reason: str) -> Value:
    """Keep a TF node with no exact Caffe form as an IR ``Refused`` node of its TF output shape: import goes on,
    and the backend's up-front sweep lists it (file, node, reason) with every other gap; nothing is written."""
    attrs = {"reason": reason, "tf_op": node.op, "shape": tuple(int(d) for d in shape), "dtype": inputs[0].dtype}
    return ctx.add("Refused", node, inputs, attrs).output


def _is_map(ctx: ImportContext, v: Value) -> bool:
    """A float tensor of known shape that is not computable from constants: real data, not shape arithmetic."""
    return (v.dtype.is_float and v.shape is not None and None not in v.shape and len(v.shape) > 0
            and ctx.static(v) is None)


def _map_shape(ctx: ImportContext, node: Any, v: Value) -> tuple[int, ...]:
    if v.shape is None or None in v.shape:
        raise UnsupportedModelError(f"{ctx.where(node)}: the input's shape {v.shape} must be static")
    return tuple(int(d) for d in v.shape)  # type: ignore[arg-type]


def _axis(ctx: ImportContext, node: Any, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise UnsupportedModelError(f"{ctx.where(node)}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def strided_index(rank: int, begin: np.ndarray, end: np.ndarray, strides: np.ndarray,
                  attrs: dict[str, Any]) -> list[Any]:
    """TF StridedSlice's index as numpy's: one entry per input axis (slice or int; ellipsis expanded), with
    ``None`` for each new axis, as ``x[tuple(index)]`` would read it."""
    index: list[Any] = []
    bm, em = int(attrs.get("begin_mask", 0)), int(attrs.get("end_mask", 0))
    elm, nam, sam = (int(attrs.get(k, 0)) for k in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"))
    specs = len(begin)
    consumed = sum(1 for i in range(specs) if not (elm | nam) & (1 << i))
    for i in range(specs):
        bit = 1 << i
        if elm & bit:
            index.extend([slice(None)] * (rank - consumed))
        elif nam & bit:
            index.append(None)
        elif sam & bit:
            index.append(int(begin[i]))
        else:
            index.append(slice(None if bm & bit else int(begin[i]), None if em & bit else int(end[i]),
                               int(strides[i])))
    return index


def _slice_chain(ctx: ImportContext, node: Any, x: Value, index: list[Any], suffix: str = "") -> Value:
    """``x[tuple(index)]`` (numpy semantics) as IR: a SliceAxis per axis that is cut; for a stride s > 1 on a
    spatial axis of a 4-D map, the cut ``begin … begin + (n−1)·s`` then a 1×1 max Pool of stride s, whose
    window ``i`` reads element ``i·s`` alone (exact); a final Reshape where integer indices drop axes or
    ``None`` entries add them."""
    shape = _map_shape(ctx, node, x)
    entries = [e for e in index if e is not None]
    if len(entries) > len(shape):
        raise UnsupportedModelError(f"{ctx.where(node)}: {len(entries)} slice specs for a rank-{len(shape)} tensor")
    entries += [slice(None)] * (len(shape) - len(entries))
    # numpy's own result shape for the index (a zero-size view: no memory)
    final = tuple(np.broadcast_to(np.int8(0), shape)[tuple(index)].shape)
    cuts: list[tuple[int, int, int, int]] = []  # (axis, begin, end, stride)
    kept = list(shape)
    for a, (e, dim) in enumerate(zip(entries, shape, strict=True)):
        if isinstance(e, slice):
            start, stop, step = e.indices(dim)
            count = len(range(start, stop, step))
            if count == 0:
                raise UnsupportedModelError(f"{ctx.where(node)}: the slice of axis {a} is empty")
            if step < 0 and count > 1:
                return refuse(ctx, node, [x], final, f"a reversed slice (stride {step}) of axis {a} has no Caffe layer")
            if step > 1 and count > 1 and (len(shape) != 4 or a not in (1, 2)):
                return refuse(ctx, node, [x], final, f"stride {step} on axis {a} has no exact Caffe form (only on "
                              "the spatial axes of a 4-D map)")
            step = abs(step)
            kept[a] = count
            if count != dim:
                cuts.append((a, start, start + (count - 1) * step + 1, step if count > 1 else 1))
        else:
            i = int(e) + dim if int(e) < 0 else int(e)
            if not 0 <= i < dim:
                raise UnsupportedModelError(f"{ctx.where(node)}: index {int(e)} is out of range for axis {a} "
                                            f"of size {dim}")
            kept[a] = 1
            if dim != 1:
                cuts.append((a, i, i + 1, 1))
    reshape = final != tuple(kept)
    for k, (a, begin, end, step) in enumerate(cuts):
        last_cut = k == len(cuts) - 1 and not reshape
        if (begin, end) != (0, shape[a]):  # a stride alone may keep the whole extent
            x = ctx.add("SliceAxis", node, [x], {"axis": a, "begin": begin, "end": end},
                        suffix=suffix + ("" if last_cut and step == 1 else f"/slice{a}")).output
        if step > 1:
            strides = (step, 1) if a == 1 else (1, step)
            x = ctx.add("Pool", node, [x], {"mode": "max", "kernel": (1, 1), "strides": strides, "padding": "VALID",
                                            "pads": (0, 0, 0, 0), "global_pool": False},
                        suffix=suffix + ("" if last_cut else f"/stride{a}")).output
    if reshape:
        x = ctx.add("Reshape", node, [x], {"shape": final}, suffix=suffix).output
    elif not cuts:
        x = ctx.add("Identity", node, [x], suffix=suffix).output
    return x


@tf_op("Fill")
def fill(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Fill", node, ctx.inputs(node)[:2], {"dtype": ctx.input(node, 1).dtype}).outputs


@tf_op("Range")
def range_(ctx: ImportContext, node: Any) -> list[Value]:
    return ctx.add("Range", node, ctx.inputs(node)[:3], {"dtype": ctx.input(node, 0).dtype}).outputs
