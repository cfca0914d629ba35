"""Graph-level transpiler from TensorFlow frozen graphs to Caffe models."""

__version__ = "0.1.0"
