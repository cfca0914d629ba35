"""The conversion driver: load → import → passes → emit → write, and the conversion report.

This is the fast path: it never imports TensorFlow. Everything that can fail on user input
(loading, unsupported ops, unknown names, backend limits) fails before any file is written.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transpiler import detector
from transpiler.backends.caffe import Emitted, emit_caffe, get_flavor, write_model
from transpiler.backends.caffe.training_options import TrainingOptions
from transpiler.backends.caffe.writer import check_writable
from transpiler.errors import BackendError, IRError, PluginError, TranspilerError, UsageError
from transpiler.frontends.keras import is_keras_file, load_keras_model
from transpiler.frontends.tf import InputSpec, load_tf_model
from transpiler.ir.core import Graph, Node, Value
from transpiler.pass_manager import PassContext, PassManager, PassRecord, node_in_traceback, with_plugin_passes
from transpiler.plugins import load_plugins, plugin_of

log = logging.getLogger("transpiler")

# The pipeline, in order (pass names).
FRONT_PASSES = ["remove-identity", "fold-constants", "fold-prelu", "fold-space-to-batch", "fold-nearest-upsampling",
                "dce", "mean-to-pool", "matmul-to-fc", "fold-batchnorm", "fold-deconv-affine", "input-channel-order",
                "fix-same-padding", "map-relu6", "fold-pad-into-pool",
                "select-classes", "ssd-detection-output", "dce"]
LAYOUT_PASSES = ["to-nchw", "simplify-transposes", "fold-affine-forward"]


def default_pipeline(flavor: str) -> list[str]:
    get_flavor(flavor)
    return with_plugin_passes([*FRONT_PASSES, *LAYOUT_PASSES, "trim-dead-taps", "symmetric-padding", "dce"])


@dataclass
class ConvertOptions:
    model: Path
    out_dir: Path | None = None
    inputs: list[InputSpec] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    signature: str | None = None  # SavedModel signature (default serving_default)
    flavor: str = "ssd"
    passes: list[str] | None = None
    dump_ir: Path | None = None
    plugins: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    stop_after: str | None = None  # inspect --after PASS
    input_order: str = "rgb"
    pipeline_config: Path | None = None
    emit: tuple[str, ...] = ("deploy",)
    label_map: Path | None = None
    class_names: str | None = None
    keep_classes: str | None = None
    training: TrainingOptions = field(default_factory=TrainingOptions)
    picture_input: str | None = None  # e.g. "--verify-input x.png": every input must take a picture (N×H×W×3)
    # detectors: "caffe" (PriorBox + DetectionOutput in the net) or "external" (the net ends at the raw box and
    # class tensors; priors.npy and conversion.json's "postprocess" feed transpiler.runtime.ssd_postprocess);
    # None: the flavor's default
    postprocess: str | None = None
    # layer and blob names: "tf" (the TF node names) or "identifiers" (lower-case Python identifiers, the TF
    # names kept in conversion.json); None: the flavor's default
    names: str | None = None

    @property
    def output_dir(self) -> Path:
        return self.out_dir or Path(f"{Path(self.model).stem}_caffe")


@dataclass
class ConversionResult:
    graph: Graph
    emitted: Emitted
    records: list[PassRecord]
    warnings: list[str]
    report: dict[str, Any]
    files: list[Path]


def lower(options: ConvertOptions, graph: Graph | None = None) -> tuple[Graph, PassManager, PassContext]:
    """Load and import the model (unless ``graph`` is given) and run the pass pipeline; nothing is written."""
    plugin_notes = load_plugins(options.plugins)
    get_flavor(options.flavor)
    if options.dump_ir is not None:
        check_writable(options.dump_ir, "--dump-ir")
    if graph is None:
        load = load_keras_model if is_keras_file(options.model) else load_tf_model  # by content, not name
        graph = load(options.model, inputs=options.inputs, outputs=options.outputs, signature=options.signature)
    detector_options, config_warnings = detector.prepare(
        graph, pipeline_config=options.pipeline_config, label_map=options.label_map,
        class_names=options.class_names, keep_classes=options.keep_classes, emit=options.emit)
    _check_postprocess(graph, options)
    input_order = options.input_order
    if {"train", "test"} & set(options.emit) and input_order != "bgr":
        input_order = "bgr"
        config_warnings.append("the model takes BGR input (deploy too): Caffe's data layers decode images as "
                               "BGR, and train/test must share deploy's weights")
    names = options.passes if options.passes is not None else default_pipeline(options.flavor)
    if options.stop_after is not None:
        if options.stop_after not in names:
            raise UsageError(f"--after {options.stop_after}: not in the pipeline ({', '.join(names)})")
        names = names[: names.index(options.stop_after) + 1]
    manager = PassManager(names, dump_dir=options.dump_ir)
    flavor = get_flavor(options.flavor)
    ctx = PassContext(options={"uneven_pads": flavor.uneven_pads,
                               "prior_runtimes": flavor.prior_runtimes, "input_order": input_order,
                               "postprocess": resolved_postprocess(options),
                               **detector_options, **options.options})
    for w in config_warnings:
        ctx.warn(w)
    with naming_the_model(options.model):
        manager.run(graph, ctx)
    graph.metadata["notes"] = [*plugin_notes, *graph.metadata.get("notes", [])]
    return graph, manager, ctx


POSTPROCESS_CHOICES = ("caffe", "external")
NAMES_CHOICES = ("tf", "identifiers")


def resolved_postprocess(options: ConvertOptions) -> str:
    """--postprocess as given, else the flavor's default."""
    return options.postprocess or get_flavor(options.flavor).postprocess


