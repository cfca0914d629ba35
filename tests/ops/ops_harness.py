"""Op-level checks: a small TF function → frozen graph → transpiler → OpenCV dnn and real SSD-Caffe, vs TF.

One call does everything a per-op test needs::

    from ops_harness import check_op

    def test_square(tmp_path, real_caffe):
        results = check_op(tmp_path, lambda x: tf.square(x), [(1, 5, 7, 3)], flavor="ssd",
                           runtimes=("opencv", real_caffe))
        # every output of every runtime already equals TF within the tolerance; results hold the figures

- ``fn`` takes one TF tensor per input shape (Placeholders ``input0``, ``input1``, ...: a single input is
  named ``input``) and returns a tensor or a tuple of tensors; every one is a graph output (the graph's
  sinks, in conversion.json's order).
- The reference is TensorFlow itself, run on the frozen graph (``transpiler.verify.runners.run_tensorflow``).
- Inputs are fed in TF layout and permuted to each Caffe input blob with ``conversion.json``'s
  ``permutation``; each Caffe output is compared with ``transpose(TF output, permutation)``.
- ``runtimes``: ``"opencv"`` (cv2.dnn as ``--verify`` runs it) and/or the conftest fixture ``real_caffe``
  (SSD-Caffe built from source, tests/real_caffe.py). OpenCV is addressed by layer names, Caffe by blobs.
- The comparison: ``max|Δ| ≤ tol · max(|ref|, floor)`` over each output, ``tol`` 1e-5 by default. A
  mismatch fails the test with the op, runtime, output and figures.

Helpers a test may use on their own: :func:`freeze` (multi-input graph freezing), :func:`convert_graph`,
:func:`run_runtime`, :func:`layer_types`, :func:`rel_error`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from e2e_helpers import layer_types, rel_error

from transpiler.convert import ConvertOptions, convert
from transpiler.verify.runners import load_opencv_net, run_opencv, run_tensorflow

__all__ = ["OpResult", "check_op", "convert_graph", "freeze", "layer_types", "random_inputs", "rel_error",
           "run_runtime"]


def input_names(count: int) -> list[str]:
    return ["input"] if count == 1 else [f"input{i}" for i in range(count)]


def freeze(fn: Callable[..., Any], shapes: Sequence[Sequence[int]], path: Path, dtype: str = "float32") -> Path:
    """Trace ``fn`` (one tensor per shape) and write the frozen GraphDef to ``path``."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    names = input_names(len(shapes))

    def wrapped(*xs: Any) -> Any:
        ys = fn(*xs)
        return tuple(ys) if isinstance(ys, tuple | list) else (ys,)

    specs = [tf.TensorSpec(tuple(s), getattr(tf, dtype), name=n) for s, n in zip(shapes, names, strict=True)]
    frozen = convert_variables_to_constants_v2(tf.function(wrapped).get_concrete_function(*specs))
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


def convert_graph(model: Path, out: Path, flavor: str = "ssd", **options: Any) -> dict[str, Any]:
    """Convert ``model`` into ``out`` (transpiler.convert, default pipeline); returns conversion.json."""
    from transpiler.frontends.tf.importer import InputSpec

    inputs = [InputSpec(n) if isinstance(n, str) else n for n in options.pop("inputs", [])]
    convert(ConvertOptions(model=model, out_dir=out, flavor=flavor, inputs=inputs, **options))
    return json.loads((out / "conversion.json").read_text())


def random_inputs(shapes: Sequence[Sequence[int]], seed: int = 0, low: float = -2.0, high: float = 2.0
                  ) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, size=tuple(s)).astype(np.float32) for s in shapes]


def run_runtime(out: Path, report: dict[str, Any], feeds: dict[str, np.ndarray], runtime: Any) -> list[np.ndarray]:
    """Run the converted model in ``out`` on TF-layout ``feeds`` ({tf tensor: array}); returns the outputs
    in conversion.json's order and Caffe layout. ``runtime``: "opencv" or conftest's ``real_caffe``."""
    blobs_in = {e["caffe_blob"]: np.transpose(feeds[e["tf_tensor"]], e["permutation"]).astype(np.float32)
                for e in report["inputs"]}
    if runtime == "opencv":
        net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
        got = run_opencv(net, blobs_in, [o["caffe_layer"] for o in report["outputs"]])
        return [got[o["caffe_layer"]] for o in report["outputs"]]
    # the harness feeds Caffe's input blobs in net order: the Input layers, which we write in report order
    blobs = runtime.forward(out / "deploy.prototxt", out / "deploy.caffemodel",
                            [blobs_in[e["caffe_blob"]] for e in report["inputs"]])
    return [blobs[o["caffe_blob"]] for o in report["outputs"]]


@dataclass
class OpResult:
    """One converted case: its folder, conversion.json, Caffe layer types, and per (runtime, output) the
    relative error measured."""

    out: Path
    report: dict[str, Any]
    layer_types: list[str]
    errors: dict[tuple[str, str], float]


def runtime_name(runtime: Any) -> str:
    return runtime if isinstance(runtime, str) else "real-caffe"


def check_op(tmp_path: Path, fn: Callable[..., Any], shapes: Sequence[Sequence[int]], *, flavor: str = "ssd",
             runtimes: Sequence[Any] = ("opencv",), tol: float = 1e-5, floor: float = 0.0,
             inputs: Sequence[np.ndarray] | None = None, seed: int = 0, model: Path | None = None,
             **options: Any) -> OpResult:
    """Freeze ``fn`` for ``shapes`` (or use an already frozen ``model``), convert it for ``flavor``, run it in
    every runtime and assert each output equals TF's: ``max|Δ| ≤ tol·max(max|ref|, floor)``.

    ``inputs`` default to uniform(−2, 2) samples (``seed``). ``options`` go to ConvertOptions (e.g. passes).
    """
    folder = Path(tempfile.mkdtemp(prefix=f"{flavor}-", dir=tmp_path))  # several checks may share tmp_path
    model = model or freeze(fn, shapes, folder / "model.pb")
    arrays = list(inputs) if inputs is not None else random_inputs(shapes, seed)
    out = folder / "caffe"
    report = convert_graph(model, out, flavor, **options)
    feeds = {e["tf_tensor"]: a for e, a in zip(report["inputs"], arrays, strict=True)}
    tf_out = run_tensorflow(model, feeds, [o["tf_tensor"] for o in report["outputs"]])
    errors: dict[tuple[str, str], float] = {}
    for runtime in runtimes:
        got = run_runtime(out, report, feeds, runtime)
        for entry, g in zip(report["outputs"], got, strict=True):
            ref = np.transpose(tf_out[entry["tf_tensor"]], entry["permutation"]).astype(np.float64)
            if runtime == "opencv" and ref.ndim < 2 and g.size == ref.size:
                g = g.reshape(ref.shape)  # OpenCV's Mats have at least 2 dims: a 1-D blob comes back as (n, 1)
            assert g.shape == ref.shape, (runtime_name(runtime), entry["tf_tensor"], g.shape, ref.shape)
            delta = float(np.abs(ref - g).max()) if ref.size else 0.0
            scale = max(float(np.abs(ref).max()) if ref.size else 0.0, floor, 1e-30)
            errors[runtime_name(runtime), entry["tf_tensor"]] = delta / scale
            assert delta <= tol * scale, (f"{runtime_name(runtime)} {flavor} {entry['tf_tensor']}: max|Δ| {delta:.3g} "
                                          f"> {tol:g} · {scale:.3g}")
    return OpResult(out, report, [t for _, t, _ in layer_types(out)], errors)
