"""SavedModel directory (or its ``saved_model.pb``) → a flat GraphDef with the weights as constants.

No TensorFlow: ``saved_model.pb`` is parsed with our schema (``proto/saved_model.proto``) and the
checkpoint under ``variables/`` with :mod:`checkpoint`. The file is read as an index: each function body is
decoded when first called (:class:`FunctionLibrary`; a TF2 export's library is mostly training, saving and
restoring functions no signature calls). The steps:

1. pick the MetaGraphDef (the one tagged ``serve`` when there are several) and the signature
   (``serving_default`` unless one is named); its inputs and outputs name tensors of the outer
   graph, and its keys (``keras_tensor``, ``output_0``...) are kept to accept them as names;
2. inline the function calls the signature's outputs and the restore op depend on
   (:mod:`function_inline`); inlined nodes keep their name inside their function where that is
   unique in the result (``model/conv1/Conv2D``), else get the call's prefix;
3. bind each variable (``VarHandleOp``, or a TF1 ``VariableV2``) to its checkpoint key, two ways:

   * **object graph** (what ``tf.saved_model.load`` does): a call node's last inputs are the
     variables its function captures, and ``object_graph_def.concrete_functions[f].bound_inputs``
     names their object-graph nodes; node *i* of the checkpoint's own object graph (stored under
     ``_CHECKPOINTABLE_OBJECT_GRAPH``) holds the key of that variable's ``VARIABLE_VALUE``;
   * **restore subgraph** (what a TF1 session loader runs): ``saver_def.restore_op_name`` leads to
     ``RestoreV2`` nodes; output *k* of one, through ``Identity`` nodes, feeds an
     ``AssignVariableOp`` (or ``Assign``) on a variable, and element *k* of its ``tensor_names``
     constant is the key (element *k* of ``shape_and_slices``, when set, names the part of the
     stored tensor a TF1 partitioned variable's piece holds: ``"d0 d1 start,length:-"``).

   Both are exact; the object graph is used where it binds a variable, the restore subgraph for
   the rest (it is inlined only then: TF2 SavedModels do not need it). A binding whose checkpoint
   entry disagrees with the variable's declared dtype or shape is refused;
4. turn every ``ReadVariableOp`` of a bound variable (and every bound ``VariableV2``) into a
   ``Const`` holding the checkpoint value, and keep only the nodes the signature's outputs need.

Resource ops other than reads (``ResourceGather``...) and functional control flow (``While``,
``If``, whose bodies are not inlined) stay as they are, so the importer reports them by name.
A SavedModel and a frozen graph of the same signature give the same net (tested bit for bit).

Every problem raises a :class:`~transpiler.errors.TranspilerError` naming the file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError

from transpiler.errors import ModelLoadError, UnsupportedModelError, UsageError
from transpiler.frontends.tf.checkpoint import Checkpoint
from transpiler.frontends.tf.function_inline import InlinedGraph, inline_calls, upstream
from transpiler.frontends.tf.importer import InputSpec, NodeTable, import_graphdef
from transpiler.frontends.tf.loader import looks_like_text
from transpiler.frontends.tf.proto import saved_model_pb2, tf_graph_pb2
from transpiler.frontends.tf.tensors import numpy_to_tensor, tensor_to_numpy
from transpiler.ir.core import Graph

__all__ = ["SavedModelGraph", "find_saved_model", "import_saved_model", "load_saved_model"]

DEFAULT_SIGNATURE = "serving_default"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_INIT_SIGNATURE = "__saved_model_init_op"
_REF_VARIABLE_OPS = ("VariableV2", "Variable")
_VARIABLE_OPS = frozenset({"VarHandleOp", *_REF_VARIABLE_OPS})
_PASS_THROUGH = frozenset({"Identity", "Snapshot"})

Binding = Literal["auto", "object", "restore"]


@dataclass
class SavedModelGraph:
    """A signature of a SavedModel as a plain GraphDef the importer takes."""

    graph: tf_graph_pb2.GraphDef
    source: str
    signature: str
    inputs: dict[str, str]  # signature key → tensor of ``graph``
    outputs: dict[str, str]
    # variable node → (checkpoint key, "object" or "restore")
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)
    signatures: list[str] = field(default_factory=list)
    inlined: InlinedGraph | None = None
    # signature key → tensor as the SignatureDef names it (in the outer graph, before inlining)
    declared_inputs: dict[str, str] = field(default_factory=dict)
    declared_outputs: dict[str, str] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)  # inlined node → its shorter name in ``graph``
    # the graph's function library (bodies of the while-loops and conditionals left in ``graph``)
    library: Mapping[str, tf_graph_pb2.FunctionDef] = field(default_factory=dict)
    # composite functions called (``_implements``), as in InlinedGraph.implements, tensors of ``graph``
    implements: dict[str, tuple[str, tf_graph_pb2.AttrValue, list[str]]] = field(default_factory=dict)
    # ``graph``'s nodes and inputs, while ``graph`` is as loaded (None once it is changed)
    table: NodeTable | None = None

    def tensor(self, name: str, kind: Literal["input", "output"]) -> str:
        """A signature key, a tensor of the outer graph, or one of ``graph``, as a tensor of ``graph``."""
        keys = self.inputs if kind == "input" else self.outputs
        if name in keys:
            return keys[name]
        return _renamed(self.inlined.resolve(name), self.renames) if self.inlined is not None else name


def import_saved_model(path: str | os.PathLike[str], *, inputs: Sequence[InputSpec] = (),
                       outputs: Sequence[str] = (), signature: str | None = None,
                       loaded: SavedModelGraph | None = None) -> Graph:
    """Load a SavedModel's signature and import it as IR (the signature's tensors by default).

    ``inputs``/``outputs`` may name signature keys (``keras_tensor``, ``output_0``) or tensors. ``loaded``: the
    signature already read by :func:`load_saved_model` (it is not read twice).
    """
    model = loaded if loaded is not None else load_saved_model(path, signature)
    specs = [InputSpec(model.tensor(s.name, "input"), s.shape) for s in inputs] or [
        InputSpec(t) for t in model.inputs.values()]
    names = [model.tensor(o, "output") for o in outputs] or list(model.outputs.values())
    p = Path(path)
    name = p.name if p.is_dir() else p.resolve().parent.name
    graph = import_graphdef(model.graph, inputs=specs, outputs=names, source=model.source, name=name,
                            table=model.table)
    # Report the tensors by the names the SignatureDef gives them (what saved_model_cli shows), not by
    # the names they got when the calls were inlined.
    for kind, resolved, declared in (("tf_inputs", model.inputs, model.declared_inputs),
                                     ("tf_outputs", model.outputs, model.declared_outputs)):
        flat = {resolved[k]: t for k, t in declared.items()}
        graph.metadata[kind] = [flat.get(t, t) for t in graph.metadata.get(kind, [])]
    graph.metadata["signature"] = {"name": model.signature, "inputs": dict(model.declared_inputs),
                                   "outputs": dict(model.declared_outputs)}
    return graph


def find_saved_model(path: str | os.PathLike[str]) -> Path | None:
    """The ``saved_model.pb`` (or ``.pbtxt``) that ``path`` is or holds, decided by content; None for
    anything else."""
    p = Path(path)
    if p.is_dir():
        for name in ("saved_model.pb", "saved_model.pbtxt"):
            if (p / name).is_file():
                return p / name
        return None
    if not p.is_file():
        return None
    try:
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    # Binary: a SavedModel starts with field 1 (varint schema version, tag 0x08), which no GraphDef
    # has, or field 2 (meta_graphs, 0x12), like a GraphDef without nodes but with a library; a
    # GraphDef with nodes starts with 0x0a.
    if head[:1] == b"\x08":
        return p
    if head[:1] == b"\x12":
        return p if _parse_saved_model(p, quiet=True) is not None else None
    if looks_like_text(head):
        text = head.decode("utf-8", "ignore").lstrip("\ufeff")
        words = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        first = next((w for w in words if w), "")
        if first.startswith(("saved_model_schema_version", "meta_graphs")):
            return p
    return None


def _parse_saved_model(pb_path: Path, quiet: bool = False) -> saved_model_pb2.SavedModelIndex | None:
    """The file as an index: function bodies are decoded only when asked for (:class:`FunctionLibrary`)."""
    model = saved_model_pb2.SavedModelIndex()
    try:
        data = pb_path.read_bytes()
        if looks_like_text(data):  # the text format knows no unknown fields: decoded whole, then indexed
            full = saved_model_pb2.SavedModel()
            text_format.Parse(data.decode("utf-8-sig"), full)
            model.ParseFromString(full.SerializeToString())
        else:
            model.ParseFromString(data)
    except (DecodeError, OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        if quiet:
            return None
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelLoadError(f"cannot load SavedModel '{pb_path}': cannot decode it ({reason}); the file is "
                             "truncated or corrupt") from None
    if not model.meta_graphs or not any(m.graph_def.node for m in model.meta_graphs):
        if quiet:
            return None
        raise ModelLoadError(f"cannot load SavedModel '{pb_path}': it holds no graph")
    return model


class FunctionLibrary(Mapping[str, tf_graph_pb2.FunctionDef]):
    """A SavedModel's function library by name, each body decoded when first asked for (most of a TF2
    export's functions are never called by a signature)."""

    def __init__(self, index: saved_model_pb2.FunctionLibraryIndex, source: str) -> None:
        self._headers = {f.signature.name: f for f in index.function}
        self._decoded: dict[str, tf_graph_pb2.FunctionDef] = {}
        self._source = source

    def __getitem__(self, name: str) -> tf_graph_pb2.FunctionDef:
        decoded = self._decoded.get(name)
        if decoded is None:
            decoded = tf_graph_pb2.FunctionDef()
            try:  # the index kept the body as unknown fields, which protobuf writes back verbatim
                decoded.ParseFromString(self._headers[name].SerializeToString())
            except DecodeError:
                raise ModelLoadError(f"cannot load SavedModel '{self._source}': cannot decode function '{name}'; "
                                     "the file is truncated or corrupt") from None
            self._decoded[name] = decoded
        return decoded

    def __contains__(self, name: object) -> bool:
        return name in self._headers

    def get(self, name: str, default: Any = None) -> Any:  # Mapping's would raise and catch a KeyError per miss
        return self[name] if name in self._headers else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


