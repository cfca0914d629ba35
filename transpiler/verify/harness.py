"""``--verify``: feed the same input to TF (source graph) and OpenCV (converted model), compare.

OpenCV runs the emitted files as written; types it lacks run as numpy custom layers (custom_layers.py).
TF is fed where the conversion was cut, at the input shape the conversion used (tf_graph.py).

Inputs are deterministic: a seeded pseudo-random tensor (uniform in [−1, 1] for float inputs,
0..255 for integer ones) or a picture (``--verify-input image.png``, read with OpenCV, BGR→RGB,
resized to the input size; raw 0..255 for integer inputs, mapped to [−1, 1] for float ones).
TF receives the NHWC tensor, Caffe the same values permuted as conversion.json says.

With ``per_layer`` every Caffe blob that conversion.json maps to a TF tensor is compared, in
network order, and the first one beyond what float32 rounding explains is named: that is where the
conversion diverges (the rule is per_layer.py's, and the report prints it).

A SavedModel (conversion.json has a ``signature``) is run by TensorFlow's own SavedModel loader
(runners.run_saved_model), not from a frozen copy, fed and fetched at the signature's tensors. Its
inner tensors live inside functions the loaded graph only calls, so with ``per_layer`` the inner blobs
are compared with TF running the inlined signature the conversion read (the report says so), while
the outputs stay compared with the SavedModel itself. A detector SavedModel's raw tensors (box
encodings, class logits, anchors) come from that same inlined run, its detections from the loader.
A blob whose tensor the inlined graph does not hold (one inside a loop body it keeps) is left out,
and a note says so.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transpiler.errors import UsageError, VerificationFailed
from transpiler.verify.compare import Comparison, compare_arrays, format_table
from transpiler.verify.detections import (
    MatchResult,
    caffe_detections,
    compare_raw,
    empty_rows,
    match_detections,
    match_postprocessed,
    postprocessed_detections,
    tf_detections,
)
from transpiler.verify.per_layer import compare_blobs
from transpiler.verify.runners import OpenCVNet, load_opencv_net, run_opencv, run_saved_model, run_tensorflow


@dataclass
class VerifyOptions:
    model: Path
    out_dir: Path
    image: Path | None = None
    per_layer: bool = False
    tolerance: float = 1e-4
    seed: int = 0


@dataclass
class VerifyResult:
    outputs: list[Comparison]
    layers: list[Comparison] = field(default_factory=list)
    first_divergence: Comparison | None = None
    layer_rule: str = ""
    detections: MatchResult | None = None
    runtime: str = ""
    tf_side: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.outputs) and (self.detections is None or self.detections.ok)


def default_picture() -> Path | None:
    """scikit-image's astronaut, when scikit-image is installed: detectors are verified on a real picture."""
    try:
        import skimage
    except ImportError:
        return None
    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    return path if path.exists() else None


