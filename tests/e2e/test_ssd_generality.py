"""The SSD lowering is exact for the whole OD API SSD family, not only for the fixtures.

The OD API cannot be installed here, so ``ssd_reference`` stands in for it: its anchor generator
and postprocessor are first checked against TensorFlow's recorded outputs of the real OD API
fixtures (anchors and detections equal to float32 rounding). Then, for every configuration below
(anchor settings, class counts, input sizes incl. non-square ones, head styles, score converters,
NMS settings), a synthetic detector is built as IR exactly as ``import_od_api_ssd`` shapes it,
converted, and run in OpenCV dnn on real pictures:

- ``mbox_loc``/``mbox_conf_logits`` equal the reference interpreter's raw encodings/logits
  (≤ 1e-4·max|ref|), ``mbox_priorbox`` equals the OD API anchors (≤ 1e-5 absolute), every anchor
  has exactly one Caffe prior;
- ``detection_out`` matches the OD API postprocessor run on the reference raw tensors, box by box
  (score ≥ 0.01), with only the differences TF's semantics force excused.

Anchors whose sizes SSD-Caffe would truncate become a constant prior blob in the default flavor (exact in both
runtimes); anchor grids no PriorBox can place (x and y offsets that differ, sizes varying across cells) must be
refused with :class:`UnsupportedModelError`, before anything is written.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import FIXTURES, picture
from ssd_reference import SSDConfig, build_ssd_ir, multiple_grid_anchors, reference_raw, tf_postprocess

from transpiler.convert import ConvertOptions, convert
from transpiler.errors import UnsupportedModelError
from transpiler.passes.ssd_priors import PriorGroup, cell_anchors, cell_grid, group_cell
from transpiler.verify.compare import format_table
from transpiler.verify.detections import (
    Detection,
    MatchResult,
    caffe_detections,
    compare_raw,
    empty_rows,
    match_detections,
    tf_detections,
)
from transpiler.verify.runners import load_opencv_net, run_opencv

OD_API_FIXTURES = ["pedestrian_ssdlite", "ssdlite_mnv2_1cls_dm035", "ssdlite_mnv2_coco90_dm035", "ssd_mnv2_voc20_dm035"]
FIXTURE_MAPS = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
CALIBRATION_PICTURE = "astronaut"
PICTURES = ["astronaut", "coffee"]
LAYERS = ["mbox_loc", "mbox_conf_logits", "mbox_priorbox", "detection_out"]

CONFIGS = [
    SSDConfig("ssdlite_default"),  # 300×300, 6 heads 19..1, 1 class
    SSDConfig("coco90", num_classes=90),
    SSDConfig("no_reduce_lowest", reduce_boxes_in_lowest_layer=False),
    SSDConfig("ratios_1_2_half", aspect_ratios=(1.0, 2.0, 0.5)),
    SSDConfig("no_interpolated", interpolated_scale_aspect_ratio=0.0),
    SSDConfig("scales_0.1_0.9", min_scale=0.1, max_scale=0.9),  # lowest layer's 0.1 square is its group's min
    SSDConfig("input_320", height=320, width=320),
    SSDConfig("input_300x500", height=300, width=500),
    SSDConfig("input_500x300", height=500, width=300),
    SSDConfig("ssd_mnv2_conv3x3_voc20", num_classes=20, depthwise_heads=False, box_kernel=3),
    SSDConfig("softmax_3cls", num_classes=3, score_converter="softmax"),
    SSDConfig("logit_scale_1.5", num_classes=2, logit_scale=1.5),
    SSDConfig("heads_4", num_heads=4),
    SSDConfig("nms_0.45_0.3_20_50", num_classes=5, iou_threshold=0.45, score_threshold=0.3, max_per_class=20,
              max_total=50),
    SSDConfig("mixed_5heads_240x427", num_heads=5, height=240, width=427, num_classes=7, depthwise_heads=False,
              box_kernel=3, min_scale=0.15, max_scale=0.9),
    # PriorBox sizes that are not whole pixels (s_k·min(H, W) fractional, irrational interpolated
    # sizes): exact in OpenCV (float sizes, --flavor opencv); SSD-Caffe would truncate, see CONSTANT_PRIORS
    SSDConfig("input_224", height=224, width=224),
    SSDConfig("input_299x401", height=299, width=401),
    SSDConfig("interpolated_ar_2", interpolated_scale_aspect_ratio=2.0),
    SSDConfig("base_anchor_1x2", base_anchor_size=(1.0, 2.0)),
    # centres at j/W (OD API anchor_offsets 0, as the multiscale generator's where 2^level does not divide the
    # image): PriorBox offset 0 (written), step = image / feature size
    SSDConfig("anchor_offset_0", anchor_offsets=((0.0, 0.0),) * 6),
    # sizes SSD-Caffe would truncate, in the default flavor: the priors become a constant blob (zero-weight
    # InnerProduct, the anchors as bias), exact in OpenCV and SSD-Caffe
    SSDConfig("constant_priors_224", height=224, width=224),
    SSDConfig("constant_priors_ar_2_299x401", height=299, width=401, interpolated_scale_aspect_ratio=2.0),
]
CONSTANT_PRIORS = {"constant_priors_224", "constant_priors_ar_2_299x401"}
OPENCV_ONLY = {"input_224", "input_299x401", "interpolated_ar_2", "base_anchor_1x2"}


def flavor_of(cfg: SSDConfig) -> str:
    return "opencv" if cfg.name in OPENCV_ONLY else "ssd"


# (config, flavor, what the error must say): anchors the target's PriorBox cannot express
REFUSED = [
    # PriorBox has one offset for both axes
    (SSDConfig("anchor_offset_y0_x05", anchor_offsets=((0.0, 0.5),) * 6), "ssd", r"offset differently along x and y"),
]


# ------------------------------------------------------------------ the reference vs TensorFlow
def _fixture_npz(name: str, pic: str) -> Any:
    path = FIXTURES / name / f"ref_{pic}.npz"
    if not path.exists():
        pytest.fail(f"fixture {path} is missing: ../shared/fixtures must sit beside the repository")
    return np.load(path)


def _nms_settings(name: str) -> dict[str, Any]:
    """The ``post_processing`` settings of the fixture's pipeline.config (other blocks have IoU thresholds too)."""
    config = (FIXTURES / name / "pipeline.config").read_text()
    text = config[config.index("post_processing"):]

    def number(key: str) -> float:
        found = re.search(rf"\b{key}:\s*([-+0-9.eE]+)", text)
        assert found, f"{key} not in {name}/pipeline.config"
        return float(found.group(1))

    return {"iou": number("iou_threshold"), "score_threshold": number("score_threshold"),
            "max_per_class": int(number("max_detections_per_class")),
            "max_total": int(number("max_total_detections")),
            "score_converter": re.search(r"score_converter:\s*(\w+)", text).group(1).lower()}  # type: ignore[union-attr]


