"""Signatures: RFC 8032 and GM/T 0003.5 vectors, interoperability both ways with `cryptography`
(Ed25519, P-256) and gmssl (SM2), ZIP-215 edge cases, batch verification, key loading, bad input."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_typed_argument_error, load_vectors
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from gmssl import func, sm2, sm3
from hypothesis import assume, given
from hypothesis import strategies as st

from ledgercore import signing
from ledgercore.errors import (
    InvalidKeyError,
    InvalidLengthError,
    MalformedInputError,
    UnknownNameError,
)

SCHEMES = ["ed25519", "sm2", "p256"]
# Group orders.
N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
N_SM2 = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
N = {"sm2": N_SM2, "p256": N_P256}
# Ed25519: the prime subgroup order and the field prime.
L_ED = 2**252 + 27742317777372353535851937790883648493
P_ED = 2**255 - 19
D_ED = (-121665 * pow(121666, -1, P_ED)) % P_ED


def b32(i: int) -> bytes:
    return i.to_bytes(32, "big")


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# ------------------------------------------------------------------------- independent implementations


def crypto_ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def crypto_p256_public(d: int) -> bytes:
    key = ec.derive_private_key(d, ec.SECP256R1())
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def crypto_p256_sign(d: int, message: bytes) -> bytes:
    """A raw r || s signature made by cryptography (OpenSSL, random nonce, high or low S)."""
    der = ec.derive_private_key(d, ec.SECP256R1()).sign(message, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return b32(r) + b32(s)


def crypto_p256_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


# gmssl's CryptSM2 takes hex strings: the private scalar, and the public key as x || y *without* the 04
# prefix (its constructor strips a leading "04" with str.lstrip, which also eats any further '0'/'4'
# digits, so we never pass the prefix -- and avoid keys whose x itself starts with "04"). Signatures
# are hex r || s. sign_with_sm3 / verify_with_sm3 hash Z_A (default ID "1234567812345678") || M with SM3.


def gm_public_xy(d: int) -> str:
    helper = sm2.CryptSM2(private_key="", public_key="")
    return helper._kg(d, sm2.default_ecc_table["g"])


def gm_sign(d: int, message: bytes) -> bytes:
    xy = gm_public_xy(d)
    crypt = sm2.CryptSM2(private_key=f"{d:064x}", public_key=xy)
    while True:
        k = func.random_hex(crypt.para_len)
        if 0 < int(k, 16) < N_SM2:
            sig = crypt.sign_with_sm3(message, k)
            if sig is not None:
                return bytes.fromhex(sig)


def gm_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    assert public_key[0] == 0x04
    crypt = sm2.CryptSM2(private_key="", public_key=public_key[1:].hex())
    return bool(crypt.verify_with_sm3(signature.hex(), message))


def sm3_hash(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


# -------------------------------------------------------------------------------- RFC 8032 vectors


RFC8032 = load_vectors("rfc8032_ed25519.json")["vectors"]


def test_rfc8032_vector_file_is_complete_and_self_consistent():
    assert [v["name"] for v in RFC8032] == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
    for v in RFC8032:
        seed, message = bytes.fromhex(v["secret_key"]), bytes.fromhex(v["message"])
        theirs = Ed25519PrivateKey.from_private_bytes(seed)
        assert theirs.public_key().public_bytes_raw().hex() == v["public_key"], v["name"]
        assert theirs.sign(message).hex() == v["signature"], v["name"]
    assert len(bytes.fromhex(RFC8032[3]["message"])) == 1023
    assert len(bytes.fromhex(RFC8032[4]["message"])) == 64


@pytest.mark.parametrize("v", RFC8032, ids=[v["name"] for v in RFC8032])
def test_rfc8032_section_7_1(v):
    seed, public_key = bytes.fromhex(v["secret_key"]), bytes.fromhex(v["public_key"])
    message, signature = bytes.fromhex(v["message"]), bytes.fromhex(v["signature"])
    kp = signing.from_private_bytes("ed25519", seed)
    assert kp.scheme == "ed25519"
    assert kp.public_key == public_key
    assert kp.private_bytes() == seed
    assert kp.sign(message) == signature
    assert signing.verify("ed25519", public_key, message, signature) is True
    assert signing.verify("ed25519", public_key, message + b"\0", signature) is False


def test_rfc8032_vectors_in_one_batch():
    keys = [bytes.fromhex(v["public_key"]) for v in RFC8032]
    messages = [bytes.fromhex(v["message"]) for v in RFC8032]
    sigs = [bytes.fromhex(v["signature"]) for v in RFC8032]
    assert signing.verify_batch("ed25519", keys, messages, sigs).tolist() == [True] * 5
    sigs[2] = flip(sigs[2], 40)
    assert signing.verify_batch("ed25519", keys, messages, sigs).tolist() == [True, True, False, True, True]


# ---------------------------------------------------------------------------- Ed25519 interop


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=256))
def test_ed25519_interop_with_cryptography_both_ways(seed, message):
    ours = signing.from_private_bytes("ed25519", seed)
    theirs = Ed25519PrivateKey.from_private_bytes(seed)
    assert ours.public_key == theirs.public_key().public_bytes_raw()
    our_sig = ours.sign(message)
    their_sig = theirs.sign(message)
    # Deterministic scheme: the same signature byte for byte, and each side accepts the other's.
    assert our_sig == their_sig
    assert crypto_ed25519_verify(ours.public_key, message, our_sig)
    assert signing.verify("ed25519", ours.public_key, message, their_sig)


def test_ed25519_generated_keys_interoperate():
    for _ in range(5):
        kp = signing.generate("ed25519")
        theirs = Ed25519PrivateKey.from_private_bytes(kp.private_bytes())
        assert theirs.public_key().public_bytes_raw() == kp.public_key
        msg = os.urandom(100)
        assert crypto_ed25519_verify(kp.public_key, msg, kp.sign(msg))
        assert signing.verify("ed25519", kp.public_key, msg, theirs.sign(msg))


# ------------------------------------------------------------------------------- P-256 interop


@given(d=st.integers(1, N_P256 - 1), message=st.binary(max_size=200))
def test_p256_interop_with_cryptography_both_ways(d, message):
    ours = signing.from_private_bytes("p256", b32(d))
    assert ours.public_key == crypto_p256_public(d)
    assert len(ours.public_key) == 65 and ours.public_key[0] == 0x04
    our_sig = ours.sign(message)
    assert len(our_sig) == 64
    assert crypto_p256_verify(ours.public_key, message, our_sig)
    their_sig = crypto_p256_sign(d, message)
    assert signing.verify("p256", ours.public_key, message, their_sig)
    assert not signing.verify("p256", ours.public_key, message + b"!", their_sig)


def test_p256_accepts_cryptography_high_s_signatures_as_cryptography_does():
    d = int.from_bytes(os.urandom(32), "big") % (N_P256 - 1) + 1
    public_key = crypto_p256_public(d)
    high = 0
    for i in range(24):
        message = b"high-s %d" % i
        sig = crypto_p256_sign(d, message)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        twin = b32(r) + b32(N_P256 - s)  # the other S of the pair: one of the two is high
        high += (s > N_P256 // 2) + (N_P256 - s > N_P256 // 2)
        for candidate in (sig, twin):
            assert crypto_p256_verify(public_key, message, candidate)
            assert signing.verify("p256", public_key, message, candidate)
    assert high == 24


def test_p256_signatures_are_deterministic():
    kp = signing.from_private_bytes("p256", b32(12345))
    assert kp.sign(b"same") == kp.sign(b"same")
    assert kp.sign(b"same") != kp.sign(b"other")


# --------------------------------------------------------------------------------- SM2 interop


SM2_STANDARD = load_vectors("sm2_gmt0003.json")["vectors"][0]


def test_sm2_gmt0003_example_vector():
    """GM/T 0003.5 / GB/T 32918.5 Appendix A: recommended curve, SM3, ID 1234567812345678."""
    v = SM2_STANDARD
    d, public_key = bytes.fromhex(v["private_key"]), bytes.fromhex(v["public_key"])
    message, signature = v["message_ascii"].encode(), bytes.fromhex(v["signature"])
    assert v["id_ascii"] == "1234567812345678"

    # Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA) and e = SM3(Z_A || M), computed here
    # with gmssl's SM3 from the curve parameters, match the standard's intermediate values.
    table = sm2.default_ecc_table
    ident = v["id_ascii"].encode()
    z_input = (len(ident) * 8).to_bytes(2, "big") + ident
    z_input += bytes.fromhex(table["a"] + table["b"] + table["g"]) + public_key[1:]
    za = sm3_hash(z_input)
    assert za.hex() == v["za"]
    assert sm3_hash(za + message).hex() == v["e"]

    # gmssl reproduces the standard's signature from its k, and the public key from d.
    crypt = sm2.CryptSM2(private_key=v["private_key"], public_key=public_key[1:].hex())
    assert gm_public_xy(int(v["private_key"], 16)) == public_key[1:].hex()
    assert crypt.sign_with_sm3(message, v["k"]) == v["signature"]

    # ledgercore: same public key from d, accepts the standard's signature, rejects tampering.
    kp = signing.from_private_bytes("sm2", d)
    assert kp.public_key == public_key
    assert kp.private_bytes() == d
    assert signing.verify("sm2", public_key, message, signature) is True
    assert signing.verify("sm2", public_key, b"message digesT", signature) is False
    assert signing.verify("sm2", public_key, message, flip(signature, 63)) is False
    # Our own signature (other nonce) verifies here and in gmssl.
    ours = kp.sign(message)
    assert signing.verify("sm2", public_key, message, ours)
    assert gm_verify(public_key, message, ours)


@given(d=st.integers(1, N_SM2 - 2), message=st.binary(max_size=120))
def test_sm2_interop_with_gmssl_both_ways(d, message):
    xy = gm_public_xy(d)
    assume(not xy.startswith("04"))  # gmssl's lstrip("04") quirk, see gm_public_xy
    ours = signing.from_private_bytes("sm2", b32(d))
    assert ours.public_key == bytes.fromhex("04" + xy)
    our_sig = ours.sign(message)
    assert len(our_sig) == 64
    assert gm_verify(ours.public_key, message, our_sig)
    their_sig = gm_sign(d, message)
    assert signing.verify("sm2", ours.public_key, message, their_sig)
    assert not signing.verify("sm2", ours.public_key, message + b"!", their_sig)
    assert not gm_verify(ours.public_key, message + b"!", our_sig)


def test_sm2_uses_the_default_distinguishing_id():
    """A signature over the same message under another ID (gmssl with ID "ALICE123@YAHOO.COM") must not
    verify: ledgercore's Z_A is built from the default ID, nothing else."""
    d = 0x128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263
    xy = gm_public_xy(d)
    kp = signing.from_private_bytes("sm2", b32(d))
    message = b"id matters"
    table = sm2.default_ecc_table
    for ident, expect in ((b"1234567812345678", True), (b"ALICE123@YAHOO.COM", False)):
        z = sm3_hash((len(ident) * 8).to_bytes(2, "big") + ident + bytes.fromhex(table["a"] + table["b"] + table["g"] + xy))
        crypt = sm2.CryptSM2(private_key=f"{d:064x}", public_key=xy)
        sig = crypt.sign(sm3_hash(z + message), "6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F")
        assert signing.verify("sm2", kp.public_key, message, bytes.fromhex(sig)) is expect


