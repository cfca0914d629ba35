"""Shared test helpers: fixture locations, real pictures, TF graph building, OpenCV execution."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))


def fixture_model(name: str) -> Path:
    path = FIXTURES / name / "model.pb"
    if not path.exists():
        pytest.fail(f"fixture {path} is missing: ../shared/fixtures must sit beside the repository")
    return path


def picture(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A scikit-image picture as RGB uint8 (H, W, 3), resized with OpenCV INTER_LINEAR if asked."""
    import cv2
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.uint8)
    if size is not None:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return img


def freeze_tf_function(fn: Callable[..., object], shape: tuple[int, ...], path: Path, dtype: str = "float32") -> Path:
    """Trace ``fn`` for one input of ``shape`` and write the frozen GraphDef to ``path``."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(shape, getattr(tf, dtype), name="input"))
    frozen = convert_variables_to_constants_v2(concrete)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path



def calibrate_batch_norm(keras: Any, model: Any, batch: np.ndarray, rng: np.random.Generator,
                         layers: Sequence[Any] | None = None) -> None:
    """Random batch-norm γ/β and biases (so a dropped or swapped term shows), then one training-mode pass with
    momentum 0 over ``batch`` (real pictures): each moving mean/variance := the statistics of its layer's real
    input, as the fixtures' README prescribes. ``layers`` defaults to ``model.layers`` (pass nested ones)."""
    for layer in model.layers if layers is None else layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
            layer.beta.assign(rng.uniform(-0.1, 0.1, layer.beta.shape).astype(np.float32))
            layer.momentum = 0.0
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(-0.1, 0.1, layer.bias.shape).astype(np.float32))
    model(batch, training=True)

@pytest.fixture
def pictures() -> Callable[..., np.ndarray]:
    return picture


@pytest.fixture(scope="session")
def real_caffe() -> object:
    """A real (SSD-)Caffe build with our layers installed (tests/real_caffe.py); built once and cached.

    Where its system packages are missing it skips, except in CI (CI set), which installs them: there a
    missing piece is a failure, never a silent skip."""
    from real_caffe import RealCaffe, build

    return RealCaffe(real_caffe_piece(build))


def real_caffe_piece(make: Callable[[], T]) -> T:
    """`make()` (a tests/real_caffe.py builder or download); where something it needs is missing, skip, except
    in CI (CI set), which installs everything: there it is a failure, never a silent skip."""
    from real_caffe import RealCaffeUnavailable

    try:
        return make()
    except RealCaffeUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real Caffe piece unavailable in CI: {exc}")
        pytest.skip(f"real Caffe piece unavailable: {exc}")


@pytest.fixture(scope="session")
def nvcc() -> str:
    """The nvcc to compile the CUDA kernels with; skips where there is none (these machines have CUDA 13)."""
    from transpiler.kernels import build

    path = build.find_nvcc()
    if path is None:
        pytest.skip("nvcc not found (set $NVCC or $CUDA_HOME): CUDA sources not compiled")
    return path


@pytest.fixture(scope="session")
def tf_keras() -> Any:
    """tf-keras (Keras 2) for the TensorFlow installed, importable by the tests.

    Its wheel is pure Python, but its one dependency is the `tensorflow` distribution, which pip would install
    beside our `tensorflow-cpu`; so the tests install it once with --no-deps into the test cache (like the
    real Caffe's sdist) and put that folder on sys.path. Where pip cannot fetch it, skip, except in CI."""
    try:
        import tf_keras as module

        return module
    except ImportError:
        pass
    import tensorflow as tf

    from transpiler.kernels.build import cache_dir

    release = ".".join(tf.__version__.split(".")[:2])
    target = cache_dir() / f"tf-keras-{release}"
    if not (target / "tf_keras").is_dir():
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".tf-keras-") as tmp:
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp,
                                   f"tf-keras=={release}.*"], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                message = f"tf-keras {release}.* could not be installed: {proc.stderr[-600:]}"
                if os.environ.get("CI"):
                    pytest.fail(message)
                pytest.skip(message)
            os.replace(tmp, target)
            Path(tmp).mkdir()  # TemporaryDirectory removes its folder on exit
    sys.path.insert(0, str(target))
    import tf_keras as module

    return module
