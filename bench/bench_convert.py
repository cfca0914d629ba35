"""Conversion and inference benchmark: our transpiler against tf2onnx, OpenCV (Caffe) against TensorFlow.

    python bench/bench_convert.py [MODEL.pb | SAVED_MODEL_DIR ...] [--runs 3] [--infer-runs 20] [--threads 1,2]
                                  [--markdown] [--saved-model-demo] [--tf2onnx-python PY]

For each model (by default the Keras MobileNetV2 fixtures in ``shared/fixtures``):

1. **Conversion**: whole-process wall time and peak resident memory of
   ``python -m transpiler MODEL -o DIR`` and of
   ``python -m tf2onnx.convert --graphdef MODEL --inputs IN --outputs OUT --output X.onnx`` (a frozen graph)
   or ``python -m tf2onnx.convert --saved-model DIR --signature_def KEY --output X.onnx`` (a SavedModel
   directory), each run ``--runs`` times as a fresh child process (median reported).
   tf2onnx pins an older protobuf than ours, so it lives in its own virtual environment: ``--tf2onnx-python``
   (default: ``$TF2ONNX_PYTHON``, else ``~/.cache/transpiler-bench/tf2onnx/bin/python`` when present, else
   this interpreter). Make one with
   ``python -m venv ~/.cache/transpiler-bench/tf2onnx && ~/.cache/transpiler-bench/tf2onnx/bin/pip install
   tf2onnx tensorflow-cpu==<our TF>``.
   ``--saved-model-demo`` adds SavedModels written for the benchmark by Keras 3 (``model.export``) from
   ``keras.applications.MobileNetV2`` at 224 and 300 (random weights: timing does not depend on them).
   Peak memory is the child's ``ru_maxrss`` as returned by ``os.wait4`` for that very child (Linux: KiB;
   it covers the child and any of its own waited-for children), so every run is measured on its own.
2. **Inference** (frozen graphs only; a SavedModel's network is the same): the converted Caffe model in
   OpenCV dnn (``DNN_BACKEND_OPENCV``, CPU) against the frozen graph in a ``tf.compat.v1.Session``, same
   input (scikit-image's astronaut, x/127.5 − 1), same thread count (``cv2.setNumThreads(n)``; TF intra-
   and inter-op threads = n), median of ``--infer-runs`` runs after warm-up.

Inputs and outputs come from the model folder's ``info.json`` where there is one, otherwise from the
graph (Placeholders and sinks, read with the transpiler's own loader).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
DEFAULT_MODELS = [FIXTURES / name / "model.pb" for name in ("keras3_mnv2_300_notop", "tfkeras_mnv2_300_notop")]
PACKAGE_DIRS = ("transpiler", "passes", "backends", "kernels")
TF2ONNX_VENV_PYTHON = Path.home() / ".cache" / "transpiler-bench" / "tf2onnx" / "bin" / "python"


@dataclass
class ProcessRun:
    seconds: float
    max_rss_mib: float
    returncode: int
    stderr_tail: str = ""


@dataclass
class Result:
    name: str
    ours: list[ProcessRun] = field(default_factory=list)
    tf2onnx: list[ProcessRun] = field(default_factory=list)
    infer: dict[int, tuple[float, float]] = field(default_factory=dict)  # threads -> (opencv s, tf s)
    error: str = ""


# A small launcher process starts each measured command and reports its wall time and peak RSS.
# Measuring from this (large, TensorFlow-importing) process directly would be wrong on Linux: a child's
# ru_maxrss starts at the RSS of the process that forked it (the high-water mark survives fork+exec).
# The launcher imports only the standard library (~10 MiB), so that floor is far below any measurement.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - start
proc.returncode = os.waitstatus_to_exitcode(status)
kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
print(json.dumps({"seconds": seconds, "max_rss_kib": kib, "returncode": proc.returncode}))
"""


def run_child(cmd: Sequence[str], cwd: Path) -> ProcessRun:
    """Run ``cmd`` as a fresh process: wall time and that process's own peak RSS (via the launcher)."""
    with tempfile.TemporaryFile() as err:
        out = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *cmd], cwd=cwd, stdout=subprocess.PIPE,
                             stderr=err, check=True)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    data = json.loads(out.stdout)
    return ProcessRun(data["seconds"], data["max_rss_kib"] / 1024, data["returncode"], tail)


