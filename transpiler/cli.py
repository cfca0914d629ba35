"""Command line: ``python -m transpiler MODEL --target caffe ...``, ``inspect MODEL``, ``demo``, ``ops``.

Exit codes: 0 success; 2 bad input, unsupported model or failing plugin (one message, nothing written;
argparse's usage errors are 2 too); 3 ``--verify`` found outputs beyond tolerance; 70 internal error (a
bug: the message says how to report it; ``-v`` or ``TF2CAFFE_TRACEBACK=1`` adds the traceback). Nothing
exits 1. Everything ``--verify`` needs (TensorFlow, OpenCV 4.x, a readable ``--verify-input``) and every
output folder is checked before converting.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from transpiler import __version__
from transpiler.backends.caffe.flavors import FLAVORS
from transpiler.errors import TranspilerError, UsageError
from transpiler.frontends.tf.importer import InputSpec

SHAPE_RE = re.compile(r"^\d+(x\d+)+$|^\d+$")
PACKAGE = "tf2caffe-transpiler"
TRACEBACK_ENV = "TF2CAFFE_TRACEBACK"
COMMANDS = """commands:
  python -m transpiler MODEL [options]       convert a TF frozen graph to Caffe (this help)
  python -m transpiler inspect MODEL [...]   print the IR, before or after passes (inspect --help)
  python -m transpiler demo [MODEL] [...]    convert, verify and draw the pedestrian detector (demo --help)
  python -m transpiler ops [--flavor F]      list the supported TF ops and the Caffe layers they become

