"""End to end on MobileNet v1/v2 models built with Keras 3 at test time, compared through OpenCV and SSD-Caffe.

Weights are random (the Keras initialisers, plus random batch-norm gamma/beta and dense/conv biases),
but the batch-norm moving statistics are **real**: every BatchNormalization layer gets momentum 0 and
the model runs once in training mode over real pictures, so each layer's moving mean/variance are the
statistics of its actual input. Without that, the outputs of a random network barely depend on the
picture and a wrong conversion can go unnoticed (see ``shared/fixtures/README.md``).

The model is then frozen exactly as users do it (``tf.function`` with a fixed ``[1, H, W, 3]`` input
signature → ``convert_variables_to_constants_v2`` → binary GraphDef), converted, and run in OpenCV dnn
on real pictures; every output, and the pre-softmax logits where there is a classifier, must match
TensorFlow's run of the same frozen graph to ``max|Δ| ≤ 1e-4 · max|ref|``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import cv2
import keras
import skimage.data as skdata
import tensorflow as tf
from conftest import calibrate_batch_norm

from transpiler.convert import ConvertOptions, convert
from transpiler.verify.runners import load_opencv_net, run_opencv

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # max|Δ| ≤ TOLERANCE · max|ref|
# Two different pictures must move every output by far more than the tolerance, or the comparison
# could not catch a wrong conversion.
DEPENDENCE = 100 * TOLERANCE

CALIBRATION_PICTURES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry",
                        "hubble_deep_field", "colorwheel")
TEST_PICTURES = ("astronaut", "camera", "coffee")


@dataclass(frozen=True)
class Case:
    id: str
    arch: str  # keras.applications constructor name
    height: int
    width: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def has_top(self) -> bool:
        return bool(self.kwargs.get("include_top"))


CASES = [
    Case("mnv2_a1.00_224_top", "MobileNetV2", 224, 224, {"alpha": 1.0, "include_top": True, "classes": 1000}),
    Case("mnv1_a1.00_192_top", "MobileNet", 192, 192, {"alpha": 1.0, "include_top": True, "classes": 10}),
    Case("mnv1_a0.50_129_top", "MobileNet", 129, 129, {"alpha": 0.5, "include_top": True, "classes": 37}),
    Case("mnv2_a0.35_131_notop", "MobileNetV2", 131, 131, {"alpha": 0.35, "include_top": False}),
    Case("mnv2_a0.75_97x161_notop", "MobileNetV2", 97, 161, {"alpha": 0.75, "include_top": False}),
    Case("mnv2_a0.50_160x96_avgpool", "MobileNetV2", 160, 96,
         {"alpha": 0.5, "include_top": False, "pooling": "avg"}),
    Case("mnv2_a0.50_96_maxpool", "MobileNetV2", 96, 96,
         {"alpha": 0.5, "include_top": False, "pooling": "max"}),
    Case("mnv2_a1.40_96_top", "MobileNetV2", 96, 96, {"alpha": 1.4, "include_top": True, "classes": 5}),
    Case("mnv1_a0.25_75x113_notop", "MobileNet", 75, 113, {"alpha": 0.25, "include_top": False}),
    Case("mnv1_a0.75_64x200_avgpool", "MobileNet", 64, 200,
         {"alpha": 0.75, "include_top": False, "pooling": "avg"}),
]


def picture(name: str, height: int, width: int) -> np.ndarray:
    """scikit-image picture as float32 RGB [H, W, 3], resized with OpenCV, preprocessed x/127.5 − 1."""
    img = np.asarray(getattr(skdata, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3].astype(np.uint8)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return (img.astype(np.float32) / 127.5 - 1.0).astype(np.float32)


def build_model(case: Case, seed: int = 0) -> Any:
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = getattr(keras.applications, case.arch)(
        input_shape=(case.height, case.width, 3), weights=None, **case.kwargs)
    batch = np.stack([picture(p, case.height, case.width) for p in CALIBRATION_PICTURES])
    calibrate_batch_norm(keras, model, batch, rng)
    return model


def freeze(model: Any, case: Case, path: Path) -> Path:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    spec = tf.TensorSpec([1, case.height, case.width, 3], tf.float32, name="input")
    concrete = fn.get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


def find_logits(graph_def: Any) -> str | None:
    """The tensor feeding the Softmax (BiasAdd/MatMul/AddV2/Reshape), through any Identity."""
    nodes = {n.name: n for n in graph_def.node}
    softmax = [n for n in graph_def.node if n.op == "Softmax"]
    if not softmax:
        return None
    assert len(softmax) == 1, [n.name for n in softmax]
    name = softmax[0].input[0]
    while nodes[name.split(":")[0]].op == "Identity":
        name = nodes[name.split(":")[0]].input[0]
    return name if ":" in name else f"{name}:0"


class TFGraph:
    """The frozen GraphDef in one tf.compat.v1 Session (reference side)."""

    def __init__(self, path: Path) -> None:
        self.graph_def = tf.compat.v1.GraphDef()
        self.graph_def.ParseFromString(path.read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(self.graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)

    def run(self, feeds: dict[str, np.ndarray], fetches: Sequence[str]) -> dict[str, np.ndarray]:
        feed_dict = {self.graph.get_tensor_by_name(k): v for k, v in feeds.items()}
        values = self.session.run(list(fetches), feed_dict)
        return dict(zip(fetches, values, strict=True))

    def close(self) -> None:
        self.session.close()


@dataclass
class Converted:
    case: Case
    tf_input: str
    tf_outputs: list[str]  # logits first where there are any, then the model's output
    logits: str | None
    tf_side: TFGraph
    net: Any
    report: dict[str, Any]
    out_dir: Path

    def entry(self, tf_name: str, kind: str = "outputs") -> dict[str, Any]:
        for e in self.report[kind]:
            if e["tf_tensor"] in (tf_name, tf_name.removesuffix(":0")):
                return dict(e)
        known = [e["tf_tensor"] for e in self.report[kind]]
        raise AssertionError(f"{tf_name} not in conversion.json {kind}: {known}")

    def run_both(self, x_nhwc: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        ref = self.tf_side.run({self.tf_input: x_nhwc}, self.tf_outputs)
        inp = self.entry(self.tf_input, "inputs")
        x_caffe = np.ascontiguousarray(np.transpose(x_nhwc, inp["permutation"]), dtype=np.float32)
        entries = [self.entry(o) for o in self.tf_outputs]
        outs = run_opencv(self.net, {inp["caffe_blob"]: x_caffe}, [e["caffe_layer"] for e in entries])
        got = {}
        for o, e in zip(self.tf_outputs, entries, strict=True):
            want = np.transpose(ref[o], e["permutation"])
            got[o] = outs[e["caffe_layer"]].reshape(want.shape)
            ref[o] = want
        return ref, got


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def converted(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converted]:
    case: Case = request.param
    tmp = tmp_path_factory.mktemp(case.id)
    model = build_model(case)
    pb = freeze(model, case, tmp / "model.pb")
    keras.backend.clear_session()
    tf_side = TFGraph(pb)
    logits = find_logits(tf_side.graph_def)
    assert case.has_top == (logits is not None), \
        f"{case.id}: Softmax {'missing' if case.has_top else 'found'}"
    outputs = ([logits] if logits else []) + ["Identity:0"]
    out_dir = tmp / "caffe"
    result = convert(ConvertOptions(model=pb, out_dir=out_dir, outputs=outputs, flavor="ssd"))
    report = json.loads((out_dir / "conversion.json").read_text())
    assert report["outputs"] == result.report["outputs"]
    net = load_opencv_net(out_dir / "deploy.prototxt", out_dir / "deploy.caffemodel")
    yield Converted(case, "input:0", outputs, logits, tf_side, net, report, out_dir)
    tf_side.close()


def _rel_err(want: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    scale = float(np.max(np.abs(want)))
    return float(np.max(np.abs(want.astype(np.float64) - got))), scale


@pytest.mark.parametrize("pic", TEST_PICTURES)
def test_outputs_match_tensorflow(converted: Converted, pic: str) -> None:
    case = converted.case
    x = picture(pic, case.height, case.width)[None]
    ref, got = converted.run_both(x)
    failures = []
    for name in converted.tf_outputs:
        assert got[name].shape == ref[name].shape, (name, got[name].shape, ref[name].shape)
        assert np.all(np.isfinite(got[name])), name
        err, scale = _rel_err(ref[name], got[name])
        assert scale > 0, f"{name}: reference is all zeros"
        if err > TOLERANCE * scale:
            failures.append(f"{name}: max|Δ| {err:.3g} > {TOLERANCE:g}·max|ref| ({scale:.3g}), "
                            f"rel {err / scale:.3g}")
    assert not failures, f"{case.id} on {pic}:\n" + "\n".join(failures)


def test_real_caffe_matches_tensorflow(converted: Converted, real_caffe: Any) -> None:
    """The same models in SSD-Caffe itself (tests/real_caffe.py): logits and outputs within the tolerance."""
    case = converted.case
    x = picture(TEST_PICTURES[0], case.height, case.width)[None]
    ref = converted.tf_side.run({converted.tf_input: x}, converted.tf_outputs)
    inp = converted.entry(converted.tf_input, "inputs")
    blobs = real_caffe.forward(converted.out_dir / "deploy.prototxt", converted.out_dir / "deploy.caffemodel",
                               [np.transpose(x, inp["permutation"]).astype(np.float32)])
    for name in converted.tf_outputs:
        entry = converted.entry(name)
        want = np.transpose(ref[name], entry["permutation"])
        err, scale = _rel_err(want, blobs[entry["caffe_blob"]].reshape(want.shape))
        assert err <= TOLERANCE * scale, f"{case.id} {name}: rel {err / scale:.3g}"


def test_outputs_depend_on_picture(converted: Converted) -> None:
    """Two pictures move every output far beyond the tolerance, so the comparison above can fail."""
    case = converted.case
    ref_a, got_a = converted.run_both(picture("astronaut", case.height, case.width)[None])
    ref_b, got_b = converted.run_both(picture("coffee", case.height, case.width)[None])
    for name in converted.tf_outputs:
        scale = float(np.max(np.abs(ref_a[name])))
        diff = float(np.max(np.abs(ref_a[name] - ref_b[name])))
        assert diff > DEPENDENCE * scale, \
            f"{name}: astronaut vs coffee differ by {diff:.3g} ≤ {DEPENDENCE:g}·{scale:.3g}"
        # OpenCV's outputs follow the picture too (not a constant that happens to be close).
        diff_caffe = float(np.max(np.abs(got_a[name] - got_b[name])))
        assert diff_caffe > DEPENDENCE * scale, name


def test_classifier_is_softmax_of_logits(converted: Converted) -> None:
    """With a top, the model output is softmax(logits): the logits we compare are the right tensor.
    (Models without a top have no logits; for them this checks that none were found.)"""
    if converted.logits is None:
        assert not converted.case.has_top
        return
    case = converted.case
    ref, _ = converted.run_both(picture("chelsea", case.height, case.width)[None])
    logits = ref[converted.logits].reshape(1, -1).astype(np.float64)
    probs = ref["Identity:0"].reshape(1, -1)
    e = np.exp(logits - logits.max())
    np.testing.assert_allclose(e / e.sum(), probs, rtol=1e-4, atol=1e-6)
    assert probs.shape[1] == case.kwargs["classes"]
