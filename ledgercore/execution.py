"""Executes a decoded, signature-checked block: nonces, permissions, then each contract's slice."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from . import _native
from .contracts.base import Contract, Slice, SliceResult, StateReader
from .errors import InvalidInputError
from .receipts import receipt_error

# Decides which transactions may run: (senders (N, key size), contracts, methods) -> bool mask.
Authorizer = Callable[[np.ndarray, list[str], list[str]], np.ndarray]


@dataclass
class Execution:
    """The block's outcome: per-transaction success, failures, events and ordered writes."""

    ok: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)
    events: list[tuple[int, str, bytes]] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    tx_chunks: list[np.ndarray] = field(default_factory=list)  # per slice: block index of each write
    unread: list[bytes] = field(default_factory=list)  # written keys a slice may not have read

    @property
    def txs(self) -> np.ndarray:
        """Block index of each write, aligned with ``keys`` and ``values`` (uint32)."""
        return np.concatenate(self.tx_chunks) if self.tx_chunks else np.zeros(0, dtype=np.uint32)


def execute(
    batch: _native.TxBatch,
    *,
    height: int,
    timestamp: int,
    contracts: Mapping[str, Contract],
    nonce_fresh: np.ndarray,
    state: StateReader,
    authorize: Authorizer | None,
) -> Execution:
    """Runs every transaction whose nonce is fresh and that ``authorize`` admits.

    Slices run in contract-name order, so the write order (and the state root) is deterministic.
    """
    n = batch.count
    runnable = nonce_fresh.copy()
    out = Execution(ok=np.zeros(n, dtype=bool))
    if n == 0:  # nothing to authorize (an empty answer, np.asarray([]), would not even be bools)
        return out
    replayed = np.flatnonzero(~nonce_fresh)
    if len(replayed):
        nonces = batch.nonces  # a fresh array per access: take it once
        for i in replayed.tolist():
            out.errors[i] = f"replayed nonce {int(nonces[i])}: this sender has already used it"
    if authorize is not None:
        contracts_col, methods = batch.contracts, batch.methods
        allowed = np.asarray(authorize(batch.public_keys, contracts_col, methods))
        if allowed.shape != (n,):  # a scalar would broadcast: one answer for the whole block
            raise InvalidInputError(f"authorize must answer one bool per transaction ({n}), got shape {allowed.shape}")
        if allowed.dtype != bool:  # read as truth values, "no" and 2 would permit
            raise InvalidInputError(f"authorize must answer bools, got {allowed.dtype} values")
        for i in np.flatnonzero(runnable & ~allowed).tolist():
            out.errors[i] = f"sender is not permitted to call {contracts_col[i]}.{methods[i]}"
        runnable &= allowed
    for name, indices in _slices(batch.contracts, runnable):
        if len(indices) == 0:
            continue
        contract = contracts.get(name)
        if contract is None:
            for i in indices.tolist():
                out.errors[i] = f"unknown contract {name!r}"
            continue
        sl = Slice(name, height, timestamp, batch, indices, state)
        res = contract.execute(sl)
        _check_result(name, n, indices, res)
        out.ok[indices] = res.ok
        out.errors.update((i, receipt_error(m)) for i, m in res.errors.items())
        out.events.extend(res.events)
        out.keys.extend(res.keys)
        if not res.writes_read:
            out.unread.extend(res.keys)
        out.values.extend(res.values)
        out.tx_chunks.append(np.asarray(res.txs, dtype=np.uint32))
    return out


def _check_result(name: str, n: int, indices: np.ndarray, res: object) -> None:
    """A contract's slice result, checked before any of it is used: one outcome per transaction;
    an error message for each one it failed and for no other; writes and events only of the
    transactions it ran, writes only in its own namespace (so that, say, no other contract can
    replace an ``evidence`` anchor) and in block order (a key's last write is its latest: the
    store keeps it as the key's value). The per-write checks are vectorised; errors and events are
    checked one by one (one per failure or event)."""
    what = f"contract {name!r}"
    if not isinstance(res, SliceResult):
        raise InvalidInputError(f"{what} returned {type(res).__name__} for its slice, not a SliceResult")
    if np.shape(res.ok) != indices.shape:
        raise InvalidInputError(f"{what} returned {np.shape(res.ok)} outcomes for {len(indices)} transactions")
    txs = np.asarray(res.txs, dtype=np.int64)
    if not len(res.keys) == len(res.values) == len(txs):
        raise InvalidInputError(f"{what} returned {len(res.keys)} keys, {len(res.values)} values, {len(txs)} writers")
    ran = np.zeros(n, dtype=bool)  # by block position: this slice's transactions that succeeded
    ran[indices] = np.asarray(res.ok, dtype=bool)
    mine = np.zeros(n, dtype=bool)
    mine[indices] = True
    if len(txs) and not (((txs >= 0) & (txs < n)).all() and mine[txs].all()):
        raise InvalidInputError(f"{what} attributed writes to transactions outside its slice")
    if len(txs) and not ran[txs].all():
        raise InvalidInputError(f"{what} attributed writes to transactions it failed")
    if len(txs) > 1 and (np.diff(txs) < 0).any():
        raise InvalidInputError(f"{what} listed its writes out of block order")
    failed = set(indices[~ran[indices]].tolist())
    if not isinstance(res.errors, dict) or set(res.errors) != failed:
        raise InvalidInputError(f"{what} must give an error message for each transaction it failed, and only those")
    if not all(isinstance(m, str) for m in res.errors.values()):
        raise InvalidInputError(f"{what} gave an error message that is not a str")
    for event in res.events:
        if not (isinstance(event, tuple) and len(event) == 3 and type(event[0]) is int and 0 <= event[0] < n
                and ran[event[0]] and isinstance(event[1], str) and isinstance(event[2], bytes)):  # fmt: skip
            raise InvalidInputError(
                f"{what} returned the event {event!r:.80}: events are (index of a transaction it ran, name, bytes)"
            )
    outside = _native.first_outside_namespace(name, res.keys) if res.keys else None
    if outside is not None:
        raise InvalidInputError(f"{what} wrote {res.keys[outside]!r}, outside its namespace {name + '/'!r}")


def _slices(contracts: list[str], runnable: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each contract name (in sorted order) with the runnable block positions that call it."""
    names = sorted(set(contracts))
    if len(names) == 1:  # the usual block: one contract; no per-transaction comparisons
        return [(names[0], np.flatnonzero(runnable))]
    column = np.asarray(contracts, dtype=object)
    return [(name, np.flatnonzero((column == name) & runnable)) for name in names]
