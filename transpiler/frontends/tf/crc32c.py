"""CRC-32C (Castagnoli), as TensorFlow checkpoints and LevelDB tables use it.

Computed by Google's CRC32C library (``google-crc32c``, the CPU's CRC32 instruction: ~10 GB/s) where
its compiled extension is installed (:data:`NATIVE`), else by the numpy implementation below (~150 MB/s),
which the tests check against it.

The checksum is the reflected CRC with polynomial 0x82F63B78, initial state 0xFFFFFFFF and final
xor 0xFFFFFFFF. Per byte ``b`` the state ``s`` advances as ``s' = T[(s ^ b) & 0xFF] ^ (s >> 8)``,
with ``T`` the 256-entry table of the polynomial.

Two bytes at once: with ``w`` the two bytes as a little-endian 16-bit number,
``s' = T2[(s ^ w) & 0xFFFF] ^ (s >> 16)``, where ``T2[v]`` is two byte steps from state ``v`` over
zero bytes (a 65536-entry table).

The recurrence is linear over GF(2): running it from state ``s`` over bytes ``D`` gives
``Z_n(s) ^ R(D)``, where ``R(D)`` is the run from state 0 and ``Z_n`` is the run of ``n = len(D)``
zero bytes (a linear map on 32-bit states). So a long input is cut into ``C`` equal chunks whose
``R`` values numpy computes side by side (one vectorised ``T2`` step per 2-byte position), and the
chunks are chained with ``s <- Z_L(s) ^ R(chunk)``; ``Z_L`` is applied through four 256-entry
tables, one per state byte. The 14 MB of a MobileNetV2 checkpoint check in ~0.1 s this way, in ~1.5 ms
by the native library (``bench/bench_saved_model_read.py``).

Many buffers at once (``crc32c_many``, how a checkpoint's tensors are verified): for a reflected CRC,
starting from state ``0xFFFFFFFF`` is the same as starting from ``0`` with the first four bytes inverted;
and from state ``0`` leading zero bytes change nothing. So each buffer (first four bytes inverted) is
left-padded with zeros to a multiple of one fixed block length ``L``; every block of every buffer goes
through the same vectorised ``T2`` steps side by side, and each buffer's blocks are chained from 0 with
the one ``Z_L``, computed once.

Storage formats keep a *masked* CRC, so that a CRC of data that itself holds CRCs stays
well-distributed: ``mask(c) = rotr32(c, 15) + 0xA282EAD8 (mod 2**32)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NATIVE", "crc32c", "crc32c_many", "mask", "numpy_crc32c", "unmask"]

try:  # only its compiled extension: the package's pure-Python fallback is slower than numpy
    from google_crc32c import _crc32c as _native  # type: ignore[import-not-found,import-untyped,unused-ignore]
except ImportError:
    _native = None
NATIVE: bool = _native is not None

_POLY = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
    return table


_TABLE = _make_table()
_table16_cache: list[np.ndarray] = []


def _table16() -> np.ndarray:
    """``T2`` (made on first use: only the numpy path needs it)."""
    if not _table16_cache:
        states = _TABLE[np.arange(65536, dtype=np.uint32) & 0xFF] ^ (np.arange(65536, dtype=np.uint32) >> 8)
        _table16_cache.append((_TABLE[states & 0xFF] ^ (states >> 8)).astype(np.uint32))
    return _table16_cache[0]


_TABLE_LIST: list[int] = [int(v) for v in _TABLE]
# Below this size the plain byte loop is faster than setting up the vectorised chunks.
_SMALL = 4096
_zero_run_tables: dict[int, list[list[int]]] = {}


def _run_bytes(state: int, data: bytes | memoryview) -> int:
    """The recurrence over ``data`` from ``state`` (no initial or final xor), one byte at a time."""
    table = _TABLE_LIST
    for b in bytes(data):
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _zero_run(length: int) -> list[list[int]]:
    """Four tables ``Z[k][v] = Z_length(v << 8k)``: ``Z_length(s)`` is the xor over the 4 bytes of ``s``."""
    cached = _zero_run_tables.get(length)
    if cached is not None:
        return cached
    # Images of the 32 basis states, advanced together over `length` zero bytes.
    states = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
    for _ in range(length):
        states = _TABLE[states & 0xFF] ^ (states >> 8)
    basis = [int(v) for v in states]
    tables: list[list[int]] = []
    for k in range(4):
        row = [0] * 256
        for v in range(1, 256):
            low = v & -v  # lowest set bit: row[v] = row[v without it] ^ image of that bit
            row[v] = row[v ^ low] ^ basis[8 * k + low.bit_length() - 1]
        tables.append(row)
    if len(_zero_run_tables) < 64:
        _zero_run_tables[length] = tables
    return tables


def _run_vectorised(state: int, data: np.ndarray) -> int:
    n = data.size
    chunks = max(1, int(np.sqrt(n * 15)))  # balances numpy steps (n/C of them) against C chains
    length = (n // chunks) & ~1  # even: the chunks are read two bytes at a time
    # row j: bytes 2j, 2j+1 of every chunk, as little-endian 16-bit words
    body = data[: chunks * length].reshape(chunks, length).view("<u2").T.copy()
    parts = np.zeros(chunks, dtype=np.uint32)
    table = _table16()
    for row in body:
        parts = table[(parts ^ row) & 0xFFFF] ^ (parts >> 16)
    z0, z1, z2, z3 = _zero_run(length)
    for part in parts.tolist():
        state = z0[state & 0xFF] ^ z1[(state >> 8) & 0xFF] ^ z2[(state >> 16) & 0xFF] ^ z3[state >> 24] ^ part
    return _run_bytes(state, data[chunks * length :].tobytes())


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """CRC-32C of ``data``; ``crc`` continues a previous result (``crc32c(a + b) == crc32c(b, crc32c(a))``)."""
    if _native is not None:
        return int(_native.extend(crc, data if isinstance(data, bytes) else _as_bytes(data)))
    return numpy_crc32c(data, crc)


def numpy_crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """:func:`crc32c` computed with numpy (whether or not the native library is there)."""
    state = (crc ^ _U32) & _U32
    if isinstance(data, np.ndarray):
        array = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    else:
        array = np.frombuffer(data, dtype=np.uint8)
    state = _run_bytes(state, array.tobytes()) if array.size < _SMALL else _run_vectorised(state, array)
    return state ^ _U32


def _as_bytes(data: bytearray | memoryview | np.ndarray) -> bytes:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).tobytes()
    return bytes(data)


_BLOCK = 1024  # bytes per block in crc32c_many: 512 numpy steps, whatever the sizes


def crc32c_many(buffers: list[bytes | memoryview]) -> list[int]:
    """``[numpy_crc32c(b) for b in buffers]``, all buffers side by side (the fallback's way to check every
    tensor of a checkpoint at once; with the native library each tensor is checked as it is read)."""
    results = [0] * len(buffers)
    owners: list[tuple[int, int]] = []  # (buffer index, number of blocks)
    for i, buffer in enumerate(buffers):
        size = len(buffer)
        if size < 4:
            results[i] = _run_bytes(_U32, bytes(buffer)) ^ _U32
        else:
            owners.append((i, -(-size // _BLOCK)))
    if not owners:
        return results
    padded = np.zeros(sum(count for _, count in owners) * _BLOCK, dtype=np.uint8)
    end = 0
    for i, count in owners:
        end += count * _BLOCK
        data = np.frombuffer(buffers[i], dtype=np.uint8)
        padded[end - data.size : end] = data
        padded[end - data.size : end - data.size + 4] ^= 0xFF  # the initial state 0xFFFFFFFF
    # column b: block b of all buffers; row j: its bytes 2j, 2j+1 as a little-endian 16-bit word
    body = padded.reshape(-1, _BLOCK).view("<u2").T.copy()
    parts = np.zeros(body.shape[1], dtype=np.uint32)
    table = _table16()
    for row in body:
        parts = table[(parts ^ row) & 0xFFFF] ^ (parts >> 16)
    z0, z1, z2, z3 = _zero_run(_BLOCK)
    all_parts = parts.tolist()
    start = 0
    for i, count in owners:
        state = 0
        for part in all_parts[start : start + count]:
            state = z0[state & 0xFF] ^ z1[(state >> 8) & 0xFF] ^ z2[(state >> 16) & 0xFF] ^ z3[state >> 24] ^ part
        start += count
        results[i] = state ^ _U32
    return results


def mask(crc: int) -> int:
    """The masked form stored in LevelDB blocks and TensorFlow bundles."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32
