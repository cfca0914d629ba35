"""Read a TensorFlow checkpoint (tensor bundle, format V2) without TensorFlow.

A checkpoint with prefix ``P`` (a SavedModel's is ``variables/variables``) is:

* ``P.index``: a LevelDB table (:mod:`sstable`) mapping each checkpoint key to a
  ``BundleEntryProto`` (dtype, shape, shard_id, offset, size, masked crc32c); the empty key holds the
  ``BundleHeaderProto`` (number of shards, byte order);
* ``P.data-SSSSS-of-NNNNN``: the shards; a tensor is bytes ``[offset, offset + size)`` of shard
  ``shard_id``.

Numeric tensors are stored as their raw elements in the header's byte order. A string tensor of
``n`` elements is ``n`` varint64 lengths, then a 4-byte masked CRC-32C of the lengths (each taken
as a little-endian uint32), then the strings' bytes back to back. The entry's CRC-32C covers the
stored bytes, except that for strings the lengths enter it as those uint32 values, exactly as
the inner checksum does; it is verified for every tensor read. Any mismatch, a missing shard, or
an entry pointing past a shard's end raises :class:`~transpiler.errors.ModelLoadError` naming the
file. Tensors stored in slices (partitioned variables; their slices sit under keys that start with
a 0 byte) are refused when read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from google.protobuf.message import Message

from transpiler.errors import ModelLoadError, UnsupportedModelError
from transpiler.frontends.tf.crc32c import crc32c, unmask
from transpiler.frontends.tf.proto import saved_model_pb2, tf_graph_pb2
from transpiler.frontends.tf.sstable import read_table

__all__ = ["Checkpoint", "TensorEntry"]

_M = TypeVar("_M", bound=Message)

# Element types a bundle can hold that conversion may need (DataType enum → numpy).
_NUMPY: dict[int, np.dtype] = {
    tf_graph_pb2.DT_FLOAT: np.dtype(np.float32), tf_graph_pb2.DT_DOUBLE: np.dtype(np.float64),
    tf_graph_pb2.DT_HALF: np.dtype(np.float16), tf_graph_pb2.DT_INT8: np.dtype(np.int8),
    tf_graph_pb2.DT_INT16: np.dtype(np.int16), tf_graph_pb2.DT_INT32: np.dtype(np.int32),
    tf_graph_pb2.DT_INT64: np.dtype(np.int64), tf_graph_pb2.DT_UINT8: np.dtype(np.uint8),
    tf_graph_pb2.DT_UINT16: np.dtype(np.uint16), tf_graph_pb2.DT_UINT32: np.dtype(np.uint32),
    tf_graph_pb2.DT_UINT64: np.dtype(np.uint64), tf_graph_pb2.DT_BOOL: np.dtype(np.bool_),
    tf_graph_pb2.DT_COMPLEX64: np.dtype(np.complex64), tf_graph_pb2.DT_COMPLEX128: np.dtype(np.complex128),
}  # fmt: skip


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: its dtype (DataType enum), shape and bytes in a shard."""

    key: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # masked
    sliced: bool = False  # stored in slices under other keys (a partitioned or size-sharded variable)