@pytest.mark.parametrize("name", OD_API_FIXTURES)
def test_multiple_grid_anchors_equal_od_api_anchors(name: str) -> None:
    ref = _fixture_npz(name, "astronaut")["anchors"]
    got = multiple_grid_anchors(FIXTURE_MAPS, image_size=(300, 300))
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 2e-7


@pytest.mark.parametrize("pic", ["astronaut", "camera", "coffee"])
@pytest.mark.parametrize("name", OD_API_FIXTURES)
def test_tf_postprocess_equals_tensorflow(name: str, pic: str) -> None:
    """The numpy postprocessor reproduces TF's detection_* outputs from TF's own raw tensors."""
    z = _fixture_npz(name, pic)
    boxes, scores, classes, num = tf_postprocess(z["raw_box_encodings"], z["raw_class_logits"], z["anchors"],
                                                 **_nms_settings(name))
    n = int(z["num_detections"].reshape(-1)[0])
    assert int(num[0]) == n
    np.testing.assert_array_equal(classes[0, :n], z["detection_classes"].reshape(-1)[:n])
    np.testing.assert_allclose(scores[0, :n], z["detection_scores"].reshape(-1)[:n], atol=1e-6)
    np.testing.assert_allclose(boxes[0, :n], z["detection_boxes"].reshape(-1, 4)[:n], atol=1e-6)


