"""What every toolchain driver shares. A driver runs with its toolchain's venv Python (not ours): it may import
only the standard library, numpy and its toolchain.

Spec (JSON, argv[1]): ``prototxt``, ``caffemodel``, ``input`` (the input blob), ``shape`` (NCHW), ``outputs``
(blob names to fetch), ``feeds`` (an .npz: one NCHW float32 array per picture), ``result`` (the .npz to write:
``<picture>/<blob>``), ``answer`` (the JSON to write: versions, load/compile and run seconds, notes), ``options``.
A batch spec has ``nets``: a list of such specs (each with its own result and answer) run in one process (importing
a toolchain costs more than converting a small net); a net that fails gets ``{"error": ...}`` as its answer.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    spec.setdefault("options", {})
    return spec


def stage(name: str) -> None:
    """Progress marker (stage.txt in the working folder): how far the toolchain got when it fails."""
    Path("stage.txt").write_text(name)


Outputs = dict[str, dict[str, np.ndarray]]
RunNet = Callable[[dict[str, Any], "Clock"], tuple[Outputs, list[str]]]


def main(run_net: RunNet, versions: Callable[[], dict[str, str]], warm: Callable[[], None] = lambda: None) -> None:
    """Run one spec or a batch: ``run_net(spec, clock)`` → ({picture: {blob: array}}, notes).

    In a batch, each net runs in a child forked after ``warm()`` imported the toolchain once: a net sees no state
    left by the previous ones (x2paddle + Paddle fail on a second conversion in one process), and a net that
    crashes the toolchain (MNN segfaults on some) is recorded as such while the batch goes on."""
    spec = load_spec()
    if "nets" not in spec:
        clock = Clock()
        outputs, notes = run_net(spec, clock)
        finish(spec, outputs, clock, versions(), notes, runs=len(outputs))
        return
    warm()
    for net in spec["nets"]:
        net.setdefault("options", {})
        answer = Path(net["answer"])
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                clock = Clock()
                outputs, notes = run_net(net, clock)
                finish(net, outputs, clock, versions(), notes, runs=len(outputs))
            except BaseException as exc:  # the toolchain's refusal of this net: recorded, the batch goes on
                lines = traceback.format_exception_only(type(exc), exc)
                answer.write_text(json.dumps({"error": "".join(lines).strip()[-600:]}))
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if not answer.exists():
            answer.write_text(json.dumps({"error": f"crashed (wait status {status})"}))
    Path(spec["answer"]).write_text(json.dumps({"versions": versions(), "nets": len(spec["nets"])}))


def feeds(spec: dict[str, Any]) -> dict[str, np.ndarray]:
    with np.load(spec["feeds"]) as data:
        return {k: data[k].astype(np.float32) for k in data.files}


class Clock:
    """Seconds per named step; repeated steps (one run per picture) keep each duration."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.each: dict[str, list[float]] = {}

    def __call__(self, what: str) -> Any:
        clock = self

        class _Timer:
            def __enter__(self) -> None:
                self.start = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                spent = time.perf_counter() - self.start
                clock.times[what] = clock.times.get(what, 0.0) + spent
                clock.each.setdefault(what, []).append(round(spent, 5))

        return _Timer()


def finish(spec: dict[str, Any], outputs: dict[str, dict[str, np.ndarray]], clock: Clock, versions: dict[str, str],
           notes: list[str] | None = None, runs: int = 1) -> None:
    arrays: dict[str, Any] = {f"{pic}/{blob}": np.asarray(a) for pic, blobs in outputs.items()
                              for blob, a in blobs.items()}
    np.savez(spec["result"], **arrays)
    answer = {"versions": versions, "times": {k: round(v, 4) for k, v in clock.times.items()},
              "each": clock.each, "runs": runs, "notes": notes or []}
    Path(spec["answer"]).write_text(json.dumps(answer))
