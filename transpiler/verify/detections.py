"""Detector verification: raw tensors, priors, and detections matched box by box.

Raw tensors do not depend on NMS: Caffe prior ``p`` holds TF anchor ``prior_to_anchor[p]`` (−1 for
a dummy prior), its box encoding in ``[tx, ty, tw, th]`` order, its class logits unchanged.

Detections: TF clips boxes to [0, 1] after NMS and drops empty ones; Caffe's DetectionOutput does
not clip, so Caffe rows are clipped here and empty ones dropped. A TF detection matches a Caffe
detection of the same class with ``|Δscore| ≤ score_tol`` and ``IoU ≥ iou_min``. Unmatched
detections are excused only where TF's semantics force a difference: at the ``keep_top_k`` tail
(slots taken by rows TF drops, or equal scores competing for the last slots) and near-ties of NMS
(two boxes whose IoU is within ``1e-4`` of the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transpiler.verify.compare import Comparison, compare_arrays


@dataclass
class Detection:
    label: int
    score: float
    box: np.ndarray  # [ymin, xmin, ymax, xmax], clipped to [0, 1]


@dataclass
class MatchResult:
    matched: int
    unmatched_tf: list[Detection] = field(default_factory=list)
    unmatched_caffe: list[Detection] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unmatched_tf and not self.unmatched_caffe


def empty_rows(out: np.ndarray) -> int:
    """DetectionOutput rows that hold a detection whose box is empty once clipped (TF would drop them)."""
    count = 0
    for row in out.reshape(-1, 7):
        if row[1] > 0 and row[2] > 0:
            box = np.clip(row[3:7].astype(np.float64), 0.0, 1.0)
            count += int(box[2] <= box[0] or box[3] <= box[1])
    return count


def caffe_detections(out: np.ndarray) -> list[Detection]:
    """Rows of DetectionOutput ``[1,1,K,7]``, clipped; padding rows and empty boxes dropped."""
    dets = []
    for row in out.reshape(-1, 7):
        if row[1] <= 0 or row[2] <= 0:
            continue  # OpenCV pads with zeros, SSD-Caffe writes [0, -1, ...] when nothing is found
        box = np.clip(np.array([row[4], row[3], row[6], row[5]], dtype=np.float64), 0.0, 1.0)
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        dets.append(Detection(round(float(row[1])), float(row[2]), box))
    return dets


def tf_detections(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, num: Any,
                  kept_classes: list[int] | None = None) -> list[Detection]:
    """TF's detections; with ``kept_classes`` (``--keep-classes``) only those, relabelled 1..K."""
    n = int(np.asarray(num).reshape(-1)[0])
    dets = [Detection(round(float(classes.reshape(-1)[i])), float(scores.reshape(-1)[i]),
                      np.asarray(boxes.reshape(-1, 4)[i], dtype=np.float64)) for i in range(n)]
    if kept_classes is None:
        return dets
    relabel = {tf_id: k for k, tf_id in enumerate(kept_classes, start=1)}
    return [Detection(relabel[d.label], d.score, d.box) for d in dets if d.label in relabel]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_h * inter_w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_detections(tf: list[Detection], caffe: list[Detection], *, score_min: float = 0.01,
                     score_tol: float = 1e-3, iou_min: float = 0.98, keep_top_k: int | None = None,
                     nms_threshold: float | None = None, caffe_empty_rows: int = 0,
                     max_per_class: int | None = None) -> MatchResult:
    """Match detections; ``caffe_empty_rows`` (see :func:`empty_rows`) and ``max_per_class`` feed the
    excuses for what TF's semantics force at the ``keep_top_k`` tail."""
    result = MatchResult(0)
    used: set[int] = set()
    pairs: dict[int, int] = {}
    for i, t in enumerate(tf):
        best = None
        for j, c in enumerate(caffe):
            if j in used or c.label != t.label or abs(c.score - t.score) > score_tol:
                continue
            overlap = iou(t.box, c.box)
            if overlap >= iou_min and (best is None or overlap > best[1]):
                best = (j, overlap)
        if best is not None:
            used.add(best[0])
            pairs[i] = best[0]
    result.matched = len(pairs)
    result.unmatched_tf = [t for i, t in enumerate(tf) if i not in pairs and t.score >= score_min]
    result.unmatched_caffe = [c for j, c in enumerate(caffe) if j not in used and c.score >= score_min]
    _excuse(result, tf, caffe, keep_top_k, nms_threshold, caffe_empty_rows, max_per_class)
    return result


