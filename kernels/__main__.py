"""Command line of transpiler.kernels.

    python -m transpiler.kernels install --caffe-root PATH [--layers relu6,depthwise_conv] [--dry-run]
        Copy the ReLU6 / DepthwiseConvolution layers into a Caffe source tree and register their
        parameters in caffe.proto (see transpiler.kernels.install). Exit codes: 0 done (or nothing
        to do), 1 conflict with a layer/file of the tree (nothing written), 2 not a Caffe tree or
        bad arguments.
    python -m transpiler.kernels build [--cuda]
        Build the CPU (and optionally CUDA) shared library used by the tests and print its path.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transpiler.kernels import build
from transpiler.kernels.install import LAYERS, InstallConflict, InstallError, UnrecognisedTree, install


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m transpiler.kernels", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("install", help="install the custom layers into a Caffe source tree")
    ins.add_argument("--caffe-root", required=True, type=Path, help="root of the Caffe source tree")
    ins.add_argument("--layers", default=",".join(LAYERS),
                     help=f"comma-separated subset of {','.join(LAYERS)} (default: all)")
    ins.add_argument("--dry-run", action="store_true", help="print the changes without writing anything")
    bld = sub.add_parser("build", help="build the shared library of the math functions")
    bld.add_argument("--cuda", action="store_true", help="also build the CUDA library with nvcc")
    bld.add_argument("--force", action="store_true", help="rebuild even if cached")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "install":
        layers = [s.strip() for s in args.layers.split(",") if s.strip()]
        try:
            install(args.caffe_root, layers, dry_run=args.dry_run)
        except UnrecognisedTree as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except InstallConflict as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except InstallError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        print(build.build_cpu_library(force=args.force))
        if args.cuda:
            print(build.build_cuda_library(force=args.force))
    except build.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
