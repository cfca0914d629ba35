"""Keras model files (``.keras``, legacy ``.h5``) converted without TensorFlow, against Keras' own predictions.

Models are built at test time with Keras 3 (installed with TensorFlow) and tf-keras (the ``tf_keras`` fixture),
saved as ``.keras`` and ``.h5``, converted by :func:`transpiler.convert.convert` (which reads the file with h5py
only), run in OpenCV dnn, and compared with the Keras model's own output on real pictures:
``max|Δ| ≤ 1e-4 · max|ref|``. Weights are random with **calibrated** batch-norm statistics (momentum 0, one
training-mode pass over real pictures: each moving mean/variance is that of the layer's actual input, as in
``shared/fixtures/README.md``), and two pictures must move every output far beyond the tolerance, so a wrong
conversion cannot pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import cv2
import skimage.data as skdata
from conftest import calibrate_batch_norm
from e2e_helpers import assert_converts_without_heavy_imports

from transpiler.convert import ConvertOptions, convert
from transpiler.frontends.tf import InputSpec
from transpiler.verify.runners import load_opencv_net, run_opencv

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
DEPENDENCE = 100 * TOLERANCE
CALIBRATION = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")
PICTURES = ("astronaut", "camera", "coffee")


def picture(name: str, size: int) -> np.ndarray:
    img = np.asarray(getattr(skdata, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = cv2.resize(img[..., :3].astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    return img.astype(np.float32)


def calibrate(keras: Any, model: Any, size: int, scale: float, seed: int = 0) -> None:
    """Random γ/β and biases, then moving statistics := the statistics of each layer's real input."""
    batch = np.stack([picture(p, size) for p in CALIBRATION]) * scale
    calibrate_batch_norm(keras, model, batch, np.random.default_rng(seed), _all_layers(model))


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found += _all_layers(layer)
    return found


