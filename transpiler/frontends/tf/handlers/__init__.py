"""Built-in TF op handlers; importing this package registers them all."""

from transpiler.frontends.tf.handlers import array_ops, math_ops, nn_ops, resample_ops

__all__ = ["array_ops", "math_ops", "nn_ops", "resample_ops"]
