"""Element types of IR values: a small closed enum, mapped to and from numpy.

The IR never stores dtypes as strings. Frontends map their own type codes onto :class:`DType`;
backends ask :attr:`DType.numpy` for the numpy dtype of constants.
"""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    """Element type of an IR value."""

    FLOAT32 = "f32"
    FLOAT16 = "f16"
    BFLOAT16 = "bf16"
    FLOAT64 = "f64"
    INT8 = "i8"
    INT16 = "i16"
    INT32 = "i32"
    INT64 = "i64"
    UINT8 = "u8"
    UINT16 = "u16"
    UINT32 = "u32"
    UINT64 = "u64"
    BOOL = "bool"
    STRING = "str"
    COMPLEX64 = "c64"
    COMPLEX128 = "c128"

    @property
    def short(self) -> str:
        """Short spelling used by the IR printer (``f32``)."""
        return self.value

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype holding values of this type (bfloat16 widens to float32)."""
        return np.dtype(_TO_NUMPY[self])

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT16, DType.BFLOAT16, DType.FLOAT32, DType.FLOAT64)

    @staticmethod
    def from_numpy(dtype: np.dtype | type) -> DType:
        """The IR type of a numpy dtype; raises ``KeyError`` for types the IR has no name for."""
        kind = np.dtype(dtype)
        if kind.kind in ("S", "U", "O"):
            return DType.STRING
        return _FROM_NUMPY[kind]


_TO_NUMPY: dict[DType, type] = {
    DType.FLOAT32: np.float32,
    DType.FLOAT16: np.float16,
    DType.BFLOAT16: np.float32,
    DType.FLOAT64: np.float64,
    DType.INT8: np.int8,
    DType.INT16: np.int16,
    DType.INT32: np.int32,
    DType.INT64: np.int64,
    DType.UINT8: np.uint8,
    DType.UINT16: np.uint16,
    DType.UINT32: np.uint32,
    DType.UINT64: np.uint64,
    DType.BOOL: np.bool_,
    DType.STRING: object,
    DType.COMPLEX64: np.complex64,
    DType.COMPLEX128: np.complex128,
}

_FROM_NUMPY: dict[np.dtype, DType] = {
    np.dtype(v): k for k, v in _TO_NUMPY.items() if k not in (DType.BFLOAT16, DType.STRING)
}
