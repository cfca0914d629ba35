"""TF GraphDef → IR: choose inputs and outputs, check support, build IR nodes in dependency order.

Only the part of the graph between the chosen inputs and outputs is imported. Inputs default to the
Placeholders the outputs depend on, outputs to the graph's sinks (nodes whose outputs nothing reads,
ignoring NoOp/Assert and control edges). Any tensor can be named as an input (``--input``): the
graph is cut there. Every unsupported op in that region is reported at once, with node names.

TensorFlow itself is never imported: the GraphDef comes from our own schema.

A shape given with ``--input NAME:SHAPE`` replaces the Placeholder's declared one (a fully
convolutional network converted at another size); the difference is recorded as a note. Shapes are
inferred as each node is built, so a shape that contradicts the weights (4 channels into a
3-channel convolution) fails at that node. A handler or an op registered by a plugin that raises is
reported as a :class:`PluginError` naming the plugin and the node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.errors import (
    IRError,
    PluginError,
    TranspilerError,
    UnsupportedModelError,
    UsageError,
    name_the_place,
)
from transpiler.frontends.nodes import add_source_node
from transpiler.frontends.tf.registry import TF_HANDLERS
from transpiler.frontends.tf.tensors import tensor_to_numpy
from transpiler.ir.core import Graph, Node, Shape, Value
from transpiler.ir.dtypes import DType
from transpiler.ir.ops import can_evaluate, evaluate
from transpiler.plugins import plugin_of

# TF DataType enum → IR dtype (reference types, +100, map to the same).
TF_DTYPES: dict[int, DType] = {
    1: DType.FLOAT32, 2: DType.FLOAT64, 3: DType.INT32, 4: DType.UINT8, 5: DType.INT16, 6: DType.INT8,
    7: DType.STRING, 8: DType.COMPLEX64, 9: DType.INT64, 10: DType.BOOL, 14: DType.BFLOAT16,
    17: DType.UINT16, 18: DType.COMPLEX128, 19: DType.FLOAT16, 22: DType.UINT32, 23: DType.UINT64,
}

# Nodes that never compute a tensor anyone converts.
IGNORED_SINK_OPS = frozenset({"NoOp", "Assert", "Const", "Placeholder", "SaveV2", "RestoreV2"})


def tf_dtype(code: int, where: str) -> DType:
    try:
        return TF_DTYPES[code % 100 if code > 100 else code]
    except KeyError:
        raise UnsupportedModelError(f"{where}: TF dtype enum {code} has no IR equivalent") from None


@lru_cache(maxsize=1 << 16)  # the same names are split many times over (a detector's import: 11000 calls)
def split_tensor_name(name: str) -> tuple[str, int]:
    """``"a/b:1"`` → ``("a/b", 1)``; ``"a/b"`` → ``("a/b", 0)``; a leading ``^`` is a control edge."""
    name = name.lstrip("^")
    node, sep, idx = name.rpartition(":")
    if sep and idx.isdigit():
        return node, int(idx)
    return name, 0


@lru_cache(maxsize=1 << 16)
def canonical_tensor_name(name: str) -> str:
    node, idx = split_tensor_name(name)
    return f"{node}:{idx}"


def data_inputs_of(node: Any) -> list[str]:
    """A NodeDef's data inputs (control inputs ``^x`` left out) as canonical tensor names ``node:index``."""
    return [canonical_tensor_name(i) for i in node.input if not i.startswith("^")]


@dataclass
class NodeTable:
    """A GraphDef's nodes by name and their data inputs as canonical tensor names, for a loader that has them at
    hand (the SavedModel reader writes every node) to share with the graph's readers: reading a NodeDef's fields
    back from protobuf costs more than most of what those readers do with them."""

    nodes: dict[str, Any]
    inputs: dict[str, list[str]]


@dataclass
class InputSpec:
    """A requested graph input: a tensor name and an optional shape override."""

    name: str
    shape: tuple[int, ...] | None = None


