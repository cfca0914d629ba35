"""Isolated, cached virtual environments for the deployment toolchains (MNN, x2paddle + Paddle, tpu-mlir, RKNN).

Each toolchain pins its own numpy/protobuf/onnx/torch; none of that may leak into the converter's environment, so
each gets its own venv, ``~/.cache/transpiler-toolchains/<name>-<version>``, built once by the first test that
needs it and reused (``.complete`` marks a finished build; a half-built folder is rebuilt). An ``flock`` on
``<folder>.lock`` serialises parallel pytest processes: the second one waits and then finds the venv built.

Every venv gets ``_transpiler_offline.py`` + a ``.pth`` that imports it: with ``TRANSPILER_OFFLINE=1`` in the
environment, any Python started from that venv (the driver, and the tools it spawns, e.g. tpu-mlir's
``model_transform``) has IPv4/IPv6 ``connect`` raise, and ``os.system`` refuse ``pip`` (MNN's ``MNN.tools``
runs ``pip install`` and then contacts a telemetry endpoint on import). :func:`run_driver` also runs the driver in
a new, empty network namespace (``unshare -n``) where the kernel allows it: then nothing leaves the machine
whatever the code does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DRIVERS = Path(__file__).resolve().parent / "drivers"
OFFLINE_MODULE = '''"""Installed by the tf2caffe toolchain tests: with TRANSPILER_OFFLINE=1, no network, no pip."""
import os
import socket

if os.environ.get("TRANSPILER_OFFLINE") == "1":
    class NetworkBlocked(OSError):
        pass

    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _system = os.system

    def _guard(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"tf2caffe toolchain tests: network access blocked ({address!r})")

    def connect(self, address):
        _guard(self, address)
        return _connect(self, address)

    def connect_ex(self, address):
        _guard(self, address)
        return _connect_ex(self, address)

    def system(command):
        if "pip" in str(command):
            raise NetworkBlocked(f"tf2caffe toolchain tests: os.system({command!r}) blocked")
        return _system(command)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    os.system = system
'''


class ToolchainUnavailable(RuntimeError):
    """The toolchain cannot be installed or run here (the reason is the message)."""


@dataclass(frozen=True)
class Toolchain:
    name: str
    version: str
    python: str  # interpreter that creates the venv ("python3.11", "python3.10")
    steps: tuple[tuple[str, ...], ...]  # pip arguments, one install per step
    driver: str
    # site-packages paths moved aside after installing (tpu-mlir's bundled glibc)
    disable: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


TOOLCHAINS: dict[str, Toolchain] = {
    "mnn": Toolchain("mnn", "3.6.1", "python3.11", (("MNN==3.6.1",),), "mnn_driver.py"),
    "paddle": Toolchain("paddle", "1.6.0-2.6.2", "python3.11", (
        ("x2paddle==1.6.0", "paddlepaddle==2.6.2", "numpy==1.26.4", "protobuf==3.20.3", "six", "requests"),
    ), "paddle_driver.py"),
    "tpu-mlir": Toolchain("tpu-mlir", "1.30.2", "python3.10", (
        ("tpu_mlir==1.30.2",),
        ("onnx==1.14.1", "psutil", "flatbuffers==24.12.23", "onnxruntime==1.16.3", "six==1.16.0"),
        ("--no-deps", "torch==1.12.1"),
        ("typing-extensions",),
    ), "tpu_driver.py", disable=("tpu_mlir/lib/third_party/libc.so.6", "tpu_mlir/lib/third_party/libm.so.6",
                                 "tpu_mlir/lib/third_party/libpthread.so.0")),
    "ncnn": Toolchain("ncnn", "1.0.20261020", "python3.11", (
        ("--no-deps", "caffe2onnx==2.0.1"),  # pins onnx==1.6.0, which has no cp311 wheel
        ("numpy==1.23.5", "protobuf==3.20.3", "onnx==1.17.0", "onnxruntime==1.26.0", "ncnn==1.0.20261020"),
        ("--no-deps", "pnnx==20261020"),  # its console script imports torch; the binary inside does not
    ), "ncnn_driver.py"),
    "rknn": Toolchain("rknn", "2.5.0", "python3.11", (
        ("--no-deps", "rknn-toolkit2==2.5.0"),
        ("numpy==1.26.4", "protobuf==4.25.4", "onnx==1.18.0", "onnxruntime==1.23.2", "psutil", "ruamel.yaml",
         "scipy==1.13.1", "tqdm", "opencv-python-headless==4.10.0.84", "fast-histogram"),
        ("--no-deps", "torch==2.13.0+cpu"),  # PyPI's Linux torch 2.4.0 (rknn's pin) is the CUDA build
        ("filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec"),
    ), "rknn_driver.py"),
}


def cache_root() -> Path:
    root = Path(os.environ.get("TRANSPILER_TOOLCHAIN_CACHE", Path.home() / ".cache" / "transpiler-toolchains"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _find_python(name: str) -> str:
    if name == f"python{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    minor = name.removeprefix("python")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{minor}.*/bin/python{minor}")) if pyenv.is_dir() else []
    found = str(candidates[-1]) if candidates else shutil.which(name)  # a pyenv shim may name a version not set
    if found is None:
        raise ToolchainUnavailable(f"{name} not found (needed to create the venv)")
    try:  # a pyenv shim that names a version pyenv lacks fails here, not halfway through the build
        subprocess.run([found, "-c", "import venv"], check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ToolchainUnavailable(f"{name} ({found}) cannot create a venv: {exc}") from exc
    return found


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def ensure_env(name: str) -> Path:
    """The toolchain's venv folder, built on first use (minutes) and cached; raises ToolchainUnavailable."""
    tc = TOOLCHAINS[name]
    venv = cache_root() / tc.key
    done = venv / ".complete"
    if done.exists():
        return venv
    with _locked(cache_root() / f"{tc.key}.lock"):
        if done.exists():  # another process built it while this one waited
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        python = _find_python(tc.python)
        start = time.perf_counter()
        log = []
        try:
            subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            for step in tc.steps:
                proc = subprocess.run([*pip, *step], capture_output=True, text=True, timeout=1800)
                log.append(proc.stdout + proc.stderr)
                if proc.returncode != 0:
                    raise ToolchainUnavailable(f"{tc.key}: pip install {' '.join(step)} failed: "
                                               f"{proc.stderr.strip()[-800:]}")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise ToolchainUnavailable(f"{tc.key}: venv build failed: {exc}") from exc
        except ToolchainUnavailable:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        site = site_packages(venv)
        for rel in tc.disable:
            target = site / rel
            if target.exists():
                aside = site / "_disabled_by_tf2caffe" / rel
                aside.parent.mkdir(parents=True, exist_ok=True)
                target.rename(aside)
        (site / "_transpiler_offline.py").write_text(OFFLINE_MODULE)
        (site / "_transpiler_offline.pth").write_text("import _transpiler_offline\n")
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        done.write_text(json.dumps({"toolchain": tc.key, "build_s": round(time.perf_counter() - start, 1),
                                    "size_mb": round(size / 2**20)}))
        return venv


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_UNSHARE: list[bool] = []


