"""Export a TF1 Object Detection API SSD with the API's own TF1 exporter, and record TF's outputs.

Usage (in the environment of ``tests/od_api.py``)::

    python export_tf1.py PIPELINE_CONFIG PICTURES_NPZ OUT_DIR

``PICTURES_NPZ`` holds RGB uint8 pictures (name → [H, W, 3], already at the model's input size). The
model is built as ``exporter.py`` builds it (``model_builder.build(..., is_training=False)``, graph mode),
with the initialisers' random weights, then made usable as the fixtures' README describes:

- batch norm: every moving mean/variance set, layer after layer in graph order, to the per-channel
  statistics of that layer's actual input over the pictures (random γ in 0.5..1.5 and β in −0.1..0.1 so a
  dropped or swapped term shows);
- box predictor: the last class-logit and box-encoding weights scaled so that, over the pictures, the logits
  (before biases) have standard deviation 0.8 and the encodings 2 (the fixtures' statistics, which ×3 and ×8 gave
  their conv predictors), class biases −3 ± 0.5: scores spread over 0..1, decoded boxes move off their anchors.

The checkpoint is then exported with ``object_detection.exporter.export_inference_graph`` (input
``image_tensor``), and the frozen graph is run on each picture: ``OUT_DIR/ref_<name>.npz`` holds ``input``,
the four ``detection_*`` outputs, ``raw_box_encodings`` [1,A,4], ``raw_class_logits`` [1,A,C+1] and
``anchors`` [A,4] — the three tensors the ``Postprocessor`` reads from outside its scope, told apart by
shape — as in the fixtures. ``OUT_DIR/export_info.json`` names those tensors.
"""

import od_api_bootstrap  # noqa: I001  (first: empty modules for unused architectures)
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import types

sys.path.append(os.environ["OD_API_DEPS"])