@dataclass
class ImportContext:
    """What a TF op handler works with (``handler(ctx, node) -> list[Value]``, one value per TF output).

    - ``ctx.input(node, i)`` / ``ctx.inputs(node)``: the IR values of the node's data inputs;
    - ``ctx.static(value)`` / ``ctx.static_input(node, i, what)``: a value's contents when it is computable
      from constants (shapes, axes, paddings), else None / a clear error;
    - ``ctx.attr(node, key, default)``: a NodeDef attribute as a plain Python value; ``ctx.int_list(node, key,
      length)``: an integer list attribute, checked (a malformed node is refused with its name);
    - ``ctx.add(op, node, inputs, attrs)``: add an IR node (its shapes are inferred at once);
      ``ctx.constant(node, array)``: a constant value;
    - ``ctx.where(node)``: ``"<file>: node 'name' (Op)"``, to start error messages.
    """

    graph: Graph
    nodes: Mapping[str, Any]
    source: str
    values: dict[str, Value] = field(default_factory=dict)
    _static: dict[int, np.ndarray | None] = field(default_factory=dict)
    # node → its data inputs as canonical tensor names, as the region walk read them (reading a NodeDef's
    # inputs again for every ctx.input call cost more than most handlers)
    data_inputs: dict[str, list[str]] = field(default_factory=dict)

    # ------------------------------------------------------------- reading inputs
    def _data_inputs(self, node: Any) -> list[str]:
        known = self.data_inputs.get(node.name)
        return known if known is not None else data_inputs_of(node)

    def input(self, node: Any, index: int) -> Value:
        data_inputs = self._data_inputs(node)
        if index >= len(data_inputs):
            raise UnsupportedModelError(f"{self.where(node)}: expected input {index}, node has {len(data_inputs)}")
        return self.values[data_inputs[index]]

    def inputs(self, node: Any) -> list[Value]:
        return [self.values[t] for t in self._data_inputs(node)]

    def static(self, value: Value) -> np.ndarray | None:
        """The value's contents when it is computable from constants and static shapes, else None.

        Walks back through shape arithmetic (Shape, StridedSlice, Pack, Cast...) without changing the
        graph; dead shape nodes are removed later by dead-code elimination.
        """
        key = id(value)
        if key in self._static:
            return self._static[key]
        result: np.ndarray | None = None
        if value.const is not None:
            result = value.const
        elif value.producer is not None:
            node = value.producer
            if node.op == "Shape" and node.inputs[0].shape is not None and None not in node.inputs[0].shape:
                result = np.asarray(node.inputs[0].shape, dtype=node.attrs.get("out_type", DType.INT32).numpy)
            elif can_evaluate(node.op) and node.op not in ("Conv", "Pool"):
                args = [self.static(v) for v in node.inputs]
                if all(a is not None for a in args):
                    outs = evaluate(node, args)  # type: ignore[arg-type]
                    result = outs[node.outputs.index(value)]
        self._static[key] = result
        return result

    def static_input(self, node: Any, index: int, what: str) -> np.ndarray:
        arr = self.static(self.input(node, index))
        if arr is None:
            raise UnsupportedModelError(f"{self.where(node)}: {what} (input {index}) must be constant")
        return arr

    # ---------------------------------------------------------------- building IR
    def add(self, op: str, tf_node: Any, inputs: Sequence[Value], attrs: dict[str, Any] | None = None,
            *, num_outputs: int = 1, suffix: str = "") -> Node:
        """Add an IR node made from ``tf_node``; shape inference runs at once."""
        return add_source_node(self.graph, op, inputs, attrs, name=tf_node.name + suffix, source_name=tf_node.name,
                               where=self.where(tf_node), num_outputs=num_outputs)

    def constant(self, tf_node: Any, array: np.ndarray, suffix: str = "") -> Value:
        return self.graph.constant(tf_node.name + suffix, array)

    def int_list(self, node: Any, key: str, length: int, *, minimum: int = 1,
                 default: list[int] | None = None) -> list[int]:
        """An integer list attribute (strides, ksize, paddings) checked to have ``length`` entries ≥ ``minimum``:
        a malformed node is refused with its name, never met as an IndexError deep in a handler."""
        value = self.attr(node, key, default)
        if (not isinstance(value, list) or len(value) != length
                or not all(isinstance(v, int) and v >= minimum for v in value)):
            raise UnsupportedModelError(f"{self.where(node)}: attribute '{key}' must be {length} integers "
                                        f">= {minimum}, got {value!r}")
        return value

    def where(self, node: Any) -> str:
        return f"{self.source}: node '{node.name}' ({node.op})"

    def attr(self, node: Any, key: str, default: Any = None) -> Any:
        """A NodeDef attribute as a plain Python value (ints, floats, strs, lists, DType)."""
        if key not in node.attr:
            return default
        a = node.attr[key]
        kind = a.WhichOneof("value")
        if kind == "list":
            lst = a.list
            for f in ("i", "f", "s", "b", "type", "shape"):
                items = list(getattr(lst, f))
                if items:
                    return [x.decode() if isinstance(x, bytes) else x for x in items]
            return []
        if kind == "s":
            return a.s.decode()
        if kind == "type":
            return tf_dtype(a.type, self.where(node))
        if kind == "tensor":
            return tensor_to_numpy(a.tensor)
        return getattr(a, kind) if kind else default


