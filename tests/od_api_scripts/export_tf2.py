"""Export a TF2 Object Detection API SSD with the API's own exporters (run by tests/od_api.py's run_od_api).

Usage: ``export_tf2.py PIPELINE_CONFIG PICTURES_NPZ OUT_DIR``. ``PICTURES_NPZ`` holds RGB uint8 pictures at
the model's input size (one array per picture name). Writes under ``OUT_DIR``:

- ``checkpoint/``: the random-weight model (see below), saved with ``tf.train.Checkpoint(model=...)``;
- ``exported/saved_model``: ``exporter_lib_v2.export_inference_graph('image_tensor', ...)``;
- ``tflite/saved_model``: ``export_tflite_graph_lib_tf2.export_tflite_model`` (the TFLite-friendly export);
- ``ref_<picture>.npz``: TensorFlow's outputs, as the shared fixtures record them: ``input`` (uint8
  [1,H,W,3]), ``detection_boxes/scores/classes``, ``num_detections`` (the exported SavedModel run by TF's
  loader), ``raw_box_encodings`` [1,A,4], ``raw_class_logits`` [1,A,C+1] (background first, before the
  score converter) and ``anchors`` [A,4] (ymin, xmin, ymax, xmax), from the restored model's ``predict``.

Weights: the model's own initialisers (seeded), then random batch-norm γ/β and conv biases, and the
batch-norm moving statistics calibrated on the pictures (one training-mode pass with momentum 0: each
moving mean/variance := the statistics of its layer's real input); the box-predictor heads are spread as
the fixtures' README says (class logits ×3 with biases around −3, box encodings ×8), so scores cover 0–1
and boxes move away from their anchors.
"""

import os
import sys

import od_api_bootstrap  # noqa: F401  (must come first: empty modules for unused architectures)

sys.path.append(os.environ["OD_API_DEPS"])

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from object_detection import export_tflite_graph_lib_tf2, exporter_lib_v2
from object_detection.builders import model_builder
from object_detection.protos import pipeline_pb2


def main(config_path: str, pictures_path: str, out: str) -> None:
    tf.keras.utils.set_random_seed(0)
    config = pipeline_pb2.TrainEvalPipelineConfig()
    with open(config_path) as f:
        text_format.Parse(f.read(), config)
    pictures = dict(np.load(pictures_path))
    batch = np.stack(list(pictures.values())).astype(np.float32)

    model = model_builder.build(config.model, is_training=False)
    preprocessed, shapes = model.preprocess(tf.constant(batch))
    model.predict(preprocessed, shapes)  # creates the variables
    rng = np.random.default_rng(0)
    calibrate(model, preprocessed, rng)
    spread_heads(model, rng)

    ckpt_dir = os.path.join(out, "checkpoint")
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), ckpt_dir, max_to_keep=1).save()
    exporter_lib_v2.export_inference_graph("image_tensor", config, ckpt_dir, os.path.join(out, "exported"))
    export_tflite_graph_lib_tf2.export_tflite_model(config, ckpt_dir, os.path.join(out, "tflite"), 100, True)

    serving = tf.saved_model.load(os.path.join(out, "exported", "saved_model")).signatures["serving_default"]
    for name, rgb in pictures.items():
        image = rgb[None].astype(np.uint8)
        pre, shape = model.preprocess(tf.constant(image, tf.float32))
        raw = model.predict(pre, shape)
        det = serving(input_tensor=tf.constant(image))
        np.savez(os.path.join(out, f"ref_{name}.npz"), input=image,
                 detection_boxes=det["detection_boxes"].numpy(), detection_scores=det["detection_scores"].numpy(),
                 detection_classes=det["detection_classes"].numpy(), num_detections=det["num_detections"].numpy(),
                 raw_box_encodings=raw["box_encodings"].numpy(),
                 raw_class_logits=raw["class_predictions_with_background"].numpy(),
                 anchors=raw["anchors"].numpy(), preprocessed=pre.numpy())


def calibrate(model, preprocessed, rng) -> None:
    """Random γ/β and biases, then moving statistics := those of each batch norm's real input."""
    norms = []
    for layer in model.submodules:
        if hasattr(layer, "moving_variance") and layer not in norms:  # FreezableBatchNorm (tf_keras v1 BN)
            norms.append(layer)
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
            layer.beta.assign(rng.uniform(-0.1, 0.1, layer.beta.shape).astype(np.float32))
            layer.momentum = 0.0
            layer._training = None  # FreezableBatchNorm built for inference: let training=True through
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.uniform(-0.1, 0.1, layer.bias.shape).astype(np.float32))
    assert norms, "no batch norm found"
    features = model._feature_extractor(preprocessed, training=True)
    model._box_predictor(features, training=True)
    for layer in norms:
        layer._training = False


def spread_heads(model, rng) -> None:
    """The last convolution of each head: ``.../ClassPredictor/{kernel,bias}`` and ``.../BoxEncodingPredictor/``
    (convolutional predictor) or ``.../BoxPredictor/`` (weight-shared predictor) kernels."""
    for var in model.trainable_variables:
        *_, layer, weight = var.name.split("/")
        if layer == "ClassPredictor":
            if weight.startswith("bias"):
                var.assign(rng.uniform(-3.5, -2.5, var.shape).astype(np.float32))
            else:
                var.assign(var * 3.0)
        elif layer in ("BoxEncodingPredictor", "BoxPredictor") and not weight.startswith("bias"):
            var.assign(var * 8.0)


if __name__ == "__main__":
    main(*sys.argv[1:4])