def test_non_square_anchors_are_square_in_pixels() -> None:
    """OD API semantics: base_anchor_size scaled by min(H,W)/side, so ratio-1 anchors are pixel squares."""
    a = multiple_grid_anchors([(19, 32), (10, 16)], image_size=(300, 500), reduce_boxes_in_lowest_layer=False)
    first = a[: 19 * 32 * 6].reshape(19, 32, 6, 4)[0, 0, 0]  # layer 0, cell (0, 0), aspect ratio 1
    h, w = (first[2] - first[0]) * 300, (first[3] - first[1]) * 500
    assert abs(h - w) < 1e-3 and abs(h - 0.2 * 300) < 1e-3
    np.testing.assert_allclose((first[0] + first[2]) / 2, 0.5 / 19, atol=1e-7)
    np.testing.assert_allclose((first[1] + first[3]) / 2, 0.5 / 32, atol=1e-7)


# -------------------------------------------------------------------------- ssd_priors units
def _cell_sizes(cfg: SSDConfig, head: int) -> tuple[np.ndarray, int, int, int]:
    anchors = cfg.anchors().astype(np.float64)
    maps, per_cell = cfg.feature_maps, cfg.anchors_per_cell()
    start = sum(h * w * p for (h, w), p in zip(maps[:head], per_cell[:head], strict=True))
    (fh, fw), p = maps[head], per_cell[head]
    return anchors[start:start + fh * fw * p], fh, fw, p


def test_cell_anchors_returns_the_cell_sizes() -> None:
    anchors, fh, fw, p = _cell_sizes(SSDConfig("t"), 1)
    sizes = cell_anchors(anchors, fh, fw, p)
    s = 0.35
    np.testing.assert_allclose(sizes[0], [s, s], atol=1e-6)
    np.testing.assert_allclose(sizes[1], [s * np.sqrt(2), s / np.sqrt(2)], atol=1e-6)
    np.testing.assert_allclose(sizes[5], [np.sqrt(s * 0.5)] * 2, atol=1e-6)


def test_cell_anchors_refuses_sizes_varying_across_cells() -> None:
    anchors, fh, fw, p = _cell_sizes(SSDConfig("t"), 1)
    anchors = anchors.copy()
    anchors[p * 7 + 2, 2] += 0.01  # one anchor of cell 7 taller than in the other cells
    with pytest.raises(UnsupportedModelError, match="vary in size"):
        cell_anchors(anchors, fh, fw, p)


def test_cell_anchors_refuses_centres_off_the_half_cell_grid() -> None:
    anchors, fh, fw, p = _cell_sizes(SSDConfig("t"), 2)
    with pytest.raises(UnsupportedModelError, match="anchor centres"):
        cell_anchors(anchors + np.array([0.01, 0.0, 0.01, 0.0]), fh, fw, p)


def _grid_anchors(centres_y: np.ndarray, centres_x: np.ndarray, sizes: list[tuple[float, float]]) -> np.ndarray:
    """[ymin, xmin, ymax, xmax] anchors, cells row-major, ``sizes`` (w, h) per cell, as TF orders them."""
    rows = [[cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2] for cy in centres_y for cx in centres_x for w, h in sizes]
    return np.asarray(rows, dtype=np.float32)


def test_cell_grid_reads_multiscale_step_and_offset() -> None:
    """The multiscale generator's level 7 on a 320 input: 3 cells at 0, 128, 256 px (2^7 does not divide 320,
    offset 0): PriorBox step 128 px, offset 0; level 6: 5 cells at 32 + 64·j px, the default grid."""
    centres = np.arange(3) * 128 / 320
    grid = cell_grid(_grid_anchors(centres, centres, [(0.5, 0.5), (0.7, 0.35)]), 3, 3, 2)
    assert grid.offset == 0.0 and grid.step_x == grid.step_y and abs(grid.step_x * 320 - 128) < 1e-4
    np.testing.assert_allclose(grid.sizes, [[0.5, 0.5], [0.7, 0.35]], atol=1e-6)
    centres = (32 + 64 * np.arange(5)) / 320
    grid = cell_grid(_grid_anchors(centres, centres, [(0.4, 0.4)]), 5, 5, 1)
    assert (grid.offset, grid.step_x, grid.step_y) == (0.5, None, None)
    single = cell_grid(_grid_anchors(np.array([0.5]), np.array([0.5]), [(0.9, 0.9)]), 1, 1, 1)
    assert (single.offset, single.step_x, single.step_y) == (0.5, None, None)