exit codes: 0 ok; 2 bad input, unsupported model or failing plugin (nothing written);
            3 --verify found a difference beyond tolerance; 70 internal error (please report it)"""


def parse_input(text: str) -> InputSpec:
    """``NAME``, ``NAME:SHAPE`` or ``NAME:INDEX:SHAPE``; SHAPE is like ``1x224x224x3``.

    A trailing bare number is a tensor index (``input:0``) unless it follows an index already.
    """
    parts = text.split(":")
    if len(parts) >= 2 and SHAPE_RE.match(parts[-1]) and ("x" in parts[-1] or len(parts) >= 3):
        shape = tuple(int(d) for d in parts[-1].split("x"))
        if any(d <= 0 for d in shape):
            raise UsageError(f"--input {text}: dimensions must be positive")
        return InputSpec(":".join(parts[:-1]), shape)
    return InputSpec(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="frozen TF graph (.pb binary or .pbtxt text), a SavedModel (its "
                                            "directory or saved_model.pb), or a Keras file (.keras, .h5); "
                                            "recognised by content")
    p.add_argument("--input", action="append", default=[], metavar="NAME[:SHAPE]",
                   help="graph input (default: the Placeholders); SHAPE like 1x224x224x3; repeatable")
    p.add_argument("--output", action="append", default=[], metavar="NAME",
                   help="graph output tensor (default: the graph's sinks); repeatable")
    p.add_argument("--signature", metavar="NAME", help="SavedModel: the signature to convert (default: "
                                                       "serving_default); --input/--output may name its keys")
    p.add_argument("--flavor", choices=sorted(FLAVORS), default="ssd", help="target Caffe build (default: ssd)")
    p.add_argument("--passes", help="comma-separated pass pipeline replacing the default")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE (or a .py file) that registers op handlers or passes; repeatable")
    p.add_argument("-v", "--verbose", action="store_true", help="log every pass")


def convert_parser() -> argparse.ArgumentParser:
    description = "Convert a TensorFlow model (frozen graph, SavedModel or Keras file) to Caffe."
    p = argparse.ArgumentParser(prog="python -m transpiler", description=description, epilog=COMMANDS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    p.add_argument("--target", choices=["caffe"], default="caffe", help="output format (default: caffe)")
    p.add_argument("-o", "--out", type=Path, help="output folder (default: <model stem>_caffe/)")
    p.add_argument("--dump-ir", type=Path, metavar="DIR", help="write the IR after each pass into DIR")
    p.add_argument("--names", choices=["tf", "identifiers"],
                   help="layer/blob names: tf (TF's node names, the default) or identifiers (lower-case Python "
                        "identifiers, e.g. for x2paddle; the default of --flavor paddle), each renamed one listed "
                        "with its TF name in conversion.json's original_names")
    p.add_argument("--input-order", choices=["rgb", "bgr"], default="rgb",
                   help="channel order the Caffe model takes (bgr: feed cv2 images directly)")
    p.add_argument("--pipeline-config", type=Path, metavar="FILE",
                   help="detectors: cross-check with pipeline.config; its NMS settings override the graph's")
    d = p.add_argument_group("detectors: classes and fine-tuning files")
    d.add_argument("--emit", default="deploy", metavar="LIST",
                   help="files to write: deploy,train,test,solver (default deploy; deploy is always written)")
    d.add_argument("--label-map", type=Path, metavar="FILE", help="TF label map (label_map.pbtxt) naming the classes")
    d.add_argument("--class-names", metavar="A,B,...", help="class names in id order (instead of --label-map)")
    d.add_argument("--keep-classes", metavar="LIST", help="keep these classes (names or ids), relabelled 1..K; "
                                                          "or coco-to-voc")
    d.add_argument("--nms-top-k", type=positive_int, metavar="N",
                   help="limit NMS candidates per class (faster for many classes; no longer exact, with a warning)")
    d.add_argument("--postprocess", choices=["caffe", "external"],
                   help="caffe (default; toolchain flavors without DetectionOutput default to external): PriorBox + "
                        "DetectionOutput in the net; external: the net ends at the raw "
                        "box encodings (blob mbox_loc) and class logits (mbox_conf_logits) in TF's anchor order, "
                        "the anchors go to priors.npy/.bin/.txt and the NMS settings to conversion.json; "
                        "transpiler.runtime.ssd_postprocess (numpy) or kernels/ssd_postprocess (C++) then gives "
                        "TF's detections exactly (for runtimes without PriorBox/DetectionOutput)")
    d.add_argument("--train-data", default="trainval_lmdb", help="train LMDB (AnnotatedDatum) for train.prototxt")
    d.add_argument("--test-data", default="test_lmdb", help="test LMDB for test.prototxt")
    d.add_argument("--batch-size", type=positive_int, help="train batch size (default: pipeline.config's, else 32)")
    p.add_argument("--verify", action="store_true", help="compare with TensorFlow through OpenCV dnn (needs "
                                                         f'pip install "{PACKAGE}[verify]": TensorFlow, OpenCV<5)')
    p.add_argument("--verify-input", type=Path, metavar="IMAGE", help="picture to verify with (default: noise)")
    p.add_argument("--per-layer", action="store_true", help="with --verify: compare every blob, name the first "
                                                           "that diverges")
    p.add_argument("--tolerance", type=positive_float, default=1e-4,
                   help="max|Δ|/max|ref| allowed, > 0 (default 1e-4)")
    p.add_argument("--version", action="version", version=f"{PACKAGE} {__version__}")
    return p


def inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m transpiler inspect", description="Print the IR of a model.")
    _common(p)
    p.add_argument("--after", metavar="PASS", help="stop after this pass (default: imported IR, no passes)")
    p.add_argument("--all-passes", action="store_true", help="run the whole pipeline")
    p.add_argument("--format", choices=["text", "dot"], default="text")
    return p


def parse_passes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UsageError("--passes is empty: give a comma-separated list of passes, or leave it out for the "
                         "default pipeline (python -m transpiler inspect MODEL --all-passes shows it)")
    return names


def _options(args: argparse.Namespace) -> object:
    from transpiler.backends.caffe.training_options import TrainingOptions
    from transpiler.convert import ConvertOptions

    return ConvertOptions(
        model=args.model,
        out_dir=getattr(args, "out", None),
        inputs=[parse_input(t) for t in args.input],
        outputs=list(args.output),
        signature=args.signature,
        flavor=args.flavor,
        passes=parse_passes(args.passes),
        dump_ir=getattr(args, "dump_ir", None),
        plugins=list(args.plugin),
        input_order=getattr(args, "input_order", "rgb"),
        pipeline_config=getattr(args, "pipeline_config", None),
        emit=tuple(e.strip() for e in getattr(args, "emit", "deploy").split(",") if e.strip()),
        label_map=getattr(args, "label_map", None),
        class_names=getattr(args, "class_names", None),
        keep_classes=getattr(args, "keep_classes", None),
        options={"nms_top_k": args.nms_top_k} if getattr(args, "nms_top_k", None) else {},
        postprocess=getattr(args, "postprocess", None),
        names=getattr(args, "names", None),
        training=TrainingOptions(train_data=getattr(args, "train_data", "trainval_lmdb"),
                                 test_data=getattr(args, "test_data", "test_lmdb"),
                                 batch_size=getattr(args, "batch_size", None)),
    )


def progress(message: str) -> None:
    """A line for a step that takes seconds (stdout, with the results, flushed at once)."""
    print(message, flush=True)


def check_verify_options(args: argparse.Namespace) -> None:
    """What --verify needs, checked before anything is converted or written."""
    if (args.verify_input is not None or args.per_layer) and not args.verify:
        flag = "--verify-input" if args.verify_input is not None else "--per-layer"
        raise UsageError(f"{flag} applies to --verify: add --verify")
    if args.verify:
        from transpiler.verify.availability import require_picture, require_verify

        require_verify("--verify")
        if args.verify_input is not None:
            require_picture(args.verify_input, "--verify-input")


def quiet_tensorflow() -> None:
    """Import TensorFlow without its log noise (C++ lines printed before absl logging is set up, which
    ``TF_CPP_MIN_LOG_LEVEL`` does not silence in TF 2.21), unless ``TF_CPP_MIN_LOG_LEVEL=0`` asks for it."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL") or "3"  # unset or empty: quiet
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401  (imported here only to silence what its import prints)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def contract_lines(report: dict[str, Any]) -> list[str]:
    """The input contract and the outputs, as a user needs them to run the converted model."""
    lines = []
    for entry in report.get("inputs", []):
        layout = entry.get("layout") or "-"
        text = (f"input:  blob '{entry['caffe_blob']}' {_dims(entry['shape'])} float32 {layout} "
                f"= TF '{entry['tf_tensor']}' {_dims(entry['tf_shape'])}")
        if entry.get("permutation") and entry["permutation"] != sorted(entry["permutation"]):
            text += f" transposed {entry['permutation']}"
        if "channel_order" in entry:
            text += f"; channels {entry['channel_order'].upper()}"
        dtype = str(entry.get("tf_dtype", "f"))
        if dtype == "u8":
            text += "; values as TF's u8 pixels (0-255), preprocessing inside the model"
        elif not dtype.startswith("f"):
            text += f"; whole numbers as TF's {dtype} input takes them"
        else:
            text += "; values as TF's input takes them (no preprocessing added)"
        lines.append(text)
    for entry in report.get("outputs", []):
        tf = ", ".join(entry["tf_tensors"]) if "tf_tensors" in entry else entry["tf_tensor"]
        text = f"output: blob '{entry['caffe_blob']}' {_dims(entry['shape'])} (layer '{entry['caffe_layer']}')"
        if "format" in entry:
            text += f" <- TF {tf}: {entry['format']}"
        else:
            text += f" = TF '{tf}' {_dims(entry['tf_shape'])}"
            if entry.get("permutation") and entry["permutation"] != sorted(entry["permutation"]):
                text += f" transposed {entry['permutation']}"
        lines.append(text)
    return lines


