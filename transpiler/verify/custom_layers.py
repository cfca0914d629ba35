"""Caffe layers OpenCV dnn cannot run, run inside OpenCV as custom Python layers backed by numpy.

OpenCV 4.x has no ``Clip`` (the ``bvlc`` flavor's ReLU6) and no ``DepthwiseConvolution`` (the
``kernels`` flavor's layer from kernels/). ``cv2.dnn_registerLayer(type, cls)`` lets Python supply
a layer type: OpenCV builds one ``cls(params, blobs)`` per layer when the net is first set up (at
the first forward), then calls ``getMemoryShapes`` and ``forward`` on it. Everything else in the net stays
OpenCV's own, so the emitted files run as written.

Parameters are taken from the prototxt itself, parsed with our Caffe schema: OpenCV flattens a
layer's parameter messages into one dictionary of strings (4.14 does pass ``depthwise_conv_param``'s
and ``clip_param``'s fields, mixed with keys of its own), where names of different messages can
collide and a message its own caffe.proto lacks may be dropped. OpenCV does not tell a Python layer
its name (nor builds layers in network order), so each instance is bound to the prototxt layer that
holds exactly the weights OpenCV read for it from the caffemodel, the parameters OpenCV did pass
breaking ties; where that leaves layers with different parameters, it is an error, never a mix-up.

Layers (NCHW, float32 as in OpenCV):

- ``Clip``: ``y = min(max(x, min), max)``.
- ``DepthwiseConvolution`` (channel multiplier M, four pads, see kernels/reference.py):
  ``y[n, c·M+m, i, j] = b[c·M+m] + Σ_{p,q} w[c·M+m, 0, p, q] · x̃[n, c, i·SH − pt + p·DH, j·SW − pl + q·DW]``
  with ``OH = ⌊(H + pt + pb − (DH·(KH−1) + 1)) / SH⌋ + 1`` (OW likewise).

OpenCV's Python-layer bridge converts arrays to ``cv::Mat`` the way it converts images (a 3-D
array's last axis becomes channels, a 1-D array a column), so only layers whose blobs are 4-D (or
2-D) can be added this way: BVLC's ``Reduction`` (rank-dropping), for one, cannot.

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
    """OpenCV's string form of a parameter vs the schema's typed value. Numbers are compared by
    magnitude: OpenCV's generic parser drops a minus sign (``min: -0.5`` reaches the layer as 0.5)."""
    text = str(given).strip().lower()
    if isinstance(value, bool):
        return text in (("true", "1") if value else ("false", "0"))
    try:
        return bool(np.isclose(abs(float(text)), abs(float(value)), rtol=1e-6, atol=0.0))
    except ValueError:
        return text == str(value).lower()


def _params_agree(layer: Any, spec: NumpyLayer, given: dict[str, Any]) -> bool:
    """Every field of the layer's parameter message that OpenCV passed has the layer's value (set or default)."""
    message = getattr(layer, spec.param_field)
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.name not in given or not isinstance(value, bool | int | float | str):
            continue  # repeated and nested fields: OpenCV's flattening of those is not ours to check
        if field.enum_type is not None:  # OpenCV passes an enum by name
            value = field.enum_type.values_by_number[value].name
        if not _agrees(given[field.name], value):
            return False
    return True


def _blobs_equal(stored: list[np.ndarray], blobs: list[np.ndarray]) -> bool:
    return len(stored) == len(blobs) and all(
        a.size == b.size and np.array_equal(a.reshape(-1), b.reshape(-1)) for a, b in zip(stored, blobs, strict=True))