def _meta_graph(model: saved_model_pb2.SavedModelIndex) -> saved_model_pb2.MetaGraphIndex:
    for meta in model.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return meta
    return model.meta_graphs[0]


def _choose_signature(meta: saved_model_pb2.MetaGraphIndex, name: str | None, source: str) -> str:
    usable = sorted(k for k in meta.signature_def if k != _INIT_SIGNATURE)
    if name is not None:
        if name not in meta.signature_def:
            raise UsageError(f"{source}: no signature '{name}' (it has: {', '.join(usable) or 'none'})")
        return name
    if DEFAULT_SIGNATURE in meta.signature_def:
        return DEFAULT_SIGNATURE
    if len(usable) == 1:
        return usable[0]
    raise UsageError(f"{source}: no '{DEFAULT_SIGNATURE}' signature; choose one with --signature "
                     f"({', '.join(usable) or 'there are none'})")


def load_saved_model(path: str | os.PathLike[str], signature: str | None = None, *,
                     binding: Binding = "auto") -> SavedModelGraph:
    """Load the SavedModel at ``path`` (its directory or ``saved_model.pb``) for ``signature``.

    ``binding`` chooses how variables find their checkpoint values (see the module docstring);
    ``"auto"`` uses the object graph and falls back to the restore subgraph.
    """
    pb_path = find_saved_model(path) if Path(path).is_dir() else Path(path)
    shown = os.fspath(path)
    if pb_path is None or not pb_path.is_file():
        raise ModelLoadError(f"cannot load SavedModel '{shown}': no saved_model.pb in it")
    model = _parse_saved_model(pb_path)
    assert model is not None
    meta = _meta_graph(model)
    name = _choose_signature(meta, signature, shown)
    sig = meta.signature_def[name]
    for kind, infos in (("input", sig.inputs), ("output", sig.outputs)):
        for key, info in infos.items():
            if info.WhichOneof("encoding") != "name":
                raise UnsupportedModelError(f"{shown}: signature '{name}' {kind} '{key}' is a sparse or "
                                            "composite tensor, which is not supported")

    signature_outputs = [info.name for info in sig.outputs.values()]
    op_list = meta.meta_info_def.stripped_op_list.op
    op_defs = {op.name: op for op in op_list} if op_list else None
    # Only what the signature needs; and the restore subgraph (it binds variables to keys for a TF1 loader), only
    # where the object graph does not bind every variable read (TF2 SavedModels never need it: skipping it halves
    # the nodes of a MobileNetV2 to inline).
    restore = [meta.saver_def.restore_op_name] if meta.saver_def.restore_op_name else []
    attempts = (False, True) if restore and binding != "restore" else (bool(restore),)
    checkpoint: Checkpoint | None = None
    library = FunctionLibrary(meta.graph_def.library, shown)
    for attempt, with_restore in enumerate(attempts):
        inlined = inline_calls(meta.graph_def, shown, signature_outputs + (restore if with_restore else []), op_defs,
                               library)
        if attempt == 0:
            _refuse_writes(meta.graph_def, inlined, signature_outputs, name, shown)
        inputs = {k: inlined.resolve(v.name) for k, v in sorted(sig.inputs.items())}
        outputs = {k: inlined.resolve(v.name) for k, v in sorted(sig.outputs.items())}
        nodes = inlined.nodes
        # A composite function's body stands in for a runtime's op (TFLite_Detection_PostProcess returns
        # constants in TF): what is passed to it is kept, for the converter to lower the call from its attributes.
        roots = [*outputs.values(), *(t for _, _, args in inlined.implements.values() for t in args)]
        # Resource variables are read by ReadVariableOp; a TF1 ref variable's own output is its value. The reads
        # become constants, so what they read is not needed.
        needed = _reachable(inlined.inputs, inlined.ops, roots, stop={t.rsplit(":", 1)[0] for t in inputs.values()},
                            leaf_ops=_READ_OPS)
        reads = {n: _read_variable(nodes, n) for n in sorted(needed) if inlined.ops[n] in _READ_OPS}
        bindings: dict[str, tuple[str, str]] = {}
        parts: dict[str, str] = {}  # variable → slice spec, for the parts of a TF1 partitioned variable
        if not reads:
            break
        checkpoint = checkpoint or _open_checkpoint(pb_path.parent, shown)
        if binding in ("auto", "restore") and with_restore:
            for var, (key, spec) in _restore_bindings(nodes).items():
                bindings[var] = (key, "restore")
                if spec:
                    parts[var] = spec
        if binding in ("auto", "object"):
            for var, key in _object_bindings(meta, inlined, nodes, checkpoint, shown).items():
                bindings[var] = (key, "object")
                parts.pop(var, None)
        if all(var in bindings for var in reads.values()):
            break
    frozen = _bound_reads(nodes, reads, bindings, shown)
    graph = tf_graph_pb2.GraphDef()
    graph.versions.CopyFrom(meta.graph_def.versions)
    # The reads are frozen in the new graph, so that the weights are written into it once (not into the inlined
    # graph and copied).
    names = [n for n in nodes if n in needed]  # in graph order
    graph.node.extend(nodes[n] for n in names)
    if frozen:
        assert checkpoint is not None
        _freeze_variables(graph, names, frozen, nodes, bindings, parts, checkpoint, shown)
    renames = _short_names(names, inlined.local_names)
    inputs_now = {n: [] if n in frozen else inlined.inputs[n] for n in names}  # a frozen read has none
    table = _rename(graph, names, renames, inputs_now)
    usable = sorted(k for k in meta.signature_def if k != _INIT_SIGNATURE)
    return SavedModelGraph(graph, shown, name, {k: _renamed(t, renames) for k, t in inputs.items()},
                           {k: _renamed(t, renames) for k, t in outputs.items()}, bindings, usable, inlined,
                           {k: v.name for k, v in sorted(sig.inputs.items())},
                           {k: v.name for k, v in sorted(sig.outputs.items())}, renames,
                           library,
                           {call: (f, attr, [_renamed(t, renames) for t in args])
                            for call, (f, attr, args) in inlined.implements.items()}, table)


