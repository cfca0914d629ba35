"""Install the custom layers into a Caffe source tree (BVLC Caffe, SSD-Caffe and their forks).

What it does, for each selected layer (``relu6``, ``depthwise_conv``):

* copies ``<layer>_layer.hpp`` to ``include/caffe/layers/`` and the layer's ``.cpp``/``.cu`` files plus
  its plain math sources/headers to ``src/caffe/layers/`` (Caffe's Makefile and CMake build every
  ``.cpp``/``.cu`` under ``src/caffe``, so nothing else needs editing);
* appends the layer's parameter message to ``src/caffe/proto/caffe.proto`` and adds its field to
  ``message LayerParameter`` with a free field number: the smallest number ≥ the one named by the
  ``// LayerParameter next available layer-specific ID: N (last added: ...)`` comment that no field
  or ``reserved`` range of LayerParameter uses (without that comment: one past the largest used),
  never in protobuf's reserved 19000–19999; the comment is then advanced.

It is idempotent (files already identical and proto entries already present are left alone, so a
second run changes nothing), plans every change before writing any, refuses a directory that is not
a Caffe tree (`UnrecognisedTree`, exit code 2 from the CLI) and refuses to overwrite files or
shadow layer types that are not ours (`InstallConflict`, exit code 1). Files we install carry the
marker ``transpiler.kernels`` on their first line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LAYERS",
    "Change",
    "InstallConflict",
    "InstallError",
    "LayerSpec",
    "UnrecognisedTree",
    "free_field_number",
    "install",
    "layer_parameter_fields",
    "plan_install",
]

KERNELS_DIR = Path(__file__).resolve().parent
MARKER = "transpiler.kernels"
PROTO_REL = Path("src/caffe/proto/caffe.proto")
INCLUDE_REL = Path("include/caffe/layers")
SRC_REL = Path("src/caffe/layers")
APPEND_SPLIT = "everything below this line is appended to caffe.proto"
NEXT_ID_RE = re.compile(r"//[ \t]*LayerParameter next available layer-specific ID:[ \t]*(\d+)[^\n]*")
PROTOBUF_RESERVED = range(19000, 20000)


@dataclass(frozen=True)
class LayerSpec:
    """One custom layer: its folder under kernels/, Caffe type name and files."""

    folder: str
    caffe_type: str
    headers: tuple[str, ...]  # -> include/caffe/layers/
    sources: tuple[str, ...]  # -> src/caffe/layers/ (layer .cpp/.cu, math sources and their headers)
    proto: str | None = None  # caffe.proto snippet in the folder, if the layer has parameters


LAYERS: dict[str, LayerSpec] = {
    "relu6": LayerSpec(
        "relu6", "ReLU6", ("relu6_layer.hpp",),
        ("relu6_layer.cpp", "relu6_layer.cu", "relu6_cpu.hpp", "relu6_cpu.cpp", "relu6_cuda.hpp",
         "relu6_cuda_kernels.cuh", "relu6_cuda.cu"),
    ),
    "depthwise_conv": LayerSpec(
        "depthwise_conv", "DepthwiseConvolution", ("depthwise_conv_layer.hpp",),
        ("depthwise_conv_layer.cpp", "depthwise_conv_layer.cu", "depthwise_conv_cpu.hpp",
         "depthwise_conv_cpu.cpp", "depthwise_conv_cuda.hpp", "depthwise_conv_cuda_point.hpp",
         "depthwise_conv_cuda_kernels.cuh", "depthwise_conv_cuda.cu"),
        proto="depthwise_conv_param.proto",
    ),
}


class InstallError(Exception):
    """Base class of the installer's refusals."""


class UnrecognisedTree(InstallError):
    """The directory does not look like a Caffe source tree."""


class InstallConflict(InstallError):
    """The tree has a file or layer type of the same name that we did not install."""


@dataclass
class Change:
    """One planned modification: write `content` to `path` (relative to the Caffe root)."""

    path: Path
    content: str
    notes: list[str] = field(default_factory=list)  # human-readable descriptions


# ---------------------------------------------------------------------------------------------
# caffe.proto parsing
# ---------------------------------------------------------------------------------------------

