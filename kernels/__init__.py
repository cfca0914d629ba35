"""Custom Caffe layers (ReLU6, DepthwiseConvolution) in C++/CUDA, their NumPy references and installer.

* ``relu6/``, ``depthwise_conv/`` -- the Caffe layers (thin wrappers) and their plain math functions
  exposed through a C ABI; see each folder's README for the math and how to build Caffe with them.
* `transpiler.kernels.reference` -- NumPy reference implementations (forward and backward).
* `transpiler.kernels.build` -- compiles the math into a shared library and wraps it with ctypes.
* `transpiler.kernels.install` / ``python -m transpiler.kernels install --caffe-root PATH`` -- copies
  the layers into a Caffe source tree and registers their parameters in caffe.proto.
"""
