"""Signature schemes: ``ed25519`` (ZIP-215 rules), ``sm2`` (GB/T 32918, SM3, ID "1234567812345678")
and ``p256`` (ECDSA over SHA-256).

Ed25519 keys are 32 bytes and signatures 64 (RFC 8032). SM2 and P-256 public keys are 65-byte
uncompressed SEC1 points, signatures 64-byte raw ``r || s``. Private keys are 32 bytes everywhere.
Wherever bytes are taken, a bytearray or memoryview is copied to bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from . import _native
from .errors import InvalidKeyError
from .native_args import Params, call

SCHEMES = ("ed25519", "sm2", "p256")
SIGNATURE_SIZE = 64
PRIVATE_KEY_SIZE = 32
PUBLIC_KEY_SIZE = {"ed25519": 32, "sm2": 65, "p256": 65}

Rows = Sequence[bytes] | np.ndarray

# The native calls' arguments, for call (bytes arguments also take a bytearray or memoryview).
_SCHEME = ("scheme", SCHEMES)
_SECRET_KEY: Params = (_SCHEME, ("private_bytes", bytes))
_SIGN: Params = (("message", bytes),)
_VERIFY: Params = (_SCHEME, ("public_key", bytes), ("message", bytes), ("signature", bytes))
_VERIFY_BATCH: Params = (_SCHEME, ("public_keys", None), ("messages", None), ("signatures", None), ("seed", bytes))


class KeyPair:
    """A private key and its public key, for one scheme."""

    __slots__ = ("_key",)

    def __init__(self, key: _native.SecretKey) -> None:
        self._key = key

    @classmethod
    def from_private_bytes(cls, scheme: str, private_bytes: bytes) -> KeyPair:
        """Loads a key from its 32 private bytes (an Ed25519 seed, or an SM2/P-256 secret scalar)."""
        return cls(call(_native.SecretKey, _SECRET_KEY, scheme, private_bytes))

    @property
    def scheme(self) -> str:
        return self._key.scheme

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    def private_bytes(self) -> bytes:
        return self._key.private_bytes()

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over ``message`` (deterministic: RFC 8032 / RFC 6979 nonces)."""
        return call(self._key.sign, _SIGN, message)

    def sign_many(self, messages: Rows) -> np.ndarray:
        """Signatures over many messages at once: a ``(N, 64)`` uint8 array."""
        return self._key.sign_many(messages).reshape(-1, SIGNATURE_SIZE)

    def __repr__(self) -> str:
        return f"KeyPair({self.scheme!r}, public_key={self.public_key.hex()})"


def generate(scheme: str = "ed25519") -> KeyPair:
    """A new key pair from the operating system's CSPRNG."""
    while True:
        try:
            return KeyPair.from_private_bytes(scheme, os.urandom(PRIVATE_KEY_SIZE))
        except InvalidKeyError:
            # An ECDSA scalar outside [1, n): probability about 2^-32 for either curve; draw again.
            continue


def from_private_bytes(scheme: str, private_bytes: bytes) -> KeyPair:
    """Loads a key pair from its 32 private bytes."""
    return KeyPair.from_private_bytes(scheme, private_bytes)


def verify(scheme: str, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is valid. Wrong lengths raise ``InvalidLengthError``."""
    return call(_native.verify, _VERIFY, scheme, public_key, message, signature)


def verify_batch(scheme: str, public_keys: Rows, messages: Rows, signatures: Rows) -> np.ndarray:
    """Checks many signatures at once; a bool array, True where that signature is valid.

    Ed25519 uses randomised batch equations and bisects failing groups, so each answer equals
    :func:`verify` on that item. Columns are sequences of bytes or 2-D uint8 arrays (one row each).
    """
    return call(_native.verify_batch, _VERIFY_BATCH, scheme, public_keys, messages, signatures, os.urandom(32))
