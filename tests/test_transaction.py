"""Transactions (docs/FORMAT.md section 3): fixed vectors rebuilt byte by byte and checked with
independent libraries, round trips, rejection of bad input, and batch decoding into columns."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import re
import struct
import time
from pathlib import Path
from types import MappingProxyType

import blake3
import numpy as np
import pytest
from conftest import load_vectors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from gmssl import func, sm2, sm3
from hypothesis import given
from hypothesis import strategies as st

from ledgercore import Ledger, Transaction, _native, codec, signing
from ledgercore.errors import (
    DecodeError,
    EncodeError,
    InvalidKeyError,
    MalformedInputError,
    UnknownNameError,
)
from ledgercore.suites import SUITES, get_suite
from ledgercore.transaction import MAX_TX_SIZE

VECTORS = load_vectors("tx_v1.json")["vectors"]
FORMAT_MD = Path(__file__).parent.parent / "docs" / "FORMAT.md"
SUITE_NAMES = list(SUITES)


def keypair(suite: str, seed: int = 7) -> signing.KeyPair:
    return signing.from_private_bytes(get_suite(suite).scheme, bytes([seed]) * 32)


KEYS = {name: keypair(name) for name in SUITE_NAMES}


def make(suite: str = "ed25519-blake3", nonce: int = 1, **kw) -> Transaction:
    kw.setdefault("contract", "evidence")
    kw.setdefault("method", "put")
    kw.setdefault("args", {"key": "lic/91110000", "digest": b"\x01" * 32})
    kw.setdefault("timestamp", 1_700_000_000_000)
    return Transaction.create(KEYS[suite], nonce=nonce, **kw)


# ---- independent references ----


def json_args(args: dict) -> dict:
    return {k: bytes.fromhex(v["bytes"]) if isinstance(v, dict) else v for k, v in args.items()}


def reference_payload(v: dict) -> bytes:
    """The payload written out from docs/FORMAT.md with struct, not the native encoder."""
    chain = v["chain_id"].encode()
    args = bytes.fromhex(v["args_hex"])
    return (
        struct.pack(">BBB", 1, get_suite(v["suite"]).code, len(chain))
        + chain
        + bytes.fromhex(v["public_key"])
        + struct.pack(">QQ", v["nonce"], v["timestamp"])
        + struct.pack(">B", len(v["contract"]))
        + v["contract"].encode()
        + struct.pack(">B", len(v["method"]))
        + v["method"].encode()
        + struct.pack(">I", len(args))
        + args
    )


def reference_hash(suite: str, data: bytes) -> bytes:
    algo = get_suite(suite).hash
    if algo == "blake3":
        return blake3.blake3(data).digest()
    if algo == "sha256":
        return hashlib.sha256(data).digest()
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def reference_verify(suite: str, public_key: bytes, message: bytes, signature: bytes) -> bool:
    scheme = get_suite(suite).scheme
    try:
        if scheme == "ed25519":
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        elif scheme == "p256":
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        else:
            return bool(sm2.CryptSM2(private_key="", public_key=public_key[1:].hex()).verify_with_sm3(signature.hex(), message))
    except Exception:  # noqa: BLE001 - any failure of the reference means "does not verify"
        return False
    return True


# ---- fixed vectors ----


def test_vector_file_covers_every_suite():
    assert [v["suite"] for v in VECTORS] == SUITE_NAMES


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["suite"])
def test_vector_payload_is_the_documented_bytes(v):
    assert codec.encode_value(json_args(v["args"])).hex() == v["args_hex"]
    assert reference_payload(v).hex() == v["payload"]
    assert v["encoding"] == v["payload"] + v["signature"]
    assert bytes.fromhex(v["id"]) == reference_hash(v["suite"], bytes.fromhex(v["payload"]))
    assert reference_verify(v["suite"], bytes.fromhex(v["public_key"]), bytes.fromhex(v["payload"]), bytes.fromhex(v["signature"]))


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["suite"])
def test_vector_is_reproduced_by_create_and_read_by_decode(v):
    kp = signing.from_private_bytes(get_suite(v["suite"]).scheme, bytes.fromhex(v["private_key"]))
    assert kp.public_key.hex() == v["public_key"]
    fields = {k: v[k] for k in ("chain_id", "nonce", "timestamp", "contract", "method")}
    tx = Transaction.create(kp, args=json_args(v["args"]), suite=v["suite"], **fields)
    assert tx.encode().hex() == v["encoding"]  # every suite signs deterministically here
    assert tx.payload.hex() == v["payload"] and tx.signature.hex() == v["signature"] and tx.id.hex() == v["id"]
    d = Transaction.decode(bytes.fromhex(v["encoding"]))
    assert d == tx
    assert (d.suite, d.chain_id, d.sender.hex(), d.nonce, d.timestamp, d.contract, d.method) == (
        v["suite"], v["chain_id"], v["public_key"], v["nonce"], v["timestamp"], v["contract"], v["method"],
    )  # fmt: skip
    assert d.args == json_args(v["args"]) and d.args_bytes.hex() == v["args_hex"]
    assert d.verify()


def test_independent_signers_agree_with_the_vectors():
    by_suite = {v["suite"]: v for v in VECTORS}
    ed = by_suite["ed25519-blake3"]
    sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(ed["private_key"]))
    assert sk.sign(bytes.fromhex(ed["payload"])).hex() == ed["signature"]
    p = by_suite["p256-sha256"]
    key = ec.derive_private_key(int(p["private_key"], 16), ec.SECP256R1())
    der = key.sign(bytes.fromhex(p["payload"]), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    assert (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex() == p["signature"]  # RFC 6979


def test_format_md_worked_example_is_the_ed25519_vector():
    text = FORMAT_MD.read_text(encoding="utf-8")
    block = re.search(r"<!-- worked-example:begin -->\s*```text\n(.*?)```", text, re.S)
    assert block, "docs/FORMAT.md lost its worked example markers"
    lines = block.group(1).strip().splitlines()
    hex_bytes = "".join(line.split("@")[0].replace(" ", "") for line in lines)
    v = VECTORS[0]
    assert v["suite"] == "ed25519-blake3"
    assert hex_bytes == v["encoding"]
    # The offsets written beside each line are where those bytes start.
    offset = 0
    for line in lines:
        field_hex, rest = line.split("@")
        assert int(rest.split()[0]) == offset, line
        offset += len(field_hex.replace(" ", "")) // 2
    assert v["id"] in text


# ---- round trips ----

names = st.from_regex(r"[a-z][a-z0-9_]{0,63}", fullmatch=True)
chain_ids = st.text(min_size=1, max_size=16).filter(lambda s: len(s.encode()) <= 64)  # no surrogates by default
arg_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@given(
    suite=st.sampled_from(SUITE_NAMES),
    chain_id=chain_ids,
    nonce=st.integers(0, 2**64 - 1),
    timestamp=st.integers(0, 2**64 - 1),
    contract=names,
    method=names,
    args=st.dictionaries(st.text(max_size=8), arg_values, max_size=5),
)
def test_transactions_round_trip(suite, chain_id, nonce, timestamp, contract, method, args):
    tx = Transaction.create(
        KEYS[suite], contract, method, args, nonce, chain_id=chain_id, timestamp=timestamp, suite=suite
    )
    raw = tx.encode()
    d = Transaction.decode(raw)
    assert d == tx and hash(d) == hash(tx) and d.encode() == raw
    assert (d.suite, d.chain_id, d.sender, d.nonce, d.timestamp, d.contract, d.method) == (
        suite, chain_id, KEYS[suite].public_key, nonce, timestamp, contract, method,
    )  # fmt: skip
    assert d.args == args
    assert raw == tx.payload + tx.signature
    assert tx.id == reference_hash(suite, tx.payload)
    assert d.verify()
    assert reference_payload(
        {
            "suite": suite, "chain_id": chain_id, "public_key": KEYS[suite].public_key.hex(), "nonce": nonce,
            "timestamp": timestamp, "contract": contract, "method": method, "args_hex": codec.encode_value(args).hex(),
        }  # fmt: skip
    ) == tx.payload


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_every_truncation_and_any_trailing_byte_is_rejected(suite):
    raw = make(suite).encode()
    for cut in range(len(raw)):
        with pytest.raises(DecodeError, match="^transaction: .*truncated"):
            Transaction.decode(raw[:cut])
    with pytest.raises(DecodeError, match="1 trailing bytes at byte .* after the signature"):
        Transaction.decode(raw + b"\x00")


# ---- the Python object ----


def test_create_defaults_issue_example():
    kp = signing.from_private_bytes("ed25519", bytes(range(32)))
    before = time.time_ns() // 1_000_000
    tx = Transaction.create(kp, contract="evidence", method="put", args={"key": "lic/91110000", "digest": b"..."}, nonce=1)
    after = time.time_ns() // 1_000_000
    assert tx.suite == "ed25519-blake3" and tx.chain_id == "dev" and before <= tx.timestamp <= after
    assert len(tx.id) == 32 and tx.verify()
    assert Transaction.create(keypair("sm2-sm3"), "c", "m", {}, 0).suite == "sm2-sm3"
    assert Transaction.create(keypair("p256-sha256"), "c", "m", {}, 0).suite == "p256-sha256"


def test_create_checks_the_suite_against_the_key():
    with pytest.raises(InvalidKeyError, match="ed25519 key cannot sign for suite sm2-sm3"):
        Transaction.create(KEYS["ed25519-blake3"], "c", "m", {}, 0, suite="sm2-sm3")
    with pytest.raises(UnknownNameError, match="unknown suite 'rsa'.*'ed25519-blake3'"):
        Transaction.create(KEYS["ed25519-blake3"], "c", "m", {}, 0, suite="rsa")
    # A Suite made by hand pairing a name with another scheme: the encoding carries the name only,
    # so it made an sm2-sm3 transaction signed by a P-256 key, which no node could verify.
    forged = dataclasses.replace(get_suite("sm2-sm3"), scheme="p256")
    with pytest.raises(UnknownNameError, match="is not a registered suite"):
        Transaction.create(KEYS["p256-sha256"], "c", "m", {}, 0, suite=forged)
    assert get_suite(get_suite("sm2-sm3")) is get_suite("sm2-sm3")
    for kp in (None, KEYS["ed25519-blake3"].public_key):
        with pytest.raises(InvalidKeyError, match=f"kp must be a signing.KeyPair, got {type(kp).__name__}"):
            Transaction.create(kp, "c", "m", {}, 0)  # type: ignore[arg-type]


def test_transactions_are_immutable_hashable_picklable_and_readable():
    tx = make()
    with pytest.raises(AttributeError, match="immutable"):
        tx.nonce = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del tx.contract  # type: ignore[misc]
    args = tx.args
    args["key"] = "changed"
    assert tx.args["key"] == "lic/91110000"  # a fresh dict each time; the encoding never changes
    assert pickle.loads(pickle.dumps(tx)) == tx
    assert {tx, Transaction.decode(tx.encode())} == {tx}
    assert tx != make(nonce=2) and tx != tx.encode()
    r = repr(tx)
    assert "evidence.put" in r and "nonce=1" in r and tx.id.hex()[:16] in r


def test_tampering():
    tx = make()
    raw = bytearray(tx.encode())
    raw[-1] ^= 1  # the signature: same id (it covers the payload only), no longer valid
    bad_sig = Transaction.decode(bytes(raw))
    assert bad_sig.id == tx.id and not bad_sig.verify()
    raw = bytearray(tx.encode())
    raw[45] ^= 1  # inside the nonce: a different transaction that the signature does not cover
    bad_payload = Transaction.decode(bytes(raw))
    assert bad_payload.id != tx.id and not bad_payload.verify()


# ---- encode errors ----


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"contract": "Evidence"}, 'contract name: "Evidence" must start with a lowercase ASCII letter'),
        ({"contract": "1abc"}, 'contract name: "1abc" must start'),
        ({"contract": "ev-idence"}, 'contract name: "ev-idence" has a character outside [a-z0-9_] at position 2'),
        ({"contract": ""}, "contract name: must be 1 to 64 bytes, got 0"),
        ({"method": "p" * 65}, "method name: must be 1 to 64 bytes, got 65"),
        ({"method": "pút"}, "method name:"),
        ({"chain_id": ""}, "chain id: must be 1 to 64 bytes"),
        ({"chain_id": "链" * 22}, "chain id: must be 1 to 64 bytes of UTF-8, got 66"),
        ({"args": {"meta": [1, 2, 1.5]}}, 'args["meta"][2]: float is not encodable'),
        ({"args": [1]}, "args: must be a dict, got list"),
        ({"args": {"n": 2**64}}, 'args["n"]: int 18446744073709551616 is outside the i64 range'),
        ({"nonce": -1}, "nonce: must be an int in 0..=2**64 - 1, got -1"),
        ({"nonce": 2**64}, "nonce: must be an int"),
        ({"timestamp": 1.5}, "timestamp: must be an int"),
        ({"args": {"blob": bytes(MAX_TX_SIZE)}}, "over the 1048576-byte maximum"),
    ],
)
def test_bad_fields_are_encode_errors(kw, fragment):
    with pytest.raises(EncodeError) as e:
        make(**kw)
    assert fragment in str(e.value)


def test_args_may_be_any_mapping_as_typed():
    args = {"key": "lic/91110000", "digest": b"\x01" * 32}
    assert make(args=MappingProxyType(args)).encode() == make(args=args).encode()


def test_limits_are_inclusive():
    assert MAX_TX_SIZE == 1 << 20
    make(contract="c" * 64, method="m", chain_id="x" * 64)
    make(chain_id="链" * 21)  # 63 UTF-8 bytes
    base = len(make(args={"b": b""}).encode())
    exact = make(args={"b": bytes(MAX_TX_SIZE - base)})
    assert len(exact.encode()) == MAX_TX_SIZE
    assert Transaction.decode(exact.encode()) == exact
    with pytest.raises(EncodeError):
        make(args={"b": bytes(MAX_TX_SIZE - base + 1)})
    with pytest.raises(DecodeError, match="1048577 bytes, over the 1048576-byte maximum"):
        Transaction.decode(exact.encode() + b"\x00")


# ---- decode errors on forged bytes ----

# Layout of make("ed25519-blake3") with chain "dev": version 0, suite 1, chain length 2, chain 3..6,
# sender 6..38, nonce 38, timestamp 46, contract length 54, "evidence" 55..63, method length 63,
# "put" 64..67, args length 67, args 71.


def patched(raw: bytes, at: int, value: int) -> bytes:
    out = bytearray(raw)
    out[at] = value
    return bytes(out)


@pytest.mark.parametrize(
    ("at", "value", "fragment"),
    [
        (0, 2, "transaction: version at byte 0: unknown version 2 (this build reads 1)"),
        (0, 0, "unknown version 0"),
        (1, 4, "suite at byte 1: unknown suite code 4 (known: 1 ed25519-blake3, 2 sm2-sm3, 3 p256-sha256)"),
        (1, 2, "transaction: "),  # an SM2 key is 65 bytes: every later field shifts and fails
        (2, 0, "chain id length at byte 2: 0 is outside 1..=64"),
        (2, 65, "chain id length at byte 2: 65 is outside 1..=64"),
        (3, 0xFF, "chain id at byte 3: not valid UTF-8"),
        (54, 0, "contract name length at byte 54: 0 is outside 1..=64"),
        (55, ord("E"), 'contract name at byte 55: "Evidence" must start with a lowercase ASCII letter'),
        (57, ord("."), "outside [a-z0-9_] at position 2"),
        (57, 0xC3, "outside [a-z0-9_]"),
        (65, ord(" "), 'method name at byte 64: "p t" has a character outside'),
        (71, 0x06, "args at byte 71: must be a map, got list"),
        (71, 0x09, "args at byte 71: must be a map, got an unknown tag"),
    ],
)
def test_forged_bytes_are_decode_errors(at, value, fragment):
    raw = make(chain_id="dev").encode()
    with pytest.raises(DecodeError) as e:
        Transaction.decode(patched(raw, at, value))
    assert fragment in str(e.value)


def test_a_sender_key_of_small_order_is_refused(tmp_path):
    # ZIP 215 verifies a signature with R of small order and S = 0 under every small-order key, for
    # any message (the published vectors' 14 keys): anyone could send as such a key, so a
    # transaction from one names no signer. It used to decode, verify and commit.
    keys = sorted({bytes.fromhex(c["public_key"]) for c in load_vectors("zip215.json")["accept"]})
    assert len(keys) == 14
    payload = make(chain_id="dev").payload  # sender at bytes 6..38
    forged_signature = b"\x01" + bytes(63)  # R = the identity, S = 0
    with Ledger.open(tmp_path / "l") as led:
        for key in keys:
            raw = payload[:6] + key + payload[38:] + forged_signature
            assert signing.verify("ed25519", key, raw[:-64], forged_signature)  # why it must be refused
            with pytest.raises(DecodeError, match="sender at byte 6: an Ed25519 key of small order"):
                Transaction.decode(raw)
            with pytest.raises(DecodeError, match="an Ed25519 key of small order"):
                led.apply_block([make(chain_id="dev", nonce=2).encode(), raw])
            with pytest.raises(EncodeError, match="sender: an Ed25519 key of small order"):
                _native.encode_tx_payload("ed25519-blake3", "dev", key, 1, 5, "evidence", "put", {"key": "k"})
        assert led.height == 0


@pytest.mark.parametrize("not_bytes", [None, 5, "abc", [1, 2]])
def test_decoding_what_is_not_bytes_is_a_typed_error(not_bytes):
    # bytes(5) is five zero bytes and bytes([1, 2]) two bytes: neither may pass for an encoding.
    with pytest.raises(MalformedInputError, match=f"a transaction encoding must be bytes, got {type(not_bytes).__name__}"):
        Transaction.decode(not_bytes)  # type: ignore[arg-type]
    raw = make(chain_id="dev").encode()
    assert Transaction.decode(bytearray(raw)).id == Transaction.decode(memoryview(raw)).id == Transaction.decode(raw).id


def test_non_canonical_args_inside_a_transaction_are_rejected():
    tx = make(chain_id="dev", args={"a": 1, "b": 2})
    payload = bytearray(tx.payload)
    # Swap the two keys' names: the map stays well-formed but unsorted.
    i, j = payload.index(b"\x00\x00\x00\x01a"), payload.index(b"\x00\x00\x00\x01b")
    payload[i + 4], payload[j + 4] = ord("b"), ord("a")
    with pytest.raises(DecodeError, match=r"args \(map key #1\) at byte \d+: \"a\" sorts before the previous key \"b\""):
        Transaction.decode(bytes(payload) + tx.signature)


# ---- batch decoding ----


def mixed_block(suite: str, n: int, chain_id: str = "dev") -> list[Transaction]:
    senders = [keypair(suite, seed) for seed in (1, 2, 3)]
    return [
        Transaction.create(
            senders[i % 3], "evidence" if i % 4 else "cert", "put" if i % 2 else "issue",
            {"key": f"k{i}", "n": i, "blob": bytes([i % 256]) * (i % 7)}, nonce=i, chain_id=chain_id,
            timestamp=1_700_000_000_000 + i,
        )  # fmt: skip
        for i in range(n)
    ]


@pytest.mark.parametrize("suite", SUITE_NAMES)
@pytest.mark.parametrize("n", [0, 1, 37, 600])  # 600 takes the parallel path
def test_decode_txs_columns_equal_per_transaction_decoding(suite, n):
    txs = mixed_block(suite, n)
    raws = [tx.encode() for tx in txs]
    batch = _native.decode_txs(suite, "dev", raws)
    pk = get_suite(suite).public_key_size
    assert batch.count == len(batch) == n and batch.suite == suite and batch.chain_id == "dev"
    for name, shape, dtype in [
        ("ids", (n, 32), np.uint8), ("public_keys", (n, pk), np.uint8), ("signatures", (n, 64), np.uint8),
        ("nonces", (n,), np.uint64), ("timestamps", (n,), np.uint64),
    ]:  # fmt: skip
        col = getattr(batch, name)
        assert col.shape == shape and col.dtype == dtype, name
    decoded = [Transaction.decode(r) for r in raws]
    assert [bytes(r) for r in batch.ids] == [t.id for t in decoded]
    assert [bytes(r) for r in batch.public_keys] == [t.sender for t in decoded]
    assert [bytes(r) for r in batch.signatures] == [t.signature for t in decoded]
    assert batch.messages == [t.payload for t in decoded]
    assert batch.nonces.tolist() == [t.nonce for t in decoded]
    assert batch.timestamps.tolist() == [t.timestamp for t in decoded]
    assert batch.contracts == [t.contract for t in decoded]
    assert batch.methods == [t.method for t in decoded]
    assert batch.args == [t.args_bytes for t in decoded]
    assert [codec.decode_value(a) for a in batch.args] == [t.args for t in decoded]
    assert batch.raws == raws
    assert "count=" in repr(batch)


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_batch_columns_feed_verify_batch(suite):
    txs = mixed_block(suite, 40)
    raws = [tx.encode() for tx in txs]
    scheme = get_suite(suite).scheme
    batch = _native.decode_txs(suite, "dev", raws)
    assert signing.verify_batch(scheme, batch.public_keys, batch.messages, batch.signatures).all()
    assert batch.verify_signatures(bytes(32)).all()
    bad = bytearray(raws[17])
    bad[-5] ^= 0x40
    raws[17] = bytes(bad)
    batch = _native.decode_txs(suite, "dev", raws)
    ok = signing.verify_batch(scheme, batch.public_keys, batch.messages, batch.signatures)
    assert ok.tolist() == [i != 17 for i in range(40)]
    assert batch.verify_signatures(bytes(range(32))).tolist() == ok.tolist()
    # Started and left running while the caller goes on (split over the threads, or on one of
    # them); waiting again gives the same answer.
    checks = [batch.start_signature_check(bytes([i]) * 32, one_thread=i == 1) for i in range(3)]
    del batch  # the running checks keep what they read
    for check in checks:
        assert check.wait().tolist() == ok.tolist() == check.wait().tolist()
        assert check.seconds > 0
    _native.decode_txs(suite, "dev", raws).start_signature_check(bytes(32))  # dropped unawaited: harmless
    with pytest.raises(MalformedInputError, match="seed: must be 32 random bytes"):
        _native.decode_txs(suite, "dev", raws).start_signature_check(bytes(31))


def test_decode_txs_names_the_bad_index():
    raws = [tx.encode() for tx in mixed_block("ed25519-blake3", 300)]
    cases = {
        "chain": (mixed_block("ed25519-blake3", 1, chain_id="prod")[0].encode(),
                  'transaction 211: chain id is "prod", but this chain is "dev"'),
        "suite": (make("sm2-sm3", chain_id="dev").encode(),
                  "transaction 211: suite is sm2-sm3 (code 2), but this chain uses ed25519-blake3 (code 1)"),
        "malformed": (raws[211][:-1], "transaction 211: signature at byte"),
        "empty": (b"", "transaction 211: version at byte 0: truncated"),
    }  # fmt: skip
    for name, (bad, message) in cases.items():
        block = list(raws)
        block[211] = bad
        block[250] = b"junk"  # a later bad one: the first is reported
        with pytest.raises(DecodeError) as e:
            _native.decode_txs("ed25519-blake3", "dev", block)
        assert str(e.value).startswith(message), name
        assert e.value.index == 211, name
        assert isinstance(e.value, MalformedInputError)


def test_decode_txs_input_errors():
    with pytest.raises(UnknownNameError):
        _native.decode_txs("ed25519", "dev", [])
    with pytest.raises(MalformedInputError, match="item 1 is str, not bytes"):
        _native.decode_txs("ed25519-blake3", "dev", [make().encode(), "x"])
    with pytest.raises(MalformedInputError, match="single byte string"):
        _native.decode_txs("ed25519-blake3", "dev", make().encode())
    # bytearray and memoryview items are accepted.
    tx = make()
    batch = _native.decode_txs("ed25519-blake3", "dev", [bytearray(tx.encode()), memoryview(tx.encode())])
    assert batch.raws == [tx.encode()] * 2
