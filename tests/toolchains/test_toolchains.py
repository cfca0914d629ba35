"""Our Caffe output in the deployment toolchains that import Caffe: each converted fixture, with that toolchain's
flavor, is imported (and compiled where that is offline) by the toolchain itself, run by its CPU runtime or
simulator on three real pictures, and compared with TensorFlow's recorded outputs (the fixtures' ref_*.npz).

- Backbones: max|Δ| ≤ 1e-4·max|ref| on every picture (float32 paths). RKNN's simulator computes in float16 only:
  its bound is twice TF's own error on that picture when TF computes the same graph in float16
  (float16_reference.py; 0.11..0.17 on these backbones), i.e. float16 arithmetic's own cost. RKNN's float32 path,
  ``accuracy_analysis``'s "golden" outputs (the toolkit's own float32 execution of the graph it imported, written as
  6-decimal text: within 5e-7), is a second target, ``rknn-float32``, held to the float32 rule like the others.
- Detectors: DetectionOutput's inputs against TF's raw tensors (through conversion.json's prior_to_anchor, as
  ``--verify`` does), then the detections box by box (same class, |Δscore| ≤ 1e-3, IoU ≥ 0.98 after clipping):
  in-net DetectionOutput where the flavor keeps it, else ``--postprocess external``'s network-only export decoded
  by ``transpiler.runtime.ssd_postprocess``. A float16-only simulator cannot reproduce float32 detections (scores
  move by ~1e-2): there the raw tensors are held to twice TF's float16 error, and the detections matched are
  recorded for the table, not asserted. The float32 path (``rknn-float32``) must give TF's detections.

Each toolchain runs in its own cached venv (toolchain_envs.py), through a driver (drivers/) in a subprocess with
the network cut off. A toolchain that cannot be installed skips here with the reason, and fails in CI. Every test
records what it saw (loads / runs / exact, errors, versions, times) in ``results/`` for
tools/toolchains/compat_table.py, which writes the README's compatibility table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_model, rel_error
from float16_reference import detector_float16_errors, tf_float16_error
from toolchain_envs import TOOLCHAINS, ToolchainUnavailable, ensure_env, env_info, record_result, run_driver

from transpiler.backends.caffe.flavors import get_flavor
from transpiler.verify.detections import (
    caffe_detections,
    compare_raw,
    match_detections,
    match_postprocessed,
    postprocessed_detections,
    tf_detections,
)

BACKBONES = ["keras3_mnv2_300_notop", "tfkeras_mnv2_300_notop"]
DETECTORS = ["pedestrian_ssdlite", "ssdlite_mnv2_1cls_dm035", "ssdlite_mnv2_coco90_dm035", "ssd_mnv2_voc20_dm035"]
PICTURES = ["astronaut", "camera", "coffee"]
TOLERANCE = 1e-4
FLOAT16_ONLY = {"rknn"}  # simulators that compute in float16 only
# float32 paths of those toolchains, run as targets of their own: target -> toolchain. The driver returns them as
# ``<blob>@float32`` beside the simulator's ``<blob>`` (rknn_driver.py: accuracy_analysis's golden outputs).
FLOAT32_PATHS = {"rknn-float32": "rknn"}
FLOAT32_KEY = "@float32"
VARIANTS = {"rknn": "float16 simulator", "rknn-float32": "float32 reference"}  # the table's names for the two
# Detections: --verify's score tolerance. Two float32 implementations of these nets differ by ~1e-4 relative on the
# raw tensors (TF float32 itself is 1.05e-4 off a float64 evaluation on ssdlite_mnv2_1cls_dm035's encodings, Paddle
# 1.4e-4), so a score can move by ~1e-4: measured 1.2e-4 for one of Paddle's 300 detections (IoU 0.99996).
SCORE_TOL = 1e-3
# toolchain -> its flavor (the same name)
NAMES = list(TOOLCHAINS)
TARGETS = [*NAMES, *FLOAT32_PATHS]
_RUNS: dict[tuple[str, str], tuple[Path, dict[str, Any], dict[str, Any], dict[str, dict[str, np.ndarray]]]] = {}


def toolchain_env(name: str) -> Path:
    """The toolchain's venv; skips where it cannot be installed (fails in CI, which must install it)."""
    try:
        return ensure_env(name)
    except ToolchainUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"toolchain {name} unavailable in CI: {exc}")
        pytest.skip(f"toolchain {name} unavailable: {exc}")


