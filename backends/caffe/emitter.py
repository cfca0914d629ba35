"""IR (NCHW, lowered) → Caffe ``NetParameter``: one or more layers per IR node, weights as blobs.

Layer names are the IR node names, which derive from the TF node names, so a layer reads as the TF
node it replaces. Every layer writes a blob of its own name (no in-place layers), so every blob can
be compared with its TF tensor (``--verify --per-layer``). Parameter layouts:

- Convolution: weights (O, I/group, kh, kw), bias (O); symmetric ``pad_h``/``pad_w`` only
  (``symmetric-padding`` ran before), or ``DepthwiseConvolution`` with four pads (kernels flavor).
- InnerProduct: weights (out, in), bias (out). Scale (+bias): per-channel on ``axis``.
- Pooling: emit_pooling.py (TF's uneven SAME and VALID grids inside Caffe's rounded-up one).
- Element-wise ops, reductions, LogSoftmax and Pad: emit_elementwise.py.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transpiler.backends.caffe.flavors import Flavor, is_identifier_name
from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import BackendError
from transpiler.ir.core import Graph, Node, Value
from transpiler.plugins import claim, owner_of


@dataclass
class Emitted:
    """The result of emitting a graph: the net with weights, and where each IR value lives."""

    net: Any
    blob_of: dict[int, str] = field(default_factory=dict)  # id(Value) -> Caffe blob name
    layer_of_blob: dict[str, str] = field(default_factory=dict)  # blob -> layer writing it last
    values: dict[str, Value] = field(default_factory=dict)  # blob -> IR value it holds
    renamed: dict[str, str] = field(default_factory=dict)  # identifier names: new name -> the name it replaced

    def rename_to_identifiers(self) -> None:
        """Give every layer and blob a lower-case Python identifier name (x2paddle writes them as variables).

        ``name.lower()`` with every character outside ``[a-z0-9_]`` replaced by ``_``; ``n_`` in front of a
        leading digit, ``_`` after a keyword; where two names would meet, ``_2``, ``_3``… in net order. One
        mapping serves layers and blobs (a layer and its blob keep sharing a name), and it depends only on the
        net, so the same model always gets the same names. ``renamed`` keeps the originals.
        """
        mapping: dict[str, str] = {}
        taken: set[str] = set()
        names = [n for layer in self.net.layer for n in (layer.name, *layer.bottom, *layer.top)]
        for name in dict.fromkeys(names):  # names already identifiers first: they keep their name
            if is_identifier_name(name):
                mapping[name] = name
                taken.add(name)
        for name in dict.fromkeys(names):
            if name in mapping:
                continue
            base = re.sub(r"[^a-z0-9_]", "_", name.lower())
            base = f"n_{base}" if not base or base[0].isdigit() else base
            base = f"{base}_" if keyword.iskeyword(base) else base
            new, k = base, 1
            while new in taken:
                k += 1
                new = f"{base}_{k}"
            mapping[name] = new
            taken.add(new)
            self.renamed[new] = name
        if not self.renamed:
            return
        for layer in self.net.layer:
            layer.name = mapping[layer.name]
            layer.bottom[:] = [mapping[b] for b in layer.bottom]
            layer.top[:] = [mapping[t] for t in layer.top]
        self.blob_of = {k: mapping[v] for k, v in self.blob_of.items()}
        self.layer_of_blob = {mapping[b]: mapping[la] for b, la in self.layer_of_blob.items()}
        self.values = {mapping[b]: v for b, v in self.values.items()}


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def set_blob(blob: Any, array: np.ndarray) -> None:
    """Shape and float32 data of a BlobProto, merged as their wire form (``shape`` = field 7 holding the packed
    int64 ``dim`` = field 1; ``data`` = field 5, packed little-endian float32): byte-identical to extending the
    repeated fields, which protobuf converts element by element (many times slower on big weights)."""
    arr = np.ascontiguousarray(array, dtype="<f4")
    dims = b"".join(_varint(int(d)) for d in arr.shape)
    shape = b"\x0a" + _varint(len(dims)) + dims
    data = arr.tobytes()
    blob.MergeFromString(b"\x3a" + _varint(len(shape)) + shape + b"\x2a" + _varint(len(data)) + data)


class CaffeEmitter:
    def __init__(self, flavor: Flavor, identifier_names: bool | None = None) -> None:
        self.flavor = flavor
        self.identifier_names = flavor.identifier_names if identifier_names is None else identifier_names
        self.net = cp.NetParameter()
        self.result = Emitted(self.net)

    # ------------------------------------------------------------------ helpers
    def blob(self, v: Value) -> str:
        try:
            return self.result.blob_of[id(v)]
        except KeyError:
            if v.const is not None:
                raise BackendError(f"constant %{v.name} is used as a feature map; Caffe layers take "
                                   "constants only as weights") from None
            raise BackendError(f"value %{v.name} has no Caffe blob (internal order error)") from None

    def layer(self, name: str, type_: str, bottoms: list[str], top: str | None = None) -> Any:
        self.flavor.check(type_, name)
        layer = self.net.layer.add()
        layer.name = name
        layer.type = type_
        layer.bottom.extend(bottoms)
        layer.top.append(top or name)
        self.result.layer_of_blob[top or name] = name
        return layer

    def bind(self, v: Value, blob: str) -> None:
        self.result.blob_of[id(v)] = blob
        self.result.values[blob] = v

    # -------------------------------------------------------------------- emit
    def emit(self, graph: Graph) -> Emitted:
        self.net.name = graph.name
        for v in graph.inputs:
            layer = self.layer(v.name, "Input", [])
            layer.input_param.shape.add().dim.extend(int(d) for d in v.static_shape)
            self.bind(v, v.name)
        problems: list[str] = []
        for node in graph.nodes:  # every node is tried: all that cannot be written are reported at once
            fn = EMITTERS.get(node.op)
            try:
                if fn is None:
                    raise BackendError(f"{node.describe()}: no Caffe layer for IR op {node.op}")
                top = fn(self, node)
            except BackendError as exc:
                problems.append(str(exc))
                top = node.name  # a stand-in, so that its readers are checked too
            self.bind(node.output, top)
        if not problems:
            if self.identifier_names:
                self.result.rename_to_identifiers()
            problems += self.flavor.check_net(self.net)  # parameter forms the target's importer misreads
        if problems:
            source = graph.metadata.get("source", graph.name)
            listing = "\n".join(f"  - {p}" for p in problems)
            raise BackendError(f"{source}: {len(problems)} node(s) cannot be written for Caffe flavor "
                               f"'{self.flavor.name}' (nothing was written):\n{listing}")
        for v in graph.outputs:
            self.blob(v)
        return self.result


Emitter = Callable[[CaffeEmitter, Node], str]
EMITTERS: dict[str, Emitter] = {}


def caffe_op(*ops: str) -> Callable[[Emitter], Emitter]:
    """Register the Caffe emitter of IR ops (plugins may add their own)."""

    def deco(fn: Emitter) -> Emitter:
        for op in ops:
            if claim("Caffe emitter", op, owner_of(fn)):  # a plugin's emitter wins over a built-in one
                EMITTERS[op] = fn
        return fn

    return deco


def _const(node: Node, i: int, what: str) -> np.ndarray:
    c = node.inputs[i].const
    if c is None:
        raise BackendError(f"{node.describe()}: {what} must be constant")
    return c


@caffe_op("Conv")
def _conv(e: CaffeEmitter, node: Node) -> str:
    w = _const(node, 1, "weights")
    t, b, left, r = node.attrs.get("pads", (0, 0, 0, 0))
    group = int(node.attrs.get("group", 1))
    depthwise_native = e.flavor.uneven_pads == "depthwise" and group > 1 and w.shape[1] == 1
    uneven = t != b or left != r
    if uneven and not depthwise_native and e.flavor.uneven_pads != "all":
        raise BackendError(f"{node.describe()}: uneven pads {node.attrs['pads']} reached the Caffe backend "
                           "(the symmetric-padding pass must run for this flavor)")
    dh, dw = node.attrs.get("dilations", (1, 1))
    if depthwise_native:
        layer = e.layer(node.name, "DepthwiseConvolution", [e.blob(node.inputs[0])])
        p = layer.depthwise_conv_param
        p.num_output = int(w.shape[0])
        p.channel_multiplier = int(w.shape[0]) // group
        p.pad_top, p.pad_bottom, p.pad_left, p.pad_right = int(t), int(b), int(left), int(r)
        p.dilation_h, p.dilation_w = int(dh), int(dw)
    else:
        layer = e.layer(node.name, "Convolution", [e.blob(node.inputs[0])])
        p = layer.convolution_param
        p.num_output = int(w.shape[0])
        if uneven:  # OpenCV reads four values as pads_begin (top, left) then pads_end (bottom, right)
            p.pad.extend([int(t), int(left), int(b), int(r)])
        else:
            p.pad_h, p.pad_w = int(t), int(left)
        if group != 1:
            p.group = group
    p.kernel_h, p.kernel_w = int(w.shape[2]), int(w.shape[3])
    p.stride_h, p.stride_w = (int(s) for s in node.attrs.get("strides", (1, 1)))
    if (dh, dw) != (1, 1) and not depthwise_native:
        if dh != dw:
            raise BackendError(f"{node.describe()}: Caffe has one dilation for both axes, got {dh}, {dw}")
        p.dilation.append(int(dh))
    p.bias_term = len(node.inputs) > 2
    set_blob(layer.blobs.add(), w)
    if p.bias_term:
        set_blob(layer.blobs.add(), _const(node, 2, "bias"))
    return node.name


@caffe_op("Affine")
def _affine(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "Scale", [e.blob(node.inputs[0])])
    axis = int(node.attrs.get("axis", 1))
    if axis != 1:
        layer.scale_param.axis = axis
    layer.scale_param.bias_term = True
    set_blob(layer.blobs.add(), _const(node, 1, "scale"))
    set_blob(layer.blobs.add(), _const(node, 2, "bias"))
    return node.name


@caffe_op("FullyConnected")
def _fc(e: CaffeEmitter, node: Node) -> str:
    w = _const(node, 1, "weights")
    layer = e.layer(node.name, "InnerProduct", [e.blob(node.inputs[0])])
    layer.inner_product_param.num_output = int(w.shape[0])
    if int(node.attrs.get("axis", 1)) != 1:
        layer.inner_product_param.axis = int(node.attrs["axis"])
    layer.inner_product_param.bias_term = len(node.inputs) > 2
    set_blob(layer.blobs.add(), w)
    if len(node.inputs) > 2:
        set_blob(layer.blobs.add(), _const(node, 2, "bias"))
    return node.name


@caffe_op("Relu")
def _relu(e: CaffeEmitter, node: Node) -> str:
    e.layer(node.name, "ReLU", [e.blob(node.inputs[0])])
    return node.name


@caffe_op("Relu6")
def _relu6(e: CaffeEmitter, node: Node) -> str:
    x = e.blob(node.inputs[0])
    if e.flavor.relu6 == "ReLU6":
        e.layer(node.name, "ReLU6", [x])
    elif e.flavor.relu6 == "Clip":
        layer = e.layer(node.name, "Clip", [x])
        layer.clip_param.min, layer.clip_param.max = 0.0, 6.0
    else:  # min(relu(x), 6) = relu(x) - relu(relu(x) - 6)
        e.layer(f"{node.name}/relu", "ReLU", [x])
        shift = e.layer(f"{node.name}/minus6", "Power", [f"{node.name}/relu"])
        shift.power_param.shift = -6.0
        e.layer(f"{node.name}/excess", "ReLU", [f"{node.name}/minus6"])
        sub = e.layer(node.name, "Eltwise", [f"{node.name}/relu", f"{node.name}/excess"])
        sub.eltwise_param.operation = cp.EltwiseParameter.SUM
        sub.eltwise_param.coeff.extend([1.0, -1.0])
    return node.name


@caffe_op("Clip")
def _clip(e: CaffeEmitter, node: Node) -> str:
    lo, hi = float(node.attrs["min"]), float(node.attrs["max"])
    x = e.blob(node.inputs[0])
    if "Clip" in e.flavor.layer_types:
        layer = e.layer(node.name, "Clip", [x])
        layer.clip_param.min, layer.clip_param.max = lo, hi
        return node.name
    # min(max(x, lo), hi) = hi − relu((hi − lo) − relu(x − lo)): Power/ReLU only, within 1 ulp of max(|x|, |lo|,
    # |hi|) (the shifts round)
    n = node.name
    below = e.layer(f"{n}/minus_lo", "Power", [x])
    below.power_param.shift = -lo
    e.layer(f"{n}/above_lo", "ReLU", [f"{n}/minus_lo"])
    room = e.layer(f"{n}/room", "Power", [f"{n}/above_lo"])
    room.power_param.scale, room.power_param.shift = -1.0, hi - lo
    e.layer(f"{n}/room_relu", "ReLU", [f"{n}/room"])
    out = e.layer(n, "Power", [f"{n}/room_relu"])
    out.power_param.scale, out.power_param.shift = -1.0, hi
    return n


@caffe_op("Concat")
def _concat(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "Concat", [e.blob(v) for v in node.inputs])
    rank = len(node.output.shape or ())
    layer.concat_param.axis = int(node.attrs["axis"]) % max(rank, 1)
    return node.name


@caffe_op("Softmax")
def _softmax(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "Softmax", [e.blob(node.inputs[0])])
    rank = len(node.output.shape or ())
    layer.softmax_param.axis = int(node.attrs.get("axis", -1)) % max(rank, 1)
    return node.name


@caffe_op("Reshape", "Squeeze", "Flatten")
def _reshape(e: CaffeEmitter, node: Node) -> str:
    shape = node.output.static_shape
    x = node.inputs[0].static_shape
    if len(shape) == 2 and shape[0] == x[0]:
        e.layer(node.name, "Flatten", [e.blob(node.inputs[0])])
        return node.name
    layer = e.layer(node.name, "Reshape", [e.blob(node.inputs[0])])
    layer.reshape_param.shape.dim.extend(int(d) for d in shape)
    return node.name


@caffe_op("Transpose")
def _permute(e: CaffeEmitter, node: Node) -> str:
    layer = e.layer(node.name, "Permute", [e.blob(node.inputs[0])])
    layer.permute_param.order.extend(int(p) for p in node.attrs["perm"])
    return node.name


@caffe_op("PriorBox")
def _priorbox(e: CaffeEmitter, node: Node) -> str:
    a = node.attrs
    layer = e.layer(node.name, "PriorBox", [e.blob(node.inputs[0]), e.blob(node.inputs[1])])
    p = layer.prior_box_param
    p.min_size.append(float(a["min_size"]))
    p.max_size.extend(float(m) for m in a.get("max_size", ()))
    p.aspect_ratio.extend(float(r) for r in a.get("aspect_ratios", ()))
    p.flip = False  # ratios are listed explicitly, in the order the head's channels expect
    p.clip = bool(a.get("clip", False))  # written explicitly: OpenCV clips by default
    p.variance.extend(float(v) for v in a["variance"])
    p.img_h, p.img_w = int(a["img_h"]), int(a["img_w"])
    if a.get("step_h") is not None:  # None: the runtime derives it (image size / layer size), exactly
        p.step_h, p.step_w = float(a["step_h"]), float(a["step_w"])
    p.offset = float(a.get("offset", 0.5))
    return node.name


@caffe_op("DetectionOutput")
def _detection_output(e: CaffeEmitter, node: Node) -> str:
    a = node.attrs
    layer = e.layer(node.name, "DetectionOutput", [e.blob(v) for v in node.inputs])
    p = layer.detection_output_param
    p.num_classes = int(a["num_classes"])
    p.share_location = True
    p.background_label_id = int(a.get("background_label_id", 0))
    p.nms_param.nms_threshold = float(a["nms_threshold"])
    if a.get("top_k") is not None:  # the pass writes the prior count (= no cut) unless --nms-top-k asks less
        p.nms_param.top_k = int(a["top_k"])
    p.code_type = cp.PriorBoxParameter.CENTER_SIZE
    p.variance_encoded_in_target = False
    p.keep_top_k = int(a["keep_top_k"])
    p.confidence_threshold = float(a["confidence_threshold"])
    return node.name


def emit_caffe(graph: Graph, flavor: Flavor, identifier_names: bool | None = None) -> Emitted:
    """Emit the whole graph; raises one :class:`BackendError` naming the model file and every node that cannot
    be written (no Caffe layer for its op, a layer the flavor lacks, a form with no exact Caffe equivalent).
    ``identifier_names`` (default: the flavor's) renames layers and blobs to identifiers."""
    return CaffeEmitter(flavor, identifier_names).emit(graph)