def test_cell_grid_refuses_unequal_spacing() -> None:
    centres = np.array([0.1, 0.3, 0.6])
    with pytest.raises(UnsupportedModelError, match="not equally spaced"):
        cell_grid(_grid_anchors(centres, centres, [(0.2, 0.2)]), 3, 3, 1)


def _group(groups: list[PriorGroup], i: int) -> tuple[float, float | None, list[float], list[int]]:
    g = groups[i]
    return round(g.min_size, 6), None if g.max_size is None else round(g.max_size, 6), \
        [round(r, 6) for r in g.aspect_ratios], g.cell_order


def test_group_cell_lowest_layer_gets_a_dummy_min_prior() -> None:
    """[(0.1, 1), (0.2, 2), (0.2, 0.5)]: the 0.2 group has no square of its own (dummy), 0.1 is alone."""
    anchors, fh, fw, p = _cell_sizes(SSDConfig("t"), 0)
    groups = group_cell(cell_anchors(anchors, fh, fw, p), 1.0, 1.0)
    assert len(groups) == 2
    assert _group(groups, 0) == (0.2, None, [2.0, 0.5], [-1, 1, 2])
    assert _group(groups, 1) == (0.1, None, [], [0])


def test_group_cell_lowest_layer_at_min_scale_0_1_needs_no_dummy() -> None:
    anchors, fh, fw, p = _cell_sizes(SSDConfig("t", min_scale=0.1, max_scale=0.9), 0)
    groups = group_cell(cell_anchors(anchors, fh, fw, p), 1.0, 1.0)
    assert [_group(groups, i) for i in range(len(groups))] == [(0.1, None, [2.0, 0.5], [0, 1, 2])]


@pytest.mark.parametrize("size", [(300, 300), (300, 500), (500, 300)])
def test_group_cell_standard_layer_is_one_priorbox_with_max_size(size: tuple[int, int]) -> None:
    """[1, 2, ½, 3, ⅓, interp] → Caffe [min, √(min·max), 2, ½, 3, ⅓]: max = s_{k+1}."""
    cfg = SSDConfig("t", height=size[0], width=size[1])
    anchors, fh, fw, p = _cell_sizes(cfg, 2)
    short = min(size)
    groups = group_cell(cell_anchors(anchors, fh, fw, p), size[1] / short, size[0] / short)
    assert [_group(groups, i) for i in range(len(groups))] == [(0.5, 0.65, [2.0, 0.5, 3.0, 0.3333], [0, 5, 1, 2, 3, 4])]


# ----------------------------------------------------------------------- conversion end to end
@dataclass
class Converted:
    cfg: SSDConfig
    out: Path
    report: dict[str, Any]
    warnings: list[str]
    net: Any


def _image(name: str, cfg: SSDConfig) -> np.ndarray:
    """[1, H, W, 3] float32 RGB 0–255, resized with cv2 to the model's input size."""
    return picture(name, (cfg.height, cfg.width)).astype(np.float32)[None]


_CONVERTED: dict[str, Converted] = {}


def _convert(cfg: SSDConfig, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """The config's synthetic detector, converted once per session."""
    if cfg.name not in _CONVERTED:
        graph = build_ssd_ir(cfg, _image(CALIBRATION_PICTURE, cfg))
        out = tmp_path_factory.mktemp(cfg.name)
        result = convert(ConvertOptions(model=Path("synthetic"), out_dir=out, flavor=flavor_of(cfg)), graph=graph)
        net = load_opencv_net(out / "deploy.prototxt", out / "deploy.caffemodel")
        _CONVERTED[cfg.name] = Converted(cfg, out, result.report, list(result.warnings), net)
    return _CONVERTED[cfg.name]


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: c.name)
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Converted:
    return _convert(request.param, tmp_path_factory)


