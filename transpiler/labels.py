"""Class names and class selection for detectors: TF label maps, presets, Caffe's labelmap.prototxt.

A TF label map (``label_map.pbtxt``: ``item { id: 1 name: "..." display_name: "person" }``) or
``--class-names a,b,c`` names the model's classes; ids are 1-based like ``detection_classes``.
``--keep-classes`` takes names (display name or name, any case) or ids, or the preset
``coco-to-voc``: the 20 PASCAL VOC classes, in VOC's order, found in a 90-class COCO model
(standard COCO ids, or the names of a given COCO label map). Kept classes get new labels 1..K in the
order given; background stays 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from transpiler.errors import UsageError
from transpiler.frontends.tf.pipeline_config import parse_text_proto

# The COCO detection ids (1..90, with gaps) of the OD API's mscoco_label_map, by display name.
COCO_IDS: dict[str, int] = {
    "person": 1, "bicycle": 2, "car": 3, "motorcycle": 4, "airplane": 5, "bus": 6, "train": 7, "truck": 8,
    "boat": 9, "traffic light": 10, "fire hydrant": 11, "stop sign": 13, "parking meter": 14, "bench": 15,
    "bird": 16, "cat": 17, "dog": 18, "horse": 19, "sheep": 20, "cow": 21, "elephant": 22, "bear": 23,
    "zebra": 24, "giraffe": 25, "backpack": 27, "umbrella": 28, "handbag": 31, "tie": 32, "suitcase": 33,
    "frisbee": 34, "skis": 35, "snowboard": 36, "sports ball": 37, "kite": 38, "baseball bat": 39,
    "baseball glove": 40, "skateboard": 41, "surfboard": 42, "tennis racket": 43, "bottle": 44,
    "wine glass": 46, "cup": 47, "fork": 48, "knife": 49, "spoon": 50, "bowl": 51, "banana": 52, "apple": 53,
    "sandwich": 54, "orange": 55, "broccoli": 56, "carrot": 57, "hot dog": 58, "pizza": 59, "donut": 60,
    "cake": 61, "chair": 62, "couch": 63, "potted plant": 64, "bed": 65, "dining table": 67, "toilet": 70,
    "tv": 72, "laptop": 73, "mouse": 74, "remote": 75, "keyboard": 76, "cell phone": 77, "microwave": 78,
    "oven": 79, "toaster": 80, "sink": 81, "refrigerator": 82, "book": 84, "clock": 85, "vase": 86,
    "scissors": 87, "teddy bear": 88, "hair drier": 89, "toothbrush": 90,
}

# PASCAL VOC's 20 classes in their usual label order, with the COCO class each one is.
VOC_FROM_COCO: list[tuple[str, str]] = [
    ("aeroplane", "airplane"), ("bicycle", "bicycle"), ("bird", "bird"), ("boat", "boat"), ("bottle", "bottle"),
    ("bus", "bus"), ("car", "car"), ("cat", "cat"), ("chair", "chair"), ("cow", "cow"),
    ("diningtable", "dining table"), ("dog", "dog"), ("horse", "horse"), ("motorbike", "motorcycle"),
    ("person", "person"), ("pottedplant", "potted plant"), ("sheep", "sheep"), ("sofa", "couch"),
    ("train", "train"), ("tvmonitor", "tv"),
]


@dataclass(frozen=True)
class ClassName:
    id: int  # 1-based, as TF's detection_classes
    name: str
    display_name: str


def read_tf_label_map(path: Path) -> list[ClassName]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"--label-map {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--label-map {path}: not a text file") from None
    items = parse_text_proto(text, str(path)).get("item", [])
    if not items:
        raise UsageError(f"--label-map {path}: no 'item {{ id: ... name: ... }}' entries")
    classes = []
    for item in items:
        if "id" not in item:
            raise UsageError(f"--label-map {path}: an item has no id")
        ident = int(item["id"][0])
        name = str(item.get("name", [f"class_{ident}"])[0])
        classes.append(ClassName(ident, name, str(item.get("display_name", [name])[0])))
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise UsageError(f"--label-map {path}: duplicate ids")
    return sorted(classes, key=lambda c: c.id)


def class_names_from_list(names: str) -> list[ClassName]:
    parts = [n.strip() for n in names.split(",")]
    if any(not p for p in parts):
        raise UsageError(f"--class-names {names!r}: empty name")
    return [ClassName(i + 1, p, p) for i, p in enumerate(parts)]


def check_fits(classes: list[ClassName], num_classes: int, source: str) -> None:
    """A label map fits a model whose ids run 1..num_classes."""
    bad = [c.id for c in classes if not 1 <= c.id <= num_classes]
    if bad:
        raise UsageError(f"{source}: class ids {bad[:5]} are outside the model's 1..{num_classes} "
                         f"(the model has {num_classes} classes besides background)")


def resolve_keep(spec: str, classes: list[ClassName] | None, num_classes: int) -> list[ClassName]:
    """The classes to keep, in new-label order, from ``--keep-classes``."""
    if spec.strip().lower() == "coco-to-voc":
        return _coco_to_voc(classes, num_classes)
    lookup: dict[str, ClassName] = {}
    for c in classes or []:
        lookup.setdefault(c.display_name.lower(), c)
        lookup.setdefault(c.name.lower(), c)
    by_id = {c.id: c for c in classes or []}
    kept: list[ClassName] = []
    unknown: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token.isdigit():
            ident = int(token)
            if not 1 <= ident <= num_classes:
                raise UsageError(f"--keep-classes: id {ident} is outside the model's 1..{num_classes}")
            kept.append(by_id.get(ident, ClassName(ident, f"class_{ident}", f"class_{ident}")))
        elif token.lower() in lookup:
            kept.append(lookup[token.lower()])
        else:
            unknown.append(token)
    if unknown:
        known = ", ".join(sorted({c.display_name for c in classes or []})[:12]) or "none (give --label-map)"
        raise UsageError(f"--keep-classes: unknown class name(s) {', '.join(unknown)}; known: {known}")
    if not kept:
        raise UsageError("--keep-classes: no class given")
    if len({c.id for c in kept}) != len(kept):
        raise UsageError("--keep-classes: a class is listed twice")
    return kept


def _coco_to_voc(classes: list[ClassName] | None, num_classes: int) -> list[ClassName]:
    if classes is None:
        if num_classes != 90:
            raise UsageError(f"--keep-classes coco-to-voc: the model has {num_classes} classes, not COCO's 90; "
                             "give its --label-map")
        ids = COCO_IDS
    else:
        ids = {c.display_name.lower(): c.id for c in classes} | {c.name.lower(): c.id for c in classes}
    missing = [coco for _, coco in VOC_FROM_COCO if coco not in ids]
    if missing:
        raise UsageError(f"--keep-classes coco-to-voc: the label map lacks {', '.join(missing)}")
    return [ClassName(ids[coco], voc, voc) for voc, coco in VOC_FROM_COCO]


def caffe_label_map(classes: list[ClassName]) -> str:
    """labelmap.prototxt text: background at 0, then the classes with consecutive labels."""
    from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

    msg = cp.LabelMap()
    item = msg.item.add()
    item.name, item.label, item.display_name = "none_of_the_above", 0, "background"
    for label, c in enumerate(classes, start=1):
        item = msg.item.add()
        item.name, item.label, item.display_name = c.name, label, c.display_name
    return text_format.MessageToString(msg)