def _excuse(result: MatchResult, tf: list[Detection], caffe: list[Detection], keep_top_k: int | None,
            nms_threshold: float | None, empty: int, max_per_class: int | None) -> None:
    """Drop the differences TF's semantics force; what remains is a real mismatch.

    1. Caffe has no per-class cap: its detections of a class beyond TF's ``max_per_class`` (scoring
       below TF's last one of that class) are not in TF's list, and each takes a ``keep_top_k`` slot.
    2. Each Caffe row that is empty once clipped (TF drops those before its top-k) or excused by 1
       pushes one of TF's last detections out of Caffe's ``keep_top_k`` rows.
    3. Equal scores competing for the last slots, and NMS near-ties (IoU within 1e-4 of the threshold).
    """
    def near_tie(d: Detection, others: list[Detection]) -> bool:
        return nms_threshold is not None and any(
            o.label == d.label and abs(iou(o.box, d.box) - nms_threshold) <= 1e-4 for o in others)

    kept_caffe = []
    for d in result.unmatched_caffe:
        same = [t.score for t in tf if t.label == d.label]
        if max_per_class is not None and len(same) >= max_per_class and d.score <= min(same) + 1e-4:
            result.excused.append(f"class {d.label} score {d.score:.4f}: beyond TF's max_per_class")
        else:
            kept_caffe.append(d)
    displaced = empty + (len(result.unmatched_caffe) - len(kept_caffe))
    result.unmatched_caffe = kept_caffe
    tail_start = (keep_top_k - displaced) if keep_top_k is not None else len(tf)
    caffe_full = keep_top_k is not None and len(caffe) + empty >= keep_top_k
    tf_full = keep_top_k is not None and len(tf) >= keep_top_k
    cut = max(min((d.score for d in tf), default=0.0) if tf_full else -1.0,
              min((d.score for d in caffe), default=0.0) if caffe_full else -1.0) + 1e-4
    rank = {id(d): i for i, d in enumerate(sorted(tf, key=lambda t: -t.score))}
    for side, others in ((result.unmatched_tf, tf), (result.unmatched_caffe, caffe)):
        kept = []
        for d in side:
            if side is result.unmatched_tf and rank[id(d)] >= tail_start:
                result.excused.append(f"class {d.label} score {d.score:.4f}: displaced from the last "
                                      f"keep_top_k slots by {displaced} row(s) TF drops or caps")
            elif d.score <= cut:
                result.excused.append(f"class {d.label} score {d.score:.4f}: equal scores at the keep_top_k tail")
            elif near_tie(d, others):
                result.excused.append(f"class {d.label} score {d.score:.4f}: NMS near-tie")
            else:
                kept.append(d)
        side[:] = kept


def compare_raw(report: dict[str, Any], loc: np.ndarray, conf_logits: np.ndarray, priors: np.ndarray,
                tf_encodings: np.ndarray, tf_logits: np.ndarray, tf_anchors: np.ndarray | None,
                tolerance: float) -> list[Comparison]:
    """Caffe's DetectionOutput inputs vs TF's raw tensors, through prior_to_anchor."""
    ssd = report["ssd"]
    mapping = np.asarray(ssd["prior_to_anchor"])
    real = mapping >= 0
    order = ssd["box_coordinate_order"]
    classes = tf_logits.shape[-1]
    selection = ssd.get("class_selection")
    if selection:  # --keep-classes: Caffe's columns are TF's background and kept classes, in order
        tf_logits = tf_logits.reshape(-1, classes)[:, [0, *selection["tf_class_ids"]]]
        classes = tf_logits.shape[-1]
    enc = tf_encodings.reshape(-1, 4)[mapping[real]][:, order]
    rows = [
        compare_arrays(ssd["raw_tensors"]["box_encodings"]["tf_tensor"], "mbox_loc",
                       loc.reshape(-1, 4)[real], enc, tolerance),
        compare_arrays(ssd["raw_tensors"]["class_logits"]["tf_tensor"], "mbox_conf_logits",
                       conf_logits.reshape(-1, classes)[real], tf_logits.reshape(-1, classes)[mapping[real]],
                       tolerance),
    ]
    if tf_anchors is not None:
        got = priors.reshape(2, -1, 4)[0][real]
        want = tf_anchors.reshape(-1, 4)[mapping[real]][:, [1, 0, 3, 2]]
        # priors are absolute coordinates in [0, 1]: the check is absolute, 1e-5
        rows.append(compare_arrays(ssd["raw_tensors"]["anchors"]["tf_tensor"], "mbox_priorbox", got, want,
                                   1e-5 / max(float(np.abs(want).max()), 1e-12)))
    return rows


def postprocessed_detections(report: dict[str, Any], folder: Any, loc: np.ndarray, logits: np.ndarray
                             ) -> list[Detection]:
    """--postprocess external: the detections ``transpiler.runtime.ssd_postprocess`` makes of the net's two
    outputs, with the priors and settings the conversion wrote into ``folder``."""
    from transpiler.runtime.ssd_postprocess import PostprocessSettings, load_priors, postprocess

    det = postprocess(loc, logits, load_priors(folder), PostprocessSettings.from_report(report))
    return [Detection(int(c), float(s), b.astype(np.float64))
            for b, s, c in zip(det.boxes, det.scores, det.classes, strict=True)]


def match_postprocessed(tf: list[Detection], ours: list[Detection], score_tol: float = 1e-4) -> MatchResult:
    """TF's detections against ``ssd_postprocess``'s, with no excuse: every detection of either list, whatever its
    score, must pair with one of the same class, ``|Δscore| ≤ score_tol`` and IoU ≥ 0.999 (the raw tensors' float32
    noise only); pairs are one to one, so the counts agree when nothing is left unmatched."""
    return match_detections(tf, ours, score_min=0.0, score_tol=score_tol, iou_min=0.999)
