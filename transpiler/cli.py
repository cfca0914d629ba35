"""Command line: ``python -m transpiler MODEL --target caffe ...`` and ``python -m transpiler inspect MODEL``.

Exit codes: 0 success; 2 bad input or unsupported model (nothing written); 3 ``--verify`` found
outputs beyond tolerance; 70 internal error (a bug: please report it with the message).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from transpiler import __version__
from transpiler.backends.caffe.flavors import FLAVORS
from transpiler.errors import TranspilerError, UsageError
from transpiler.frontends.tf.importer import InputSpec

SHAPE_RE = re.compile(r"^\d+(x\d+)+$|^\d+$")


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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="frozen TF graph (.pb binary or .pbtxt text)")
    p.add_argument("--input", action="append", default=[], metavar="NAME[:SHAPE]",
                   help="graph input (default: the Placeholders); SHAPE like 1x224x224x3; repeatable")
    p.add_argument("--output", action="append", default=[], metavar="NAME",
                   help="graph output tensor (default: the graph's sinks); repeatable")
    p.add_argument("--flavor", choices=sorted(FLAVORS), default="ssd", help="target Caffe build (default: ssd)")
    p.add_argument("--passes", help="comma-separated pass pipeline replacing the default")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE (or a .py file) that registers op handlers or passes; repeatable")
    p.add_argument("-v", "--verbose", action="store_true", help="log every pass")


def convert_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m transpiler", description="Convert a TF frozen graph to Caffe.",
                                epilog="Also: python -m transpiler inspect MODEL [--after PASS] [--format text|dot]")
    _common(p)
    p.add_argument("--target", choices=["caffe"], default="caffe", help="output format (default: caffe)")
    p.add_argument("-o", "--out", type=Path, help="output folder (default: <model stem>_caffe/)")
    p.add_argument("--dump-ir", type=Path, metavar="DIR", help="write the IR after each pass into DIR")
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
    d.add_argument("--nms-top-k", type=int, metavar="N",
                   help="limit NMS candidates per class (faster for many classes; no longer exact, with a warning)")
    d.add_argument("--train-data", default="trainval_lmdb", help="train LMDB (AnnotatedDatum) for train.prototxt")
    d.add_argument("--test-data", default="test_lmdb", help="test LMDB for test.prototxt")
    d.add_argument("--batch-size", type=int, help="train batch size (default: pipeline.config's, else 32)")
    p.add_argument("--verify", action="store_true", help="compare with TensorFlow through OpenCV dnn")
    p.add_argument("--verify-input", type=Path, metavar="IMAGE", help="picture to verify with (default: noise)")
    p.add_argument("--per-layer", action="store_true", help="with --verify: compare every blob, name the first "
                                                           "that diverges")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max|Δ|/max|ref| allowed (default 1e-4)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m transpiler inspect", description="Print the IR of a model.")
    _common(p)
    p.add_argument("--after", metavar="PASS", help="stop after this pass (default: imported IR, no passes)")
    p.add_argument("--all-passes", action="store_true", help="run the whole pipeline")
    p.add_argument("--format", choices=["text", "dot"], default="text")
    return p


def _options(args: argparse.Namespace) -> object:
    from transpiler.backends.caffe.training import TrainingOptions
    from transpiler.convert import ConvertOptions

    return ConvertOptions(
        model=args.model,
        out_dir=getattr(args, "out", None),
        inputs=[parse_input(t) for t in args.input],
        outputs=list(args.output),
        flavor=args.flavor,
        passes=[s.strip() for s in args.passes.split(",") if s.strip()] if args.passes else None,
        dump_ir=getattr(args, "dump_ir", None),
        plugins=list(args.plugin),
        input_order=getattr(args, "input_order", "rgb"),
        pipeline_config=getattr(args, "pipeline_config", None),
        emit=tuple(e.strip() for e in getattr(args, "emit", "deploy").split(",") if e.strip()),
        label_map=getattr(args, "label_map", None),
        class_names=getattr(args, "class_names", None),
        keep_classes=getattr(args, "keep_classes", None),
        options={"nms_top_k": args.nms_top_k} if getattr(args, "nms_top_k", None) else {},
        training=TrainingOptions(train_data=getattr(args, "train_data", "trainval_lmdb"),
                                 test_data=getattr(args, "test_data", "test_lmdb"),
                                 batch_size=getattr(args, "batch_size", None)),
    )


def run_convert(argv: Sequence[str]) -> int:
    args = convert_parser().parse_args(argv)
    _logging(args.verbose)
    from transpiler.convert import convert

    options = _options(args)
    result = convert(options)  # type: ignore[arg-type]
    out = options.output_dir  # type: ignore[attr-defined]
    print(f"converted {args.model} -> {out}/ ({len(result.emitted.net.layer)} layers, flavor {args.flavor})")
    for w in result.warnings:
        print(f"warning: {w}")
    for note in result.report.get("notes", []):
        print(f"note: {note}")
    if args.verify:
        from transpiler.verify.harness import VerifyOptions, check, print_result, verify_model

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
    sys.stdout.write(to_dot(graph) if args.format == "dot" else to_text(graph))
    return 0


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "inspect":
            return run_inspect(argv[1:])
        if argv and argv[0] == "demo":
            from transpiler.demo import run_demo

            return run_demo(argv[1:])
        return run_convert(argv)
    except TranspilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