def identifier_names(options: ConvertOptions) -> bool:
    """--names as given, else the flavor's default."""
    if options.names is None:
        return get_flavor(options.flavor).identifier_names
    if options.names not in NAMES_CHOICES:
        raise UsageError(f"--names {options.names}: choose from {', '.join(NAMES_CHOICES)}")
    return options.names == "identifiers"


def _check_postprocess(graph: Graph, options: ConvertOptions) -> None:
    """``--postprocess external`` needs a detector and excludes what only DetectionOutput/PriorBox serve."""
    postprocess = resolved_postprocess(options)
    if postprocess not in POSTPROCESS_CHOICES:
        raise UsageError(f"--postprocess {postprocess}: choose from {', '.join(POSTPROCESS_CHOICES)}")
    identifier_names(options)
    if postprocess == "caffe":
        return
    explicit = options.postprocess is not None
    flag = "--postprocess external" if explicit else f"--flavor {options.flavor} (network only: --postprocess external)"
    if detector.postprocess_node(graph) is None:
        if not explicit:
            return  # the flavor's default; a classifier has no postprocessing to move out
        raise UsageError(f"{flag}: applies to SSD detectors; {graph.name} is not one (no Object Detection API "
                         "postprocessor)")
    if options.options.get("nms_top_k") is not None:
        raise UsageError(f"{flag}: --nms-top-k limits DetectionOutput's candidates, and this net has no "
                         "DetectionOutput (ssd_postprocess follows TF's limits)")
    training = [e for e in options.emit if e != "deploy"]
    if training:
        raise UsageError(f"{flag}: --emit {','.join(training)} writes SSD-Caffe training nets, which need the "
                         "PriorBox/DetectionOutput layers; convert with --postprocess caffe for those")
    if options.keep_classes is not None:
        raise UsageError(f"{flag}: --keep-classes is not supported with it yet; select the classes from the "
                         "ssd_postprocess output instead")


