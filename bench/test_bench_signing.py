"""verify_batch against single-verify loops: cryptography and PyNaCl (Ed25519), cryptography (P-256),
gmssl (SM2). Peers get their key objects loaded before timing."""

from __future__ import annotations

import numpy as np
import pytest

from ledgercore import signing
from ledgercore.bench.crypto import signed_batch

ED25519_SIGS, ED25519_KEYS = 16_384, 1_024
P256_SIGS, P256_KEYS = 4_096, 256
SM2_SIGS, SM2_KEYS = 64, 8  # gmssl verifies ~50 SM2 signatures a second: a small group, for both sides


@pytest.fixture(scope="module")
def ed25519_batch():
    return signed_batch("ed25519", ED25519_SIGS, ED25519_KEYS)


@pytest.fixture(scope="module")
def p256_batch():
    return signed_batch("p256", P256_SIGS, P256_KEYS)


@pytest.fixture(scope="module")
def sm2_batch():
    return signed_batch("sm2", SM2_SIGS, SM2_KEYS)


def as_array(rows: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1)


@pytest.mark.benchmark(group="ed25519 verify, 16k sigs from 1k keys")
def test_ledgercore_ed25519_verify_batch(measure, ed25519_batch) -> None:
    keys, msgs, sigs = ed25519_batch
    out = measure(lambda: signing.verify_batch("ed25519", keys, msgs, sigs), len(sigs))
    assert out.all()


@pytest.mark.benchmark(group="ed25519 verify, 16k sigs from 1k keys")
def test_ledgercore_ed25519_verify_batch_numpy_input(measure, ed25519_batch) -> None:
    keys, msgs, sigs = (as_array(column) for column in ed25519_batch)
    out = measure(lambda: signing.verify_batch("ed25519", keys, msgs, sigs), len(sigs))
    assert out.all()


@pytest.mark.benchmark(group="ed25519 verify, 16k sigs from 1k keys")
def test_cryptography_ed25519_verify_loop(measure, ed25519_batch) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys, msgs, sigs = ed25519_batch
    loaded = {k: Ed25519PublicKey.from_public_bytes(k) for k in set(keys)}
    objects = [loaded[k] for k in keys]

    def loop() -> int:
        for key, msg, sig in zip(objects, msgs, sigs):
            key.verify(sig, msg)  # raises InvalidSignature
        return len(sigs)

    assert measure(loop, len(sigs), rounds=3) == len(sigs)


@pytest.mark.benchmark(group="ed25519 verify, 16k sigs from 1k keys")
def test_pynacl_ed25519_verify_loop(measure, ed25519_batch) -> None:
    pytest.importorskip("nacl")
    from nacl.signing import VerifyKey

    keys, msgs, sigs = ed25519_batch
    loaded = {k: VerifyKey(k) for k in set(keys)}
    objects = [loaded[k] for k in keys]

    def loop() -> int:
        for key, msg, sig in zip(objects, msgs, sigs):
            key.verify(msg, sig)  # raises BadSignatureError
        return len(sigs)

    assert measure(loop, len(sigs), rounds=3) == len(sigs)


@pytest.mark.benchmark(group="p256 verify, 4k sigs from 256 keys")
def test_ledgercore_p256_verify_batch(measure, p256_batch) -> None:
    keys, msgs, sigs = p256_batch
    out = measure(lambda: signing.verify_batch("p256", keys, msgs, sigs), len(sigs), rounds=5)
    assert out.all()


@pytest.mark.benchmark(group="p256 verify, 4k sigs from 256 keys")
def test_cryptography_p256_verify_loop(measure, p256_batch) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    keys, msgs, sigs = p256_batch
    loaded = {k: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), k) for k in set(keys)}
    objects = [loaded[k] for k in keys]
    der = [encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big")) for s in sigs]
    ecdsa = ec.ECDSA(hashes.SHA256())

    def loop() -> int:
        for key, msg, sig in zip(objects, msgs, der):
            key.verify(sig, msg, ecdsa)  # raises InvalidSignature
        return len(sigs)

    assert measure(loop, len(sigs), rounds=5) == len(sigs)


@pytest.mark.benchmark(group="sm2 verify, 64 sigs from 8 keys")
def test_ledgercore_sm2_verify_batch(measure, sm2_batch) -> None:
    keys, msgs, sigs = sm2_batch
    out = measure(lambda: signing.verify_batch("sm2", keys, msgs, sigs), len(sigs))
    assert out.all()


@pytest.mark.benchmark(group="sm2 verify, 64 sigs from 8 keys")
def test_gmssl_sm2_verify_loop(measure, sm2_batch) -> None:
    pytest.importorskip("gmssl")
    from gmssl import sm2

    keys, msgs, sigs = sm2_batch

    def verifier(public_key: bytes) -> sm2.CryptSM2:
        v = sm2.CryptSM2(private_key="", public_key="")
        v.public_key = public_key[1:].hex()  # set directly: the constructor's lstrip("04") can eat digits
        return v

    loaded = {k: verifier(k) for k in set(keys)}
    objects, hex_sigs = [loaded[k] for k in keys], [s.hex() for s in sigs]
    out = measure(lambda: [v.verify_with_sm3(s, m) for v, s, m in zip(objects, hex_sigs, msgs)],
                  len(sigs), rounds=3)
    assert all(out)