def run_convert(argv: Sequence[str]) -> int:
    args = convert_parser().parse_args(argv)
    _logging(args.verbose)
    check_verify_options(args)
    from transpiler.convert import convert

    options = _options(args)
    if args.verify_input is not None:
        options.picture_input = f"--verify-input {args.verify_input}"  # type: ignore[attr-defined]
    result = convert(options)  # type: ignore[arg-type]
    out = options.output_dir  # type: ignore[attr-defined]
    print(f"converted {args.model} -> {out}/ ({len(result.emitted.net.layer)} layers, flavor {args.flavor})")
    for line in contract_lines(result.report):
        print(line)
    for w in result.warnings:
        print(f"warning: {w}")
    for note in result.report.get("notes", []):
        print(f"note: {note}")
    if args.verify:
        progress("verify: loading TensorFlow (a few seconds) ...")
        quiet_tensorflow()
        from transpiler.verify.harness import VerifyOptions, check, print_result, verify_model

        progress("verify: running the source graph in TensorFlow and the Caffe model ...")
        vres = verify_model(VerifyOptions(args.model, out, args.verify_input, args.per_layer, args.tolerance))
        print_result(vres, args.tolerance)
        check(vres)
    return 0


def run_inspect(argv: Sequence[str]) -> int:
    args = inspect_parser().parse_args(argv)
    _logging(args.verbose)
    from transpiler.convert import default_pipeline, load_plugins, lower
    from transpiler.ir.printer import to_dot, to_text

    options = _options(args)
    load_plugins(args.plugin)  # plugin passes may join the default pipeline
    names = options.passes or default_pipeline(args.flavor)  # type: ignore[attr-defined]
    if args.all_passes:
        options.passes = names  # type: ignore[attr-defined]
    elif args.after:
        options.passes, options.stop_after = names, args.after  # type: ignore[attr-defined]
    else:
        options.passes = []  # type: ignore[attr-defined]
    graph, manager, _ = lower(options)  # type: ignore[arg-type]
    ran = [r.name for r in manager.records]
    print(f"# pipeline: {', '.join(names)}")
    print(f"# ran: {', '.join(ran) if ran else '(none: imported IR)'}")
    for r in manager.records:
        print(f"#   {r.name}: {r.diff_text()}")
    for note in graph.metadata.get("notes", []):
        print(f"# note: {note}")
    sys.stdout.write(to_dot(graph) if args.format == "dot" else to_text(graph))
    return 0


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


