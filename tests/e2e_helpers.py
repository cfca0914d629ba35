"""Convert a graph and run both sides (TF, and OpenCV dnn or the real Caffe) on the same input: shared by e2e tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.convert import ConvertOptions, convert
from transpiler.frontends.tf.importer import InputSpec
from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow


def convert_model(model: Path, out: Path, **kw: Any) -> dict[str, Any]:
    inputs = [InputSpec(n) if isinstance(n, str) else n for n in kw.pop("inputs", [])]
    convert(ConvertOptions(model=model, out_dir=out, inputs=inputs, **kw))
    return json.loads((out / "conversion.json").read_text())


HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "cv2", "torch", "onnxruntime")


def assert_converts_without_heavy_imports(models: Sequence[Path], out: Path, *extra_args: str,
                                          timeout: float = 300) -> None:
    """Convert each model with the CLI in one fresh process, then assert that none of TensorFlow, Keras, OpenCV,
    PyTorch or onnxruntime was imported: conversion stays light (they are for verification and tests)."""
    code = (
        "import sys\nfrom transpiler.cli import main\n"
        f"for i, model in enumerate({[str(m) for m in models]!r}):\n"
        f"    assert main([model, '-o', {str(out)!r} + f'/out{{i}}', *{list(extra_args)!r}]) == 0, model\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all((out / f"out{i}" / "deploy.caffemodel").is_file() for i in range(len(models)))


def run_both(
    model: Path, out: Path, report: dict[str, Any], x_nhwc: np.ndarray, runtime: Any = "opencv"
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(tf tensor, TF reference permuted to the Caffe blob layout, Caffe output)] for every output;
    `runtime`: "opencv" or the real Caffe runner (conftest's real_caffe)."""
    entry = report["inputs"][0]
    ref = run_tensorflow(model, {entry["tf_tensor"]: x_nhwc}, [o["tf_tensor"] for o in report["outputs"]])
    x = x_nhwc.astype(np.float32).transpose(entry["permutation"])
    if runtime == "opencv":
        net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
        opencv = run_opencv(net, {entry["caffe_blob"]: x}, [o["caffe_layer"] for o in report["outputs"]])
        got = [opencv[o["caffe_layer"]] for o in report["outputs"]]
    else:
        blobs = runtime.forward(out / "deploy.prototxt", out / "deploy.caffemodel", [x])
        got = [blobs[o["caffe_blob"]] for o in report["outputs"]]
    return [(o["tf_tensor"], np.transpose(ref[o["tf_tensor"]], o["permutation"]), g)
            for o, g in zip(report["outputs"], got, strict=True)]


def rel_error(ref: np.ndarray, got: np.ndarray) -> float:
    assert ref.shape == got.shape, (ref.shape, got.shape)
    return float(np.abs(ref.astype(np.float64) - got).max() / max(np.abs(ref).max(), 1e-12))


def layer_types(out: Path) -> list[tuple[str, str, list[str]]]:
    """(name, type, bottoms) of every layer of the written prototxt, parsed with our schema."""
    from google.protobuf import text_format

    from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

    net = text_format.Parse((out / "deploy.prototxt").read_text(), cp.NetParameter())
    return [(layer.name, layer.type, list(layer.bottom)) for layer in net.layer]


def convert_case(request: Any, tmp_path_factory: Any, cache: dict[tuple[str, str], tuple[Path, dict[str, Any]]]
                 ) -> tuple[str, Path, dict[str, Any], Any]:
    """For a fixture parametrized by (fixture model, flavor, runtime): the conversion, made once per model and
    flavor (`cache`), and the runtime: "opencv", or the real Caffe runner (conftest's real_caffe)."""
    from conftest import fixture_model

    name, flavor, runtime = request.param
    if (name, flavor) not in cache:
        out = tmp_path_factory.mktemp(f"{name}_{flavor}")
        cache[name, flavor] = out, convert_model(fixture_model(name), out, flavor=flavor)
    out, report = cache[name, flavor]
    return name, out, report, "opencv" if runtime == "opencv" else request.getfixturevalue("real_caffe")


DETECTOR_LAYERS = ["mbox_loc", "mbox_conf_logits", "mbox_priorbox", "detection_out"]
_DETECTOR_RUNS: dict[tuple[str, str, Any], dict[str, np.ndarray]] = {}


def detector_blobs(out: Path, x_nchw: np.ndarray, runtime: Any, key: Any) -> dict[str, np.ndarray]:
    """DetectionOutput's inputs and output (``DETECTOR_LAYERS``) of the detector converted into ``out``, fed
    ``x_nchw``; ``runtime``: "opencv" (OpenCV dnn) or the real Caffe runner (conftest's real_caffe). Computed once
    per (``out``, runtime, ``key``: what identifies the input)."""
    cache_key = (str(out), "opencv" if runtime == "opencv" else "caffe", key)
    if cache_key not in _DETECTOR_RUNS:
        if runtime == "opencv":
            net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
            _DETECTOR_RUNS[cache_key] = run_opencv(net, {"data": x_nchw}, DETECTOR_LAYERS)
        else:
            blobs = runtime.forward(out / "deploy.prototxt", out / "deploy.caffemodel", [x_nchw])
            _DETECTOR_RUNS[cache_key] = {layer: blobs[layer] for layer in DETECTOR_LAYERS}
    return _DETECTOR_RUNS[cache_key]


def match_tf_detections(ref: Any, detection_out: np.ndarray, report: dict[str, Any]) -> Any:
    """TF's recorded detections (``ref``: a fixture-style npz) matched box by box with Caffe's ``detection_out``,
    with the excuses TF's semantics force, counted exactly: rows TF drops (boxes empty once clipped) and
    detections beyond TF's per-class cap take keep_top_k slots (transpiler.verify.detections)."""
    from transpiler.verify.detections import caffe_detections, empty_rows, match_detections, tf_detections

    tf = tf_detections(ref["detection_boxes"], ref["detection_scores"], ref["detection_classes"],
                       ref["num_detections"])
    ssd = report["ssd"]
    return match_detections(tf, caffe_detections(detection_out), keep_top_k=ssd["nms"]["keep_top_k"],
                            nms_threshold=ssd["nms"]["nms_threshold"], caffe_empty_rows=empty_rows(detection_out),
                            max_per_class=ssd["tf_nms"]["max_per_class"])


def float64_raw_tensors(model: Path, ssd: dict[str, Any], x_nhwc: np.ndarray, size: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A converted detector's raw box encodings and class logits evaluated in float64: the IR reference kernels on
    the TF region the conversion imported (``ssd``: conversion.json's section), fed ``x_nhwc`` through the
    normalisation the conversion replays, in float64. The reference where TF's own float32 rounding matters."""
    from transpiler.convert import ConvertOptions, lower
    from transpiler.ir.interpreter import run

    region = ConvertOptions(model, inputs=[InputSpec(ssd["feature_input"], (1, *size, 3))],
                            outputs=[ssd["raw_box_encodings"], ssd["raw_class_logits"]], passes=[])
    graph, _, _ = lower(region)
    x = x_nhwc.astype(np.float64)
    for step in ssd["normalization"]:
        c = np.float32(step["value"])
        x = {"Mul": np.multiply, "Sub": np.subtract, "Add": np.add, "Div": np.divide}[step["op"]](
            *((c, x) if step["scalar_first"] else (x, c)))
    out = run(graph, {graph.inputs[0].name: x})
    return out[graph.outputs[0].name], out[graph.outputs[1].name]