def test_conversion_report(converted: Converted) -> None:
    cfg, ssd = converted.cfg, converted.report["ssd"]
    anchors = cfg.anchors()
    mapping = np.asarray(ssd["prior_to_anchor"])
    assert ssd["num_classes"] == cfg.num_classes
    # every TF anchor is exactly one Caffe prior; the rest are dummies
    np.testing.assert_array_equal(np.sort(mapping[mapping >= 0]), np.arange(len(anchors)))
    assert ssd["tf_nms"] == {"iou_threshold": cfg.iou_threshold, "score_threshold": cfg.score_threshold,
                             "max_per_class": cfg.max_per_class, "max_total": cfg.max_total}
    assert ssd["nms"]["keep_top_k"] == cfg.max_total and ssd["nms"]["nms_threshold"] == cfg.iou_threshold
    assert ssd["score_converter"] == cfg.score_converter
    assert any("clips detections" in w for w in converted.warnings)
    assert any("per class" in w for w in converted.warnings) == (cfg.max_per_class < cfg.max_total)
    assert {"prototxt", "caffemodel"} <= set(converted.report["files"])
    types = converted.report["layer_types"]
    if cfg.name in CONSTANT_PRIORS:
        assert ssd["priors_written_as"] == "constant" and "PriorBox" not in types and types["InnerProduct"] == 1
        assert any("not integers" in w and "constant blob" in w for w in converted.warnings)
    else:
        assert ssd["priors_written_as"] == "PriorBox" and types.get("PriorBox", 0) >= cfg.num_heads
    assert "Clip" not in types


def _excuse_forced(result: MatchResult, tf: list[Detection], detection_out: np.ndarray, cfg: SSDConfig
                   ) -> tuple[list[Detection], list[Detection]]:
    """What ``match_detections`` left unmatched, less the differences TF's semantics force, counted
    exactly: each DetectionOutput row whose clipped box is empty (TF drops it after NMS), and each
    Caffe detection beyond TF's ``max_per_class`` (DetectionOutput has no per-class limit), takes a
    ``keep_top_k`` slot and displaces one detection from the end of TF's (full) list."""
    rows = detection_out.reshape(-1, 7)
    rows = rows[(rows[:, 1] > 0) & (rows[:, 2] > 0)]
    clipped = np.clip(rows[:, 3:7], 0.0, 1.0)
    empty = int(np.sum((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])))
    per_class = Counter(d.label for d in tf)
    beyond = [d for d in result.unmatched_caffe if per_class[d.label] >= cfg.max_per_class
              and d.score <= min(t.score for t in tf if t.label == d.label) + 1e-4]
    displaced = empty + len(beyond) if len(tf) >= cfg.max_total else 0
    tail = {id(d) for d in tf[len(tf) - displaced:]}
    left_tf = [d for d in result.unmatched_tf if id(d) not in tail]
    left_caffe = [d for d in result.unmatched_caffe if all(d is not b for b in beyond)]
    return left_tf, left_caffe


@pytest.mark.parametrize("pic", PICTURES)
def test_opencv_matches_od_api_reference(converted: Converted, pic: str) -> None:
    x = _image(pic, converted.cfg)
    _check_against_od_api(converted, pic, run_opencv(converted.net, {"data": x.transpose(0, 3, 1, 2)}, LAYERS))


