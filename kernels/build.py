"""Compile the kernels' plain-C++ (and CUDA) math into shared libraries and call them via ctypes.

The CPU library is built with the system C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``)
from ``relu6/relu6_cpu.cpp`` and ``depthwise_conv/depthwise_conv_cpu.cpp`` and cached in
``$TRANSPILER_KERNELS_CACHE`` (default ``$XDG_CACHE_HOME/transpiler-kernels``, or the temp dir when
that is not writable) under a name keyed by the SHA-256 of the sources, headers, compiler version
and flags, so a changed source rebuilds and an unchanged one loads instantly. The CUDA library is
built the same way with ``nvcc``.

The wrappers take and return NumPy arrays (NCHW, C-contiguous) and implement exactly the math of
`transpiler.kernels.reference`:
    relu6:     y = min(max(x, 0), 6)
    depthwise: y[n,o,i,j] = b[o] + Σ_{p,q} w[o,0,p,q]·x̃[n, o/M, i·SH − pt + p·DH, j·SW − pl + q·DW]
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CPU_SOURCES",
    "CUDA_SOURCES",
    "KERNELS_DIR",
    "BuildError",
    "CPUKernels",
    "CUDAKernels",
    "DepthwiseGeometry",
    "build_cpu_library",
    "build_cuda_library",
    "cache_dir",
    "compile_shared",
    "find_cxx",
    "find_nvcc",
    "nvcc_check_compile",
]

KERNELS_DIR = Path(__file__).resolve().parent
RELU6_DIR = KERNELS_DIR / "relu6"
DEPTHWISE_DIR = KERNELS_DIR / "depthwise_conv"
INCLUDE_DIRS: tuple[Path, ...] = (RELU6_DIR, DEPTHWISE_DIR)
CPU_SOURCES: tuple[Path, ...] = (RELU6_DIR / "relu6_cpu.cpp", DEPTHWISE_DIR / "depthwise_conv_cpu.cpp")
CUDA_SOURCES: tuple[Path, ...] = (RELU6_DIR / "relu6_cuda.cu", DEPTHWISE_DIR / "depthwise_conv_cuda.cu")
CXXFLAGS: tuple[str, ...] = ("-O3", "-std=c++11", "-fPIC", "-shared", "-Wall", "-Wextra")
NVCCFLAGS: tuple[str, ...] = ("-O3", "-std=c++14", "-shared", "-Xcompiler", "-fPIC")


class BuildError(RuntimeError):
    """A compiler was missing or failed; the message carries its command line and output."""


def find_cxx() -> str | None:
    """The C++ compiler to use: $CXX, else the first of c++, g++, clang++ on PATH."""
    env = os.environ.get("CXX")
    if env:
        return shutil.which(env) or env
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def find_nvcc() -> str | None:
    """nvcc: $NVCC, else PATH, else $CUDA_HOME/bin/nvcc or /usr/local/cuda/bin/nvcc."""
    env = os.environ.get("NVCC")
    if env:
        return shutil.which(env) or env
    path = shutil.which("nvcc")
    if path:
        return path
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return None


def cache_dir() -> Path:
    """Writable cache directory for built libraries (created on demand)."""
    candidates: list[Path] = []
    if os.environ.get("TRANSPILER_KERNELS_CACHE"):
        candidates.append(Path(os.environ["TRANSPILER_KERNELS_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append((Path(xdg) if xdg else Path.home() / ".cache") / "transpiler-kernels")
    candidates.append(Path(tempfile.gettempdir()) / f"transpiler-kernels-{os.getuid()}")
    for cand in candidates:
        try:
            cand.mkdir(parents=True, exist_ok=True)
            probe = cand / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            return cand
        except OSError:
            continue
    raise BuildError(f"no writable cache directory among {[str(c) for c in candidates]}")


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run {cmd[0]}: {exc}") from exc


def _compiler_id(compiler: str) -> str:
    proc = _run([compiler, "--version"])
    return proc.stdout.strip()


def _source_digest(files: Iterable[Path]) -> hashlib._Hash:
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h


def compile_shared(
    sources: Sequence[Path],
    *,
    compiler: str,
    flags: Sequence[str],
    name: str,
    include_dirs: Sequence[Path] = INCLUDE_DIRS,
    force: bool = False,
) -> Path:
    """Compile `sources` into a cached shared library ``<cache>/<name>-<hash>.so`` and return its path.

    The hash covers the sources, every header in `include_dirs`, the compiler's version and the flags.
    The library is written under a temporary name and renamed, so concurrent builds are safe.
    """
    headers = [p for d in include_dirs for p in d.iterdir() if p.suffix in (".hpp", ".h", ".cuh")]
    digest = _source_digest([*sources, *headers])
    digest.update(_compiler_id(compiler).encode())
    digest.update("\0".join(flags).encode())
    out = cache_dir() / f"{name}-{digest.hexdigest()[:16]}.so"
    if out.exists() and not force:
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = [compiler, *flags, *(f"-I{d}" for d in include_dirs), *map(str, sources), "-o", str(tmp)]
    proc = _run(cmd)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise BuildError(f"build failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    os.replace(tmp, out)
    return out


def build_cpu_library(force: bool = False) -> Path:
    """Build (or find in the cache) the CPU kernels' shared library."""
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (set $CXX or install g++)")
    extra = tuple(os.environ.get("TRANSPILER_KERNELS_CXXFLAGS", "").split())
    return compile_shared(CPU_SOURCES, compiler=cxx, flags=(*CXXFLAGS, *extra), name="tk_cpu", force=force)


