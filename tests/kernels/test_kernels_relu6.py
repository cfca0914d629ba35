"""CPU ReLU6 (C++ through ctypes) against the NumPy reference: y = min(max(x,0),6), dx = dy·[0<x<6]."""

from __future__ import annotations

import numpy as np
import pytest

from transpiler.kernels import build
from transpiler.kernels import reference as ref


@pytest.fixture(scope="module")
def cpu() -> build.CPUKernels:
    try:
        return build.CPUKernels()
    except build.BuildError as exc:  # pragma: no cover - CI has g++
        pytest.skip(f"no C++ compiler: {exc}")


SHAPES = [tuple(int(d) for d in np.random.default_rng(i).integers(1, 9, size=1 + i % 4)) for i in range(50)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu6_matches_reference(cpu: build.CPUKernels, shape: tuple[int, ...], dtype: type) -> None:
    rng = np.random.default_rng(len(shape) * 1000 + int(np.prod(shape)))
    x: np.ndarray = (rng.standard_normal(shape) * 5).astype(dtype)
    dy: np.ndarray = rng.standard_normal(shape).astype(dtype)
    y = cpu.relu6_forward(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, ref.relu6(x))  # exact: only comparisons and copies
    np.testing.assert_array_equal(cpu.relu6_backward(x, dy), ref.relu6_backward(x, dy))


def test_relu6_boundaries_and_nan(cpu: build.CPUKernels) -> None:
    x = np.array([-np.inf, -1.0, -0.0, 0.0, 1e-30, 3.0, 6.0 - 1e-6, 6.0, 6.5, np.inf, np.nan], np.float32)
    y = cpu.relu6_forward(x)
    np.testing.assert_array_equal(y, ref.relu6(x))  # NaN positions compare equal here
    assert np.isnan(y[-1])
    dx = cpu.relu6_backward(x, np.ones_like(x))
    np.testing.assert_array_equal(dx, [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(dx, ref.relu6_backward(x, np.ones_like(x)))


def test_relu6_in_place(cpu: build.CPUKernels) -> None:
    """In place (Caffe's bottom == top): forward overwrites x; backward given y gives the same mask."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 4, 5)) * 5).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    expect_y, expect_dx = ref.relu6(x), ref.relu6_backward(x, dy)
    buf = x.copy()
    out = cpu.relu6_forward(buf, out=buf)
    assert out is buf
    np.testing.assert_array_equal(buf, expect_y)
    np.testing.assert_array_equal(cpu.relu6_backward(buf, dy), expect_dx)  # mask from y, not x


def test_relu6_gradient_finite_differences() -> None:
    """The reference's gradient equals central differences away from the kinks at 0 and 6."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 9, size=200)
    x = x[(np.abs(x) > 1e-3) & (np.abs(x - 6) > 1e-3)]
    eps = 1e-6
    numeric = (ref.relu6(x + eps) - ref.relu6(x - eps)) / (2 * eps)
    np.testing.assert_allclose(ref.relu6_backward(x, np.ones_like(x)), numeric, atol=1e-8)
