"""CPU depthwise convolution (C++ through ctypes) against the NumPy reference, plus finite differences.

Error measure: max|kernel − reference| / max|reference| ≤ 1e-5, the kernel in float32 and the
reference in float64 on the same (float32-rounded) inputs. The CUDA kernels' per-element code is also
run on the CPU (tests/kernels/dwconv_cuda_emu.cpp) so its index arithmetic is checked without a GPU.
"""

from __future__ import annotations

import ctypes
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from transpiler.kernels import build
from transpiler.kernels import reference as ref

TOL = 1e-5
Case = dict[str, Any]

# (N, C, M, H, W, KH, KW, stride, pads(top,bottom,left,right), dilation)
FIXED: list[tuple[Any, ...]] = [
    (2, 4, 1, 8, 8, 3, 3, (2, 2), (0, 1, 0, 1), (1, 1)),   # TF SAME, stride 2, even input: uneven pads
    (1, 3, 1, 7, 10, 3, 3, (2, 2), (1, 1, 0, 1), (1, 1)),  # stride 2, pads differ per side
    (2, 3, 2, 6, 5, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),   # multiplier 2
    (1, 2, 3, 5, 6, 3, 3, (2, 1), (0, 2, 1, 0), (1, 1)),   # multiplier 3, stride 2x1
    (1, 3, 1, 9, 9, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2)),   # dilation 2 (SAME)
    (2, 2, 2, 11, 8, 3, 2, (2, 2), (1, 2, 0, 1), (2, 3)),  # dilation + stride + multiplier
    (3, 5, 1, 1, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),   # 1x1 map, 3x3 kernel
    (2, 4, 2, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),   # 1x1 map, 1x1 kernel
    (1, 3, 1, 1, 1, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1)),   # 1x1 map, stride 2 (TF SAME)
    (1, 2, 2, 1, 1, 3, 3, (2, 2), (2, 0, 0, 2), (1, 1)),   # 1x1 map, one-sided pads, multiplier 2
    (1, 2, 1, 2, 2, 3, 3, (2, 2), (0, 1, 0, 1), (1, 1)),   # MobileNet tail: 2x2 -> 1x1
    (1, 3, 1, 10, 10, 5, 5, (2, 2), (1, 2, 1, 2), (1, 1)),  # 5x5 (specialised in CUDA), uneven
    (2, 2, 1, 6, 7, 1, 4, (1, 3), (0, 0, 3, 0), (1, 1)),   # 1x4 kernel, pad only on the left
    (1, 1, 1, 4, 4, 4, 4, (1, 1), (0, 0, 0, 0), (1, 1)),   # kernel = whole image
    (1, 2, 1, 5, 5, 3, 3, (3, 3), (0, 0, 0, 0), (1, 1)),   # stride 3, floor drops the last column
]


def _random_cases(count: int, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    while len(cases) < count:
        n, c, m = int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.choice([1, 1, 2, 3]))
        h, w = int(rng.integers(1, 14)), int(rng.integers(1, 14))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dil = (int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2])))
        pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
        try:
            ref.depthwise_output_hw(h, w, (kh, kw), stride, pads, dil)
        except ValueError:
            continue
        cases.append(dict(shape=(n, c, m, h, w, kh, kw), stride=stride, pads=pads, dilation=dil))
    return cases


def _all_cases() -> list[Case]:
    fixed = [dict(shape=f[:7], stride=f[7], pads=f[8], dilation=f[9]) for f in FIXED]
    return fixed + _random_cases(60, seed=1234)


CASES = _all_cases()


def _ids(case: Case) -> str:
    n, c, m, h, w, kh, kw = case["shape"]
    return f"n{n}c{c}m{m}_{h}x{w}_k{kh}x{kw}_s{case['stride']}_p{case['pads']}_d{case['dilation']}".replace(
        " ", "")


def _tensors(case: Case, seed: int) -> tuple[np.ndarray, ...]:
    n, c, m, h, w, kh, kw = case["shape"]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c * m, 1, kh, kw)).astype(np.float32)
    b = rng.standard_normal(c * m).astype(np.float32)
    oh, ow = ref.depthwise_output_hw(h, w, (kh, kw), case["stride"], case["pads"], case["dilation"])
    dy = rng.standard_normal((n, c * m, oh, ow)).astype(np.float32)
    return x, wt, b, dy


def _geom(case: Case) -> dict[str, Any]:
    return dict(stride=case["stride"], pads=case["pads"], dilation=case["dilation"])


@pytest.fixture(scope="module")
def cpu() -> build.CPUKernels:
    try:
        return build.CPUKernels()
    except build.BuildError as exc:  # pragma: no cover - CI has g++
        pytest.skip(f"no C++ compiler: {exc}")