def zoo_model(keras: Any, keras3: bool) -> Any:
    """Most layer types, in a functional model nesting another: conv+BN+relu6, depthwise, separable, transposed
    conv, padding/cropping, pooling, add/concat/average/maximum, upsampling, rescaling, normalization, a
    squeeze-excite block (multiply), hard-swish/hard-sigmoid, swish, dense."""
    L = keras.layers
    inp = keras.Input((32, 32, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = L.Normalization(mean=[0.1, -0.2, 0.05], variance=[0.8, 1.2, 0.5])(x)
    adapted = L.Normalization(name="adapted")  # mean/variance stored as variables, not in the config
    adapted.adapt(np.random.default_rng(5).normal([0.3, -0.1, 0.2], [0.5, 1.5, 0.9], (64, 4, 4, 3)).astype("float32"))
    x = adapted(x)
    x = L.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = L.Conv2D(16, 3, strides=2, padding="valid", name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = L.BatchNormalization(name="dw_bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    # squeeze-excite: global pool (keepdims) → 1×1 convs → hard sigmoid → multiply with the map
    s = L.GlobalAveragePooling2D(keepdims=True)(y)
    s = L.Conv2D(4, 1, activation="relu")(s)
    s = L.Conv2D(16, 1, activation="hard_sigmoid")(s)
    y = L.Multiply(name="se_mul")([y, s])
    x = L.Add(name="residual")([x, y])
    x = L.SeparableConv2D(24, 3, padding="same", name="sep")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("hard_swish" if keras3 else "swish")(x)
    a = L.MaxPooling2D(3, strides=2, padding="same")(x)
    b = L.AveragePooling2D(2)(x)
    b = L.Conv2D(24, 1, activation="swish" if keras3 else "sigmoid")(b)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Cropping2D(((1, 0), (0, 1)))(x)
    x = L.UpSampling2D(2)(x)
    x = L.Conv2DTranspose(8, 3, strides=2, padding="same", name="up_conv")(x)
    x = L.Conv2D(8, 3, strides=2, dilation_rate=1, padding="same", activation="tanh")(x)
    m = L.Maximum()([x, L.Activation("sigmoid")(x)])
    x = L.Average()([x, m])
    x = L.LeakyReLU(0.1)(x)
    x = L.Dropout(0.5)(x)
    x = L.GlobalMaxPooling2D()(x)
    x = L.Dense(10, name="logits")(x)
    inner = keras.Model(inp, x, name="zoo_inner")
    outer_in = keras.Input((32, 32, 3), name="pixels")
    out = L.Reshape((2, 5))(inner(outer_in))
    out = L.Permute((2, 1))(out)
    out = L.Flatten()(out)
    return keras.Model(outer_in, out, name="zoo")


@dataclass
class Saved:
    path: Path
    size: int
    model: Any
    scale: float  # the model's input: pixels × scale (1 for the zoo, which rescales itself)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x, training=False))


def _save(keras: Any, model: Any, tmp: Path, name: str, size: int, scale: float) -> Saved:
    model.save(tmp / name)
    return Saved(tmp / name, size, model, scale)


@pytest.fixture(scope="module")
def keras3() -> Any:
    import keras

    return keras


@pytest.fixture(scope="module")
def saved_models(keras3: Any, tf_keras: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Saved]:
    tmp = tmp_path_factory.mktemp("keras_files")
    found: dict[str, Saved] = {}
    keras3.utils.set_random_seed(0)
    zoo = zoo_model(keras3, keras3=True)
    calibrate(keras3, zoo, 32, 1.0)
    found["zoo_keras3.keras"] = _save(keras3, zoo, tmp, "zoo_keras3.keras", 32, 1.0)
    found["zoo_keras3.h5"] = _save(keras3, zoo, tmp, "zoo_keras3.h5", 32, 1.0)
    mnv2 = keras3.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=17,
                                           classifier_activation=None)
    calibrate(keras3, mnv2, 96, 1 / 127.5)
    found["mnv2_keras3.keras"] = _save(keras3, mnv2, tmp, "mnv2_keras3.keras", 96, 1 / 127.5)
    found["mnv2_keras3.h5"] = _save(keras3, mnv2, tmp, "mnv2_keras3.h5", 96, 1 / 127.5)
    tf_keras.utils.set_random_seed(1)
    zoo2 = zoo_model(tf_keras, keras3=False)
    calibrate(tf_keras, zoo2, 32, 1.0, seed=1)
    found["zoo_tfkeras.h5"] = _save(tf_keras, zoo2, tmp, "zoo_tfkeras.h5", 32, 1.0)
    mnv2b = tf_keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=17,
                                              classifier_activation=None)
    calibrate(tf_keras, mnv2b, 96, 1 / 127.5, seed=1)
    found["mnv2_tfkeras.h5"] = _save(tf_keras, mnv2b, tmp, "mnv2_tfkeras.h5", 96, 1 / 127.5)
    return found


@dataclass
class Converted:
    saved: Saved
    report: dict[str, Any]
    net: Any
    out_dir: Path

    def run(self, x: np.ndarray) -> np.ndarray:
        inp, out = self.report["inputs"][0], self.report["outputs"][0]
        blob = np.ascontiguousarray(np.transpose(x, inp["permutation"]))
        got = run_opencv(self.net, {inp["caffe_blob"]: blob}, [out["caffe_layer"]])[out["caffe_layer"]]
        assert out["permutation"] == list(range(len(out["tf_shape"]))), out  # the outputs here are (1, N)
        return got.reshape(out["tf_shape"])


@pytest.fixture(scope="module")
def converted(saved_models: dict[str, Saved], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    found = {}
    for name, saved in saved_models.items():
        out_dir = tmp_path_factory.mktemp("caffe") / name
        convert(ConvertOptions(model=saved.path, out_dir=out_dir))
        report = json.loads((out_dir / "conversion.json").read_text())
        net = load_opencv_net(out_dir / "deploy.prototxt", out_dir / "deploy.caffemodel")
        found[name] = Converted(saved, report, net, out_dir)
    return found


FILES = ["zoo_keras3.keras", "zoo_keras3.h5", "zoo_tfkeras.h5", "mnv2_keras3.keras", "mnv2_keras3.h5",
         "mnv2_tfkeras.h5"]


@pytest.mark.parametrize("name", FILES)
def test_matches_keras_prediction(converted: dict[str, Converted], name: str) -> None:
    c = converted[name]
    errors = []
    for pic in PICTURES:
        x = picture(pic, c.saved.size)[None] * c.saved.scale
        want = c.saved.predict(x).astype(np.float64)
        got = c.run(x)
        assert got.shape == want.shape, (got.shape, want.shape)
        err, scale = float(np.max(np.abs(got - want))), float(np.max(np.abs(want)))
        assert scale > 0
        errors.append(err / scale)
    print(f"{name}: max|Δ|/max|ref| over {len(PICTURES)} pictures: {max(errors):.2e}")
    assert max(errors) <= TOLERANCE, (name, errors)


@pytest.mark.parametrize("name", ["zoo_keras3.keras", "mnv2_tfkeras.h5"])
def test_outputs_depend_on_picture(converted: dict[str, Converted], name: str) -> None:
    c = converted[name]
    a = c.run(picture("astronaut", c.saved.size)[None] * c.saved.scale)
    b = c.run(picture("coffee", c.saved.size)[None] * c.saved.scale)
    assert np.max(np.abs(a - b)) > DEPENDENCE * np.max(np.abs(a))


def frozen_op_counts(model: Any, size: int, tmp: Path) -> dict[str, int]:
    """IR op counts after the passes, for the model frozen as users do it (tf.function, constants)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec([1, size, size, 3],
                                                                                      tf.float32)))
    pb = tmp / "frozen.pb"
    pb.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return lowered_op_counts(pb, tmp)


def lowered_op_counts(path: Path, tmp: Path) -> dict[str, int]:
    from transpiler.convert import lower

    graph, _, _ = lower(ConvertOptions(model=path, out_dir=tmp / "unused"))
    return graph.op_counts()


@pytest.mark.parametrize("name", ["mnv2_keras3.keras", "mnv2_tfkeras.h5"])
def test_ir_as_clean_as_frozen_graph(converted: dict[str, Converted], tmp_path: Path, name: str) -> None:
    """The Caffe net from the Keras file has exactly the layers of the one from the frozen graph of the same
    model (BN folded, ReLU6 as ReLU6, padding folded into the convolutions)."""
    c = converted[name]
    assert lowered_op_counts(c.saved.path, tmp_path) == frozen_op_counts(c.saved.model, c.saved.size, tmp_path)
    types = c.report["layer_types"]
    assert types.get("ReLU6") == 35 and "Scale" not in types and "BatchNorm" not in types, types


def test_real_caffe_matches_keras(converted: dict[str, Converted], real_caffe: Any) -> None:
    c = converted["mnv2_keras3.keras"]
    x = picture("astronaut", c.saved.size)[None] * c.saved.scale
    want = c.saved.predict(x)
    inp, out = c.report["inputs"][0], c.report["outputs"][0]
    blobs = real_caffe.forward(c.out_dir / "deploy.prototxt", c.out_dir / "deploy.caffemodel",
                               [np.transpose(x, inp["permutation"]).astype(np.float32)])
    got = blobs[out["caffe_blob"]].reshape(want.shape)
    assert np.max(np.abs(got - want)) <= TOLERANCE * np.max(np.abs(want))


def test_conversion_imports_no_tensorflow(saved_models: dict[str, Saved], tmp_path: Path) -> None:
    assert_converts_without_heavy_imports([saved_models[n].path for n in ("mnv2_keras3.keras", "mnv2_tfkeras.h5")],
                                          tmp_path)


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transpiler", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_lambda_and_inexact_layers_refused_at_once(keras3: Any, tmp_path: Path) -> None:
    L = keras3.layers

    @keras3.saving.register_keras_serializable(package="tests")
    class Doubler(L.Layer):  # a custom layer: its Python code is not in the file
        def call(self, t: Any) -> Any:
            return t * 2.0

    inp = keras3.Input((8, 8, 3))
    x = L.Conv2D(4, 3)(inp)
    x = Doubler(name="custom_doubler")(x)
    x = L.Lambda(lambda t: t * 2.0, name="times_two")(x)
    x = L.ReLU(threshold=0.5, name="thresholded")(x)
    x = L.Activation("gelu", name="gelu_act")(x)
    x = L.UpSampling2D(2, interpolation="bilinear", name="bilinear_up")(x)
    path = tmp_path / "lambda.keras"
    keras3.Model(inp, x).save(path)
    out = tmp_path / "out"
    result = _cli(path, "-o", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for needle in ("lambda.keras", "Lambda", "'times_two'", "SavedModel", "'thresholded'", "threshold",
                   "'gelu_act'", "gelu", "'bilinear_up'", "bilinear", "Doubler", "'custom_doubler'"):
        assert needle in result.stderr, (needle, result.stderr)
    assert not out.exists()


def test_subclassed_model_refused(keras3: Any, tmp_path: Path) -> None:
    """A subclassed model has no layer graph in its file: refused with the SavedModel route named."""

    class Net(keras3.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras3.layers.Conv2D(2, 3)

        def call(self, t: Any) -> Any:
            return self.conv(t)

    model = Net()
    model(np.zeros((1, 8, 8, 3), np.float32))
    path = tmp_path / "subclassed.keras"
    model.save(path)
    result = _cli(path, "-o", tmp_path / "out")
    assert result.returncode == 2 and "subclassed.keras" in result.stderr and "SavedModel" in result.stderr, \
        result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_not_a_model_file(tmp_path: Path) -> None:
    """An HDF5 file of weights only (save_weights) is refused naming the file; nothing written."""
    import h5py

    path = tmp_path / "weights_only.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("dense/kernel:0", data=np.zeros((2, 2), np.float32))
    out = tmp_path / "out"
    result = _cli(path, "-o", out)
    assert result.returncode == 2 and "weights_only.h5" in result.stderr and "model_config" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


# Modern Keras architectures: squeeze-excite (MobileNetV3 with hard-sigmoid, EfficientNet with sigmoid),
# hard-swish, swish, in-model Rescaling/Normalization, ResNet's explicit padding before max pooling. MobileNetV3
# writes its hard-sigmoid as operations on tensors (Keras 3 ops / tf-keras TFOpLambda: ``ReLU(6)(x + 3)·(1/6)``).
@dataclass(frozen=True)
class Family:
    id: str
    arch: str
    size: int
    scale: float  # input = pixels × scale (1 where the model rescales itself)
    kwargs: tuple[tuple[str, Any], ...] = ()


FAMILIES = [  # each family at its default size (224) and at an odd size
    Family("mnv2_224", "MobileNetV2", 224, 1 / 127.5),
    Family("mnv2_a0.5_131", "MobileNetV2", 131, 1 / 127.5, (("alpha", 0.5),)),
    Family("mnv3small_224", "MobileNetV3Small", 224, 1.0, (("include_preprocessing", True),)),
    Family("mnv3large_224", "MobileNetV3Large", 224, 1.0, (("include_preprocessing", True),)),
    Family("efficientnetb0_224", "EfficientNetB0", 224, 1.0),
    Family("resnet50_224", "ResNet50", 224, 1 / 127.5),
    Family("densenet121_224", "DenseNet121", 224, 1 / 127.5),
    Family("mnv3small_minimalistic_97", "MobileNetV3Small", 97, 1.0,
           (("minimalistic", True), ("include_preprocessing", True))),
    Family("mnv3large_minimalistic", "MobileNetV3Large", 96, 1.0,
           (("minimalistic", True), ("include_preprocessing", True))),
    Family("mnv3large_101", "MobileNetV3Large", 101, 1.0, (("include_preprocessing", True),)),
    Family("efficientnetb0_99", "EfficientNetB0", 99, 1.0),
    Family("resnet50", "ResNet50", 96, 1 / 127.5),
    Family("densenet121_97", "DenseNet121", 97, 1 / 127.5),
]


@pytest.fixture(scope="module", params=[(f, api) for f in FAMILIES for api in ("keras3", "tfkeras")],
                ids=[f"{f.id}-{api}" for f in FAMILIES for api in ("keras3", "tfkeras")])
def family_converted(request: pytest.FixtureRequest, keras3: Any, tf_keras: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> Converted:
    family, api = request.param
    keras = keras3 if api == "keras3" else tf_keras
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, family.arch)(input_shape=(family.size, family.size, 3), weights=None,
                                                     classes=11, classifier_activation=None, **dict(family.kwargs))
    calibrate(keras, model, family.size, family.scale)
    tmp = tmp_path_factory.mktemp(family.id)
    saved = _save(keras, model, tmp, f"{family.id}.keras" if api == "keras3" else f"{family.id}.h5", family.size,
                  family.scale)
    out_dir = tmp / "caffe"
    convert(ConvertOptions(model=saved.path, out_dir=out_dir))
    report = json.loads((out_dir / "conversion.json").read_text())
    return Converted(saved, report, load_opencv_net(out_dir / "deploy.prototxt", out_dir / "deploy.caffemodel"),
                     out_dir)


def test_family_matches_keras(family_converted: Converted) -> None:
    c = family_converted
    errors, outputs = [], []
    for pic in ("astronaut", "coffee"):
        x = picture(pic, c.saved.size)[None] * c.saved.scale
        want = c.saved.predict(x).astype(np.float64)
        got = c.run(x)
        errors.append(float(np.max(np.abs(got - want))) / float(np.max(np.abs(want))))
        outputs.append(want)
    print(f"{c.saved.path.name}: max|Δ|/max|ref| {max(errors):.2e}; layers {c.report['layer_types']}")
    assert max(errors) <= TOLERANCE, errors
    # the two pictures give different logits, far beyond the tolerance
    assert np.max(np.abs(outputs[0] - outputs[1])) > DEPENDENCE * np.max(np.abs(outputs[0]))


def test_damaged_files_refused(saved_models: dict[str, Saved], tmp_path: Path) -> None:
    """A cut .keras or .h5, or a config that is not Keras', is one clear error naming the file; nothing written."""
    import zipfile

    cases = {}
    for name in ("zoo_keras3.keras", "zoo_tfkeras.h5"):
        data = saved_models[name].path.read_bytes()
        cases[f"cut_{name}"] = data[: len(data) // 2]
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(saved_models["zoo_keras3.keras"].path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.namelist():
            content = src.read(item)
            if item == "config.json":
                config = json.loads(content)
                config["config"]["layers"][1]["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__"}]}]
                content = json.dumps(config).encode()
            dst.writestr(item, content)
    cases["broken.keras"] = broken.read_bytes()
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        out = tmp_path / f"out_{name}"
        result = _cli(path, "-o", out)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.startswith("error: ") and name in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()


def test_input_shape_given_for_a_fully_convolutional_model(keras3: Any, tmp_path: Path) -> None:
    """An input of unknown size needs --input NAME:SHAPE (exit 2 naming the flag without); with it the model
    converts at that size and matches Keras there."""
    L = keras3.layers
    keras3.utils.set_random_seed(3)
    inp = keras3.Input((None, None, 3), name="frame")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = L.DepthwiseConv2D(3, padding="same", activation="hard_swish")(x)
    model = keras3.Model(inp, L.Conv2D(4, 1)(x))
    path = tmp_path / "fcn.keras"
    model.save(path)
    result = _cli(path, "-o", tmp_path / "no_shape")
    assert result.returncode == 2 and "--input frame:" in result.stderr and not (tmp_path / "no_shape").exists()
    out = tmp_path / "at_45x61"
    convert(ConvertOptions(model=path, out_dir=out, inputs=[InputSpec("frame", (1, 45, 61, 3))]))
    report = json.loads((out / "conversion.json").read_text())
    x_in = picture("coffee", 64)[None, :45, :61] / 255.0
    want = np.asarray(model(x_in))
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    inp_e, out_e = report["inputs"][0], report["outputs"][0]
    got = run_opencv(net, {inp_e["caffe_blob"]: np.ascontiguousarray(x_in.transpose(0, 3, 1, 2))},
                     [out_e["caffe_layer"]])[out_e["caffe_layer"]]
    got = got.reshape(out_e["shape"]).transpose(np.argsort(out_e["permutation"]))
    assert got.shape == want.shape == (1, 23, 31, 4)
    assert np.max(np.abs(got - want)) <= TOLERANCE * np.max(np.abs(want))


def structures_model(keras: Any) -> Any:
    """Two inputs, two outputs, a layer shared by two branches, a nested Sequential and a nested Functional
    model each called twice (a call index past the model's construction), BN inside the nested models."""
    L = keras.layers
    seq = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(6, 3, padding="same", name="sconv"),
                            L.BatchNormalization(name="sbn"), L.ReLU(name="srelu")], name="block")
    f_in = keras.Input((8, 8, 6))
    f_out = L.DepthwiseConv2D(3, padding="same", name="fdw")(L.BatchNormalization(name="fbn")(f_in))
    func = keras.Model(f_in, L.Activation("sigmoid", name="fsig")(f_out), name="fblock")
    shared = L.Conv2D(4, 1, name="shared")
    a, b = keras.Input((8, 8, 3), name="a"), keras.Input((8, 8, 3), name="b")
    ya = func(seq(shared(L.Conv2D(4, 1, name="pa")(a))))
    yb = func(seq(shared(L.Conv2D(4, 1, name="pb")(b))))
    return keras.Model([a, b], [L.Subtract(name="diff")([ya, yb]), L.GlobalAveragePooling2D(name="gap")(yb)])


