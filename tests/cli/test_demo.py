"""The README's first command: the demo converts the pedestrian detector, verifies it, draws both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2


def test_demo_converts_verifies_and_draws(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", "transpiler", "demo", "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "detections: 100 matched, 0 TF-only, 0 Caffe-only" in result.stdout
    picture = cv2.imread(str(tmp_path / "out" / "demo_detections.png"))
    assert picture is not None and picture.shape == (300, 600, 3)  # TF left, Caffe right
    assert (picture[:, :300] != picture[:, 300:]).any()  # the two halves carry their own labels
