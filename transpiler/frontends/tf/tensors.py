"""TensorFlow ``TensorProto`` ⇄ numpy, without TensorFlow.

A ``TensorProto`` stores its values in one of two encodings (TensorFlow's reader,
``Tensor::FromProto``, accepts both and so do we):

* ``tensor_content``: the raw little-endian bytes of every element, row-major. Used by TensorFlow
  for most numeric tensors; its length must be exactly ``num_elements * itemsize``.
* a typed value list (``float_val``, ``int_val``, ``half_val``...; which one depends on the
  dtype, see ``_LIST_FIELD``). A list *shorter* than the tensor is the "splat" form: the last
  value repeats to fill the tensor (one value fills all of it), and an empty list means zeros.
  Extra values beyond the element count are ignored, as TensorFlow does.

Results, per dtype: the matching numpy dtype for the standard types; quantized types as their
plain integer storage type (``qint8`` → int8 ...); ``half`` as float16 (``half_val`` holds the
16-bit patterns); ``bfloat16``, the float8 types and ``float4_e2m1fn`` widened *exactly* to
float32 (through ml_dtypes when it is importable, by bit manipulation otherwise: ml_dtypes is
not a dependency); int4/int2 widened to int8 and uint4/uint2 to uint8; ``string`` as an object
array of ``bytes``. ``resource`` and ``variant`` tensors have no numpy form and raise
:class:`~transpiler.errors.UnsupportedModelError`; a malformed tensor (bad byte count, unknown
dims) raises :class:`~transpiler.errors.ModelLoadError`.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np

from transpiler.errors import ModelLoadError, UnsupportedModelError
from transpiler.frontends.tf.proto import tf_graph_pb2 as pb

__all__ = ["dtype_name", "dtype_to_numpy", "numpy_to_tensor", "tensor_to_numpy"]

DT = pb.DataType

# A splat or a corrupt shape must not make us allocate absurd amounts of memory.
_MAX_BYTES = 1 << 34

# dtype → numpy dtype of the array tensor_to_numpy returns.
_RESULT_DTYPE: dict[int, np.dtype[Any]] = {
    DT.DT_FLOAT: np.dtype(np.float32),
    DT.DT_DOUBLE: np.dtype(np.float64),
    DT.DT_INT32: np.dtype(np.int32),
    DT.DT_UINT8: np.dtype(np.uint8),
    DT.DT_INT16: np.dtype(np.int16),
    DT.DT_INT8: np.dtype(np.int8),
    DT.DT_STRING: np.dtype(object),
    DT.DT_COMPLEX64: np.dtype(np.complex64),
    DT.DT_INT64: np.dtype(np.int64),
    DT.DT_BOOL: np.dtype(np.bool_),
    DT.DT_QINT8: np.dtype(np.int8),
    DT.DT_QUINT8: np.dtype(np.uint8),
    DT.DT_QINT32: np.dtype(np.int32),
    DT.DT_BFLOAT16: np.dtype(np.float32),
    DT.DT_QINT16: np.dtype(np.int16),
    DT.DT_QUINT16: np.dtype(np.uint16),
    DT.DT_UINT16: np.dtype(np.uint16),
    DT.DT_COMPLEX128: np.dtype(np.complex128),
    DT.DT_HALF: np.dtype(np.float16),
    DT.DT_UINT32: np.dtype(np.uint32),
    DT.DT_UINT64: np.dtype(np.uint64),
    DT.DT_FLOAT8_E5M2: np.dtype(np.float32),
    DT.DT_FLOAT8_E4M3FN: np.dtype(np.float32),
    DT.DT_FLOAT8_E4M3FNUZ: np.dtype(np.float32),
    DT.DT_FLOAT8_E4M3B11FNUZ: np.dtype(np.float32),
    DT.DT_FLOAT8_E5M2FNUZ: np.dtype(np.float32),
    DT.DT_INT4: np.dtype(np.int8),
    DT.DT_UINT4: np.dtype(np.uint8),
    DT.DT_INT2: np.dtype(np.int8),
    DT.DT_UINT2: np.dtype(np.uint8),
    DT.DT_FLOAT4_E2M1FN: np.dtype(np.float32),
}

# dtype → little-endian storage dtype of one element in tensor_content (16-bit floats as bits).
_STORAGE_DTYPE: dict[int, np.dtype[Any]] = {
    **{k: v.newbyteorder("<") for k, v in _RESULT_DTYPE.items() if v != np.dtype(object)},
    DT.DT_HALF: np.dtype("<u2"),
    DT.DT_BFLOAT16: np.dtype("<u2"),
    DT.DT_FLOAT8_E5M2: np.dtype(np.uint8),
    DT.DT_FLOAT8_E4M3FN: np.dtype(np.uint8),
    DT.DT_FLOAT8_E4M3FNUZ: np.dtype(np.uint8),
    DT.DT_FLOAT8_E4M3B11FNUZ: np.dtype(np.uint8),
    DT.DT_FLOAT8_E5M2FNUZ: np.dtype(np.uint8),
    DT.DT_FLOAT4_E2M1FN: np.dtype(np.uint8),
    DT.DT_INT4: np.dtype(np.uint8),
    DT.DT_UINT4: np.dtype(np.uint8),
    DT.DT_INT2: np.dtype(np.uint8),
    DT.DT_UINT2: np.dtype(np.uint8),
}

# dtype → the typed list that holds its values.
_LIST_FIELD: dict[int, str] = {
    DT.DT_FLOAT: "float_val",
    DT.DT_DOUBLE: "double_val",
    DT.DT_INT64: "int64_val",
    DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val",
    DT.DT_BOOL: "bool_val",
    DT.DT_STRING: "string_val",
    DT.DT_COMPLEX64: "scomplex_val",
    DT.DT_COMPLEX128: "dcomplex_val",
    DT.DT_HALF: "half_val",
    DT.DT_BFLOAT16: "half_val",
    **{
        d: "int_val"
        for d in (
            DT.DT_INT32, DT.DT_INT16, DT.DT_INT8, DT.DT_UINT8, DT.DT_UINT16, DT.DT_QINT8,
            DT.DT_QUINT8, DT.DT_QINT16, DT.DT_QUINT16, DT.DT_QINT32, DT.DT_INT4, DT.DT_UINT4,
            DT.DT_INT2, DT.DT_UINT2,
        )
    },
    **{
        d: "float8_val"
        for d in (
            DT.DT_FLOAT8_E5M2, DT.DT_FLOAT8_E4M3FN, DT.DT_FLOAT8_E4M3FNUZ, DT.DT_FLOAT8_E4M3B11FNUZ,
            DT.DT_FLOAT8_E5M2FNUZ, DT.DT_FLOAT4_E2M1FN,
        )
    },
}  # fmt: skip

# Small float formats: (total bits, exponent bits, mantissa bits, bias, kind, ml_dtypes name).
# kind "ieee": all-ones exponent is inf/NaN; "fn": no inf, only all-ones is NaN; "fnuz": no inf,
# no negative zero, the "negative zero" pattern is the single NaN; "none": every code is finite.
_MINIFLOAT: dict[int, tuple[int, int, int, int, str, str]] = {
    DT.DT_FLOAT8_E5M2: (8, 5, 2, 15, "ieee", "float8_e5m2"),
    DT.DT_FLOAT8_E4M3FN: (8, 4, 3, 7, "fn", "float8_e4m3fn"),
    DT.DT_FLOAT8_E4M3FNUZ: (8, 4, 3, 8, "fnuz", "float8_e4m3fnuz"),
    DT.DT_FLOAT8_E4M3B11FNUZ: (8, 4, 3, 11, "fnuz", "float8_e4m3b11fnuz"),
    DT.DT_FLOAT8_E5M2FNUZ: (8, 5, 2, 16, "fnuz", "float8_e5m2fnuz"),
    DT.DT_FLOAT4_E2M1FN: (4, 2, 1, 1, "none", "float4_e2m1fn"),
}

# Signed sub-byte integers: dtype → bit width (stored in the low bits of one byte).
_SUBBYTE_INT: dict[int, tuple[int, bool]] = {
    DT.DT_INT4: (4, True),
    DT.DT_UINT4: (4, False),
    DT.DT_INT2: (2, True),
    DT.DT_UINT2: (2, False),
}


# The DataType values tensor_to_numpy tests for each tensor, as plain ints (``DT.DT_STRING`` is looked up by
# Python code in protobuf's enum wrapper: four such lookups cost more than decoding a small constant).
_DT_STRING = int(DT.DT_STRING)
_DT_HALF = int(DT.DT_HALF)
_DT_BFLOAT16 = int(DT.DT_BFLOAT16)
_COMPLEX = frozenset({int(DT.DT_COMPLEX64), int(DT.DT_COMPLEX128)})


def dtype_name(dtype: int) -> str:
    """TensorFlow's name for a DataType value (``DT_FLOAT``), or ``DT_<number>`` if unknown."""
    try:
        return DT.Name(dtype)
    except ValueError:
        return f"DT_{dtype}"


