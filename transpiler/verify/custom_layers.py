"""Caffe layers OpenCV dnn cannot run, run inside OpenCV as custom Python layers backed by numpy.

OpenCV 4.x has no ``Clip`` (the ``bvlc`` flavor's ReLU6) and no ``DepthwiseConvolution`` (the
``kernels`` flavor's layer from kernels/). ``cv2.dnn_registerLayer(type, cls)`` lets Python supply a
layer type: OpenCV builds one ``cls(params, blobs)`` per layer when the net is first set up (at the
first forward, in network order), then calls ``getMemoryShapes`` and ``forward`` on it. Everything
else in the net stays OpenCV's own, so the emitted files run as written.

Parameters are taken from the prototxt itself, parsed with our Caffe schema: OpenCV flattens a
layer's parameter messages into one dictionary of strings (4.14 does pass ``depthwise_conv_param``'s
and ``clip_param``'s fields, mixed with keys of its own), where names of different messages can
collide and a message its own caffe.proto lacks may be dropped. OpenCV does not tell a Python layer
its name, so layers are bound to the prototxt's layers of that type in network order (the order
OpenCV instantiates them); each binding is checked against whatever parameters OpenCV did pass,
and a disagreement is an error, never a silent mix-up.
Weights are the blobs OpenCV read from the caffemodel for that layer.

Layers (NCHW, float32 as in OpenCV):

- ``Clip``: ``y = min(max(x, min), max)``.
- ``DepthwiseConvolution`` (channel multiplier M, four pads, see kernels/reference.py):
  ``y[n, c·M+m, i, j] = b[c·M+m] + Σ_{p,q} w[c·M+m, 0, p, q] · x̃[n, c, i·SH − pt + p·DH, j·SW − pl + q·DW]``
  with ``OH = ⌊(H + pt + pb − (DH·(KH−1) + 1)) / SH⌋ + 1`` (OW likewise).

Registration is scoped: :func:`opencv_custom_layers` registers the types a prototxt needs and
unregisters them on exit; OpenCV keeps the instances it built, so later forwards still work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from transpiler.backends.caffe.proto import caffe_schema_pb2 as cp
from transpiler.errors import TranspilerError
from transpiler.kernels.reference import depthwise_conv2d_nchw, depthwise_output_hw

Forward = Callable[[Any, list[np.ndarray], list[np.ndarray]], np.ndarray]  # (layer, inputs, weights) -> output
Shape = Callable[[Any, list[list[int]]], list[int]]  # (layer, input shapes) -> output shape


@dataclass(frozen=True)
class NumpyLayer:
    """A Caffe layer type OpenCV lacks: its parameter message, output shape and numpy forward."""

    type: str
    param_field: str  # the LayerParameter field holding its parameters
    shape: Shape
    forward: Forward


NUMPY_LAYERS: dict[str, NumpyLayer] = {}


class RuntimeRunError(TranspilerError):
    """The verification runtime could not run the converted net (exit 2: no verdict)."""


def register_numpy_layer(layer: NumpyLayer) -> None:
    """Add (or replace) a numpy-backed layer type; only for types OpenCV does not run itself."""
    NUMPY_LAYERS[layer.type] = layer


def _clip(layer: Any, inputs: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    p = layer.clip_param
    return np.clip(inputs[0], np.float32(p.min), np.float32(p.max))


def _depthwise_params(p: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int], tuple[int, int]]:
    return ((p.kernel_h, p.kernel_w), (p.stride_h, p.stride_w), (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right),
            (p.dilation_h, p.dilation_w))


def _depthwise_shape(layer: Any, shapes: list[list[int]]) -> list[int]:
    p = layer.depthwise_conv_param
    kernel, stride, pads, dilation = _depthwise_params(p)
    n, _, h, w = shapes[0]
    return [n, int(p.num_output), *depthwise_output_hw(h, w, kernel, stride, pads, dilation)]


def _depthwise(layer: Any, inputs: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    p = layer.depthwise_conv_param
    _, stride, pads, dilation = _depthwise_params(p)
    w = weights[0].reshape(p.num_output, 1, p.kernel_h, p.kernel_w)
    b = weights[1].reshape(-1) if p.bias_term else None
    return depthwise_conv2d_nchw(inputs[0], w, b, stride, pads, dilation, p.channel_multiplier)


register_numpy_layer(NumpyLayer("Clip", "clip_param", lambda layer, shapes: list(shapes[0]), _clip))
register_numpy_layer(NumpyLayer("DepthwiseConvolution", "depthwise_conv_param", _depthwise_shape, _depthwise))


def numpy_layer_types(prototxt: Path) -> list[str]:
    """The numpy-backed types a prototxt uses, in first-use order."""
    net = _parse(prototxt)
    return list(dict.fromkeys(layer.type for layer in net.layer if layer.type in NUMPY_LAYERS))


def _parse(prototxt: Path) -> Any:
    return text_format.Parse(Path(prototxt).read_text(), cp.NetParameter())


def _agrees(given: Any, value: Any) -> bool:
    """OpenCV's string form of a parameter vs the schema's typed value."""
    text = str(given).strip().lower()
    if isinstance(value, bool):
        return text in (("true", "1") if value else ("false", "0"))
    try:
        return bool(np.isclose(float(text), float(value), rtol=1e-6, atol=0.0))
    except ValueError:
        return text == str(value).lower()


def _check_binding(layer: Any, spec: NumpyLayer, params: Any) -> None:
    """OpenCV's flattened params (where it passed any) must agree with the layer bound by order."""
    message = getattr(layer, spec.param_field)
    given = dict(params.items()) if hasattr(params, "items") else {}
    for field, value in message.ListFields():
        if not isinstance(value, bool | int | float | str) or field.name not in given:
            continue  # repeated and nested fields: OpenCV's flattening of those is not ours to check
        if not _agrees(given[field.name], value):
            raise RuntimeRunError(
                f"OpenCV built a {spec.type} layer with {field.name}={given[field.name]}, but the prototxt's "
                f"layer '{layer.name}' (bound by network order) has {value}: cannot tell which layer is which")


