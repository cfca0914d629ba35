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
the inner checksum does; it is verified for every tensor read (by Google's CRC32C library, or, without it,
for all numeric tensors together at the first read, with numpy: ``crc32c_many``).
:meth:`Checkpoint.read_content` hands out a numeric tensor's verified bytes as they are, which is what a
``TensorProto``'s ``tensor_content`` holds (no decoding for a SavedModel's frozen weights). Any mismatch, a
missing shard, or
an entry pointing past a shard's end raises :class:`~transpiler.errors.ModelLoadError` naming the
file. A tensor stored in slices (a partitioned variable, or one split by a shard-size policy)
lists them in its entry; each slice is a tensor of its own under an encoded key (:func:`slice_key`),
and reading the tensor assembles them.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar

import numpy as np
from google.protobuf.message import Message

from transpiler.errors import ModelLoadError, UnsupportedModelError
from transpiler.frontends.tf.crc32c import NATIVE, crc32c, crc32c_many, unmask
from transpiler.frontends.tf.proto import saved_model_pb2, tf_graph_pb2
from transpiler.frontends.tf.sstable import read_table

__all__ = ["Checkpoint", "TensorEntry", "slice_key"]

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
    # For a tensor stored in slices (a partitioned variable, or one split by a shard-size policy): per
    # slice, (start, length) per dimension, length None for the whole dimension.
    slices: tuple[tuple[tuple[int, int | None], ...], ...] = ()

    @property
    def sliced(self) -> bool:
        return bool(self.slices)


