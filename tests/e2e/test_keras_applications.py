"""Modern Keras architectures end to end: keras.applications MobileNetV2, MobileNetV3Small/Large (both
``minimalistic`` settings), EfficientNetB0, ResNet50 and DenseNet121, each at its default size (224) and at odd
sizes, from their frozen graph and from their SavedModels
(Keras 3 ``model.export`` and ``tf.saved_model.save``), compared with TensorFlow through OpenCV dnn and
the real SSD-Caffe.

What these exercise: squeeze-excite (global pool → 1×1 convs → sigmoid / hard-sigmoid → broadcast
multiply), hard-swish ``x·relu6(x+3)/6``, swish ``x·sigmoid(x)``, ``Pad`` before ``MaxPool``
(ResNet's stem, fold-pad-into-pool), in-model ``Rescaling``/``Normalization`` (fold-affine-forward),
uneven SAME padding at odd sizes, Concat-heavy blocks (DenseNet).

Models are built with ``weights=None`` and ``classifier_activation=None`` (the outputs are the logits,
in the SavedModel's signature too), random weights and biases, and batch-norm statistics calibrated on
real pictures (momentum 0, one training-mode pass; see ``shared/fixtures/README.md``). MobileNetV3 and
EfficientNet take raw 0..255 pixels (they rescale inside), ResNet50/DenseNet121 a preprocessed [−1, 1]
picture. Feeding an in-model-rescaling network an already rescaled picture squeezes the signal into
~1/127 of its range, and calibration then amplifies TF's own float32 rounding ~100×: that (not the
conversion) was behind a 1.4e-4 / 5.3e-4 disagreement seen on MobileNetV3 once.

Rule: ``max|Δ| ≤ 1e-4 · max|ref|`` on the logits. And, for the frozen route, against TF rerun in float64
on the same graph (tf_graph.as_float64): the converted net's distance to the float64 result must be
within 4× TF float32's own distance to it (measured ratios 0.5–1.7 over these cases: the conversion computes the same
function, differing only by float32 summation order).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from conftest import calibrate_batch_norm, freeze_tf_function, picture

from transpiler.convert import ConvertOptions, convert
from transpiler.verify.runners import load_opencv_net, run_opencv, run_saved_model, run_tensorflow

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
ROUNDING_FACTOR = 4.0
CALIBRATION = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
               "colorwheel")
TEST_PICTURES = ("astronaut", "coffee")


@dataclass(frozen=True)
class Case:
    id: str
    arch: str
    height: int
    width: int
    raw_pixels: bool  # the model rescales 0..255 itself
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    # each family at its default size (224) and at odd sizes
    Case("mnv2_224", "MobileNetV2", 224, 224, False),
    Case("mnv2_a0.5_131", "MobileNetV2", 131, 131, False, {"alpha": 0.5}),
    Case("mnv3small_224", "MobileNetV3Small", 224, 224, True),
    Case("mnv3large_min_224", "MobileNetV3Large", 224, 224, True, {"minimalistic": True}),
    Case("efficientnetb0_224", "EfficientNetB0", 224, 224, True),
    Case("resnet50_224", "ResNet50", 224, 224, False),
    Case("densenet121_224", "DenseNet121", 224, 224, False),
    Case("mnv3small_96", "MobileNetV3Small", 96, 96, True),
    Case("mnv3small_min_97x113", "MobileNetV3Small", 97, 113, True, {"minimalistic": True}),
    Case("mnv3large_101", "MobileNetV3Large", 101, 101, True),
    Case("mnv3large_min_96", "MobileNetV3Large", 96, 96, True, {"minimalistic": True}),
    Case("efficientnetb0_99x96", "EfficientNetB0", 99, 96, True),
    Case("resnet50_97", "ResNet50", 97, 97, False),
    Case("densenet121_80", "DenseNet121", 80, 80, False),
]


def _input(case: Case, name: str) -> np.ndarray:
    rgb = picture(name, (case.height, case.width)).astype(np.float32)
    return rgb if case.raw_pixels else rgb / 127.5 - 1.0


def _build(case: Case) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = getattr(keras.applications, case.arch)(input_shape=(case.height, case.width, 3), weights=None,
                                                   classes=10, classifier_activation=None, **case.kwargs)
    calibrate_batch_norm(keras, model, np.stack([_input(case, p) for p in CALIBRATION]), rng)
    return model


@dataclass
class Built:
    case: Case
    frozen: Path
    frozen_out: Path
    saved: dict[str, Path]  # "export" (Keras 3 model.export) and "save" (tf.saved_model.save)
    saved_out: dict[str, Path]


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    import keras
    import tensorflow as tf

    case: Case = request.param
    tmp = tmp_path_factory.mktemp(case.id)
    model = _build(case)
    frozen = freeze_tf_function(lambda x: model(x, training=False), (1, case.height, case.width, 3),
                                tmp / "model.pb")
    model.export(str(tmp / "export"), verbose=False)
    tf.saved_model.save(model, str(tmp / "save"))
    keras.backend.clear_session()
    convert(ConvertOptions(model=frozen, out_dir=tmp / "frozen_caffe", flavor="ssd"))
    routes = ("export", "save")
    for route in routes:
        convert(ConvertOptions(model=tmp / route, out_dir=tmp / f"{route}_caffe", flavor="ssd"))
    return Built(case, frozen, tmp / "frozen_caffe", {r: tmp / r for r in routes},
                 {r: tmp / f"{r}_caffe" for r in routes})


def _opencv(out: Path, x: np.ndarray) -> np.ndarray:
    report = json.loads((out / "conversion.json").read_text())
    inp, outp = report["inputs"][0], report["outputs"][0]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    blob = np.ascontiguousarray(x.transpose(inp["permutation"]))
    return run_opencv(net, {inp["caffe_blob"]: blob}, [outp["caffe_layer"]])[outp["caffe_layer"]]


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got.reshape(ref.shape).astype(np.float64) - ref).max() / np.abs(ref).max())


def test_frozen_route_opencv(built: Built) -> None:
    refs = []
    for name in TEST_PICTURES:
        x = _input(built.case, name)[None]
        ref = run_tensorflow(built.frozen, {"input:0": x}, ["Identity:0"])["Identity:0"]
        ref64 = run_tensorflow(built.frozen, {"input:0": x}, ["Identity:0"], float64=True)["Identity:0"]
        got = _opencv(built.frozen_out, x)
        rel, own = _rel(got, ref), _rel(ref, ref64)
        print(f"{built.case.id} frozen {name}: rel {rel:.3g}, vs TF64 {_rel(got, ref64):.3g}, TF32 vs TF64 {own:.3g}")
        assert rel <= TOLERANCE, name
        assert _rel(got, ref64) <= ROUNDING_FACTOR * own, name  # no error beyond TF's own float32 rounding
        refs.append(ref)
    # The pictures must move the logits far more than the tolerance, or the check could not fail.
    assert _rel(refs[0], refs[1]) > 100 * TOLERANCE


@pytest.mark.parametrize("route", ["export", "save"])
def test_saved_model_route_opencv(built: Built, route: str) -> None:
    report = json.loads((built.saved_out[route] / "conversion.json").read_text())
    signature = report["signature"]
    (in_key,), (out_key,) = signature["inputs"], signature["outputs"]
    for name in TEST_PICTURES:
        x = _input(built.case, name)[None]
        ref = run_saved_model(built.saved[route], signature["name"], {in_key: x}, [out_key])[out_key]
        rel = _rel(_opencv(built.saved_out[route], x), ref)
        print(f"{built.case.id} SavedModel ({route}) {name}: rel {rel:.3g}")
        assert rel <= TOLERANCE, name


def test_frozen_route_real_caffe(built: Built, real_caffe: Any) -> None:
    report = json.loads((built.frozen_out / "conversion.json").read_text())
    inp, outp = report["inputs"][0], report["outputs"][0]
    x = _input(built.case, TEST_PICTURES[0])[None]
    ref = run_tensorflow(built.frozen, {"input:0": x}, ["Identity:0"])["Identity:0"]
    blobs = real_caffe.forward(built.frozen_out / "deploy.prototxt", built.frozen_out / "deploy.caffemodel",
                               [np.ascontiguousarray(x.transpose(inp["permutation"]))])
    rel = _rel(blobs[outp["caffe_blob"]], ref)
    print(f"{built.case.id} real SSD-Caffe: rel {rel:.3g}")
    assert rel <= TOLERANCE


def test_patterns_take_their_short_forms(built: Built) -> None:
    """ResNet's Pad before MaxPool is the pooling's padding (no copying convolution); an in-model rescaling
    folds into the first convolution where exact (EfficientNet with weights=None: Normalization's mean is 0,
    so x/255 has no shift) and stays one Scale where not (MobileNetV3: x/127.5 − 1 before a padded conv);
    swish's sigmoid(1·x) has no Scale."""
    from e2e_helpers import layer_types

    layers = layer_types(built.frozen_out)
    kinds = [t for _, t, _ in layers]
    first_conv = kinds.index("Convolution")
    arch = built.case.arch
    if arch == "ResNet50":
        assert not [n for n, t, _ in layers if t == "Convolution" and "pad" in n.lower()], layers[:8]
    if arch.startswith("MobileNetV3"):
        assert kinds[1:first_conv] == ["Scale"], kinds[:first_conv + 1]
    if arch == "EfficientNetB0":
        assert kinds[1:first_conv] == [], kinds[:first_conv + 1]
        by_name = {name: t for name, t, _ in layers}
        assert all(by_name.get(b[0]) != "Scale" for _, t, b in layers if t == "Sigmoid")