@pytest.mark.parametrize("api,ext", [("keras3", "keras"), ("keras3", "h5"), ("tfkeras", "h5"), ("tfkeras", "keras")])
def test_model_structures(keras3: Any, tf_keras: Any, tmp_path: Path, api: str, ext: str) -> None:
    keras = keras3 if api == "keras3" else tf_keras
    keras.utils.set_random_seed(4)
    model = structures_model(keras)
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(1, 8, 8, 3)).astype(np.float32) for _ in range(2)]
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype(np.float32))
            layer.moving_mean.assign(rng.uniform(-0.2, 0.2, layer.moving_mean.shape).astype(np.float32))
    want = [np.asarray(w) for w in model(xs)]
    path = tmp_path / f"structures.{ext}"
    model.save(path)
    out = tmp_path / "out"
    result = convert(ConvertOptions(model=path, out_dir=out))
    report = result.report
    assert [i["tf_tensor"] for i in report["inputs"]] == ["a", "b"]
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    feeds = {i["caffe_blob"]: np.ascontiguousarray(x.transpose(i["permutation"]))
             for i, x in zip(report["inputs"], xs, strict=True)}
    got = run_opencv(net, feeds, [o["caffe_layer"] for o in report["outputs"]])
    for o, w in zip(report["outputs"], want, strict=True):
        g = got[o["caffe_layer"]].reshape(o["shape"]).transpose(np.argsort(o["permutation"]))
        assert g.shape == w.shape
        assert np.max(np.abs(g - w)) <= TOLERANCE * np.max(np.abs(w)), o["tf_tensor"]


