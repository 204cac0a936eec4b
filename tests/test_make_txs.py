"""``_native.make_txs``: bulk signing gives exactly the bytes ``Transaction.create`` gives, and bad
input raises the same typed errors."""

from __future__ import annotations

import numpy as np
import pytest

from ledgercore import Transaction, _native, codec, signing
from ledgercore.errors import EncodeError, InvalidKeyError, MalformedInputError, UnknownNameError

SUITES = {"ed25519-blake3": "ed25519", "sm2-sm3": "sm2", "p256-sha256": "p256"}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_bulk_signed_transactions_equal_transaction_create(suite: str) -> None:
    keys = [signing.from_private_bytes(SUITES[suite], bytes([i + 1]) * 32) for i in range(3)]
    args = [{"key": f"lic/{i}", "digest": bytes([i]) * 32, "meta": {"n": i}} for i in range(7)]
    signers = np.array([i % 3 for i in range(7)], dtype=np.uint32)
    nonces = np.arange(1, 8, dtype=np.uint64)
    stamps = np.full(7, 1_700_000_000_000, dtype=np.uint64)
    raws = _native.make_txs(
        suite, "dev", [k.private_bytes() for k in keys], "evidence", "put", [codec.encode_value(a) for a in args],
        nonces, stamps, signers,
    )  # fmt: skip
    for i, raw in enumerate(raws):
        tx = Transaction.decode(raw)
        assert tx.verify() and tx.sender == keys[i % 3].public_key and tx.nonce == i + 1
        assert tx.args == args[i]
        # RFC 8032 and RFC 6979 signatures are deterministic: the very same bytes.
        same = Transaction.create(keys[i % 3], "evidence", "put", args[i], i + 1, timestamp=1_700_000_000_000, suite=suite)
        assert raw == same.encode()


def test_one_key_per_transaction_and_per_transaction_methods() -> None:
    keys = [bytes([i + 1]) * 32 for i in range(2)]
    args = [codec.encode_value({"cert_id": "c", "digest": b"d" * 16}), codec.encode_value({"cert_id": "c", "reason": "r"})]
    raws = _native.make_txs(
        "ed25519-blake3", "dev", keys, "cert", ["issue", "revoke"], args,
        np.array([1, 1], dtype=np.uint64), np.array([5, 6], dtype=np.uint64),
    )  # fmt: skip
    assert [Transaction.decode(r).method for r in raws] == ["issue", "revoke"]
    assert Transaction.decode(raws[1]).timestamp == 6


def test_bad_input_raises_typed_errors() -> None:
    one = [codec.encode_value({"key": "k"})]
    n1, t1 = np.array([1], dtype=np.uint64), np.array([1], dtype=np.uint64)
    key = [b"\x01" * 32]
    with pytest.raises(UnknownNameError):
        _native.make_txs("rsa", "dev", key, "evidence", "put", one, n1, t1)
    with pytest.raises(MalformedInputError, match="key index"):
        _native.make_txs("ed25519-blake3", "dev", key, "evidence", "put", one, n1, t1, np.array([3], dtype=np.uint32))
    with pytest.raises(MalformedInputError):
        _native.make_txs("ed25519-blake3", "dev", key, "evidence", "put", one * 2, n1, t1)
    with pytest.raises(MalformedInputError):
        _native.make_txs("ed25519-blake3", "dev", key, "evidence", ["put", "put"], one, n1, t1)
    with pytest.raises(EncodeError):
        _native.make_txs("ed25519-blake3", "dev", key, "Evidence", "put", one, n1, t1)
    with pytest.raises(EncodeError):
        _native.make_txs("ed25519-blake3", "dev", key, "evidence", "put", [b"\x00"], n1, t1)  # args not a map
    with pytest.raises(InvalidKeyError):
        _native.make_txs("p256-sha256", "dev", [b"\x00" * 32], "evidence", "put", one, n1, t1)