def _blank_comments(text: str) -> str:
    """`text` with comments and string literals replaced by spaces (offsets and newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def _matching_brace(code: str, open_idx: int) -> int:
    depth = 0
    for k in range(open_idx, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise InstallError("unbalanced braces in caffe.proto")


def _message_span(code: str, name: str) -> tuple[int, int] | None:
    """(index of '{', index of matching '}') of top-level `message name`, in comment-blanked code."""
    for m in re.finditer(r"\bmessage\s+" + re.escape(name) + r"\s*\{", code):
        if code[: m.start()].count("{") == code[: m.start()].count("}"):  # top level
            open_idx = m.end() - 1
            return open_idx, _matching_brace(code, open_idx)
    return None


def _strip_nested_blocks(body: str) -> str:
    """Remove nested message/enum blocks (their fields are not LayerParameter's)."""
    while True:
        m = re.search(r"\b(message|enum)\s+\w+\s*\{", body)
        if not m:
            return body
        close = _matching_brace(body, m.end() - 1)
        body = body[: m.start()] + " " * (close + 1 - m.start()) + body[close + 1 :]


def layer_parameter_fields(proto_text: str) -> tuple[dict[str, int], set[int]]:
    """({field name: number}, reserved numbers) of `message LayerParameter` in caffe.proto text."""
    code = _blank_comments(proto_text)
    span = _message_span(code, "LayerParameter")
    if span is None:
        raise UnrecognisedTree("caffe.proto has no top-level `message LayerParameter`")
    body = _strip_nested_blocks(code[span[0] + 1 : span[1]])
    reserved: set[int] = set()
    for stmt in re.findall(r"\breserved\b([^;]*);", body):
        for a, b in re.findall(r"(\d+)(?:\s+to\s+(\d+|max))?", stmt):
            hi = int(a) if not b else (int(a) + 1000 if b == "max" else int(b))
            reserved.update(range(int(a), hi + 1))
    body = re.sub(r"\breserved\b[^;]*;", " ", body)
    body = re.sub(r"\boption\b[^;]*;", " ", body)
    fields = {name: int(num) for name, num in re.findall(r"(\w+)\s*=\s*(\d+)\s*[;\[]", body)}
    return fields, reserved


def free_field_number(proto_text: str, taken: Iterable[int] = ()) -> tuple[int, int | None]:
    """(free LayerParameter field number, number in the next-available comment or None)."""
    fields, reserved = layer_parameter_fields(proto_text)
    used = set(fields.values()) | reserved | set(taken)
    m = NEXT_ID_RE.search(proto_text)
    hint = int(m.group(1)) if m else None
    num = hint if hint is not None else max(used, default=0) + 1
    while num in used or num in PROTOBUF_RESERVED:
        num += 1
    return num, hint


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------

def _check_tree(root: Path) -> str:
    if not root.is_dir():
        raise UnrecognisedTree(f"{root}: not a directory")
    missing = [str(p) for p in (PROTO_REL, INCLUDE_REL, SRC_REL) if not (root / p).exists()]
    if missing:
        raise UnrecognisedTree(
            f"{root} does not look like a Caffe source tree (missing: {', '.join(missing)})")
    text = (root / PROTO_REL).read_text(encoding="utf-8")
    if not re.search(r"^\s*package\s+caffe\s*;", _blank_comments(text), re.M):
        raise UnrecognisedTree(f"{root / PROTO_REL} is not Caffe's schema (no `package caffe;`)")
    layer_parameter_fields(text)  # raises UnrecognisedTree without LayerParameter
    return text


def _is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return MARKER in fh.readline()
    except OSError:
        return False


def _registered_elsewhere(root: Path, caffe_type: str) -> list[Path]:
    pat = re.compile(r"REGISTER_LAYER_(?:CLASS|CREATOR)\(\s*" + re.escape(caffe_type) + r"\s*[,)]")
    hits = []
    for src in sorted((root / SRC_REL).glob("*.c*")):
        if src.suffix in (".cpp", ".cu", ".cc") and not _is_ours(src):
            try:
                if pat.search(src.read_text(encoding="utf-8", errors="replace")):
                    hits.append(src.relative_to(root))
            except OSError:
                continue
    return hits


def _snippet_parts(spec: LayerSpec) -> tuple[str, str, str]:
    """(message name, LayerParameter field declaration without number, message text to append)."""
    assert spec.proto is not None
    text = (KERNELS_DIR / spec.folder / spec.proto).read_text(encoding="utf-8")
    decl = re.search(r"layer_param:\s*(optional\s+(\w+)\s+(\w+))", text)
    if decl is None or APPEND_SPLIT not in text:
        raise InstallError(f"malformed proto snippet {spec.proto}")
    body = text.split(APPEND_SPLIT, 1)[1].split("\n", 1)[1].strip("\n")
    return decl.group(2), decl.group(1), body


def plan_install(root: Path, layers: Sequence[str] = tuple(LAYERS)) -> list[Change]:
    """Every change `install` would make, without writing; raises InstallError subclasses."""
    root = Path(root)
    proto_text = _check_tree(root)
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise InstallError(f"unknown layer(s) {unknown}; choose from {list(LAYERS)}")
    specs = [LAYERS[name] for name in layers]

    problems: list[str] = []
    changes: list[Change] = []
    for spec in specs:
        foreign = _registered_elsewhere(root, spec.caffe_type)
        if foreign:
            problems.append(f"{spec.caffe_type}: the tree already registers this layer type in "
                            f"{', '.join(map(str, foreign))}")
        targets = [(INCLUDE_REL / h, h) for h in spec.headers] + [(SRC_REL / s, s) for s in spec.sources]
        for rel, name in targets:
            src_text = (KERNELS_DIR / spec.folder / name).read_text(encoding="utf-8")
            dst = root / rel
            if not dst.exists():
                changes.append(Change(rel, src_text, [f"copy    {rel}"]))
            elif not _is_ours(dst):
                problems.append(f"{spec.caffe_type}: {rel} exists and was not installed by {MARKER}")
            elif dst.read_text(encoding="utf-8") != src_text:
                changes.append(Change(rel, src_text, [f"update  {rel}"]))
    if problems:
        ok = [n for n in layers if not any(p.startswith(LAYERS[n].caffe_type + ":") for p in problems)]
        hint = f"\n  to install only the others: --layers {','.join(ok)}" if ok else ""
        raise InstallConflict("nothing was changed:\n  " + "\n  ".join(problems) + hint)

    new_proto = proto_text
    proto_notes: list[str] = []
    taken: set[int] = set()
    for spec in specs:
        if spec.proto is None:
            continue
        msg_name, decl, body = _snippet_parts(spec)
        code = _blank_comments(new_proto)
        if _message_span(code, msg_name) is None:
            new_proto = new_proto.rstrip("\n") + (
                f"\n\n// Added by {MARKER} (python -m transpiler.kernels install).\n{body}\n")
            proto_notes.append(f"proto   {PROTO_REL}: + message {msg_name}")
        fields, _ = layer_parameter_fields(new_proto)
        field_name = decl.split()[-1]
        if field_name in fields:
            continue
        num, next_hint = free_field_number(new_proto, taken)
        taken.add(num)
        code = _blank_comments(new_proto)
        span = _message_span(code, "LayerParameter")
        assert span is not None
        close = span[1]
        line_start = new_proto.rfind("\n", 0, close) + 1
        line = f"  {decl} = {num};  // added by {MARKER}\n"
        if new_proto[line_start:close].strip():  # '}' shares its line with other text
            insert_at, line = close, "\n" + line
        else:
            insert_at = line_start
        new_proto = new_proto[:insert_at] + line + new_proto[insert_at:]
        proto_notes.append(f"proto   {PROTO_REL}: + LayerParameter.{field_name} = {num}")
        m = NEXT_ID_RE.search(new_proto)
        if m is not None:
            fields, reserved = layer_parameter_fields(new_proto)
            used = set(fields.values()) | reserved
            nxt = num + 1
            while nxt in used or nxt in PROTOBUF_RESERVED:
                nxt += 1
            comment = f"// LayerParameter next available layer-specific ID: {nxt} (last added: {field_name})"
            new_proto = new_proto[: m.start()] + comment + new_proto[m.end() :]
            proto_notes.append(f"proto   {PROTO_REL}: next available layer-specific ID {next_hint} -> {nxt}")
    if new_proto != proto_text:
        changes.append(Change(PROTO_REL, new_proto, proto_notes))
    return changes


def _write_atomic(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def install(
    root: Path,
    layers: Sequence[str] = tuple(LAYERS),
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> list[Change]:
    """Plan and (unless `dry_run`) apply the install; reports each change through `echo`."""
    root = Path(root)
    changes = plan_install(root, layers)
    prefix = "would " if dry_run else ""
    for ch in changes:
        for note in ch.notes:
            echo(f"{prefix}{note}")
    if not changes:
        echo(f"{root}: {', '.join(layers)} already installed; nothing changed")
        return changes
    if dry_run:
        echo(f"dry run: {len(changes)} file(s) would change under {root}; nothing written")
        return changes
    for ch in changes:
        dst = root / ch.path
        dst.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(dst, ch.content)
    echo(f"{len(changes)} file(s) changed under {root}. Rebuild Caffe (make all; with CMake re-run the "
         f"configure step first) so that caffe.pb.h is regenerated and the new layers are compiled.")
    return changes
