"""`python -m transpiler.kernels install` on a minimal Caffe-shaped tree built by the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transpiler.kernels import install as inst

PROTO = """\
syntax = "proto2";

package caffe;

message FillerParameter {
  optional string type = 1 [default = 'constant'];  // "// not a comment" = 999;
}

// NOTE
// Update the next available ID when you add a new LayerParameter field.
//
// LayerParameter next available layer-specific ID: 147 (last added: recurrent_param)
message LayerParameter {
  optional string name = 1; // the layer name
  optional string type = 2; // the layer type
  repeated string bottom = 3; // the name of each bottom blob
  repeated string top = 4; // the name of each top blob
  optional FillerParameter recurrent_param = 146;
  /* optional FillerParameter old_param = 147; (commented out: must not count) */
  optional FillerParameter annotated_data_param = 200;
  optional FillerParameter video_data_param = 207;
}

message V1LayerParameter {
  optional string name = 4;
}
"""

EXPECTED_FILES = [
    "include/caffe/layers/relu6_layer.hpp",
    "include/caffe/layers/depthwise_conv_layer.hpp",
    "src/caffe/layers/relu6_layer.cpp",
    "src/caffe/layers/relu6_layer.cu",
    "src/caffe/layers/relu6_cpu.cpp",
    "src/caffe/layers/relu6_cuda.cu",
    "src/caffe/layers/depthwise_conv_layer.cpp",
    "src/caffe/layers/depthwise_conv_layer.cu",
    "src/caffe/layers/depthwise_conv_cpu.cpp",
    "src/caffe/layers/depthwise_conv_cpu.hpp",
    "src/caffe/layers/depthwise_conv_cuda.cu",
    "src/caffe/layers/depthwise_conv_cuda_point.hpp",
]


def make_tree(root: Path, proto: str = PROTO) -> Path:
    (root / "include/caffe/layers").mkdir(parents=True)
    (root / "src/caffe/layers").mkdir(parents=True)
    (root / "src/caffe/proto").mkdir(parents=True)
    (root / "src/caffe/proto/caffe.proto").write_text(proto)
    (root / "src/caffe/layers/relu_layer.cpp").write_text("REGISTER_LAYER_CLASS(ReLU);\n")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transpiler.kernels", "install", *args],
                          capture_output=True, text=True, check=False)


def test_install_places_files_and_proto_fields_once(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "caffe")
    before = snapshot(root)
    dry = run_cli("--caffe-root", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would copy" in dry.stdout and "depthwise_conv_param = 147" in dry.stdout
    assert snapshot(root) == before  # dry run writes nothing

    first = run_cli("--caffe-root", str(root))
    assert first.returncode == 0, first.stderr
    for rel in EXPECTED_FILES:
        assert (root / rel).is_file(), rel
        assert "transpiler.kernels" in (root / rel).read_text().splitlines()[0]
    proto = (root / "src/caffe/proto/caffe.proto").read_text()
    assert proto.count("message DepthwiseConvolutionParameter") == 1
    assert proto.count("optional DepthwiseConvolutionParameter depthwise_conv_param = 147;") == 1
    assert "next available layer-specific ID: 148 (last added: depthwise_conv_param)" in proto
    fields, _ = inst.layer_parameter_fields(proto)
    assert fields["depthwise_conv_param"] == 147 and fields["video_data_param"] == 207
    assert "V1LayerParameter" in proto and proto.index("depthwise_conv_param = 147") < proto.index(
        "message V1LayerParameter")  # the field went into LayerParameter, not after it

    after_first = snapshot(root)
    second = run_cli("--caffe-root", str(root))
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout
    assert snapshot(root) == after_first  # idempotent


def test_installed_proto_compiles(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "caffe")
    inst.install(root, echo=lambda _s: None)
    proto_dir = root / "src/caffe/proto"
    # protoc in its own process: in-process it can crash beside TensorFlow's protobuf runtime
    result = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}", f"--python_out={tmp_path}",
                             str(proto_dir / "caffe.proto")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_refuses_non_caffe_dir(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    proc = run_cli("--caffe-root", str(tmp_path))
    assert proc.returncode == 2
    assert "does not look like a Caffe source tree" in proc.stderr
    assert list(tmp_path.rglob("*.cpp")) == []

    other = tmp_path / "other"
    make_tree(other, proto=('syntax = "proto2";\npackage notcaffe;\n'
                            "message LayerParameter { optional int32 a = 1; }\n"))
    proc = run_cli("--caffe-root", str(other))
    assert proc.returncode == 2 and "package caffe" in proc.stderr


def test_conflict_with_foreign_relu6(tmp_path: Path) -> None:
    """A fork that has its own ReLU6 (chuanqi305/ssd): refuse, change nothing; --layers skips it."""
    root = make_tree(tmp_path / "caffe")
    (root / "include/caffe/layers/relu6_layer.hpp").write_text("// their relu6\n")
    (root / "src/caffe/layers/relu6_layer.cpp").write_text("// theirs\nREGISTER_LAYER_CLASS(ReLU6);\n")
    before = snapshot(root)
    proc = run_cli("--caffe-root", str(root))
    assert proc.returncode == 1
    assert "ReLU6" in proc.stderr and "--layers depthwise_conv" in proc.stderr
    assert snapshot(root) == before
    proc = run_cli("--caffe-root", str(root), "--layers", "depthwise_conv")
    assert proc.returncode == 0, proc.stderr
    assert (root / "src/caffe/layers/depthwise_conv_layer.cpp").is_file()
    assert (root / "src/caffe/layers/relu6_layer.cpp").read_text().startswith("// theirs")


def test_updates_our_older_files(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "caffe")
    inst.install(root, echo=lambda _s: None)
    stale = root / "src/caffe/layers/relu6_cpu.cpp"
    stale.write_text("// transpiler.kernels: an older version\n")
    lines: list[str] = []
    inst.install(root, echo=lines.append)
    assert any("update  src/caffe/layers/relu6_cpu.cpp" in ln for ln in lines)
    assert "tk_relu6_forward_f32" in stale.read_text()


@pytest.mark.parametrize(
    "body,comment,expected",
    [
        ("optional int32 a = 1; optional int32 b = 147;", "147 (last added: b)", 148),  # comment stale
        ("optional int32 a = 1; reserved 147 to 149;", "147 (last added: x)", 150),
        ("optional int32 a = 1; optional int32 z = 150;", None, 151),  # no comment: max + 1
        ("optional int32 a = 1; message Inner { optional int32 q = 147; }", "147 (last added: a)", 147),
        ("optional int32 a = 1;", "19000 (last added: a)", 20000),  # protobuf's reserved range
    ],
)
def test_free_field_number(body: str, comment: str | None, expected: int) -> None:
    head = f"// LayerParameter next available layer-specific ID: {comment}\n" if comment else ""
    text = f'syntax = "proto2";\npackage caffe;\n{head}message LayerParameter {{\n  {body}\n}}\n'
    assert inst.free_field_number(text)[0] == expected