def test_case_coverage() -> None:
    """The shape set covers what the issue asks for."""
    assert len(CASES) >= 50
    assert any(c["stride"] == (2, 2) and c["pads"][0] != c["pads"][1] for c in CASES)
    assert any(c["shape"][2] == 2 for c in CASES)
    assert any(2 in c["dilation"] for c in CASES)
    assert any(c["shape"][3] == 1 and c["shape"][4] == 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_cpu_matches_reference(cpu: build.CPUKernels, case: Case) -> None:
    x, w, b, dy = _tensors(case, seed=zlib.crc32(_ids(case).encode()))
    g = _geom(case)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    y_ref = ref.depthwise_conv2d_nchw(x64, w64, b64, **g)
    y = cpu.depthwise_forward(x, w, b, **g)
    assert y.dtype == np.float32 and y.shape == y_ref.shape
    assert ref.max_rel_error(y, y_ref) <= TOL
    y_nobias = cpu.depthwise_forward(x, w, None, **g)
    assert ref.max_rel_error(y_nobias, ref.depthwise_conv2d_nchw(x64, w64, None, **g)) <= TOL
    grads = cpu.depthwise_backward(dy, x, w, **g)
    grads_ref = ref.depthwise_conv2d_nchw_backward(dy64, x64, w64, **g)
    for name, got, want in zip(("dx", "dw", "db"), grads, grads_ref, strict=True):
        assert got.shape == want.shape, name
        assert ref.max_rel_error(got, want) <= TOL, name


@pytest.mark.parametrize("case", CASES[:20], ids=_ids)
def test_cpu_float64_is_exact(cpu: build.CPUKernels, case: Case) -> None:
    """The double instantiation (Caffe's Dtype=double) agrees with the reference to rounding."""
    x, w, b, dy = (a.astype(np.float64) for a in _tensors(case, seed=7))
    g = _geom(case)
    y = cpu.depthwise_forward(x, w, b, **g)
    assert ref.max_rel_error(y, ref.depthwise_conv2d_nchw(x, w, b, **g)) < 1e-12
    for got, want in zip(cpu.depthwise_backward(dy, x, w, **g),
                         ref.depthwise_conv2d_nchw_backward(dy, x, w, **g), strict=True):
        assert ref.max_rel_error(got, want) < 1e-12


FD_CASES = [CASES[i] for i in (0, 2, 4, 5, 6, 10, 11)]


@pytest.mark.parametrize("case", FD_CASES, ids=_ids)
def test_cpu_gradients_finite_differences(cpu: build.CPUKernels, case: Case) -> None:
    """Backward (float64 C++) equals central differences of the forward (float64 C++)."""
    x, w, b, dy = (a.astype(np.float64) for a in _tensors(case, seed=11))
    g = _geom(case)

    def loss(xx: np.ndarray, ww: np.ndarray, bb: np.ndarray) -> float:
        return float(np.sum(cpu.depthwise_forward(xx, ww, bb, **g) * dy))

    def numeric(arr: np.ndarray, f: Any) -> np.ndarray:
        out = np.zeros_like(arr)
        eps = 1e-6
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            lp = f()
            arr[idx] = old - eps
            lm = f()
            arr[idx] = old
            out[idx] = (lp - lm) / (2 * eps)
        return out

    dx, dw, db = cpu.depthwise_backward(dy, x, w, **g)
    assert ref.max_rel_error(dx, numeric(x, lambda: loss(x, w, b))) < 1e-7
    assert ref.max_rel_error(dw, numeric(w, lambda: loss(x, w, b))) < 1e-7
    assert ref.max_rel_error(db, numeric(b, lambda: loss(x, w, b))) < 1e-7


def test_cpu_rejects_bad_geometry(cpu: build.CPUKernels) -> None:
    x = np.zeros((1, 2, 3, 3), np.float32)
    w = np.zeros((2, 1, 5, 5), np.float32)
    with pytest.raises(ValueError):
        cpu.depthwise_forward(x, w)  # kernel larger than the (unpadded) input
    with pytest.raises(ValueError):
        cpu.depthwise_forward(x, np.zeros((3, 1, 3, 3), np.float32))  # 3 outputs for 2 channels


def test_mobilenet_layer_shape(cpu: build.CPUKernels) -> None:
    """A real MobileNetV2 layer (144 channels, 75x75, stride 2 TF-SAME: pads 0/1)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 144, 75, 75)).astype(np.float32)
    w = rng.standard_normal((144, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(144).astype(np.float32)
    pt, pb = ref.tf_same_pads(75, 3, 2)
    g = dict(stride=(2, 2), pads=(pt, pb, pt, pb))
    y = cpu.depthwise_forward(x, w, b, **g)
    assert y.shape == (1, 144, 38, 38)
    assert ref.max_rel_error(y, ref.depthwise_conv2d_nchw(x.astype(np.float64), w.astype(np.float64),
                                                         b.astype(np.float64), **g)) <= TOL


# --------------------------------------------------------------------------------------------
# CUDA code path, emulated on the CPU
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emu() -> ctypes.CDLL:
    cxx = build.find_cxx()
    if cxx is None:  # pragma: no cover
        pytest.skip("no C++ compiler")
    src = Path(__file__).with_name("dwconv_cuda_emu.cpp")
    lib = ctypes.CDLL(str(build.compile_shared([src], compiler=cxx, flags=build.CXXFLAGS, name="tk_emu")))
    p = ctypes.c_void_p
    lib.tk_emu_dwconv_forward_f32.argtypes = [p, p, p, p, p, ctypes.c_int]
    lib.tk_emu_dwconv_backward_f32.argtypes = [p, p, p, p, p, p, p, ctypes.c_int]
    lib.tk_emu_dwconv_forward_vec_f32.argtypes = [p, p, p, p, p, ctypes.c_int, ctypes.c_int]
    lib.tk_emu_dwconv_default_vec.argtypes = [p]
    return lib


@pytest.mark.parametrize("force64", [0, 1])
@pytest.mark.parametrize("case", CASES[:14] + CASES[14::4], ids=_ids)
def test_cuda_code_path_emulated(emu: ctypes.CDLL, case: Case, force64: int) -> None:
    x, w, b, dy = _tensors(case, seed=5)
    g = _geom(case)
    geom = build.DepthwiseGeometry.of(x.shape, w.shape, **g)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    y = np.empty(geom.out_shape, np.float32)
    assert emu.tk_emu_dwconv_forward_f32(geom.as_array(), x.ctypes.data, w.ctypes.data, b.ctypes.data,
                                         y.ctypes.data, force64) == 0
    assert ref.max_rel_error(y, ref.depthwise_conv2d_nchw(x64, w64, b64, **g)) <= TOL
    dx = np.empty_like(x)
    dw = np.zeros_like(w)
    db = np.zeros_like(b)
    assert emu.tk_emu_dwconv_backward_f32(geom.as_array(), dy.ctypes.data, x.ctypes.data, w.ctypes.data,
                                          dx.ctypes.data, dw.ctypes.data, db.ctypes.data, force64) == 0
    for got, want in zip((dx, dw, db), ref.depthwise_conv2d_nchw_backward(dy64, x64, w64, **g), strict=True):
        assert ref.max_rel_error(got, want) <= TOL


def _strip_cases() -> list[Case]:
    """3x3, dilation 1, equal strides 1/2: widths around multiples of 2 and 4, all kinds of pads."""
    cases = []
    rng = np.random.default_rng(42)
    for width in (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 19, 33):
        for stride in (1, 2):
            pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
            h = int(rng.integers(2, 9))
            if width + pads[2] + pads[3] < 3 or h + pads[0] + pads[1] < 3:
                pads = (1, 1, 1, 1)
            cases.append(dict(shape=(int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.choice([1, 2])),
                                     h, width, 3, 3), stride=(stride, stride), pads=pads, dilation=(1, 1)))
    return cases


@pytest.mark.parametrize("vec", [2, 4])
@pytest.mark.parametrize("case", _strip_cases(), ids=_ids)
def test_cuda_strip_kernel_emulated(emu: ctypes.CDLL, case: Case, vec: int) -> None:
    """The strip forward (2 or 4 outputs per thread) gives the reference's result on every geometry."""
    x, w, b, _ = _tensors(case, seed=9)
    g = _geom(case)
    geom = build.DepthwiseGeometry.of(x.shape, w.shape, **g)
    y_ref = ref.depthwise_conv2d_nchw(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **g)
    for force64 in (0, 1):
        y = np.full(geom.out_shape, np.nan, np.float32)  # every output must be written
        assert emu.tk_emu_dwconv_forward_vec_f32(geom.as_array(), x.ctypes.data, w.ctypes.data, b.ctypes.data,
                                                 y.ctypes.data, vec, force64) == 0
        assert not np.isnan(y).any()
        assert ref.max_rel_error(y, y_ref) <= TOL


def test_cuda_strip_dispatch(emu: ctypes.CDLL) -> None:
    def vec(shape: tuple[int, ...], k: int, s: int, d: int = 1) -> int:
        geom = build.DepthwiseGeometry(*shape, k, k, s, s, d, d, 1, 1, 1, 1)
        return int(emu.tk_emu_dwconv_default_vec(geom.as_array()))

    assert vec((1, 32, 1, 150, 150), 3, 1) == 4
    assert vec((1, 96, 1, 150, 150), 3, 2) == 4
    assert vec((1, 576, 1, 19, 19), 3, 2) == 2  # 10 outputs per row
    assert vec((1, 128, 1, 3, 3), 3, 1) == 1
    assert vec((1, 32, 1, 40, 40), 3, 1, d=2) == 1  # dilation: point kernel
    assert vec((1, 32, 1, 40, 40), 5, 1) == 1
    x = np.zeros((1, 2, 8, 8), np.float32)
    geom = build.DepthwiseGeometry.of(x.shape, (2, 1, 3, 3), (1, 1), (1, 1, 1, 1), (2, 2))
    assert emu.tk_emu_dwconv_forward_vec_f32(geom.as_array(), 0, 0, 0, 0, 4, 0) == -2