def _short_names(names: list[str], local: dict[str, str]) -> dict[str, str]:
    """Inlined node → its name inside its function, where that name is unique in the graph.

    ``StatefulPartitionedCall_1/StatefulPartitionedCall/model/conv1/Conv2D`` becomes
    ``model/conv1/Conv2D``; names that several functions share (their ``Identity``) keep the prefix.
    """
    short = [local.get(n, n) for n in names]
    counts = Counter(short)
    taken = set(names) - set(local)  # outer nodes keep their names
    return {n: s for n, s in zip(names, short, strict=True) if n != s and counts[s] == 1 and s not in taken}


def _renamed(tensor: str, renames: dict[str, str]) -> str:
    node, sep, index = tensor.rpartition(":")
    return f"{renames.get(node, node)}:{index}" if sep else renames.get(tensor, tensor)


def _rename(graph: tf_graph_pb2.GraphDef, names: list[str], renames: dict[str, str],
            inputs: dict[str, list[str]]) -> NodeTable:
    """Apply ``renames`` to ``graph``, whose nodes are ``names`` (in order) with ``inputs`` as they are now; the
    renamed graph's table."""
    table = NodeTable({}, {})
    for node, name in zip(graph.node, names, strict=True):
        reads = inputs[name]
        renamed = [_renamed(i, renames) for i in reads]
        if renamed != reads:
            del node.input[:]
            node.input.extend(renamed)
        if name in renames:
            name = node.name = renames[name]
        table.nodes[name] = node
        table.inputs[name] = renamed
    return table


