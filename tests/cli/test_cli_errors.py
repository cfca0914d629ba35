"""Every error a user can cause, through the real command line: one message, a documented exit code, no traceback,
no new files (issue 9, item 1). Exit codes: 2 user-caused, 70 a bug of ours; 1 never.

Each case runs ``python -m transpiler`` in a fresh working folder holding only the model (and the case's plugin
or picture); afterwards the folder must hold exactly what it held before. Missing dependencies are simulated in
the child process only (``sys.modules[name] = None`` makes an import fail and ``find_spec`` answer None, as when
the package is absent; a stand-in ``cv2`` module reports version 5.0.0).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import fixture_model

HIDE = "import sys; sys.modules[{name!r}] = None\n"
FAKE_CV2_5 = "import sys, types; m = types.ModuleType('cv2'); m.__version__ = '5.0.0'; sys.modules['cv2'] = m\n"
RUN_CLI = "from transpiler.cli import main; raise SystemExit(main(sys.argv[1:]))\n"

PLUGINS = {
    # A TF handler that raises: the plugin and the node must be named.
    "bad_handler": """
from transpiler.frontends.tf import tf_op

@tf_op("Relu6")
def relu6(ctx, node):
    raise ValueError("cannot read this node")
""",
    # A pass that raises while looking at a node.
    "bad_pass": """
from transpiler.pass_manager import Pass, register_pass

@register_pass("explode", run_after="fold-batchnorm")
class Explode(Pass):
    def run(self, graph, ctx):
        for node in graph.nodes:
            if node.op == "Conv":
                raise KeyError("weights")
        return False
""",
    # A Caffe emitter that raises (replacing the built-in Conv emitter).
    "bad_emitter": """
from transpiler.backends.caffe.emitter import caffe_op

@caffe_op("Conv")
def conv(e, node):
    raise RuntimeError("no layer for this")
""",
    # An IR op whose shape inference raises.
    "bad_infer": """
from transpiler.frontends.tf import tf_op
from transpiler.ir import register_op

def infer(node):
    assert node.inputs[0].shape is None

register_op("MyAct", infer)

@tf_op("Relu6")
def relu6(ctx, node):
    return ctx.add("MyAct", node, [ctx.input(node, 0)]).outputs
""",
    # Simulates a gap in a built-in op's shape inference (as Tile feeding Max once was): the built-in Clip's
    # inference is replaced in place, so it still counts as built-in. The node must be named; exit 2.
    "builtin_infer_gap": """
from transpiler.ir.ops import OPS

def infer(node):
    assert node.inputs[0].shape is None

OPS["Clip"] = OPS["Clip"].__class__("Clip", infer, None, True)
""",
    # Simulates a bug in a built-in pass: exit 70, "internal error", how to report it, no traceback.
    "builtin_pass_bug": """
from transpiler.pass_manager import PASSES

def run(self, graph, ctx):
    return [][0]