def build_cuda_library(arch_flags: Sequence[str] = ("-arch=native",), force: bool = False) -> Path:
    """Build (or find in the cache) the CUDA kernels' shared library (needs nvcc)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found (set $NVCC or $CUDA_HOME)")
    return compile_shared(CUDA_SOURCES, compiler=nvcc, flags=(*NVCCFLAGS, *arch_flags), name="tk_cuda",
                          force=force)


def nvcc_check_compile(archs: Sequence[str], out_dir: Path) -> list[Path]:
    """Compile every CUDA source to an object with one ``-gencode arch=compute_XX,code=sm_XX`` per
    entry of `archs` (e.g. ``["75", "90"]``); returns the objects, raises BuildError on failure."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found")
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    objects = []
    for src in CUDA_SOURCES:
        obj = out_dir / f"{src.stem}.o"
        cmd = [nvcc, "-O3", "-std=c++14", "-Xcompiler", "-fPIC,-Wall", *gencode,
               *(f"-I{d}" for d in INCLUDE_DIRS), "-c", str(src), "-o", str(obj)]
        proc = _run(cmd)
        if proc.returncode != 0:
            raise BuildError(f"nvcc failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        objects.append(obj)
    return objects


@dataclass(frozen=True)
class DepthwiseGeometry:
    """The 15 integers of the C ABI's geometry array, in its order."""

    num: int
    channels: int
    multiplier: int
    height: int
    width: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0

    @classmethod
    def of(
        cls,
        x_shape: Sequence[int],
        w_shape: Sequence[int],
        stride: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        multiplier: int | None = None,
    ) -> DepthwiseGeometry:
        n, c, h, w = x_shape
        if len(w_shape) != 4 or w_shape[1] != 1 or w_shape[0] % c:
            raise ValueError(f"weight shape {tuple(w_shape)} is not (C·M)×1×KH×KW for C={c}")
        m = w_shape[0] // c
        if multiplier is not None and multiplier != m:
            raise ValueError(f"multiplier={multiplier} but weight {tuple(w_shape)} implies {m}")
        return cls(n, c, m, h, w, w_shape[2], w_shape[3], stride[0], stride[1], dilation[0], dilation[1],
                   *pads)

    def as_array(self) -> ctypes.Array[ctypes.c_int]:
        vals = (self.num, self.channels, self.multiplier, self.height, self.width, self.kernel_h,
                self.kernel_w, self.stride_h, self.stride_w, self.dilation_h, self.dilation_w,
                self.pad_top, self.pad_bottom, self.pad_left, self.pad_right)
        return (ctypes.c_int * 15)(*vals)

    @property
    def out_hw(self) -> tuple[int, int]:
        eh = self.dilation_h * (self.kernel_h - 1) + 1
        ew = self.dilation_w * (self.kernel_w - 1) + 1
        return ((self.height + self.pad_top + self.pad_bottom - eh) // self.stride_h + 1,
                (self.width + self.pad_left + self.pad_right - ew) // self.stride_w + 1)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.num, self.channels * self.multiplier, *self.out_hw)


_P = ctypes.c_void_p
_I = ctypes.c_int
_LL = ctypes.c_longlong
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def _ptr(a: NDArray[Any] | None) -> int | None:
    return None if a is None else a.ctypes.data


class _Kernels:
    """Shared argument handling of the CPU and CUDA wrappers."""

    lib: ctypes.CDLL
    dtypes: tuple[np.dtype[Any], ...] = (np.dtype(np.float32), np.dtype(np.float64))

    def _prepare(self, dtype: np.dtype[Any], *arrays: NDArray[Any] | None) -> list[NDArray[Any] | None]:
        if dtype not in self.dtypes:
            raise TypeError(f"dtype {dtype} not supported here (supported: {[str(d) for d in self.dtypes]})")
        return [None if a is None else np.ascontiguousarray(a, dtype=dtype) for a in arrays]

    def _fn(self, name: str, dtype: np.dtype[Any]) -> Any:
        return getattr(self.lib, f"{name}_{_SUFFIX[dtype]}")

    @staticmethod
    def _check_rc(rc: int, what: str) -> None:
        if rc == -1:
            raise ValueError(f"{what}: invalid depthwise geometry")
        if rc != 0:
            raise RuntimeError(f"{what}: CUDA error {rc}")

    @staticmethod
    def _dtype(*arrays: NDArray[Any] | None) -> np.dtype[Any]:
        present = [np.asarray(a) for a in arrays if a is not None]
        dt = np.result_type(*present)
        return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


class CPUKernels(_Kernels):
    """ctypes wrapper of the CPU library (float32 and float64)."""

    def __init__(self, library: Path | None = None) -> None:
        self.path = library or build_cpu_library()
        self.lib = ctypes.CDLL(str(self.path))
        for sfx in ("f32", "f64"):
            for nm in ("forward", "backward_data", "backward_weight"):
                getattr(self.lib, f"tk_dwconv_{nm}_{sfx}").argtypes = [_P] * (5 if nm == "forward" else 4)
            # getattr (not lib[...]): CDLL caches attribute lookups, so the argtypes stick.
            getattr(self.lib, f"tk_dwconv_backward_bias_{sfx}").argtypes = [_P, _P, _P]
            getattr(self.lib, f"tk_relu6_forward_{sfx}").argtypes = [_P, _P, _LL]
            getattr(self.lib, f"tk_relu6_forward_{sfx}").restype = None
            getattr(self.lib, f"tk_relu6_backward_{sfx}").argtypes = [_P, _P, _P, _LL]
            getattr(self.lib, f"tk_relu6_backward_{sfx}").restype = None
        self.lib.tk_dwconv_output_size.argtypes = [_P, _P]

    def relu6_forward(self, x: NDArray[Any], out: NDArray[Any] | None = None) -> NDArray[Any]:
        """y = min(max(x, 0), 6). `out` may be `x` itself (in place) when contiguous."""
        dt = self._dtype(x)
        (xc,) = self._prepare(dt, x)
        assert xc is not None
        y = np.empty_like(xc) if out is None else out
        if y.dtype != dt or not y.flags.c_contiguous or y.shape != xc.shape:
            raise ValueError("out must be C-contiguous with the shape and dtype of x")
        self._fn("tk_relu6_forward", dt)(_ptr(xc), _ptr(y), xc.size)
        return y

    def relu6_backward(self, x: NDArray[Any], dy: NDArray[Any]) -> NDArray[Any]:
        """dx = dy where 0 < x < 6, else 0."""
        dt = self._dtype(x, dy)
        xc, dyc = self._prepare(dt, x, dy)
        assert xc is not None and dyc is not None
        dx = np.empty_like(dyc)
        self._fn("tk_relu6_backward", dt)(_ptr(xc), _ptr(dyc), _ptr(dx), xc.size)
        return dx

    def depthwise_forward(
        self,
        x: NDArray[Any],
        w: NDArray[Any],
        b: NDArray[Any] | None = None,
        stride: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        multiplier: int | None = None,
    ) -> NDArray[Any]:
        """Depthwise convolution (NCHW, w (C·M)×1×KH×KW, pads top/bottom/left/right)."""
        dt = self._dtype(x, w, b)
        xc, wc, bc = self._prepare(dt, x, w, b)
        assert xc is not None and wc is not None
        g = DepthwiseGeometry.of(xc.shape, wc.shape, stride, pads, dilation, multiplier)
        y = np.empty(g.out_shape, dtype=dt)
        rc = self._fn("tk_dwconv_forward", dt)(g.as_array(), _ptr(xc), _ptr(wc), _ptr(bc), _ptr(y))
        self._check_rc(rc, "depthwise forward")
        return y

    def depthwise_backward(
        self,
        dy: NDArray[Any],
        x: NDArray[Any],
        w: NDArray[Any],
        stride: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        multiplier: int | None = None,
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        """(dL/dx, dL/dw, dL/db) given dL/dy (weight/bias gradients start from zero here)."""
        dt = self._dtype(dy, x, w)
        dyc, xc, wc = self._prepare(dt, dy, x, w)
        assert dyc is not None and xc is not None and wc is not None
        g = DepthwiseGeometry.of(xc.shape, wc.shape, stride, pads, dilation, multiplier)
        if dyc.shape != g.out_shape:
            raise ValueError(f"dy has shape {dyc.shape}, expected {g.out_shape}")
        geom = g.as_array()
        dx = np.empty_like(xc)
        dw = np.zeros_like(wc)
        db = np.zeros(wc.shape[0], dtype=dt)
        rc = self._fn("tk_dwconv_backward_data", dt)(geom, _ptr(dyc), _ptr(wc), _ptr(dx))
        self._check_rc(rc, "depthwise backward (data)")
        rc = self._fn("tk_dwconv_backward_weight", dt)(geom, _ptr(dyc), _ptr(xc), _ptr(dw))
        self._check_rc(rc, "depthwise backward (weight)")
        rc = self._fn("tk_dwconv_backward_bias", dt)(geom, _ptr(dyc), _ptr(db))
        self._check_rc(rc, "depthwise backward (bias)")
        return dx, dw, db


class CUDAKernels(_Kernels):
    """ctypes wrapper of the CUDA library's host-pointer entry points (float32; needs a GPU)."""

    dtypes = (np.dtype(np.float32),)

    def __init__(self, library: Path | None = None) -> None:
        self.path = library or build_cuda_library()
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.tk_cuda_device_count.argtypes = []
        self.lib.tk_dwconv_forward_cuda_host_f32.argtypes = [_P] * 5 + [_I]
        self.lib.tk_dwconv_backward_cuda_host_f32.argtypes = [_P] * 7
        self.lib.tk_relu6_forward_cuda_host_f32.argtypes = [_P, _P, _LL]
        self.lib.tk_relu6_backward_cuda_host_f32.argtypes = [_P, _P, _P, _LL]

    def device_count(self) -> int:
        return int(self.lib.tk_cuda_device_count())

    def relu6_forward(self, x: NDArray[Any]) -> NDArray[Any]:
        (xc,) = self._prepare(np.dtype(np.float32), x)
        assert xc is not None
        y = np.empty_like(xc)
        self._check_rc(self.lib.tk_relu6_forward_cuda_host_f32(_ptr(xc), _ptr(y), xc.size), "relu6 forward")
        return y

    def relu6_backward(self, x: NDArray[Any], dy: NDArray[Any]) -> NDArray[Any]:
        xc, dyc = self._prepare(np.dtype(np.float32), x, dy)
        assert xc is not None and dyc is not None
        dx = np.empty_like(dyc)
        rc = self.lib.tk_relu6_backward_cuda_host_f32(_ptr(xc), _ptr(dyc), _ptr(dx), xc.size)
        self._check_rc(rc, "relu6 backward")
        return dx

    def depthwise_forward(
        self,
        x: NDArray[Any],
        w: NDArray[Any],
        b: NDArray[Any] | None = None,
        stride: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        multiplier: int | None = None,
        vec: int = 0,
    ) -> NDArray[Any]:
        """Forward on the GPU; vec = outputs per thread (0: the launcher's choice, 1, 2 or 4)."""
        xc, wc, bc = self._prepare(np.dtype(np.float32), x, w, b)
        assert xc is not None and wc is not None
        g = DepthwiseGeometry.of(xc.shape, wc.shape, stride, pads, dilation, multiplier)
        y = np.empty(g.out_shape, dtype=np.float32)
        rc = self.lib.tk_dwconv_forward_cuda_host_f32(g.as_array(), _ptr(xc), _ptr(wc), _ptr(bc), _ptr(y), vec)
        if rc == -2:
            raise ValueError(f"vec={vec} does not apply to this geometry")
        self._check_rc(rc, "depthwise forward (CUDA)")
        return y

    def depthwise_backward(
        self,
        dy: NDArray[Any],
        x: NDArray[Any],
        w: NDArray[Any],
        stride: Sequence[int] = (1, 1),
        pads: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        multiplier: int | None = None,
    ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        dyc, xc, wc = self._prepare(np.dtype(np.float32), dy, x, w)
        assert dyc is not None and xc is not None and wc is not None
        g = DepthwiseGeometry.of(xc.shape, wc.shape, stride, pads, dilation, multiplier)
        dx = np.empty_like(xc)
        dw = np.zeros_like(wc)
        db = np.zeros(wc.shape[0], dtype=np.float32)
        rc = self.lib.tk_dwconv_backward_cuda_host_f32(g.as_array(), _ptr(dyc), _ptr(xc), _ptr(wc), _ptr(dx),
                                                       _ptr(dw), _ptr(db))
        self._check_rc(rc, "depthwise backward (CUDA)")
        return dx, dw, db
