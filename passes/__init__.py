"""Rewrite passes, one per module; importing this package registers every built-in pass."""

from transpiler.passes import (
    dead_code,
    fix_same_padding,
    fold_batchnorm,
    fold_constants,
    fold_space_to_batch,
    input_channel_order,
    map_relu6,
    matmul_to_fc,
    mean_to_pool,
    remove_identity,
    select_classes,
    simplify_transposes,
    ssd_detection_output,
    symmetric_padding,
    to_nchw,
    trim_dead_taps,
)

__all__ = [
    "dead_code",
    "fix_same_padding",
    "fold_batchnorm",
    "fold_constants",
    "fold_space_to_batch",
    "input_channel_order",
    "map_relu6",
    "matmul_to_fc",
    "mean_to_pool",
    "remove_identity",
    "select_classes",
    "simplify_transposes",
    "ssd_detection_output",
    "symmetric_padding",
    "to_nchw",
    "trim_dead_taps",
]
