"""Signed transactions (format version 1, docs/FORMAT.md).

A transaction's *payload* is its canonical encoding without the signature; the sender signs the
payload, and the transaction id is the suite hash of the payload. The signature is left out of the id
so that a malleated signature cannot make a replayed transaction look new.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from . import _native, hashing, signing
from .codec import decode_value, utf8
from .errors import EncodeError, InvalidKeyError, MalformedInputError
from .native_args import bytes_of
from .suites import Suite, get_suite, suite_for_scheme

MAX_TX_SIZE: int = _native.MAX_TX_SIZE
"""Largest encoded transaction, payload and signature together: 1 MiB."""


def now_ms() -> int:
    """Milliseconds since the Unix epoch: the default transaction timestamp."""
    return time.time_ns() // 1_000_000


class Transaction:
    """An immutable signed transaction.

    Build one with :meth:`create` (which signs) or :meth:`decode` (which checks the encoding is
    canonical). Equality and hashing follow the encoding. ``args`` decodes the canonical args map
    afresh on each access; ``args_bytes`` is its encoding.
    """

    __slots__ = (
        "suite",
        "chain_id",
        "sender",
        "nonce",
        "timestamp",
        "contract",
        "method",
        "signature",
        "_args",
        "_payload",
        "_raw",
        "_id",
    )

    suite: str
    chain_id: str
    sender: bytes
    nonce: int
    timestamp: int
    contract: str
    method: str
    signature: bytes
    _args: bytes
    _payload: bytes
    _raw: bytes
    _id: bytes

    def __init__(self, raw: bytes) -> None:
        """Same as :meth:`decode`."""
        raw = bytes_of(raw, "a transaction encoding")
        suite, chain_id, sender, nonce, timestamp, contract, method, args, signature, payload_len, txid = (
            _native.decode_tx(raw)
        )
        put = object.__setattr__
        put(self, "suite", suite)
        put(self, "chain_id", chain_id)
        put(self, "sender", sender)
        put(self, "nonce", nonce)
        put(self, "timestamp", timestamp)
        put(self, "contract", contract)
        put(self, "method", method)
        put(self, "signature", signature)
        put(self, "_args", args)
        put(self, "_payload", raw[:payload_len])
        put(self, "_raw", raw)
        put(self, "_id", txid)

    @classmethod
    def decode(cls, raw: bytes) -> Transaction:
        """Decodes a whole transaction encoding. Anything non-canonical raises ``DecodeError``."""
        return cls(raw)

    @classmethod
    def create(
        cls,
        kp: signing.KeyPair,
        contract: str,
        method: str,
        args: Mapping[str, Any],
        nonce: int,
        *,
        chain_id: str = "dev",
        timestamp: int | None = None,
        suite: str | Suite | None = None,
    ) -> Transaction:
        """Encodes and signs a transaction from ``kp``'s public key.

        ``suite`` defaults to the suite of ``kp``'s scheme; a given suite must use that scheme.
        ``timestamp`` defaults to now, in milliseconds since the Unix epoch. Values ``args`` cannot
        hold, bad names and oversize transactions raise ``EncodeError``.
        """
        if not isinstance(kp, signing.KeyPair):
            raise InvalidKeyError(f"kp must be a signing.KeyPair, got {type(kp).__name__}")
        chosen = suite_for_scheme(kp.scheme) if suite is None else get_suite(suite)
        if chosen.scheme != kp.scheme:
            raise InvalidKeyError(f"a {kp.scheme} key cannot sign for suite {chosen.name} (scheme {chosen.scheme})")
        for what, text in (("contract", contract), ("method", method), ("chain_id", chain_id)):
            utf8(text, what)  # EncodeError; the native encoder checks the names' form and length
        for what, number in (("nonce", nonce), ("timestamp", timestamp)):
            if isinstance(number, bool):  # an int to Python, a mistake here; the encoder checks ranges
                raise EncodeError(f"{what} must be an int, got bool")
        if isinstance(args, Mapping) and not isinstance(args, dict):
            args = dict(args)  # any mapping, as typed; the codec takes dicts
        payload = _native.encode_tx_payload(
            chosen.name, chain_id, kp.public_key, nonce, now_ms() if timestamp is None else timestamp,
            contract, method, args,
        )  # fmt: skip
        return cls(payload + kp.sign(payload))

    @property
    def id(self) -> bytes:
        """The 32-byte transaction id: the suite hash of :attr:`payload`."""
        return self._id

    @property
    def payload(self) -> bytes:
        """The signed bytes: the encoding without the signature."""
        return self._payload

    @property
    def args(self) -> dict:
        """The arguments, decoded (a new dict on each access)."""
        return decode_value(self._args)  # type: ignore[return-value]

    @property
    def args_bytes(self) -> bytes:
        """The canonical encoding of the arguments."""
        return self._args

    def encode(self) -> bytes:
        """The whole encoding: payload then the 64-byte signature."""
        return self._raw

    def verify(self) -> bool:
        """Whether the signature is the sender's over the payload."""
        return signing.verify(get_suite(self.suite).scheme, self.sender, self._payload, self.signature)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Transaction is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Transaction is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transaction):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __reduce__(self) -> tuple:
        return (Transaction.decode, (self._raw,))

    def __repr__(self) -> str:
        args = repr(self.args)
        if len(args) > 120:
            args = args[:117] + "..."
        return (
            f"Transaction(id={self._id.hex()[:16]}…, suite={self.suite!r}, chain_id={self.chain_id!r}, "
            f"sender={self.sender.hex()[:16]}…, nonce={self.nonce}, timestamp={self.timestamp}, "
            f"call={self.contract}.{self.method}, args={args})"
        )


def transaction_id(payload: bytes, suite: str | Suite) -> bytes:
    """The id of the transaction with this payload: its suite hash."""
    return hashing.digest(payload, get_suite(suite).hash)


_TXID_HEX = re.compile(r"[0-9a-fA-F]{64}")


def txid_from_hex(text: str) -> bytes:
    """The transaction id written as ``text``: exactly 64 hex digits (no sign, space or ``0x``,
    which ``bytes.fromhex`` would let through), else :class:`MalformedInputError`."""
    if not isinstance(text, str) or not _TXID_HEX.fullmatch(text):
        raise MalformedInputError(f"bad txid {text!r:.80}: expected 64 hex digits")
    return bytes.fromhex(text)