def run_driver(name: str, spec: dict[str, Any], workdir: Path, timeout: float = 1800) -> dict[str, Any]:
    """Run the toolchain's driver on ``spec`` (see drivers/common.py) offline; its JSON answer.

    Raises ToolchainUnavailable where the venv cannot be built, AssertionError where the driver fails
    (a toolchain that installed but cannot load or run our files is a result, reported with its output)."""
    venv = ensure_env(name)
    tc = TOOLCHAINS[name]
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "spec.json"
    answer = workdir / "answer.json"
    answer.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "answer": str(answer)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "LD_LIBRARY"))}
    env.update({"TRANSPILER_OFFLINE": "1", "VIRTUAL_ENV": str(venv), "OMP_NUM_THREADS": "2",
                "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **tc.env})
    if not _UNSHARE:
        _UNSHARE.append(_unshare_works())
    prefix = ["unshare", "-rn"] if _UNSHARE[0] else []
    cmd = [*prefix, str(venv / "bin" / "python"), str(DRIVERS / tc.driver), str(spec_path)]
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not answer.exists():
        raise AssertionError(f"{tc.key} driver failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    result: dict[str, Any] = json.loads(answer.read_text())
    result["offline"] = "network namespace" if prefix else "sockets blocked"
    result["log_tail"] = (proc.stdout + proc.stderr)[-2000:]
    return result


def results_dir() -> Path:
    """Where the tests record what they saw (TRANSPILER_TOOLCHAIN_RESULTS, default tests/toolchains/results)."""
    folder = Path(os.environ.get("TRANSPILER_TOOLCHAIN_RESULTS", Path(__file__).resolve().parent / "results"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_result(toolchain: str, model: str, flavor: str, fields: dict[str, Any], variant: str | None = None) -> Path:
    """One JSON per (toolchain, model, flavor[, variant: a second execution path of the toolchain, e.g. RKNN's
    float32 reference beside its float16 simulator]), replaced by each run: the compatibility table's input."""
    record = {"toolchain": toolchain, "toolchain_version": TOOLCHAINS[toolchain].version, "model": model,
              "flavor": flavor, "recorded": time.strftime("%Y-%m-%d"), **fields}
    path = results_dir() / f"{toolchain}__{model}__{flavor}{f'__{variant}' if variant else ''}.json"
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def record_forms(toolchain: str, observed: dict[str, dict[str, Any]]) -> Path:
    """What the toolchain did with each layer form (test_layer_forms.py): the flavors' evidence."""
    record = {"toolchain": toolchain, "toolchain_version": TOOLCHAINS[toolchain].version,
              "recorded": time.strftime("%Y-%m-%d"), "forms": observed}
    path = results_dir() / f"forms__{toolchain}.json"
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def env_info(name: str) -> dict[str, Any]:
    """What the build recorded (seconds, MB), for reports."""
    done = cache_root() / TOOLCHAINS[name].key / ".complete"
    return json.loads(done.read_text()) if done.exists() else {}


if __name__ == "__main__":  # python tests/toolchains/toolchain_envs.py mnn  -> builds (or finds) the venv
    for arg in sys.argv[1:]:
        print(arg, ensure_env(arg), env_info(arg))