class _NoContrib(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``tensorflow.contrib`` (gone since TF 2) as empty modules: the TF1 code paths import it for
    architectures and matchers these exports never build (e.g. the bipartite matcher)."""

    def find_spec(self, name, path, target=None):
        if name == "tensorflow.contrib" or name.startswith("tensorflow.contrib."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _NoContrib())
# the slim nets (``nets``, ``preprocessing``) are installed inside the package; TF1 extractors import them top-level
sys.path.append(os.path.join(os.path.dirname(od_api_bootstrap.__file__), "object_detection"))

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

np.int = int  # type: ignore[attr-defined]  # the 2.8-era slim mobilenet_v3 uses the alias NumPy 1.24 removed
tf.disable_v2_behavior()  # before object_detection is imported: its model_builder then offers the TF1 extractors

from tf_keras.src import legacy_tf_layers  # noqa: E402
from tf_keras.src.legacy_tf_layers import base, convolutional, core, normalization, pooling  # noqa: E402

# TF's tf.compat.v1.layers (slim's batch_norm) load tf_keras.legacy_tf_layers.*; tf-keras 2.21 keeps them under src
sys.modules["tf_keras.legacy_tf_layers"] = legacy_tf_layers
for _module in (base, convolutional, core, normalization, pooling):
    sys.modules["tf_keras.legacy_tf_layers." + _module.__name__.rsplit(".", 1)[1]] = _module

from google.protobuf import text_format  # noqa: E402
from object_detection import exporter  # noqa: E402
from object_detection.builders import model_builder  # noqa: E402
from object_detection.protos import pipeline_pb2  # noqa: E402

# exporter.py prints parameter/FLOP statistics with tf.contrib.tfprof (gone since TF 2); they change nothing
exporter.profile_inference_graph = lambda graph: None

SEED = 0
BOX_STD, LOGIT_STD = 2.0, 0.8  # the fixtures' raw box encodings and class logits (before biases), over pictures
BN_OPS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


def _variable_of(tensor):
    """The variable a tensor reads (through Identity/read ops)."""
    op = tensor.op
    while op.type in ("Identity", "ReadVariableOp") and op.inputs:
        op = op.inputs[0].op
    return op.name


def make_checkpoint(config, pictures, prefix):
    rng = np.random.default_rng(SEED)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(SEED)
        model = model_builder.build(config.model, is_training=False)
        height, width = pictures.shape[1:3]
        images = tf.placeholder(tf.float32, [None, height, width, 3], name="images")
        preprocessed, true_shapes = model.preprocess(images)
        prediction = model.predict(preprocessed, true_shapes)
        model.postprocess(prediction, true_shapes)
        tf.train.get_or_create_global_step()  # the exporter restores it
        variables = {v.op.name: v for v in tf.global_variables()}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            feed = {images: pictures.astype(np.float32)}
            bns = [op for op in graph.get_operations() if op.type in BN_OPS]
            for op in bns:  # graph order: each layer's input already reflects the calibrated layers before it
                gamma, beta = (variables.get(_variable_of(op.inputs[k])) for k in (1, 2))
                x = sess.run(op.inputs[0], feed)
                axes = (0, 1, 2)
                if gamma is not None:
                    gamma.load(rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32), sess)
                if beta is not None:
                    beta.load(rng.uniform(-0.1, 0.1, beta.shape).astype(np.float32), sess)
                variables[_variable_of(op.inputs[3])].load(x.mean(axis=axes).astype(np.float32), sess)
                variables[_variable_of(op.inputs[4])].load(x.var(axis=axes).astype(np.float32), sess)
            spread_heads(sess, variables, prediction, feed, rng)
            tf.train.Saver().save(sess, prefix)
            return len(bns)


def spread_heads(sess, variables, prediction, feed, rng):
    """Scale the predictors' last weights so that, over the pictures, the raw box encodings have standard
    deviation BOX_STD and the class logits (before their biases) LOGIT_STD — the fixtures' statistics (there
    ×8 and ×3 on the conv predictors' init gave them; a weight-shared or separable head starts far smaller) —
    and set the class biases to −3 ± 0.5: scores spread over 0..1 and boxes move away from their anchors."""
    def last(suffixes):
        found = [v for name, v in variables.items() if name.endswith(suffixes)]
        if not found:
            raise SystemExit(f"found no predictor variables ending {suffixes}")
        return found

    class_weights = last(("ClassPredictor/weights", "ClassPredictor/pointwise_weights"))
    class_biases = last(("ClassPredictor/biases",))
    box_weights = last(("BoxEncodingPredictor/weights", "BoxPredictor/weights", "BoxPredictor/pointwise_weights"))
    for v in class_biases:
        v.load(np.zeros(v.shape, np.float32), sess)
    boxes, logits = sess.run([prediction["box_encodings"], prediction["class_predictions_with_background"]], feed)
    for weights, factor in ((class_weights, LOGIT_STD / logits.std()), (box_weights, BOX_STD / boxes.std())):
        for v in weights:
            v.load(sess.run(v) * np.float32(factor), sess)
    for v in class_biases:
        v.load((-3.0 + rng.uniform(-0.5, 0.5, v.shape)).astype(np.float32), sess)


def raw_tensors(graph_def):
    """Tensors the Postprocessor reads from outside its scope (non-constant ones): encodings, logits, anchors."""
    nodes = {n.name: n for n in graph_def.node}
    found = set()
    for n in graph_def.node:
        if not n.name.startswith("Postprocessor/"):
            continue
        for inp in n.input:
            if inp.startswith("^"):
                continue
            name = inp.split(":")[0]
            if name.startswith("Postprocessor/") or nodes[name].op == "Const":
                continue
            found.add(inp if ":" in inp else inp + ":0")
    return sorted(found)


def reaches_score_converter(graph_def, tensor):
    """Whether the Postprocessor's Sigmoid/Softmax is downstream of ``tensor``."""
    consumers: dict[str, list] = {}
    for n in graph_def.node:
        for inp in n.input:
            consumers.setdefault(inp.lstrip("^").split(":")[0], []).append(n)
    stack, seen = [tensor.split(":")[0]], set()
    while stack:
        name = stack.pop()
        for n in consumers.get(name, []):
            if n.name in seen or not n.name.startswith("Postprocessor/"):
                continue
            if n.op in ("Sigmoid", "Softmax"):
                return True
            seen.add(n.name)
            stack.append(n.name)
    return False


def main():
    config_path, pictures_path, out_dir = sys.argv[1:4]
    config = pipeline_pb2.TrainEvalPipelineConfig()
    with open(config_path) as f:
        text_format.Merge(f.read(), config)
    pics = np.load(pictures_path)
    names = sorted(pics.files)
    batch = np.stack([pics[n] for n in names])
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        n_bn = make_checkpoint(config, batch, os.path.join(tmp, "model.ckpt"))
        tf.reset_default_graph()
        exporter.export_inference_graph("image_tensor", config, os.path.join(tmp, "model.ckpt"),
                                        os.path.join(tmp, "export"))
        frozen = os.path.join(tmp, "export", "frozen_inference_graph.pb")
        with open(frozen, "rb") as f:
            data = f.read()
    graph_def = tf.GraphDef()
    graph_def.ParseFromString(data)
    candidates = raw_tensors(graph_def)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.Session(graph=graph) as sess:
        shapes = {t: graph.get_tensor_by_name(t).shape for t in candidates}
        picked = {}
        sample = {"image_tensor:0": batch[:1]}
        values = sess.run(candidates, sample)
        for t, v in zip(candidates, values, strict=True):
            if v.ndim == 2 and v.shape[1] == 4:
                picked["anchors"] = t
            elif v.ndim == 3:  # logits reach the score converter; encodings (also [1, A, 4] for 3 classes) do not
                picked["raw_class_logits" if reaches_score_converter(graph_def, t) else "raw_box_encodings"] = t
        if len(picked) != 3:
            raise SystemExit(f"could not tell the raw tensors apart: {shapes}")
        for name in names:
            fetch = [f"{o}:0" for o in OUTPUTS] + [picked[k] for k in ("raw_box_encodings", "raw_class_logits",
                                                                        "anchors")]
            out = sess.run(fetch, {"image_tensor:0": pics[name][None]})
            record = dict(zip([*OUTPUTS, "raw_box_encodings", "raw_class_logits", "anchors"], out, strict=True))
            record["input"] = pics[name][None]
            np.savez(os.path.join(out_dir, f"ref_{name}.npz"), **record)
    with open(os.path.join(out_dir, "model.pb"), "wb") as f:
        f.write(data)
    with open(os.path.join(out_dir, "pipeline.config"), "w") as f:
        f.write(text_format.MessageToString(config))
    with open(os.path.join(out_dir, "export_info.json"), "w") as f:
        json.dump({"raw_tensors": picked, "batch_norms_calibrated": n_bn, "pictures": names}, f, indent=1)


if __name__ == "__main__":
    main()