_NAMELESS = "the graph has a node without name or op (truncated file?)"


def import_graphdef(
    graphdef: Any,
    *,
    inputs: Sequence[InputSpec] = (),
    outputs: Sequence[str] = (),
    source: str = "<graph>",
    name: str | None = None,
    table: NodeTable | None = None,
) -> Graph:
    """Build the IR graph for the region of ``graphdef`` between ``inputs`` and ``outputs`` (``table``: the
    graph's nodes and inputs, where the caller has them)."""
    # Importing the handler modules registers the built-in ops; a plugin's handler, registered before or
    # after, keeps its place (registry.tf_op).
    from transpiler.frontends.tf import handlers  # noqa: F401

    nodes: dict[str, Any] = table.nodes if table is not None else {n.name: n for n in graphdef.node}
    if "" in nodes:  # (a node without op is refused below, if it is one the outputs need)
        raise UnsupportedModelError(f"{source}: {_NAMELESS}")

    output_names = [canonical_tensor_name(o) for o in outputs] or _default_outputs(nodes)
    if not output_names:
        raise UsageError(f"{source}: nothing to convert: no node computes a result that nobody reads (the graph has "
                         f"{len(nodes)} node(s), only constants, placeholders or no-ops); name one with --output")
    for o in output_names:
        if split_tensor_name(o)[0] not in nodes:
            raise UsageError(f"{source}: --output '{o}' names no node of the graph{_suggest(o, nodes)}")
    input_specs = list(inputs) or [InputSpec(f"{n}:0") for n in _default_inputs(nodes, output_names)]
    input_names = [canonical_tensor_name(s.name) for s in input_specs]
    for spec, tname in zip(input_specs, input_names, strict=True):
        if split_tensor_name(tname)[0] not in nodes:
            raise UsageError(f"{source}: --input '{spec.name}' names no node of the graph{_suggest(tname, nodes)}")

    order, data_inputs = _region(nodes, output_names, set(input_names), source,
                                 table.inputs if table is not None else None)
    unsupported: dict[str, list[str]] = {}
    for n in order:
        op = nodes[n].op
        if not op:
            raise UnsupportedModelError(f"{source}: {_NAMELESS}")
        if op not in TF_HANDLERS and op != "Placeholder":
            unsupported.setdefault(op, []).append(n)
    if unsupported:  # every offender at once, before anything is built or written
        problems = [f"{op}: {len(names)} node(s), e.g. {', '.join(repr(x) for x in names[:3])}"
                    for op, names in sorted(unsupported.items())]
        count = sum(len(v) for v in unsupported.values())
        raise UnsupportedModelError(f"{source}: {count} node(s) use ops with no handler", problems)

    graph = Graph(name or Path(source).stem)
    graph.metadata["source"] = source  # the model file, for messages of later stages (the Caffe emitter)
    ctx = ImportContext(graph, nodes, source, data_inputs=data_inputs)
    for spec, tname in zip(input_specs, input_names, strict=True):
        ctx.values[tname] = _make_input(ctx, spec, tname)
    for node_name in order:
        node = nodes[node_name]
        if f"{node_name}:0" in ctx.values and node_name in {split_tensor_name(t)[0] for t in input_names}:
            continue
        if node.op == "Placeholder":
            raise UsageError(f"{source}: the outputs depend on Placeholder '{node_name}', which is not an input "
                             f"(add --input {node_name})")
        results = _run_handler(ctx, node)
        for i, v in enumerate(results):
            tname = f"{node_name}:{i}"
            v.tf_name = v.tf_name or tname
            ctx.values[tname] = v
    for o in output_names:
        if o not in ctx.values:
            raise UsageError(f"{source}: output '{o}' was not produced (node has fewer outputs)")
    graph.outputs = [ctx.values[o] for o in output_names]
    graph.metadata["tf_outputs"] = list(output_names)
    graph.metadata["tf_inputs"] = list(input_names)
    return graph