def convert(options: ConvertOptions, graph: Graph | None = None) -> ConversionResult:
    """Convert ``options.model`` (or an IR ``graph`` built by other means) and write the Caffe files."""
    start = time.perf_counter()
    check_writable(options.output_dir, "-o")
    graph, manager, ctx = lower(options, graph)
    with naming_the_model(options.model):
        _check_lowered(graph, options)
        try:
            emitted = emit(graph, options.flavor, identifier_names(options))
        except BackendError as exc:
            if options.passes is None:
                raise
            raise BackendError(f"{exc}\n(--passes {','.join(options.passes)} replaced the default pipeline, which "
                               f"lowers these ops: --passes {','.join(default_pipeline(options.flavor))})") from exc
    report = build_report(options, graph, emitted, manager.records, ctx.warnings)
    extra, notes = detector.extra_files(graph, emitted.net, report, options.emit, options.pipeline_config,
                                        options.training)
    anchors = graph.metadata.get("ssd", {}).get("anchors_array")
    if "postprocess" in report and anchors is not None:
        extra.update(prior_files(anchors))
    report["notes"] = [*graph.metadata.get("notes", []), *notes]
    if options.picture_input:
        _check_picture_inputs(report, options.picture_input)
    if graph.metadata.get("labels"):
        report["labels"] = graph.metadata["labels"]
    files = write_model(options.output_dir, emitted.net, report, extra)
    log.info("wrote %s (%d layers) in %.2f s", options.output_dir, len(emitted.net.layer),
             time.perf_counter() - start)
    return ConversionResult(graph, emitted, manager.records, ctx.warnings, report, files)


def _check_picture_inputs(report: dict[str, Any], flag: str) -> None:
    """Refuse, before writing, a picture for a model whose inputs are not N×H×W×3 maps."""
    for entry in report["inputs"]:
        shape = entry["tf_shape"]
        if len(shape) != 4 or shape[3] != 3:
            raise UsageError(f"{flag}: a picture needs an N×H×W×3 input, '{entry['tf_tensor']}' is "
                             f"{'x'.join(map(str, shape))}")


@contextmanager
def naming_the_model(model: Path) -> Iterator[None]:
    """Errors from passes and the backend start with the model's file name, like the frontend's."""
    try:
        yield
    except TranspilerError as exc:
        if str(model) in str(exc):
            raise
        raise type(exc)(f"{model}: {exc}") from exc


def _check_lowered(graph: Graph, options: ConvertOptions) -> None:
    """The Caffe backend writes NCHW maps, OIHW kernels and explicit pads: refuse a graph a custom ``--passes``
    list left in another form (emitting it would write a wrong model, not fail)."""
    problems = []
    # Only Conv and Pool care about the layout of their maps (a Transpose may make an NHWC map on purpose).
    nhwc = [n.describe() for n in graph.nodes if n.op in ("Conv", "Pool") and n.inputs[0].layout == "NHWC"]
    if nhwc:
        problems.append(f"{len(nhwc)} Conv/Pool node(s) on NHWC maps, e.g. {nhwc[0]} (to-nchw lowers them)")
    for node in graph.nodes:
        if node.op == "Conv" and node.attrs.get("kernel_layout") != "OIHW":
            problems.append(f"{node.describe()}: kernel layout {node.attrs.get('kernel_layout')}, not OIHW (to-nchw)")
            break
    if not problems:
        return
    if options.passes is None:
        raise IRError("the default pipeline left the graph unlowered: " + "; ".join(problems))
    # The default pipeline is long (20+ passes): point to where it is printed rather than inline it.
    raise UsageError(f"--passes {','.join(options.passes)}: the Caffe backend cannot write the graph these passes "
                     f"leave: {'; '.join(problems)}. Keep to-nchw and what precedes it; python -m transpiler inspect "
                     "MODEL --all-passes prints the default pipeline")


def emit(graph: Graph, flavor: str, identifier_names: bool | None = None) -> Emitted:
    """The Caffe net of ``graph``; an emitter that raises is named with its node (and plugin, if any)."""
    try:
        return emit_caffe(graph, get_flavor(flavor), identifier_names)
    except TranspilerError:
        raise
    except Exception as exc:
        node = node_in_traceback(exc, "transpiler.backends.caffe.emitter")
        if not isinstance(node, Node):
            raise IRError(f"the Caffe emitter failed: {type(exc).__name__}: {exc}") from exc
        plugin = plugin_of("Caffe emitter", node.op)
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if plugin is not None:
            raise PluginError(f"plugin '{plugin}': the Caffe emitter of {node.describe()} failed: {what}") from exc
        raise IRError(f"the Caffe emitter of {node.describe()} failed: {what}") from exc


