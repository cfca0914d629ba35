"""Write a converted model to disk: deploy.prototxt, deploy.caffemodel, conversion.json.

All files are first written into a temporary folder beside the output folder, then moved into
place, so an interrupted or failed run never leaves a half-written model: either the previous
files stay, or the new ones are complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

PROTOTXT = "deploy.prototxt"
CAFFEMODEL = "deploy.caffemodel"
REPORT = "conversion.json"


def prototxt_text(net: Any) -> str:
    """The net without weights, as Caffe's text format."""
    stripped = cp.NetParameter()
    stripped.CopyFrom(net)
    for layer in stripped.layer:
        del layer.blobs[:]
    return text_format.MessageToString(stripped)


def write_model(out_dir: Path, net: Any, report: dict[str, Any],
                extra: dict[str, str | bytes] | None = None) -> list[Path]:
    """Atomically write the model files into ``out_dir``; returns the final paths."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    files = {PROTOTXT: prototxt_text(net).encode(), CAFFEMODEL: net.SerializeToString()}
    files[REPORT] = (json.dumps(report, indent=2, sort_keys=False) + "\n").encode()
    for name, content in (extra or {}).items():
        files[name] = content.encode() if isinstance(content, str) else content
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        if not out_dir.exists():
            os.replace(staging, out_dir)
        else:
            for name in files:
                os.replace(staging / name, out_dir / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]
