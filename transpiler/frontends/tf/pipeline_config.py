"""Read an Object Detection API ``pipeline.config`` (protobuf text format) without its schema.

:func:`parse_text_proto` turns any text-format message into nested dicts: every field maps to the
list of its values (scalars, or dicts for sub-messages), in file order. :func:`ssd_settings` picks
the fields a converted SSD depends on (NMS, score converter, box coder, anchors, input size, classes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from transpiler.errors import UsageError

TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}:;,<>\[\]])|([^\s{}:;,<>\[\]#"\']+))')
Message = dict[str, list[Any]]


def _scalar(token: str) -> Any:
    if token[0] in "\"'":
        return token[1:-1].encode().decode("unicode_escape")
    if token in ("true", "True"):
        return True
    if token in ("false", "False"):
        return False
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token  # an enum name


def parse_text_proto(text: str, source: str = "<text>") -> Message:
    tokens = [m.group(2) or m.group(3) or m.group(4) for m in TOKEN.finditer(text) if not m.group(1)]
    tokens = [t for t in tokens if t is not None]
    pos = 0

    def message(closing: str | None) -> Message:
        nonlocal pos
        out: Message = {}
        while pos < len(tokens):
            tok = tokens[pos]
            if tok in (",", ";"):
                pos += 1
                continue
            if tok == closing:
                pos += 1
                return out
            name = tok
            pos += 1
            if pos < len(tokens) and tokens[pos] == ":":
                pos += 1
            if pos >= len(tokens):
                raise UsageError(f"{source}: field '{name}' has no value")
            if tokens[pos] in ("{", "<"):
                close = "}" if tokens[pos] == "{" else ">"
                pos += 1
                out.setdefault(name, []).append(message(close))
            elif tokens[pos] == "[":
                pos += 1
                while tokens[pos] != "]":
                    if tokens[pos] != ",":
                        out.setdefault(name, []).append(_scalar(tokens[pos]))
                    pos += 1
                pos += 1
            else:
                out.setdefault(name, []).append(_scalar(tokens[pos]))
                pos += 1
        if closing is not None:
            raise UsageError(f"{source}: unbalanced braces")
        return out

    return message(None)


def find(msg: Message, *path: str) -> Any:
    """The first value at ``path`` (field names, descending into the first sub-message), or None."""
    node: Any = msg
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return None
        node = node[name][0]
    return node


def load_pipeline_config(path: Path) -> Message:
    try:
        return parse_text_proto(Path(path).read_text(), str(path))
    except OSError as exc:
        raise UsageError(f"--pipeline-config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--pipeline-config {path}: not a text file") from None


def ssd_settings(config: Message) -> dict[str, Any]:
    """The SSD fields the conversion checks: None where the config does not say."""
    ssd = find(config, "model", "ssd")
    if ssd is None:
        raise UsageError("--pipeline-config: no model { ssd { ... } } section")
    nms = find(ssd, "post_processing", "batch_non_max_suppression") or {}
    coder = find(ssd, "box_coder", "faster_rcnn_box_coder") or {}
    resizer = find(ssd, "image_resizer", "fixed_shape_resizer") or {}
    return {
        "num_classes": find(ssd, "num_classes"),
        "score_threshold": find(nms, "score_threshold"),
        "iou_threshold": find(nms, "iou_threshold"),
        "max_per_class": find(nms, "max_detections_per_class"),
        "max_total": find(nms, "max_total_detections"),
        "score_converter": (find(ssd, "post_processing", "score_converter") or "IDENTITY").lower(),
        "scale_factors": tuple(find(coder, k) for k in ("y_scale", "x_scale", "height_scale", "width_scale")),
        "input_size": (find(resizer, "height"), find(resizer, "width")),
    }