def _base_dtype(dtype: int) -> int:
    """Strip the legacy ``_REF`` flag (DT_FLOAT_REF → DT_FLOAT)."""
    return dtype - 100 if dtype > 100 else dtype


def dtype_to_numpy(dtype: int) -> np.dtype[Any]:
    """The numpy dtype of the arrays :func:`tensor_to_numpy` returns for a TF ``DataType``.

    ``_REF`` types map like their base type. Formats numpy lacks are widened exactly (bfloat16,
    float8 and float4 → float32; int4/int2 → int8; uint4/uint2 → uint8); strings are ``object``.
    Raises UnsupportedModelError for ``DT_RESOURCE``, ``DT_VARIANT`` and unknown values.
    """
    base = _base_dtype(dtype)
    try:
        return _RESULT_DTYPE[base]
    except KeyError:
        raise UnsupportedModelError(f"TensorFlow dtype {dtype_name(dtype)} has no numpy equivalent") from None


def _shape_of(tensor: pb.TensorProto) -> tuple[int, ...]:
    shape = tensor.tensor_shape
    dims = tuple([d.size for d in shape.dim])
    if shape.unknown_rank or (dims and min(dims) < 0):
        raise ModelLoadError(f"constant tensor has a shape that is not fully known: {list(dims)}")
    return dims


