"""Run the two sides: TensorFlow on a frozen GraphDef, OpenCV dnn 4.x on a Caffe model."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def run_tensorflow(model: Path, feeds: Mapping[str, np.ndarray], fetches: Sequence[str],
                   threads: int = 0) -> dict[str, np.ndarray]:
    """Evaluate ``fetches`` (TF tensor names) of the frozen graph with ``feeds``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from transpiler.frontends.tf.loader import load_graphdef

    # Our loader already sniffs binary vs text; TF's own message re-parses the same bytes.
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(load_graphdef(model).SerializeToString())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        values = sess.run(list(fetches), {graph.get_tensor_by_name(k): v for k, v in feeds.items()})
    return dict(zip(fetches, values, strict=True))


def load_opencv_net(prototxt: Path, caffemodel: Path, *, winograd: bool = False) -> object:
    """OpenCV dnn on the CPU. Winograd 3x3 (OpenCV's default) adds ~5e-5 error, so verification turns it
    off; benchmarks keep it on, as users run it."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableWinograd(winograd)
    return net


def run_opencv(net: object, feeds: Mapping[str, np.ndarray], layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Forward the net and return the outputs of ``layers`` (OpenCV takes layer names)."""
    for blob, array in feeds.items():
        net.setInput(np.ascontiguousarray(array, dtype=np.float32), blob)  # type: ignore[attr-defined]
    outs = net.forward(list(layers))  # type: ignore[attr-defined]
    return {name: np.asarray(o) for name, o in zip(layers, outs, strict=True)}
