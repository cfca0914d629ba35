"""The C++ postprocessor (kernels/ssd_postprocess/ssd_postprocess.hpp) from Python, through ctypes.

Compiled on first use with the system C++ compiler (``transpiler.kernels.build``: cached by the hash of the
sources, compiler and flags) with ``-ffp-contract=off``, so its float32 arithmetic is numpy's, operation for
operation. :func:`postprocess_native` takes and returns what :func:`transpiler.runtime.ssd_postprocess.postprocess`
does.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np

from transpiler.kernels.build import KERNELS_DIR, BuildError, compile_shared, find_cxx
from transpiler.runtime.ssd_postprocess import F32, Detections, PostprocessSettings

SOURCE_DIR = KERNELS_DIR / "ssd_postprocess"
HEADER = SOURCE_DIR / "ssd_postprocess.hpp"
FLAGS = ("-O2", "-std=c++11", "-fPIC", "-shared", "-Wall", "-Wextra", "-ffp-contract=off")


@cache
def library() -> ctypes.CDLL:
    """The compiled C entry point (raises :class:`BuildError` without a C++ compiler)."""
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (set $CXX or install g++)")
    path = compile_shared([SOURCE_DIR / "ssd_postprocess_capi.cpp"], compiler=cxx, flags=FLAGS,
                          name="ssd_postprocess", include_dirs=(SOURCE_DIR,))
    lib = ctypes.CDLL(str(path))
    lib.ssd_postprocess_run.restype = ctypes.c_int
    return lib


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def postprocess_native(box_encodings: np.ndarray, class_logits: np.ndarray, anchors: np.ndarray,
                       settings: PostprocessSettings | None = None) -> Detections:
    """TF's detections computed by the C++ header (same contract as ``ssd_postprocess.postprocess``)."""
    settings = settings or PostprocessSettings()
    a = np.ascontiguousarray(anchors, F32).reshape(-1, 4)
    enc = np.ascontiguousarray(box_encodings, F32).reshape(-1)
    logits = np.ascontiguousarray(class_logits, F32).reshape(-1)
    if enc.size != a.size or logits.size % len(a):
        raise ValueError(f"{enc.size // 4} box encodings and {logits.size} logits for {len(a)} anchors")
    if settings.score_converter not in ("sigmoid", "softmax"):
        raise ValueError(f"score converter '{settings.score_converter}' (sigmoid, softmax)")
    floats = np.array([settings.iou_threshold, settings.score_threshold, *settings.scale_factors,
                       settings.logit_scale, *settings.clip_window], F32)
    ints = np.array([settings.max_per_class, settings.max_total, settings.score_converter == "softmax"], np.int32)
    k = max(settings.max_total, 1)
    boxes, scores = np.zeros((k, 4), F32), np.zeros(k, F32)
    labels, index = np.zeros(k, np.int32), np.zeros(k, np.int32)
    n = library().ssd_postprocess_run(_ptr(enc), _ptr(logits), _ptr(a), ctypes.c_int(len(a)),
                                      ctypes.c_int(logits.size // len(a)), _ptr(floats), _ptr(ints), _ptr(boxes),
                                      _ptr(scores), _ptr(labels), _ptr(index))
    return Detections(boxes[:n], scores[:n], labels[:n].astype(np.int64), index[:n].astype(np.int64))
