"""`python -m transpiler ops`: every TF op with a handler is listed, with the Caffe layers of each flavor."""

from __future__ import annotations

import pytest

from transpiler.backends.caffe.flavors import FLAVORS, GENERIC_FLAVORS
from transpiler.op_table import ALIASES, CAFFE_FORMS, FOLDED, run_ops, table


def test_every_handled_op_has_a_row() -> None:
    """A handler without a row would be listed as unknown: new ops must say which layers they become."""
    from transpiler.frontends.tf import handlers  # noqa: F401
    from transpiler.frontends.tf.registry import TF_HANDLERS

    missing = [op for op in TF_HANDLERS if op not in FOLDED and ALIASES.get(op, op) not in CAFFE_FORMS]
    assert not missing


def test_rows_name_real_layer_types() -> None:
    known = set().union(*(f.layer_types for f in FLAVORS.values()))
    for op, forms in CAFFE_FORMS.items():
        for form in forms:
            if not form.startswith("("):
                assert set(form.split("+")) <= known, (op, form)


@pytest.mark.parametrize("flavor", sorted(GENERIC_FLAVORS))  # toolchain flavors: tests/toolchains
def test_listing_per_flavor(flavor: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_ops(["--flavor", flavor]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "BNLL" in lines["Softplus"] and "Power" in lines["Sqrt"] and "Pooling" in lines["MaxPool"]
    relu6 = {"ssd": "ReLU6", "kernels": "ReLU6", "opencv": "ReLU6", "bvlc": "Clip", "portable": "ReLU+Power+Eltwise"}
    assert lines["Relu6"].split()[-1] == relu6[flavor]
    if flavor == "bvlc":
        assert "not in this flavor (needs Permute)" in lines["Transpose"]
    else:
        assert "Permute" in lines["Transpose"] and "not in" not in lines["Transpose"]


def test_listing_without_flavor_shows_every_form() -> None:
    rows = dict(table(None))
    assert rows["Relu6"] == "ReLU6 | Clip | ReLU+Power+Eltwise"
    assert rows["Const"].startswith("(folded")


@pytest.mark.parametrize("layer_type", ["Bias", "Reduction"])
def test_layers_left_out_of_common_are_missing_in_opencv(tmp_path: object, layer_type: str) -> None:
    """Why flavors.COMMON has no Bias or Reduction (BVLC Caffe has both): OpenCV 4.x cannot create them."""
    from pathlib import Path

    import cv2

    folder = Path(str(tmp_path))
    (folder / "net.prototxt").write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }\n'
        f'layer {{ name: "y" type: "{layer_type}" bottom: "x" top: "y" }}\n')
    assert all(layer_type not in FLAVORS[name].layer_types for name in GENERIC_FLAVORS if name != "bvlc")
    import numpy as np

    net = cv2.dnn.readNetFromCaffe(str(folder / "net.prototxt"))
    net.setInput(np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(cv2.error, match=f'type "{layer_type}"'):
        net.forward("y")  # layers are created on the first forward
