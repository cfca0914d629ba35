"""Tensor comparison: max absolute error, and error relative to the reference's largest magnitude.

``rel = max|caffe − tf| / max|tf|`` is the figure the tolerance applies to (``rel ≤ 1e-4`` by
default): it is scale-free, and unlike element-wise relative error it does not explode on zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Comparison:
    name: str
    blob: str
    shape: tuple[int, ...]
    max_abs: float
    ref_max: float
    ok: bool
    bound: float | None = None  # the max|Δ| allowed, where a rule other than the tolerance set it

    @property
    def rel(self) -> float:
        return self.max_abs / self.ref_max if self.ref_max > 0 else self.max_abs


def compare_arrays(name: str, blob: str, got: np.ndarray, ref: np.ndarray, tolerance: float) -> Comparison:
    if got.shape != ref.shape:
        if got.size == ref.size:
            got = got.reshape(ref.shape)
        else:
            return Comparison(name, blob, tuple(ref.shape), float("inf"), float(np.abs(ref).max(initial=0)), False)
    diff = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max(initial=0.0))
    ref_max = float(np.abs(ref).max(initial=0.0))
    ok = diff <= tolerance * max(ref_max, 1e-12) and bool(np.all(np.isfinite(got)))
    return Comparison(name, blob, tuple(ref.shape), diff, ref_max, ok)


def format_table(rows: list[Comparison]) -> str:
    width = max([len(r.name) for r in rows] + [10])
    lines = [f"{'tensor':<{width}}  {'shape':<20} {'max|Δ|':>10} {'max|ref|':>10} {'rel':>10}  status"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {'x'.join(map(str, r.shape)):<20} {r.max_abs:>10.3g} {r.ref_max:>10.3g} "
                     f"{r.rel:>10.3g}  {'ok' if r.ok else 'FAIL'}")
    return "\n".join(lines)