_READ_OPS = frozenset({"ReadVariableOp", *_REF_VARIABLE_OPS})
_STATELESS_SCATTER = frozenset({"ScatterNd", "ScatterNdNonAliasingAdd"})


@lru_cache(maxsize=1024)
def _writes_state(op: str) -> bool:
    """Ops that change a variable: assignments, optimizer updates, scatters into variables."""
    if op.startswith("Scatter"):
        return op not in _STATELESS_SCATTER
    return op.startswith(("Assign", "ResourceApply", "ResourceSparseApply", "ResourceScatter", "Apply",
                          "SparseApply")) or op == "ResourceStridedSliceAssign"


def _refuse_writes(outer: saved_model_pb2.GraphIndex, inlined: InlinedGraph, outputs: list[str], signature: str,
                   shown: str) -> None:
    """A signature that writes variables (``v.assign_add(1)`` before ``x * v``) would compute with the
    updated value in TF; with every read made a constant of the stored one, it would be silently wrong."""
    region = upstream(outer, outputs)  # outer nodes, control inputs included
    calls = tuple(f"{c}/" for c in inlined.calls if c in region)
    writers = [n for n in outer.node if n.name in region and _writes_state(n.op)]
    writers += [inlined.nodes[n] for n, op in inlined.ops.items() if _writes_state(op) and n.startswith(calls)] \
        if calls else []
    if writers:
        shown_nodes = ", ".join(f"'{n.name}' ({n.op})" for n in writers[:3])
        raise UnsupportedModelError(f"{shown}: signature '{signature}' writes variables ({len(writers)} node(s), "
                                    f"e.g. {shown_nodes}); converted with stored values it would compute "
                                    "something else, so it is not supported")


