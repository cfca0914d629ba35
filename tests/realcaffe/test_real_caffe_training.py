"""The fine-tuning files train in SSD-Caffe itself: solver.prototxt, train.prototxt (MultiBoxLoss) and
test.prototxt (DetectionOutput + DetectionEvaluate), read and built by Caffe's own code.

The data layer is replaced by an Input layer fed one fixed batch (tests/real_caffe.py explains why), made
the way the data layer would make it: the pictures as BGR pixels through the train net's own
transform_param (x − mean)·scale, with TF's top detection of each picture as its ground-truth box. The
trained pedestrian detector on its own detections has a loss of order 1; SGD steps on the fixed batch
lower it; afterwards the test net's DetectionEvaluate counts the top detection of each picture a true
positive. Starting from deploy.caffemodel instead, the dummy priors' −1e4 logits make the loss ~1e4:
what finetune_init.caffemodel exists for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import fixture_model
from e2e_helpers import convert_model
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp

MODEL = "pedestrian_ssdlite"
PICTURES = ["astronaut", "camera"]
STEPS = 8


@pytest.fixture(scope="module")
def finetune(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[np.ndarray]]:
    out = tmp_path_factory.mktemp("finetune")
    report = convert_model(fixture_model(MODEL), out, emit=("deploy", "train", "test", "solver"),
                           pipeline_config=fixture_model(MODEL).parent / "pipeline.config")
    train = text_format.Parse((out / "train.prototxt").read_text(), cp.NetParameter())
    transform = next(layer for layer in train.layer if layer.type == "AnnotatedData").transform_param
    mean = np.asarray(transform.mean_value, np.float32)
    images, boxes = [], []
    for item, pic in enumerate(PICTURES):
        ref = np.load(fixture_model(MODEL).parent / f"ref_{pic}.npz")
        bgr = ref["input"][0, ..., ::-1].astype(np.float32)
        images.append(((bgr - mean) * transform.scale).transpose(2, 0, 1))
        ymin, xmin, ymax, xmax = ref["detection_boxes"][0][0]
        # SSD-Caffe's label rows: item, class, instance, xmin, ymin, xmax, ymax, difficult
        boxes.append([item, int(ref["detection_classes"][0][0]), 0, xmin, ymin, xmax, ymax, 0])
    return out, report, [np.stack(images), np.asarray(boxes, np.float32)[None, None]]


def test_finetuning_trains_in_real_ssd_caffe(real_caffe: Any, finetune: tuple[Path, dict[str, Any], list]) -> None:
    out, _, batch = finetune
    assert "--weights=finetune_init.caffemodel" in (out / "train.sh").read_text()
    losses, blobs = real_caffe.train(out / "solver.prototxt", out / "finetune_init.caffemodel", batch, STEPS)
    assert len(losses) == STEPS and all(np.isfinite(losses)), losses
    assert losses[0] < 10, f"a trained detector on its own detections should have a loss of order 1: {losses}"
    assert losses[-1] < losses[0] / 2, losses
    # DetectionEvaluate rows: [item, label, score, tp, fp]; a row with item −1 per class holds its GT count
    rows = blobs["detection_eval"].reshape(-1, 5)
    assert rows[0][0] == -1 and rows[0][2] == len(PICTURES)
    detections = rows[rows[:, 0] >= 0]
    for item in range(len(PICTURES)):
        mine = detections[detections[:, 0] == item]
        top = mine[np.argmax(mine[:, 2])]
        assert top[3] == 1 and top[4] == 0, f"picture {item}: the top detection is not the ground truth: {top}"


def test_deploy_weights_would_poison_the_loss(real_caffe: Any, finetune: tuple[Path, dict[str, Any], list]) -> None:
    out, report, batch = finetune
    assert report["ssd"]["heads"][0]["dummy_slots"] == [0]
    losses, _ = real_caffe.train(out / "solver.prototxt", out / "deploy.caffemodel", batch, 1)
    assert losses[0] > 1e3, losses
