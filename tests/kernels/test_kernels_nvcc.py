"""The CUDA sources compile with nvcc for sm_90 and for the oldest architecture the toolkit supports.

The issue asks for sm_70; CUDA 13 dropped sm_70 (`nvcc --list-gpu-arch` starts at compute_75), so
with such a toolkit the low target is the lowest listed one (sm_75); test_kernels_nvrtc.py covers sm_70 and
the Jetson architectures with CUDA 12's NVRTC. Skipped only when nvcc is absent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from transpiler.kernels import build


def _supported_archs(nvcc: str) -> list[int]:
    proc = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=False)
    return sorted({int(a) for a in re.findall(r"compute_(\d+)", proc.stdout)})



def test_cuda_sources_compile_for_sm90_and_oldest(nvcc: str, tmp_path: Path) -> None:
    archs = _supported_archs(nvcc)
    assert archs, "nvcc --list-gpu-arch printed no architectures"
    low = 70 if 70 in archs else min(a for a in archs if a >= 70)
    targets = sorted({str(low), "90"})
    objects = build.nvcc_check_compile(targets, tmp_path)
    assert [o.name for o in objects] == ["relu6_cuda.o", "depthwise_conv_cuda.o"]
    for obj in objects:
        assert obj.stat().st_size > 0
        data = obj.read_bytes()
        for arch in targets:  # the fatbinary names every embedded cubin's architecture
            assert f"sm_{arch}".encode() in data, f"{obj.name} has no sm_{arch} code"
    print(f"compiled for sm_{' and sm_'.join(targets)} (sm_70 supported by this nvcc: {70 in archs})")
