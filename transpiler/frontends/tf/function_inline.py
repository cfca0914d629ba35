"""Inline TensorFlow function calls into one flat GraphDef (what a SavedModel's graph needs).

A SavedModel's outer graph reaches the network only through call nodes (``StatefulPartitionedCall``,
``PartitionedCall``, or a node whose op is a library function's name) whose bodies are
``FunctionDef``\\ s. :func:`inline_calls` replaces every call, recursively, by a copy of the body:

* a body node ``n`` of a call node ``c`` becomes ``c/n`` (nested calls nest the prefixes);
* inside a body, an input is either an argument name (it becomes the tensor the caller passed) or
  ``node:output_arg:index``; the flat output index of ``node`` is ``index`` plus the number of
  tensors of the op's output arguments before ``output_arg`` (an argument is one tensor, or a list
  of ``attr[number_attr]`` tensors or of ``len(attr[type_list_attr])``). The op's arguments come
  from the SavedModel's own op list (``stripped_op_list``) when given; otherwise ops with several
  output arguments (FusedBatchNormV3, TopKV2...) are listed in :data:`OUTPUT_ARGS` and any other
  op is taken to have one output argument (``index`` itself). Nested function calls by name use
  the callee's signature;
* the call's outputs become the tensors the body's ``ret`` map names (aliases resolved at the end,
  so body node order does not matter).

Control inputs (``^node``) are dropped: they only order side effects (variable reads after
restores, ``NoOp`` groups), and none remain once variables are constants. An op with several
output arguments that is not in :data:`OUTPUT_ARGS` is refused by name rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from transpiler.errors import UnsupportedModelError
from transpiler.frontends.tf.proto import tf_graph_pb2

if TYPE_CHECKING:
    from transpiler.frontends.tf.proto import saved_model_pb2

__all__ = ["CALL_OPS", "OUTPUT_ARGS", "InlinedGraph", "inline_calls", "upstream"]

CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})

# Ops whose outputs are several arguments, each one tensor: output argument names in order.
OUTPUT_ARGS: dict[str, tuple[str, ...]] = {
    "FusedBatchNorm": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"),
    "FusedBatchNormV2": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2"),
    "FusedBatchNormV3": ("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2",
                         "reserve_space_3"),
    "Unique": ("y", "idx"),
    "UniqueV2": ("y", "idx"),
    "UniqueWithCounts": ("y", "idx", "count"),
    "UniqueWithCountsV2": ("y", "idx", "count"),
    "ListDiff": ("out", "idx"),
    "FakeQuantWithMinMaxVarsGradient": ("backprops_wrt_input", "backprop_wrt_min", "backprop_wrt_max"),
    "QuantizedConv2D": ("output", "min_output", "max_output"),
    "QuantizedMatMul": ("out", "min_out", "max_out"),
    "Dequantize": ("output",),
    "LSTMBlockCell": ("i", "cs", "f", "o", "ci", "co", "h"),
    "BlockLSTM": ("i", "cs", "f", "o", "ci", "co", "h"),
    "BlockLSTMV2": ("i", "cs", "f", "o", "ci", "co", "h"),
    "TopK": ("values", "indices"),
    "TopKV2": ("values", "indices"),
    "Switch": ("output_false", "output_true"),
    "Merge": ("output", "value_index"),
    "MaxPoolWithArgmax": ("output", "argmax"),
    "NonMaxSuppressionV4": ("selected_indices", "valid_outputs"),
    "NonMaxSuppressionV5": ("selected_indices", "selected_scores", "valid_outputs"),
    "CombinedNonMaxSuppression": ("nmsed_boxes", "nmsed_scores", "nmsed_classes", "valid_detections"),
    "BroadcastGradientArgs": ("r0", "r1"),
    "QuantizeV2": ("output", "output_min", "output_max"),
    "Qr": ("q", "r"),
    "Svd": ("s", "u", "v"),
}  # fmt: skip

_MAX_DEPTH = 64


@dataclass
class InlinedGraph:
    """The flat graph, and where each call node's outputs went (``"call:k"`` → tensor)."""

    graph: tf_graph_pb2.GraphDef
    aliases: dict[str, str] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)  # outer call node → function name
    local_names: dict[str, str] = field(default_factory=dict)  # inlined node → its name in its function
    # call prefix → (function, its ``_implements`` attribute, the tensors passed to it): composite functions
    # (``tf.function(experimental_implements=...)``) whose body is a placeholder for a runtime's own op
    implements: dict[str, tuple[str, tf_graph_pb2.AttrValue, list[str]]] = field(default_factory=dict)
    # node name → its NodeDef in ``graph`` and its inputs (as in ``graph``), in graph order: what readers of the
    # result need without reading each NodeDef back from protobuf
    nodes: dict[str, tf_graph_pb2.NodeDef] = field(default_factory=dict)
    inputs: dict[str, list[str]] = field(default_factory=dict)
    ops: dict[str, str] = field(default_factory=dict)

    def resolve(self, tensor: str) -> str:
        """The tensor of the flat graph that ``tensor`` (a name of the original graph) became."""
        return _chase(self.aliases, _canonical(tensor))