def converted_run(toolchain: str, model: str, outputs: list[str] | None, tmp_path_factory: pytest.TempPathFactory,
                  **convert: Any) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """(output folder, conversion report, driver answer, {picture: {blob: array}}) for the fixture converted with
    the toolchain's flavor and run by the toolchain on the three pictures; made once per (toolchain, model)."""
    key = (toolchain, model)
    if key not in _RUNS:
        toolchain_env(toolchain)
        out = tmp_path_factory.mktemp(f"{toolchain}_{model}")
        report = convert_model(fixture_model(model), out / "caffe", flavor=toolchain, **convert)
        entry = report["inputs"][0]
        feeds = {pic: np.load(fixture_model(model).parent / f"ref_{pic}.npz")["input"].astype(np.float32)
                 .transpose(entry["permutation"]) for pic in PICTURES}
        np.savez(out / "feeds.npz", **feeds)
        blobs = outputs if outputs is not None else [o["caffe_blob"] for o in report["outputs"]]
        caffe = out / "caffe"
        spec = {"prototxt": str(caffe / "deploy.prototxt"), "caffemodel": str(caffe / "deploy.caffemodel"),
                "input": entry["caffe_blob"], "shape": entry["shape"], "outputs": blobs,
                "feeds": str(out / "feeds.npz"), "result": str(out / "result.npz"),
                "options": {"detections": "detection_out", "float32_reference": toolchain in FLOAT16_ONLY}}
        try:
            answer = run_driver(toolchain, spec, out / "work")
        except AssertionError as exc:
            stage = stage_of(out / "work")
            record_result(toolchain, model, toolchain, {
                "family": "detector" if "ssd" in report else "backbone", "loads": stage not in ("start", "convert"),
                "runs": False, "exact": False, "error": str(exc)[-600:], "stage": stage})
            raise
        with np.load(out / "result.npz") as data:
            got: dict[str, dict[str, np.ndarray]] = {}
            for k in data.files:
                pic, blob = k.split("/", 1)
                got.setdefault(pic, {})[blob] = data[k]
        _RUNS[key] = out, report, answer, got
    return _RUNS[key]


