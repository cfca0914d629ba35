"""Keras model config → IR: walk the layer graph of a Functional or Sequential model (models nested in it
included) and build each layer with its handler (:mod:`layers`).

A Functional config lists layers, each with its calls (``inbound_nodes``); a call names its input tensors as
``(layer, call index, tensor index)``: Keras 3 as ``__keras_tensor__`` objects with a ``keras_history``,
Keras 2 / tf-keras as ``[layer, call, tensor, kwargs]`` lists. A nested Functional model counts its own
construction as call 0, so a reference to its k-th call reads index k + 1 (a Sequential one in tf-keras, not in
Keras 3: see :func:`_call_offsets`). Calls are built once their inputs exist, so the order of the list does not
matter and shared layers work; a model called twice is built twice (``name_call1/...``) with the same weights.
A nested model's layers are named by its path (``mobilenetv2_1.00_96/Conv1``); its inputs are the tensors it is
called with.

Before anything is built, every layer is checked: unknown classes (``Lambda``, custom layers, ops) and
configs without an exact conversion are reported all at once, naming the file and each layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from transpiler.errors import UnsupportedModelError, UsageError
from transpiler.frontends.keras.context import KerasContext, Layer
from transpiler.frontends.keras.files import MODEL_CLASSES, KerasModel, LayerWeights, layer_name
from transpiler.frontends.keras.layers import KERAS_LAYERS, check_layer
from transpiler.frontends.keras.operations import is_supported_operation, operation, operation_key
from transpiler.ir.core import Graph, Value
from transpiler.ir.dtypes import DType

Ref = tuple[str, int, int]  # (layer name, call index, output index)
CONSTANT_ARG = "_CONSTANT_VALUE"  # tf-keras TFOpLambda whose first argument is a number: [_CONSTANT_VALUE, -1, value]
SAVED_MODEL_HINT = ("a SavedModel keeps such layers as TensorFlow ops: export the model with model.export(DIR) "
                    "(Keras 3) or tf.saved_model.save(model, DIR) and convert DIR")


def import_keras_model(model: KerasModel, *, inputs: Sequence[Any] = (), outputs: Sequence[str] = ()) -> Graph:
    """The IR graph of ``model``: its inputs (shapes from the config, batch 1, or ``--input NAME:SHAPE``) to its
    outputs, or to the layers named in ``outputs``."""
    refuse_unsupported(model)
    graph = Graph(Path(model.source).stem)
    graph.metadata["source"] = model.source
    ctx = KerasContext(graph, model)
    overrides = {spec.name.split(":")[0]: spec.shape for spec in inputs}
    walker = _Walker(ctx, overrides)
    results = walker.run_top(model.config)
    low = sorted({_policy(cfg) for _, cfg in iter_layers(model.config)} - {"float32", ""})
    if low:
        graph.metadata.setdefault("notes", []).append(
            f"layers compute in {', '.join(low)} in Keras; the Caffe model computes in float32 with the stored "
            "float32 weights (its outputs differ from Keras' by that rounding)")
    # what --verify needs to run the file in Keras (conversion.json's "keras")
    graph.metadata["keras"] = {"keras_version": model.keras_version, "model_outputs": [v.tf_name for v in results]}
    unused = set(overrides) - walker.input_names
    if unused:
        raise UsageError(f"{model.source}: --input {', '.join(sorted(unused))}: not an input layer of the model "
                         f"(inputs: {', '.join(sorted(walker.input_names))})")
    if outputs:
        results = [_find_output(model.source, walker.by_name, name) for name in outputs]
    graph.outputs = results
    graph.metadata["tf_inputs"] = [v.tf_name for v in graph.inputs]
    graph.metadata["tf_outputs"] = [v.tf_name for v in results]
    return graph


def refuse_unsupported(model: KerasModel) -> None:
    """Every layer without a handler, or whose config has no exact conversion, at once."""
    unknown: dict[str, list[str]] = {}
    problems: list[str] = []
    for path, cfg in iter_layers(model.config):
        cls = str(cfg.get("class_name"))
        if cls in MODEL_CLASSES or cls == "InputLayer":
            continue
        key = operation_key(cfg)
        if key is not None:
            if not is_supported_operation(key):
                unknown.setdefault(key if key.startswith("tf.") else f"ops.{key}", []).append(path)
            continue
        if cls not in KERAS_LAYERS:
            unknown.setdefault(cls, []).append(path)
            continue
        layer = Layer(path, cls, cfg.get("config", {}), LayerWeights())
        problems += [f"layer '{path}' ({cls}): {p}" for p in check_layer(layer, model.keras_major)]
    for cls, paths in sorted(unknown.items()):
        named = ", ".join(repr(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        why = ("Python code, not in the file" if cls == "Lambda" else
               "an operation on tensors without a conversion" if cls.startswith(("tf.", "ops.")) else
               "not a built-in layer this converter knows")
        problems.append(f"{cls}: {len(paths)} layer(s), {named} ({why})")
    if problems:
        hint = f"; {SAVED_MODEL_HINT}" if unknown else ""
        raise UnsupportedModelError(f"{model.source}: {len(problems)} layer problem(s) prevent conversion{hint}",
                                    problems)


def iter_layers(model_cfg: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for cfg in model_cfg["config"]["layers"]:
        path = prefix + layer_name(cfg)
        yield path, cfg
        if cfg.get("class_name") in MODEL_CLASSES:
            yield from iter_layers(cfg, path + "/")


def _policy(cfg: dict[str, Any]) -> str:
    """A layer's dtype policy name (``float32``, ``mixed_float16``...; Keras 3 and tf-keras spellings)."""
    dtype = cfg.get("config", {}).get("dtype")
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name")
    return str(dtype or "")


