"""The toolchain venvs cannot reach the network under the tests' settings (TRANSPILER_OFFLINE=1): IPv4/IPv6 connects
raise, ``os.system("pip ...")`` (what MNN.tools runs on import) is refused; local sockets still work."""

from __future__ import annotations

import os
import subprocess

import pytest
from toolchain_envs import ToolchainUnavailable, ensure_env

PROBE = """
import os, socket
for family, address in ((socket.AF_INET, ("1.1.1.1", 443)), (socket.AF_INET6, ("2606:4700:4700::1111", 443))):
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.connect(address)
        print("CONNECTED", family)
    except OSError as exc:
        print("BLOCKED" if "network access blocked" in str(exc) else f"OTHER {exc!r}", family)
try:
    os.system("pip --version")
    print("PIP RAN")
except OSError as exc:
    print("PIP BLOCKED" if "blocked" in str(exc) else f"PIP OTHER {exc!r}")
a, b = socket.socketpair()
a.sendall(b"x")
print("LOCAL", b.recv(1))
"""


def test_venv_python_is_offline() -> None:
    try:
        venv = ensure_env("mnn")  # the smallest; every venv gets the same guard
    except ToolchainUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"toolchain mnn unavailable in CI: {exc}")
        pytest.skip(f"toolchain mnn unavailable: {exc}")
    env = {**os.environ, "TRANSPILER_OFFLINE": "1"}
    out = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=60).stdout.split("\n")
    assert [line.split()[0] for line in out[:2]] == ["BLOCKED", "BLOCKED"], out
    assert "PIP BLOCKED" in out and "LOCAL b'x'" in out, out
