"""Keras ``PReLU`` end to end: ``y = max(0, x) + α·min(0, x)`` becomes one Caffe ``PReLU`` layer where α is one
value or one per channel, and exact element-wise layers where it is one per pixel, from a Keras 3 ``.keras``
file, a tf-keras ``.h5`` file and a Keras 3 ``model.export()`` SavedModel, checked against TensorFlow's own
outputs in OpenCV dnn and in the real SSD-Caffe.

Both Keras versions compute PReLU as ``relu(x) + (−α)·relu(−x)``: the files are read by the Keras frontend
(which builds those ops), the SavedModel's graph holds ``Relu``, ``Neg``, ``Relu``, ``Mul``, ``AddV2``; in both,
fold-prelu makes one ``PRelu`` node of them when the constant ``−α`` is shared or per channel.

The net: conv → batch norm → PReLU(shared_axes=[1, 2]) (one slope per channel), strided conv → batch norm →
PReLU(shared_axes=[1, 2, 3]) (one slope: ``channel_shared``), depthwise conv → PReLU() (a slope per pixel and
channel: no Caffe PReLU, element-wise layers), global pooling → Dense → PReLU() (one slope per unit, a 2-D
blob). Slopes are random, of both signs; weights random with batch norm calibrated on real pictures (the
fixtures' README); the inputs are real pictures. Rule: ``max|Δ| ≤ 1e-4·max|ref|`` on both raw outputs (the
last PReLU map and the logits after their PReLU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from conftest import calibrate_batch_norm, picture
from e2e_helpers import layer_types

from transpiler.convert import ConvertOptions, convert
from transpiler.verify.runners import load_opencv_net, run_opencv, run_saved_model

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4
SIZE = 40
CALIBRATION = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")
PICTURES = ("astronaut", "coffee")
ROUTES = ("keras3.keras", "tfkeras.h5", "keras3_export")


def _model(K: Any) -> Any:
    L = K.layers
    inp = K.Input((SIZE, SIZE, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu_channel")(x)
    x = L.Conv2D(12, 3, strides=2, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.PReLU(shared_axes=[1, 2, 3], name="prelu_shared")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="bn3")(x)
    fmap = L.PReLU(name="prelu_pixel")(x)
    y = L.GlobalAveragePooling2D(name="pool")(fmap)
    y = L.Dense(10, name="logits")(y)
    y = L.PReLU(name="prelu_units")(y)
    return K.Model(inp, [fmap, y])


def _input(name: str) -> np.ndarray:
    return picture(name, (SIZE, SIZE)).astype(np.float32)[None] / 127.5 - 1.0


def _build(K: Any, seed: int) -> Any:
    """Random slopes of both signs (Keras initialises them to 0), then batch norm calibrated on real pictures."""
    K.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = _model(K)
    for layer in model.layers:
        if isinstance(layer, K.layers.PReLU):
            layer.alpha.assign(rng.uniform(-0.8, 1.2, tuple(layer.alpha.shape)).astype(np.float32))
    calibrate_batch_norm(K, model, np.concatenate([_input(p) for p in CALIBRATION]), rng)
    return model


@dataclass
class Route:
    source: Path
    out: Path
    report: dict[str, Any]
    reference: Any  # picture array -> TF's outputs by the report's tf_tensor


@pytest.fixture(scope="module")
def routes(tf_keras: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Route]:
    import keras

    tmp = tmp_path_factory.mktemp("prelu")
    k3 = _build(keras, 0)
    k3.save(tmp / "keras3.keras")
    k3.export(str(tmp / "keras3_export"), verbose=False)
    tk = _build(tf_keras, 1)
    tk.save(tmp / "tfkeras.h5")

    def predict(model: Any) -> Any:  # Keras files' outputs are named after their layers
        return lambda x: dict(zip(("prelu_pixel", "prelu_units"), map(np.asarray, model(x, training=False)),
                                  strict=True))

    def serve(x: np.ndarray) -> dict[str, np.ndarray]:  # TF's SavedModel loader, outputs by TF tensor
        signature = found["keras3_export"].report["signature"]
        (key,) = signature["inputs"]
        out = run_saved_model(tmp / "keras3_export", signature["name"], {key: x}, list(signature["outputs"]))
        return {signature["outputs"][k]: v for k, v in out.items()}

    found: dict[str, Route] = {}
    for name, reference in (("keras3.keras", predict(k3)), ("tfkeras.h5", predict(tk)), ("keras3_export", serve)):
        out = tmp / f"{name}_caffe"
        convert(ConvertOptions(model=tmp / name, out_dir=out))
        found[name] = Route(tmp / name, out, json.loads((out / "conversion.json").read_text()), reference)
    return found


def _caffe_input(route: Route, x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(route.report["inputs"][0]["permutation"]))


def _compare(route: Route, x: np.ndarray, got: list[np.ndarray]) -> list[float]:
    """max|Δ|/max|ref| per output, TF's output permuted to the Caffe blob's layout."""
    rels = []
    refs = route.reference(x)
    for entry, blob in zip(route.report["outputs"], got, strict=True):
        ref = np.transpose(refs[entry["tf_tensor"]], entry["permutation"]).astype(np.float64)
        assert blob.shape == ref.shape, (entry, blob.shape, ref.shape)
        rels.append(float(np.abs(blob - ref).max() / np.abs(ref).max()))
    return rels


def _opencv(out: Path, report: dict[str, Any], x: np.ndarray) -> list[np.ndarray]:
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    layers = [o["caffe_layer"] for o in report["outputs"]]
    blobs = run_opencv(net, {report["inputs"][0]["caffe_blob"]: x}, layers)
    return [blobs[name] for name in layers]


@pytest.mark.parametrize("name", ROUTES)
def test_matches_tf_in_opencv(routes: dict[str, Route], name: str) -> None:
    route = routes[name]
    refs = []
    for pic in PICTURES:
        x = _input(pic)
        rels = _compare(route, x, _opencv(route.out, route.report, _caffe_input(route, x)))
        print(f"{name} OpenCV {pic}: rel {', '.join(f'{r:.2g}' for r in rels)}")
        assert max(rels) <= TOLERANCE, (pic, rels)
        refs.append(route.reference(x))
    for key, a in refs[0].items():  # the pictures move both outputs far beyond the tolerance
        assert np.abs(a - refs[1][key]).max() > 100 * TOLERANCE * np.abs(a).max(), key


@pytest.mark.parametrize("name", ROUTES)
def test_matches_tf_in_real_caffe(routes: dict[str, Route], name: str, real_caffe: Any) -> None:
    route = routes[name]
    for pic in PICTURES:
        x = _input(pic)
        blobs = real_caffe.forward(route.out / "deploy.prototxt", route.out / "deploy.caffemodel",
                                   [_caffe_input(route, x)])
        rels = _compare(route, x, [blobs[o["caffe_blob"]] for o in route.report["outputs"]])
        print(f"{name} real SSD-Caffe {pic}: rel {', '.join(f'{r:.2g}' for r in rels)}")
        assert max(rels) <= TOLERANCE, (pic, rels)


def test_one_prelu_layer_where_the_slopes_allow(routes: dict[str, Route]) -> None:
    """Per-channel, shared and per-unit slopes: one PReLU layer each (one ``channel_shared``); the per-pixel one:
    ReLU, Power, ReLU, Scale of a slope map, Eltwise. The files and the SavedModel give the same layers."""
    counts = []
    for name in ROUTES:
        out = routes[name].out
        types = Counter(t for _, t, _ in layer_types(out))
        assert types["PReLU"] == 3, (name, types)
        assert (out / "deploy.prototxt").read_text().count("channel_shared: true") == 1, name
        assert types["ReLU"] == 2 and types["Eltwise"] == 2, (name, types)  # the per-pixel slopes' ops
        counts.append(types)
    assert counts[0] == counts[1] == counts[2], counts


def test_flavors_without_prelu_spell_it_exactly(routes: dict[str, Route], tmp_path: Path) -> None:
    """A toolchain flavor (not probed for PReLU) gets relu(x) + (−α)·relu(−x) in ReLU/Power/Scale/Eltwise
    layers, which compute the same values (run here in OpenCV)."""
    route = routes["keras3.keras"]
    out = tmp_path / "mnn"
    convert(ConvertOptions(model=route.source, out_dir=out, flavor="mnn"))
    report = json.loads((out / "conversion.json").read_text())
    assert "PReLU" not in {t for _, t, _ in layer_types(out)}
    x = _input(PICTURES[0])
    rels = _compare(route, x, _opencv(out, report, _caffe_input(route, x)))
    print(f"mnn flavor OpenCV: rel {', '.join(f'{r:.2g}' for r in rels)}")
    assert max(rels) <= TOLERANCE, rels


def test_slopes_that_do_not_fit_are_refused(routes: dict[str, Route], tmp_path: Path) -> None:
    """A file whose PReLU slopes do not fit the layer's input: exit 2, one ``error:`` line naming the file and
    the layer, nothing written."""
    import h5py

    bad = tmp_path / "bad_alpha.h5"
    bad.write_bytes(routes["tfkeras.h5"].source.read_bytes())
    with h5py.File(bad, "r+") as f:
        group = f["model_weights/prelu_channel/prelu_channel"]
        key = next(k for k in group if k.startswith("alpha"))
        del group[key]
        group.create_dataset(key, data=np.ones((1, 1, 5), np.float32))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "transpiler", str(bad), "-o", str(out)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "bad_alpha.h5" in lines[0] and "'prelu_channel'" in lines[0], lines[0]
    assert not out.exists()


def test_other_spellings_fold_only_where_proved(tmp_path: Path, real_caffe: Any) -> None:
    """relu(x) − k·relu(−x), max(x, 0) + min(x, 0)·k, relu(x) − 0.3·min(x, 0) in a frozen graph: one PReLU each;
    per-pixel constants, and parts of two different tensors, stay element-wise. Same values as TF in OpenCV and in
    the real SSD-Caffe."""
    import tensorflow as tf
    from conftest import freeze_tf_function
    from e2e_helpers import convert_model, rel_error, run_both

    from transpiler.convert import lower
    from transpiler.ir.interpreter import run as run_ir
    from transpiler.verify.runners import run_tensorflow

    rng = np.random.default_rng(3)
    shape = (1, 9, 8, 6)
    k = tf.constant(rng.uniform(-0.8, 1.2, shape[-1]).astype(np.float32))
    k_pixel = tf.constant(rng.uniform(-0.8, 1.2, shape[1:]).astype(np.float32))

    def spellings(x: Any) -> Any:
        return tf.concat([tf.nn.relu(x) - k * tf.nn.relu(-x),             # α = k
                          tf.maximum(x, 0.0) + tf.minimum(x, 0.0) * k,    # α = k
                          tf.nn.relu(x) - 0.3 * tf.minimum(x, 0.0),       # α = −0.3, shared
                          tf.nn.relu(x) + k_pixel * tf.nn.relu(-x),       # a slope per pixel: not folded
                          tf.nn.relu(x) + k * tf.nn.relu(-(2.0 * x))], -1)  # parts of x, 2x: not folded

    model = freeze_tf_function(spellings, shape, tmp_path / "spellings.pb")
    report = convert_model(model, tmp_path / "out")
    types = Counter(t for _, t, _ in layer_types(tmp_path / "out"))
    assert types["PReLU"] == 3 and types["ReLU"] == 4, types
    x = rng.uniform(-3, 3, shape).astype(np.float32)
    ref = run_tensorflow(model, {"input:0": x}, ["concat:0"])["concat:0"]
    for stop, layout in (("fold-prelu", (0, 1, 2, 3)), (None, (0, 3, 1, 2))):  # the IR's reference kernels
        graph, _, _ = lower(ConvertOptions(model=model, out_dir=tmp_path / "unused", stop_after=stop))
        (ir,) = run_ir(graph, {"input": x.transpose(layout)}).values()
        assert np.array_equal(ir, ref.transpose(layout)), stop
    for runtime in ("opencv", real_caffe):
        for name, ref, got in run_both(model, tmp_path / "out", report, x, runtime):
            print(f"spellings {'OpenCV' if runtime == 'opencv' else 'real SSD-Caffe'}: rel {rel_error(ref, got):.2g}")
            assert rel_error(ref, got) <= TOLERANCE, name