def _open_checkpoint(directory: Path, shown: str) -> Checkpoint:
    prefix = directory / "variables" / "variables"
    if not Path(f"{prefix}.index").is_file():
        raise ModelLoadError(f"cannot load SavedModel '{shown}': the model reads variables, but "
                             f"'{prefix}.index' is missing")
    return Checkpoint(prefix)


def _reachable(inputs: dict[str, list[str]], ops: dict[str, str], tensors: Iterable[str], stop: set[str],
               leaf_ops: frozenset[str] = frozenset()) -> set[str]:
    """The nodes ``tensors`` depend on (``inputs``, ``ops``: each node's), not looking past the nodes ``stop``
    names or whose op is in ``leaf_ops``."""
    seen: set[str] = set()
    stack = [t.rsplit(":", 1)[0] for t in tensors]
    while stack:
        name = stack.pop()
        if name in seen or name not in inputs:
            continue
        seen.add(name)
        if name in stop or ops[name] in leaf_ops:
            continue
        stack.extend(i.rsplit(":", 1)[0] for i in inputs[name])
    return seen


def _through(nodes: dict[str, tf_graph_pb2.NodeDef], tensor: str) -> str:
    """Follow ``tensor`` back through Identity nodes."""
    for _ in range(len(nodes) + 1):
        node = nodes.get(tensor.rsplit(":", 1)[0])
        if node is None or node.op not in _PASS_THROUGH or not node.input:
            return tensor
        tensor = node.input[0]
    return tensor