def _run_handler(ctx: ImportContext, node: Any) -> list[Value]:
    """Call the node's handler; an unexpected exception names the node, and the plugin if one owns it."""
    try:
        return TF_HANDLERS[node.op](ctx, node)
    except TranspilerError as exc:
        name_the_place(exc, ctx.where(node))
        raise
    except Exception as exc:
        plugin = plugin_of("TF handler", node.op)
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if plugin is not None:
            raise PluginError(f"{ctx.where(node)}: the handler of plugin '{plugin}' failed: {what}") from exc
        raise IRError(f"{ctx.where(node)}: the TF handler for {node.op} failed: {what}") from exc


def _suggest(name: str, nodes: Mapping[str, Any]) -> str:
    base = split_tensor_name(name)[0].rsplit("/", 1)[-1].lower()
    close = [n for n in nodes if base and base in n.lower()][:3]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _default_outputs(nodes: Mapping[str, Any]) -> list[str]:
    consumed = {split_tensor_name(i)[0] for n in nodes.values() for i in n.input if not i.startswith("^")}
    sinks = [n for n, nd in nodes.items() if n not in consumed and nd.op not in IGNORED_SINK_OPS]
    return [f"{s}:0" for s in sinks]


def _default_inputs(nodes: Mapping[str, Any], outputs: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    stack = [split_tensor_name(o)[0] for o in outputs]
    found: list[str] = []
    while stack:
        n = stack.pop()
        if n in seen or n not in nodes:
            continue
        seen.add(n)
        if nodes[n].op == "Placeholder":
            found.append(n)
        stack.extend(split_tensor_name(i)[0] for i in nodes[n].input if not i.startswith("^"))
    return sorted(found)


def _region(nodes: Mapping[str, Any], outputs: Sequence[str], inputs: set[str], source: str,
            known: Mapping[str, list[str]] | None = None) -> tuple[list[str], dict[str, list[str]]]:
    """Nodes needed for ``outputs`` (stopping at ``inputs``), in dependency order (iterative DFS); and the data
    inputs of each node it looked into, as canonical tensor names (from ``known`` where given)."""
    input_nodes = {split_tensor_name(i)[0] for i in inputs if split_tensor_name(i)[1] == 0}
    order: list[str] = []
    data_inputs: dict[str, list[str]] = {}
    state: dict[str, int] = {}
    for out in outputs:
        stack: list[tuple[str, bool]] = [(split_tensor_name(out)[0], False)]
        while stack:
            n, done = stack.pop()
            if done:
                state[n] = 2
                order.append(n)
                continue
            if state.get(n) == 2:
                continue
            if state.get(n) == 1:
                raise UnsupportedModelError(f"{source}: the requested region contains a while-loop: "
                                            f"{_describe_cycle(nodes, n)}; choose --input/--output around it")
            state[n] = 1
            stack.append((n, True))
            if n in input_nodes:
                continue
            reads = data_inputs[n] = known[n] if known is not None else data_inputs_of(nodes[n])
            for i in reversed(reads):
                if i in inputs:
                    continue
                dep = split_tensor_name(i)[0]
                if dep not in nodes:
                    raise UnsupportedModelError(f"{source}: node '{n}' reads '{i}', which is not in the graph")
                if state.get(dep) != 2:
                    stack.append((dep, False))
    return order, data_inputs


def _describe_cycle(nodes: Mapping[str, Any], start: str) -> str:
    """The loop through ``start`` as ``a -> b -> ... -> a`` (networkx, imported only on this error path)."""
    import networkx as nx

    graph = nx.DiGraph()
    for name, node in nodes.items():
        for i in node.input:
            graph.add_edge(split_tensor_name(i)[0], name)
    try:
        cycle = [u for u, _ in nx.find_cycle(graph, start)]
    except nx.NetworkXNoCycle:
        return f"node '{start}'"
    shown = cycle if len(cycle) <= 6 else [*cycle[:3], "...", *cycle[-2:]]
    return " -> ".join(f"'{n}' ({nodes[n].op})" if n in nodes else n for n in [*shown, cycle[0]])


def _make_input(ctx: ImportContext, spec: InputSpec, tname: str) -> Value:
    node_name, _ = split_tensor_name(tname)
    node = ctx.nodes[node_name]
    dtype = ctx.attr(node, "dtype") if node.op == "Placeholder" else None
    if dtype is None:
        dtype = ctx.attr(node, "T") or DType.FLOAT32
    shape: Shape | None = spec.shape
    declared = _declared_shape(node)
    if shape is not None and declared is not None:
        if len(declared) != len(shape):
            raise UsageError(f"{ctx.source}: --input {spec.name}: {len(shape)} dimensions given, but '{node_name}' "
                             f"is declared with {len(declared)} ({_dims(declared)})")
        if any(d is not None and d != s for d, s in zip(declared, shape, strict=True)):
            # Legitimate for fully convolutional networks; a contradiction with the weights fails in shape
            # inference at the first node that sees it.
            ctx.graph.metadata.setdefault("notes", []).append(
                f"input '{node_name}' declared {_dims(declared)}, converted at {_dims(shape)} as asked")
    if shape is None:
        shape = declared
        if shape is None:
            raise UsageError(f"{ctx.source}: input '{node_name}' has no declared shape; "
                             f"give it with --input {node_name}:1x224x224x3")
        if shape and shape[0] is None:
            shape = (1, *shape[1:])  # Caffe needs a concrete batch; 1 is what deploy nets use
        if any(d is None for d in shape):
            raise UsageError(f"{ctx.source}: input '{node_name}' has unknown dimensions ({_dims(shape)}); "
                             f"give the shape with --input {node_name}:1x300x300x3")
    layout = "NHWC" if len(shape) == 4 else None
    value = ctx.graph.add_input(node_name, dtype, shape, layout=layout, tf_name=tname)
    return value


def _dims(shape: Shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def _declared_shape(node: Any) -> Shape | None:
    for key in ("shape", "_output_shapes"):
        if key not in node.attr:
            continue
        a = node.attr[key]
        shp = a.shape if key == "shape" else (a.list.shape[0] if a.list.shape else None)
        if shp is None or shp.unknown_rank:
            return None
        return tuple(None if d.size < 0 else int(d.size) for d in shp.dim)
    return None