class Checkpoint:
    """The tensors of a checkpoint bundle, read and checked on demand (:meth:`read`)."""

    def __init__(self, prefix: str | os.PathLike[str]) -> None:
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise ModelLoadError(f"checkpoint index '{self.index_path}' is missing")
        table = read_table(self.index_path)
        header_bytes = table.pop(b"", None)
        if header_bytes is None:
            raise ModelLoadError(f"checkpoint index '{self.index_path}': no bundle header (empty key)")
        header = self._parse(saved_model_pb2.BundleHeaderProto, header_bytes, "the bundle header")
        if header.num_shards < 1:
            raise ModelLoadError(f"checkpoint index '{self.index_path}': bundle header says "
                                 f"{header.num_shards} shards")
        self.num_shards = header.num_shards
        self.byte_order: Literal["<", ">"] = ">" if header.endianness == saved_model_pb2.BundleHeaderProto.BIG else "<"
        self.entries: dict[str, TensorEntry] = {}
        for raw_key, value in table.items():
            key = raw_key.decode("utf-8", "replace")
            entry = self._parse(saved_model_pb2.BundleEntryProto, value, f"the entry of '{key}'")
            if raw_key.startswith(b"\x00"):
                continue  # one slice of a partitioned tensor (an encoded name); see `sliced`
            if not 0 <= entry.shard_id < self.num_shards:
                raise ModelLoadError(f"checkpoint index '{self.index_path}': '{key}' is in shard "
                                     f"{entry.shard_id}, but there are {self.num_shards}")
            shape = tuple(int(d.size) for d in entry.shape.dim)
            self.entries[key] = TensorEntry(key, entry.dtype, shape, entry.shard_id, entry.offset, entry.size,
                                            entry.crc32c, bool(entry.slices))
        self._shards: dict[int, bytes] = {}

    def _parse(self, cls: type[_M], data: bytes, what: str) -> _M:
        message = cls()
        try:
            message.ParseFromString(data)
        except Exception:
            raise ModelLoadError(f"checkpoint index '{self.index_path}': cannot decode {what}") from None
        return message

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _shard(self, shard: int) -> bytes:
        data = self._shards.get(shard)
        if data is None:
            path = self.shard_path(shard)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ModelLoadError(f"checkpoint data file '{path}' cannot be read "
                                     f"({exc.strerror or exc})") from None
            self._shards[shard] = data
        return data

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def read(self, key: str) -> np.ndarray:
        """The tensor stored under ``key`` (strings as an object array of bytes), its CRC verified."""
        entry = self.entries.get(key)
        if entry is None:
            raise ModelLoadError(f"checkpoint '{self.index_path}' has no tensor '{key}'")
        if entry.sliced:
            raise UnsupportedModelError(f"checkpoint '{self.index_path}': '{key}' is stored in slices (a "
                                        "partitioned variable, or one split by a shard-size policy), which is not "
                                        "supported")
        data = self._shard(entry.shard)
        path = self.shard_path(entry.shard)
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > len(data):
            raise ModelLoadError(f"checkpoint data file '{path}': '{key}' lies at bytes "
                                 f"{entry.offset}..{entry.offset + entry.size}, past the end of the file "
                                 f"({len(data)} bytes; truncated?)")
        raw = data[entry.offset : entry.offset + entry.size]
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.dtype == tf_graph_pb2.DT_STRING:
            values, crc = self._strings(raw, count, key, path)
        else:
            dtype = _NUMPY.get(entry.dtype)
            if dtype is None:
                name = tf_graph_pb2.DataType.Name(entry.dtype) if entry.dtype in tf_graph_pb2.DataType.values() \
                    else str(entry.dtype)
                raise UnsupportedModelError(f"checkpoint '{self.index_path}': '{key}' has dtype {name}, "
                                            "which is not supported")
            if len(raw) != count * dtype.itemsize:
                raise ModelLoadError(f"checkpoint index '{self.index_path}': '{key}' holds {len(raw)} bytes, "
                                     f"but {count} elements of {dtype} need {count * dtype.itemsize}")
            crc = crc32c(raw)
            values = np.frombuffer(raw, dtype=dtype.newbyteorder(self.byte_order)).astype(dtype)
        if crc != unmask(entry.crc32c):
            raise ModelLoadError(f"checkpoint data file '{path}': checksum mismatch for '{key}' "
                                 "(the file is corrupt)")
        return values.reshape(entry.shape)

    def _strings(self, raw: bytes, count: int, key: str, path: Path) -> tuple[np.ndarray, int]:
        def bad(why: str) -> ModelLoadError:
            return ModelLoadError(f"checkpoint data file '{path}': string tensor '{key}' {why} (the file is "
                                  "corrupt)")

        lengths: list[int] = []
        pos = 0
        for _ in range(count):
            value = shift = 0
            while True:
                if pos >= len(raw) or shift > 63:
                    raise bad("has a cut-off length")
                byte = raw[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            lengths.append(value)
        # The checksums see each length as a uint32, not as the varint that is stored.
        crc = crc32c(b"".join(struct.pack("<I", n & 0xFFFFFFFF) for n in lengths))
        if pos + 4 > len(raw):  # the length checksum is there even for no strings
            raise bad("is cut short")
        (stored,) = struct.unpack_from("<I", raw, pos)
        if unmask(stored) != crc:
            raise bad("has a wrong length checksum")
        crc = crc32c(raw[pos : pos + 4], crc)
        pos += 4
        if pos + sum(lengths) != len(raw):
            raise bad(f"holds {len(raw)} bytes, its lengths say {pos + sum(lengths)}")
        crc = crc32c(raw[pos:], crc)
        values = np.empty(count, dtype=object)
        for i, n in enumerate(lengths):
            values[i] = raw[pos : pos + n]
            pos += n
        return values, crc