def _variable(nodes: dict[str, tf_graph_pb2.NodeDef], tensor: str) -> str | None:
    name = _through(nodes, tensor).rsplit(":", 1)[0]
    node = nodes.get(name)
    return name if node is not None and node.op in _VARIABLE_OPS else None


def _restore_bindings(nodes: dict[str, tf_graph_pb2.NodeDef]) -> dict[str, tuple[str, str]]:
    """variable → (key, slice spec or ""), from RestoreV2 outputs assigned to variables."""
    found: dict[str, tuple[str, str]] = {}
    names_cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for node in nodes.values():
        if node.op not in ("AssignVariableOp", "Assign") or len(node.input) < 2:
            continue
        var = _variable(nodes, node.input[0])
        source = _through(nodes, node.input[1])
        restore_name, _, index = source.rpartition(":")
        restore = nodes.get(restore_name)
        if var is None or restore is None or restore.op != "RestoreV2" or len(restore.input) < 3:
            continue
        if restore_name not in names_cache:
            const = nodes.get(_through(nodes, restore.input[1]).rsplit(":", 1)[0])
            if const is None or const.op != "Const":
                continue
            slices = nodes.get(_through(nodes, restore.input[2]).rsplit(":", 1)[0])
            specs = tensor_to_numpy(slices.attr["value"].tensor).reshape(-1) \
                if slices is not None and slices.op == "Const" else None
            names_cache[restore_name] = (tensor_to_numpy(const.attr["value"].tensor).reshape(-1), specs)
        keys, specs = names_cache[restore_name]
        k = int(index or 0)
        if k < len(keys):
            # A damaged file may hold any bytes here: an undecodable key then matches no checkpoint entry and
            # is reported as unbound, naming the file, like any other bad key.
            spec = bytes(specs[k]).decode("utf-8", "replace") if specs is not None and k < len(specs) else ""
            found[var] = (bytes(keys[k]).decode("utf-8", "replace"), spec)
    return found