def model_io(model: Path) -> tuple[list[str], list[str]]:
    """Input and output tensor names: info.json beside the model, else Placeholders and sinks."""
    info = model.parent / "info.json"
    if info.exists():
        data = json.loads(info.read_text())
        return [data["input"]], [data["output"]]
    from transpiler.frontends.tf.loader import load_graphdef

    graph_def = load_graphdef(model)
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    inputs = [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"]
    outputs = [f"{n.name}:0" for n in graph_def.node
               if n.name not in consumed and n.op not in ("NoOp", "Const", "Placeholder")]
    return inputs, outputs


def tf2onnx_python(choice: str | None) -> str:
    """The interpreter that has tf2onnx (its own venv: it pins an older protobuf than ours)."""
    if choice:
        return choice
    if os.environ.get("TF2ONNX_PYTHON"):
        return os.environ["TF2ONNX_PYTHON"]
    return str(TF2ONNX_VENV_PYTHON) if TF2ONNX_VENV_PYTHON.exists() else sys.executable


def tf2onnx_command(model: Path, python: str, output: Path) -> list[str]:
    if model.is_dir():  # a SavedModel: tf2onnx loads it with TF and converts its serving signature
        return [python, "-m", "tf2onnx.convert", "--saved-model", str(model), "--signature_def", "serving_default",
                "--output", str(output)]
    inputs, outputs = model_io(model)
    return [python, "-m", "tf2onnx.convert", "--graphdef", str(model), "--inputs", ",".join(inputs),
            "--outputs", ",".join(outputs), "--output", str(output)]


def bench_conversion(model: Path, result: Result, runs: int, skip_tf2onnx: bool, work: Path,
                     flavor: str = "ssd", onnx_python: str = sys.executable) -> Path:
    out_dir = work / "caffe"
    ours = [sys.executable, "-m", "transpiler", str(model), "-o", str(out_dir), "--flavor", flavor]
    onnx = tf2onnx_command(model, onnx_python, work / "model.onnx")
    for _ in range(runs):  # interleaved, so drifts in machine load hit both alike
        result.ours.append(run_child(ours, REPO))
        if not skip_tf2onnx:
            result.tf2onnx.append(run_child(onnx, REPO))
    for label, rs in (("transpiler", result.ours), ("tf2onnx", result.tf2onnx)):
        failed = [r for r in rs if r.returncode != 0]
        if failed:
            raise RuntimeError(f"{label} exited {failed[0].returncode}:\n{failed[0].stderr_tail}")
    return out_dir


def picture(shape_nhwc: Sequence[int]) -> np.ndarray:
    import cv2
    import skimage.data

    _, h, w, c = shape_nhwc
    img = cv2.resize(np.asarray(skimage.data.astronaut())[..., :3], (w, h), interpolation=cv2.INTER_LINEAR)
    x = img.astype(np.float32) / 127.5 - 1.0
    if c != 3:
        x = np.resize(x, (h, w, c))
    return x[None].astype(np.float32)


def timed(fn: Any, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_inference(model: Path, caffe_dir: Path, result: Result, threads: Sequence[int], runs: int) -> None:
    import cv2
    import tensorflow as tf

    from transpiler.verify.runners import load_opencv_net

    report = json.loads((caffe_dir / "conversion.json").read_text())
    (inp,) = report["inputs"]
    x_tf = picture(inp["tf_shape"])
    if inp["tf_dtype"] == "u8":  # detectors take raw pixels
        x_tf = np.round((x_tf + 1.0) * 127.5).astype(np.uint8)
    x_caffe = np.ascontiguousarray(np.transpose(x_tf, inp["permutation"]), dtype=np.float32)
    layers = [e["caffe_layer"] for e in report["outputs"]]
    fetches = [t for e in report["outputs"] for t in e.get("tf_tensors", [e.get("tf_tensor")])]
    fetches = [f if ":" in f else f"{f}:0" for f in fetches]
    in_name = inp["tf_tensor"] if ":" in inp["tf_tensor"] else f"{inp['tf_tensor']}:0"

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(model.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    feed = {graph.get_tensor_by_name(in_name): x_tf}
    tensors = [graph.get_tensor_by_name(f) for f in fetches]

    for n in threads:
        cv2.setNumThreads(n)
        net: Any = load_opencv_net(caffe_dir / "deploy.prototxt", caffe_dir / "deploy.caffemodel", winograd=True)

        def run_cv(net: Any = net) -> None:
            net.setInput(x_caffe, inp["caffe_blob"])
            net.forward(layers)

        t_cv = timed(run_cv, runs)
        # Per-session pools: otherwise the first session's thread counts stay in force for the process.
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=n, inter_op_parallelism_threads=n,
                                          use_per_session_threads=True)
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            t_tf = timed(lambda sess=sess: sess.run(tensors, feed), runs)
        result.infer[n] = (t_cv, t_tf)


def _median(rs: Sequence[ProcessRun], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in rs) if rs else float("nan")


def table(results: Sequence[Result], threads: Sequence[int], markdown: bool) -> str:
    conv_head = ["model", "transpiler s", "transpiler MiB", "tf2onnx s", "tf2onnx MiB", "speed-up"]
    conv_rows = []
    for r in results:
        if r.error and not r.ours:
            conv_rows.append([r.name, "error", "", "", "", ""])
            continue
        ours_s, onnx_s = _median(r.ours, "seconds"), _median(r.tf2onnx, "seconds")
        ours_mib, onnx_mib = _median(r.ours, "max_rss_mib"), _median(r.tf2onnx, "max_rss_mib")
        conv_rows.append([r.name, f"{ours_s:.2f}", f"{ours_mib:.0f}", f"{onnx_s:.2f}", f"{onnx_mib:.0f}",
                          f"{onnx_s / ours_s:.1f}×"])
    inf_head = ["model", "threads", "OpenCV (Caffe) ms", "TF ms", "TF / OpenCV"]
    inf_rows = []
    for r in results:
        for n in threads:
            if n in r.infer:
                cv, tf_ = r.infer[n]
                inf_rows.append([r.name, str(n), f"{cv * 1e3:.1f}", f"{tf_ * 1e3:.1f}", f"{tf_ / cv:.2f}×"])
    return "\n\n".join([_format(conv_head, conv_rows, markdown), _format(inf_head, inf_rows, markdown)])


def _format(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"
        lines = ["| " + " | ".join(head) + " |", rule]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), "  ".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)])


