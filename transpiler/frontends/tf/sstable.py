"""Read a LevelDB-format table (SSTable), the format of a checkpoint's ``variables.index``.

Layout (all integers little-endian; varints are LEB128):

* the file ends with a 48-byte **footer**: the metaindex block handle and the index block handle
  (a handle is ``varint64 offset, varint64 size``), zero padding to 40 bytes, then the 8-byte
  magic number 0xdb4775248b80fb57;
* every **block** is followed by a 5-byte trailer: a compression type (0 = none) and the masked
  CRC-32C of the block contents plus that type byte;
* a block holds entries ``varint32 shared, varint32 non_shared, varint32 value_length,
  key[shared:] (non_shared bytes), value``: a key repeats the first ``shared`` bytes of the
  previous key. The block ends with the restart offsets (uint32 each; entries there have
  ``shared = 0``) and their count (uint32);
* the **index** block maps, for each data block, a key ≥ its last key to the data block's handle.

:func:`read_table` checks every CRC, the footer, and that keys ascend; any problem raises
:class:`~transpiler.errors.ModelLoadError` naming the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from transpiler.errors import ModelLoadError
from transpiler.frontends.tf.crc32c import crc32c, unmask

__all__ = ["TABLE_MAGIC", "read_table", "read_varint"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_TRAILER_SIZE = 5
_COMPRESSION_NAMES = {1: "snappy", 2: "zlib"}


class _Corrupt(Exception):
    """Internal: a reason, wrapped with the file name by read_table."""


def read_varint(data: bytes, pos: int, limit: int | None = None) -> tuple[int, int]:
    """Decode a LEB128 varint at ``pos``; return (value, position after it)."""
    end = len(data) if limit is None else limit
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Corrupt("a varint runs past the end of its block")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _handle(data: bytes, pos: int, limit: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(data, pos, limit)
    size, pos = read_varint(data, pos, limit)
    return (offset, size), pos


def _block(data: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    if offset + size + _TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise _Corrupt(f"the {what} block at byte {offset} ({size} bytes) lies past the end of the file "
                       "(truncated?)")
    contents = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if unmask(stored) != crc32c(data[offset : offset + size + 1]):
        raise _Corrupt(f"checksum mismatch in the {what} block at byte {offset} (the file is corrupt)")
    if kind != 0:
        name = _COMPRESSION_NAMES.get(kind, f"type {kind}")
        raise _Corrupt(f"the {what} block at byte {offset} is {name}-compressed; only uncompressed tables "
                       "(what TensorFlow writes) are supported")
    return contents


def _entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt(f"the {what} block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    if restarts == 0 or end < 0:
        raise _Corrupt(f"the {what} block has a bad restart count ({restarts})")
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = read_varint(block, pos, end)
        unshared, pos = read_varint(block, pos, end)
        length, pos = read_varint(block, pos, end)
        if shared > len(key) or pos + unshared + length > end:
            raise _Corrupt(f"an entry of the {what} block runs past its end")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + length]))
        pos += length
    return out


def _parse(data: bytes) -> dict[bytes, bytes]:
    if len(data) < FOOTER_SIZE:
        raise _Corrupt(f"{len(data)} bytes, shorter than a table footer (truncated?)")
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != TABLE_MAGIC:
        raise _Corrupt(f"bad magic number 0x{magic:016x} at the end (expected 0x{TABLE_MAGIC:016x}); "
                       "the file is truncated or not a checkpoint index")
    footer_end = len(data) - 8
    _metaindex, pos = _handle(data, len(data) - FOOTER_SIZE, footer_end)
    index_handle, _ = _handle(data, pos, footer_end)
    table: dict[bytes, bytes] = {}
    last: bytes | None = None
    for _, value in _entries(_block(data, index_handle, "index"), "index"):
        handle, _ = _handle(value, 0, len(value))
        for key, item in _entries(_block(data, handle, "data"), "data"):
            if last is not None and key <= last:
                raise _Corrupt(f"keys out of order at {key!r} (the file is corrupt)")
            table[key] = item
            last = key
    return table


def read_table(path: str | os.PathLike[str]) -> dict[bytes, bytes]:
    """All key → value pairs of the table at ``path``, in key order, every block checksum verified."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read checkpoint index '{os.fspath(path)}': {exc.strerror or exc}") from None
    try:
        return _parse(data)
    except _Corrupt as exc:
        raise ModelLoadError(f"checkpoint index '{os.fspath(path)}': {exc}") from None