# ----------------------------------------------------------------------------------- ZIP 215


ZIP215 = load_vectors("zip215.json")


def zip215_accept_cases():
    message = bytes.fromhex(ZIP215["message"])
    return [(bytes.fromhex(c["public_key"]), message, bytes.fromhex(c["signature"])) for c in ZIP215["accept"]]


def zip215_reject_cases():
    return [
        (bytes.fromhex(c["public_key"]), bytes.fromhex(c["message"]), bytes.fromhex(c["signature"]))
        for c in ZIP215["reject"]
    ]


def test_zip215_vectors_are_accepted_by_verify_and_verify_batch():
    cases = zip215_accept_cases()
    assert len(cases) == 196
    single = [signing.verify("ed25519", *c) for c in cases]
    batch = signing.verify_batch("ed25519", *map(list, zip(*cases)))
    assert all(single)
    assert batch.tolist() == single


def test_zip215_vectors_include_what_strict_rfc8032_verifiers_reject():
    """The set is meaningful: OpenSSL (via cryptography) refuses many of these cases, e.g. non-canonical
    R or A encodings and small-order keys -- exactly where an unspecified verifier could split consensus."""
    cases = zip215_accept_cases()
    rejected_by_openssl = [c for c in cases if not crypto_ed25519_verify(*c)]
    assert len(rejected_by_openssl) > len(cases) // 2


