"""Hash functions a chain can be built on: BLAKE3 (default), SHA-256 and SM3 (GB/T 32905)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _native

ALGORITHMS = ("blake3", "sha256", "sm3")
DIGEST_SIZE = 32


def digest(data: bytes, algo: str = "blake3") -> bytes:
    """The 32-byte digest of ``data``."""
    return _native.hash_digest(algo, data)


def digest_many(items: Sequence[bytes] | np.ndarray, algo: str = "blake3") -> np.ndarray:
    """Digests of many items at once (in parallel, without the GIL): a ``(N, 32)`` uint8 array.

    ``items`` is a sequence of bytes-like objects or a 2-D uint8 array (one item per row).
    """
    return _native.hash_many(algo, items)