def _canonical(name: str) -> str:
    _, sep, idx = name.rpartition(":")
    return name if sep and idx.isdigit() else f"{name}:0"


def _chase(aliases: dict[str, str], tensor: str) -> str:
    seen = 0
    while tensor in aliases:
        tensor = aliases[tensor]
        seen += 1
        if seen > len(aliases):
            raise UnsupportedModelError(f"function outputs form a cycle at '{tensor}'")
    return tensor


class _Inliner:
    def __init__(self, functions: Mapping[str, tf_graph_pb2.FunctionDef], source: str,
                 op_defs: Mapping[str, tf_graph_pb2.OpDef] | None) -> None:
        self.functions = functions
        self.source = source
        self.op_defs = op_defs
        self.graph = tf_graph_pb2.GraphDef()  # the nodes are copied straight into it (their inputs fixed at the end)
        self.aliases: dict[str, str] = {}
        self.calls: dict[str, str] = {}
        self.local_names: dict[str, str] = {}
        self.implements: dict[str, tuple[str, tf_graph_pb2.AttrValue, list[str]]] = {}
        self.stack: list[str] = []
        # (function, node) → the one output argument it was read through (ops not in OUTPUT_ARGS).
        self._arg_seen: dict[tuple[str, str], str] = {}
        # Per function: its body by node name, and each input text it resolved → (node, flat output index); a
        # function called several times, and a node read by many, are worked out once.
        self._bodies: dict[str, dict[str, tf_graph_pb2.NodeDef]] = {}
        self._refs: dict[tuple[str, str], tuple[str, int]] = {}
        self._op_defaults: dict[str, dict[str, tf_graph_pb2.AttrValue]] = {}
        self._starts: dict[str, dict[str, int]] = {}
        # each node of the result with its name and inputs as written (reading them back from protobuf costs more)
        self.copies: list[tuple[tf_graph_pb2.NodeDef, str, list[str], str]] = []

    def callee(self, node: tf_graph_pb2.NodeDef, op: str | None = None) -> str | None:
        """The function ``node`` (of op ``op``, where the caller has read it) calls, or None."""
        op = node.op if op is None else op
        if op in CALL_OPS:
            return node.attr["f"].func.name
        return op if op in self.functions else None

    def outer(self, graph: tf_graph_pb2.GraphDef, roots: Iterable[str] | None) -> None:
        wanted = None if roots is None else upstream(graph, roots)
        for node in graph.node:
            if wanted is not None and node.name not in wanted:
                continue
            inputs = [i for i in node.input if not i.startswith("^")]
            op = node.op
            name = self.callee(node, op)
            if name is None:
                self._copy(node, node.name, [_canonical(i) for i in inputs], op)
                continue
            self.calls[node.name] = name
            outputs = self.function(name, node.name, [_canonical(i) for i in inputs], node)
            for k, tensor in enumerate(outputs):
                self.aliases[f"{node.name}:{k}"] = tensor

    def function(self, name: str, prefix: str, args: list[str], caller: tf_graph_pb2.NodeDef) -> list[str]:
        fdef = self.functions.get(name)
        where = f"{self.source}: node '{prefix}' ({caller.op})"
        if fdef is None:
            raise UnsupportedModelError(f"{where} calls function '{name}', which is not in the library")
        if name in self.stack or len(self.stack) >= _MAX_DEPTH:
            raise UnsupportedModelError(f"{where}: function '{name}' calls itself (recursion is not supported)")
        sig = fdef.signature
        for arg in sig.input_arg:
            if arg.number_attr or arg.type_list_attr:
                raise UnsupportedModelError(f"{where}: function '{name}' takes a list argument '{arg.name}' "
                                            "(not a concrete function)")
        if len(args) != len(sig.input_arg):
            raise UnsupportedModelError(f"{where} passes {len(args)} inputs to '{name}', which takes "
                                        f"{len(sig.input_arg)}")
        if "_implements" in fdef.attr:
            self.implements[prefix] = (name, fdef.attr["_implements"], list(args))
        self.stack.append(name)
        argmap = {arg.name: tensor for arg, tensor in zip(sig.input_arg, args, strict=True)}
        body = self._bodies.get(name)
        if body is None:
            body = self._bodies[name] = {n.name: n for n in fdef.node_def}

        def ref(text: str, user: str) -> str:
            if text in argmap:
                return argmap[text]
            known = self._refs.get((name, text))
            if known is None:
                node_name, _, rest = text.partition(":")
                producer = body.get(node_name)
                if producer is None:
                    raise UnsupportedModelError(f"{self.source}: in function '{name}', node '{user}' reads "
                                                f"'{text}', which is neither an argument nor a node")
                arg_name, _, idx = rest.partition(":")
                known = self._refs[(name, text)] = (node_name, self.flat_index(producer, arg_name, int(idx or 0),
                                                                                name))
            return f"{prefix}/{known[0]}:{known[1]}"

        for node in fdef.node_def:
            local, op = node.name, node.op
            inputs = [ref(i, local) for i in node.input if not i.startswith("^")]
            callee = self.callee(node, op)
            inner = f"{prefix}/{local}"
            if callee is None:
                self._copy(node, inner, inputs, op)
                self.local_names[inner] = local
                continue
            outputs = self.function(callee, inner, inputs, node)
            for k, tensor in enumerate(outputs):
                self.aliases[f"{inner}:{k}"] = tensor
        results = []
        for arg in sig.output_arg:
            if arg.name not in fdef.ret:
                raise UnsupportedModelError(f"{where}: function '{name}' does not return '{arg.name}'")
            results.append(ref(fdef.ret[arg.name], f"<return {arg.name}>"))
        self.stack.pop()
        return results

    def flat_index(self, producer: tf_graph_pb2.NodeDef, arg_name: str, index: int, function: str) -> int:
        names: Iterable[str] | None = OUTPUT_ARGS.get(producer.op)
        callee = None if producer.op in CALL_OPS else self.functions.get(producer.op)
        if callee is not None:
            names = [a.name for a in callee.signature.output_arg]
        elif self.op_defs is not None and producer.op in self.op_defs:
            start = self._plain_starts(self.op_defs[producer.op]).get(arg_name)
            if start is not None:
                return start + index
            return self._from_op_def(self.op_defs[producer.op], producer, arg_name, index, function)
        elif self.op_defs is not None and producer.op not in CALL_OPS and names is None:
            raise UnsupportedModelError(f"{self.source}: in function '{function}', node '{producer.name}' uses op "
                                        f"{producer.op}, which the SavedModel's op list does not describe")
        if names is None:
            # One output argument (possibly a list): the index within it is the output index.
            previous = self._arg_seen.setdefault((function, producer.name), arg_name)
            if previous != arg_name:
                raise UnsupportedModelError(
                    f"{self.source}: in function '{function}', node '{producer.name}' ({producer.op}) is read "
                    f"through output arguments '{previous}' and '{arg_name}'; this op's outputs are not known")
            return index
        names = list(names)
        if arg_name not in names:
            raise UnsupportedModelError(f"{self.source}: in function '{function}', node '{producer.name}' "
                                        f"({producer.op}) has no output '{arg_name}'")
        return names.index(arg_name) + index

    def _plain_starts(self, op_def: tf_graph_pb2.OpDef) -> dict[str, int]:
        """Output argument → its first output index, for the arguments that only single tensors precede (the
        same for every node of the op); the others depend on the node's attributes (:meth:`_from_op_def`)."""
        starts = self._starts.get(op_def.name)
        if starts is None:
            starts = self._starts[op_def.name] = {}
            for position, arg in enumerate(op_def.output_arg):
                starts[arg.name] = position
                if arg.number_attr or arg.type_list_attr:
                    break
        return starts

    def _from_op_def(self, op_def: tf_graph_pb2.OpDef, producer: tf_graph_pb2.NodeDef, arg_name: str, index: int,
                     function: str) -> int:
        """Output ``index`` of argument ``arg_name``: after all outputs of the arguments before it; an
        argument holds ``attr[number_attr]`` tensors, ``len(attr[type_list_attr])``, or one."""
        defaults = self._op_defaults.get(op_def.name)
        if defaults is None:
            defaults = self._op_defaults[op_def.name] = {a.name: a.default_value for a in op_def.attr
                                                         if a.HasField("default_value")}

        def attr(key: str) -> tf_graph_pb2.AttrValue:
            if key in producer.attr:
                return producer.attr[key]
            if key in defaults:
                return defaults[key]
            raise UnsupportedModelError(f"{self.source}: in function '{function}', node '{producer.name}' "
                                        f"({producer.op}) has no attribute '{key}'")

        flat = 0
        for arg in op_def.output_arg:
            if arg.name == arg_name:
                return flat + index
            if arg.number_attr:
                flat += int(attr(arg.number_attr).i)
            elif arg.type_list_attr:
                flat += len(attr(arg.type_list_attr).list.type)
            else:
                flat += 1
        raise UnsupportedModelError(f"{self.source}: in function '{function}', node '{producer.name}' "
                                    f"({producer.op}) has no output '{arg_name}'")

    def _copy(self, node: tf_graph_pb2.NodeDef, name: str, inputs: list[str], op: str) -> None:
        copy = self.graph.node.add()
        copy.CopyFrom(node)
        copy.name = name
        del copy.input[:]
        copy.input.extend(inputs)
        self.copies.append((copy, name, inputs, op))