def _tf_version() -> str:
    import tensorflow as tf

    return str(tf.__version__)


def display_name(model: Path) -> str:
    if model.is_dir():
        return f"{model.name} (SavedModel)"
    return model.parent.name if model.name == "model.pb" else model.stem


def write_demo_saved_models(folder: Path) -> list[Path]:
    """Keras 3 ``model.export`` SavedModels of MobileNetV2 (with its classifier) at 224 and 300."""
    import keras

    paths = []
    for size in (224, 300):
        model = keras.applications.MobileNetV2(input_shape=(size, size, 3), weights=None)
        path = folder / f"keras3_mobilenetv2_{size}"
        model.export(str(path), verbose=False)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=Path,
                   help="frozen graphs (default: the Keras MobileNetV2 fixtures)")
    p.add_argument("--runs", type=int, default=3, help="conversion runs per tool (median; default 3)")
    p.add_argument("--infer-runs", type=int, default=20,
                   help="timed inference runs after warm-up (default 20)")
    p.add_argument("--threads", default="1,2", help="thread counts for inference (default 1,2)")
    p.add_argument("--skip-tf2onnx", action="store_true", help="time only our conversion")
    p.add_argument("--skip-inference", action="store_true", help="time only the conversions")
    p.add_argument("--markdown", action="store_true", help="print README-ready Markdown tables")
    p.add_argument("--flavor", default="ssd", help="flavor of the converted model (default ssd)")
    p.add_argument("--saved-model-demo", action="store_true",
                   help="also benchmark Keras 3 SavedModel exports of MobileNetV2 (224, 300) written for the run")
    p.add_argument("--tf2onnx-python", help="interpreter with tf2onnx installed (default: see module docstring)")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",") if t]
    models = [m.absolute() for m in (args.models or ([] if args.saved_model_demo else DEFAULT_MODELS))]
    # Bytecode as an installed package has it (pip compiles on install), also where PYTHONDONTWRITEBYTECODE is set.
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in PACKAGE_DIRS)], check=True)
    onnx_python = tf2onnx_python(args.tf2onnx_python)
    demo_dir = tempfile.TemporaryDirectory(prefix="bench_saved_models_")
    if args.saved_model_demo:
        print("[bench] writing SavedModels with Keras 3 ...", file=sys.stderr, flush=True)
        models += write_demo_saved_models(Path(demo_dir.name))

    results = []
    for model in models:
        result = Result(display_name(model))
        print(f"[bench] {result.name}: converting ×{args.runs} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
            try:
                caffe_dir = bench_conversion(model, result, args.runs, args.skip_tf2onnx, Path(tmp), args.flavor,
                                             onnx_python)
                if not args.skip_inference and not model.is_dir():
                    print(f"[bench] {result.name}: inference ...", file=sys.stderr, flush=True)
                    bench_inference(model, caffe_dir, result, threads, args.infer_runs)
            except Exception as exc:  # report and go on with the other models
                result.error = f"{type(exc).__name__}: {exc}"
                print(f"[bench] {result.name}: {result.error}", file=sys.stderr)
        results.append(result)

    import cv2

    cpu = os.cpu_count()
    print(f"Python {platform.python_version()}, OpenCV {cv2.__version__}, {cpu} CPUs ({platform.machine()}); "
          f"conversion: median of {args.runs} fresh processes, peak RSS = ru_maxrss via os.wait4 in a launcher; "
          f"inference: median of {args.infer_runs} runs after 3 warm-up, batch 1, "
          f"OpenCV DNN_BACKEND_OPENCV (defaults, Winograd on), TF {_tf_version()} tf.compat.v1.Session.")
    print(f"tf2onnx: {onnx_python}")
    print()
    print(table(results, threads, args.markdown))
    demo_dir.cleanup()
    errors = [r for r in results if r.error]
    for r in errors:
        print(f"\n{r.name}: {r.error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