def _make_class(spec: NumpyLayer, queue: list[Any], errors: list[Exception]) -> type:
    """A class per type; OpenCV reduces anything raised in it to "failed to create", so it is kept."""
    cursor = {"next": 0}

    class PythonLayer:
        """One prototxt layer, as OpenCV's custom-layer protocol wants it."""

        def __init__(self, params: Any, blobs: Any) -> None:
            layer = queue[cursor["next"] % len(queue)]
            cursor["next"] += 1
            try:
                _check_binding(layer, spec, params)
            except RuntimeRunError as exc:
                errors.append(exc)
                raise
            self.layer = layer
            self.weights = [np.asarray(b, dtype=np.float32) for b in blobs]

        def getMemoryShapes(self, inputs: list[list[int]]) -> list[list[int]]:  # OpenCV calls it by this name
            return [spec.shape(self.layer, [list(s) for s in inputs])]

        def forward(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
            xs = [np.asarray(x, dtype=np.float32) for x in inputs]
            try:
                return [np.ascontiguousarray(spec.forward(self.layer, xs, self.weights), dtype=np.float32)]
            except Exception as exc:
                errors.append(RuntimeRunError(f"numpy {spec.type} layer '{self.layer.name}': "
                                              f"{type(exc).__name__}: {exc}"))
                raise

    return PythonLayer


@contextmanager
def opencv_custom_layers(prototxt: Path) -> Iterator[list[Exception]]:
    """Register numpy-backed layers for the types ``prototxt`` uses; unregister them on exit.

    Wrap the *first* forward of a net in it (that is when OpenCV builds its layers). Yields the list
    that collects what the layers raised (OpenCV itself only reports that a custom layer failed).
    """
    import cv2

    net = _parse(prototxt)
    queues: dict[str, list[Any]] = {}
    for layer in net.layer:
        if layer.type in NUMPY_LAYERS:
            queues.setdefault(layer.type, []).append(layer)
    registered: list[str] = []
    errors: list[Exception] = []
    try:
        for kind, queue in queues.items():
            cv2.dnn_registerLayer(kind, _make_class(NUMPY_LAYERS[kind], queue, errors))
            registered.append(kind)
        yield errors
    finally:
        for kind in registered:
            cv2.dnn_unregisterLayer(kind)
