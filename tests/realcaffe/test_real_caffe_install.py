"""The installer on a real Caffe fork, as shipped: brocolli-caffe 9.0.2 (tests/real_caffe.py), which has its
own ReLU6 (like chuanqi305/ssd). Installing everything is refused with nothing written and a pointer to
--layers; the depthwise layer alone installs, takes the field number the tree's comment names, and a second
run changes nothing. Through the CLI, for the exit codes users see."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_caffe_piece


@pytest.fixture
def fork_tree(tmp_path: Path) -> Path:
    from real_caffe import unpack_source

    return real_caffe_piece(lambda: unpack_source(tmp_path))


def _install(tree: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transpiler.kernels", "install", "--caffe-root", str(tree), *extra],
                          capture_output=True, text=True, check=False)


def _digest(tree: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(tree)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_installer_on_a_fork_with_its_own_relu6(fork_tree: Path) -> None:
    before = _digest(fork_tree)
    refused = _install(fork_tree)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "ReLU6: the tree already registers this layer type in src/caffe/layers/relu6_layer.cpp" in refused.stderr
    assert "--layers depthwise_conv" in refused.stderr
    assert _digest(fork_tree) == before, "a refused install must write nothing"

    done = _install(fork_tree, "--layers", "depthwise_conv")
    assert done.returncode == 0, done.stdout + done.stderr
    proto = (fork_tree / "src/caffe/proto/caffe.proto").read_text()
    assert "optional DepthwiseConvolutionParameter depthwise_conv_param = 147;" in proto  # the comment said 147
    assert "next available layer-specific ID: 148" in proto
    assert (fork_tree / "include/caffe/layers/depthwise_conv_layer.hpp").exists()
    assert (fork_tree / "src/caffe/layers/depthwise_conv_cuda_kernels.cuh").exists()

    after = _digest(fork_tree)
    again = _install(fork_tree, "--layers", "depthwise_conv")
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stdout + again.stderr
    assert _digest(fork_tree) == after
