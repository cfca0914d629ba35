"""Run the two sides: TensorFlow on a frozen GraphDef or a SavedModel, OpenCV dnn 4.x on a Caffe model.

A SavedModel is run by TensorFlow's own loader (``tf.saved_model.load(dir).signatures[name]``, its
variables restored by TF from ``variables/``), called with the inputs by signature key. That is the
very file the user converted, read by TF's code, not by our reader: a slip in our inlining or
checkpoint reading shows as a difference. Tensors inside the signature's functions are not among
its outputs, so only the signature's own tensors can be compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def run_tensorflow(model: Path, feeds: Mapping[str, np.ndarray], fetches: Sequence[str],
                   threads: int = 0, *, float64: bool = False) -> dict[str, np.ndarray]:
    """Evaluate ``fetches`` (TF tensor names) of the frozen graph with ``feeds``.

    The graph is fed where ``feeds`` say, at their shapes (an overridden input size included), and
    pruned to the fetches (tf_graph.feed_graph). ``float64``: run the whole graph in float64 (float
    feeds are widened exactly; results come back as float64).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from transpiler.frontends.tf.loader import load_graphdef
    from transpiler.verify.tf_graph import as_float64, feed_graph

    # Our loader already sniffs binary vs text; TF's own message re-parses the same bytes.
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(load_graphdef(model).SerializeToString())
    if float64:
        feeds = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()}
    graph_def, renamed = feed_graph(graph_def, feeds, fetches)
    if float64:
        graph_def = as_float64(graph_def)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    # Grappler's remapper fuses x·sigmoid(x) into one op and drops the Sigmoid even when it is fetched
    # ("... Sigmoid:0 ... was not found in the Graph", EfficientNet --per-layer): fetched tensors must exist.
    from tensorflow.core.protobuf import rewriter_config_pb2

    config.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    kept = {node.name for node in graph_def.node}
    # Feeds the fetches do not need were pruned with what lies upstream of another feed.
    feed_dict = {graph.get_tensor_by_name(renamed.get(k, k)): v for k, v in feeds.items()
                 if renamed.get(k, k).partition(":")[0] in kept}
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        values = sess.run([renamed.get(f, f) for f in fetches], feed_dict)
    return dict(zip(fetches, values, strict=True))


def run_saved_model(model: Path, signature: str, feeds: Mapping[str, np.ndarray],
                    fetches: Sequence[str]) -> dict[str, np.ndarray]:
    """Call the SavedModel's ``signature`` with ``feeds`` (input key → array) and return the ``fetches``
    (output keys), TF loading ``model`` (the directory or its ``saved_model.pb``) itself. A call TF refuses
    (shape, dtype) raises ``TypeError`` or ``ValueError``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    directory = Path(model) if Path(model).is_dir() else Path(model).parent
    function = tf.saved_model.load(str(directory)).signatures[signature]
    try:
        results = function(**{key: tf.constant(value) for key, value in feeds.items()})
    except tf.errors.OpError as exc:  # e.g. an input size the graph cannot take: the caller names the file
        # TF's message: "Graph execution error:", "Detected at node ...", the reason, then "[[{{node ...}}]]".
        lines = [line.strip() for line in exc.message.splitlines() if line.strip()
                 and not line.strip().startswith(("Graph execution error", "Detected at node", "<stack", "[["))]
        raise ValueError(lines[0] if lines else type(exc).__name__) from None
    return {key: np.asarray(results[key]) for key in fetches}


@dataclass
class OpenCVNet:
    """An OpenCV dnn net and what it needs to run: the numpy-backed layer types it uses (see custom_layers)."""

    net: Any
    prototxt: Path
    caffemodel: Path
    custom_types: list[str] = field(default_factory=list)
    built: bool = False

    @property
    def runtime(self) -> str:
        """Which runtime runs the net, e.g. ``OpenCV dnn 4.14.0 + numpy DepthwiseConvolution``."""
        import cv2

        extra = f" + numpy {', '.join(self.custom_types)}" if self.custom_types else ""
        return f"OpenCV dnn {cv2.__version__}{extra}"


def load_opencv_net(prototxt: Path, caffemodel: Path, *, winograd: bool = False) -> OpenCVNet:
    """OpenCV dnn on the CPU. Winograd 3x3 (OpenCV's default) adds ~5e-5 error, so verification turns it
    off; benchmarks keep it on, as users run it. Layer types OpenCV lacks (``Clip``,
    ``DepthwiseConvolution``) run as numpy custom layers (transpiler.verify.custom_layers)."""
    import cv2

    from transpiler.verify.custom_layers import numpy_layer_types

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.enableWinograd(winograd)
    return OpenCVNet(net, Path(prototxt), Path(caffemodel), numpy_layer_types(Path(prototxt)))


def run_opencv(net: OpenCVNet | Any, feeds: Mapping[str, np.ndarray], layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Forward the net and return the outputs of ``layers`` (OpenCV takes layer names)."""
    import cv2

    from transpiler.verify.custom_layers import RuntimeRunError, opencv_custom_layers

    raw = net.net if isinstance(net, OpenCVNet) else net
    for blob, array in feeds.items():
        raw.setInput(np.ascontiguousarray(array, dtype=np.float32), blob)
    errors: list[Exception] = []
    try:
        if isinstance(net, OpenCVNet) and net.custom_types and not net.built:
            # OpenCV builds its layers at the first forward: our numpy layers must be registered then.
            with opencv_custom_layers(net.prototxt, net.caffemodel) as errors:
                outs = raw.forward(list(layers))
            net.built = True
        else:
            outs = raw.forward(list(layers))
        if errors:
            raise errors[0]
    except cv2.error as exc:
        if errors:
            raise errors[0] from exc
        where = f"{net.prototxt}: " if isinstance(net, OpenCVNet) else ""
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RuntimeRunError(f"{where}OpenCV dnn {cv2.__version__} cannot run the converted net: {detail}") from exc
    return {name: np.asarray(o) for name, o in zip(layers, outs, strict=True)}
