"""Caffe backend: IR → deploy.prototxt + deploy.caffemodel (+ conversion.json), per flavor."""

from transpiler.backends.caffe import (  # noqa: F401  (importing registers the ops' emitters)
    emit_elementwise,
    emit_pooling,
    emit_shapes,
)
from transpiler.backends.caffe.emitter import EMITTERS, Emitted, caffe_op, emit_caffe
from transpiler.backends.caffe.flavors import FLAVORS, Flavor, get_flavor
from transpiler.backends.caffe.writer import write_model

__all__ = ["EMITTERS", "FLAVORS", "Emitted", "Flavor", "caffe_op", "emit_caffe", "get_flavor", "write_model"]