def _find_output(source: str, by_name: dict[str, Value], name: str) -> Value:
    key = name.split(":")[0] if name.endswith(":0") else name
    if key in by_name:
        return by_name[key]
    tails = [p for p in by_name if p.rsplit("/", 1)[-1] == key]
    if len(tails) == 1:
        return by_name[tails[0]]
    close = [p for p in by_name if key.lower() in p.lower()][:3]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    what = "several layers are" if tails else "no layer is"
    raise UsageError(f"{source}: --output '{name}': {what} named so{hint}")


class _Walker:
    def __init__(self, ctx: KerasContext, overrides: dict[str, tuple[int, ...] | None]) -> None:
        self.ctx = ctx
        self.weights_prefix: dict[str, str] = {}  # naming prefix of a nested model's call → its weights' prefix
        self.overrides = overrides
        self.input_names: set[str] = set()
        self.by_name: dict[str, Value] = {}

    @property
    def source(self) -> str:
        return self.ctx.source

    # ------------------------------------------------------------------ top level
    def run_top(self, model: dict[str, Any]) -> list[Value]:
        cfg = model["config"]
        if model["class_name"] == "Sequential":
            layers = cfg["layers"]
            first = layers[0] if layers else {}
            shape = (first.get("config", {}).get("batch_shape") or first.get("config", {}).get("batch_input_shape")
                     or cfg.get("build_input_shape"))
            if shape is None:
                raise UsageError(f"{self.source}: the Sequential model declares no input shape (it was never built "
                                 "with an Input): build it with keras.Input(shape) before saving")
            name = layer_name(first) if first.get("class_name") == "InputLayer" else "input"
            x = self._input(name, shape, first.get("config", {}).get("dtype"))
            return self._sequential(model, "", [x])
        ins = [self._input(layer_name(layer), layer["config"].get("batch_shape")
                           or layer["config"].get("batch_input_shape"), layer["config"].get("dtype"))
               for layer in self._input_layers(model)]
        return self._functional(model, "", ins)

    def _input_layers(self, model: dict[str, Any]) -> list[dict[str, Any]]:
        by_name = {layer_name(layer): layer for layer in model["config"]["layers"]}
        return [by_name[ref[0]] for ref in _refs(model["config"]["input_layers"])]

    def _input(self, name: str, shape: Any, dtype: Any) -> Value:
        self.input_names.add(name)
        if isinstance(dtype, dict):
            dtype = dtype.get("config", {}).get("name")
        if dtype not in (None, "float32"):
            raise UsageError(f"{self.source}: input '{name}' is {dtype}; float32 inputs convert")
        given = self.overrides.get(name)
        if shape is None:
            raise UsageError(f"{self.source}: input '{name}' has no declared shape; give it with --input "
                             f"{name}:1x224x224x3")
        dims = [1 if i == 0 and d is None else d for i, d in enumerate(shape)]
        if given is not None:
            if len(given) != len(dims):
                raise UsageError(f"{self.source}: --input {name}: {len(given)} dimensions given, the input has "
                                 f"{len(dims)}")
            if any(d is not None and d != g for d, g in zip(dims[1:], given[1:], strict=True)):
                self.ctx.graph.metadata.setdefault("notes", []).append(
                    f"input '{name}' declared {_dims(dims)}, converted at {_dims(given)} as asked")
            dims = list(given)
        if any(d is None for d in dims):
            raise UsageError(f"{self.source}: input '{name}' has unknown dimensions ({_dims(dims)}); give the shape "
                             f"with --input {name}:1x224x224x3")
        layout = "NHWC" if len(dims) == 4 else None
        value = self.ctx.graph.add_input(name, DType.FLOAT32, tuple(dims), layout=layout, tf_name=name)
        self.by_name[name] = value
        return value

    # ------------------------------------------------------------------ models
    def _sequential(self, model: dict[str, Any], prefix: str, xs: list[Value]) -> list[Value]:
        for cfg in model["config"]["layers"]:
            if cfg.get("class_name") == "InputLayer":
                continue
            xs = self._call(cfg, prefix, xs, 0, None)
        return xs

    def _functional(self, model: dict[str, Any], prefix: str, ins: list[Value]) -> list[Value]:
        cfg = model["config"]
        tensors: dict[Ref, Value] = {}
        offsets = _call_offsets(cfg)
        input_refs = _refs(cfg["input_layers"])
        if len(input_refs) != len(ins):
            raise UnsupportedModelError(f"{self.source}: model '{prefix or cfg.get('name')}' takes "
                                        f"{len(input_refs)} inputs, called with {len(ins)}")
        for ref, x in zip(input_refs, ins, strict=True):
            tensors[(ref[0], 0, 0)] = x
        pending = [(layer, k, node) for layer in cfg["layers"] if layer["class_name"] != "InputLayer"
                   for k, node in enumerate(layer.get("inbound_nodes", []))]
        while pending:
            waiting = []
            for layer, k, node in pending:
                refs = [_resolve(offsets, r) for r in _node_refs(node)]
                if all(r in tensors for r in refs):
                    outs = self._call(layer, prefix, [tensors[r] for r in refs], k, node)
                    for t, v in enumerate(outs):
                        tensors[(layer_name(layer), k, t)] = v
                else:
                    waiting.append((layer, k, node))
            if len(waiting) == len(pending):
                names = ", ".join(repr(prefix + layer_name(layer)) for layer, _, _ in waiting[:5])
                raise UnsupportedModelError(f"{self.source}: layers {names} read tensors no layer of the model "
                                            "computes (a broken config)")
            pending = waiting
        outs = []
        for ref in _refs(cfg["output_layers"]):
            key = _resolve(offsets, ref)
            if key not in tensors:
                raise UnsupportedModelError(f"{self.source}: output {list(ref)} of model "
                                            f"'{prefix or cfg.get('name')}' is not computed by its layers")
            outs.append(tensors[key])
        return outs

    def _call(self, cfg: dict[str, Any], prefix: str, xs: list[Value], call: int, node: Any) -> list[Value]:
        cls = cfg["class_name"]
        name = layer_name(cfg)
        path = prefix + name
        if cls in MODEL_CLASSES:
            inner = prefix + name + "/" if call == 0 else f"{prefix}{name}_call{call}/"
            # a nested model called again (``inner_call1/``) reads the weights of its first call
            self.weights_prefix[inner] = self.weights_prefix.get(prefix, prefix) + name + "/"
            if cls == "Sequential":
                return self._sequential(cfg, inner, xs)
            return self._functional(cfg, inner, xs)
        weights = self.ctx.model.weights.get(self.weights_prefix.get(prefix, prefix) + name, LayerWeights())
        layer = Layer(path if call == 0 else f"{path}_call{call}", cls, cfg.get("config", {}), weights)
        key = operation_key(cfg)
        if key is not None:
            layer.operands = _operands(node, xs)
            out = operation(self.ctx, layer, key)
        else:
            out = KERAS_LAYERS[cls](self.ctx, layer, xs)
        out.tf_name = out.tf_name or layer.path
        node = out.producer
        if node is not None and node.name != layer.path and self.ctx.graph.unique_name(layer.path) == layer.path:
            node.name = layer.path  # the layer's last node carries its name (the Caffe layer users look for)
        self.by_name[layer.path] = out
        return [out]


