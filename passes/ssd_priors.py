"""Anchors ↔ Caffe PriorBox: derive PriorBox layers from a head's anchors, and generate priors.

TF's SSD anchors of one head are, per cell and in a fixed order, boxes ``(w, h)`` (normalised)
centred at ``((j + 0.5)/W_f, (i + 0.5)/H_f)``. Caffe's PriorBox emits per cell, for each
``min_size``: the square ``min``; the square ``√(min·max)`` when ``max_size`` is set; then
``min·√ar × min/√ar`` for each aspect ratio (``flip: false``, ratios listed explicitly). Sizes are
in pixels of the input image (OpenCV divides by the data blob's size and ignores ``img_h``/``img_w``;
SSD-Caffe truncates ``min_size``/``max_size`` to int, so those must be whole pixels for it). PriorBox
centres are ``((j + offset)·step_w, (i + offset)·step_h)`` pixels: the SSD anchor generator's centres
``(j + 0.5)/W_f`` are ``offset 0.5`` with ``step = image size / feature size``; the multiscale (FPN)
generator's are ``(o + j·2^l)/W`` pixels with ``o = 2^l/2`` where ``2^l`` divides the image size and 0
elsewhere, i.e. ``step = 2^l`` and ``offset = o/2^l``, which need not equal image size / feature size
(e.g. level 7 of a 320 input: 3 cells, step 128, offset 0). :func:`cell_grid` reads step and offset off
the anchors (any uniform grid with one offset on both axes); a single-cell axis takes the step that
gives the other axis's offset.

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
from transpiler.ir.core import Graph, Value
from transpiler.ir.ops import infer_node, priorbox_grid, priorbox_sizes

SIZE_TOLERANCE = 1e-6


@dataclass
class PriorGroup:
    """One PriorBox layer: sizes in virtual pixels and the TF anchor (per cell) behind each prior."""

    min_size: float
    max_size: float | None
    aspect_ratios: list[float]
    cell_order: list[int]  # per prior in the cell (Caffe order): index into the TF cell's anchors, −1 = dummy
    step_y: float | None = None  # centre spacing, normalised; None: 1 / feature size (the runtime's default)
    step_x: float | None = None
    offset: float = 0.5  # cell (i, j) centred at ((j + offset)·step_x, (i + offset)·step_y)

    @property
    def priors_per_cell(self) -> int:
        return len(self.cell_order)


@dataclass
class HeadPriors:
    height: int
    width: int
    groups: list[PriorGroup] = field(default_factory=list)


GRID_TOLERANCE = 1e-5


@dataclass
class CellGrid:
    """One head's anchor layout: the cell's anchor sizes and where the cells are (normalised units)."""

    sizes: np.ndarray  # (per_cell, 2): (w, h) of the cell's anchors, in TF's order
    step_y: float | None  # None: 1 / feature size
    step_x: float | None
    offset: float


def _axis_fit(centres: np.ndarray) -> tuple[float, float] | None:
    """(first centre, spacing) of equally spaced centres; None for a single cell (spacing free)."""
    if centres.size == 1:
        return None
    spacing = (centres[-1] - centres[0]) / (centres.size - 1)
    if np.abs(centres - (centres[0] + spacing * np.arange(centres.size))).max() > GRID_TOLERANCE or spacing <= 0:
        raise UnsupportedModelError("anchor centres are not equally spaced across a feature map; PriorBox "
                                    "(step, offset) cannot express that")
    return float(centres[0]), float(spacing)


def _snap_offset(offset: float) -> float:
    """An offset read off float32 anchors, snapped to the nearest multiple of 1/1024 it approximates (0.5, 0)."""
    nearest = round(offset * 1024) / 1024
    return nearest if abs(offset - nearest) <= 1e-4 else offset


def cell_grid(anchors: np.ndarray, height: int, width: int, per_cell: int) -> CellGrid:
    """One head's cell anchor sizes and cell grid, after checking every cell repeats the same anchors.

    ``anchors`` is (H·W·per_cell, 4) as TF orders them: row-major cells, then the cell's anchors,
    each ``[ymin, xmin, ymax, xmax]``. Refused: sizes varying across cells, anchors of one cell with
    different centres, centres not equally spaced, or x and y offsets (first centre / spacing) that
    differ (PriorBox has one ``offset``).
    """
    boxes = anchors.reshape(height, width, per_cell, 4).astype(np.float64)
    sizes = np.stack([boxes[..., 3] - boxes[..., 1], boxes[..., 2] - boxes[..., 0]], axis=-1)
    centers = np.stack([(boxes[..., 1] + boxes[..., 3]) / 2, (boxes[..., 0] + boxes[..., 2]) / 2], axis=-1)
    ref = sizes[0, 0]
    if np.abs(sizes - ref).max() > 1e-5:
        raise UnsupportedModelError("anchors vary in size across the cells of a feature map; PriorBox "
                                    "cannot express that")
    cx, cy = centers[0, :, 0, 0], centers[:, 0, 0, 1]
    if (np.abs(centers[..., 0] - cx[None, :, None]).max() > GRID_TOLERANCE
            or np.abs(centers[..., 1] - cy[:, None, None]).max() > GRID_TOLERANCE):
        raise UnsupportedModelError("anchor centres differ within a cell or a row/column of a feature map; "
                                    "PriorBox cannot express that")
    fit_x, fit_y = _axis_fit(cx), _axis_fit(cy)
    offsets = [_snap_offset(first / spacing) for first, spacing in (f for f in (fit_x, fit_y) if f is not None)]
    if len(offsets) == 2 and abs(offsets[0] - offsets[1]) > 1e-4:
        raise UnsupportedModelError(f"anchor centres are offset differently along x and y ({offsets[0]:.4g} vs "
                                    f"{offsets[1]:.4g} cells): PriorBox has one offset for both")
    # a 1x1 map: centred at its one anchor centre with offset 0.5, or at the origin with offset 0
    at_origin = max(abs(float(cx[0])), abs(float(cy[0]))) <= GRID_TOLERANCE
    offset = offsets[0] if offsets else 0.0 if at_origin else 0.5
    steps: list[float | None] = []
    for fit, first, cells in ((fit_y, float(cy[0]), height), (fit_x, float(cx[0]), width)):
        if fit is not None:
            step = fit[1]
        elif offset > 0 and first > GRID_TOLERANCE:
            step = first / offset
        elif offset == 0 and abs(first) <= GRID_TOLERANCE:
            step = 1.0 / cells
        else:
            raise UnsupportedModelError(f"a single-cell feature map's anchor centre ({first:.4g}) cannot be placed "
                                        f"with the PriorBox offset {offset:.4g} the other axis needs")
        default = abs(step - 1.0 / cells) <= GRID_TOLERANCE / cells and abs(offset - 0.5) <= 1e-9
        steps.append(None if default else step)
    return CellGrid(ref, steps[0], steps[1], offset)


def cell_anchors(anchors: np.ndarray, height: int, width: int, per_cell: int) -> np.ndarray:
    """(per_cell, 2) array of (w, h) of one head's anchors (see :func:`cell_grid`)."""
    return cell_grid(anchors, height, width, per_cell).sizes