def target_run(target: str, model: str, outputs: list[str] | None, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """converted_run for a test target: a toolchain (its own outputs), or a toolchain's float32 path (the outputs
    the driver returned as ``<blob>@float32``, under their blob names)."""
    toolchain = FLOAT32_PATHS.get(target, target)
    out, report, answer, got = converted_run(toolchain, model, outputs, tmp_path_factory)
    want = target in FLOAT32_PATHS
    return out, report, answer, {pic: {b.removesuffix(FLOAT32_KEY): a for b, a in blobs.items()
                                       if b.endswith(FLOAT32_KEY) == want} for pic, blobs in got.items()}


def record(target: str, model: str, fields: dict[str, Any]) -> None:
    toolchain = FLOAT32_PATHS.get(target, target)
    variant = VARIANTS.get(target)
    record_result(toolchain, model, toolchain, {**fields, **({"variant": variant} if variant else {})},
                  variant="float32" if target in FLOAT32_PATHS else None)


def stage_of(work: Path) -> str:
    stage = work / "stage.txt"
    return stage.read_text().strip() if stage.exists() else "start"


def base_record(target: str, answer: dict[str, Any]) -> dict[str, Any]:
    return {"loads": True, "runs": True, "versions": answer["versions"], "times": answer["times"],
            "runs_timed": answer["runs"], "offline": answer["offline"],
            "env": env_info(FLOAT32_PATHS.get(target, target))}


@pytest.mark.slow
@pytest.mark.parametrize("model", BACKBONES)
@pytest.mark.parametrize("toolchain", TARGETS)
def test_backbone_matches_tf(toolchain: str, model: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    _out, report, answer, got = target_run(toolchain, model, None, tmp_path_factory)
    output = report["outputs"][0]
    errors, bounds = {}, {}
    for pic in PICTURES:
        npz = fixture_model(model).parent / f"ref_{pic}.npz"
        ref = np.load(npz)["output"].transpose(output["permutation"])
        errors[pic] = rel_error(ref, got[pic][output["caffe_blob"]].reshape(ref.shape))
        bounds[pic] = max(TOLERANCE, 2 * tf_float16_error(fixture_model(model), npz)) \
            if toolchain in FLOAT16_ONLY else TOLERANCE
    worst = max(errors.values())
    exact = all(errors[p] <= bounds[p] for p in PICTURES)
    record(toolchain, model, {**base_record(toolchain, answer), "family": "backbone", "max_rel": worst,
                              "exact": exact, "bound": max(bounds.values()), "float16": toolchain in FLOAT16_ONLY})
    assert exact, (toolchain, model, errors, bounds)


@pytest.mark.slow
@pytest.mark.parametrize("model", DETECTORS)
@pytest.mark.parametrize("toolchain", TARGETS)
def test_detector_matches_tf(toolchain: str, model: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """In-net DetectionOutput where the flavor keeps it (``ssd`` section: raw tensors through prior_to_anchor, priors
    against TF's anchors, DetectionOutput's rows box by box as --verify matches them); else the network-only export
    (``postprocess`` section) decoded by transpiler.runtime.ssd_postprocess and matched with no excuse."""
    in_net = get_flavor(FLOAT32_PATHS.get(toolchain, toolchain)).postprocess == "caffe"
    blobs = (["mbox_loc", "mbox_conf_logits", "detection_out"] + ([] if toolchain == "tpu-mlir" else
                                                                               ["mbox_priorbox"])) if in_net else None
    out, report, answer, got = target_run(toolchain, model, blobs, tmp_path_factory)
    raw_worst, bound16, matched, total, failures = 0.0, 0.0, 0, 0, []
    for pic in PICTURES:
        ref = np.load(fixture_model(model).parent / f"ref_{pic}.npz")
        g = got[pic]
        tf = tf_detections(ref["detection_boxes"], ref["detection_scores"], ref["detection_classes"],
                           ref["num_detections"])
        if in_net:
            priors = g.get("mbox_priorbox", caffe_priors(out / "caffe"))
            rows = compare_raw(report, g["mbox_loc"], g["mbox_conf_logits"], priors, ref["raw_box_encodings"],
                               ref["raw_class_logits"], ref["anchors"], TOLERANCE)
            raw_worst = max(raw_worst, rows[0].rel, rows[1].rel)
            failures += [f"{pic}: {r.name} rel {r.rel:.2e}" for r in rows[2:] if not r.ok]  # priors: absolute 1e-5
            nms = report["ssd"]["nms"]
            result = match_detections(tf, caffe_detections(g["detection_out"]), keep_top_k=nms["keep_top_k"],
                                      nms_threshold=nms["nms_threshold"])
        else:
            outputs = report["postprocess"]["outputs"]
            loc, logits = (g[outputs[role]["caffe_blob"]] for role in ("box_encodings", "class_logits"))
            errors = {"Squeeze:0": rel_error(ref["raw_box_encodings"].reshape(-1), loc.reshape(-1)),
                      "concat_1:0": rel_error(ref["raw_class_logits"].reshape(-1), logits.reshape(-1))}
            raw_worst = max(raw_worst, *errors.values())
            ours = postprocessed_detections(report, out / "caffe", loc, logits)
            result = match_postprocessed(tf, ours, score_tol=SCORE_TOL)
            if toolchain in FLOAT16_ONLY:
                tf16 = detector_float16_errors(fixture_model(model), fixture_model(model).parent / f"ref_{pic}.npz",
                                               ssd_section(model, tmp_path_factory))
                bound16 = max(bound16, *(2 * v for v in tf16.values()))
                failures += [f"{pic}: {name} rel {err:.2e} > 2 x TF float16's {tf16[name]:.2e}"
                             for name, err in errors.items() if err > 2 * tf16[name]]
                matched += result.matched
                total += len(tf)
                continue
        matched += result.matched
        total += len(tf)
        if not result.ok:
            failures.append(f"{pic}: {len(result.unmatched_tf)} of TF's {len(tf)} detections unmatched, "
                            f"{len(result.unmatched_caffe)} extra")
    record(toolchain, model, {
        **base_record(toolchain, answer), "family": "detector", "max_rel": raw_worst, "exact": not failures,
        "detections": f"{matched}/{total}", "postprocess": "caffe" if in_net else "external", "failures": failures,
        **({"float16": True, "bound": bound16} if toolchain in FLOAT16_ONLY else {})})
    assert not failures, (toolchain, model, failures)


_SSD: dict[str, dict[str, Any]] = {}


def ssd_section(model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """conversion.json's ``ssd`` section (feature input, normalisation) of the in-net conversion of ``model``."""
    if model not in _SSD:
        _SSD[model] = convert_model(fixture_model(model), tmp_path_factory.mktemp(f"ssd_{model}"))["ssd"]
    return _SSD[model]


def caffe_priors(folder: Path) -> np.ndarray:
    """The Caffe model's PriorBox output (OpenCV dnn), for toolchains that fold PriorBox into a constant."""
    from transpiler.verify.runners import load_opencv_net, run_opencv

    net = load_opencv_net(folder / "deploy.prototxt", folder / "deploy.caffemodel")
    shape = net_input_shape(folder)
    return run_opencv(net, {"data": np.zeros(shape, np.float32)}, ["mbox_priorbox"])["mbox_priorbox"]


def net_input_shape(folder: Path) -> tuple[int, ...]:
    import json

    entry = json.loads((folder / "conversion.json").read_text())["inputs"][0]
    return tuple(entry["shape"])
