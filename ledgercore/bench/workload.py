"""Signed transaction workloads for ``bench ingest`` and ``demo``, generated natively in bulk.

Blocks are generated one at a time (``Workload.block(k)``), so a run of ten million transactions
never holds more than one block of them. Everything is deterministic given the seed: sender ``s``'s
private key is the hash of ``(seed, s)``, transaction ``j`` (counting from 0 over the whole run) is
sent by sender ``j % senders``, and each sender's nonces count up from 1 in the order it sends.

``evidence``: every transaction is ``evidence.put(key, digest)`` with a distinct key that looks
random (``lic/<16 hex digits>``, a bijective scramble of ``j``), so state grows by one key per
transaction and keys land all over the B-tree, as real licence numbers would.

``cert``: ``cert.issue(cert_id, digest, meta)`` with distinct scrambled ids, and from the second
block on a fraction of each block (``revoke_fraction``) are ``cert.revoke(cert_id, reason)`` of
certificates issued in earlier blocks, oldest first, each sent by its issuer.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _native, hashing
from ..suites import Suite, get_suite

WORKLOADS = ("evidence", "cert")
# Odd, so multiplication by it permutes the u64s: distinct j give distinct keys in no useful order.
SCRAMBLE = np.uint64(0x9E3779B97F4A7C15)
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
KEY_PREFIX = {"evidence": b"lic/", "cert": b"cert/"}
CERT_META = "business licence"
REVOKE_REASON = "revoked by issuer"
TIMESTAMP = 1_795_000_000_000  # ms; fixed so runs are reproducible


def _str_entry(name: bytes, value_len: int) -> bytes:
    """A canonical map entry's bytes up to a str value's contents: key, tag, length."""
    return struct.pack(">I", len(name)) + name + b"\x05" + struct.pack(">I", value_len)


def _bytes_entry(name: bytes, value_len: int) -> bytes:
    return struct.pack(">I", len(name)) + name + b"\x04" + struct.pack(">I", value_len)


def scrambled_ids(prefix: bytes, numbers: np.ndarray) -> np.ndarray:
    """``prefix + 16 hex digits of (n * SCRAMBLE mod 2**64)`` for each n: an ``(N, len)`` uint8 array."""
    x = numbers.astype(np.uint64) * SCRAMBLE
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    digits = HEX[((x[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.intp)]
    out = np.empty((len(numbers), len(prefix) + 16), dtype=np.uint8)
    out[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, len(prefix) :] = digits
    return out


def scrambled_id(prefix: bytes, number: int) -> str:
    return scrambled_ids(prefix, np.array([number], dtype=np.uint64))[0].tobytes().decode()


def _rows(parts: list[np.ndarray | bytes], count: int) -> np.ndarray:
    """Concatenates per-row pieces (arrays of ``count`` rows, or constant bytes) into one array."""
    cols = [
        np.broadcast_to(np.frombuffer(p, dtype=np.uint8), (count, len(p))) if isinstance(p, bytes) else p
        for p in parts
    ]
    return np.ascontiguousarray(np.concatenate(cols, axis=1))


def evidence_args(numbers: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """Encoded ``{"digest": d, "key": "lic/…"}`` maps, one per row (all the same length)."""
    keys = scrambled_ids(KEY_PREFIX["evidence"], numbers)
    n = len(numbers)
    return _rows(
        [b"\x07" + struct.pack(">I", 2), _bytes_entry(b"digest", 32), digests, _str_entry(b"key", keys.shape[1]), keys],
        n,
    )


def cert_issue_args(numbers: np.ndarray, digests: np.ndarray) -> np.ndarray:
    ids = scrambled_ids(KEY_PREFIX["cert"], numbers)
    meta = CERT_META.encode()
    return _rows(
        [
            b"\x07" + struct.pack(">I", 3), _str_entry(b"cert_id", ids.shape[1]), ids,
            _bytes_entry(b"digest", 32), digests, _str_entry(b"meta", len(meta)) + meta,
        ],
        len(numbers),
    )  # fmt: skip


def cert_revoke_args(numbers: np.ndarray) -> np.ndarray:
    ids = scrambled_ids(KEY_PREFIX["cert"], numbers)
    reason = REVOKE_REASON.encode()
    return _rows(
        [b"\x07" + struct.pack(">I", 2), _str_entry(b"cert_id", ids.shape[1]), ids, _str_entry(b"reason", len(reason)) + reason],
        len(numbers),
    )


def digests_of(numbers: np.ndarray, seed: bytes) -> np.ndarray:
    """A 32-byte digest per number, fixed by the seed (what a bureau would hash from the document)."""
    return hashing.digest_many(_rows([seed, numbers.astype(">u8").view(np.uint8).reshape(-1, 8)], len(numbers)))


@dataclass
class Block:
    raws: list[bytes]
    issued: int = 0  # evidence keys or certificates created by this block
    revoked: int = 0


@dataclass
class Workload:
    """Generates the blocks of one run; see the module docstring."""

    suite: Suite
    kind: str
    txs: int
    block_size: int
    senders: int
    chain_id: str = "dev"
    revoke_fraction: float = 0.1
    seed: bytes = field(default_factory=lambda: os.urandom(16))
    # Every transaction's; a node admits only timestamps near its clock (tx_time_window_ms).
    timestamp: int = TIMESTAMP
    generation_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.suite = get_suite(self.suite)
        if self.kind not in WORKLOADS:
            raise ValueError(f"unknown workload {self.kind!r}; expected one of {', '.join(WORKLOADS)}")
        if self.txs < 1 or self.block_size < 1 or self.senders < 1:
            raise ValueError("txs, block size and senders must be positive")
        if not 0 <= self.revoke_fraction < 0.5:
            raise ValueError("revoke fraction must be in [0, 0.5)")
        # Nonces used so far per sender: the next transaction of sender s carries sent[s] + 1.
        self._sent = np.zeros(self.senders, dtype=np.uint64)
        self._issued = 0  # certificates (or evidence keys) issued so far
        self._revoked = 0
        self._all_keys = self._keys(np.arange(self.senders)) if self.senders <= self.block_size else None

    @property
    def blocks(self) -> int:
        return -(-self.txs // self.block_size)

    def _keys(self, senders: np.ndarray) -> np.ndarray:
        """Private keys of these senders: ``H(seed || "key" || u64 s)``."""
        return digests_of(senders, self.seed + b"key")

    def _nonces(self, senders: np.ndarray) -> np.ndarray:
        """Next nonces for a block whose transactions are sent by ``senders`` in this order."""
        order = np.argsort(senders, kind="stable")
        ordered = senders[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        counts = np.diff(np.r_[starts, len(ordered)])
        rank = np.arange(len(ordered)) - np.repeat(starts, counts)
        nonces = np.empty(len(senders), dtype=np.uint64)
        nonces[order] = self._sent[ordered] + rank.astype(np.uint64) + np.uint64(1)
        self._sent[ordered[starts]] += counts.astype(np.uint64)
        return nonces

    def block(self, k: int) -> Block:
        """Block ``k`` (call in order 0, 1, 2, …): its raw signed transactions."""
        t0 = time.perf_counter()
        start = k * self.block_size
        n = min(self.block_size, self.txs - start)
        revoking = 0
        if self.kind == "cert" and k > 0:
            revoking = min(int(n * self.revoke_fraction), self._issued - self._revoked)
        issuing = n - revoking
        issue_numbers = np.arange(self._issued, self._issued + issuing, dtype=np.uint64)
        revoke_numbers = np.arange(self._revoked, self._revoked + revoking, dtype=np.uint64)
        digests = digests_of(issue_numbers, self.seed + b"doc")
        if self.kind == "evidence":
            args: np.ndarray | list[bytes] = evidence_args(issue_numbers, digests)
            methods: str | list[str] = "put"
            senders = issue_numbers % np.uint64(self.senders)
        else:
            issue = cert_issue_args(issue_numbers, digests)
            # A revocation is sent by the certificate's issuer; spread them evenly through the block.
            is_revoke = np.zeros(n, dtype=bool)
            if revoking:
                is_revoke[np.linspace(0, n - 1, revoking).astype(np.intp)] = True
            senders = np.empty(n, dtype=np.uint64)
            senders[~is_revoke] = issue_numbers % np.uint64(self.senders)
            senders[is_revoke] = revoke_numbers % np.uint64(self.senders)
            rows_issue = [r.tobytes() for r in issue]
            rows_revoke = [r.tobytes() for r in cert_revoke_args(revoke_numbers)] if revoking else []
            args, methods = [], []
            it_i, it_r = iter(rows_issue), iter(rows_revoke)
            for rev in is_revoke.tolist():
                args.append(next(it_r) if rev else next(it_i))
                methods.append("revoke" if rev else "issue")
        nonces = self._nonces(senders)
        if self._all_keys is not None:
            keys, signers = self._all_keys, senders.astype(np.uint32)
        else:
            distinct, signers = np.unique(senders, return_inverse=True)
            keys, signers = self._keys(distinct), signers.astype(np.uint32)
        raws = _native.make_txs(
            self.suite.name, self.chain_id, keys, self.kind, methods, args, nonces,
            np.full(n, self.timestamp, dtype=np.uint64), signers,
        )  # fmt: skip
        self._issued += issuing
        self._revoked += revoking
        self.generation_seconds += time.perf_counter() - t0
        return Block(raws, issuing, revoking)
