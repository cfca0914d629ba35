"""Regenerate the checked-in protobuf modules (``*_pb2.py`` and ``*_pb2.pyi``) from our schemas.

Usage::

    python tools/gen_protos.py                  # rewrite the modules in place, next to each .proto
    python tools/gen_protos.py --out-root DIR   # write them under DIR (same relative layout)

It runs ``python -m grpc_tools.protoc`` (``pip install grpcio-tools``, a development dependency
only) with the repository root as include path, so each schema is registered in the protobuf
descriptor pool under its repository path (``transpiler/frontends/tf/proto/tf_graph.proto``...),
a name no other package uses.

Generated code refuses to load on a protobuf runtime older than the ``protoc`` that wrote it, so
the version stamped into the modules must not exceed the ``protobuf>=`` floor in pyproject.toml.
This script prints both and warns when they disagree (the test suite checks it too). The
checked-in modules were generated with grpcio-tools 1.75.1 (protoc 31.1, gencode 6.31.1); a newer
grpcio-tools writes the same code with a newer stamp.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Schemas, relative to the repository root.
PROTOS: tuple[str, ...] = (
    "transpiler/frontends/tf/proto/tf_graph.proto",
    "transpiler/frontends/tf/proto/saved_model.proto",
    "backends/caffe/proto/caffe_schema.proto",
)

_GENCODE_RE = re.compile(r"^# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)", re.MULTILINE)
_FLOOR_RE = re.compile(r"""["']protobuf>=(\d+)\.(\d+)(?:\.(\d+))?""")


def gencode_version(module_text: str) -> tuple[int, int, int] | None:
    """The protobuf version stamped into a generated ``_pb2.py`` (None if there is no stamp)."""
    m = _GENCODE_RE.search(module_text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def pyproject_floor(pyproject: Path = REPO_ROOT / "pyproject.toml") -> tuple[int, int, int] | None:
    """The ``protobuf>=`` lower bound declared in pyproject.toml."""
    m = _FLOOR_RE.search(pyproject.read_text(encoding="utf-8"))
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every schema, writing under ``out_root``; return the ``_pb2.py`` paths."""
    out_root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rel in PROTOS:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={REPO_ROOT}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            str(REPO_ROOT / rel),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"protoc failed on {rel}:\n{proc.stderr.strip()}")
        written.append(out_root / rel.replace(".proto", "_pb2.py"))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-root", type=Path, default=REPO_ROOT, help="where to write (default: in place)")
    args = parser.parse_args(argv)

    floor = pyproject_floor()
    for path in generate(args.out_root.resolve()):
        version = gencode_version(path.read_text(encoding="utf-8"))
        shown = ".".join(map(str, version)) if version else "?"
        print(f"wrote {path} (gencode {shown})")
        if version and floor and version > floor:
            print(
                f"warning: gencode {shown} needs protobuf>={shown}, but pyproject.toml allows "
                f"protobuf>={'.'.join(map(str, floor))}; raise the floor or use an older grpcio-tools",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
