"""crc32c_many (how a checkpoint's tensors are verified together) against the published vectors and the
one-byte-at-a-time recurrence, over sizes around its block length and the four-byte initial-state trick."""

from __future__ import annotations

import numpy as np

from transpiler.frontends.tf import crc32c as module
from transpiler.frontends.tf.crc32c import crc32c_many


def _byte_loop(data: bytes) -> int:
    return module._run_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def test_published_vectors() -> None:
    # RFC 3720 (iSCSI) appendix B.4, and the common check value of "123456789"
    vectors = [bytes(32), b"\xff" * 32, bytes(range(32)), bytes(range(31, -1, -1)), b"123456789", b""]
    assert crc32c_many(vectors) == [0x8A9136AA, 0x62A8AB43, 0x46DD794E, 0x113FDB5C, 0xE3069283, 0]


def test_equals_byte_loop_for_every_size_class() -> None:
    rng = np.random.default_rng(3)
    block = module._BLOCK
    sizes = [0, 1, 2, 3, 4, 5, 7, 8, block - 1, block, block + 1, 2 * block - 3, 5 * block, 70_001]
    buffers: list[bytes | memoryview] = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    buffers.append(memoryview(buffers[-1])[13:40_000])  # a view into a larger buffer, as checkpoint shards give
    buffers.append(b"\x00" * 3000)  # leading zeros must count: the padding trick relies on the inverted head
    assert crc32c_many(buffers) == [_byte_loop(bytes(b)) for b in buffers]
    assert crc32c_many([]) == []