def _try_ml_dtypes() -> Any:
    try:
        import ml_dtypes  # optional: not a dependency of the transpiler
    except ImportError:
        return None
    return ml_dtypes


def _bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    ml_dtypes = _try_ml_dtypes()
    if ml_dtypes is not None:
        return bits.view(ml_dtypes.bfloat16).astype(np.float32)
    # bfloat16 is the high half of a float32: shifting the bits up is exact, NaNs included.
    return (bits.astype(np.uint32) << 16).view(np.float32)


@cache
def _minifloat_table(dtype: int) -> np.ndarray:
    """float32 value of every code of a small float format, indexed by the code."""
    bits, ebits, mbits, bias, kind, _ = _MINIFLOAT[dtype]
    table = np.empty(1 << bits, dtype=np.float32)
    emax = (1 << ebits) - 1
    for code in range(1 << bits):
        sign = -1.0 if code >> (bits - 1) else 1.0
        exp = (code >> mbits) & emax
        man = code & ((1 << mbits) - 1)
        if kind == "fnuz" and code == 1 << (bits - 1):
            value = math.nan
        elif kind == "ieee" and exp == emax:
            value = sign * math.inf if man == 0 else math.nan
        elif kind == "fn" and exp == emax and man == (1 << mbits) - 1:
            value = math.nan
        elif exp == 0:
            value = sign * man * 2.0 ** (1 - bias - mbits)
        else:
            value = sign * (1.0 + man / (1 << mbits)) * 2.0 ** (exp - bias)
        table[code] = value
    return table


