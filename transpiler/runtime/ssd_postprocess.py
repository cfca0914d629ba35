"""TF Object Detection API SSD postprocessing, exactly as TensorFlow computes it (numpy only).

For a model converted with ``--postprocess external``: the Caffe net outputs the raw box encodings and
class logits in TF's anchor order (``mbox_loc`` = TF's ``Squeeze:0`` flattened, ``mbox_conf_logits`` =
``concat_1:0`` flattened), the anchors are in ``priors.npy`` and the settings in ``conversion.json``'s
``postprocess`` section. :func:`postprocess` turns them into TF's ``detection_*`` outputs. Every step is
float32, in TF's order of operations, except ``exp`` and the score converters, evaluated in float64 and
rounded once (TF's float32 kernels are within a few ulp of that: from TF's own raw tensors this gives TF's
detection list row by row, scores and boxes within 2e-7; the C++ header kernels/ssd_postprocess gives this
module's results bit for bit):

1. Decode (``FasterRcnnBoxCoder`` with scale factors ``s``), anchors ``[ymin, xmin, ymax, xmax]``:
   ``h_a = ymax − ymin``, ``y_a = ymin + h_a/2`` (likewise x, w); ``ty = e₀/s₀``, ``tx = e₁/s₁``,
   ``th = e₂/s₂``, ``tw = e₃/s₃``; ``h = exp(th)·h_a``, ``w = exp(tw)·w_a``, ``y = ty·h_a + y_a``,
   ``x = tx·w_a + x_a``; box ``[y − h/2, x − w/2, y + h/2, x + w/2]``.
2. Scores: ``logits / logit_scale`` → sigmoid (or softmax over all columns); column 0 (background) dropped,
   so class ``c`` (1-based) is logit column ``c``.
3. Per class, TF's ``NonMaxSuppressionV3/V5`` (hard NMS) on the decoded, *unclipped* boxes: candidates
   are the boxes with score ``> score_threshold``, visited best first (equal scores: lower anchor index
   first); a candidate is selected unless its IoU with a box already selected in its class is
   ``> iou_threshold``; at most ``max_per_class`` selections. IoU as TF's kernel: corners ordered by
   min/max, ``inter / (area_i + area_j − inter)``, 0 when either box is empty.
4. All classes' selections sorted by score (equal scores: lower class first, then selection order:
   ``tf.nn.top_k`` is stable), clipped to the window ``[0, 0, 1, 1]``, those left with zero area dropped,
   the first ``max_total`` kept.

Step 3–4 are computed lazily: a heap holds each class's next candidate keyed ``(−score, class)``, so
candidates are visited in exactly the merged order of step 4 and the work stops once ``max_total``
detections are out (a 90-class model with TF's 1e-8 threshold visits about a hundred candidates, not
90 × all anchors). Each class's selections are the same as running its NMS to completion; its candidates
are ordered a chunk at a time and its sigmoid scores computed when it is first visited.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class PostprocessSettings:
    """The postprocessor's parameters (``conversion.json`` → ``postprocess``)."""

    iou_threshold: float = 0.6
    score_threshold: float = 1e-8
    max_per_class: int = 100
    max_total: int = 100
    scale_factors: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    score_converter: str = "sigmoid"  # "sigmoid" or "softmax"
    logit_scale: float = 1.0
    clip_window: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # ymin, xmin, ymax, xmax

    @classmethod
    def from_report(cls, report: dict[str, Any] | str | Path) -> PostprocessSettings:
        """Settings from a ``conversion.json`` (its path, its folder, or the parsed dict)."""
        if isinstance(report, dict):
            data: dict[str, Any] = report
        else:
            path = Path(report)
            data = json.loads((path / "conversion.json" if path.is_dir() else path).read_text())
        section = data["postprocess"]
        nms = section["nms"]
        s0, s1, s2, s3 = (float(s) for s in section["box_coder"]["scale_factors"])
        w0, w1, w2, w3 = (float(v) for v in section["clip_window"])
        return cls(iou_threshold=float(nms["iou_threshold"]), score_threshold=float(nms["score_threshold"]),
                   max_per_class=int(nms["max_per_class"]), max_total=int(nms["max_total"]),
                   scale_factors=(s0, s1, s2, s3), score_converter=str(section["score_converter"]),
                   logit_scale=float(section["logit_scale"]), clip_window=(w0, w1, w2, w3))