def _tensor_entry(tf_name: str, v: Value, emitted: Emitted) -> dict[str, Any]:
    blob = emitted.blob_of[id(v)]
    perm = list(v.tf_perm) if v.tf_perm else list(range(len(v.shape or ())))
    shape = list(v.static_shape)
    inverse = [perm.index(i) for i in range(len(perm))]
    return {
        "tf_tensor": tf_name,
        "caffe_blob": blob,
        "caffe_layer": emitted.layer_of_blob.get(blob, blob),
        "shape": shape,
        "tf_shape": [shape[i] for i in inverse],
        "layout": v.layout or "",
        "permutation": perm,
        "dtype": "float32",
        "tf_dtype": v.dtype.numpy.name if v.dtype.is_float else v.dtype.short,
    }


def build_report(options: ConvertOptions, graph: Graph, emitted: Emitted, records: Sequence[PassRecord],
                 warnings: Sequence[str]) -> dict[str, Any]:
    tf_inputs = graph.metadata.get("tf_inputs", [v.tf_name for v in graph.inputs])
    tf_outputs = graph.metadata.get("tf_outputs", [v.tf_name for v in graph.outputs])
    types: dict[str, int] = {}
    for layer in emitted.net.layer:
        types[layer.type] = types.get(layer.type, 0) + 1
    blobs: dict[str, dict[str, Any]] = {}
    for blob, v in emitted.values.items():
        if v.tf_name:
            perm = list(v.tf_perm) if v.tf_perm else list(range(len(v.shape or ())))
            blobs[blob] = {"tf_tensor": v.tf_name, "layer": emitted.layer_of_blob.get(blob, blob), "permutation": perm}
            if v.shape is not None and len(v.shape) != len(perm):
                # e.g. a map flattened in NCHW order: the blob is transpose(tf_tensor, permutation) reshaped
                blobs[blob].update(view="reshape", shape=list(v.static_shape))
    inputs = [_tensor_entry(n, v, emitted) for n, v in zip(tf_inputs, graph.inputs, strict=True)]
    for entry in inputs:
        entry["tf_dtype"] = graph.metadata.get("tf_input_dtypes", {}).get(entry["tf_tensor"], entry["tf_dtype"])
        if len(entry["shape"]) == 4:
            entry["channel_order"] = graph.metadata.get("input_order", "rgb")
    ssd = graph.metadata.get("ssd")
    external = ssd is not None and ssd.get("postprocess") == "external"
    if external:
        outputs = _raw_output_entries(graph, emitted)
    elif ssd is not None:
        outputs = [_detection_entry(graph, emitted, tf_outputs)]
    else:
        outputs = [_tensor_entry(n, v, emitted) for n, v in zip(tf_outputs, graph.outputs, strict=True)]
    report: dict[str, Any] = {
        "model": str(options.model),
        "target": "caffe",
        "flavor": options.flavor,
        "files": {"prototxt": "deploy.prototxt", "caffemodel": "deploy.caffemodel"},
        "inputs": inputs,
        "outputs": outputs,
        "passes": [{"name": r.name, "changed": r.changed, "seconds": round(r.seconds, 4),
                    "op_count_diff": {op: list(d) for op, d in r.diff.items()}} for r in records],
        "layer_types": dict(sorted(types.items())),
        "warnings": list(warnings),
        "blobs": blobs,
    }
    if graph.metadata.get("signature"):  # a SavedModel: --verify runs this signature in TF
        report["signature"] = graph.metadata["signature"]
    if graph.metadata.get("keras"):  # a Keras model file: --verify runs it in Keras
        report["keras"] = graph.metadata["keras"]
    if emitted.renamed:  # --names identifiers: each renamed layer/blob and the (TF) name it had
        report["original_names"] = dict(emitted.renamed)
    if external:
        assert ssd is not None
        report["postprocess"] = postprocess_section(ssd, outputs, tf_outputs)
    elif ssd is not None:
        report["ssd"] = _ssd_section(ssd, {old: new for new, old in emitted.renamed.items()})
        kept = graph.metadata.get("class_selection")
        if kept:
            report["ssd"]["class_selection"] = {"tf_class_ids": list(kept),
                                                "caffe_labels": list(range(1, len(kept) + 1))}
    return report


