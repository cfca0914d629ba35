"""``--per-layer``: compare every Caffe blob with its TF tensor and name the first real divergence.

A blob ``b`` holds ``c = transpose(t, P)`` of TF tensor ``t`` (``P`` from conversion.json; a blob may
also hold that tensor flattened, and is then compared after reshaping). Both sides compute in
float32, so they differ even when the conversion is exact, and how much depends on the values that
flowed *into* the layer, not on the blob's own size: a 1×1 convolution whose output nearly cancels
(inputs ~50, output ~0.02) carries rounding errors of ~ε·Σ|w·x| ≈ 1e-6, a large fraction of its
tiny values. A fixed relative tolerance then cries wolf.

Rule (``yardstick``): TensorFlow is run a second time on the same input with the graph rewritten to
float64 (tf_graph.as_float64), so ``e_b = max|t₃₂ − t₆₄|`` is TF's own float32 rounding error at
that tensor, everything upstream included. With ``Δ_b = max|c − t₃₂|``::

    b diverges  ⇔  Δ_b > max(τ · max|t₃₂|,  K · e_b)          (τ = --tolerance, K = 16)

An exact conversion computes the same function with a different float32 summation order, so
``|c − t₆₄|`` is of the order of ``e_b`` and ``Δ_b ≤ |c − t₆₄| + e_b`` stays within a few ``e_b``
(measured: ≤ 1.8·e_b over the 97 blobs of a MobileNetV2, ≤ 2.9·e_b over the 147 of an
SSDLite); a real slip (a wrong weight, axis or pad)
is off by a fraction of the values themselves, ~10⁴·e_b and more. The relative term keeps the
outputs' rule: a blob within the tolerance the outputs are held to is never a divergence.

Where a part upstream of the first blob has no float64 form (the TensorArray loop of an OD API
preprocessor), the float64 graph is fed at the first blob's tensor with TF's float32 values there:
``e_b`` then leaves out the rounding before that point, which the relative term covers.

Fallback (``upstream``), when TF cannot run the graph in float64 (an op without a float64 kernel):
the scale of the values flowing in is approximated by the largest magnitude seen so far in
network order, ``M_b = max_{b' ≤ b} max|t_{b'}|``, and ``b`` diverges ⇔ ``Δ_b > τ · M_b``.

A blob that holds a TF tensor flattened in another axis order (``view: reshape`` in conversion.json,
e.g. a map flattened in NCHW order before an InnerProduct) is compared with
``reshape(transpose(t, P), shape)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transpiler.verify.compare import Comparison, compare_arrays

K_ROUNDING = 16.0


@dataclass
class LayerReport:
    layers: list[Comparison] = field(default_factory=list)
    first_divergence: Comparison | None = None
    rule: str = ""


Float64Run = Callable[[list[str], dict[str, np.ndarray] | None], dict[str, np.ndarray]]


def rule_text(yardstick: bool, tolerance: float, why_not: str = "", start: str | None = None) -> str:
    if yardstick:
        where = f" from {start}, fed TF's float32 values there" if start else ""
        return (f"a blob diverges when max|Δ| > max({tolerance:g}·max|ref|, {K_ROUNDING:g}·max|TF32 − TF64|), "
                f"TF32 − TF64 being TF's own float32 rounding error there (TF rerun in float64{where})")
    return (f"a blob diverges when max|Δ| > {tolerance:g}·(largest max|ref| up to it in network order)"
            f"{f' (TF could not run in float64: {why_not})' if why_not else ''}")


def _tf_view(ref: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """What the blob holds, from TF's tensor: transposed, and reshaped for a ``view: reshape`` blob."""
    r = np.asarray(ref)
    perm = entry["permutation"] if r.ndim == len(entry["permutation"]) else list(range(r.ndim))
    view = np.transpose(r, perm)
    return view.reshape(entry["shape"]) if entry.get("view") == "reshape" else view


def _float64_reference(entries: list[tuple[str, dict[str, Any]]], ref: dict[str, Any],
                       run_float64: Float64Run) -> tuple[dict[str, np.ndarray] | None, str | None, str]:
    """TF's float64 values of the blobs' tensors: fed at the inputs, or else (a part upstream of the
    first blob has no float64 form, e.g. a TensorArray loop in preprocessing) fed at the first blob's
    tensor with TF's float32 values. Returns (values, where fed if not at the inputs, why it failed)."""
    fetches = sorted({e["tf_tensor"] for _, e in entries})
    try:
        return run_float64(fetches, None), None, ""
    except Exception as exc:  # a missing float64 kernel or a float-only op: TF says so in many ways
        why_not = _first_line(exc)
    first = next((e["tf_tensor"] for _, e in entries if np.asarray(ref[e["tf_tensor"]]).dtype == np.float32), None)
    if first is not None:
        try:
            return run_float64(fetches, {first: np.asarray(ref[first])}), first, ""
        except Exception as exc:
            why_not = _first_line(exc)
    return None, None, why_not


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


def compare_blobs(blob_entries: list[tuple[str, dict[str, Any]]], ref: dict[str, Any], got: dict[str, np.ndarray],
                  tolerance: float, run_float64: Float64Run) -> LayerReport:
    """Judge each blob (network order) by the rule above; ``run_float64(fetches, feeds)`` runs TF in float64
    (``feeds`` None: the verification's own inputs)."""
    report = LayerReport()
    entries = list(blob_entries)
    ref64, start, why_not = _float64_reference(entries, ref, run_float64)
    report.rule = rule_text(ref64 is not None, tolerance, why_not, start)
    upstream = 0.0
    for blob, e in entries:
        want = _tf_view(ref[e["tf_tensor"]], e)
        cmp = compare_arrays(e["tf_tensor"], blob, got[e["layer"]], want, tolerance)
        if ref64 is not None:
            own = float(np.abs(want.astype(np.float64) - _tf_view(ref64[e["tf_tensor"]], e)).max(initial=0.0))
            cmp.bound = max(tolerance * cmp.ref_max, K_ROUNDING * own)
        else:
            upstream = max(upstream, cmp.ref_max)
            cmp.bound = tolerance * upstream
        cmp.ok = cmp.max_abs <= cmp.bound and cmp.max_abs != float("inf")
        report.layers.append(cmp)
        if not cmp.ok and report.first_divergence is None:
            report.first_divergence = cmp
    return report
