"""Hash functions a chain can be built on: BLAKE3 (default), SHA-256 and SM3 (GB/T 32905)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _native
from .native_args import Params, call

ALGORITHMS = ("blake3", "sha256", "sm3")
DIGEST_SIZE = 32

_DIGEST: Params = (("algo", ALGORITHMS), ("data", bytes))
_DIGEST_MANY: Params = (("algo", ALGORITHMS), ("items", None))


def digest(data: bytes, algo: str = "blake3") -> bytes:
    """The 32-byte digest of ``data`` (a bytearray or memoryview is copied to bytes first)."""
    return call(_native.hash_digest, _DIGEST, algo, data)


def digest_many(items: Sequence[bytes] | np.ndarray, algo: str = "blake3") -> np.ndarray:
    """Digests of many items at once (in parallel, without the GIL): a ``(N, 32)`` uint8 array.

    ``items`` is a sequence of bytes-like objects or a 2-D uint8 array (one item per row).
    """
    return call(_native.hash_many, _DIGEST_MANY, algo, items)