PRIOR_FILES = {"npy": "priors.npy", "bin": "priors.bin", "txt": "priors.txt"}


def _raw_output_entries(graph: Graph, emitted: Emitted) -> list[dict[str, Any]]:
    """--postprocess external: the two outputs, each a TF raw tensor flattened (same values, same order)."""
    ssd = graph.metadata["ssd"]
    formats = {
        "box_encodings": "per anchor a (TF's anchor order, priors.npy row a): elements 4a..4a+3 = [ty, tx, th, tw], "
                         "TF's box encodings before decoding",
        "class_logits": f"per anchor a: elements a*{ssd['num_classes'] + 1}.. = the logits of the background "
                        f"(first) and classes 1..{ssd['num_classes']}, before the score converter",
    }
    entries = []
    for v, key in zip(graph.outputs, ("box_encodings", "class_logits"), strict=True):
        blob = emitted.blob_of[id(v)]
        tf_shape = ssd["tf_shapes"][key]
        entries.append({"tf_tensor": ssd[f"raw_{key}"],
                        "caffe_blob": blob, "caffe_layer": emitted.layer_of_blob.get(blob, blob),
                        "shape": list(v.static_shape), "tf_shape": tf_shape, "layout": "",
                        "permutation": list(range(len(tf_shape))), "view": "reshape", "dtype": "float32",
                        "tf_dtype": "float32", "role": key, "format": formats[key]})
    return entries


def postprocess_section(ssd: dict[str, Any], outputs: list[dict[str, Any]], tf_detections: Sequence[str]
                        ) -> dict[str, Any]:
    """conversion.json's "postprocess": what transpiler.runtime.ssd_postprocess (or the C header) needs."""
    nms = ssd["tf_nms"]
    return {
        "mode": "external",
        "tf_detections": list(tf_detections),  # TF's outputs that the postprocessed detections reproduce
        "runtime": "transpiler.runtime.ssd_postprocess (numpy), kernels/ssd_postprocess/ssd_postprocess.hpp (C++)",
        "outputs": {e["role"]: {"caffe_blob": e["caffe_blob"], "tf_tensor": e["tf_tensor"], "shape": e["shape"],
                                "tf_shape": e["tf_shape"]} for e in outputs},
        "anchors": {"tf_tensor": ssd["anchors"], "count": ssd["num_anchors"], "files": dict(PRIOR_FILES),
                    "layout": "[A, 4] float32 [ymin, xmin, ymax, xmax], normalised to the input, TF's anchor order "
                              "(row a = anchor a of the outputs); priors.bin: the same A*4 float32 values, "
                              "little-endian, row-major, no header; priors.txt: one anchor per line, 4 numbers "
                              "(%.9g: float32 round-trips)"},
        "box_coder": {"type": "faster_rcnn", "scale_factors": [_f32(s) for s in ssd["box_coder_scale_factors"]],
                      "formula": "[ty, tx, th, tw] / scale_factors; h = exp(th)*h_a, w = exp(tw)*w_a, "
                                 "yc = ty*h_a + yc_a, xc = tx*w_a + xc_a; box [yc-h/2, xc-w/2, yc+h/2, xc+w/2]"},
        "score_converter": ssd["score_converter"],
        "logit_scale": _f32(ssd["logit_scale"]),
        "num_classes": ssd["num_classes"],
        "background_class": "logit column 0 is the background: converted with the others (softmax includes it), "
                            "then dropped; detection class c (1-based) is logit column c",
        "nms": {"iou_threshold": _f32(nms["iou_threshold"]), "score_threshold": _f32(nms["score_threshold"]),
                "max_per_class": int(nms["max_per_class"]), "max_total": int(nms["max_total"]),
                "semantics": ("per class, TF's non_max_suppression_padded: scores > score_threshold, best first, "
                              "IoU >= iou_threshold with a kept box suppresses (ssd_postprocess: IoU > "
                              "iou_threshold, the same unless an IoU equals it exactly)" if ssd.get("padded_nms") else
                              "per class, TF's NonMaxSuppressionV5: scores > score_threshold, best first (ties: "
                              "lower anchor), IoU > iou_threshold with a kept box suppresses")
                             + ", at most max_per_class; then all classes sorted by score (ties: lower class), "
                               "clipped to clip_window, empty boxes dropped, first max_total kept"},
        "clip_window": [0.0, 0.0, 1.0, 1.0],
    }