def internal_error(argv: Sequence[str], exc: BaseException, verbose: bool) -> int:
    """Exit 70 with one line saying what failed and how to report it (the traceback only on request)."""
    if isinstance(exc, TranspilerError):
        what = str(exc)  # an IR invariant we check broke: the message names the pass or node
    else:
        what = f"{type(exc).__name__}: {exc}"
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            what += f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}"
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: internal error (a bug in {PACKAGE} {__version__}): {what}. Please report it in the project's "
          f"issue tracker with the command (python -m transpiler {' '.join(argv)}), the version and this message"
          f"{'' if verbose else f'; -v or {TRACEBACK_ENV}=1 adds the traceback'}.", file=sys.stderr)
    return 70


PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a program killed by a closed pipe


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv or bool(os.environ.get(TRACEBACK_ENV))
    try:
        if argv and argv[0] == "inspect":
            return run_inspect(argv[1:])
        if argv and argv[0] == "demo":
            from transpiler.demo import run_demo

            return run_demo(argv[1:])
        if argv and argv[0] == "ops":
            from transpiler.op_table import run_ops

            return run_ops(argv[1:])
        return run_convert(argv)
    except TranspilerError as exc:
        if exc.exit_code == 70:
            return internal_error(argv, exc, verbose)
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (nothing was written unless a 'converted' line said so)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped reading (`| head -1`): end as a program killed by SIGPIPE would, quietly.
        # The files are complete if the conversion got as far as printing, untouched otherwise (written atomically).
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except Exception as exc:
        return internal_error(argv, exc, verbose)


def entry() -> NoReturn:
    """The command line's entry point (``tf2caffe``, ``python -m transpiler``): :func:`main`, then exit without
    tearing the interpreter down object by object (30 ms of a 0.35 s MobileNetV2 conversion); the output streams
    are flushed and ``atexit`` handlers run first, the files are already closed."""
    code = main()
    atexit._run_exitfuncs()  # logging's flush among them
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can reach it
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