def _decode_storage(dtype: int, raw: np.ndarray) -> np.ndarray:
    """Turn storage values (as read from tensor_content or a typed list) into result values."""
    if dtype == _DT_BFLOAT16:
        return _bfloat16_bits_to_float32(raw)
    if dtype == _DT_HALF:
        return np.ascontiguousarray(raw, dtype=np.uint16).view(np.float16)
    if dtype in _MINIFLOAT:
        mask = (1 << _MINIFLOAT[dtype][0]) - 1
        return _minifloat_table(dtype)[np.asarray(raw, dtype=np.uint8) & mask]
    if dtype in _SUBBYTE_INT:
        width, signed = _SUBBYTE_INT[dtype]
        low = np.asarray(raw, dtype=np.int64) & ((1 << width) - 1)
        if signed:
            low = np.where(low >= 1 << (width - 1), low - (1 << width), low)
        return low.astype(_RESULT_DTYPE[dtype])
    return raw


def _check_size(count: int, itemsize: int, dtype: int, shape: tuple[int, ...]) -> None:
    if count * max(itemsize, 1) > _MAX_BYTES:
        raise ModelLoadError(f"{dtype_name(dtype)} tensor {list(shape)}: {count} elements is implausibly large "
                             "(corrupt shape?)")


def _from_content(dtype: int, content: bytes, shape: tuple[int, ...], count: int) -> np.ndarray:
    if dtype == _DT_STRING:
        raise ModelLoadError("DT_STRING tensor uses tensor_content, which TensorFlow never writes")
    storage = _STORAGE_DTYPE[dtype]
    if len(content) != count * storage.itemsize:
        raise ModelLoadError(
            f"{dtype_name(dtype)} tensor of shape {list(shape)} needs {count * storage.itemsize} "
            f"bytes of tensor_content, found {len(content)}"
        )
    raw = np.frombuffer(content, dtype=storage)
    return _decode_storage(dtype, raw).astype(_RESULT_DTYPE[dtype], copy=False).reshape(shape)