class Checkpoint:
    """The tensors of a checkpoint bundle, read and checked on demand (:meth:`read`)."""

    def __init__(self, prefix: str | os.PathLike[str]) -> None:
        self._files: dict[int, tuple[BinaryIO, int]] = {}  # open shards and their sizes, for ranged reads
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
        self._slice_entries: dict[bytes, TensorEntry] = {}  # by encoded slice key
        for raw_key, value in table.items():
            key = raw_key.decode("utf-8", "replace")
            entry = self._parse(saved_model_pb2.BundleEntryProto, value, f"the entry of '{key}'")
            if not 0 <= entry.shard_id < self.num_shards:
                raise ModelLoadError(f"checkpoint index '{self.index_path}': '{key}' is in shard "
                                     f"{entry.shard_id}, but there are {self.num_shards}")
            shape = tuple(int(d.size) for d in entry.shape.dim)
            slices = tuple(tuple((int(e.start), int(e.length) if e.HasField("length") else None) for e in s.extent)
                           for s in entry.slices)
            item = TensorEntry(key, entry.dtype, shape, entry.shard_id, entry.offset, entry.size, entry.crc32c,
                               slices)
            if raw_key.startswith(b"\x00"):  # one slice of a sliced tensor, under an encoded key
                self._slice_entries[raw_key] = item
            else:
                self.entries[key] = item
        self._shards: dict[int, bytes] = {}  # whole shards (the numpy CRC path reads every numeric tensor)
        self._numeric_crcs: dict[int, int] | None = None  # id(entry) → CRC-32C of its bytes (numeric entries)

    def _parse(self, cls: type[_M], data: bytes, what: str) -> _M:
        message = cls()
        try:
            message.ParseFromString(data)
        except Exception:
            raise ModelLoadError(f"checkpoint index '{self.index_path}': cannot decode {what}") from None
        return message

    def shard_path(self, shard: int) -> Path:
        return Path(self._shard_name(shard))

    def _shard_name(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

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

    def _shard_file(self, shard: int) -> tuple[BinaryIO, int]:
        found = self._files.get(shard)
        if found is None:
            path = self.shard_path(shard)
            try:
                file = path.open("rb")  # buffered: read(n) returns n bytes unless the file ends
                found = self._files[shard] = (file, os.fstat(file.fileno()).st_size)
            except OSError as exc:
                raise ModelLoadError(f"checkpoint data file '{path}' cannot be read "
                                     f"({exc.strerror or exc})") from None
        return found

    def close(self) -> None:
        """Close the shard files held open for reading (also done when the checkpoint is collected)."""
        files, self._files = self._files, {}
        for file, _ in files.values():
            file.close()

    def __del__(self) -> None:
        self.close()

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def read(self, key: str) -> np.ndarray:
        """The tensor stored under ``key`` (strings as an object array of bytes), its CRC verified."""
        entry = self.entries.get(key)
        if entry is None:
            raise ModelLoadError(f"checkpoint '{self.index_path}' has no tensor '{key}'")
        if entry.sliced:
            return self._assemble(entry)
        return self._read_entry(entry)

    def _assemble(self, entry: TensorEntry) -> np.ndarray:
        """A sliced tensor: each slice is a tensor of its own under an encoded key; they tile the whole."""
        parts = []
        covered = 0
        for extents in entry.slices:
            if len(extents) != len(entry.shape):
                raise ModelLoadError(f"checkpoint index '{self.index_path}': a slice of '{entry.key}' has "
                                     f"{len(extents)} dimensions, the tensor {len(entry.shape)}")
            part = self._slice_entries.get(slice_key(entry.key, extents))
            if part is None:
                raise ModelLoadError(f"checkpoint index '{self.index_path}': slice {list(extents)} of "
                                     f"'{entry.key}' is missing")
            index = tuple(slice(start, None if length is None else start + length) for start, length in extents)
            parts.append((index, self._read_entry(part)))
            covered += int(np.prod(part.shape, dtype=np.int64))
        if covered != int(np.prod(entry.shape, dtype=np.int64)) or entry.dtype == tf_graph_pb2.DT_STRING:
            raise UnsupportedModelError(f"checkpoint '{self.index_path}': the slices of '{entry.key}' do not tile "
                                        "it exactly (or hold strings); not supported")
        full = np.empty(entry.shape, dtype=parts[0][1].dtype)
        for index, value in parts:
            if full[index].shape != value.shape:
                raise ModelLoadError(f"checkpoint index '{self.index_path}': a slice of '{entry.key}' does not "
                                     "fit its place")
            full[index] = value
        return full

    def read_content(self, key: str) -> tuple[bytes, int, tuple[int, ...]] | None:
        """The little-endian element bytes (``TensorProto.tensor_content``), DataType and shape of the numeric
        tensor ``key``, its CRC verified, without decoding it; None where that is not how it is stored
        (strings, sliced tensors, big-endian bundles, dtypes :meth:`read` refuses), for :meth:`read` to handle."""
        entry = self.entries.get(key)
        if entry is None or entry.sliced or self.byte_order != "<" or entry.dtype not in _NUMPY:
            return None
        raw = self._entry_bytes(entry)
        count = math.prod(entry.shape)
        if len(raw) != count * _NUMPY[entry.dtype].itemsize:
            return None  # read() names the mismatch
        if self._numeric_crc(entry, raw) != unmask(entry.crc32c):
            raise self._corrupt(entry)
        return raw, entry.dtype, entry.shape

    def _corrupt(self, entry: TensorEntry) -> ModelLoadError:
        return ModelLoadError(f"checkpoint data file '{self.shard_path(entry.shard)}': checksum mismatch for "
                              f"'{entry.key}' (the file is corrupt)")

    def _entry_bytes(self, entry: TensorEntry) -> bytes:
        """The stored bytes of ``entry``: only its range of the shard is read (a Keras 3 export stores every
        variable twice; a MobileNetV2 conversion read 28 MB for 14)."""
        file, size = self._shard_file(entry.shard)
        path = self._shard_name(entry.shard)  # (a Path per tensor cost more than reading it)
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > size:
            raise ModelLoadError(f"checkpoint data file '{path}': '{entry.key}' lies at bytes "
                                 f"{entry.offset}..{entry.offset + entry.size}, past the end of the file "
                                 f"({size} bytes; truncated?)")
        whole = self._shards.get(entry.shard)
        if whole is not None:
            return whole[entry.offset : entry.offset + entry.size]
        try:
            file.seek(entry.offset)
            data = file.read(entry.size)
        except OSError as exc:
            raise ModelLoadError(f"checkpoint data file '{path}' cannot be read ({exc.strerror or exc})") from None
        if len(data) != entry.size:  # the file shrank after it was opened
            raise ModelLoadError(f"checkpoint data file '{path}': '{entry.key}' lies at bytes "
                                 f"{entry.offset}..{entry.offset + entry.size}, past the end of the file (truncated "
                                 "while being read?)")
        return data

    def _read_entry(self, entry: TensorEntry) -> np.ndarray:
        key = entry.key
        path = self.shard_path(entry.shard)
        raw = self._entry_bytes(entry)
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
            crc = self._numeric_crc(entry, raw)
            values = np.frombuffer(raw, dtype=dtype.newbyteorder(self.byte_order)).astype(dtype)
        if crc != unmask(entry.crc32c):
            raise self._corrupt(entry)
        return values.reshape(entry.shape)

    def _numeric_crc(self, entry: TensorEntry, raw: bytes) -> int:
        """The CRC of a numeric entry's bytes (with numpy: all numeric entries' at once, on the first call)."""
        if NATIVE:
            return crc32c(raw)
        if self._numeric_crcs is None:
            batch: list[tuple[int, memoryview]] = []  # (id of the entry, its bytes)
            for e in [*self.entries.values(), *self._slice_entries.values()]:
                if e.sliced or e.dtype == tf_graph_pb2.DT_STRING or e.offset < 0 or e.size < 0:
                    continue
                try:
                    data = self._shard(e.shard)
                except ModelLoadError:
                    continue  # reported when (if) that tensor is read
                if e.offset + e.size <= len(data):
                    batch.append((id(e), memoryview(data)[e.offset : e.offset + e.size]))
            crcs = crc32c_many([b for _, b in batch])
            self._numeric_crcs = {key: crc for (key, _), crc in zip(batch, crcs, strict=True)}
        crc = self._numeric_crcs.get(id(entry))
        return crc32c(raw) if crc is None else crc

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


# ---------------------------------------------------------------------------------------------
# Keys of tensor slices. A slice of tensor NAME is stored under
#   num(0) + string(NAME) + num(rank) + per dimension: signed(start) + signed(length)
# in TensorFlow's "ordered code" (byte strings that sort like the values they encode), with
# length -1 for a whole dimension:
#   num(n):    one byte holding how many bytes follow, then n big-endian without leading zeros;
#   string(s): s with 0x00 written as 00 FF and 0xFF as FF 00, then 00 01;
#   signed(v): v as a k-byte two's complement number whose first k bits are flipped (k leading ones
#              for v >= 0, zeros for v < 0, both followed by v's sign bit), k the fewest bytes with
#              |v| (or ~v) < 2**(7k - 1).
# ---------------------------------------------------------------------------------------------


def _ordered_num(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def _ordered_string(s: bytes) -> bytes:
    escaped = b"".join(b"\x00\xff" if c == 0 else b"\xff\x00" if c == 0xFF else bytes([c]) for c in s)
    return escaped + b"\x00\x01"


def _ordered_signed(v: int) -> bytes:
    magnitude = ~v if v < 0 else v
    k = 1
    while magnitude >= 1 << (7 * k - 1):
        k += 1
    bits = 8 * k
    header = ((1 << k) - 1) << (bits - k)
    return ((v & ((1 << bits) - 1)) ^ header).to_bytes(k, "big")


def slice_key(name: str, extents: tuple[tuple[int, int | None], ...]) -> bytes:
    """The index key of one slice of tensor ``name`` ((start, length or None) per dimension)."""
    out = [_ordered_num(0), _ordered_string(name.encode("utf-8")), _ordered_num(len(extents))]
    for start, length in extents:
        out += [_ordered_signed(start if length is not None else 0), _ordered_signed(-1 if length is None else length)]
    return b"".join(out)