@dataclass
class Detections:
    """Detections of one image, best first: ``boxes`` [K,4] ``[ymin, xmin, ymax, xmax]`` (clipped,
    normalised), ``scores`` [K], ``classes`` [K] (1-based, as TF's ``detection_classes``), ``anchors`` [K]:
    the anchor (row of ``priors.npy``) each box was decoded from."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    anchors: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def padded(self, max_total: int) -> dict[str, np.ndarray]:
        """As the exported graph's outputs: ``detection_boxes`` [1,N,4], ``detection_scores`` [1,N],
        ``detection_classes`` [1,N] (float), ``num_detections`` [1], zero-padded to ``max_total``."""
        n = len(self)
        boxes, scores, classes = np.zeros((1, max_total, 4), F32), np.zeros((1, max_total), F32), np.zeros(
            (1, max_total), F32)
        boxes[0, :n], scores[0, :n], classes[0, :n] = self.boxes, self.scores, self.classes
        return {"detection_boxes": boxes, "detection_scores": scores, "detection_classes": classes,
                "num_detections": np.array([n], F32)}


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray,
                 scale_factors: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)) -> np.ndarray:
    """``FasterRcnnBoxCoder.decode`` in float32: ``[ty, tx, th, tw]`` per anchor → ``[ymin, xmin, ymax, xmax]``."""
    a = np.asarray(anchors, F32).reshape(-1, 4)
    e = np.asarray(encodings, F32).reshape(-1, 4)
    if len(a) != len(e):
        raise ValueError(f"{len(e)} box encodings for {len(a)} anchors")
    two = F32(2.0)
    ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    yca, xca = a[:, 0] + ha / two, a[:, 1] + wa / two
    s = [F32(v) for v in scale_factors]
    ty, tx, th, tw = e[:, 0] / s[0], e[:, 1] / s[1], e[:, 2] / s[2], e[:, 3] / s[3]
    h = np.exp(th.astype(np.float64)).astype(F32) * ha  # exp rounded once from double (as the C++ header)
    w = np.exp(tw.astype(np.float64)).astype(F32) * wa
    yc, xc = ty * ha + yca, tx * wa + xca
    return np.stack([yc - h / two, xc - w / two, yc + h / two, xc + w / two], axis=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 sigmoid, evaluated in float64 and rounded once (TF's float32 kernel is within a few ulp)."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(F32)


def _scaled_logits(logits: np.ndarray, num_anchors: int, logit_scale: float) -> np.ndarray:
    x = np.asarray(logits, F32).reshape(num_anchors, -1)
    return x / F32(logit_scale) if logit_scale != 1.0 else x


def convert_scores(logits: np.ndarray, num_anchors: int, converter: str = "sigmoid",
                   logit_scale: float = 1.0) -> np.ndarray:
    """[A, C] float32 class scores, background column dropped; the sigmoid/softmax is evaluated in
    float64 and rounded once (TF's float32 kernels are within an ulp or two of that)."""
    x = _scaled_logits(logits, num_anchors, logit_scale)
    if converter == "sigmoid":
        return np.ascontiguousarray(_sigmoid(x)[:, 1:])
    if converter == "softmax":
        x64 = x.astype(np.float64)
        z = np.exp(x64 - x64.max(axis=1, keepdims=True))
        return np.ascontiguousarray((z / z.sum(axis=1, keepdims=True)).astype(F32)[:, 1:])
    raise ValueError(f"score converter '{converter}' (sigmoid, softmax)")


def _corners(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``[ymin, xmin, ymax, xmax]`` with corners ordered, area) in float32, as TF's IoU reads a box."""
    lo = np.minimum(boxes[:, :2], boxes[:, 2:])
    hi = np.maximum(boxes[:, :2], boxes[:, 2:])
    ordered = np.concatenate([lo, hi], axis=1)
    return ordered, (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])


CHUNK = 64  # candidates ordered at a time: a class rarely needs more than its best few dozen