def _f32(x: float) -> float:
    """A float32 setting as the shortest decimal that reads back as the same float32 (0.6, not 0.6000000238)."""
    return float(str(np.float32(x)))


def prior_files(anchors: np.ndarray) -> dict[str, bytes]:
    """priors.npy, priors.bin (raw little-endian float32) and priors.txt of the [A, 4] anchors."""
    a = np.ascontiguousarray(anchors, dtype="<f4").reshape(-1, 4)
    buffer = io.BytesIO()
    np.save(buffer, a)
    text = "".join(" ".join(f"{float(v):.9g}" for v in row) + "\n" for row in a)
    return {PRIOR_FILES["npy"]: buffer.getvalue(), PRIOR_FILES["bin"]: a.tobytes(), PRIOR_FILES["txt"]: text.encode()}


def _detection_entry(graph: Graph, emitted: Emitted, tf_outputs: Sequence[str]) -> dict[str, Any]:
    v = graph.outputs[0]
    blob = emitted.blob_of[id(v)]
    return {
        "tf_tensors": list(tf_outputs),
        "caffe_blob": blob,
        "caffe_layer": emitted.layer_of_blob.get(blob, blob),
        "shape": list(v.static_shape),
        "format": "[image_id, label, score, xmin, ymin, xmax, ymax] per row; labels 1-based as detection_classes; "
                  "boxes normalised, not clipped; rows after the last detection are padding",
    }


def _ssd_section(ssd: dict[str, Any], renamed: dict[str, str]) -> dict[str, Any]:
    blobs = ssd["blobs"]
    section = {k: v for k, v in ssd.items() if k not in ("blobs", "prior_to_anchor")}
    section["heads"] = [{**h, "conf_layer": renamed.get(h["conf_layer"], h["conf_layer"])} for h in ssd["heads"]]
    section["raw_tensors"] = {
        "box_encodings": {"tf_tensor": ssd["raw_box_encodings"], "caffe_blob": blobs["loc"],
                          "caffe_layout": "[1, priors*4]: prior p holds TF anchor prior_to_anchor[p], coordinates "
                                          "reordered by box_coordinate_order ([tx, ty, tw, th])"},
        "class_logits": {"tf_tensor": ssd["raw_class_logits"], "caffe_blob": blobs["conf_logits"],
                         "caffe_layout": "[1, priors*(classes+1)], background first, prior order as above"},
        "anchors": {"tf_tensor": ssd["anchors"], "caffe_blob": blobs["priors"],
                    "caffe_layout": "[1, 2, priors*4]: row 0 [xmin, ymin, xmax, ymax], row 1 variances"},
        "scores": {"caffe_blob": blobs["conf"]},
        "detections": {"caffe_blob": blobs["detections"]},
    }
    section["prior_to_anchor"] = ssd["prior_to_anchor"]
    return section