class _Binder:
    """Finds the prototxt layer an OpenCV instance stands for, from what OpenCV hands the constructor.

    Candidates (layers of the type) must hold exactly the instance's weights. Where those differ in
    their parameters, the parameters OpenCV passed pick among them (a hint only: OpenCV may drop or
    mangle them). An unused candidate is preferred; candidates that remain must share their
    parameters (they then compute the same function of the instance's own weights), else it is an
    error.
    """

    def __init__(self, spec: NumpyLayer, layers: list[Any], weights: dict[str, list[np.ndarray]]) -> None:
        self.spec, self.layers, self.weights = spec, layers, weights
        self.used: set[str] = set()

    def _params(self, layer: Any) -> bytes:
        return bytes(getattr(layer, self.spec.param_field).SerializeToString(deterministic=True))

    def _fresh(self, fits: list[Any]) -> list[Any]:
        return [layer for layer in fits if layer.name not in self.used] or fits

    def bind(self, params: Any, blobs: list[np.ndarray]) -> Any:
        given = dict(params.items()) if hasattr(params, "items") else {}
        fits = [layer for layer in self.layers if _blobs_equal(self.weights.get(layer.name, []), blobs)]
        if len({self._params(layer) for layer in self._fresh(fits)}) > 1:
            fits = [layer for layer in fits if _params_agree(layer, self.spec, given)]
        if not fits:
            raise RuntimeRunError(f"OpenCV built a {self.spec.type} layer (params {sorted(given.items())}) that "
                                  "matches no layer of the prototxt: cannot tell which layer it is")
        fresh = self._fresh(fits)
        if len({self._params(layer) for layer in fresh}) > 1:
            names = ", ".join(f"'{layer.name}'" for layer in fresh)
            raise RuntimeRunError(f"OpenCV built a {self.spec.type} layer that could be any of {names}, whose "
                                  f"{self.spec.param_field} differ: cannot tell which layer it is")
        self.used.add(fresh[0].name)
        return fresh[0]


def _make_class(spec: NumpyLayer, binder: _Binder, errors: list[Exception]) -> type:
    """A class per type. Nothing escapes into OpenCV: what is raised is kept in ``errors`` (OpenCV would
    reduce it to "failed", or hang) and the caller raises it after the forward."""

    class PythonLayer:
        """One prototxt layer, as OpenCV's custom-layer protocol wants it."""

        def __init__(self, params: Any, blobs: Any) -> None:
            self.weights = [np.asarray(b, dtype=np.float32) for b in blobs]
            try:
                self.layer = binder.bind(params, self.weights)
            except RuntimeRunError as exc:
                errors.append(exc)
                raise
            self.shape: list[int] = []

        def getMemoryShapes(self, inputs: list[list[int]]) -> list[list[int]]:  # OpenCV calls it by this name
            try:
                self.shape = spec.shape(self.layer, [list(s) for s in inputs])
            except Exception as exc:
                errors.append(RuntimeRunError(f"numpy {spec.type} layer '{self.layer.name}' on inputs {inputs}: "
                                              f"{type(exc).__name__}: {exc}"))
                self.shape = list(inputs[0])
            return [self.shape]

        def forward(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
            xs = [np.asarray(x, dtype=np.float32) for x in inputs]
            try:
                y = np.ascontiguousarray(spec.forward(self.layer, xs, self.weights), dtype=np.float32)
                return [y.reshape(self.shape)]
            except Exception as exc:
                errors.append(RuntimeRunError(f"numpy {spec.type} layer '{self.layer.name}': "
                                              f"{type(exc).__name__}: {exc}"))
                return [np.zeros(self.shape, dtype=np.float32)]

    return PythonLayer


def _blob_array(blob: Any) -> np.ndarray:
    return np.asarray(blob.data, dtype=np.float32)


@contextmanager
def opencv_custom_layers(prototxt: Path, caffemodel: Path) -> Iterator[list[Exception]]:
    """Register numpy-backed layers for the types ``prototxt`` uses; unregister them on exit.

    Wrap the *first* forward of a net in it (that is when OpenCV builds its layers). Yields the list
    that collects what the layers raised: the caller raises the first after the forward.
    """
    import cv2

    layers: dict[str, list[Any]] = {}
    for layer in _parse(prototxt).layer:
        if layer.type in NUMPY_LAYERS:
            layers.setdefault(layer.type, []).append(layer)
    weights: dict[str, list[np.ndarray]] = {}
    if layers:
        model = cp.NetParameter()
        model.ParseFromString(Path(caffemodel).read_bytes())
        wanted = {layer.name for group in layers.values() for layer in group}
        weights = {layer.name: [_blob_array(b) for b in layer.blobs] for layer in model.layer if layer.name in wanted}
    registered: list[str] = []
    errors: list[Exception] = []
    try:
        for kind, group in layers.items():
            spec = NUMPY_LAYERS[kind]
            cv2.dnn_registerLayer(kind, _make_class(spec, _Binder(spec, group, weights), errors))
            registered.append(kind)
        yield errors
    finally:
        for kind in registered:
            cv2.dnn_unregisterLayer(kind)
