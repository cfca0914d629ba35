"""Verification: run TensorFlow on the source graph and OpenCV dnn on the Caffe model, compare.

Layer types OpenCV lacks (the bvlc flavor's ``Clip``, the kernels flavor's ``DepthwiseConvolution``)
run inside OpenCV as numpy custom layers (custom_layers.py); the report names the runtime.

Imported only for ``--verify`` and by tests; it is the one place that imports TensorFlow/OpenCV.
"""

from transpiler.verify.compare import Comparison, compare_arrays
from transpiler.verify.harness import VerifyOptions, verify_model

__all__ = ["Comparison", "VerifyOptions", "compare_arrays", "verify_model"]
