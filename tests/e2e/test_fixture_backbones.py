"""The shared MobileNetV2 backbone fixtures, converted and run through OpenCV dnn, equal TF's outputs.

References are TensorFlow's own recorded outputs on real pictures (fixtures' ref_*.npz), and TF
run in-process on the frozen graph for the per-layer check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_model, layer_types, rel_error

from transpiler.verify.runners import load_opencv_net, run_opencv

BACKBONES = ["keras3_mnv2_300_notop", "tfkeras_mnv2_300_notop"]
PICTURES = ["astronaut", "camera", "coffee"]


@pytest.fixture(scope="module", params=[(m, f) for m in BACKBONES for f in ("ssd", "portable", "opencv")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    name, flavor = request.param
    out = tmp_path_factory.mktemp(f"{name}_{flavor}")
    report = convert_model(fixture_model(name), out, flavor=flavor)
    return name, out, report


@pytest.mark.parametrize("pic", PICTURES)
def test_opencv_matches_tf_reference(converted: tuple[str, Path, dict], pic: str) -> None:
    name, out, report = converted
    ref = np.load(fixture_model(name).parent / f"ref_{pic}.npz")
    net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
    entry, output = report["inputs"][0], report["outputs"][0]
    got = run_opencv(net, {entry["caffe_blob"]: ref["input"].transpose(entry["permutation"])},
                     [output["caffe_layer"]])[output["caffe_layer"]]
    expected = ref["output"].transpose(output["permutation"])
    assert rel_error(expected, got) <= 1e-4
    # the picture matters: another picture's reference is far away (so this test can fail)
    other = np.load(fixture_model(name).parent / f"ref_{PICTURES[PICTURES.index(pic) - 1]}.npz")
    assert rel_error(other["output"].transpose(output["permutation"]), got) > 1e-2


def test_structure_has_no_batchnorm_or_crops(converted: tuple[str, Path, dict]) -> None:
    _, out, report = converted
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
