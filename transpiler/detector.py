"""Detector-specific options around a conversion: pipeline.config, class names and selection, and the
fine-tuning files (labelmap, train/test nets, solver).

Everything here is checked before any pass runs or file is written: a label map that does not fit the
model, unknown class names, ``--emit train`` on a classifier are usage errors (exit 2, nothing written).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transpiler.errors import UsageError
from transpiler.ir.core import Graph, Node

if TYPE_CHECKING:
    from transpiler.backends.caffe.training_options import TrainingOptions
    from transpiler.labels import ClassName

# The label, pipeline.config and training modules are imported where an option needs them: a plain conversion
# does without (~3 ms of a detector's ~0.3 s).

EMIT_CHOICES = ("deploy", "train", "test", "solver")
COCO_IDS_RANGE = range(1, 91)


def postprocess_node(graph: Graph) -> Node | None:
    return next((n for n in graph.nodes if n.op == "SSDPostprocess"), None)


def prepare(graph: Graph, *, pipeline_config: Path | None, label_map: Path | None, class_names: str | None,
            keep_classes: str | None, emit: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """Validate the detector options against the imported graph; returns pass options and warnings."""
    post = postprocess_node(graph)
    what = [flag for flag, value in (("--pipeline-config", pipeline_config), ("--label-map", label_map),
                                     ("--class-names", class_names), ("--keep-classes", keep_classes))
            if value is not None] + [f"--emit {e}" for e in emit if e != "deploy"]
    unknown = [e for e in emit if e not in EMIT_CHOICES]
    if unknown:
        raise UsageError(f"--emit: unknown {', '.join(unknown)} (choose from {', '.join(EMIT_CHOICES)})")
    if post is None:
        if what:
            raise UsageError(f"{', '.join(what)}: applies to SSD detectors; {graph.name} is not one "
                             "(no Object Detection API postprocessor)")
        return {}, []
    warnings = list(graph.metadata.pop("warnings", []))  # the frontend's (e.g. settings TFLite's export rounds)
    warnings += apply_pipeline_config(graph, post, pipeline_config) if pipeline_config else []
    options: dict[str, Any] = {}
    if label_map is None and class_names is None and keep_classes is None and all(e == "deploy" for e in emit):
        return options, warnings  # no class names to read or write
    from transpiler.labels import (
        COCO_IDS,
        ClassName,
        check_fits,
        class_names_from_list,
        read_tf_label_map,
        resolve_keep,
    )

    logits = post.inputs[1].static_shape
    num_classes = int(logits[-1]) - 1
    names: list[ClassName] | None = None
    if label_map is not None:
        names = read_tf_label_map(label_map)
        check_fits(names, num_classes, f"--label-map {label_map}")
    elif class_names is not None:
        names = class_names_from_list(class_names)
        if len(names) != num_classes:
            raise UsageError(f"--class-names: {len(names)} names for a model with {num_classes} classes")
    if names is None and keep_classes is not None and num_classes == len(COCO_IDS_RANGE):
        names = [ClassName(i, n, n) for n, i in COCO_IDS.items()]
        warnings.append("no --label-map: class names are taken as COCO's (90 ids, the OD API's mscoco_label_map)")
    if keep_classes is not None:
        kept = resolve_keep(keep_classes, names, num_classes)
        options["keep_classes"] = [c.id for c in kept]
        names = kept
    elif names is None and any(e != "deploy" for e in emit):
        names = [ClassName(i, f"class_{i}", f"class_{i}") for i in range(1, num_classes + 1)]
    if names is not None:
        graph.metadata["labels"] = [{"label": i, "tf_class": c.id, "name": c.name, "display_name": c.display_name}
                                    for i, c in enumerate(names, start=1)]
    return options, warnings


def apply_pipeline_config(graph: Graph, post: Node, path: Path) -> list[str]:
    """Cross-check a detector's settings with pipeline.config; the config's NMS settings override.

    Structural settings (class count, box coder, input size) must agree: a config that does not describe
    this model is an error. NMS settings may differ on purpose (deployment thresholds): the config wins,
    and the report warns that the Caffe model then differs from the TF graph.
    """
    from transpiler.frontends.tf.pipeline_config import load_pipeline_config, ssd_settings

    settings = ssd_settings(load_pipeline_config(path))
    logits = post.inputs[1].shape
    classes = int(logits[-1]) - 1 if logits and logits[-1] is not None else None
    data = graph.inputs[0].shape
    checks = {"num_classes": (settings["num_classes"], classes),
              "scale_factors": (settings["scale_factors"], tuple(post.attrs["scale_factors"])),
              "input_size": (settings["input_size"], tuple(data[1:3]) if data else None)}
    for key, (config_value, graph_value) in checks.items():
        if config_value not in (None, (None,) * 4, (None, None)) and not _same(config_value, graph_value):
            raise UsageError(f"--pipeline-config {path}: {key} is {config_value} but the graph has {graph_value}")
    warnings = []
    for key in ("score_threshold", "iou_threshold", "max_per_class", "max_total", "score_converter"):
        value = settings[key]
        if value is None or _same(value, post.attrs[key]):
            continue
        warnings.append(f"pipeline.config sets {key} = {value} where the graph computes {post.attrs[key]}: "
                        "the Caffe model follows the config, so its detections differ from the TF graph's")
        post.attrs[key] = value
    return warnings


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), abs(float(b)))  # relative: 1e-8 ≠ 0
    return bool(a == b)


def extra_files(graph: Graph, net: Any, report: dict[str, Any], emit: tuple[str, ...],
                pipeline_config: Path | None, training: TrainingOptions) -> tuple[dict[str, str | bytes], list[str]]:
    """labelmap.prototxt (when class names are known) and the requested fine-tuning files."""
    files: dict[str, str | bytes] = {}
    notes: list[str] = []
    labels = graph.metadata.get("labels")
    if labels:
        from transpiler.labels import ClassName, caffe_label_map

        files["labelmap.prototxt"] = caffe_label_map([ClassName(e["tf_class"], e["name"], e["display_name"])
                                                      for e in labels])
    wanted = {e for e in emit if e != "deploy"}
    if wanted:
        from transpiler.backends.caffe.training import training_files
        from transpiler.frontends.tf.pipeline_config import load_pipeline_config

        config = load_pipeline_config(pipeline_config) if pipeline_config else None
        more, notes = training_files(net, report, config, wanted, training)
        files.update(more)
    return files, notes
