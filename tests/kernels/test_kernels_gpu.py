"""CUDA kernels against the NumPy reference on a real GPU (marked `gpu`; skipped without one).

Same error measure as the CPU tests: max|cuda − reference| / max|reference| ≤ 1e-5 (float32 kernel,
float64 reference); the big MobileNet-sized case allows 1e-4 for the weight gradient, a float
reduction over 32·38·38 terms.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import numpy as np
import pytest

from transpiler.kernels import build
from transpiler.kernels import reference as ref

pytestmark = pytest.mark.gpu

TOL = 1e-5


def _gpu_present() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "GPU" in proc.stdout


@pytest.fixture(scope="module")
def cuda() -> build.CUDAKernels:
    if not _gpu_present():
        pytest.skip("no NVIDIA GPU (nvidia-smi -L lists none)")
    if build.find_nvcc() is None:
        pytest.skip("nvcc not found")
    try:
        kernels = build.CUDAKernels(build.build_cuda_library())
    except build.BuildError:
        kernels = build.CUDAKernels(build.build_cuda_library(("-gencode=arch=compute_75,code=compute_75",)))
    if kernels.device_count() == 0:
        pytest.skip("CUDA runtime sees no device")
    return kernels


def _cases() -> list[dict[str, Any]]:
    fixed = [
        ((2, 4, 1, 8, 8, 3, 3), (2, 2), (0, 1, 0, 1), (1, 1)),
        ((2, 3, 2, 6, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
        ((1, 3, 1, 9, 9, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
        ((2, 2, 2, 11, 8, 3, 2), (2, 2), (1, 2, 0, 1), (2, 3)),
        ((3, 5, 1, 1, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
        ((2, 4, 2, 1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
        ((1, 3, 1, 10, 10, 5, 5), (2, 2), (1, 2, 1, 2), (1, 1)),
        ((1, 2, 1, 6, 7, 1, 4), (1, 3), (0, 0, 3, 0), (1, 1)),
        ((2, 16, 1, 19, 19, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
        ((1, 32, 1, 150, 150, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ]
    rng = np.random.default_rng(77)
    while len(fixed) < 40:
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.choice([1, 2, 3])),
                 int(rng.integers(1, 14)), int(rng.integers(1, 14)),
                 int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
        dil = (int(rng.choice([1, 2])), int(rng.choice([1, 2])))
        try:
            ref.depthwise_output_hw(shape[3], shape[4], shape[5:7], stride, pads, dil)
        except ValueError:
            continue
        fixed.append((shape, stride, pads, dil))  # type: ignore[arg-type]
    return [dict(shape=s, stride=st, pads=p, dilation=d) for s, st, p, d in fixed]


@pytest.mark.parametrize("case", _cases())
def test_cuda_depthwise_matches_reference(cuda: build.CUDAKernels, case: dict[str, Any]) -> None:
    n, c, m, h, w, kh, kw = case["shape"]
    g = dict(stride=case["stride"], pads=case["pads"], dilation=case["dilation"])
    rng = np.random.default_rng(n * 1000 + c * 100 + h)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c * m, 1, kh, kw)).astype(np.float32)
    b = rng.standard_normal(c * m).astype(np.float32)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, wt, b))
    y_ref = ref.depthwise_conv2d_nchw(x64, w64, b64, **g)
    assert ref.max_rel_error(cuda.depthwise_forward(x, wt, b, **g), y_ref) <= TOL
    assert ref.max_rel_error(cuda.depthwise_forward(x, wt, b, vec=1, **g), y_ref) <= TOL
    if kh == kw == 3 and case["dilation"] == (1, 1) and case["stride"] in ((1, 1), (2, 2)):
        for vec in (2, 4):
            assert ref.max_rel_error(cuda.depthwise_forward(x, wt, b, vec=vec, **g), y_ref) <= TOL
    assert ref.max_rel_error(cuda.depthwise_forward(x, wt, None, **g),
                             ref.depthwise_conv2d_nchw(x64, w64, None, **g)) <= TOL
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    got = cuda.depthwise_backward(dy, x, wt, **g)
    want = ref.depthwise_conv2d_nchw_backward(dy.astype(np.float64), x64, w64, **g)
    for name, a, r in zip(("dx", "dw", "db"), got, want, strict=True):
        assert ref.max_rel_error(a, r) <= TOL, name


def test_cuda_depthwise_mobilenet_batch(cuda: build.CUDAKernels) -> None:
    """Batch 32, 144 channels, 75x75, stride 2 with TF-SAME pads (0, 1): the 64-bit-free big case."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 144, 75, 75)).astype(np.float32)
    w = rng.standard_normal((144, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(144).astype(np.float32)
    g = dict(stride=(2, 2), pads=(1, 1, 1, 1))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y_ref = ref.depthwise_conv2d_nchw(x64, w64, b.astype(np.float64), **g)
    assert ref.max_rel_error(cuda.depthwise_forward(x, w, b, **g), y_ref) <= TOL
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    dx, dw, db = cuda.depthwise_backward(dy, x, w, **g)
    rdx, rdw, rdb = ref.depthwise_conv2d_nchw_backward(dy.astype(np.float64), x64, w64, **g)
    assert ref.max_rel_error(dx, rdx) <= TOL
    assert ref.max_rel_error(dw, rdw) <= 1e-4
    assert ref.max_rel_error(db, rdb) <= 1e-4


def test_cuda_relu6_matches_reference(cuda: build.CUDAKernels) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((3, 7, 11, 13)) * 5).astype(np.float32)
    x.flat[:4] = [0.0, 6.0, np.nan, -0.0]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(cuda.relu6_forward(x), ref.relu6(x))
    np.testing.assert_array_equal(cuda.relu6_backward(x, dy), ref.relu6_backward(x, dy))
