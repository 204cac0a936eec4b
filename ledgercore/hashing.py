"""Hash functions a chain can be built on: BLAKE3 (default), SHA-256 and SM3 (GB/T 32905)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _native
from .native_args import REFUSED, Params, retry_args

ALGORITHMS = ("blake3", "sha256", "sm3")
DIGEST_SIZE = 32

_DIGEST: Params = (("algo", ALGORITHMS), ("data", bytes))
_DIGEST_MANY: Params = (("algo", ALGORITHMS), ("items", None))


def digest(data: bytes, algo: str = "blake3") -> bytes:
    """The 32-byte digest of ``data`` (a bytearray or memoryview is copied to bytes first)."""
    try:
        return _native.hash_digest(algo, data)
    except REFUSED:  # the native call takes bytes only: other types are sorted out off the hot path
        args = retry_args(_DIGEST, algo, data)
    return _native.hash_digest(*args)


def digest_many(items: Sequence[bytes] | np.ndarray, algo: str = "blake3") -> np.ndarray:
    """Digests of many items at once (in parallel, without the GIL): a ``(N, 32)`` uint8 array.

    ``items`` is a sequence of bytes-like objects or a 2-D uint8 array (one item per row).
    """
    try:
        return _native.hash_many(algo, items)
    except REFUSED:
        args = retry_args(_DIGEST_MANY, algo, items)
    return _native.hash_many(*args)