def make_input(entry: dict[str, Any], image: Path | None, seed: int) -> np.ndarray:
    """The NHWC (TF-side) input tensor for one conversion.json input entry."""
    shape = tuple(entry["tf_shape"])
    integer = not entry["tf_dtype"].startswith("float")
    if image is not None:
        import cv2

        pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if pixels is None:
            raise UsageError(f"--verify-input {image}: not a readable image")
        if len(shape) != 4 or shape[3] != 3:
            raise UsageError(f"--verify-input needs an N×H×W×3 input, '{entry['tf_tensor']}' is {shape}")
        rgb = cv2.cvtColor(cv2.resize(pixels, (shape[2], shape[1]), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        batch = np.repeat(rgb[None], shape[0], axis=0)
        return batch.astype(np.uint8) if integer else (batch.astype(np.float32) / 127.5 - 1.0)
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _tf_dtype(entry: dict[str, Any], array: np.ndarray) -> np.ndarray:
    return array.astype(np.uint8) if entry["tf_dtype"] == "u8" else array


def verify_model(options: VerifyOptions) -> VerifyResult:
    report = json.loads((options.out_dir / "conversion.json").read_text())
    net = load_opencv_net(options.out_dir / "deploy.prototxt", options.out_dir / "deploy.caffemodel")
    tf_feeds, caffe_feeds = {}, {}
    detector = "ssd" in report or "postprocess" in report
    image = options.image if options.image is not None or not detector else default_picture()
    for i, entry in enumerate(report["inputs"]):
        x = make_input(entry, image, options.seed + i)
        tf_feeds[entry["tf_tensor"]] = _tf_dtype(entry, x)
        blob = x.astype(np.float32).transpose(entry["permutation"])
        if entry.get("channel_order") == "bgr":
            blob = blob[:, ::-1]  # the model was converted to take BGR: feed the same picture as BGR
        caffe_feeds[entry["caffe_blob"]] = np.ascontiguousarray(blob)
    saved_model = report.get("signature") is not None
    if saved_model and "postprocess" not in report:
        return _verify_saved_model(options, report, net, tf_feeds, caffe_feeds)
    if report.get("keras") is not None:  # a Keras model file: Keras runs that file (keras_model.py)
        from transpiler.verify.keras_model import verify_keras_model

        return verify_keras_model(options.model, report, net, tf_feeds, caffe_feeds, options.tolerance,
                                  options.per_layer)
    if "ssd" in report:
        result = _verify_detector(options, report, net, tf_feeds, caffe_feeds)
        result.runtime = net.runtime
        return result
    # a frozen graph, or a detector SavedModel with --postprocess external (its raw outputs lie inside its functions)
    with _inlined_signature(options, report, tf_feeds, saved_model) as inlined:
        return _verify_outputs(options, report, net, tf_feeds, caffe_feeds, inlined)


def _verify_outputs(options: VerifyOptions, report: dict[str, Any], net: OpenCVNet, tf_feeds: dict[str, np.ndarray],
                    caffe_feeds: dict[str, np.ndarray], inlined: _InlinedSignature | None) -> VerifyResult:
    """conversion.json's outputs (and with ``--postprocess external`` TF's detections against ssd_postprocess
    on the two raw outputs), then the blobs with ``per_layer``."""
    outputs = report["outputs"]
    notes: list[str] = []
    blob_entries = _blob_entries(options, report, caffe_feeds, inlined, notes)
    external = report.get("postprocess", {}).get("tf_detections", [])  # --postprocess external: TF's detections
    ref = _detector_reference(options, report, tf_feeds, inlined, external,
                              [e["tf_tensor"] for e in outputs] + [e["tf_tensor"] for _, e in blob_entries])
    layers = list(dict.fromkeys([e["caffe_layer"] for e in outputs] + [e["layer"] for _, e in blob_entries]))
    got = run_opencv(net, caffe_feeds, layers)
    result = VerifyResult([
        compare_arrays(e["tf_tensor"], e["caffe_blob"], got[e["caffe_layer"]],
                       np.transpose(ref[e["tf_tensor"]], e["permutation"]), options.tolerance)
        for e in outputs
    ], runtime=net.runtime, notes=notes)
    if external:  # ssd_postprocess on the two raw outputs must give TF's detections, with no excuse
        raw = {e["role"]: got[e["caffe_layer"]] for e in outputs}
        boxes, scores, classes, num = (ref[n] for n in external)
        result.detections = match_postprocessed(tf_detections(boxes, scores, classes, num), postprocessed_detections(
            report, options.out_dir, raw["box_encodings"], raw["class_logits"]))
    _compare_layers(result, options, tf_feeds, blob_entries, ref, got, inlined)
    return result


def _verify_saved_model(options: VerifyOptions, report: dict[str, Any], net: OpenCVNet,
                        tf_feeds: dict[str, np.ndarray], caffe_feeds: dict[str, np.ndarray]) -> VerifyResult:
    """TF runs the SavedModel itself (its signature's tensors); OpenCV the converted files."""
    signature = report["signature"]
    where = f"{options.model}, signature '{signature['name']}'"
    if "ssd" in report:
        with _inlined_signature(options, report, tf_feeds, True) as inlined:
            result = _verify_detector(options, report, net, tf_feeds, caffe_feeds, inlined)
        result.runtime, result.tf_side = net.runtime, f"TensorFlow's SavedModel loader on {where}"
        result.notes.insert(0, "detector: detections compared with the SavedModel run by TF's loader; the raw box "
                               "encodings, class logits and anchors with TF running the signature as this converter "
                               "inlined it (those tensors lie inside functions the loader only calls)")
        return result
    outputs = report["outputs"]
    in_keys = {tensor: key for key, tensor in signature["inputs"].items()}
    out_keys = {tensor: key for key, tensor in signature["outputs"].items()}
    outside = [t for t in tf_feeds if t not in in_keys] + [e["tf_tensor"] for e in outputs
                                                           if e["tf_tensor"] not in out_keys]
    if outside:
        keys = [f"{k} ({t})" for k, t in [*signature["inputs"].items(), *signature["outputs"].items()]]
        raise UsageError(f"{where}: --verify calls the SavedModel's signature in TensorFlow, and "
                         f"'{outside[0]}' is not one of its inputs or outputs (it lies inside its functions); "
                         f"convert at the signature's tensors to verify: {', '.join(keys)}")
    feeds = {in_keys[t]: x for t, x in tf_feeds.items()}
    try:
        by_key = run_saved_model(options.model, signature["name"], feeds, sorted({out_keys[e["tf_tensor"]]
                                                                                 for e in outputs}))
    except (TypeError, ValueError) as exc:  # TF's refusals of a call (shape or dtype the signature rejects)
        shapes = ", ".join(f"{k} {'x'.join(map(str, x.shape))}" for k, x in feeds.items())
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{where}: TensorFlow cannot call the signature with the converted input ({shapes}): "
                         f"{detail}") from None
    ref = {tensor: by_key[key] for tensor, key in out_keys.items() if key in by_key}
    with _inlined_signature(options, report, tf_feeds, options.per_layer) as inlined:
        notes: list[str] = []
        blob_entries = _blob_entries(options, report, caffe_feeds, inlined, notes)
        # One forward for every layer compared: OpenCV fuses layers (conv + ReLU) at its first forward unless
        # their outputs are asked for then.
        got = run_opencv(net, caffe_feeds, list(dict.fromkeys([e["caffe_layer"] for e in outputs]
                                                              + [e["layer"] for _, e in blob_entries])))
        result = VerifyResult([
            compare_arrays(e["tf_tensor"], e["caffe_blob"], got[e["caffe_layer"]],
                           np.transpose(ref[e["tf_tensor"]], e["permutation"]), options.tolerance)
            for e in outputs
        ], runtime=net.runtime, tf_side=f"TensorFlow's SavedModel loader on {where}", notes=notes)
        if inlined is not None and blob_entries:  # every blob from the inlined signature, the outputs' included
            _compare_layers(result, options, tf_feeds, blob_entries,
                            inlined.run([e["tf_tensor"] for _, e in blob_entries]), got, inlined)
    return result


class _InlinedSignature:
    """A SavedModel's signature as this converter inlined it (our SavedModel reader's GraphDef, with the function
    library of the loops it keeps, such as an OD API preprocessor's map), written as a frozen graph in
    ``directory`` for run_tensorflow. Tensors are named as conversion.json names them: the signature's declared
    inputs and outputs are renamed to the inlined graph's tensors."""

    def __init__(self, options: VerifyOptions, report: dict[str, Any], tf_feeds: dict[str, np.ndarray],
                 directory: Path) -> None:
        from transpiler.frontends.tf.saved_model import load_saved_model

        signature = report["signature"]
        self.model = load_saved_model(options.model, signature["name"])
        self.rename = {t: self.model.inputs[k] for k, t in signature["inputs"].items()}
        self.rename.update({t: self.model.outputs[k] for k, t in signature["outputs"].items()})
        self.nodes = {node.name for node in self.model.graph.node}
        self.model.graph.library.function.extend(self.model.library.values())
        self.path = directory / "signature.pb"
        self.path.write_bytes(self.model.graph.SerializeToString())
        self.feeds = tf_feeds

    def holds(self, tensor: str) -> bool:
        """Whether the inlined graph itself has ``tensor`` (not only a function body it calls, a loop's)."""
        return self.rename.get(tensor, tensor).partition(":")[0] in self.nodes

    def run(self, fetches: list[str], extra: dict[str, np.ndarray] | None = None, *,
            float64: bool = False) -> dict[str, np.ndarray]:
        """TF's values of ``fetches``, fed the verification's inputs (and ``extra``, tensors fed instead)."""
        feeds = {self.rename.get(t, t): x for t, x in {**self.feeds, **(extra or {})}.items()}
        got = run_tensorflow(self.path, feeds, sorted({self.rename.get(f, f) for f in fetches}), float64=float64)
        return {f: got[self.rename.get(f, f)] for f in fetches}


@contextmanager
def _inlined_signature(options: VerifyOptions, report: dict[str, Any], tf_feeds: dict[str, np.ndarray],
                       wanted: bool) -> Iterator[_InlinedSignature | None]:
    """The inlined signature while the block runs (None for a frozen graph, or when not ``wanted``)."""
    if not wanted or report.get("signature") is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="tf2caffe-verify-") as tmp:
        yield _InlinedSignature(options, report, tf_feeds, Path(tmp))