PASSES["dce"].run = run
""",
}


@dataclass
class Case:
    args: list[str]
    code: int
    needles: list[str]
    prelude: str = ""
    plugin: str | None = None
    setup: str = ""  # "file": a file named out; "immutable": an immutable folder 'locked'; "text.png"
    extra: dict[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "out-is-a-file": Case(["small.pb", "-o", "taken"], 2, ["-o taken", "not a folder"], setup="file"),
    "out-inside-a-file": Case(["small.pb", "-o", "taken/sub"], 2, ["taken", "is a file"], setup="file"),
    "out-not-writable": Case(["small.pb", "-o", "locked/out"], 2, ["-o locked/out", "cannot write"],
                             setup="immutable"),
    "out-existing-not-writable": Case(["small.pb", "-o", "locked"], 2, ["-o locked", "cannot write in 'locked'"],
                                      setup="immutable"),
    "dump-ir-not-writable": Case(["small.pb", "-o", "out", "--dump-ir", "locked/ir"], 2,
                                 ["--dump-ir locked/ir", "cannot write"], setup="immutable"),
    "verify-without-tensorflow": Case(["small.pb", "-o", "out", "--verify"], 2,
                                      ["TensorFlow is not installed", 'pip install "tf2caffe-transpiler[verify]"'],
                                      prelude=HIDE.format(name="tensorflow")),
    "verify-without-opencv": Case(["small.pb", "-o", "out", "--verify"], 2,
                                  ["OpenCV is not installed", 'pip install "tf2caffe-transpiler[verify]"'],
                                  prelude=HIDE.format(name="cv2")),
    "verify-with-opencv-5": Case(["small.pb", "-o", "out", "--verify"], 2,
                                 ["OpenCV 5.0.0 has no Caffe importer", 'pip install "tf2caffe-transpiler[verify]"'],
                                 prelude=FAKE_CV2_5),
    "verify-input-missing": Case(["small.pb", "-o", "out", "--verify", "--verify-input", "nope.png"], 2,
                                 ["--verify-input nope.png", "no such file"]),
    "verify-input-unreadable": Case(["small.pb", "-o", "out", "--verify", "--verify-input", "text.png"], 2,
                                    ["--verify-input text.png", "not a picture"], setup="text.png"),
    "verify-input-for-a-non-image-model": Case(["small.pb", "-o", "out", "--verify", "--verify-input", "pic.png",
                                                "--input", "Conv2D:1x8x8x8"], 2,
                                               ["--verify-input pic.png", "N×H×W×3", "1x8x8x8"], setup="pic.png"),
    "verify-input-without-verify": Case(["small.pb", "-o", "out", "--verify-input", "text.png"], 2,
                                        ["--verify-input", "add --verify"], setup="text.png"),
    "demo-image-missing": Case(["demo", "small.pb", "-o", "out", "--image", "nope.png"], 2,
                               ["--image nope.png", "no such file"]),
    "demo-image-unreadable": Case(["demo", "small.pb", "-o", "out", "--image", "text.png"], 2,
                                  ["--image text.png", "not a picture"], setup="text.png"),
    "demo-not-a-detector": Case(["demo", "small.pb", "-o", "out", "--image", "pic.png"], 2,
                                ["small.pb", "not an Object Detection API SSD detector"], setup="pic.png"),
    "plugin-handler-raises": Case(["small.pb", "-o", "out"], 2,
                                  ["plugin 'bad_handler'", "node 'Relu6'", "ValueError", "small.pb"],
                                  plugin="bad_handler"),
    "plugin-pass-raises": Case(["small.pb", "-o", "out"], 2,
                               ["small.pb", "plugin 'bad_pass'", "pass 'explode'", "Conv 'Conv2D'", "KeyError"],
                               plugin="bad_pass"),
    "plugin-emitter-raises": Case(["small.pb", "-o", "out"], 2,
                                  ["small.pb", "plugin 'bad_emitter'", "Conv 'Conv2D'", "RuntimeError"],
                                  plugin="bad_emitter"),
    "plugin-op-inference-raises": Case(["small.pb", "-o", "out"], 2,
                                       ["plugin 'bad_infer'", "node 'Relu6'", "shape inference", "AssertionError"],
                                       plugin="bad_infer"),
    "plugin-missing": Case(["small.pb", "-o", "out", "--plugin", "no_such_plugin"], 2,
                           ["--plugin no_such_plugin", "No module named"]),
    "shape-inference-gap": Case(["small.pb", "-o", "out"], 2, ["node 'Relu6'", "shape inference", "AssertionError"],
                                plugin="builtin_infer_gap"),
    "input-channels-contradict-weights": Case(["small.pb", "-o", "out", "--input", "input:1x16x16x4"], 2,
                                              ["small.pb", "node 'Conv2D'", "4 channels", "read 3"]),
    "input-rank-contradicts-declaration": Case(["small.pb", "-o", "out", "--input", "input:1x16x16"], 2,
                                               ["--input input", "3 dimensions", "declared with 4"]),
    "passes-empty": Case(["small.pb", "-o", "out", "--passes", ""], 2, ["--passes is empty"]),
    "passes-leave-unlowered-graph": Case(["small.pb", "-o", "out", "--passes", "remove-identity,map-relu6"], 2,
                                         ["--passes remove-identity,map-relu6", "NHWC", "to-nchw"]),
    "passes-leave-ops-the-backend-cannot-emit": Case(
        ["small.pb", "-o", "out", "--passes", "remove-identity,fix-same-padding,to-nchw,symmetric-padding"], 2,
        ["small.pb", "BatchNorm", "replaced the default pipeline", "fold-batchnorm"]),
    "passes-unknown": Case(["small.pb", "-o", "out", "--passes", "dce,nosuch"], 2, ["unknown pass 'nosuch'"]),
    "tolerance-zero": Case(["small.pb", "-o", "out", "--tolerance", "0"], 2, ["--tolerance", "positive"]),
    "tolerance-negative": Case(["small.pb", "-o", "out", "--tolerance=-1e-3"], 2, ["--tolerance", "positive"]),
    "nms-top-k-negative": Case(["small.pb", "-o", "out", "--nms-top-k", "-3"], 2, ["--nms-top-k", "positive"]),
    "label-map-not-text": Case(["det.pb", "-o", "out", "--label-map", "small.pb"], 2,
                               ["--label-map small.pb", "not a text file"], setup="detector"),
    "pipeline-config-not-text": Case(["det.pb", "-o", "out", "--pipeline-config", "small.pb"], 2,
                                     ["--pipeline-config small.pb", "not a text file"], setup="detector"),
    "postprocess-unknown": Case(["det.pb", "-o", "out", "--postprocess", "tflite"], 2,
                                ["--postprocess", "invalid choice", "'tflite'"], setup="detector"),
    "postprocess-external-not-a-detector": Case(["small.pb", "-o", "out", "--postprocess", "external"], 2,
                                                ["--postprocess external", "applies to SSD detectors"]),
    "postprocess-external-with-nms-top-k": Case(["det.pb", "-o", "out", "--postprocess", "external", "--nms-top-k",
                                                 "200"], 2, ["--postprocess external", "--nms-top-k", "no "
                                                             "DetectionOutput"], setup="detector"),
    "postprocess-external-with-training-files": Case(["det.pb", "-o", "out", "--postprocess", "external", "--emit",
                                                      "deploy,train"], 2,
                                                     ["--postprocess external", "--emit train", "PriorBox"],
                                                     setup="detector"),
    "postprocess-external-with-keep-classes": Case(["det.pb", "-o", "out", "--postprocess", "external",
                                                    "--keep-classes", "1"], 2,
                                                   ["--postprocess external", "--keep-classes"], setup="detector"),
    "toolchain-flavor-with-nms-top-k": Case(["det.pb", "-o", "out", "--flavor", "rknn", "--nms-top-k", "200"], 2,
                                            ["--flavor rknn", "--postprocess external", "--nms-top-k"],
                                            setup="detector"),
    "names-unknown": Case(["small.pb", "-o", "out", "--names", "camel"], 2, ["--names", "invalid choice"]),
    "model-missing": Case(["nope.pb", "-o", "out"], 2, ["nope.pb"]),
    "model-without-outputs": Case(["only_input.pbtxt", "-o", "out"], 2, ["only_input.pbtxt", "nothing to convert"],
                                  setup="only_input.pbtxt"),
    "internal-error": Case(["small.pb", "-o", "out"], 70,
                           ["internal error", "IndexError", "issue tracker", "TF2CAFFE_TRACEBACK=1"],
                           plugin="builtin_pass_bug"),
}


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """input 1x16x16x3 → conv 3x3 (3→8) → batch norm → relu6 → output, frozen with TF."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 16, 16, 3), name="input")
        y = tf.nn.conv2d(x, rng.normal(size=(3, 3, 3, 8)).astype(np.float32), [1, 2, 2, 1], "SAME")
        y, *_ = tf.compat.v1.nn.fused_batch_norm(y, *(rng.uniform(0.5, 1.5, 8).astype(np.float32) for _ in range(4)),
                                                 is_training=False)
        tf.identity(tf.nn.relu6(y), name="output")
    path = tmp_path_factory.mktemp("model") / "small.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """``folder`` made unwritable for root too (``chattr +i``), restored afterwards."""
    folder.mkdir()
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"chattr +i is not supported here ({done.stderr.strip()}): the test needs a filesystem "
                    "with the immutable flag (ext4, xfs, btrfs, tmpfs on Linux >= 6.0)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def run_case(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(cwd)}
    env.pop("TF2CAFFE_TRACEBACK", None)
    args = [*case.args, *(["--plugin", case.plugin] if case.plugin else [])]
    return subprocess.run([sys.executable, "-c", case.prelude + "import sys\n" + RUN_CLI, *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_sweep(name: str, small_model: Path, tmp_path: Path) -> None:
    case = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(small_model, work / "small.pb")
    if case.plugin:
        (work / f"{case.plugin}.py").write_text(PLUGINS[case.plugin])
    if case.setup == "file":
        (work / "taken").write_text("a file, not a folder\n")
    if case.setup == "text.png":
        (work / "text.png").write_text("not a picture\n")
    if case.setup == "detector":
        shutil.copy(fixture_model("ssdlite_mnv2_1cls_dm035"), work / "det.pb")
    if case.setup == "only_input.pbtxt":
        (work / "only_input.pbtxt").write_text('node { name: "x" op: "Placeholder" attr { key: "dtype" value { '
                                               'type: DT_FLOAT } } }\n')
    if case.setup == "pic.png":
        import cv2

        cv2.imwrite(str(work / "pic.png"), np.full((8, 8, 3), 128, np.uint8))
    locked = work / "locked"
    with immutable(locked) if case.setup == "immutable" else nullcontext():
        before = snapshot(work)
        result = run_case(case, work)
        after = snapshot(work)
    if case.setup == "immutable":
        locked.rmdir()
    assert result.returncode == case.code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, result.stderr
    assert all(len(line) < 600 for line in errors), result.stderr
    for needle in case.needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert after == before, sorted(set(after) ^ set(before))


def test_internal_error_shows_the_traceback_when_asked(small_model: Path, tmp_path: Path) -> None:
    shutil.copy(small_model, tmp_path / "small.pb")
    (tmp_path / "builtin_pass_bug.py").write_text(PLUGINS["builtin_pass_bug"])
    case = CASES["internal-error"]
    result = run_case(Case([*case.args, "-v"], 70, [], plugin="builtin_pass_bug"), tmp_path)
    assert result.returncode == 70 and "Traceback" in result.stderr and "IndexError" in result.stderr
    assert "internal error" in result.stderr.splitlines()[-1]
