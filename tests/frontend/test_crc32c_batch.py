"""CRC-32C, both ways we compute it: Google's native library (``google-crc32c``, a core dependency, used when
present) and our numpy implementation (the fallback). Each is checked against the published vectors, the numpy
one against the one-byte-at-a-time recurrence and against the native library (an independent implementation),
over sizes around its block lengths and the four-byte initial-state trick."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from transpiler.frontends.tf import crc32c as module
from transpiler.frontends.tf.crc32c import crc32c, crc32c_many, mask, numpy_crc32c, unmask

VECTORS = [bytes(32), b"\xff" * 32, bytes(range(32)), bytes(range(31, -1, -1)), b"123456789", b""]
# RFC 3720 (iSCSI) appendix B.4, and the common check value of "123456789"
EXPECTED = [0x8A9136AA, 0x62A8AB43, 0x46DD794E, 0x113FDB5C, 0xE3069283, 0]


def _byte_loop(data: bytes) -> int:
    return module._run_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def _buffers() -> list[bytes | memoryview]:
    rng = np.random.default_rng(3)
    block = module._BLOCK
    sizes = [0, 1, 2, 3, 4, 5, 7, 8, block - 1, block, block + 1, 2 * block - 3, 5 * block, 70_001]
    buffers: list[bytes | memoryview] = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    buffers.append(memoryview(buffers[-1])[13:40_000])  # a view into a larger buffer, as checkpoint shards give
    buffers.append(b"\x00" * 3000)  # leading zeros must count: the padding trick relies on the inverted head
    return buffers


def test_the_native_library_is_used() -> None:
    # google-crc32c is a core dependency: a conversion must not fall back to numpy (15x slower on weights).
    import google_crc32c

    assert module.NATIVE and google_crc32c.implementation == "c"


def test_published_vectors_many() -> None:
    assert crc32c_many(list(VECTORS)) == EXPECTED
    assert crc32c_many([]) == []


@pytest.mark.parametrize("one", [crc32c, numpy_crc32c], ids=["default", "numpy"])
def test_single_buffer(one: Callable[..., int]) -> None:
    assert [one(v) for v in VECTORS] == EXPECTED
    data = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    for n in (4095, 4096, 4097, 10_007, 65_536, 300_000):  # around the vectorised path's threshold
        assert one(data[:n]) == _byte_loop(data[:n]), n
    assert one(data[1000:], one(data[:1000])) == one(data)  # continuation
    assert one(np.frombuffer(data, np.uint8)) == one(memoryview(data)) == one(data)


def test_numpy_equals_byte_loop_and_native_library() -> None:
    import google_crc32c

    buffers = _buffers()
    expected = [_byte_loop(bytes(b)) for b in buffers]
    assert crc32c_many(buffers) == expected
    assert [google_crc32c.value(bytes(b)) for b in buffers] == expected
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, 3_000_001, dtype=np.uint8).tobytes()
    assert numpy_crc32c(big) == google_crc32c.value(big) == crc32c(big)


def test_mask_round_trip() -> None:
    for value in (0, 1, 0xFFFFFFFF, 0xE3069283):
        assert unmask(mask(value)) == value