def _slice_of(value: np.ndarray, spec: str, where: str) -> np.ndarray:
    """The part of ``value`` a TF slice spec names: ``"d0 d1 ... start,length:...:-"`` (``-`` = all)."""
    *dims, extents = spec.split(" ")
    ranges = extents.split(":")
    try:
        fits = tuple(int(d) for d in dims) == value.shape and len(ranges) == value.ndim
        index = [slice(None) if text == "-" else _extent(text) for text in ranges] if fits else []
    except ValueError:
        fits = False
    if not fits:
        raise ModelLoadError(f"{where}: slice '{spec}' does not fit the stored shape {list(value.shape)}")
    return value[tuple(index)]


def _extent(text: str) -> slice:
    start, length = (int(t) for t in text.split(","))
    return slice(start, start + length)


def _object_bindings(meta: saved_model_pb2.MetaGraphIndex, inlined: InlinedGraph,
                     nodes: dict[str, tf_graph_pb2.NodeDef], checkpoint: Checkpoint, shown: str) -> dict[str, str]:
    """variable → key, from the captures of each called function (bound_inputs) and the checkpoint's
    object graph."""
    functions = meta.object_graph_def.concrete_functions
    if not functions or OBJECT_GRAPH_KEY not in checkpoint:
        return {}
    raw = checkpoint.read(OBJECT_GRAPH_KEY).reshape(-1)
    trackable = saved_model_pb2.TrackableObjectGraph()
    try:
        trackable.ParseFromString(bytes(raw[0]))
    except DecodeError:
        raise ModelLoadError(f"{checkpoint.index_path}: cannot decode the object graph "
                             f"'{OBJECT_GRAPH_KEY}'") from None
    saved_nodes = meta.object_graph_def.nodes
    outer = {n.name: n for n in meta.graph_def.node}
    found: dict[str, str] = {}
    for call, function in inlined.calls.items():
        bound = functions[function].bound_inputs if function in functions else []
        if not bound:
            continue
        data_inputs = [i for i in outer[call].input if not i.startswith("^")]
        if len(bound) > len(data_inputs):
            continue
        for tensor, node_id in zip(data_inputs[-len(bound):], bound, strict=True):
            var = _variable(nodes, inlined.resolve(tensor))
            if var is None or not 0 <= node_id < min(len(trackable.nodes), len(saved_nodes)):
                continue
            if saved_nodes[node_id].WhichOneof("kind") != "variable":
                continue
            keys = [a.checkpoint_key for a in trackable.nodes[node_id].attributes if a.name == "VARIABLE_VALUE"]
            if len(keys) == 1:
                found[var] = keys[0]
    return found


def _read_variable(nodes: dict[str, tf_graph_pb2.NodeDef], read: str) -> str | None:
    """The variable a ReadVariableOp reads (a VariableV2 is its own read); None if it is not found."""
    node = nodes[read]
    return read if node.op in _REF_VARIABLE_OPS else _variable(nodes, node.input[0] if node.input else "")


def _bound_reads(nodes: dict[str, tf_graph_pb2.NodeDef], reads: dict[str, str | None],
                 bindings: dict[str, tuple[str, str]], shown: str) -> dict[str, str]:
    """``reads`` (variable read → the variable) where every variable is bound; refuses reads of unbound ones."""
    unbound = []
    for name, var in reads.items():
        if var is None or var not in bindings:
            node = nodes[name]
            what = f"variable '{var}'" if var else f"'{node.input[0] if node.input else '?'}'"
            unbound.append(f"node '{name}' ({node.op}) reads {what}")
    if unbound:
        raise UnsupportedModelError(f"{shown}: {len(unbound)} variable read(s) have no value in the checkpoint",
                                    unbound[:10])
    return {name: var for name, var in reads.items() if var is not None}


