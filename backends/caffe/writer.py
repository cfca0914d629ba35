"""Write a converted model to disk: deploy.prototxt, deploy.caffemodel, conversion.json.

All files are first written into a temporary folder beside the output folder, then moved into
place, so an interrupted or failed run never leaves a half-written model: either the previous
files stay, or the new ones are complete. A new output folder gets the usual permissions (0777 less
the umask), not the private 0700 of a temporary folder.

:func:`check_writable` runs before a conversion starts, so that an output folder that is a file, sits
inside a file, or cannot be written is reported at once (exit 2), not after the work is done.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import UsageError

PROTOTXT = "deploy.prototxt"
CAFFEMODEL = "deploy.caffemodel"
REPORT = "conversion.json"


def copy_fields(source: Message, into: Message, skip: str = "") -> None:
    """Copy every set field of ``source`` except ``skip`` into ``into`` (of the same type)."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(into, field.name).extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(into, field.name).CopyFrom(value)
        else:
            setattr(into, field.name, value)


def without_blobs(layer: Any) -> Any:
    """A copy of ``layer`` without its weights, made without copying them (``CopyFrom`` and deleting the
    blobs copied a MobileNetV2's 14 MB of weights: 35 ms)."""
    copy = cp.LayerParameter()
    copy_fields(layer, copy, skip="blobs")
    return copy


def prototxt_text(net: Any) -> str:
    """The net without weights, as Caffe's text format."""
    stripped = cp.NetParameter()
    copy_fields(net, stripped, skip="layer")
    stripped.layer.extend(without_blobs(layer) for layer in net.layer)
    return text_format.MessageToString(stripped)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(folder: Path, option: str) -> None:
    """Raise :class:`UsageError` unless ``folder`` is, or can be created as, a writable folder.

    Probes by creating (and removing) an empty folder where files will go: permission bits alone do not
    say it, e.g. for root or with ``chattr +i``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {folder}: exists and is not a folder")
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {folder}: '{existing}' is a file, not a folder")
    # A new folder is made under its nearest existing ancestor; an existing one receives the files, which
    # are staged beside it.
    probes = [folder, folder.resolve().parent] if folder.exists() else [existing]
    for where in probes:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".write-check.", dir=where))
        except OSError as exc:
            raise UsageError(f"{option} {folder}: cannot write in '{where}': {exc.strerror or exc}") from None


def write_model(out_dir: Path, net: Any, report: dict[str, Any],
                extra: dict[str, str | bytes] | None = None) -> list[Path]:
    """Atomically write the model files into ``out_dir``; returns the final paths."""
    out_dir = Path(out_dir)
    files = {PROTOTXT: prototxt_text(net).encode(), CAFFEMODEL: net.SerializeToString()}
    files[REPORT] = (json.dumps(report, indent=2, sort_keys=False) + "\n").encode()
    for name, content in (extra or {}).items():
        files[name] = content.encode() if isinstance(content, str) else content
    try:
        parent = out_dir.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    except OSError as exc:
        raise UsageError(f"-o {out_dir}: cannot write there: {exc.strerror or exc}") from None
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if not out_dir.exists():
            staging.chmod(0o777 & ~_umask())  # mkdtemp made it private (0700)
            os.replace(staging, out_dir)
        else:
            for name in files:
                os.replace(staging / name, out_dir / name)
    except OSError as exc:
        raise UsageError(f"-o {out_dir}: cannot write there: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]
