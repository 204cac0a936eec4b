"""RFC 9162 Merkle trees against a small, independent pure-Python reference written from the RFC's
definitions (section 2.1), for SHA-256 (hashlib), BLAKE3 (the blake3 package) and SM3 (gmssl).

Regenerate tests/vectors/rfc9162_sha256.json with ``python tests/test_merkle.py --write-vectors``.
"""

from __future__ import annotations

import array
import functools
import hashlib
import json
import os
import random
import re
import sys
from collections.abc import Callable, Sequence

import blake3
import numpy as np
import pytest
from conftest import VECTORS, assert_typed_argument_error, load_vectors
from gmssl import func, sm3
from hypothesis import given
from hypothesis import strategies as st

from ledgercore import hashing, merkle
from ledgercore.errors import MalformedInputError, OutOfRangeError, UnknownNameError

# ------------------------------------------------------------------- reference (RFC 9162 section 2.1)

HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "blake3": lambda data: blake3.blake3(data).digest(),
    "sm3": lambda data: bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data))),
}
ALGOS = list(HASHES)


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF over a fixed list of leaves; D[lo:hi] subtree hashes are memoised, so every
    tree size over a prefix of the same leaves shares the work (gmssl's SM3 is slow)."""

    def __init__(self, algo: str, leaves: Sequence[bytes]) -> None:
        self.h = HASHES[algo]
        self.leaves = list(leaves)
        self.mth = functools.lru_cache(maxsize=None)(self._mth)

    # MTH({}) = HASH(); MTH({d0}) = HASH(0x00 || d0); MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return self.h(b"")
        if n == 1:
            return self.h(b"\x00" + self.leaves[lo])
        k = split(n)
        return self.h(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) if m < k, else PATH(m - k, D[k:n]) : MTH(D[0:k]).
    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = split(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.path(index, 0, size)

    # PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m < n.
    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def consistency(self, old: int, new: int) -> list[bytes]:
        assert 0 < old < new
        return self.subproof(old, 0, new, True)


def ref_verify_inclusion(h, leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = h(b"\x00" + leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def ref_verify_consistency(h, first: int, second: int, first_hash: bytes, second_hash: bytes, path: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2, step by step (for 0 < first < second)."""
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = h(b"\x01" + c + fr)
            sr = h(b"\x01" + c + sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = h(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def leaves_for(count: int, seed: int = 0) -> list[bytes]:
    """Distinct leaves of varied lengths (including the empty leaf)."""
    rng = random.Random(seed)
    return [i.to_bytes(4, "big")[: i % 5] + rng.randbytes(rng.randrange(0, 40)) for i in range(count)]


def flip(data: bytes, index: int, mask: int = 1) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# ------------------------------------------------------------------ exhaustive comparison, sizes 0..70

MAX_EXHAUSTIVE = 70


@pytest.fixture(scope="module", params=ALGOS)
def exhaustive(request):
    algo = request.param
    leaves = leaves_for(MAX_EXHAUSTIVE, seed=9162)
    log = merkle.MerkleLog(algo)
    log.extend(leaves)
    return algo, leaves, Reference(algo, leaves), log


def test_roots_for_every_size(exhaustive):
    algo, leaves, ref, log = exhaustive
    for size in range(MAX_EXHAUSTIVE + 1):
        expected = ref.root(size)
        assert merkle.root(leaves[:size], algo) == expected, size
        assert log.root(size) == expected, size
    assert log.root() == ref.root(MAX_EXHAUSTIVE)


def test_inclusion_proofs_for_every_size_and_index(exhaustive):
    algo, leaves, ref, log = exhaustive
    h = HASHES[algo]
    for size in range(1, MAX_EXHAUSTIVE + 1):
        root = ref.root(size)
        for index in range(size):
            expected = ref.inclusion(index, size)
            got = log.inclusion_proof(index, size)
            assert got == expected, (size, index)
            assert all(isinstance(node, bytes) for node in got)
            assert merkle.verify_inclusion(leaves[index], index, size, got, root, algo), (size, index)
            if algo != "sm3" or (size * index) % 17 == 0:  # gmssl's SM3 is slow: a sample suffices
                assert ref_verify_inclusion(h, leaves[index], index, size, got, root)
    # The module function over a list agrees with the log (spot check: it rebuilds a tree per call).
    for size, index in [(1, 0), (2, 1), (7, 3), (MAX_EXHAUSTIVE, 0), (MAX_EXHAUSTIVE, MAX_EXHAUSTIVE - 1)]:
        assert merkle.inclusion_proof(leaves[:size], index, algo) == ref.inclusion(index, size)


def test_consistency_proofs_for_every_pair_of_sizes(exhaustive):
    algo, leaves, ref, log = exhaustive
    h = HASHES[algo]
    for new in range(1, MAX_EXHAUSTIVE + 1):
        new_root = ref.root(new)
        for old in range(1, new):
            expected = ref.consistency(old, new)
            got = log.consistency_proof(old, new)
            assert got == expected, (old, new)
            old_root = ref.root(old)
            assert merkle.verify_consistency(old, new, old_root, new_root, got, algo), (old, new)
            if algo != "sm3" or (old * new) % 17 == 0:
                assert ref_verify_consistency(h, old, new, old_root, new_root, got)
    for old, new in [(1, 2), (3, 7), (32, 64), (33, MAX_EXHAUSTIVE)]:
        assert merkle.consistency_proof(leaves[:new], old, algo) == ref.consistency(old, new)


def test_trivial_consistency_proofs_are_empty(exhaustive):
    """PROOF is defined for 0 < m < n; for m = n and m = 0 ledgercore returns an empty proof, which
    verifies only against equal roots (m = n) or the empty-tree root (m = 0)."""
    algo, leaves, ref, log = exhaustive
    for size in (0, 1, 5, MAX_EXHAUSTIVE):
        assert log.consistency_proof(size, size) == []
        assert log.consistency_proof(0, size) == []
        root = ref.root(size)
        assert merkle.verify_consistency(size, size, root, root, [], algo)
        assert merkle.verify_consistency(0, size, ref.root(0), root, [], algo)
        # Equal roots: for empty trees too, where the new root was once never compared.
        assert not merkle.verify_consistency(size, size, root, ref.root(size - 1 if size else 1), [], algo)
        if size:
            assert not merkle.verify_consistency(0, size, root, root, [], algo)
            assert not merkle.verify_consistency(size, size, root, root, [root], algo)


@pytest.mark.parametrize("algo", ALGOS)
def test_empty_tree_root_is_the_hash_of_nothing(algo):
    empty = HASHES[algo](b"")
    assert merkle.root([], algo) == empty
    assert merkle.root(np.zeros((0, 32), np.uint8), algo) == empty
    log = merkle.MerkleLog(algo)
    assert log.size == 0
    assert log.root() == empty
    assert log.root(0) == empty


@pytest.mark.parametrize("algo", ALGOS)
def test_single_leaf_root_is_the_leaf_hash(algo):
    h = HASHES[algo]
    assert merkle.root([b"only"], algo) == h(b"\x00only")
    assert merkle.root([b"a", b"b"], algo) == h(b"\x01" + h(b"\x00a") + h(b"\x00b"))
    assert merkle.inclusion_proof([b"only"], 0, algo) == []
    assert merkle.verify_inclusion(b"only", 0, 1, [], h(b"\x00only"), algo)


def test_default_algorithm_is_sha256():
    leaves = leaves_for(9)
    assert merkle.root(leaves) == merkle.root(leaves, "sha256") == Reference("sha256", leaves).root(9)
    assert merkle.MerkleLog("sha256").algo == "sha256"


# ------------------------------------------------------------------------ stored vectors (sha256)

CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]


def build_vectors() -> dict:
    """Published anchors from the certificate-transparency reference tests (RFC 6962, same tree as RFC
    9162), plus everything for sizes 1..8 and a few larger trees, derived with the reference above."""
    published = {
        "source": "certificate-transparency reference merkle_tree_test (RFC 6962 section 2.1, the same "
        "construction as RFC 9162 section 2.1): leaves, roots for sizes 0..8, some proofs",
        "leaves": CT_LEAVES,
        "roots": [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ],
        "inclusion": [
            {"index": 0, "size": 8, "path": [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]},
            {"index": 5, "size": 8, "path": [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]},
        ],
        "consistency": [
            {"old": 1, "new": 8, "path": [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]},
            {"old": 6, "new": 8, "path": [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]},
            {"old": 2, "new": 5, "path": [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]},
        ],
    }
    trees = []
    for name, leaves in [
        ("ct", [bytes.fromhex(x) for x in CT_LEAVES]),
        ("counter-13", [i.to_bytes(4, "big") for i in range(13)]),
        ("counter-33", [i.to_bytes(4, "big") for i in range(33)]),
    ]:
        ref = Reference("sha256", leaves)
        n = len(leaves)
        trees.append({
            "name": name,
            "leaves": [x.hex() for x in leaves],
            "roots": [ref.root(size).hex() for size in range(n + 1)],
            "inclusion": [
                {"index": i, "size": size, "path": [p.hex() for p in ref.inclusion(i, size)]}
                for size in range(1, n + 1) for i in range(size) if n <= 8 or size in (n - 1, n)
            ],
            "consistency": [
                {"old": old, "new": new, "path": [p.hex() for p in ref.consistency(old, new)]}
                for new in range(2, n + 1) for old in range(1, new) if n <= 8 or new == n
            ],
        })
    return {
        "description": "RFC 9162 section 2.1 with SHA-256. 'published' holds externally published values; "
        "'derived' was generated from the RFC's definitions by the pure-Python reference in "
        "tests/test_merkle.py (python tests/test_merkle.py --write-vectors).",
        "published": published,
        "derived": trees,
    }


@functools.lru_cache(maxsize=1)
def stored() -> dict:
    return load_vectors("rfc9162_sha256.json")


def test_reference_reproduces_the_published_certificate_transparency_values():
    pub = stored()["published"]
    leaves = [bytes.fromhex(x) for x in pub["leaves"]]
    ref = Reference("sha256", leaves)
    assert [ref.root(size).hex() for size in range(9)] == pub["roots"]
    for case in pub["inclusion"]:
        assert [p.hex() for p in ref.inclusion(case["index"], case["size"])] == case["path"]
    for case in pub["consistency"]:
        assert [p.hex() for p in ref.consistency(case["old"], case["new"])] == case["path"]


def test_stored_vectors_match_the_reference():
    assert stored() == json.loads(json.dumps(build_vectors()))


def test_ledgercore_matches_the_stored_vectors():
    for tree in [stored()["published"], *stored()["derived"]]:
        leaves = [bytes.fromhex(x) for x in tree["leaves"]]
        log = merkle.MerkleLog("sha256")
        log.extend(leaves)
        roots = tree["roots"]
        for size, root in enumerate(roots):
            assert log.root(size).hex() == root
            assert merkle.root(leaves[:size]).hex() == root
        for case in tree["inclusion"]:
            path = log.inclusion_proof(case["index"], case["size"])
            assert [p.hex() for p in path] == case["path"]
            leaf = leaves[case["index"]]
            assert merkle.verify_inclusion(leaf, case["index"], case["size"], [bytes.fromhex(p) for p in case["path"]],
                                           bytes.fromhex(roots[case["size"]]))
        for case in tree["consistency"]:
            path = log.consistency_proof(case["old"], case["new"])
            assert [p.hex() for p in path] == case["path"]
            assert merkle.verify_consistency(case["old"], case["new"], bytes.fromhex(roots[case["old"]]),
                                             bytes.fromhex(roots[case["new"]]), [bytes.fromhex(p) for p in case["path"]])


# ----------------------------------------------------------------------------- hypothesis properties

SIZES = st.integers(1, 2000)


@functools.lru_cache(maxsize=8)
def big_log(algo: str) -> tuple[merkle.MerkleLog, list[bytes]]:
    leaves = leaves_for(2000, seed=2000)
    log = merkle.MerkleLog(algo)
    log.extend(leaves)
    return log, leaves


@pytest.mark.parametrize("algo", ALGOS)
@given(data=st.data())
def test_inclusion_proofs_verify_and_any_tampering_fails(algo, data):
    log, leaves = big_log(algo)
    size = data.draw(SIZES, label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = log.root(size)
    proof = log.inclusion_proof(index, size)
    leaf = leaves[index]
    assert merkle.verify_inclusion(leaf, index, size, proof, root, algo)

    if proof:
        k = data.draw(st.integers(0, len(proof) - 1), label="node")
        byte = data.draw(st.integers(0, 31), label="byte")
        bad = list(proof)
        bad[k] = flip(bad[k], byte, data.draw(st.integers(1, 255)))
        assert not merkle.verify_inclusion(leaf, index, size, bad, root, algo)
        assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], root, algo)
        # Reordered siblings fail too.
        if len(proof) > 1 and proof[0] != proof[1]:
            swapped = [proof[1], proof[0], *proof[2:]]
            assert not merkle.verify_inclusion(leaf, index, size, swapped, root, algo)
    assert not merkle.verify_inclusion(leaf, index, size, [*proof, root], root, algo)
    assert not merkle.verify_inclusion(leaf, index, size, proof, flip(root, data.draw(st.integers(0, 31))), algo)
    if leaf:
        assert not merkle.verify_inclusion(flip(leaf, data.draw(st.integers(0, len(leaf) - 1))), index, size, proof, root, algo)
    assert not merkle.verify_inclusion(leaf + b"\0", index, size, proof, root, algo)
    # The proof is for this leaf at this index in a tree of this size, nothing else.
    other_index = data.draw(st.integers(0, size), label="other index")
    if other_index != index:
        assert not merkle.verify_inclusion(leaf, other_index, size, proof, root, algo)
    # Another tree size: against that tree's own root, the proof fails unless it is that tree's proof
    # too. Against this root the RFC 9162 algorithm does not bind the size (e.g. leaf 0's path is the
    # same for every size in (2^(L-1), 2^L]; a signed tree head binds root and size together), so
    # there the answer must simply be the RFC algorithm's answer.
    other_size = data.draw(st.integers(index + 1, 2000), label="other size")
    if other_size != size:
        same_path = log.inclusion_proof(index, other_size) == proof
        assert merkle.verify_inclusion(leaf, index, other_size, proof, log.root(other_size), algo) is same_path
        expected = ref_verify_inclusion(HASHES[algo], leaf, index, other_size, proof, root)
        assert merkle.verify_inclusion(leaf, index, other_size, proof, root, algo) is expected


@pytest.mark.parametrize("algo", ALGOS)
@given(data=st.data())
def test_consistency_proofs_verify_and_any_tampering_fails(algo, data):
    log, _ = big_log(algo)
    new = data.draw(st.integers(2, 2000), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    old_root, new_root = log.root(old), log.root(new)
    proof = log.consistency_proof(old, new)
    assert merkle.verify_consistency(old, new, old_root, new_root, proof, algo)

    k = data.draw(st.integers(0, len(proof) - 1), label="node")
    bad = list(proof)
    bad[k] = flip(bad[k], data.draw(st.integers(0, 31)), data.draw(st.integers(1, 255)))
    assert not merkle.verify_consistency(old, new, old_root, new_root, bad, algo)
    assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1], algo)
    assert not merkle.verify_consistency(old, new, old_root, new_root, [*proof, new_root], algo)
    assert not merkle.verify_consistency(old, new, flip(old_root, data.draw(st.integers(0, 31))), new_root, proof, algo)
    assert not merkle.verify_consistency(old, new, old_root, flip(new_root, data.draw(st.integers(0, 31))), proof, algo)
    assert not merkle.verify_consistency(new, old, new_root, old_root, proof, algo)
    other_old = data.draw(st.integers(1, new), label="other old")
    if other_old != old:
        assert not merkle.verify_consistency(other_old, new, old_root, new_root, proof, algo)
    # As for inclusion: against the other tree's own root the proof fails unless it is that tree's
    # proof as well; against this root the answer is whatever RFC 9162's algorithm says.
    other_new = data.draw(st.integers(old + 1, 2000), label="other new")
    if other_new != new:
        same_path = log.consistency_proof(old, other_new) == proof
        assert merkle.verify_consistency(old, other_new, old_root, log.root(other_new), proof, algo) is same_path
        expected = ref_verify_consistency(HASHES[algo], old, other_new, old_root, new_root, proof)
        assert merkle.verify_consistency(old, other_new, old_root, new_root, proof, algo) is expected


@pytest.mark.parametrize("algo", ALGOS)
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6), data=st.data())
def test_append_extend_and_module_functions_agree(algo, sizes, data):
    leaves = leaves_for(sum(sizes), seed=len(sizes))
    one_by_one = merkle.MerkleLog(algo)
    for i, leaf in enumerate(leaves):
        assert one_by_one.append(leaf) == i
    in_chunks = merkle.MerkleLog(algo)
    start = 0
    for n in sizes:
        in_chunks.extend(leaves[start : start + n])
        start += n
        assert in_chunks.size == start
    assert one_by_one.size == in_chunks.size == len(leaves)
    total = len(leaves)
    for size in range(total + 1):
        assert one_by_one.root(size) == in_chunks.root(size) == merkle.root(leaves[:size], algo)
    if total:
        index = data.draw(st.integers(0, total - 1))
        size = data.draw(st.integers(index + 1, total))
        assert one_by_one.inclusion_proof(index, size) == in_chunks.inclusion_proof(index, size)
        assert in_chunks.inclusion_proof(index, size) == merkle.inclusion_proof(leaves[:size], index, algo)
        assert in_chunks.inclusion_proof(index) == merkle.inclusion_proof(leaves, index, algo)
        old = data.draw(st.integers(0, total))
        assert one_by_one.consistency_proof(old) == in_chunks.consistency_proof(old, total)
        assert in_chunks.consistency_proof(old) == merkle.consistency_proof(leaves, old, algo)


@pytest.mark.parametrize("algo", ALGOS)
def test_numpy_leaves_equal_list_leaves(algo):
    rng = np.random.default_rng(5)
    array = rng.integers(0, 256, size=(300, 32), dtype=np.uint8)
    as_list = [row.tobytes() for row in array]
    assert merkle.root(array, algo) == merkle.root(as_list, algo)
    assert merkle.inclusion_proof(array, 123, algo) == merkle.inclusion_proof(as_list, 123, algo)
    log = merkle.MerkleLog(algo)
    log.extend(array[:100])
    log.extend(as_list[100:])
    assert log.root() == merkle.root(as_list, algo)


def test_large_log_agrees_with_an_iterative_reference():
    """A 20 000-leaf log (beyond the sizes where the native side hashes levels in parallel), checked
    against a level-by-level hashlib computation of the same RFC 9162 tree."""
    leaves = [i.to_bytes(8, "big") for i in range(20_000)]

    def mth(hashes: list[bytes]) -> bytes:  # RFC 9162 root from leaf hashes: pair left to right, carry the odd one up
        while len(hashes) > 1:
            paired = [hashlib.sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest() for i in range(0, len(hashes) - 1, 2)]
            hashes = paired + hashes[len(paired) * 2 :]
        return hashes[0]

    leaf_hashes = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    log = merkle.MerkleLog("sha256")
    log.extend(leaves[:5000])
    for leaf in leaves[5000:5003]:
        log.append(leaf)
    log.extend(np.frombuffer(b"".join(leaves[5003:]), np.uint8).reshape(-1, 8))
    for size in (1, 4096, 4097, 8191, 12_345, 16_384, 20_000):
        assert log.root(size) == mth(leaf_hashes[:size]), size
    assert merkle.root(leaves) == mth(leaf_hashes)
    # merkle.root folds large inputs in parallel subtrees: sizes around power-of-two boundaries.
    for size in (2047, 2048, 2049, 8191, 8192, 8193, 16_383, 16_384, 16_385, 19_999):
        assert merkle.root(leaves[:size]) == mth(leaf_hashes[:size]), size
    for index in (0, 4095, 4096, 19_999):
        proof = log.inclusion_proof(index)
        assert merkle.verify_inclusion(leaves[index], index, 20_000, proof, log.root())
        assert ref_verify_inclusion(HASHES["sha256"], leaves[index], index, 20_000, proof, log.root())


# ---------------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 64, 100, 1000])
def test_to_bytes_from_bytes_round_trip(algo, size):
    leaves = leaves_for(size, seed=size)
    log = merkle.MerkleLog(algo)
    log.extend(leaves)
    blob = log.to_bytes()
    assert isinstance(blob, bytes)
    again = merkle.MerkleLog.from_bytes(blob)
    assert again.algo == algo
    assert again.size == size
    assert again.to_bytes() == blob
    for s in sorted({0, 1, size // 2, size}):
        if s <= size:
            assert again.root(s) == log.root(s)
    if size:
        assert again.inclusion_proof(size - 1) == log.inclusion_proof(size - 1)
        assert again.consistency_proof(size // 2 or 1) == log.consistency_proof(size // 2 or 1)
    # A restored log keeps growing exactly like the original.
    for target in (log, again):
        target.append(b"next")
    assert again.root() == log.root() == merkle.root([*leaves, b"next"], algo)


def test_serialisation_is_compact():
    log = merkle.MerkleLog("sha256")
    log.extend(leaves_for(1000))
    assert len(log.to_bytes()) <= 1000 * 32 + 64


def test_from_bytes_rejects_every_truncation_and_extension():
    log = merkle.MerkleLog("sm3")
    log.extend(leaves_for(5))
    blob = log.to_bytes()
    for cut in range(len(blob)):
        with pytest.raises(MalformedInputError):
            merkle.MerkleLog.from_bytes(blob[:cut])
    for extra in (b"\0", b"\0" * 31, b"\0" * 33):
        with pytest.raises(MalformedInputError):
            merkle.MerkleLog.from_bytes(blob + extra)


def test_from_bytes_rejects_garbage_headers():
    blob = bytearray(merkle.MerkleLog("sha256").to_bytes())
    assert len(blob) >= 6
    for position in range(min(len(blob), 6)):  # magic, version, algorithm code
        bad = bytearray(blob)
        bad[position] ^= 0xFF
        with pytest.raises(MalformedInputError):
            merkle.MerkleLog.from_bytes(bytes(bad))
    for junk in (b"", b"junk", b"\0" * 14, os.urandom(200), b"LCML"):
        with pytest.raises(MalformedInputError) as info:
            merkle.MerkleLog.from_bytes(junk)
        assert isinstance(info.value, ValueError)
        assert "Merkle log" in str(info.value)


def test_from_bytes_does_not_trust_the_size_in_the_header():
    """A header claiming 2^63 leaves over a few bytes is refused, not allocated."""
    log = merkle.MerkleLog("sha256")
    log.extend([b"a", b"b"])
    blob = bytearray(log.to_bytes())
    for size_bytes in ((1 << 63).to_bytes(8, "big"), (2**64 - 1).to_bytes(8, "big"), (3).to_bytes(8, "big")):
        i = blob.find((2).to_bytes(8, "big"))
        assert i >= 0
        bad = blob[:i] + size_bytes + blob[i + 8 :]
        with pytest.raises(MalformedInputError):
            merkle.MerkleLog.from_bytes(bytes(bad))


@given(blob=st.binary(max_size=300))
def test_from_bytes_on_random_input_never_crashes(blob):
    try:
        log = merkle.MerkleLog.from_bytes(blob)
    except MalformedInputError:
        return
    assert log.to_bytes() == blob


# ----------------------------------------------------------------------------------- bad input


@pytest.fixture
def log5():
    log = merkle.MerkleLog("sha256")
    log.extend([b"a", b"b", b"c", b"d", b"e"])
    return log


@pytest.mark.parametrize(
    "call",
    [
        lambda log: log.inclusion_proof(5),
        lambda log: log.inclusion_proof(3, 3),
        lambda log: log.inclusion_proof(0, 6),
        lambda log: log.inclusion_proof(0, 0),
        lambda log: log.root(6),
        lambda log: log.consistency_proof(6),
        lambda log: log.consistency_proof(4, 3),
        lambda log: log.consistency_proof(1, 6),
        lambda log: log.inclusion_proof(-1),
        lambda log: log.inclusion_proof(2**64),
        lambda log: log.root(-1),
        lambda log: log.consistency_proof(-1),
        lambda log: log.consistency_proof(1, 2**70),
        lambda log: merkle.inclusion_proof([b"a"], 1),
        lambda log: merkle.inclusion_proof([b"a"], -1),
        lambda log: merkle.inclusion_proof([], 0),
        lambda log: merkle.consistency_proof([b"a"], 2),
        lambda log: merkle.verify_inclusion(b"a", -1, 5, [], bytes(32)),
        lambda log: merkle.verify_consistency(1, -5, bytes(32), bytes(32), []),
    ],
)
def test_out_of_range_indices_and_sizes_raise_out_of_range_error(log5, call):
    """Negative and oversized integers included: they must be OutOfRangeError (a ValueError) like any
    other bad index, not a bare OverflowError from the binding layer."""
    with pytest.raises(OutOfRangeError) as info:
        call(log5)
    assert isinstance(info.value, ValueError)
    assert "out of range" in str(info.value)


def test_out_of_range_message_names_the_bound(log5):
    with pytest.raises(OutOfRangeError, match="leaf index 7 .*5 leaves"):
        log5.inclusion_proof(7)
    with pytest.raises(OutOfRangeError, match="9"):
        log5.root(9)


def test_verifiers_return_false_for_claims_about_nonexistent_leaves(log5):
    root = log5.root()
    assert not merkle.verify_inclusion(b"a", 5, 5, log5.inclusion_proof(0), root)
    assert not merkle.verify_inclusion(b"a", 0, 0, [], root)
    assert not merkle.verify_consistency(6, 5, root, root, [])


def test_proof_nodes_and_roots_of_the_wrong_length_raise_value_error(log5):
    proof, root = log5.inclusion_proof(2), log5.root()
    for bad_proof in ([proof[0][:31], *proof[1:]], [*proof[:-1], proof[-1] + b"\0"], [b""]):
        with pytest.raises(ValueError) as info:
            merkle.verify_inclusion(b"c", 2, 5, bad_proof, root)
        assert "32" in str(info.value)
    with pytest.raises(ValueError, match="32"):
        merkle.verify_inclusion(b"c", 2, 5, proof, root[:16])
    cproof = log5.consistency_proof(3)
    with pytest.raises(ValueError, match="32"):
        merkle.verify_consistency(3, 5, log5.root(3), root, [cproof[0] + b"\0", *cproof[1:]])
    with pytest.raises(ValueError, match="32"):
        merkle.verify_consistency(3, 5, log5.root(3)[:31], root, cproof)
    with pytest.raises(ValueError, match="32"):
        merkle.verify_consistency(3, 5, log5.root(3), root + b"\0", cproof)
    with pytest.raises(MalformedInputError, match="item 0 is NoneType"):
        merkle.verify_inclusion(b"c", 2, 5, [None], root)
    with pytest.raises(ValueError, match="single byte string"):
        merkle.verify_inclusion(b"c", 2, 5, b"".join(proof), root)


def test_proofs_accept_numpy_rows(log5):
    proof = log5.inclusion_proof(2)
    as_array = np.frombuffer(b"".join(proof), np.uint8).reshape(-1, 32)
    assert merkle.verify_inclusion(b"c", 2, 5, as_array, log5.root())
    assert merkle.verify_inclusion(b"c", 2, 5, tuple(proof), log5.root())


@pytest.mark.parametrize("name", ["md5", "SHA256", "", "sha3"])
def test_unknown_algorithm(name):
    calls = [
        lambda: merkle.MerkleLog(name),
        lambda: merkle.root([b"a"], name),
        lambda: merkle.inclusion_proof([b"a"], 0, name),
        lambda: merkle.consistency_proof([b"a"], 0, name),
        lambda: merkle.verify_inclusion(b"a", 0, 1, [], bytes(32), name),
        lambda: merkle.verify_consistency(1, 1, bytes(32), bytes(32), [], name),
    ]
    for call in calls:
        with pytest.raises(UnknownNameError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert f'"{name}"' in str(info.value)


def test_bad_leaves_raise_clear_errors():
    log = merkle.MerkleLog("sha256")
    with pytest.raises(MalformedInputError, match="item 1 is str"):
        log.extend([b"a", "b"])
    with pytest.raises(MalformedInputError, match="single byte string"):
        log.extend(b"abc")
    with pytest.raises(MalformedInputError, match="item 0 is int"):
        merkle.root([1, 2])
    assert log.size == 0, "a failed extend must not leave part of the batch behind"


def test_merkle_log_arguments_of_the_wrong_type_are_typed_errors():
    log = merkle.MerkleLog("sha256")
    with pytest.raises(MalformedInputError, match="malformed leaf: expected bytes, got str"):
        log.append("text")
    log.append(b"a")
    for call, words in ((lambda: log.root("1"), "malformed tree size: expected an int, got str"),
                        (lambda: log.inclusion_proof(0.0), "malformed leaf index: expected an int, got float"),
                        (lambda: log.inclusion_proof(False), "malformed leaf index: expected an int, got bool")):  # fmt: skip
        with pytest.raises(MalformedInputError, match=words):
            call()
    assert log.size == 1 and log.inclusion_proof(0, 1) == []


ALGO_NAMES = '"blake3", "sha256", "sm3"'
R = merkle.root([b"a"])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: merkle.verify_inclusion(None, 0, 1, [], R), MalformedInputError, "leaf must be bytes, got NoneType"),
        (lambda: merkle.verify_inclusion("a", 0, 1, [], R), MalformedInputError, "leaf must be bytes, got str"),
        (lambda: merkle.verify_inclusion(b"a", 0, 1, [], None), MalformedInputError, "root must be bytes, got NoneType"),
        (lambda: merkle.verify_inclusion(b"a", 0, 1, [], R.hex()), MalformedInputError, "root must be bytes, got str"),
        (lambda: merkle.verify_inclusion(b"a", 2.0, 5, [], R), MalformedInputError, "malformed leaf index: expected an int, got float"),
        (lambda: merkle.verify_inclusion(b"a", 0, "1", [], R), MalformedInputError, "malformed tree size: expected an int, got str"),
        (lambda: merkle.verify_inclusion(b"a", True, 2, [], R), MalformedInputError, "malformed leaf index: expected an int, got bool"),
        (lambda: merkle.verify_inclusion(b"a", 0, True, [], R), MalformedInputError, "malformed tree size: expected an int, got bool"),
        (lambda: merkle.verify_inclusion(b"a", 0, 1, [], R, None), UnknownNameError,
         f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        (lambda: merkle.verify_consistency(1, 2, None, R, []), MalformedInputError, "old_root must be bytes, got NoneType"),
        (lambda: merkle.verify_consistency(1, 2, R, "r", []), MalformedInputError, "new_root must be bytes, got str"),
        (lambda: merkle.verify_consistency(1.0, 2, R, R, []), MalformedInputError, "malformed old size: expected an int, got float"),
        (lambda: merkle.verify_consistency(1, None, R, R, []), MalformedInputError, "malformed new size: expected an int, got NoneType"),
        (lambda: merkle.verify_consistency(False, 1, R, R, []), MalformedInputError, "malformed old size: expected an int, got bool"),
        (lambda: merkle.verify_consistency(1, 2, R, R, [], None), UnknownNameError,
         f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        (lambda: merkle.inclusion_proof([b"a"], None), MalformedInputError, "malformed leaf index: expected an int, got NoneType"),
        (lambda: merkle.inclusion_proof([b"a"], 0, None), UnknownNameError,
         f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        (lambda: merkle.consistency_proof([b"a"], "1"), MalformedInputError, "malformed old size: expected an int, got str"),
        (lambda: merkle.consistency_proof([b"a"], 1, b"sha256"), UnknownNameError,
         f"algo must be a str, one of {ALGO_NAMES}; got bytes"),
        (lambda: merkle.root([b"a"], None), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        # The log class itself, native: PyO3's TypeError and UnicodeEncodeError before.
        (lambda: merkle.MerkleLog(None), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        (lambda: merkle.MerkleLog(b"sha256"), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got bytes"),
        (lambda: merkle.MerkleLog("\ud800"), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got '\\ud800'"),
    ],
    ids=[
        "inclusion leaf None", "inclusion leaf str", "inclusion root None", "inclusion root str",
        "inclusion index float", "inclusion tree_size str", "inclusion index bool", "inclusion tree_size bool",
        "inclusion algo None", "consistency old_root None", "consistency new_root str", "consistency old_size float",
        "consistency new_size None", "consistency old_size bool",
        "consistency algo None", "inclusion_proof index None", "inclusion_proof algo None",
        "consistency_proof old_size str", "consistency_proof algo bytes", "root algo None",
        "MerkleLog algo None", "MerkleLog algo bytes", "MerkleLog algo surrogate",
    ],
)  # fmt: skip
def test_wrong_argument_types_raise_typed_errors_naming_the_argument(call, error, message):
    assert_typed_argument_error(call, error, message)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_verifiers_take_bytearray_and_memoryview_like_bytes(log5, kind):
    root, proof = log5.root(), log5.inclusion_proof(2)
    assert merkle.verify_inclusion(kind(b"c"), 2, 5, proof, kind(root)) is True
    assert merkle.verify_inclusion(kind(b"d"), 2, 5, proof, root) is False
    old_root, cproof = log5.root(3), log5.consistency_proof(3)
    assert merkle.verify_consistency(3, 5, kind(old_root), kind(root), cproof) is True
    assert merkle.verify_consistency(3, 5, kind(root), root, cproof) is False
    # Copied bytes are checked like bytes: a short root is still a ValueError naming the size.
    with pytest.raises(ValueError, match="32"):
        merkle.verify_inclusion(b"c", 2, 5, proof, kind(root[:16]))


def test_a_memoryview_of_any_format_is_its_bytes_in_batches_as_alone():
    # A view's items were read element by element: array('H', [1, 2, 3]) hashed as b"\x01\x02\x03";
    # array('I') views and 2-D views raised bare OverflowError and NotImplementedError.
    wide = memoryview(array.array("H", [1, 2, 3]))
    grid = memoryview(bytes(range(64))).cast("B", (2, 32))
    for view in (wide, grid, memoryview(array.array("I", [1000] * 8))):
        assert merkle.root([view]) == merkle.root([bytes(view)])
        log = merkle.MerkleLog("sha256")
        log.extend([view])
        assert merkle.verify_inclusion(view, 0, 1, [], log.root())
        assert bytes(hashing.digest_many([view])[0]) == hashing.digest(view) == hashing.digest(bytes(view))
    node = merkle.inclusion_proof([b"a", b"b"], 0)[0]
    assert merkle.verify_inclusion(b"a", 0, 2, [memoryview(node).cast("B", (2, 16))], merkle.root([b"a", b"b"]))
    released = memoryview(b"x" * 32)
    released.release()
    for call in (lambda: merkle.root([b"a", released]), lambda: merkle.verify_inclusion(released, 0, 1, [], R)):
        with pytest.raises(MalformedInputError, match="released memoryview"):
            call()


def test_from_bytes_takes_bytes_only_and_huge_positions_are_named_not_printed():
    for data in ("text", bytearray(b"x"), None):
        with pytest.raises(MalformedInputError, match=f"expected bytes, got {type(data).__name__}"):
            merkle.MerkleLog.from_bytes(data)  # type: ignore[arg-type]
    # str() of an int of over 4300 digits raises: the message says which side it is out on.
    class Index:  # an int by __index__ alone, with no < to compare it by
        def __init__(self, value: int) -> None:
            self.value = value

        def __index__(self) -> int:
            return self.value

    for index, side in ((10**5000, "2**64 or more"), (-(10**5000), "below 0"), (Index(2**70), "2**64 or more"),
                        (Index(-1), "below 0")):  # fmt: skip
        with pytest.raises(OutOfRangeError, match=re.escape(f"leaf index out of range: it is {side}, and must be")):
            merkle.verify_inclusion(b"a", index, 1, [], R)  # type: ignore[arg-type]


def test_algorithms_give_different_trees():
    leaves = leaves_for(10)
    roots = {merkle.root(leaves, algo) for algo in ALGOS}
    assert len(roots) == 3


if __name__ == "__main__" and "--write-vectors" in sys.argv:
    with open(VECTORS / "rfc9162_sha256.json", "w", encoding="utf-8") as f:
        json.dump(build_vectors(), f, indent=1)
        f.write("\n")
    print("wrote", VECTORS / "rfc9162_sha256.json")
