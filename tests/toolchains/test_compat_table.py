"""tools/toolchains/compat_table.py: the README table is made from the recorded results, between its markers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from conftest import REPO


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_table", REPO / "tools" / "toolchains" / "compat_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_from_records_between_markers(tmp_path: Path) -> None:
    tool = _tool()
    results = tmp_path / "results"
    results.mkdir()
    base = {"toolchain_version": "3.6.1", "recorded": "2026-12-06", "versions": {"MNN": "3.6.1"},
            "times": {"convert": 1.25}, "loads": True, "runs": True}
    (results / "mnn__m1__mnn.json").write_text(json.dumps({
        **base, "toolchain": "mnn", "model": "m1", "flavor": "mnn", "family": "backbone", "exact": True,
        "max_rel": 5.6e-5}))
    (results / "mnn__d1__mnn.json").write_text(json.dumps({
        **base, "toolchain": "mnn", "model": "d1", "flavor": "mnn", "family": "detector", "exact": False,
        "max_rel": 1.1e-6, "detections": "124/300", "postprocess": "caffe"}))
    (results / "paddle__m1__paddle.json").write_text(json.dumps({
        "toolchain": "paddle", "toolchain_version": "1.6.0-2.6.2", "recorded": "2026-12-06", "model": "m1",
        "flavor": "paddle", "loads": False, "runs": False, "exact": False, "error": "x\nSyntaxError: invalid"}))
    rknn = {**base, "toolchain": "rknn", "toolchain_version": "2.5.0", "model": "d1", "flavor": "rknn",
            "family": "detector", "postprocess": "external"}
    (results / "rknn__d1__rknn.json").write_text(json.dumps({
        **rknn, "exact": True, "max_rel": 7.2e-3, "float16": True, "bound": 1.4e-2, "detections": "57/300",
        "variant": "float16 simulator"}))
    (results / "rknn__d1__rknn__float32.json").write_text(json.dumps({
        **rknn, "exact": True, "max_rel": 1.2e-6, "detections": "300/300", "variant": "float32 reference"}))
    (results / "forms__mnn.json").write_text(json.dumps({
        "toolchain": "mnn", "toolchain_version": "3.6.1", "recorded": "2026-12-06",
        "forms": {"ReLU6": {"status": "exact", "rel": 0.0}, "Clip": {"status": "refused", "detail": "no"}}}))
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\ntext\n")
    assert tool.main(["--results", str(results), "--readme", str(readme), "--check"]) == 1
    assert tool.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\ntext\n") and text.count(tool.BEGIN) == 1 and text.count(tool.END) == 1
    rows = [line for line in text.splitlines() if line.startswith("| MNN") or line.startswith("| x2paddle")]
    assert rows[0].startswith("| MNN | `m1` | `mnn` | ✓ | ✓ | ✓ | 5.6e-05 |")  # backbones first
    assert "| ✓ | ✓ | ✗ | 1.1e-06 | 124/300 (DetectionOutput) | 1.2 | MNN 3.6.1 |" in rows[1]
    assert "| ✗ | ✗ | – | fails: SyntaxError: invalid |" in rows[2]
    rknn_rows = [line for line in text.splitlines() if line.startswith("| RKNN")]  # one row per execution path
    assert rknn_rows[0].startswith("| RKNN-Toolkit2 (float16 simulator) | `d1` | `rknn` | ✓ | ✓ | ✓ | 7.2e-03 "
                                   "(float16; bound 1.4e-02 = 2× TF in float16) | 57/300 (ssd_postprocess) |")
    assert rknn_rows[1].startswith("| RKNN-Toolkit2 (float32 reference) | `d1` | `rknn` | ✓ | ✓ | ✓ | 1.2e-06 | "
                                   "300/300 (ssd_postprocess) |")
    assert "| Clip | ✗ refused |" in text and "| ReLU6 | ✓ |" in text
    assert tool.main(["--results", str(results), "--readme", str(readme), "--check"]) == 0
    readme.write_text(text.replace("text", "other text"))  # outside the markers: kept
    assert tool.main(["--results", str(results), "--readme", str(readme)]) == 0
    assert "other text" in readme.read_text() and readme.read_text().count(tool.BEGIN) == 1