def upstream(graph: tf_graph_pb2.GraphDef | saved_model_pb2.GraphIndex, roots: Iterable[str]) -> set[str]:
    """Names of the outer nodes ``roots`` (nodes or tensors) depend on, control inputs included."""
    inputs = {n.name: n.input for n in graph.node}
    seen: set[str] = set()
    stack = [r.lstrip("^").rsplit(":", 1)[0] if ":" in r else r.lstrip("^") for r in roots]
    while stack:
        name = stack.pop()
        if name in seen or name not in inputs:
            continue
        seen.add(name)
        stack.extend(i.lstrip("^").split(":", 1)[0] for i in inputs[name])
    return seen


def inline_calls(graph: tf_graph_pb2.GraphDef | saved_model_pb2.GraphIndex, source: str = "<graph>",
                 roots: Iterable[str] | None = None, op_defs: Mapping[str, tf_graph_pb2.OpDef] | None = None,
                 functions: Mapping[str, tf_graph_pb2.FunctionDef] | None = None) -> InlinedGraph:
    """Return ``graph`` with every function call replaced by the function's body, recursively.

    With ``roots`` (node or tensor names), only the outer nodes they depend on are kept and inlined.
    ``op_defs`` (a SavedModel's ``stripped_op_list``) gives every op's output arguments exactly;
    without it, :data:`OUTPUT_ARGS` and the one-argument rule are used.
    Inputs of the result are canonical ``node:index`` names with every alias resolved; the result
    carries no library. Tensors of the original graph map to the result via :meth:`InlinedGraph.resolve`.
    ``functions`` (name → FunctionDef) stands in for ``graph.library``: a SavedModel's, decoded as called.
    """
    if functions is None:
        assert isinstance(graph, tf_graph_pb2.GraphDef), "a GraphIndex comes with its functions"
        functions = {f.signature.name: f for f in graph.library.function}
    inliner = _Inliner(functions, source, op_defs)
    inliner.outer(graph, roots)
    out = inliner.graph
    out.versions.CopyFrom(graph.versions)
    nodes: dict[str, tf_graph_pb2.NodeDef] = {}
    node_inputs: dict[str, list[str]] = {}
    ops: dict[str, str] = {}
    aliases = inliner.aliases
    for node, name, inputs, op in inliner.copies:
        if name in nodes:
            raise UnsupportedModelError(f"{source}: inlining functions makes two nodes named '{name}'")
        nodes[name] = node
        if any(i in aliases for i in inputs):
            inputs = [_chase(aliases, i) for i in inputs]
            del node.input[:]
            node.input.extend(inputs)
        node_inputs[name] = inputs
        ops[name] = op
    implements = {call: (name, attr, [_chase(inliner.aliases, t) for t in args])
                  for call, (name, attr, args) in inliner.implements.items()}
    return InlinedGraph(out, inliner.aliases, inliner.calls, inliner.local_names, implements, nodes, node_inputs,
                        ops)
