"""The shared MobileNetV2 backbone fixtures, converted and run through OpenCV dnn and through a real
SSD-Caffe build (tests/real_caffe.py), equal TF's outputs.

References are TensorFlow's own recorded outputs on real pictures (fixtures' ref_*.npz), and TF
run in-process on the frozen graph for the per-layer check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_case, convert_model, layer_types, rel_error

from transpiler.verify.runners import load_opencv_net, run_opencv

BACKBONES = ["keras3_mnv2_300_notop", "tfkeras_mnv2_300_notop"]
PICTURES = ["astronaut", "camera", "coffee"]


# (model, flavor, runtime); the opencv flavor's four-value pads are OpenCV's alone (Caffe refuses them,
# test_real_caffe_refuses_the_opencv_flavor)
CASES = [(m, f, rt) for m in BACKBONES for f in ("ssd", "portable", "opencv") for rt in ("opencv", "caffe")
         if (f, rt) != ("opencv", "caffe")]
_CONVERSIONS: dict[tuple[str, str], tuple[Path, dict]] = {}
Converted = tuple[str, Path, dict, Any]


@pytest.fixture(scope="module", params=CASES, ids=lambda p: "-".join(p))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """(model, output folder, conversion report, runtime: "opencv" or the real Caffe runner)."""
    return convert_case(request, tmp_path_factory, _CONVERSIONS)


@pytest.mark.parametrize("pic", PICTURES)
def test_runtime_matches_tf_reference(converted: Converted, pic: str) -> None:
    name, out, report, runtime = converted
    ref = np.load(fixture_model(name).parent / f"ref_{pic}.npz")
    entry, output = report["inputs"][0], report["outputs"][0]
    x = ref["input"].transpose(entry["permutation"])
    if runtime == "opencv":
        net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
        got = run_opencv(net, {entry["caffe_blob"]: x}, [output["caffe_layer"]])[output["caffe_layer"]]
    else:
        got = runtime.forward(out / "deploy.prototxt", out / "deploy.caffemodel", [x])[output["caffe_blob"]]
    expected = ref["output"].transpose(output["permutation"])
    assert rel_error(expected, got) <= 1e-4
    # the picture matters: another picture's reference is far away (so this test can fail)
    other = np.load(fixture_model(name).parent / f"ref_{PICTURES[PICTURES.index(pic) - 1]}.npz")
    assert rel_error(other["output"].transpose(output["permutation"]), got) > 1e-2


def test_structure_has_no_batchnorm_or_crops(converted: Converted) -> None:
    _, out, report, _ = converted
    layers = layer_types(out)
    producers = {name: kind for name, kind, _ in layers}
    for name, kind, bottoms in layers:
        assert kind not in ("Slice", "Crop", "BatchNorm"), name
        if kind == "Scale":
            assert all(producers.get(b) != "Convolution" for b in bottoms), f"Scale {name} after a conv"
    assert report["outputs"][0]["shape"] == [1, 1280, 10, 10]
    assert report["inputs"][0]["permutation"] == [0, 3, 1, 2]
    assert report["inputs"][0]["shape"] == [1, 3, 300, 300]
    relu6 = [k for _, k, _ in layers if k in ("ReLU6", "ReLU")]
    assert relu6, "ReLU6 must not disappear"


def test_bvlc_flavor_uses_only_bvlc_layers(tmp_path: Path) -> None:
    from transpiler.backends.caffe.flavors import FLAVORS

    convert_model(fixture_model("keras3_mnv2_300_notop"), tmp_path, flavor="bvlc")
    kinds = {k for _, k, _ in layer_types(tmp_path)}
    assert kinds <= FLAVORS["bvlc"].layer_types
    assert "Clip" in kinds and "ReLU6" not in kinds and "Permute" not in kinds


def test_per_layer_verification_covers_every_blob(tmp_path: Path) -> None:
    from transpiler.verify.harness import VerifyOptions, verify_model

    model = fixture_model("tfkeras_mnv2_300_notop")
    convert_model(model, tmp_path)
    result = verify_model(VerifyOptions(model, tmp_path, per_layer=True))
    assert result.ok and result.first_divergence is None
    assert len(result.layers) >= 80  # every conv/relu6/add blob has a TF counterpart


def test_real_caffe_refuses_the_opencv_flavor(real_caffe: Any, tmp_path: Path) -> None:
    """The opencv flavor's four-value `pad` ([top, left, bottom, right]) is for OpenCV only: Caffe's
    convolution takes one pad per spatial axis and refuses the net, as the flavor's description says."""
    from real_caffe import CaffeRunError

    report = convert_model(fixture_model(BACKBONES[0]), tmp_path, flavor="opencv")
    x = np.zeros(report["inputs"][0]["shape"], np.float32)
    with pytest.raises(CaffeRunError, match="pad"):
        real_caffe.forward(tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel", [x])