def _resolve(offsets: dict[str, int], ref: Ref) -> Ref:
    name, call, tensor = ref
    return name, call - offsets.get(name, 0), tensor


def _call_offsets(cfg: dict[str, Any]) -> dict[str, int]:
    """Per nested model, what to subtract from a call index to get the call's position in its ``inbound_nodes``.

    Keras may count a nested model's own construction as call 0 (a Functional model usually does; a Sequential
    one in tf-keras, not in Keras 3, whose Sequential wraps an inner model), so the references decide: an index
    0 means none is counted, an index past the listed calls means one is; otherwise Functional counts one."""
    calls = {layer_name(layer): len(layer.get("inbound_nodes", [])) for layer in cfg["layers"]}
    used: dict[str, set[int]] = {}
    for layer in cfg["layers"]:
        for node in layer.get("inbound_nodes", []):
            for name, call, _ in _node_refs(node):
                used.setdefault(name, set()).add(call)
    for name, call, _ in _refs(cfg["output_layers"]):
        used.setdefault(name, set()).add(call)
    offsets = {}
    for layer in cfg["layers"]:
        name, cls = layer_name(layer), layer.get("class_name")
        if cls not in MODEL_CLASSES or not used.get(name):
            continue
        if 0 in used[name]:
            continue
        if max(used[name]) >= calls[name] or cls != "Sequential":
            offsets[name] = 1
    return offsets


