"""Our layers compile in Caffe's CUDA configuration, against the real SSD-Caffe tree they were installed in.

The real-Caffe build the tests run is CPU_ONLY, which skips every `.cu` file and takes the `STUB_GPU`
branch of the layer `.cpp` files. Here the installed files are compiled as a CUDA build of Caffe would:
the `.cu` files (layer wrappers' Forward_gpu/Backward_gpu and the kernels) with nvcc, the `.cpp` wrappers
with the C++ compiler, both without CPU_ONLY, against the tree's headers (which then include
cuda_runtime.h, cuBLAS and cuRAND: the latter two from NVIDIA's wheels, tests/real_caffe.py). Nothing
is linked or run: this machine has no GPU (the kernels themselves are checked on the CPU through their
emulation, and on a GPU by tests/kernels/test_kernels_gpu.py where one exists).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import real_caffe_piece

from transpiler.kernels import build
from transpiler.kernels.install import LAYERS

CUDA_INCLUDE = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"


@pytest.fixture(scope="module")
def cuda_build_flags(real_caffe: Any) -> list[str]:
    from real_caffe import cuda_library_headers

    headers = real_caffe_piece(cuda_library_headers)
    built = real_caffe.runner.parent
    return ["-std=c++14", f"-I{built / 'include'}", f"-I{built / 'gen'}", f"-I{built / 'layers'}",
            "-I/usr/include/hdf5/serial", *(f"-I{h}" for h in headers)]


def _sources(suffix: str) -> list[str]:
    return [name for spec in LAYERS.values() for name in spec.sources if name.endswith(suffix)]


@pytest.mark.parametrize("name", _sources(".cu"))
def test_cu_files_compile_with_nvcc_in_a_cuda_caffe(nvcc: str, real_caffe: Any, cuda_build_flags: list[str],
                                                    name: str, tmp_path: Path) -> None:
    source = real_caffe.runner.parent / "layers" / name
    obj = tmp_path / f"{name}.o"
    proc = subprocess.run([nvcc, "-c", "-arch=sm_90", "-Xcompiler", "-fPIC", *cuda_build_flags, str(source),
                           "-o", str(obj)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert obj.stat().st_size > 0


@pytest.mark.parametrize("name", [n for n in _sources(".cpp") if n.endswith("_layer.cpp")])
def test_layer_cpp_files_compile_without_cpu_only(real_caffe: Any, cuda_build_flags: list[str], name: str,
                                                  tmp_path: Path) -> None:
    if not (CUDA_INCLUDE / "cuda_runtime.h").exists():
        pytest.skip(f"no CUDA toolkit headers in {CUDA_INCLUDE}")
    cxx = build.find_cxx()
    assert cxx, "no C++ compiler"
    obj = tmp_path / f"{name}.o"
    proc = subprocess.run([cxx, "-c", "-fPIC", *cuda_build_flags, f"-I{CUDA_INCLUDE}",
                           str(real_caffe.runner.parent / "layers" / name), "-o", str(obj)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert obj.stat().st_size > 0