def _blob_entries(options: VerifyOptions, report: dict[str, Any], caffe_feeds: dict[str, np.ndarray],
                  inlined: _InlinedSignature | None, notes: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The blobs ``--per-layer`` compares: conversion.json's, in network order, less the Caffe feeds. On a
    SavedModel only those whose TF tensor the inlined signature holds; a note names the others."""
    if not options.per_layer:
        return []
    entries = [(b, e) for b, e in report.get("blobs", {}).items() if b not in caffe_feeds]
    if inlined is None:
        return entries
    missing = [e["tf_tensor"] for _, e in entries if not inlined.holds(e["tf_tensor"])]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        notes.append(f"per-layer: {len(missing)} blob(s) not compared: their TF tensors ({shown}) are not in the "
                     "signature as this converter inlined it (as a tensor inside a function it keeps, a loop's "
                     "body, is not), so TF cannot fetch them there")
    return [(b, e) for b, e in entries if inlined.holds(e["tf_tensor"])]


def _compare_layers(result: VerifyResult, options: VerifyOptions, tf_feeds: dict[str, np.ndarray],
                    blob_entries: list[tuple[str, dict[str, Any]]], ref: dict[str, Any],
                    got: dict[str, np.ndarray], inlined: _InlinedSignature | None = None) -> None:
    """Judge the blobs by per_layer.py's rule, TF rerun in float64 on the graph that gave ``ref``: the frozen
    graph, or the inlined signature (``inlined``, a SavedModel's inner tensors lie inside functions its loader
    only calls; the outputs stay compared with the SavedModel itself, so a slip of our reader still shows)."""
    if not blob_entries:
        return
    if inlined is not None:
        judged = compare_blobs(blob_entries, ref, got, options.tolerance,
                               lambda fetches, feeds: inlined.run(fetches, feeds, float64=True))
        result.notes.append("per-layer: the signature's outputs are compared with the SavedModel run by TF's "
                            "loader; the inner blobs with TF running the signature as this converter inlined it "
                            "(those tensors lie inside functions the loader only calls)")
    else:
        judged = compare_blobs(blob_entries, ref, got, options.tolerance,
                               lambda fetches, feeds: run_tensorflow(options.model, {**tf_feeds, **(feeds or {})},
                                                                     fetches, float64=True))
    result.layers, result.first_divergence, result.layer_rule = judged.layers, judged.first_divergence, judged.rule


def _detector_reference(options: VerifyOptions, report: dict[str, Any], tf_feeds: dict[str, np.ndarray],
                        inlined: _InlinedSignature | None, detections: list[str],
                        tensors: list[str]) -> dict[str, np.ndarray]:
    """TF's values of a detector's ``detections`` and ``tensors`` (raw tensors, blobs): one run of a frozen
    graph, or for a SavedModel (``inlined``) the ``detections`` (signature outputs) from the signature called by
    TF's loader and the ``tensors`` (inside the signature's functions) from one run of the signature as the
    converter inlined it."""
    if inlined is None:
        return run_tensorflow(options.model, tf_feeds, sorted(set(detections) | set(tensors)))
    from transpiler.frontends.tf.od_api_ssd import TFLITE_POSTPROCESS

    if any(attr.func.name == TFLITE_POSTPROCESS for _, attr, _ in inlined.model.implements.values()):
        raise UsageError(f"{options.model}: --verify: this TFLite-friendly export's detections are computed by "
                         f"TFLite's {TFLITE_POSTPROCESS} op, which TensorFlow does not run (its TF body returns "
                         "constants); verify the exporter_lib_v2 SavedModel of the same checkpoint instead")
    signature = report["signature"]
    in_keys = {tensor: key for key, tensor in signature["inputs"].items()}
    out_keys = {tensor: key for key, tensor in signature["outputs"].items()}
    by_key = run_saved_model(options.model, signature["name"], {in_keys[t]: x for t, x in tf_feeds.items()},
                             [out_keys[t] for t in detections])
    ref = {t: by_key[out_keys[t]] for t in detections}
    ref.update(inlined.run(sorted(set(tensors))))
    return ref


def _verify_detector(options: VerifyOptions, report: dict[str, Any], net: OpenCVNet, tf_feeds: dict[str, np.ndarray],
                     caffe_feeds: dict[str, np.ndarray], inlined: _InlinedSignature | None = None) -> VerifyResult:
    """Raw tensors through prior_to_anchor, priors against anchors, then detections box by box, and the blobs
    with ``per_layer`` (``inlined``: a SavedModel's signature as the converter inlined it, see _detector_reference)."""
    ssd = report["ssd"]
    raw = ssd["raw_tensors"]
    tf_names = [raw["box_encodings"]["tf_tensor"], raw["class_logits"]["tf_tensor"], raw["anchors"]["tf_tensor"],
                *report["outputs"][0]["tf_tensors"]]
    notes: list[str] = []
    blob_entries = _blob_entries(options, report, caffe_feeds, inlined, notes)
    ref = _detector_reference(options, report, tf_feeds, inlined, tf_names[3:],
                              tf_names[:3] + [e["tf_tensor"] for _, e in blob_entries])
    layers = [raw["box_encodings"]["caffe_blob"], raw["class_logits"]["caffe_blob"], raw["anchors"]["caffe_blob"],
              report["outputs"][0]["caffe_layer"]]
    # One forward for every layer compared: OpenCV fuses layers (conv + ReLU) at its first forward unless
    # their outputs are asked for then.
    got = run_opencv(net, caffe_feeds, list(dict.fromkeys(layers + [e["layer"] for _, e in blob_entries])))
    result = VerifyResult(compare_raw(report, got[layers[0]], got[layers[1]], got[layers[2]], ref[tf_names[0]],
                                      ref[tf_names[1]], ref[tf_names[2]], options.tolerance), notes=notes)
    boxes, scores, classes, num = (ref[n] for n in tf_names[3:7])
    kept = ssd.get("class_selection", {}).get("tf_class_ids")
    score_min = 0.01
    if kept:  # TF's list holds its top keep_top_k over all classes: compare only above its last score
        everything = tf_detections(boxes, scores, classes, num)
        if len(everything) >= ssd["nms"]["keep_top_k"]:
            score_min = max(score_min, min(d.score for d in everything) + 1e-4)
    result.detections = match_detections(tf_detections(boxes, scores, classes, num, kept),
                                         caffe_detections(got[layers[3]]), score_min=score_min,
                                         keep_top_k=ssd["nms"]["keep_top_k"],
                                         nms_threshold=ssd["nms"]["nms_threshold"],
                                         caffe_empty_rows=empty_rows(got[layers[3]]),
                                         max_per_class=ssd["tf_nms"]["max_per_class"])
    _compare_layers(result, options, tf_feeds, blob_entries, ref, got, inlined)
    return result


def print_result(result: VerifyResult, tolerance: float) -> None:
    if result.tf_side:
        print(f"verify: TF side run by {result.tf_side}")
    if result.runtime:
        print(f"verify: Caffe side run by {result.runtime}")
    for note in result.notes:
        print(f"verify: note: {note}")
    print(f"verify: outputs (tolerance: max|Δ| ≤ {tolerance:g} · max|ref|)")
    print(format_table(result.outputs))
    if result.detections is not None:
        d = result.detections
        print(f"verify: detections: {d.matched} matched, {len(d.unmatched_tf)} TF-only, "
              f"{len(d.unmatched_caffe)} Caffe-only (score ≥ 0.01), {len(d.excused)} excused")
        for text in d.excused:
            print(f"verify:   excused: {text}")
    if result.layers:
        bad = [c for c in result.layers if not c.ok]
        print(f"verify: per-layer rule: {result.layer_rule}")
        print(f"verify: {len(result.layers)} blobs compared with their TF tensors, {len(bad)} beyond tolerance")
        if result.first_divergence is not None:
            c = result.first_divergence
            allowed = f", allowed {c.bound:.3g}" if c.bound is not None else ""
            print(f"verify: first divergence at Caffe blob '{c.blob}' (TF tensor {c.name}): "
                  f"max|Δ| {c.max_abs:.3g}{allowed}, rel {c.rel:.3g}")


def check(result: VerifyResult) -> None:
    if not result.ok:
        bad = ", ".join([c.name for c in result.outputs if not c.ok]
                        + (["detections"] if result.detections is not None and not result.detections.ok else []))
        raise VerificationFailed(f"verification failed: {bad} differ from TensorFlow beyond tolerance")
