"""digest_many against hashlib, the blake3 package and gmssl's SM3, on the same inputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ledgercore import hashing
from ledgercore.bench.crypto import random_items

ITEMS, ITEM_SIZE = 500_000, 64
GMSSL_ITEMS = 2_000  # gmssl's SM3 is pure Python: its group uses fewer items, for both sides


@pytest.fixture(scope="module")
def items() -> list[bytes]:
    return random_items(ITEMS, ITEM_SIZE)


@pytest.fixture(scope="module")
def expected_sha256(items: list[bytes]) -> bytes:
    return b"".join(hashlib.sha256(x).digest() for x in items)


@pytest.mark.benchmark(group="digest_many sha256, 500k x 64 B")
def test_ledgercore_sha256(measure, items, expected_sha256) -> None:
    out = measure(lambda: hashing.digest_many(items, "sha256"), len(items))
    assert out.tobytes() == expected_sha256


@pytest.mark.benchmark(group="digest_many sha256, 500k x 64 B")
def test_ledgercore_sha256_numpy_input(measure, items, expected_sha256) -> None:
    array = np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), ITEM_SIZE)
    out = measure(lambda: hashing.digest_many(array, "sha256"), len(items))
    assert out.tobytes() == expected_sha256


@pytest.mark.benchmark(group="digest_many sha256, 500k x 64 B")
def test_hashlib_sha256_loop(measure, items, expected_sha256) -> None:
    sha256 = hashlib.sha256
    out = measure(lambda: [sha256(x).digest() for x in items], len(items), rounds=5)
    assert b"".join(out) == expected_sha256


@pytest.mark.benchmark(group="digest_many blake3, 500k x 64 B")
def test_ledgercore_blake3(measure, items) -> None:
    blake3 = pytest.importorskip("blake3")
    out = measure(lambda: hashing.digest_many(items, "blake3"), len(items))
    assert out[-1].tobytes() == blake3.blake3(items[-1]).digest()


@pytest.mark.benchmark(group="digest_many blake3, 500k x 64 B")
def test_blake3_package_loop(measure, items) -> None:
    blake3 = pytest.importorskip("blake3")
    hasher = blake3.blake3
    out = measure(lambda: [hasher(x).digest() for x in items], len(items), rounds=5)
    assert out[0] == hashing.digest(items[0], "blake3")


@pytest.mark.benchmark(group="digest_many sm3, 2k x 64 B")
def test_ledgercore_sm3(measure, items) -> None:
    few = items[:GMSSL_ITEMS]
    out = measure(lambda: hashing.digest_many(few, "sm3"), len(few))
    assert out.shape == (len(few), 32)


@pytest.mark.benchmark(group="digest_many sm3, 2k x 64 B")
def test_gmssl_sm3_loop(measure, items) -> None:
    gmssl = pytest.importorskip("gmssl")
    from gmssl import func, sm3

    few = items[:GMSSL_ITEMS]
    out = measure(lambda: [sm3.sm3_hash(func.bytes_to_list(x)) for x in few], len(few), rounds=3)
    assert bytes.fromhex(out[0]) == hashing.digest(few[0], "sm3"), gmssl