def _refs(spec: Any) -> list[Ref]:
    """``input_layers``/``output_layers``: one ``[name, call, tensor]`` or a list of them."""
    if isinstance(spec, list) and spec and isinstance(spec[0], str):
        spec = [spec]
    return [(str(s[0]), int(s[1]), int(s[2])) for s in spec]


def _node_refs(node: Any) -> list[Ref]:
    """The input tensors of one call, in order (Keras 3 ``{"args", "kwargs"}`` or Keras 2 lists)."""
    if isinstance(node, dict):
        found: list[Ref] = []
        _collect_keras_tensors(node.get("args", []), found)
        return found
    if isinstance(node, list) and node and isinstance(node[0], str):
        # tf-keras TFOpLambda: one entry (not a list of them) whose keyword arguments may name tensors too
        kwargs = node[3] if len(node) > 3 and isinstance(node[3], dict) else {}
        first = [] if node[0] == CONSTANT_ARG else [(str(node[0]), int(node[1]), int(node[2]))]
        return [*first, *((str(v[0]), int(v[1]), int(v[2])) for v in kwargs.values() if _is_ref(v))]
    return [(str(e[0]), int(e[1]), int(e[2])) for e in node]


def _is_ref(v: Any) -> bool:
    """A tf-keras tensor reference ``[layer, call, tensor]`` among keyword arguments."""
    return (isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and isinstance(v[1], int)
            and isinstance(v[2], int))


def _operands(node: Any, xs: list[Value]) -> list[Any]:
    """An operation's arguments in order, its input tensors put in place (Keras 3 ``args``; tf-keras: the
    tensor, then the keyword arguments but ``name``)."""
    tensors = iter(xs)

    def place(arg: Any) -> Any:
        if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
            return next(tensors)
        return [place(a) for a in arg] if isinstance(arg, list) else arg

    if isinstance(node, dict):
        return [place(a) for a in node.get("args", [])]
    entry = node if node and isinstance(node[0], str) else node[0]
    kwargs = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
    first = entry[2] if entry[0] == CONSTANT_ARG else next(tensors)
    return [first, *(next(tensors) if _is_ref(v) else v for k, v in kwargs.items() if k != "name")]


def _collect_keras_tensors(obj: Any, found: list[Ref]) -> None:
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            name, call, tensor = obj["config"]["keras_history"]
            found.append((str(name), int(call), int(tensor)))
            return
        for v in obj.values():
            _collect_keras_tensors(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _collect_keras_tensors(v, found)


def _dims(shape: Sequence[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)
