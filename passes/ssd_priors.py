"""Anchors ↔ Caffe PriorBox: derive PriorBox layers from a head's anchors, and generate priors.

TF's SSD anchors of one head are, per cell and in a fixed order, boxes ``(w, h)`` (normalised)
centred at ``((j + 0.5)/W_f, (i + 0.5)/H_f)``. Caffe's PriorBox emits per cell, for each
``min_size``: the square ``min``; the square ``√(min·max)`` when ``max_size`` is set; then
``min·√ar × min/√ar`` for each aspect ratio (``flip: false``, ratios listed explicitly). Sizes are
in pixels of the input image (OpenCV divides by the data blob's size and ignores ``img_h``/``img_w``;
SSD-Caffe truncates ``min_size``/``max_size`` to int, so those must be whole pixels for it), and
``step = image size / feature size`` puts centres exactly where TF does.

A head's anchors are grouped by base scale ``s = √(w·h)`` (its non-square boxes) plus the squares:
the square of size ``s`` is the group's ``min`` box, one more square ``q`` becomes ``max = q²/s``.
A group whose ``min`` square TF lacks gets a *dummy* prior there (its class logits are forced to
−∞ by the head rewrite, so it never yields a detection). Each group is one PriorBox (and one
slice of the head's convolutions); ``CaffePrior.tf_index`` maps every Caffe prior back to its TF
anchor (−1 for dummies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from transpiler.errors import UnsupportedModelError
from transpiler.ir.ops import priorbox_grid, priorbox_sizes

SIZE_TOLERANCE = 1e-6


@dataclass
class PriorGroup:
    """One PriorBox layer: sizes in virtual pixels and the TF anchor (per cell) behind each prior."""

    min_size: float
    max_size: float | None
    aspect_ratios: list[float]
    cell_order: list[int]  # per prior in the cell (Caffe order): index into the TF cell's anchors, −1 = dummy

    @property
    def priors_per_cell(self) -> int:
        return len(self.cell_order)


@dataclass
class HeadPriors:
    height: int
    width: int
    groups: list[PriorGroup] = field(default_factory=list)


def cell_anchors(anchors: np.ndarray, height: int, width: int, per_cell: int) -> np.ndarray:
    """(per_cell, 2) array of (w, h) of one head's anchors, after checking every cell repeats them.

    ``anchors`` is (H·W·per_cell, 4) as TF orders them: row-major cells, then the cell's anchors,
    each ``[ymin, xmin, ymax, xmax]``.
    """
    boxes = anchors.reshape(height, width, per_cell, 4).astype(np.float64)
    sizes = np.stack([boxes[..., 3] - boxes[..., 1], boxes[..., 2] - boxes[..., 0]], axis=-1)
    centers = np.stack([(boxes[..., 1] + boxes[..., 3]) / 2, (boxes[..., 0] + boxes[..., 2]) / 2], axis=-1)
    ref = sizes[0, 0]
    if np.abs(sizes - ref).max() > 1e-5:
        raise UnsupportedModelError("anchors vary in size across the cells of a feature map; PriorBox "
                                    "cannot express that")
    expect_x = (np.arange(width) + 0.5) / width
    expect_y = (np.arange(height) + 0.5) / height
    if (np.abs(centers[..., 0] - expect_x[None, :, None]).max() > 1e-5
            or np.abs(centers[..., 1] - expect_y[:, None, None]).max() > 1e-5):
        raise UnsupportedModelError("anchor centres are not at ((j+0.5)/W, (i+0.5)/H): a custom anchor "
                                    "stride/offset that PriorBox (step, offset 0.5) cannot express")
    return ref


def group_cell(sizes: np.ndarray, aspect_w: float, aspect_h: float) -> list[PriorGroup]:
    """Group one cell's anchors (w, h) into PriorBox groups; sizes in normalised units.

    ``aspect_w``/``aspect_h`` rescale widths/heights to a square-pixel frame (non-square inputs):
    a box is square in pixels when ``w·aspect_w == h·aspect_h``.
    """
    pix = [(float(w) * aspect_w, float(h) * aspect_h) for w, h in sizes]
    squares = [i for i, (w, h) in enumerate(pix) if abs(w - h) <= SIZE_TOLERANCE * max(w, h)]
    scales: list[float] = []
    members: dict[int, list[int]] = {}
    for i, (w, h) in enumerate(pix):
        if i in squares:
            continue
        s = math.sqrt(w * h)
        k = next((j for j, t in enumerate(scales) if abs(t - s) <= SIZE_TOLERANCE * s), None)
        if k is None:
            scales.append(s)
            k = len(scales) - 1
        members.setdefault(k, []).append(i)
    free_squares = list(squares)
    groups: list[PriorGroup] = []
    for k, s in enumerate(scales):
        min_idx = next((i for i in free_squares if abs(pix[i][0] - s) <= SIZE_TOLERANCE * s), -1)
        if min_idx >= 0:
            free_squares.remove(min_idx)
        groups.append(PriorGroup(s, None, [], [min_idx]))
        for i in members[k]:
            w, h = pix[i]
            groups[-1].aspect_ratios.append(w / h)
            groups[-1].cell_order.append(i)
    # squares left: a 'max' box of a group (√(min·max)), else a group of their own
    for g in groups:
        # SSD-Caffe requires max_size > min_size, so only a larger square can be the √(min·max) box
        q = next((i for i in free_squares if pix[i][0] > g.min_size * (1 + SIZE_TOLERANCE)), None)
        if q is not None:
            free_squares.remove(q)
            g.max_size = pix[q][0] ** 2 / g.min_size
            g.cell_order.insert(1, q)
    for q in free_squares:
        groups.append(PriorGroup(pix[q][0], None, [], [q]))
    return groups


def snap(size: float) -> float:
    """``size`` rounded to the integer it approximates (anchors are float32: 0.35·300 = 104.999999)."""
    nearest = round(size)
    return float(nearest) if abs(size - nearest) <= 1e-6 * max(1.0, size) else size


def prior_boxes(height: int, width: int, img_h: int, img_w: int, group: PriorGroup, *, truncate: bool) -> np.ndarray:
    """Caffe PriorBox output (H·W·P, 4) ``[xmin, ymin, xmax, ymax]``, unclipped, offset 0.5.

    ``truncate`` reproduces SSD-Caffe (sizes cast to int); OpenCV uses the float sizes.
    """
    max_sizes = [] if group.max_size is None else [group.max_size]
    sizes = priorbox_sizes(group.min_size, max_sizes, group.aspect_ratios, truncate=truncate)
    return priorbox_grid(height, width, img_h, img_w, img_h / height, img_w / width, sizes)