def head_groups(anchors: np.ndarray, height: int, width: int, per_cell: int, aspect_w: float,
                aspect_h: float) -> list[PriorGroup]:
    """One head's PriorBox groups (:func:`group_cell`), each carrying the head's step and offset."""
    grid = cell_grid(anchors, height, width, per_cell)
    groups = group_cell(grid.sizes, aspect_w, aspect_h)
    for g in groups:
        g.step_y, g.step_x, g.offset = grid.step_y, grid.step_x, grid.offset
    return groups


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


def prior_steps(group: PriorGroup, height: int, width: int, img_h: int, img_w: int) -> tuple[float, float]:
    """The group's PriorBox ``step_h``, ``step_w`` in pixels (image size / feature size unless its own)."""
    step_h = img_h / height if group.step_y is None else snap(group.step_y * img_h)
    step_w = img_w / width if group.step_x is None else snap(group.step_x * img_w)
    return step_h, step_w


def prior_boxes(height: int, width: int, img_h: int, img_w: int, group: PriorGroup, *, truncate: bool) -> np.ndarray:
    """Caffe PriorBox output (H·W·P, 4) ``[xmin, ymin, xmax, ymax]``, unclipped, at the group's step and offset.

    ``truncate`` reproduces SSD-Caffe (sizes cast to int); OpenCV uses the float sizes.
    """
    max_sizes = [] if group.max_size is None else [group.max_size]
    sizes = priorbox_sizes(group.min_size, max_sizes, group.aspect_ratios, truncate=truncate)
    step_h, step_w = prior_steps(group, height, width, img_h, img_w)
    return priorbox_grid(height, width, img_h, img_w, step_h, step_w, sizes, group.offset)


def constant_priors(graph: Graph, data: Value, boxes: np.ndarray, variance: list[float], name: str) -> Value:
    """A ``[1, 2, 4·P]`` prior blob (``boxes``: (P, 4) ``[xmin, ymin, xmax, ymax]``, then the variances) computed
    from ``data`` by pooling and a zero-weight fully-connected layer whose bias holds it (exact: see above)."""
    values = np.concatenate([np.asarray(boxes, np.float32).reshape(-1),
                             np.tile(np.asarray(variance, np.float32), len(boxes))])
    channels = int(data.static_shape[3])  # NHWC
    pool = graph.add_node("Pool", [data], 1, {"mode": "avg", "global_pool": True}, name=f"{name}/pool",
                          source_names=["MultiscaleGridAnchorGenerator"])
    infer_node(pool)
    weights = graph.constant(f"{name}/zero_weights", np.zeros((values.size, channels), np.float32))
    fc = graph.add_node("FullyConnected", [pool.output, weights, graph.constant(f"{name}/priors", values)], 1,
                        {"axis": 1}, name=f"{name}/constant", source_names=["MultiscaleGridAnchorGenerator"])
    infer_node(fc)
    out = graph.add_node("Reshape", [fc.output], 1, {"shape": (1, 2, values.size // 2)}, name=name,
                         source_names=["MultiscaleGridAnchorGenerator"])
    infer_node(out)
    return out.output