def _from_list(dtype: int, tensor: pb.TensorProto, shape: tuple[int, ...], count: int) -> np.ndarray:
    field = _LIST_FIELD[dtype]
    result_dtype = _RESULT_DTYPE[dtype]
    if dtype == _DT_STRING:
        values: Any = list(tensor.string_val)
        out = np.empty(count, dtype=object)
        if count:
            n = len(values)
            out[: min(n, count)] = values[:count]
            out[n:] = values[-1] if n else b""
        return out.reshape(shape)

    if dtype in _COMPLEX:
        parts = np.asarray(getattr(tensor, field), dtype=np.float64)
        values = parts[: len(parts) // 2 * 2].reshape(-1, 2)
        values = (values[:, 0] + 1j * values[:, 1]).astype(result_dtype)
    elif field == "float8_val":
        values = _decode_storage(dtype, np.frombuffer(tensor.float8_val, dtype=np.uint8))
    elif dtype in (_DT_HALF, _DT_BFLOAT16):
        bits = np.asarray(tensor.half_val, dtype=np.int64).astype(np.uint16)
        values = _decode_storage(dtype, bits)
    elif dtype in _SUBBYTE_INT:
        values = _decode_storage(dtype, np.asarray(tensor.int_val, dtype=np.int64))
    elif field in ("float_val", "double_val", "bool_val"):
        values = np.asarray(getattr(tensor, field), dtype=result_dtype)
    else:  # integer lists: wrap like TensorFlow's static_cast does
        source = np.uint64 if field == "uint64_val" else np.int64
        values = np.asarray(getattr(tensor, field), dtype=source).astype(result_dtype)

    n = len(values)
    if n == count and values.dtype == result_dtype:  # a new array already (read from the list)
        return values.reshape(shape)
    if n >= count:
        return np.array(values[:count], dtype=result_dtype).reshape(shape)
    out = np.zeros(count, dtype=result_dtype)
    if n:
        out[:n] = values
        out[n:] = values[-1]
    return out.reshape(shape)


def tensor_to_numpy(tensor: pb.TensorProto) -> np.ndarray:
    """Decode a ``TensorProto`` into a new numpy array (see the module docstring for dtypes)."""
    dtype = int(tensor.dtype)
    if dtype not in _RESULT_DTYPE:
        raise UnsupportedModelError(
            f"cannot read a constant tensor of dtype {dtype_name(dtype)} (no numpy equivalent)"
        )
    shape = _shape_of(tensor)
    count = math.prod(shape)
    result_dtype = _RESULT_DTYPE[dtype]
    _check_size(count, result_dtype.itemsize, dtype, shape)
    content = tensor.tensor_content  # (each read of the field copies the bytes)
    if content:
        return _from_content(dtype, content, shape, count)
    return _from_list(dtype, tensor, shape, count)


# numpy dtype → DataType, for numpy_to_tensor. ml_dtypes types are matched by name.
_NUMPY_TO_DT: dict[np.dtype[Any], int] = {
    np.dtype(np.float32): DT.DT_FLOAT,
    np.dtype(np.float64): DT.DT_DOUBLE,
    np.dtype(np.float16): DT.DT_HALF,
    np.dtype(np.int8): DT.DT_INT8,
    np.dtype(np.int16): DT.DT_INT16,
    np.dtype(np.int32): DT.DT_INT32,
    np.dtype(np.int64): DT.DT_INT64,
    np.dtype(np.uint8): DT.DT_UINT8,
    np.dtype(np.uint16): DT.DT_UINT16,
    np.dtype(np.uint32): DT.DT_UINT32,
    np.dtype(np.uint64): DT.DT_UINT64,
    np.dtype(np.bool_): DT.DT_BOOL,
    np.dtype(np.complex64): DT.DT_COMPLEX64,
    np.dtype(np.complex128): DT.DT_COMPLEX128,
}
_ML_DTYPES_TO_DT: dict[str, int] = {
    "bfloat16": DT.DT_BFLOAT16,
    "int4": DT.DT_INT4,
    "uint4": DT.DT_UINT4,
    "int2": DT.DT_INT2,
    "uint2": DT.DT_UINT2,
    **{spec[5]: dt for dt, spec in _MINIFLOAT.items()},
}


def numpy_to_tensor(array: Any) -> pb.TensorProto:
    """Encode an array as a ``TensorProto`` the way TensorFlow does for large constants.

    Numeric and bool arrays go to ``tensor_content`` (little-endian); ``bytes``/``str``/object
    arrays become ``DT_STRING`` with one ``string_val`` per element (str is UTF-8 encoded).
    ml_dtypes arrays (bfloat16, float8, int4...) are stored as their raw element bytes.
    """
    arr = np.asarray(array)
    proto = pb.TensorProto()
    for size in arr.shape:
        proto.tensor_shape.dim.add().size = int(size)

    if arr.dtype.kind in "OSU":
        proto.dtype = DT.DT_STRING
        for item in arr.reshape(-1).tolist():
            proto.string_val.append(item.encode("utf-8") if isinstance(item, str) else bytes(item))
        return proto

    if arr.dtype.name in _ML_DTYPES_TO_DT:
        proto.dtype = _ML_DTYPES_TO_DT[arr.dtype.name]  # type: ignore[assignment]
        proto.tensor_content = np.ascontiguousarray(arr).tobytes()
        return proto

    key = arr.dtype.newbyteorder("=")
    if key not in _NUMPY_TO_DT:
        raise UnsupportedModelError(f"cannot store a numpy array of dtype {arr.dtype} in a TensorProto")
    proto.dtype = _NUMPY_TO_DT[key]  # type: ignore[assignment]
    proto.tensor_content = np.ascontiguousarray(arr, dtype=key.newbyteorder("<")).tobytes()
    return proto