def test_family_real_caffe(family_converted: Converted, real_caffe: Any) -> None:
    """The same nets in SSD-Caffe itself (tests/real_caffe.py): logits within the tolerance."""
    c = family_converted
    x = picture("chelsea", c.saved.size)[None] * c.saved.scale
    want = c.saved.predict(x)
    inp, out = c.report["inputs"][0], c.report["outputs"][0]
    blobs = real_caffe.forward(c.out_dir / "deploy.prototxt", c.out_dir / "deploy.caffemodel",
                               [np.transpose(x, inp["permutation"]).astype(np.float32)])
    got = blobs[out["caffe_blob"]].reshape(want.shape)
    err = float(np.max(np.abs(got - want))) / float(np.max(np.abs(want)))
    print(f"{c.saved.path.name} in SSD-Caffe: max|Δ|/max|ref| {err:.2e}")
    assert err <= TOLERANCE


def _cli_env(tf_keras: Any) -> dict[str, str]:
    """The CLI in a subprocess, with tf-keras importable (the fixture installs it in the test cache)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(tf_keras.__file__).parents[1]),
                                                         str(Path(__file__).parents[1] / "cli")]),
            "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.mark.parametrize("name,who", [("zoo_keras3.keras", "Keras 3"), ("mnv2_keras3.h5", "Keras 3"),
                                      ("zoo_tfkeras.h5", "tf-keras 2")])
def test_verify_runs_the_keras_file(saved_models: dict[str, Saved], tf_keras: Any, tmp_path: Path, name: str,
                                    who: str) -> None:
    """--verify loads the file with the Keras that wrote it (not a frozen copy) and passes."""
    result = subprocess.run([sys.executable, "-m", "transpiler", str(saved_models[name].path), "-o",
                             str(tmp_path / "out"), "--verify"], capture_output=True, text=True,
                            env=_cli_env(tf_keras), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"TF side run by {who}" in result.stdout and " ok" in result.stdout, result.stdout


def test_broken_conversion_of_keras_file_fails_verify(saved_models: dict[str, Saved], tf_keras: Any,
                                                      tmp_path: Path) -> None:
    """A conversion corrupted on purpose (one convolution's weights ×1.01, tests/cli/plugin_break) exits 3."""
    result = subprocess.run([sys.executable, "-m", "transpiler", str(saved_models["mnv2_keras3.keras"].path), "-o",
                             str(tmp_path / "out"), "--verify", "--plugin", "plugin_break"], capture_output=True,
                            text=True, env=_cli_env(tf_keras), timeout=300)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "Keras 3" in result.stdout


def operations_model(keras: Any, keras3: bool) -> Any:
    """Arithmetic written on tensors (Keras 3 ops / tf-keras TFOpLambda), with constants on either side and
    tensors on both."""
    L = keras.layers
    a = keras.Input((6, 6, 3), name="x")
    b = L.Conv2D(3, 1, name="proj")(a)
    y = 2.0 - a * b
    y = y / (b * b + 1.0)
    y = keras.ops.maximum(y, -0.5) if keras3 else keras.backend.maximum(y, -0.5)
    y = L.ReLU(6.0)(y + 3.0) * (1.0 / 6.0)
    return keras.Model(a, y)


@pytest.mark.parametrize("api,ext", [("keras3", "keras"), ("keras3", "h5"), ("tfkeras", "h5")])
def test_operations_on_tensors(keras3: Any, tf_keras: Any, tmp_path: Path, api: str, ext: str) -> None:
    keras = keras3 if api == "keras3" else tf_keras
    keras.utils.set_random_seed(6)
    model = operations_model(keras, api == "keras3")
    x = np.random.default_rng(6).normal(0, 2, (1, 6, 6, 3)).astype(np.float32)
    want = np.asarray(model(x))
    path = tmp_path / f"ops.{ext}"
    model.save(path)
    out = tmp_path / "out"
    report = convert(ConvertOptions(model=path, out_dir=out)).report
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    inp_e, out_e = report["inputs"][0], report["outputs"][0]
    got = run_opencv(net, {inp_e["caffe_blob"]: np.ascontiguousarray(x.transpose(0, 3, 1, 2))},
                     [out_e["caffe_layer"]])[out_e["caffe_layer"]]
    got = got.reshape(out_e["shape"]).transpose(np.argsort(out_e["permutation"]))
    assert np.max(np.abs(got - want)) <= TOLERANCE * np.max(np.abs(want))
    assert np.ptp(want) > 0.1  # not a constant


def test_family_ir_as_clean_as_frozen_graph(family_converted: Converted, tmp_path: Path) -> None:
    """The IR after the passes has exactly the ops, by count, of the frozen graph's of the same model."""
    c = family_converted
    assert lowered_op_counts(c.saved.path, tmp_path) == frozen_op_counts(c.saved.model, c.saved.size, tmp_path)


# One layer (or a short chain) per case, on a 9×11×4 input: the variants of each layer's config.
LAYER_CASES: dict[str, Callable[[Any], Any]] = {
    "deconv_valid_s2_k3": lambda L: L.Conv2DTranspose(5, 3, strides=2, padding="valid"),
    "deconv_same_s3_k2": lambda L: L.Conv2DTranspose(5, 2, strides=3, padding="same"),
    "deconv_valid_s3_k2": lambda L: L.Conv2DTranspose(5, 2, strides=3, padding="valid"),
    "deconv_same_outpad": lambda L: L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1),
    "deconv_same_s1_k4_nobias": lambda L: L.Conv2DTranspose(3, (4, 3), padding="same", use_bias=False),
    "conv_dilated_grouped": lambda L: L.Conv2D(6, 3, dilation_rate=2, groups=2, padding="same"),
    "conv_strided_valid_elu": lambda L: L.Conv2D(6, (3, 2), strides=(2, 3), activation="elu"),
    "depthwise_multiplier2_s2": lambda L: L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same"),
    "separable_dilated": lambda L: L.SeparableConv2D(5, 3, dilation_rate=2, depth_multiplier=2, padding="same",
                                                     activation="tanh"),
    "relu_max_4_5": lambda L: L.ReLU(max_value=4.5),
    "relu_slope": lambda L: L.ReLU(negative_slope=0.1),
    "relu_slope_max": lambda L: L.ReLU(max_value=2.0, negative_slope=0.3),
    "avgpool_same_uneven": lambda L: L.AveragePooling2D(3, strides=2, padding="same"),
    "maxpool_same": lambda L: L.MaxPooling2D((2, 3), padding="same"),
    "gmp_keepdims": lambda L: L.GlobalMaxPooling2D(keepdims=True),
    "zeropad_crop": lambda L: [L.ZeroPadding2D(((2, 0), (1, 3))), L.Cropping2D(((0, 1), (2, 1)))],
    "bn_no_scale_center": lambda L: L.BatchNormalization(scale=False, center=False, epsilon=0.01),
    "softmax_channels": lambda L: L.Softmax(),
    "softplus_exponential": lambda L: [L.Activation("softplus"), L.Activation("exponential")],
    "sigmoid_hard_sigmoid": lambda L: L.Activation("hard_sigmoid"),
    "upsample_3x2": lambda L: L.UpSampling2D((3, 2)),
    "dense_on_map": lambda L: L.Dense(7, activation="relu"),
    "elu_leaky_layers": lambda L: [L.ELU(alpha=0.5), L.LeakyReLU(0.2)],
    "inference_identities": lambda L: [L.Conv2D(3, 1), L.SpatialDropout2D(0.3), L.GaussianNoise(0.5),
                                       L.GaussianDropout(0.2), L.Dropout(0.5), L.ActivityRegularization(0.1)],
    # merges of the map with a function of itself
    "subtract_minimum": lambda L: lambda x: L.Minimum()([L.Subtract()([x, L.ReLU()(x)]), L.Activation("tanh")(x)]),
    "multiply_three": lambda L: lambda x: L.Multiply()([x, L.Activation("sigmoid")(x), L.ReLU(6.0)(x)]),
    "concat_channels_average": lambda L: lambda x: L.Concatenate()([x, L.Average()([x, L.ReLU()(x)])]),
    "permute_reshape": lambda L: [L.Permute((3, 1, 2)), L.Reshape((4, 11, 9)), L.Flatten()],
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
@pytest.mark.parametrize("api", ["keras3", "tfkeras"])
def test_layer_variants(keras3: Any, tf_keras: Any, tmp_path: Path, case: str, api: str) -> None:
    keras = keras3 if api == "keras3" else tf_keras
    keras.utils.set_random_seed(7)
    inp = keras.Input((9, 11, 4))
    made = LAYER_CASES[case](keras.layers)
    x = inp
    for layer in made if isinstance(made, list) else [made]:
        x = layer(x)  # a layer, or a function building several
    model = keras.Model(inp, x)
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, 4).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, 4).astype(np.float32))
        elif getattr(layer, "use_bias", False):
            layer.bias.assign(rng.uniform(-0.5, 0.5, layer.bias.shape).astype(np.float32))
    x_in = rng.normal(0, 2, (1, 9, 11, 4)).astype(np.float32)
    want = np.asarray(model(x_in))
    path = tmp_path / ("m.keras" if api == "keras3" else "m.h5")
    model.save(path)
    out = tmp_path / "out"
    report = convert(ConvertOptions(model=path, out_dir=out)).report
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    inp_e, out_e = report["inputs"][0], report["outputs"][0]
    got = run_opencv(net, {inp_e["caffe_blob"]: np.ascontiguousarray(x_in.transpose(0, 3, 1, 2))},
                     [out_e["caffe_layer"]])[out_e["caffe_layer"]]
    got = got.reshape(out_e["shape"]).transpose(np.argsort(out_e["permutation"]))
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= TOLERANCE * np.max(np.abs(want)), np.max(np.abs(got - want))


def test_mixed_precision_is_noted(keras3: Any, tmp_path: Path) -> None:
    """A model whose layers compute in float16 in Keras converts in float32, and the conversion says so."""
    L = keras3.layers
    inp = keras3.Input((8, 8, 3))
    x = L.Conv2D(4, 3, dtype="mixed_float16")(inp)
    model = keras3.Model(inp, L.Activation("linear", dtype="float32")(x))
    model.save(tmp_path / "mixed.keras")
    result = convert(ConvertOptions(model=tmp_path / "mixed.keras", out_dir=tmp_path / "out"))
    assert any("mixed_float16" in note and "float32" in note for note in result.report["notes"]), result.report
