"""merkle.root against a plain hashlib RFC 9162 loop and pymerkle; inclusion proofs against pymerkle."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ledgercore import merkle
from ledgercore.bench.crypto import hashlib_root, leaves

ROOT_LEAVES = 1 << 20
PYMERKLE_LEAVES = 20_000  # pymerkle appends ~75k leaves/s: its group uses fewer leaves, for both sides
PROOFS = 10_000


@pytest.fixture(scope="module")
def data() -> list[bytes]:
    return leaves(ROOT_LEAVES)


@pytest.fixture(scope="module")
def expected_root(data: list[bytes]) -> bytes:
    return hashlib_root(data)


@pytest.mark.benchmark(group="merkle root, 1M x 32 B leaves (sha256)")
def test_ledgercore_root(measure, data, expected_root) -> None:
    assert measure(lambda: merkle.root(data), len(data)) == expected_root


@pytest.mark.benchmark(group="merkle root, 1M x 32 B leaves (sha256)")
def test_ledgercore_root_numpy_input(measure, data, expected_root) -> None:
    array = np.frombuffer(b"".join(data), dtype=np.uint8).reshape(len(data), 32)
    assert measure(lambda: merkle.root(array), len(data)) == expected_root


@pytest.mark.benchmark(group="merkle root, 1M x 32 B leaves (sha256)")
def test_ledgercore_log_extend_then_root(measure, data, expected_root) -> None:
    def build() -> bytes:
        log = merkle.MerkleLog("sha256")
        log.extend(data)
        return log.root()

    assert measure(build, len(data), rounds=5) == expected_root


@pytest.mark.benchmark(group="merkle root, 1M x 32 B leaves (sha256)")
def test_hashlib_root_loop(measure, data, expected_root) -> None:
    assert measure(lambda: hashlib_root(data), len(data), rounds=3) == expected_root


@pytest.mark.benchmark(group="merkle root, 20k x 32 B leaves (sha256)")
def test_ledgercore_root_20k(measure, data) -> None:
    few = data[:PYMERKLE_LEAVES]
    assert measure(lambda: merkle.root(few), len(few)) == hashlib_root(few)


@pytest.mark.benchmark(group="merkle root, 20k x 32 B leaves (sha256)")
def test_pymerkle_append_then_root(measure, data) -> None:
    pymerkle = pytest.importorskip("pymerkle")
    few = data[:PYMERKLE_LEAVES]

    def build() -> bytes:
        tree = pymerkle.InmemoryTree(algorithm="sha256")
        for leaf in few:
            tree.append_entry(leaf)
        return tree.get_root()

    assert measure(build, len(few), rounds=3) == merkle.root(few)


@pytest.fixture(scope="module")
def big_log(data: list[bytes]) -> merkle.MerkleLog:
    log = merkle.MerkleLog("sha256")
    log.extend(data)
    return log


def proof_loop(prove, size: int, first: int = 0):
    indices = [random.Random(9162).randrange(size) + first for _ in range(PROOFS)]

    def loop() -> int:
        return sum(len(prove(i)) for i in indices)

    return loop


@pytest.mark.benchmark(group="inclusion proofs, 10k random leaves")
def test_ledgercore_proofs_1m_log(measure, big_log) -> None:
    nodes = measure(proof_loop(big_log.inclusion_proof, big_log.size), PROOFS)
    assert nodes == 20 * PROOFS  # every audit path in a 2^20-leaf tree has 20 nodes


@pytest.mark.benchmark(group="inclusion proofs, 10k random leaves")
def test_ledgercore_proofs_20k_log(measure, data) -> None:
    log = merkle.MerkleLog("sha256")
    log.extend(data[:PYMERKLE_LEAVES])
    assert measure(proof_loop(log.inclusion_proof, log.size), PROOFS) > 0


@pytest.mark.benchmark(group="inclusion proofs, 10k random leaves")
def test_pymerkle_proofs_20k_tree(measure, data) -> None:
    pymerkle = pytest.importorskip("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for leaf in data[:PYMERKLE_LEAVES]:
        tree.append_entry(leaf)
    loop = proof_loop(lambda i: tree.prove_inclusion(i).path, PYMERKLE_LEAVES, first=1)  # pymerkle counts from 1
    assert measure(loop, PROOFS, rounds=3) > 0