def _freeze_variables(graph: tf_graph_pb2.GraphDef, names: list[str], frozen: dict[str, str],
                      nodes: dict[str, tf_graph_pb2.NodeDef], bindings: dict[str, tuple[str, str]],
                      parts: dict[str, str], checkpoint: Checkpoint, shown: str) -> None:
    """Make each variable read of ``graph`` (``frozen``: read → variable) a Const of the variable's checkpoint
    value. A numeric tensor's checkpoint bytes are its ``tensor_content`` as they are (decoding them to numpy and
    encoding them back cost a MobileNetV2 conversion 0.05 s)."""
    written: dict[str, tf_graph_pb2.TensorProto] = {}  # variable → the tensor its value was first written into
    for index, name in enumerate(names):  # (``names``: the nodes' names, in order)
        var = frozen.get(name)
        if var is None:
            continue
        node = graph.node[index]
        key = bindings[var][0]
        entry = checkpoint.entries.get(key)
        if entry is None:
            raise ModelLoadError(f"{shown}: variable '{var}' is restored from '{key}', which is not in "
                                 f"{checkpoint.index_path}")
        read_as = node.attr["dtype"].type % 100 if "dtype" in node.attr else entry.dtype
        if read_as != entry.dtype:
            raise ModelLoadError(f"{shown}: node '{node.name}' reads variable '{var}' as {_dtype_label(read_as)}, "
                                 f"but the checkpoint holds {_dtype_label(entry.dtype)}")
        del node.input[:]
        node.op = "Const"
        shapes = tf_graph_pb2.AttrValue()
        had_shapes = "_output_shapes" in node.attr  # the one attribute a Const keeps
        if had_shapes:
            shapes.CopyFrom(node.attr["_output_shapes"])
        node.ClearField("attr")
        if had_shapes:
            node.attr["_output_shapes"].CopyFrom(shapes)
        node.attr["dtype"].type = entry.dtype
        tensor = node.attr["value"].tensor
        if var in written:
            tensor.CopyFrom(written[var])
        else:
            _variable_value(tensor, nodes[var], var, key, parts.get(var), checkpoint, shown)
            written[var] = tensor


def _variable_value(into: tf_graph_pb2.TensorProto, var_node: tf_graph_pb2.NodeDef, var: str, key: str,
                    part: str | None, checkpoint: Checkpoint, shown: str) -> None:
    """Write the checkpoint value of ``var`` (restored from ``key``; ``part``: its slice spec, for one part of a
    partitioned variable) into ``into``, checked against the variable's declared dtype and shape."""
    content = None if part else checkpoint.read_content(key)
    if content is not None:
        raw, stored, shape = content
        _check_declared(var_node, shape, stored, var, key, shown)
        into.dtype = stored  # type: ignore[assignment]
        into.tensor_content = raw
        for size in shape:
            into.tensor_shape.dim.add().size = size
        return
    value = checkpoint.read(key)
    if part:
        value = np.ascontiguousarray(_slice_of(value, part, f"{shown}: variable '{var}'"))
    stored = checkpoint.entries[key].dtype
    _check_declared(var_node, value.shape, stored, var, key, shown)
    into.CopyFrom(numpy_to_tensor(value))


def _dtype_label(dtype: int) -> str:
    return tf_graph_pb2.DataType.Name(dtype) if dtype in tf_graph_pb2.DataType.values() else str(dtype)


def _check_declared(var_node: tf_graph_pb2.NodeDef, shape: tuple[int, ...], stored: int, var: str, key: str,
                    shown: str) -> None:
    """The checkpoint value must have the dtype and shape the graph declares for the variable."""
    if "shape" in var_node.attr and not var_node.attr["shape"].shape.unknown_rank:
        declared = tuple(int(d.size) for d in var_node.attr["shape"].shape.dim)
        if len(declared) != len(shape) or any(d >= 0 and d != s for d, s in zip(declared, shape, strict=True)):
            raise ModelLoadError(f"{shown}: variable '{var}' is declared {list(declared)}, but its checkpoint "
                                 f"value '{key}' is {list(shape)}")
    if "dtype" in var_node.attr:
        declared_type = var_node.attr["dtype"].type % 100
        if stored != declared_type:
            raise ModelLoadError(f"{shown}: variable '{var}' is declared {_dtype_label(declared_type)}, but its "
                                 f"checkpoint value '{key}' is {_dtype_label(stored)}")
