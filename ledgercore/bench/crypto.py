"""ledgercore bench crypto: signatures, hashing and Merkle trees, each against a peer library
measured in the same run (issue 2's speed goals).

Inputs are generated before any clock starts. Every measurement is the best of --repeat rounds,
ledgercore and its peer taking turns, and every measured call's answer is checked (all signatures
valid, digests and roots equal to the peer's), so a broken fast path cannot look fast. Ledgercore
gets the same Python lists of bytes the peers loop over (numpy arrays are accepted too, and skip a
little extraction work).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ledgercore import hashing, merkle, signing

from ..arg_types import POSITIVE
from .common import BenchError, Goal, Report, Result, best_times, check, missing, optional, progress

HELP = "Ed25519/SM2/P-256 batches, hashing and Merkle trees vs cryptography, PyNaCl, hashlib, blake3, gmssl, pymerkle"
PEER_PACKAGES = ("cryptography", "pynacl", "blake3", "gmssl", "pymerkle", "numpy")
MESSAGE_SIZE = 64
LEAF_SIZE = 32


@dataclass(frozen=True)
class Sizes:
    repeat: int = 3
    ed25519_sigs: int = 16384
    ed25519_keys: int = 1024
    merkle_leaves: int = 1 << 20
    pymerkle_appends: int = 20_000
    proof_log_leaves: int = 1 << 20
    proofs: int = 200_000
    pymerkle_proofs: int = 5_000
    digest_items: int = 500_000
    digest_item_size: int = 64
    gmssl_sm3_items: int = 2_000
    sm2_sigs: int = 2048
    sm2_keys: int = 128
    gmssl_sigs: int = 48
    p256_sigs: int = 4096
    p256_keys: int = 256


FULL = Sizes()
QUICK = Sizes(
    repeat=1,
    ed25519_sigs=512,
    ed25519_keys=32,
    merkle_leaves=4099,
    pymerkle_appends=500,
    proof_log_leaves=4099,
    proofs=2_000,
    pymerkle_proofs=200,
    digest_items=5_000,
    gmssl_sm3_items=50,
    sm2_sigs=64,
    sm2_keys=8,
    gmssl_sigs=2,
    p256_sigs=128,
    p256_keys=16,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke test, not a measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--repeat", type=POSITIVE, metavar="K", help="rounds per measurement, best kept (default 3; 1 with --quick)")
    parser.add_argument(
        "--only", action="append", choices=sorted(GROUPS), metavar="GROUP",
        help=f"run only this group (repeatable): {', '.join(GROUPS)}",
    )


def run(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    if args.repeat:
        sizes = replace(sizes, repeat=args.repeat)
    report = Report("crypto", quick=args.quick, packages=PEER_PACKAGES)
    report.info["message_size"] = MESSAGE_SIZE
    try:
        for name, group in GROUPS.items():
            if args.only and name not in args.only:
                continue
            progress(f"[bench crypto] {name} ...")
            report.results.extend(group(sizes))
    except BenchError as err:
        progress(f"ledgercore bench crypto: {err}")
        return 1
    report.emit(args.json)
    return 0


# ---------------------------------------------------------------------------------------- inputs


def random_items(count: int, size: int) -> list[bytes]:
    blob = os.urandom(count * size)
    return [blob[i : i + size] for i in range(0, count * size, size)]


@functools.lru_cache(maxsize=2)
def leaves(count: int) -> list[bytes]:
    return random_items(count, LEAF_SIZE)


def signed_batch(scheme: str, signatures: int, keys: int) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """``signatures`` messages, message i signed by key ``i % keys``: (public keys, messages, signatures)."""
    pairs = [signing.generate(scheme) for _ in range(keys)]
    messages = random_items(signatures, MESSAGE_SIZE)
    sigs = [b""] * signatures
    for k, pair in enumerate(pairs):
        rows = pair.sign_many(messages[k::keys])
        for i, row in zip(range(k, signatures, keys), rows):
            sigs[i] = row.tobytes()
    public_keys = [pairs[i % keys].public_key for i in range(signatures)]
    return public_keys, messages, sigs


# ------------------------------------------------------------------------------------ signatures


def verify_batch_call(scheme: str, keys: list[bytes], msgs: list[bytes], sigs: list[bytes]) -> Callable[[], None]:
    def call() -> None:
        out = signing.verify_batch(scheme, keys, msgs, sigs)
        check(out.dtype == np.bool_ and out.shape == (len(sigs),) and bool(out.all()), f"{scheme} verify_batch: all valid")

    return call


def check_rejects_one(scheme: str, keys: list[bytes], msgs: list[bytes], sigs: list[bytes]) -> None:
    """Untimed: a batch with one tampered signature must come back False there and only there."""
    j = len(sigs) // 3
    tampered = list(sigs)
    bad = bytearray(tampered[j])
    bad[5] ^= 0x01
    tampered[j] = bytes(bad)
    expected = np.ones(len(sigs), dtype=bool)
    expected[j] = False
    out = signing.verify_batch(scheme, keys, msgs, tampered)
    check(np.array_equal(out, expected), f"{scheme} verify_batch rejects exactly the tampered signature")


def bench_ed25519(s: Sizes) -> list[Result]:
    keys, msgs, sigs = signed_batch("ed25519", s.ed25519_sigs, s.ed25519_keys)
    check_rejects_one("ed25519", keys, msgs, sigs)
    n = len(sigs)
    operation = f"ed25519 verify_batch ({n} sigs, {s.ed25519_keys} keys)"
    calls: dict[str, Callable[[], object]] = {"ours": verify_batch_call("ed25519", keys, msgs, sigs)}
    if optional("cryptography"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        loaded = {k: Ed25519PublicKey.from_public_bytes(k) for k in set(keys)}
        crypto_keys = [loaded[k] for k in keys]

        def cryptography_loop() -> None:
            for key, msg, sig in zip(crypto_keys, msgs, sigs):
                key.verify(sig, msg)  # raises InvalidSignature

        calls["cryptography"] = cryptography_loop
    if optional("nacl"):
        from nacl.signing import VerifyKey

        loaded_nacl = {k: VerifyKey(k) for k in set(keys)}
        nacl_keys = [loaded_nacl[k] for k in keys]

        def nacl_loop() -> None:
            for key, msg, sig in zip(nacl_keys, msgs, sigs):
                key.verify(msg, sig)  # raises BadSignatureError

        calls["pynacl"] = nacl_loop
    t = best_times(calls, s.repeat)
    rate = n / t["ours"]
    return [
        peer_result(operation, "sig/s", n, rate, "cryptography verify loop", n, t.get("cryptography"), Goal("ratio", 8),
                    absent=missing("cryptography", "cryptography")),
        peer_result(operation, "sig/s", n, rate, "PyNaCl verify loop", n, t.get("pynacl"), None,
                    absent=missing("PyNaCl", "pynacl")),
    ]


def bench_sm2(s: Sizes) -> list[Result]:
    keys, msgs, sigs = signed_batch("sm2", s.sm2_sigs, s.sm2_keys)
    check_rejects_one("sm2", keys, msgs, sigs)
    n, m = len(sigs), min(s.gmssl_sigs, len(sigs))
    calls: dict[str, Callable[[], object]] = {"ours": verify_batch_call("sm2", keys, msgs, sigs)}
    if optional("gmssl"):
        from gmssl import sm2 as gm_sm2  # type: ignore[import-untyped]

        def verifier(public_key: bytes) -> gm_sm2.CryptSM2:
            v = gm_sm2.CryptSM2(private_key="", public_key="")
            v.public_key = public_key[1:].hex()  # x || y; set directly, the constructor's lstrip("04") can eat digits
            return v

        loaded = {k: verifier(k) for k in set(keys[:m])}
        gm_keys, gm_sigs = [loaded[k] for k in keys[:m]], [sig.hex() for sig in sigs[:m]]

        def gmssl_loop() -> None:
            ok = [v.verify_with_sm3(sig, msg) for v, sig, msg in zip(gm_keys, gm_sigs, msgs)]
            check(all(ok), "gmssl verifies ledgercore's SM2 signatures")

        calls["gmssl"] = gmssl_loop
    t = best_times(calls, s.repeat)
    return [
        peer_result(f"sm2 verify_batch ({n} sigs, {s.sm2_keys} keys)", "sig/s", n, n / t["ours"],
                    f"gmssl verify_with_sm3 loop ({m})", m, t.get("gmssl"), None, absent=missing("gmssl", "gmssl")),
    ]


def bench_p256(s: Sizes) -> list[Result]:
    keys, msgs, sigs = signed_batch("p256", s.p256_sigs, s.p256_keys)
    check_rejects_one("p256", keys, msgs, sigs)
    n = len(sigs)
    calls: dict[str, Callable[[], object]] = {"ours": verify_batch_call("p256", keys, msgs, sigs)}
    if optional("cryptography"):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        loaded = {k: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), k) for k in set(keys)}
        crypto_keys = [loaded[k] for k in keys]
        der = [encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")) for sig in sigs]
        ecdsa = ec.ECDSA(hashes.SHA256())

        def cryptography_loop() -> None:
            for key, msg, sig in zip(crypto_keys, msgs, der):
                key.verify(sig, msg, ecdsa)  # raises InvalidSignature

        calls["cryptography"] = cryptography_loop
    t = best_times(calls, s.repeat)
    return [
        peer_result(f"p256 verify_batch ({n} sigs, {s.p256_keys} keys)", "sig/s", n, n / t["ours"],
                    "cryptography ECDSA verify loop", n, t.get("cryptography"), Goal("ratio", 2),
                    absent=missing("cryptography", "cryptography")),
    ]


# --------------------------------------------------------------------------------------- hashing


def bench_digest(s: Sizes) -> list[Result]:
    items = random_items(s.digest_items, s.digest_item_size)
    n = len(items)
    size = f"{n} x {s.digest_item_size} B"
    results: list[Result] = []
    last: dict[str, Any] = {}

    def ours(algo: str) -> Callable[[], object]:
        def call() -> None:
            out = hashing.digest_many(items, algo)
            check(out.shape == (n, 32), f"digest_many {algo} shape")
            last[algo] = out

        return call

    # sha256 against hashlib
    def hashlib_loop() -> None:
        sha256 = hashlib.sha256
        last["hashlib"] = [sha256(x).digest() for x in items]

    t = best_times({"ours": ours("sha256"), "hashlib": hashlib_loop}, s.repeat)
    check(last["sha256"].tobytes() == b"".join(last["hashlib"]), "digest_many sha256 equals hashlib")
    results.append(peer_result(f"digest_many sha256 ({size})", "hash/s", n, n / t["ours"], "hashlib.sha256 loop", n,
                               t["hashlib"], Goal("ratio", 3)))

    # blake3 against the blake3 package
    calls: dict[str, Callable[[], object]] = {"ours": ours("blake3")}
    if optional("blake3"):
        import blake3

        def blake3_loop() -> None:
            hasher = blake3.blake3
            last["blake3pkg"] = [hasher(x).digest() for x in items]

        calls["peer"] = blake3_loop
    t = best_times(calls, s.repeat)
    if "peer" in t:
        check(last["blake3"].tobytes() == b"".join(last["blake3pkg"]), "digest_many blake3 equals the blake3 package")
    results.append(peer_result(f"digest_many blake3 ({size})", "hash/s", n, n / t["ours"], "blake3 package loop", n,
                               t.get("peer"), None, absent=missing("blake3", "blake3")))

    # sm3 against gmssl (pure Python, so on fewer items)
    m = min(s.gmssl_sm3_items, n)
    calls = {"ours": ours("sm3")}
    if optional("gmssl"):
        from gmssl import func, sm3

        def gmssl_loop() -> None:
            last["gmssl"] = [sm3.sm3_hash(func.bytes_to_list(x)) for x in items[:m]]

        calls["peer"] = gmssl_loop
    t = best_times(calls, s.repeat)
    if "peer" in t:
        ours_hex = [row.tobytes().hex() for row in last["sm3"][:m]]
        check(ours_hex == last["gmssl"], "digest_many sm3 equals gmssl")
    results.append(peer_result(f"digest_many sm3 ({size})", "hash/s", n, n / t["ours"], f"gmssl sm3_hash loop ({m})", m,
                               t.get("peer"), None, absent=missing("gmssl", "gmssl")))
    return results


# ---------------------------------------------------------------------------------------- merkle


def hashlib_root(data: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH written plainly: leaf hashes, then pairwise levels; an odd last node moves up as is."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + leaf).digest() for leaf in data]
    if not level:
        return sha256(b"").digest()
    while len(level) > 1:
        parents = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def bench_merkle(s: Sizes) -> list[Result]:
    data = leaves(s.merkle_leaves)
    n = len(data)
    operation = f"merkle.root sha256 ({n} x {LEAF_SIZE} B)"
    last: dict[str, Any] = {}

    def ours() -> None:
        last["ours"] = merkle.root(data, "sha256")

    def hashlib_loop() -> None:
        last["hashlib"] = hashlib_root(data)

    calls: dict[str, Callable[[], object]] = {"ours": ours, "hashlib": hashlib_loop}
    subset = data[: min(s.pymerkle_appends, n)]
    if optional("pymerkle"):
        from pymerkle import InmemoryTree  # type: ignore[import-untyped]

        def pymerkle_appends() -> None:
            tree = InmemoryTree(algorithm="sha256")
            for leaf in subset:
                tree.append_entry(leaf)
            last["pymerkle"] = tree

        calls["pymerkle"] = pymerkle_appends
    t = best_times(calls, s.repeat)
    check(last["ours"] == last["hashlib"], "merkle.root equals the hashlib RFC 9162 loop")
    if "pymerkle" in last:
        check(last["pymerkle"].get_root() == merkle.root(subset), "merkle.root equals pymerkle's root")
    rate = n / t["ours"]
    return [
        peer_result(operation, "leaf/s", n, rate, f"pymerkle append ({len(subset)})", len(subset), t.get("pymerkle"),
                    Goal("ratio", 100), absent=missing("pymerkle", "pymerkle")),
        peer_result(operation, "leaf/s", n, rate, "hashlib RFC 9162 loop", n, t["hashlib"], Goal("ratio", 5)),
    ]


def audit_path_length(index: int, size: int) -> int:
    length, lo, hi = 0, 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        lo, hi = (lo, lo + k) if index < lo + k else (lo + k, hi)
        length += 1
    return length


def verify_inclusion_py(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2, with hashlib: an independent check of ledgercore's proofs."""
    sha256 = hashlib.sha256
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = sha256(b"\x00" + leaf).digest()
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def bench_proofs(s: Sizes) -> list[Result]:
    data = leaves(s.proof_log_leaves)
    size = len(data)
    log = merkle.MerkleLog("sha256")
    log.extend(data)
    root = log.root()
    check(root == merkle.root(data), "MerkleLog root equals merkle.root")
    rng = random.Random(9162)
    indices = [rng.randrange(size) for _ in range(s.proofs)]
    expected_nodes = sum(audit_path_length(i, size) for i in indices)
    for i in indices[:64]:
        check(verify_inclusion_py(data[i], i, size, log.inclusion_proof(i), root), f"inclusion proof of leaf {i} verifies")

    def ours() -> None:
        prove = log.inclusion_proof
        nodes = 0
        for i in indices:
            nodes += len(prove(i))
        check(nodes == expected_nodes, "inclusion proofs have RFC 9162 audit-path lengths")

    calls: dict[str, Callable[[], object]] = {"ours": ours}
    peer_size = min(s.pymerkle_appends, size)
    if optional("pymerkle"):
        from pymerkle import InmemoryTree

        tree = InmemoryTree(algorithm="sha256")
        for leaf in data[:peer_size]:
            tree.append_entry(leaf)
        peer_indices = [rng.randrange(peer_size) + 1 for _ in range(s.pymerkle_proofs)]  # pymerkle counts from 1

        def pymerkle_loop() -> None:
            prove = tree.prove_inclusion
            for i in peer_indices:
                prove(i)

        calls["pymerkle"] = pymerkle_loop
    t = best_times(calls, s.repeat)
    return [
        peer_result(f"MerkleLog.inclusion_proof ({size}-leaf log)", "proof/s", len(indices), len(indices) / t["ours"],
                    f"pymerkle prove_inclusion ({peer_size}-leaf tree)", s.pymerkle_proofs, t.get("pymerkle"),
                    Goal("rate", 200_000), absent=missing("pymerkle", "pymerkle")),
    ]


# ------------------------------------------------------------------------------------------ glue


def peer_result(
    operation: str,
    unit: str,
    items: int,
    rate: float,
    peer: str,
    peer_items: int,
    peer_seconds: float | None,
    goal: Goal | None,
    absent: str = "",
) -> Result:
    if peer_seconds is None:
        return Result(operation, unit, items, rate, peer, None, None, goal, note=absent)
    return Result(operation, unit, items, rate, peer, peer_items, peer_items / peer_seconds, goal)


GROUPS: dict[str, Callable[[Sizes], list[Result]]] = {
    "ed25519": bench_ed25519,
    "merkle": bench_merkle,
    "proofs": bench_proofs,
    "digest": bench_digest,
    "sm2": bench_sm2,
    "p256": bench_p256,
}