@pytest.mark.parametrize("pic", PICTURES)
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if flavor_of(c) == "ssd"], ids=lambda c: c.name)
def test_real_caffe_matches_od_api_reference(cfg: SSDConfig, pic: str, real_caffe: Any,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same checks in SSD-Caffe itself (tests/real_caffe.py), for every config its PriorBox can express."""
    converted = _convert(cfg, tmp_path_factory)
    x = _image(pic, cfg)
    blobs = real_caffe.forward(converted.out / "deploy.prototxt", converted.out / "deploy.caffemodel",
                               [x.transpose(0, 3, 1, 2)])
    _check_against_od_api(converted, pic, blobs)


def _check_against_od_api(converted: Converted, pic: str, got: dict[str, np.ndarray]) -> None:
    """Raw tensors and priors equal the reference; detections match its postprocessor box by box."""
    cfg = converted.cfg
    x = _image(pic, cfg)
    enc, logits = reference_raw(cfg, x, calibration=_image(CALIBRATION_PICTURE, cfg))
    rows = compare_raw(converted.report, got["mbox_loc"], got["mbox_conf_logits"], got["mbox_priorbox"], enc, logits,
                       cfg.anchors(), 1e-4)
    assert all(r.ok for r in rows), f"{cfg.name} on {pic}:\n{format_table(rows)}"

    ref = tf_postprocess(enc, logits, cfg.anchors(), iou=cfg.iou_threshold, score_threshold=cfg.score_threshold,
                         max_per_class=cfg.max_per_class, max_total=cfg.max_total,
                         score_converter=cfg.score_converter, logit_scale=cfg.logit_scale)
    tf = tf_detections(*ref)
    assert len(tf) > 10 and tf[0].score > 0.5, "the synthetic detector should detect things"
    caffe = caffe_detections(got["detection_out"])
    result = match_detections(tf, caffe, keep_top_k=cfg.max_total, nms_threshold=cfg.iou_threshold,
                              caffe_empty_rows=empty_rows(got["detection_out"]), max_per_class=cfg.max_per_class)
    left_tf, left_caffe = _excuse_forced(result, tf, got["detection_out"], cfg)
    assert result.ok and not left_tf and not left_caffe, (
        f"{cfg.name} on {pic}: matched {result.matched}/{len(tf)}; TF only "
        f"{[(d.label, round(d.score, 4)) for d in left_tf]}; Caffe only "
        f"{[(d.label, round(d.score, 4)) for d in left_caffe]}; excused {result.excused}")


def test_match_detections_excuses_every_row_dropped_as_empty(tmp_path: Path) -> None:
    """``match_detections`` itself should excuse the TF tail displaced by empty Caffe rows, however many
    there are (here 6 of keep_top_k 50 on the astronaut: its `keep_top_k − 5` heuristic misses them)."""
    cfg = next(c for c in CONFIGS if c.name.startswith("nms_"))
    x = _image("astronaut", cfg)
    convert(ConvertOptions(model=Path("synthetic"), out_dir=tmp_path), graph=build_ssd_ir(cfg, x))
    net = load_opencv_net(tmp_path / "deploy.prototxt", tmp_path / "deploy.caffemodel")
    out = run_opencv(net, {"data": x.transpose(0, 3, 1, 2)}, ["detection_out"])["detection_out"]
    enc, logits = reference_raw(cfg, x)
    tf = tf_detections(*cfg.postprocess(enc, logits))
    result = match_detections(tf, caffe_detections(out), keep_top_k=cfg.max_total, nms_threshold=cfg.iou_threshold,
                              caffe_empty_rows=empty_rows(out), max_per_class=cfg.max_per_class)
    left_tf, left_caffe = _excuse_forced(result, tf, out, cfg)
    assert not left_tf and not left_caffe  # the conversion is exact ...
    assert result.ok, [(d.label, round(d.score, 4)) for d in result.unmatched_tf]  # ... but verify reports it


@pytest.mark.parametrize(("cfg", "flavor", "message"), REFUSED, ids=[f"{c.name}-{f}" for c, f, _ in REFUSED])
def test_inexpressible_anchors_are_refused(cfg: SSDConfig, flavor: str, message: str, tmp_path: Path) -> None:
    graph = build_ssd_ir(cfg)
    with pytest.raises(UnsupportedModelError, match=message):
        convert(ConvertOptions(model=Path("synthetic"), out_dir=tmp_path / "out", flavor=flavor), graph=graph)
    assert not (tmp_path / "out" / "deploy.prototxt").exists()


def test_configs_are_distinct() -> None:
    names = [c.name for c in CONFIGS] + [c.name for c, _, _ in REFUSED if c.name not in OPENCV_ONLY]
    assert len(set(names)) == len(names)
    assert replace(CONFIGS[0], name="x").anchors().shape == (1917, 4)