def test_zip215_still_requires_canonical_s():
    cases = zip215_reject_cases()
    assert cases
    for c in cases:
        assert signing.verify("ed25519", *c) is False
    assert not signing.verify_batch("ed25519", *map(list, zip(*cases))).any()


def test_zip215_small_order_cases_hold_for_any_message():
    """With S = 0 and small-order A and R, [8]SB = [8]R + [8]kA holds whatever k is, so under ZIP 215
    the cases verify for every message, one at a time and in batches alike."""
    cases = zip215_accept_cases()[::13]
    for message in (b"", b"another message", os.urandom(77)):
        swapped = [(a, message, s) for a, _, s in cases]
        single = [signing.verify("ed25519", *c) for c in swapped]
        assert all(single)
        assert signing.verify_batch("ed25519", *map(list, zip(*swapped))).all()


def y_is_on_curve(y: int) -> bool:
    """Whether some x satisfies -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19)."""
    u, v = (y * y - 1) % P_ED, (D_ED * y * y + 1) % P_ED
    x2 = u * pow(v, -1, P_ED) % P_ED
    return x2 == 0 or pow(x2, (P_ED - 1) // 2, P_ED) == 1


def ed25519_mixed_cases(rng: random.Random) -> list[tuple[bytes, bytes, bytes, str]]:
    """Valid, tampered, wrong-key, non-canonical and ZIP-215 edge cases, shuffled."""
    keys = [signing.from_private_bytes("ed25519", rng.randbytes(32)) for _ in range(8)]
    off_curve_y = next(y for y in range(2, 100) if not y_is_on_curve(y))
    off_curve_key = off_curve_y.to_bytes(32, "little")
    cases = []
    for i in range(300):
        kp = keys[i % len(keys)]
        message = rng.randbytes(rng.randrange(0, 80))
        sig = kp.sign(message)
        kind = i % 10
        if kind == 0:
            cases.append((kp.public_key, message, flip(sig, rng.randrange(64), 1 << rng.randrange(8)), "tampered sig"))
        elif kind == 1 and message:
            cases.append((kp.public_key, flip(message, rng.randrange(len(message))), sig, "tampered message"))
        elif kind == 2:
            cases.append((keys[(i + 1) % len(keys)].public_key, message, sig, "wrong key"))
        elif kind == 3:
            s = int.from_bytes(sig[32:], "little") + L_ED
            cases.append((kp.public_key, message, sig[:32] + s.to_bytes(32, "little"), "S + L"))
        elif kind == 4:
            cases.append((off_curve_key, message, sig, "key off the curve"))
        elif kind == 5:
            a, _, s = rng.choice(zip215_accept_cases())
            cases.append((a, message, s, "zip215 small order"))
        else:
            cases.append((kp.public_key, message, sig, "valid"))
    rng.shuffle(cases)
    return cases


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ed25519_batch_agrees_with_single_verify_on_mixed_cases(seed):
    cases = ed25519_mixed_cases(random.Random(seed))
    single = [signing.verify("ed25519", k, m, s) for k, m, s, _ in cases]
    expected = {"valid": True, "zip215 small order": True}
    for (_, _, _, kind), got in zip(cases, single):
        assert got is expected.get(kind, False), kind
    keys, messages, sigs = ([c[i] for c in cases] for i in range(3))
    # Whole batch, and sub-batches of awkward sizes (the native side bisects failing groups).
    assert signing.verify_batch("ed25519", keys, messages, sigs).tolist() == single
    for size in (1, 2, 3, 4, 5, 7, 31, 64, 257):
        start = random.Random(seed * size).randrange(len(cases) - size)
        part = slice(start, start + size)
        assert signing.verify_batch("ed25519", keys[part], messages[part], sigs[part]).tolist() == single[part]


# ------------------------------------------------------------------------ batch verification


@pytest.fixture(scope="module")
def ed25519_batch():
    """16k Ed25519 signatures from 1k keys over 48-byte messages, as numpy columns."""
    keys = [signing.generate("ed25519") for _ in range(1000)]
    rng = np.random.default_rng(16000)
    messages = rng.integers(0, 256, size=(16000, 48), dtype=np.uint8)
    sigs = np.concatenate([kp.sign_many(messages[i * 16 : (i + 1) * 16]) for i, kp in enumerate(keys)])
    pks = np.frombuffer(b"".join(kp.public_key for kp in keys), dtype=np.uint8).reshape(-1, 32).repeat(16, axis=0)
    return pks, messages, sigs


def test_batch_of_16k_valid_signatures(ed25519_batch):
    pks, messages, sigs = ed25519_batch
    out = signing.verify_batch("ed25519", pks, messages, sigs)
    assert out.shape == (16000,) and out.dtype == np.bool_
    assert out.all()


def spoil(pks, messages, sigs, index: int, how: int):
    pks, messages, sigs = pks.copy(), messages.copy(), sigs.copy()
    if how % 3 == 0:
        sigs[index, (index * 7) % 64] ^= 0x10
    elif how % 3 == 1:
        messages[index, (index * 5) % 48] ^= 0x01
    else:
        pks[index] = pks[(index + 16) % len(pks)]  # another signer's key
    return pks, messages, sigs


@pytest.mark.parametrize("index", [0, 15999, 7999, 8000, 255, 256, 4095, "random", "random", "random"])
def test_batch_with_exactly_one_bad_signature_flags_exactly_that_one(ed25519_batch, index):
    if index == "random":
        index = random.Random(os.urandom(8)).randrange(16000)
    pks, messages, sigs = spoil(*ed25519_batch, index, how=index)
    out = signing.verify_batch("ed25519", pks, messages, sigs)
    assert np.flatnonzero(~out).tolist() == [index], f"bad signature at {index}"
    assert signing.verify("ed25519", pks[index].tobytes(), messages[index].tobytes(), sigs[index].tobytes()) is False


def test_batch_with_several_bad_signatures(ed25519_batch):
    rng = random.Random(os.urandom(8))
    bad = sorted(rng.sample(range(16000), 37) + [0, 1, 2, 3, 4, 15999])
    bad = sorted(set(bad))
    pks, messages, sigs = (col.copy() for col in ed25519_batch)
    for j, i in enumerate(bad):
        pks, messages, sigs = spoil(pks, messages, sigs, i, how=j)
    out = signing.verify_batch("ed25519", pks, messages, sigs)
    assert np.flatnonzero(~out).tolist() == bad


def test_batch_where_every_signature_is_bad(ed25519_batch):
    pks, messages, sigs = (col[:3000].copy() for col in ed25519_batch)
    sigs[:, 10] ^= 0xFF
    assert not signing.verify_batch("ed25519", pks, messages, sigs).any()


def test_batch_numpy_and_list_inputs_agree(ed25519_batch):
    pks, messages, sigs = (col[:2000].copy() for col in ed25519_batch)
    for i in range(0, 2000, 97):
        sigs[i, 0] ^= 1
    from_arrays = signing.verify_batch("ed25519", pks, messages, sigs)
    as_lists = [[row.tobytes() for row in col] for col in (pks, messages, sigs)]
    from_lists = signing.verify_batch("ed25519", *as_lists)
    mixed = signing.verify_batch("ed25519", as_lists[0], messages, as_lists[2])
    assert from_arrays.tolist() == from_lists.tolist() == mixed.tolist()
    assert np.flatnonzero(~from_arrays).tolist() == list(range(0, 2000, 97))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_empty_batch(scheme):
    out = signing.verify_batch(scheme, [], [], [])
    assert out.shape == (0,) and out.dtype == np.bool_
    width = signing.PUBLIC_KEY_SIZE[scheme]
    out = signing.verify_batch(
        scheme, np.zeros((0, width), np.uint8), np.zeros((0, 8), np.uint8), np.zeros((0, 64), np.uint8)
    )
    assert out.shape == (0,)


@pytest.mark.parametrize("scheme", ["sm2", "p256"])
def test_ecdsa_batches_agree_with_single_verify(scheme):
    """Valid, tampered, wrong-key, zero and out-of-range signatures, invalid points; list and array
    input; both below and above the size where the native side goes parallel."""
    rng = random.Random(scheme)
    keys = [signing.from_private_bytes(scheme, b32(rng.randrange(1, N[scheme] - 1))) for _ in range(6)]
    n = N[scheme]
    cases = []
    for i in range(150):
        kp = keys[i % 6]
        message = rng.randbytes(32)
        sig = kp.sign(message)
        kind = i % 8
        if kind == 0:
            sig = flip(sig, rng.randrange(64))
        elif kind == 1:
            kp = keys[(i + 1) % 6]
        elif kind == 2:
            sig = bytes(64)
        elif kind == 3:
            sig = b32(n) + sig[32:]
        elif kind == 4:
            sig = sig[:32] + b32(n)
        pk = kp.public_key
        if kind == 5:
            pk = pk[:64] + bytes([pk[64] ^ 1])  # (x, y + 1): not on the curve
        elif kind == 6:
            pk = bytes([0x02 | (pk[64] & 1)]) + pk[1:]  # not an uncompressed point
        cases.append((pk, message, sig))
    single = [signing.verify(scheme, *c) for c in cases]
    assert sum(single) == len([i for i in range(150) if i % 8 == 7])
    for size in (len(cases), 40):
        part = cases[:size]
        keys_col, messages_col, sigs_col = ([c[i] for c in part] for i in range(3))
        assert signing.verify_batch(scheme, keys_col, messages_col, sigs_col).tolist() == single[:size]
        arrays = [np.frombuffer(b"".join(col), np.uint8).reshape(size, -1) for col in (keys_col, messages_col, sigs_col)]
        assert signing.verify_batch(scheme, *arrays).tolist() == single[:size]


def test_sign_many_equals_sign():
    for scheme in SCHEMES:
        kp = signing.generate(scheme)
        messages = [os.urandom(i) for i in range(20)]
        many = kp.sign_many(messages)
        assert many.shape == (20, 64) and many.dtype == np.uint8
        if scheme == "sm2":  # randomised nonces: check validity rather than bytes
            assert all(signing.verify(scheme, kp.public_key, m, s.tobytes()) for m, s in zip(messages, many))
        else:
            assert [row.tobytes() for row in many] == [kp.sign(m) for m in messages]


# -------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize("scheme", SCHEMES)
def test_private_bytes_round_trip(scheme):
    kp = signing.generate(scheme)
    assert kp.scheme == scheme
    assert len(kp.private_bytes()) == 32
    assert len(kp.public_key) == signing.PUBLIC_KEY_SIZE[scheme]
    again = signing.from_private_bytes(scheme, kp.private_bytes())
    assert again.public_key == kp.public_key
    assert again.private_bytes() == kp.private_bytes()
    assert signing.KeyPair.from_private_bytes(scheme, kp.private_bytes()).public_key == kp.public_key
    message = b"round trip"
    assert signing.verify(scheme, kp.public_key, message, again.sign(message))
    assert scheme in repr(kp) and kp.public_key.hex() in repr(kp)
    assert kp.private_bytes().hex() not in repr(kp)


@pytest.mark.parametrize("scheme", ["sm2", "p256"])
@pytest.mark.parametrize("scalar", ["0", "n", "n+1", "2^256-1"])
def test_ecdsa_scalar_outside_the_group_is_an_invalid_key(scheme, scalar):
    n = N[scheme]
    value = {"0": 0, "n": n, "n+1": n + 1, "2^256-1": 2**256 - 1}[scalar]
    with pytest.raises(InvalidKeyError) as info:
        signing.from_private_bytes(scheme, b32(value))
    assert isinstance(info.value, ValueError)
    assert "private key" in str(info.value)


def test_sm2_private_key_n_minus_1_is_refused():
    """GB/T 32918.1 limits SM2 keys to [1, n-2]: signing needs (1 + d)^-1 mod n. Regression: the key
    used to load and then panic inside sign() (a PanicException, not an ordinary error)."""
    with pytest.raises(InvalidKeyError):
        signing.from_private_bytes("sm2", b32(N_SM2 - 1))
    for d in (1, 2, N_SM2 - 2):
        kp = signing.from_private_bytes("sm2", b32(d))
        sig = kp.sign(b"edge")
        assert signing.verify("sm2", kp.public_key, b"edge", sig)
        if not kp.public_key[1:].hex().startswith("04"):
            assert gm_verify(kp.public_key, b"edge", sig)


def test_p256_extreme_valid_scalars():
    for d in (1, 2, N_P256 - 1):
        kp = signing.from_private_bytes("p256", b32(d))
        assert kp.public_key == crypto_p256_public(d)
        assert crypto_p256_verify(kp.public_key, b"edge", kp.sign(b"edge"))


def test_ed25519_accepts_any_32_byte_seed():
    for seed in (bytes(32), b"\xff" * 32):
        kp = signing.from_private_bytes("ed25519", seed)
        assert kp.public_key == Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_private_key_length(scheme, length):
    with pytest.raises(InvalidLengthError) as info:
        signing.from_private_bytes(scheme, bytes(range(length)))
    assert isinstance(info.value, ValueError)
    assert str(length) in str(info.value) and "32" in str(info.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wrong_public_key_and_signature_lengths(scheme):
    kp = signing.generate(scheme)
    sig = kp.sign(b"m")
    width = signing.PUBLIC_KEY_SIZE[scheme]
    for bad_key in (kp.public_key[:-1], kp.public_key + b"\0", b"", kp.public_key[1:] if scheme != "ed25519" else b"\0" * 33):
        with pytest.raises(InvalidLengthError) as info:
            signing.verify(scheme, bad_key, b"m", sig)
        assert str(len(bad_key)) in str(info.value) and str(width) in str(info.value)
        assert "public key" in str(info.value)
    for bad_sig in (sig[:-1], sig + b"\0", b"", sig * 2):
        with pytest.raises(InvalidLengthError) as info:
            signing.verify(scheme, kp.public_key, b"m", bad_sig)
        assert str(len(bad_sig)) in str(info.value) and "signature" in str(info.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batch_length_errors_name_the_row(scheme):
    kp = signing.generate(scheme)
    sig = kp.sign(b"m")
    keys, messages, sigs = [kp.public_key] * 5, [b"m"] * 5, [sig] * 5
    sigs[3] = sig[:63]
    with pytest.raises(ValueError) as info:
        signing.verify_batch(scheme, keys, messages, sigs)
    assert "item 3" in str(info.value) and "63" in str(info.value)
    keys[1] = kp.public_key + b"\0"
    with pytest.raises(ValueError, match="item 1"):
        signing.verify_batch(scheme, keys, messages, [sig] * 5)
    with pytest.raises(MalformedInputError) as info:
        signing.verify_batch(scheme, [kp.public_key] * 5, [b"m"] * 4, [sig] * 5)
    assert "5" in str(info.value) and "4" in str(info.value)
    with pytest.raises(MalformedInputError, match="item 2 is str"):
        signing.verify_batch(scheme, [kp.public_key] * 3, [b"m", b"m", "m"], [sig] * 3)


@pytest.mark.parametrize("name", ["rsa", "ED25519", "sm3", "", "secp256k1"])
def test_unknown_scheme(name):
    calls = [
        lambda: signing.generate(name),
        lambda: signing.from_private_bytes(name, bytes(32)),
        lambda: signing.verify(name, bytes(32), b"", bytes(64)),
        lambda: signing.verify_batch(name, [bytes(32)], [b""], [bytes(64)]),
    ]
    for call in calls:
        with pytest.raises(UnknownNameError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert f'"{name}"' in str(info.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_well_formed_but_wrong_signatures_return_false(scheme):
    kp, other = signing.generate(scheme), signing.generate(scheme)
    message = b"government certificate 42"
    candidates = [other.sign(message), bytes(64), b"\xff" * 64, os.urandom(64), kp.sign(b"other message")]
    for sig in candidates:
        assert signing.verify(scheme, kp.public_key, message, sig) is False
    assert not signing.verify_batch(scheme, [kp.public_key] * 5, [message] * 5, candidates).any()
    # A well-sized public key that is not a valid point is a False, not an exception.
    bogus_key = b"\x04" + b"\x01" * 64 if scheme != "ed25519" else (2).to_bytes(32, "little")
    if scheme == "ed25519":
        assert not y_is_on_curve(2)
    assert signing.verify(scheme, bogus_key, message, kp.sign(message)) is False


@pytest.mark.parametrize("bad", ["text", None, 12, ["list"]])
def test_non_bytes_arguments_raise_malformed_input_errors_naming_them(bad):
    kp = signing.generate("ed25519")
    got = type(bad).__name__
    calls = [
        ("message", lambda: signing.verify("ed25519", kp.public_key, bad, kp.sign(b"m"))),
        ("public_key", lambda: signing.verify("ed25519", bad, b"m", kp.sign(b"m"))),
        ("signature", lambda: signing.verify("ed25519", kp.public_key, b"m", bad)),
        ("message", lambda: kp.sign(bad)),
        ("private_bytes", lambda: signing.from_private_bytes("ed25519", bad)),
    ]
    for name, call in calls:
        with pytest.raises(MalformedInputError) as info:
            call()
        assert str(info.value) == f"{name} must be bytes, got {got}"


SCHEME_NAMES = '"ed25519", "sm2", "p256"'
KP = signing.from_private_bytes("ed25519", bytes(range(32)))
SIG = KP.sign(b"m")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: signing.generate(None), UnknownNameError, f"scheme must be a str, one of {SCHEME_NAMES}; got NoneType"),
        (lambda: signing.generate(b"ed25519"), UnknownNameError, f"scheme must be a str, one of {SCHEME_NAMES}; got bytes"),
        (lambda: KP.sign("text"), MalformedInputError, "message must be bytes, got str"),
        (lambda: KP.sign(None), MalformedInputError, "message must be bytes, got NoneType"),
        (lambda: signing.verify("ed25519", KP.public_key, "m", SIG), MalformedInputError, "message must be bytes, got str"),
        (lambda: signing.verify("ed25519", KP.public_key.hex(), b"m", SIG), MalformedInputError,
         "public_key must be bytes, got str"),
        (lambda: signing.verify("ed25519", KP.public_key, b"m", None), MalformedInputError,
         "signature must be bytes, got NoneType"),
        (lambda: signing.verify(None, KP.public_key, b"m", SIG), UnknownNameError,
         f"scheme must be a str, one of {SCHEME_NAMES}; got NoneType"),
        (lambda: signing.from_private_bytes("ed25519", None), MalformedInputError,
         "private_bytes must be bytes, got NoneType"),
        (lambda: signing.from_private_bytes("ed25519", "x" * 32), MalformedInputError,
         "private_bytes must be bytes, got str"),
        (lambda: signing.KeyPair.from_private_bytes(1, bytes(32)), UnknownNameError,
         f"scheme must be a str, one of {SCHEME_NAMES}; got int"),
        (lambda: signing.verify_batch(None, [KP.public_key], [b"m"], [SIG]), UnknownNameError,
         f"scheme must be a str, one of {SCHEME_NAMES}; got NoneType"),
    ],
    ids=[
        "generate None", "generate bytes", "sign str", "sign None", "verify message str", "verify key str",
        "verify signature None", "verify scheme None", "from_private_bytes None", "from_private_bytes str",
        "KeyPair.from_private_bytes scheme int", "verify_batch scheme None",
    ],
)  # fmt: skip
def test_wrong_argument_types_raise_typed_errors_naming_the_argument(call, error, message):
    assert_typed_argument_error(call, error, message)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytearray_and_memoryview_are_taken_like_bytes(scheme, kind):
    private = b32(0x1D2C3B4A5F6E7D8C)
    kp = signing.from_private_bytes(scheme, kind(private))
    assert kp.public_key == signing.from_private_bytes(scheme, private).public_key
    assert signing.KeyPair.from_private_bytes(scheme, kind(private)).private_bytes() == private
    sig = kp.sign(kind(b"licence scan"))
    assert sig == kp.sign(b"licence scan")  # deterministic nonces: the same signature
    assert signing.verify(scheme, kind(kp.public_key), kind(b"licence scan"), kind(sig)) is True
    assert signing.verify(scheme, kp.public_key, kind(b"other"), sig) is False
    # Copied bytes are checked like bytes: a short key is still an InvalidLengthError.
    with pytest.raises(InvalidLengthError, match="public key"):
        signing.verify(scheme, kind(kp.public_key[:-1]), b"m", sig)
    with pytest.raises(InvalidLengthError):
        signing.from_private_bytes(scheme, kind(private[:31]))


# ------------------------------------------------------------------------------- tampering


FIXED_KEYS = {scheme: signing.from_private_bytes(scheme, b32(0x1D2C3B4A5F6E7D8C)) for scheme in SCHEMES}


@pytest.mark.parametrize("scheme", SCHEMES)
@given(message=st.binary(max_size=200), where=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_tampering_any_byte_of_the_signature_fails(scheme, message, where, mask):
    kp = FIXED_KEYS[scheme]
    sig = kp.sign(message)
    assert signing.verify(scheme, kp.public_key, message, sig)
    bad = flip(sig, where % 64, mask)
    assert signing.verify(scheme, kp.public_key, message, bad) is False
    assert signing.verify_batch(scheme, [kp.public_key] * 2, [message] * 2, [sig, bad]).tolist() == [True, False]


@pytest.mark.parametrize("scheme", SCHEMES)
@given(message=st.binary(min_size=1, max_size=200), where=st.integers(0, 10**6), mask=st.integers(1, 255))
def test_tampering_any_byte_of_the_message_fails(scheme, message, where, mask):
    kp = FIXED_KEYS[scheme]
    sig = kp.sign(message)
    bad = flip(message, where % len(message), mask)
    assert signing.verify(scheme, kp.public_key, bad, sig) is False
    assert signing.verify_batch(scheme, [kp.public_key] * 2, [message, bad], [sig, sig]).tolist() == [True, False]


@pytest.mark.parametrize("scheme", SCHEMES)
@given(message=st.binary(max_size=64), extra=st.binary(min_size=1, max_size=8))
def test_extending_or_truncating_the_message_fails(scheme, message, extra):
    kp = FIXED_KEYS[scheme]
    sig = kp.sign(message)
    assert signing.verify(scheme, kp.public_key, message + extra, sig) is False
    if message:
        assert signing.verify(scheme, kp.public_key, message[:-1], sig) is False


# --------------------------------------------------------------------------------- thread count

_THREAD_SCRIPT = """
import json, numpy as np, ledgercore
from ledgercore import signing
keys = [signing.from_private_bytes("ed25519", bytes([i + 1]) * 32) for i in range(50)]
msgs = np.arange(3000 * 16, dtype=np.uint32).view(np.uint8).reshape(3000, 64)
sigs = np.concatenate([keys[i].sign_many(msgs[i * 60:(i + 1) * 60]) for i in range(50)])
pks = np.frombuffer(b"".join(k.public_key for k in keys), np.uint8).reshape(-1, 32).repeat(60, axis=0)
sigs[[0, 1, 1499, 1500, 2047, 2999], 3] ^= 4
out = signing.verify_batch("ed25519", pks, msgs, sigs)
print(json.dumps([ledgercore.thread_count(), np.flatnonzero(~out).tolist()]))
"""


@pytest.mark.parametrize("threads", ["1", "3"])
def test_batch_answers_do_not_depend_on_the_thread_count(threads):
    """LEDGERCORE_THREADS changes how the batch is split into groups, never the per-item answer."""
    import json
    import subprocess

    env = {**os.environ, "LEDGERCORE_THREADS": threads}
    done = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True, check=True)
    count, bad = json.loads(done.stdout)
    assert count == int(threads)
    assert bad == [0, 1, 1499, 1500, 2047, 2999]


def test_invalid_thread_count_is_a_clear_error():
    import subprocess

    env = {**os.environ, "LEDGERCORE_THREADS": "zero"}
    done = subprocess.run([sys.executable, "-c", "import ledgercore"], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "LEDGERCORE_THREADS" in done.stderr and "MalformedInputError" in done.stderr


def test_a_column_that_claims_10_12_items_is_a_typed_error_not_an_abort():
    # Its len() was taken as the room to reserve before reading an item: the process aborted
    # ("memory allocation of 24000000000000 bytes failed"), or a PanicException escaped.
    code = """
from ledgercore import signing
from ledgercore.errors import MalformedInputError
for column in (range(10**12), range(2**62)):
    try:
        signing.verify_batch("ed25519", column, [], [])
    except MalformedInputError as exc:
        assert "item 0 is int" in str(exc), exc
    else:
        raise SystemExit("accepted")
print("typed")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (run.returncode, run.stdout.strip()) == (0, "typed"), run.stderr[-2000:]