class _ClassNMS:
    """One class's greedy NMS, advanced one candidate at a time (TF's NonMaxSuppressionV3/V5, hard).

    Candidates are ordered best first (equal scores: lower index first) a chunk at a time: all remaining
    candidates scoring at least the ``CHUNK``-th best, so equal scores are never split between chunks.
    """

    __slots__ = ("area", "boxes", "count", "iou", "limit", "order", "pos", "rest", "scores", "sel_area", "sel_boxes")

    def __init__(self, boxes: np.ndarray, area: np.ndarray, scores: np.ndarray, score_threshold: F32,
                 iou: F32, limit: int) -> None:
        self.rest = np.flatnonzero(scores > score_threshold)  # candidates not ordered yet
        self.order = self.rest[:0]
        self.boxes, self.area, self.scores, self.iou, self.limit = boxes, area, scores, iou, limit
        self.pos, self.count = 0, 0
        self.sel_boxes = np.empty((max(min(limit, len(self.rest)), 1), 4), F32)
        self.sel_area = np.empty(len(self.sel_boxes), F32)

    def _order_next_chunk(self) -> None:
        rest, s = self.rest, self.scores[self.rest]
        if len(rest) > CHUNK:
            cut = -np.partition(-s, CHUNK - 1)[CHUNK - 1]  # the CHUNK-th best score
            mask = s >= cut
            chunk, s, self.rest = rest[mask], s[mask], rest[~mask]
        else:
            chunk, self.rest = rest, rest[:0]
        self.order, self.pos = chunk[np.lexsort((chunk, -s))], 0

    def peek(self) -> int | None:
        """The next candidate's index, or None when the class is done."""
        if self.count >= self.limit:
            return None
        if self.pos >= len(self.order):
            if not len(self.rest):
                return None
            self._order_next_chunk()
        return int(self.order[self.pos])

    def take(self) -> tuple[int, bool]:
        """Visit the next candidate (there must be one): its index, and whether it is selected (no IoU >
        threshold with a box selected before)."""
        i = self.peek()
        assert i is not None
        self.pos += 1
        k = self.count
        if k and self.area[i] > 0:
            b, s = self.boxes[i], self.sel_boxes[:k]
            ih = np.maximum(np.minimum(b[2], s[:, 2]) - np.maximum(b[0], s[:, 0]), F32(0))
            iw = np.maximum(np.minimum(b[3], s[:, 3]) - np.maximum(b[1], s[:, 1]), F32(0))
            inter = ih * iw
            sa = self.sel_area[:k]
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = np.where(sa > 0, inter / (self.area[i] + sa - inter), F32(0))
            if bool((iou > self.iou).any()):
                return i, False
        self.sel_boxes[k], self.sel_area[k] = self.boxes[i], self.area[i]
        self.count += 1
        return i, True


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float,
        max_output: int) -> np.ndarray:
    """Indices one class's TF NonMaxSuppressionV3/V5 selects, in selection order."""
    ordered, area = _corners(np.asarray(boxes, F32).reshape(-1, 4))
    state = _ClassNMS(ordered, area, np.asarray(scores, F32), F32(score_threshold), F32(iou_threshold), max_output)
    keep = []
    while state.peek() is not None:
        i, selected = state.take()
        if selected:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def postprocess(box_encodings: np.ndarray, class_logits: np.ndarray, anchors: np.ndarray,
                settings: PostprocessSettings = PostprocessSettings()) -> Detections:
    """TF's detections from the raw tensors of one image.

    ``box_encodings``: [A·4] or [1,A,4] ``[ty, tx, th, tw]`` per anchor (TF's order, e.g. the
    ``mbox_loc`` blob of an external-postprocess conversion); ``class_logits``: [A·(C+1)] or [1,A,C+1],
    background first; ``anchors``: [A,4] ``[ymin, xmin, ymax, xmax]`` (``priors.npy``).
    """
    boxes = decode_boxes(box_encodings, anchors, settings.scale_factors)
    ordered, area = _corners(boxes)
    if settings.score_converter == "sigmoid":
        # scores of a class are computed when it is first visited; the sigmoid is monotonic, so a class's best
        # score (which orders the heap) is the sigmoid of its largest logit
        x = _scaled_logits(class_logits, len(boxes), settings.logit_scale)[:, 1:]
        best = _sigmoid(x.max(axis=0)) if len(boxes) else np.zeros(x.shape[1], F32)

        def column(c: int) -> np.ndarray:
            return _sigmoid(x[:, c])
    else:
        scores = convert_scores(class_logits, len(boxes), settings.score_converter, settings.logit_scale)
        best = scores.max(axis=0) if len(boxes) else np.zeros(scores.shape[1], F32)

        def column(c: int) -> np.ndarray:
            return np.ascontiguousarray(scores[:, c])
    threshold, iou = F32(settings.score_threshold), F32(settings.iou_threshold)
    # heap of (−score, class) of each class's next candidate: popped in the order of TF's merged, sorted list
    heap = [(-float(b), c) for c, b in enumerate(best) if b > threshold] if settings.max_per_class > 0 else []
    heapq.heapify(heap)
    states: dict[int, tuple[_ClassNMS, np.ndarray]] = {}
    window = np.asarray(settings.clip_window, F32)
    lo, hi = window[[0, 1, 0, 1]], window[[2, 3, 2, 3]]
    out_boxes: list[np.ndarray] = []
    out_scores: list[float] = []
    out_classes: list[int] = []
    out_anchors: list[int] = []
    while heap and len(out_scores) < settings.max_total:
        _, c = heapq.heappop(heap)
        if c not in states:
            col = column(c)
            states[c] = _ClassNMS(ordered, area, col, threshold, iou, settings.max_per_class), col
        state, col = states[c]
        i, selected = state.take()
        if selected:
            box = np.maximum(np.minimum(boxes[i], hi), lo)
            if (box[2] - box[0]) * (box[3] - box[1]) > 0:
                out_boxes.append(box)
                out_scores.append(float(col[i]))
                out_classes.append(c + 1)
                out_anchors.append(i)
        nxt = state.peek()
        if nxt is not None:
            heapq.heappush(heap, (-float(col[nxt]), c))
    return Detections(np.asarray(out_boxes, F32).reshape(-1, 4), np.asarray(out_scores, F32),
                      np.asarray(out_classes, np.int64), np.asarray(out_anchors, np.int64))


def load_priors(folder: str | Path) -> np.ndarray:
    """The anchors an external-postprocess conversion wrote (``priors.npy``, [A,4] float32)."""
    return np.load(Path(folder) / "priors.npy")
