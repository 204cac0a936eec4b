"""The single-node ledger: blocks of signed transactions, executed by contracts, stored in LMDB.

``apply_block`` decodes the block in native code, checks every signature in one batch, runs the
contracts, and commits block, indexes, history (which records every state change), roots and a
slice of the state overlay folded into the state table in one fsync'd LMDB transaction. Either
the whole block is durable when it returns, or nothing of it was written.
"""

from __future__ import annotations

import collections.abc
import functools
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from . import _native, hashing, merkle
from .block import BlockHeader, decode_block, differing_fields, encode_block
from .codec import utf8
from .contracts import builtin_contracts
from .contracts.base import Contract, ContractState, StateReader, state_key
from .errors import (
    ChainMismatchError,
    ConcurrentWriteError,
    DecodeError,
    HeaderMismatchError,
    IntegrityError,
    InvalidInputError,
    InvalidSignatureError,
    LedgerError,
    MalformedInputError,
    NotFoundError,
    OutOfRangeError,
    ReentrantCallError,
    UnknownNameError,
)
from .execution import Authorizer, execute
from .read_ahead import ReadAhead
from .receipts import Receipt, decode_failures, decode_receipts, encode_receipts
from .store import DEFAULT_MAP_SIZE, BlockWrite, Store, StoreError, height_key
from .suites import DEFAULT_SUITE, Suite, get_suite
from .transaction import Transaction

if TYPE_CHECKING:
    from .audit import AuditReport

# A stored state value is `change id || flag`: the change id (u64 height || u32 tx index || u32
# write ordinal) keys the key's latest history entry, which holds the value; flag 0 is a tombstone
# (deleted key).
CHANGE_SIZE = 16
# A history value is `previous change id || tx id || flag || u16 len || state key || value`.
HISTORY_HEADER_SIZE = CHANGE_SIZE + 32 + 1 + 2
NO_CHANGE = bytes(CHANGE_SIZE)
# The layout of the store's tables (docs/FORMAT.md section 6), kept in `meta/store_format`. A store
# without it predates the mark: its state entries held their values. Format 2 kept every state
# entry in `state`, and formats 2 and 3 one `nonces` row per used nonce: they open as format 4
# once marked and converted.
STORE_FORMAT = 4
# State entries go to an in-memory overlay (`_native.StateOverlay`; their history entries make
# them durable) and each commit folds the next 1/STATE_SWEEP_COMMITS of it, in key order, into the
# `state` table: the overlay holds about this many commits' writes, and a fold lands on about
# 1/STATE_SWEEP_COMMITS of the table's pages instead of a page per written key.
STATE_SWEEP_COMMITS = 100
# The LMDB map a ledger starts with (it doubles whenever a write fills it): at least enough for the
# tables and the genesis block, at most what a 64-bit address space maps.
MIN_MAP_SIZE = 1 << 16
MAX_MAP_SIZE = 1 << 46
# Tx ids the in-memory locator holds before the commit that passes this writes them to the store
# as a sorted run (12 bytes an id) and empties it: the bound on its memory and on rebuilding it.
LOCATOR_RUN_IDS = 1 << 20
# Runs stop merging once they would pass this many ids (96 MB). Unbounded, the merges that keep
# runs few would rewrite the whole chain's ids in one commit, a stall that grows with the chain
# (1.7 s at 10M transactions), until a run passed LMDB's 4 GB value limit (~358M transactions)
# and no block could commit again. Bounded, a lookup searches ~1 run per 8M transactions.
LOCATOR_RUN_MAX_IDS = 1 << 23
LOCATOR_RECORD_LEN = 12  # a run's record: id prefix [8] | u32 height (docs/FORMAT.md section 6)
# A handle that follows another process's writes forgets the overlay entries that process's folds
# put into `state` whenever its overlay has doubled since it last did, from at least this many.
FOLLOWED_OVERLAY_MIN = 1 << 16
QUERY_TRIES = 4  # runs of a query that a commit overlapped, before it runs with commits held off
MAX_CHAIN_ID_LEN: int = _native.MAX_CHAIN_ID_LEN
# The key suffix of a sender's highest run of used nonces in `nonces` (native/src/ledger/nonce_runs.rs).
NONCE_HEAD = b"\xff" * 8
NONCE_LOOKUP_ROWS = 2  # the runs a nonce below its head run can be in or join (nonce_runs.rs: lookups)


def _location(raw: bytes) -> tuple[int, int]:
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:12], "big")


def split_ids(flat: bytes) -> list[bytes]:
    """Concatenated 32-byte transaction ids (a block's ``txids``, a batch's ``ids``), one by one."""
    return [flat[i : i + 32] for i in range(0, len(flat), 32)]


def _changes(keys: list[bytes], changes: list[bytes], entries: list[bytes | None]) -> list[bytes | None]:
    """What each history entry (stored at ``changes``, None where absent) says its key became: the
    value put, or None for a delete. An entry that is missing or another key's means the store is
    corrupt."""
    values, bad = _native.history_values(keys, entries)
    if bad >= 0:
        detail = f"change {changes[bad].hex()} of {keys[bad]!r} is missing or another key's"
        raise IntegrityError(_location(changes[bad])[0], "history", detail)
    return values


def _live_values(store: Store, txn: Any, entries: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The values of stored state entries, read from the history entries they name; tombstones
    (deleted keys) are absent."""
    live = {v[:CHANGE_SIZE]: k for k, v in entries if v[CHANGE_SIZE]}
    if not live:
        return {}
    changes, keys = list(live), list(live.values())
    found = dict(store.get_many(txn, "history", changes))
    values = _changes(keys, changes, list(map(found.get, changes)))
    if None in values:
        i = values.index(None)
        detail = f"change {changes[i].hex()} of live key {keys[i]!r} is a delete"
        raise IntegrityError(_location(changes[i])[0], "history", detail)
    return dict(zip(keys, values))  # type: ignore[arg-type]


def unfolded_state(store: Store, txn: Any) -> _native.StateOverlay:
    """The state entries of the changes that ``meta/state_mark`` says may not be in the ``state``
    table yet, as of ``txn``: those the history entries from that height on make, the newest per
    key; its sweep goes on after the stored cursor. A mark, sweep or history entry that does not
    parse is an ``IntegrityError``."""
    overlay = _native.StateOverlay(_stored_sweep(store, txn)[1])
    _load_history(store, txn, overlay, height_key(_state_mark(store, txn)))
    return overlay


def _stored_sweep(store: Store, txn: Any) -> tuple[int | None, bytes | None]:
    """``meta/state_sweep``: the height at which the sweep's current round began and the last key
    it folded (None where the store predates it, or no fold yet)."""
    raw = txn.get(b"state_sweep", db=store.tables["meta"])
    if raw is None:
        return None, None
    if len(raw) < 8:
        raise IntegrityError(None, "meta.state_sweep", f"stored {raw!r}, shorter than its u64 height")
    return int.from_bytes(raw[:8], "big"), raw[8:] or None


def _state_mark(store: Store, txn: Any) -> int:
    mark = txn.get(b"state_mark", db=store.tables["meta"])
    if mark is None or len(mark) != 8:
        raise IntegrityError(None, "meta.state_mark", f"stored {mark!r}, not a u64")
    return int.from_bytes(mark, "big")


def _load_history(store: Store, txn: Any, overlay: _native.StateOverlay, start: bytes) -> None:
    """Adds to ``overlay`` the state entries of the changes history records from change id
    ``start`` on; an entry that does not parse is an ``IntegrityError``."""
    # The cursor's own iterator, not Store.scan: a generator frame per entry costs a fifth of
    # reading a million of them on open.
    with txn.cursor(db=store.tables["history"]) as cur:
        changes = cur.iternext() if cur.set_range(start) else iter(())
        try:
            while batch := list(itertools.islice(changes, 1 << 18)):
                overlay.load(batch)
        except LedgerError as exc:
            raise IntegrityError(int.from_bytes(start[:8], "big"), "history", str(exc)) from exc


_R = TypeVar("_R")


def _check_contract(contract: Any) -> Contract:
    """A contract to register: a Contract instance under a name transactions can carry."""
    if not isinstance(contract, Contract):
        raise InvalidInputError(f"a contract is a Contract instance, got {type(contract).__name__}")
    utf8(getattr(contract, "name", None), "a contract's name", InvalidInputError)
    _native.check_contract_name(contract.name)
    for name in sorted(contract.methods()):
        try:
            _native.check_contract_name(name)  # methods follow the same rule in a transaction
        except MalformedInputError:
            raise InvalidInputError(
                f"contract {contract.name!r}: no transaction can call method {name!r:.80} (a method name is "
                "[a-z0-9_], a lowercase letter first, 1..64 bytes)"
            ) from None
    return contract


def check_chain_id(chain_id: Any) -> str:
    """A chain id: a str of 1..MAX_CHAIN_ID_LEN UTF-8 bytes."""
    if not isinstance(chain_id, str) or not 1 <= len(utf8(chain_id, "chain_id", InvalidInputError)) <= MAX_CHAIN_ID_LEN:
        raise InvalidInputError(f"chain_id must be a string of 1..{MAX_CHAIN_ID_LEN} UTF-8 bytes, got {chain_id!r}")
    return chain_id


def _check_header_values(timestamp: Any, proposer: Any, consensus: Any) -> None:
    """The header values a caller passes, checked before anything executes: a negative timestamp
    would otherwise be quietly raised to the previous block's. (The proposer's length depends on
    the suite: the header encoder checks it.)"""
    if timestamp is not None and (
        isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp < 2**64
    ):
        raise InvalidInputError(f"timestamp must be None or milliseconds in 0..2**64 - 1, got {timestamp!r}")
    for name, value in (("proposer", proposer), ("consensus", consensus)):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"{name} must be bytes, got {type(value).__name__}")


def _check_size(size: Any, most: int, name: str, bound: str) -> int:
    """A count of blocks for a proof: an int in 0..``most`` (``bound`` says what ``most`` is)."""
    if not isinstance(size, int) or isinstance(size, bool):
        raise InvalidInputError(f"{name} is an int, got {type(size).__name__}")
    if not 0 <= size <= most:
        raise OutOfRangeError(f"{name} {_shown(size)} is outside 0..{most}, {bound}")
    return size


def _shown(n: int) -> str:
    """``n`` for an error message: its digits, or its size where they would flood the message
    (``str`` refuses ints of over 4300 digits outright)."""
    return str(n) if n.bit_length() <= 128 else f"{'-' if n < 0 else ''}(an int of {n.bit_length()} bits)"


def _header_difference(got: BlockHeader, expected: BlockHeader) -> str:
    """Which fields of a re-executed header differ from the expected one, with both values."""
    show = lambda v: v.hex() if isinstance(v, bytes) else repr(v)  # noqa: E731
    diffs = [
        f"{name} {show(getattr(got, name))} here, {show(getattr(expected, name))} expected"
        for name in differing_fields(got, expected)
    ]
    return "the block re-executes to another header than the one expected: " + "; ".join(diffs)


def _check_expect(expect: object) -> None:
    if expect is not None and not isinstance(expect, BlockHeader):
        raise InvalidInputError(f"expect must be a BlockHeader or None, got {type(expect).__name__}")


def _check_flag(value: object, name: str) -> None:
    """Refuses a flag that is not a bool: read as a truth value, ``"no"`` would say yes."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a bool, got {type(value).__name__}")


def _iterator(values: Iterable[_R], name: str) -> Iterator[_R]:
    try:
        return iter(values)
    except TypeError:
        raise InvalidInputError(f"{name} must be an iterable, got {type(values).__name__}") from None


class _Overlapped(Exception):
    """A query's read met an overlay that a commit or catch-up changed since the query began."""


def _following(read: Callable[..., _R]) -> Callable[..., _R]:
    """A public read: it first catches up with what another process committed (``Ledger._follow``)."""

    @functools.wraps(read)
    def follow_then_read(self: Ledger, *args: Any, **kwargs: Any) -> _R:
        self._follow()
        return read(self, *args, **kwargs)

    return follow_then_read


def _nonce_rows_to_runs(store: Store, txn: Any) -> None:
    """Rewrites a `nonces` table of one row per used nonce (``sender || u64 nonce``, formats 2 and
    3) as runs of consecutive nonces, in ``txn``."""
    db, batch_size = store.tables["nonces"], 1 << 18
    with txn.cursor(db=db) as cur:
        if not cur.first():
            return
        sender_len, used = len(cur.key()) - 8, cur.iternext(keys=True, values=False)
        runs: list[tuple[bytes, bytes]] = []
        growing = None
        while True:
            batch = list(itertools.islice(used, batch_size))
            rows, growing = _native.nonce_runs_of_used(batch, sender_len, growing, len(batch) < batch_size)
            runs += rows
            if len(batch) < batch_size:
                break
    txn.drop(db, delete=False)
    with txn.cursor(db=db) as cur:
        cur.putmulti(runs)


class _StateReads:
    """A block's state reads in its write (which sees the blocks staged before it in a group),
    kept whole (with change ids) so that each written key is linked to its latest change without
    looking the key up again."""

    def __init__(self, store: Store, txn: Any, overlay: _native.StateOverlay) -> None:
        self._store, self._txn, self._overlay = store, txn, overlay
        self._asked: list[list[bytes]] = []  # a set only when some written key may be unread
        self._found: dict[bytes, bytes] = {}

    def _lookup(self, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        """The entries of ``keys`` that exist: staged or in the overlay, else in ``state``."""
        found, missing = self._overlay.split(keys, staged=True)
        return found + self._store.get_many(self._txn, "state", missing)

    def values(self, keys: list[bytes]) -> dict[bytes, bytes]:
        keys = list(keys)
        entries = self._lookup(keys)
        self._asked.append(keys)
        self._found.update(entries)
        return _live_values(self._store, self._txn, entries)

    def entries(self, maybe_unread: list[bytes]) -> list[tuple[bytes, bytes]]:
        """The stored entries of the keys read and of those ``maybe_unread`` (written keys that
        may not have been read) that exist."""
        if maybe_unread:
            unread = set(maybe_unread).difference(itertools.chain.from_iterable(self._asked))
            if unread:
                self._found.update(self._lookup(list(unread)))
        return list(self._found.items())


@dataclass(frozen=True)
class _Decoded:
    """A decoded block, with the time each step took (its signatures are checked apart)."""

    batch: _native.TxBatch
    raws: list[bytes]  # taken from the batch once: each ``TxBatch.raws`` builds new bytes
    timings: dict[str, float]


class _Item(NamedTuple):
    """A decoded block to execute, with the header values consensus fixed for it, and the header
    it must re-execute to (None: any)."""

    decoded: _Decoded
    timestamp: int | None
    proposer: bytes
    consensus: bytes
    expect: BlockHeader | None = None


def stored_text(raw: bytes | None, key: str) -> str:
    """A text the store's metadata holds: ``IntegrityError`` if it is missing or not UTF-8."""
    try:
        if raw is not None:
            return raw.decode()
    except UnicodeDecodeError:
        pass
    raise IntegrityError(None, key, "missing" if raw is None else f"not UTF-8: {raw[:40]!r}")


def _stored_suite(raw: bytes | None) -> Suite:
    """The suite the store's metadata names: ``IntegrityError`` if it is not one (damage: this
    code wrote only suites it knows)."""
    name = stored_text(raw, "meta/suite")
    try:
        return get_suite(name)
    except UnknownNameError:
        raise IntegrityError(None, "meta/suite", f"names no suite: {name!r:.80}") from None


class _Abandoned(BaseException):
    """Stops a write whose caller was interrupted, before it commits (never seen by callers)."""


class _Check:
    """A decoded block's signature check, running on native threads from the moment it is made
    (no Python thread in between: it starts while the caller holds the GIL executing the block)."""

    def __init__(self, decoded: _Decoded, *, one_thread: bool = False) -> None:
        self.decoded = decoded
        self._running = decoded.batch.start_signature_check(os.urandom(32), one_thread)

    def result(self) -> None:
        """Waits for the check; raises ``InvalidSignatureError`` unless every signature verified."""
        valid = self._running.wait()
        self.decoded.timings["verify"] = self._running.seconds
        if not valid.all():
            raise InvalidSignatureError(np.flatnonzero(~valid).tolist())


@dataclass(frozen=True)
class CheckedBlock:
    """A block that :meth:`Ledger.check_block` decoded and whose every signature it verified: a
    node checks each block as it is replicated, and applies it later without decoding it
    again. Only a ledger makes one, so its transactions and their check go together."""

    _decoded: _Decoded

    @property
    def raws(self) -> tuple[bytes, ...]:
        """Its transactions: a copy, as the ledger stores its own list of them when it applies it."""
        return tuple(self._decoded.raws)


@dataclass(frozen=True)
class BlockInput:
    """One block for :meth:`Ledger.apply_group`: its transactions (encoded, or a
    :class:`CheckedBlock`) and the header values that consensus fixed for it
    (``signatures_checked`` as in :meth:`Ledger.apply_block`)."""

    raws: Sequence[bytes] | CheckedBlock
    timestamp: int | None = None
    proposer: bytes = b""
    consensus: bytes = b""
    signatures_checked: bool = False
    expect: BlockHeader | None = None  # the header it must re-execute to, as in apply_block

    def __post_init__(self) -> None:
        _check_flag(self.signatures_checked, "signatures_checked")
        _check_expect(self.expect)
        # Here, not when the group commits, where one block's bad value refused the whole group
        # (the proposer's length depends on the suite: the header encoder checks it there).
        _check_header_values(self.timestamp, self.proposer, self.consensus)


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a key: the block and transaction that made it, and the new value (None: deleted)."""

    height: int
    index: int
    txid: bytes
    value: bytes | None


@dataclass(frozen=True)
class TxRecord:
    """A committed transaction, its receipt, and the proof that it is in its block."""

    tx: Transaction
    receipt: Receipt
    height: int
    index: int
    tx_count: int
    proof: list[bytes]


class Block:
    """A committed block. Receipts and transactions are decoded when first asked for."""

    def __init__(
        self,
        header: BlockHeader,
        raws: Sequence[bytes],
        receipts: bytes,
        txids: bytes,
        timings: dict[str, float] | None = None,
    ) -> None:
        self.header = header
        self.raws = raws
        self._receipts, self._txids = receipts, txids
        self.timings = timings or {}

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def receipts(self) -> list[Receipt]:
        return decode_receipts(self._receipts, self.header.height, self.header.tx_count)

    @property
    def receipts_record(self) -> bytes:
        """The block's receipts as stored (docs/FORMAT.md section 5): what ``receipts_root``
        hashes, and what :func:`~ledgercore.receipts.verify_receipt` takes."""
        return self._receipts

    @property
    def failures(self) -> dict[int, str]:
        """Position -> error of each transaction whose receipt failed (the others' are ok): what
        :attr:`receipts` says of success, without a receipt object per transaction."""
        return decode_failures(self._receipts, self.header.height, self.header.tx_count)

    @property
    def txids(self) -> list[bytes]:
        return split_ids(self._txids)

    def transactions(self) -> list[Transaction]:
        return [Transaction.decode(raw) for raw in self.raws]

    def __repr__(self) -> str:
        return f"Block(height={self.height}, txs={self.header.tx_count}, hash={self.hash.hex()[:16]}…)"


class Ledger:
    """One node's ledger. Use :meth:`open`; safe to read from many threads while one applies blocks.

    The head, the block-hash log, the tx locator's newest part and the state overlay (the newest
    state entries) are held in memory: they cover the blocks that were stored when it opened and
    those it applied since. Another process may write the store: each public read first catches
    up with the blocks that process committed, so it sees everything committed before it began.
    A write on a head the store has moved past is refused (``ConcurrentWriteError``), not written
    over what the other process committed; a read then catches this handle up."""

    def __init__(
        self,
        store: Store,
        suite: Suite,
        chain_id: str,
        contracts: dict[str, Contract],
        authorize: Authorizer | None,
    ) -> None:
        self._store, self.suite, self.chain_id = store, suite, chain_id
        self._contracts = contracts
        self._authorize = authorize
        self._write_lock = threading.Lock()
        # One catch-up at a time; a read that finds one running waits for it, not answering from
        # the head it is replacing.
        self._follow_lock = threading.Lock()
        # All from one snapshot: the block-hash log and head; committed tx ids -> their blocks
        # (older blocks in the stored runs, keyed by the last height each covers; the blocks
        # after the last run in memory, rebuilt here); the state entries not yet folded into the
        # state table, read back from history.
        with store.read() as txn:
            self._log = merkle.MerkleLog(suite.hash)
            self._log.extend([v for _, v in store.scan(txn, "hashes")])
            self._head = self._stored_head(txn, self._log.size - 1)
            # A chain keeps the header version its genesis has: receipts roots or none.
            self._receipts_roots = bool(self._stored_genesis(txn).receipts_root)
            self._locator, self._located = _native.TxLocator(), self._last_run(txn)
            self._locate_blocks(txn, self._located + 1)
            try:
                self._overlay = unfolded_state(store, txn)
                round_start = _stored_sweep(store, txn)[0]
                self._sweep = (_state_mark(store, txn), self._head.height + 1 if round_start is None else round_start)
            except IntegrityError as exc:
                raise StoreError(f"the history to read state from does not parse: {exc}") from exc
            self._staged_sweep = self._sweep
            self._overlay_floor = max(len(self._overlay), FOLLOWED_OVERLAY_MIN)
            self._seen_txn = txn.id()
        self._state_version = 0  # odd while the overlay's committed entries change: see query
        # Every write executes and commits here (see _commit). The thread starts now, not at the
        # first write: an interrupt that landed while a write started it would leave the thread
        # unknown to the executor, so the write could not be waited for, nor the thread at exit.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledgercore-write")
        self._write_thread = self._writer.submit(threading.get_ident).result()

    def _changing_state(self, change: Callable[[], None]) -> None:
        """Runs ``change`` to the overlay's committed entries, marked for queries running meanwhile."""
        self._state_version += 1
        try:
            change()
        finally:
            self._state_version += 1

    def _stored_head(self, txn: Any, height: int) -> BlockHeader:
        if height < 0:  # not even the genesis block's hash: the table was emptied
            why = "the store holds no block hashes (not even the genesis block's)"
            raise StoreError(why) from IntegrityError(None, "hashes", why)
        raw = txn.get(height_key(height), db=self._store.tables["headers"])
        try:
            head = None if raw is None else BlockHeader.decode(raw)
        except DecodeError as exc:  # damage, like a hash that does not match: audit's exit 1, not 2
            why = f"the stored header at the top, height {height}, does not decode: {exc}"
            raise StoreError(why) from IntegrityError(height, "headers", why)
        if head is None or head.hash != txn.get(height_key(height), db=self._store.tables["hashes"]):
            why = "stored block hashes do not match the stored headers"
            raise StoreError(why) from IntegrityError(height, "hashes", why)
        for field, meta, stored in (("suite", self.suite.name, head.suite), ("chain_id", self.chain_id, head.chain_id)):
            if stored != meta:  # blocks appended by the metadata's would fork the chain's rules
                why = f"the top block's {field} is {stored!r:.80}, the store's metadata says {meta!r:.80}"
                raise StoreError(why) from IntegrityError(height, f"meta/{field}", why)
        return head

    def _stored_genesis(self, txn: Any) -> BlockHeader:
        if self._head.height == 0:
            return self._head
        raw = txn.get(height_key(0), db=self._store.tables["headers"])
        try:
            return BlockHeader.decode(raw if raw is not None else b"")
        except DecodeError as exc:  # damage: audit's exit 1, not a usage error
            why = "the stored genesis header is missing" if raw is None else f"the stored genesis header does not decode: {exc}"
            raise StoreError(why) from IntegrityError(0, "headers", why)

    def _last_run(self, txn: Any) -> int:
        """The last height the tx locator's stored runs cover (0: none)."""
        with txn.cursor(db=self._store.tables["locator"]) as cur:
            return int.from_bytes(cur.key(), "big") if cur.last() else 0

    def _locate_blocks(self, txn: Any, start: int) -> None:
        """Adds the tx ids of the blocks from ``start`` on to the locator's map."""
        for h, ids in self._store.scan(txn, "txids", height_key(start)):
            self._locator.add_block(int.from_bytes(h, "big"), ids)

    def _follow(self) -> None:
        """Catches up with blocks another process committed since this handle last looked, so
        that a process reading a ledger another one writes sees what is committed: the head, the
        block-hash log, the newest part of the tx locator and the state overlay. A read of the
        environment's last transaction id when nothing changed. Skipped while this handle
        commits (it is then the writer: the store holds nothing it does not). ``StoreError`` once
        closed: a closed handle answers nothing, not even its last height."""
        if self._store.last_txnid() == self._seen_txn:
            return
        with self._follow_lock:
            if self._store.last_txnid() == self._seen_txn:  # caught up while this waited
                return
            if not self._write_lock.acquire(blocking=False):  # this handle commits: it is the writer
                return
            try:
                with self._store.read() as txn:
                    self._catch_up(txn)
                    self._seen_txn = txn.id()
            finally:
                self._write_lock.release()

    def _stored_height(self, txn: Any) -> int | None:
        """The stored head's height, or None when the store no longer holds this handle's head
        (the chain it read) at its height."""
        raw = txn.get(b"height", db=self._store.tables["meta"])
        holds = txn.get(height_key(self._head.height), db=self._store.tables["hashes"]) == self._head.hash
        return int.from_bytes(raw, "big") if raw is not None and holds else None

    def _catch_up(self, txn: Any) -> None:
        h0, stored = self._head.height, self._stored_height(txn)
        if stored == h0:
            return
        if stored is None or stored < h0:
            raise StoreError(f"the store no longer holds the chain this handle read up to height {h0}: reopen it")
        start = height_key(h0 + 1)
        # The overlay first: it is the part that can fail, and a later try loads the same again.
        # Every change after h0 is loaded, so each key's entry is its newest; entries below the
        # writer's mark (whose changes its folds put into `state`) are forgotten now and then.
        self._changing_state(lambda: _load_history(self._store, txn, self._overlay, start))
        stored_mark = _state_mark(self._store, txn)
        if len(self._overlay) > 2 * self._overlay_floor:
            self._changing_state(lambda: self._overlay.forget_below(stored_mark))
            self._overlay_floor = max(len(self._overlay), FOLLOWED_OVERLAY_MIN)
        # The other process's folds put every change below its mark into `state`: if this handle
        # writes next, its marks start from there.
        self._sweep = self._staged_sweep = (max(self._sweep[0], stored_mark), self._sweep[1])
        covered = self._last_run(txn)
        if covered != self._located:  # the writer wrote the map's ids as a run: rebuild after it
            self._locator, self._located = _native.TxLocator(), covered
            self._locate_blocks(txn, covered + 1)
        else:
            self._locate_blocks(txn, h0 + 1)
        self._log.extend([v for _, v in self._store.scan(txn, "hashes", start)])
        self._head = self._stored_head(txn, stored)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        suite: str | None = None,
        *,
        chain_id: str = "dev",
        contracts: Iterable[Contract] = (),
        authorize: Authorizer | None = None,
        map_size: int = DEFAULT_MAP_SIZE,
        receipts_roots: bool | None = None,
    ) -> Ledger:
        """Opens the ledger at ``path``, creating it (with a genesis block at height 0) if it is new.

        ``suite`` defaults to ``ed25519-blake3`` for a new ledger; for an existing one it must match.
        ``contracts`` adds to the built-ins (``evidence``, ``cert``; one of the same name replaces it). ``authorize`` decides who may
        call what (None: a development chain where anyone may call anything).
        ``receipts_roots``: whether the chain's headers carry receipts roots (version 2), which its
        genesis fixes. None: a new chain's do, an existing one's are as stored. False makes a chain as
        ledgercore wrote them before (to join one made then); a value an existing chain does not
        have raises ``ChainMismatchError``.
        """
        # Check what can be checked before touching the disk: a refused open leaves nothing behind.
        if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
            raise InvalidInputError(f"path must be a str or os.PathLike naming a directory, got {type(path).__name__}")
        try:
            os.fsencode(path)
        except UnicodeEncodeError:
            raise InvalidInputError(f"path {os.fspath(path)!r:.120} has characters no file name can hold") from None
        wanted = None if suite is None else get_suite(suite).name
        check_chain_id(chain_id)
        if isinstance(contracts, (str, bytes)) or not isinstance(contracts, Iterable):
            raise InvalidInputError(f"contracts must be an iterable of Contract, got {type(contracts).__name__}")
        contracts = [_check_contract(c) for c in contracts]
        names = [c.name for c in contracts]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"contracts must have distinct names: {', '.join(map(repr, twice))} given twice")
        if receipts_roots is not None and not isinstance(receipts_roots, bool):
            raise InvalidInputError(f"receipts_roots must be True, False or None, got {receipts_roots!r:.40}")
        if authorize is not None and not callable(authorize):
            raise InvalidInputError(f"authorize must be callable or None, got {type(authorize).__name__}")
        if isinstance(map_size, bool) or not isinstance(map_size, int) or not MIN_MAP_SIZE <= map_size <= MAX_MAP_SIZE:
            raise InvalidInputError(
                f"map_size must be an int of {MIN_MAP_SIZE}..{MAX_MAP_SIZE} bytes (the map grows when full), got {map_size!r}"
            )
        store = Store(path, map_size)
        try:
            stored_suite = store.get("meta", b"suite")
            if stored_suite is None:
                chosen = get_suite(wanted or DEFAULT_SUITE)
                stored_suite = cls._write_genesis(store, chosen, chain_id, receipts_roots is not False)
            if stored_suite is not None:
                cls._check_store_format(store, path)
                where = f"ledger at {os.fspath(path)!r}"
                chosen = _stored_suite(stored_suite)
                stored_chain = stored_text(store.get("meta", b"chain_id"), "meta/chain_id")
                if wanted is not None and wanted != chosen.name:
                    raise ChainMismatchError(f"{where} uses suite {chosen.name!r}, not {wanted!r}")
                if chain_id != stored_chain:
                    raise ChainMismatchError(f"{where} is chain {stored_chain!r}, not {chain_id!r}")
        except BaseException:
            store.close()
            raise
        registry = {c.name: c for c in builtin_contracts()}
        for c in contracts:
            registry[c.name] = c
        try:
            ledger = cls(store, chosen, chain_id, registry, authorize)
        except BaseException:  # what it read back from the store is damaged
            store.close()
            raise
        if receipts_roots is not None and ledger._receipts_roots != receipts_roots:
            ledger.close()
            has = "has receipts roots (version 2 headers)" if ledger._receipts_roots else "has no receipts roots (version 1 headers)"
            raise ChainMismatchError(f"ledger at {os.fspath(path)!r} {has}; receipts_roots={receipts_roots} asked otherwise")
        return ledger

    @staticmethod
    def _check_store_format(store: Store, path: str | os.PathLike[str]) -> None:
        raw = store.get("meta", b"store_format")
        found = 1 if raw is None else int.from_bytes(raw, "big")
        if found in (2, 3):

            def upgrade(txn: Any) -> None:
                meta = store.tables["meta"]
                if found == 2:  # every change is in `state`: the overlay starts past the last block
                    after = int.from_bytes(txn.get(b"height", db=meta), "big") + 1
                    txn.put(b"state_mark", height_key(after), db=meta)
                _nonce_rows_to_runs(store, txn)
                txn.put(b"store_format", STORE_FORMAT.to_bytes(4, "big"), db=meta)

            store.transact(upgrade, 0)
        elif found != STORE_FORMAT:
            raise StoreError(
                f"ledger at {os.fspath(path)!r} is in store format {found}; this ledgercore reads formats 2 to "
                f"{STORE_FORMAT} only (docs/FORMAT.md section 6): replay its blocks into a new ledger"
            )

    @staticmethod
    def _write_genesis(store: Store, suite: Suite, chain_id: str, receipts_roots: bool) -> bytes | None:
        """Creates the chain, unless another process created it first: then its suite. Its blocks
        have receipts roots (version 2 headers) if its genesis has one; ``receipts_roots`` False
        makes a chain as ledgercore wrote them before (an audit's replay of such a chain)."""
        empty = merkle.MerkleLog(suite.hash).root()
        receipts = encode_receipts(0, {}, [])
        header = BlockHeader(
            suite=suite.name, chain_id=chain_id, height=0, prev_hash=bytes(32), tx_root=empty,
            state_root=empty, history_root=empty, timestamp=0, proposer=b"", tx_count=0, consensus=b"",
            receipts_root=hashing.digest(receipts, suite.hash) if receipts_roots else b"",
        )  # fmt: skip
        write = BlockWrite(0)
        Ledger._stage_block(write, header, [], receipts, b"")
        write.put("meta", b"suite", suite.name.encode())
        write.put("meta", b"chain_id", chain_id.encode())
        write.put("meta", b"store_format", STORE_FORMAT.to_bytes(4, "big"))
        write.put("meta", b"state_mark", height_key(1))
        write.put("meta", b"state_sweep", height_key(1))

        def create(txn: Any) -> bytes | None:
            stored = txn.get(b"suite", db=store.tables["meta"])
            if stored is None:
                store.put_block(txn, write)
            return stored

        return store.transact(create, write.size_hint)

    @staticmethod
    def _stage_block(write: BlockWrite, header: BlockHeader, raws: Sequence[bytes], receipts: bytes, txids: bytes) -> None:
        h = height_key(header.height)
        body = encode_block(header, raws)
        # The block body, its state values and history copies, and the indexes: about 4x the body.
        write.size_hint += 4 * len(body)
        write.put("headers", h, header.encode())
        write.put("blocks", h, body)
        write.put("receipts", h, receipts)
        write.put("txids", h, txids)
        write.put("hashes", h, header.hash)
        write.put("meta", b"height", h)

    def close(self) -> None:
        self._refuse_reentrant("close()")
        self._writer.shutdown()  # a write in flight finishes first
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def register(self, contract: Contract) -> None:
        """Adds (or replaces) a contract by its name, which must be one transactions can carry
        (``[a-z0-9_]``, a letter first)."""
        self._contracts[contract.name] = _check_contract(contract)

    def apply_block(
        self, raws: Sequence[bytes], *, timestamp: int | None = None, proposer: bytes = b"", consensus: bytes = b"",
        signatures_checked: bool = False, expect: BlockHeader | None = None,
    ) -> Block:
        """Verifies, executes and durably commits one block of encoded transactions.

        ``timestamp`` (ms; default now, never before the previous block's), ``proposer`` (a public key
        or empty) and ``consensus`` (opaque, e.g. the consensus log position) go into the header, so
        nodes that apply the same ordered input with the same values produce identical blocks.

        Malformed transactions (``DecodeError``) and invalid signatures (``InvalidSignatureError``)
        reject the whole block and write nothing. Transactions that fail in execution (replayed
        nonce, unknown contract or method, contract errors) get a failed receipt and no writes.

        ``signatures_checked=True`` skips the signature check: only for a caller that has itself
        verified every signature of exactly these bytes (a consensus leader applying the block it
        cut from its verified mempool). Decoding and every other check still run.

        ``expect`` is the header the block must re-execute to (a block fetched from a peer, whose
        header names its place in the chain and the state it leads to): any other header raises
        ``HeaderMismatchError`` naming the fields that differ, and nothing is written.

        The signatures are checked on native threads while the block executes and its writes are
        staged; the write commits only once every one has verified.
        """
        self._store.check_open()
        _check_flag(signatures_checked, "signatures_checked")
        _check_expect(expect)
        _check_header_values(timestamp, proposer, consensus)
        decoded = self._decode(raws)
        checking = None if signatures_checked else _Check(decoded)
        return self._commit([_Item(decoded, timestamp, proposer, consensus, expect)], checking=checking)[0]

    def apply_blocks(
        self, blocks: Iterable[Sequence[bytes]], timestamps: Iterable[int | None] | None = None
    ) -> Iterator[Block]:
        """Applies blocks in order, yielding each once it is durable: the same result as calling
        :meth:`apply_block` on each, but the next blocks are decoded and their signatures checked
        (on native threads) while a block executes, is staged, flushed and fsync'd: each block's
        write commits once its own check has passed. For bulk loads and catching up.

        ``blocks`` is read ahead, on a thread of its own: a block commits and is yielded without
        waiting for the source to produce the ones after it. So a source must not wait for the
        caller to take a block before it produces the next, and after the caller stops early it
        may have been read a few blocks further than what was applied."""
        self._store.check_open()
        stamps = None if timestamps is None else _iterator(timestamps, "timestamps")
        it = _iterator(blocks, "blocks")

        def pull() -> _Check | None:
            """The source's next block, decoded and its check started; None once the source ended."""
            try:  # not next(it, None): a None block must fail as apply_block(None) does
                raws = next(it)
            except StopIteration:
                return None
            return _Check(self._decode(raws), one_thread=True)  # an error is raised at that block's turn

        # A check per native thread, each a whole block on one thread: one batch equation per
        # block costs ~10% less CPU per signature than a block split across the threads, and a
        # thread that finishes first takes the next block instead of idling while the block
        # about to commit waits for its slower half. One more is read, so that the next block
        # is there when a thread finishes, not only once the block committing has executed.
        ahead = ReadAhead(pull, _native.thread_count() + 1, "ledgercore-read-ahead")
        try:
            while (checking := ahead.take()) is not None:  # raises the block's DecodeError
                started: list[bool] = []

                def start_next(started: list[bool] = started) -> None:
                    if not started:  # once, though a write that outgrew the map stages again
                        started.append(True)
                        ahead.allow()

                try:
                    stamp = None if stamps is None else next(stamps)
                except StopIteration:
                    raise InvalidInputError(
                        f"fewer timestamps than blocks: none for block {self._head.height + 1}"
                    ) from None
                _check_header_values(stamp, b"", b"")
                item = _Item(checking.decoded, stamp, b"", b"")
                yield self._commit([item], executed=start_next, checking=checking)[0]
        finally:
            ahead.stop()  # the caller stopped early, or a block failed: read no further

    def apply_group(self, blocks: Sequence[BlockInput]) -> list[Block | InvalidInputError]:
        """Applies consecutive blocks in one durable LMDB write (group commit): one fsync, and pages
        that several blocks touch are written once.

        Each block is decoded and checked on its own (a :class:`CheckedBlock` was already): one that
        :meth:`apply_block` would refuse (``DecodeError``, ``InvalidSignatureError``), or a block
        checked for another chain (``ChainMismatchError``), is skipped and that error stands in its
        place.
        The others execute in order, each on the state the ones before it left, and get exactly the
        headers that applying them one by one would give. A block whose header is not its input's
        ``expect`` raises ``HeaderMismatchError`` and none of the group is written. All are durable
        when this returns; a crash before that leaves none of them."""
        if not isinstance(blocks, Sequence):
            raise InvalidInputError(f"a group is a sequence of BlockInput values, got {type(blocks).__name__}")
        out: list[Block | InvalidInputError | None] = []
        checked = []
        for b in blocks:
            if not isinstance(b, BlockInput):  # before anything is written
                raise InvalidInputError(f"a group holds BlockInput values, got {type(b).__name__}")
            try:
                checked.append(_Item(self._input(b), b.timestamp, b.proposer, b.consensus, b.expect))
                out.append(None)
            except (DecodeError, InvalidSignatureError, ChainMismatchError) as exc:
                out.append(exc)
        committed = iter(self._commit(checked) if checked else [])
        return [next(committed) if o is None else o for o in out]

    def check_block(self, raws: Sequence[bytes], *, one_thread: bool = False) -> CheckedBlock:
        """Decodes a block and verifies every signature, touching nothing else (so it may run
        ahead of commits, on another thread): :meth:`apply_group` then applies the result without
        decoding it again. Raises ``DecodeError`` or ``InvalidSignatureError`` as
        :meth:`apply_block` would. With ``one_thread`` the check runs on one native thread
        instead of all of them: ~10% less CPU per signature, for callers that check several
        blocks at once."""
        _check_flag(one_thread, "one_thread")
        return CheckedBlock(self._check(raws, one_thread=one_thread))

    def _input(self, block: BlockInput) -> _Decoded:
        """A group's block decoded, with its signatures checked unless its input says they were."""
        if not isinstance(block.raws, CheckedBlock):
            return self._check(block.raws, verify=not block.signatures_checked)
        batch = block.raws._decoded.batch
        if (batch.suite, batch.chain_id) != (self.suite.name, self.chain_id):
            raise ChainMismatchError(
                f"a block checked for chain {batch.chain_id!r} ({batch.suite}) cannot be applied to chain "
                f"{self.chain_id!r} ({self.suite.name})"
            )
        return block.raws._decoded

    def _check(self, raws: Sequence[bytes], *, verify: bool = True, one_thread: bool = False) -> _Decoded:
        """Decodes a block and verifies its signatures: pure, so it may run ahead of commits."""
        decoded = self._decode(raws)
        if verify:
            _Check(decoded, one_thread=one_thread).result()
        return decoded

    def _decode(self, raws: Sequence[bytes]) -> _Decoded:
        if isinstance(raws, collections.abc.Set):  # a dict keeps its order; a set's is the hash seed's
            raise InvalidInputError(
                f"a block's transactions are in order: a list, not a {type(raws).__name__} (whose order "
                "differs from process to process, so nodes would build different blocks)"
            )
        t0 = time.perf_counter()
        batch = _native.decode_txs(self.suite.name, self.chain_id, raws)
        return _Decoded(batch, batch.raws, {"decode": time.perf_counter() - t0, "verify": 0.0})

    def _commit(
        self, items: Sequence[_Item], executed: Callable[[], None] | None = None, checking: _Check | None = None,
    ) -> list[Block]:
        """Executes decoded blocks (with timestamp, proposer, consensus data) in order on the
        current head and commits them all in one durable write; ``executed`` runs once the last
        block is executed, before its writes are staged and the write is flushed. The write
        commits only once ``checking`` (their signature check, running meanwhile) has passed;
        if it raises, nothing is written and its error is raised. So it is when a block's header
        is not its item's ``expect`` (``HeaderMismatchError``).

        The write runs on the ledger's write thread, whoever calls: contracts then start at the
        same stack depth on every node, so one that recurses too deep fails (``RecursionError``)
        at the same depth everywhere, not at one that depends on the caller's stack."""
        self._refuse_reentrant("a ledger write")
        abandon = threading.Event()
        write: Future[list[Block]] | None = None
        try:  # one block: Ctrl-C may land inside submit(), once the write is queued
            write = self._writer.submit(self._write, items, executed, checking, abandon)
            return write.result()
        except RuntimeError:
            if write is None:  # the write thread is shut down: closed since the caller checked
                raise StoreError("the ledger store is closed") from None
            raise  # the write's own error: it has ended
        except BaseException:
            # The caller was interrupted (Ctrl-C) while its write was queued or ran: the write
            # must not go on to commit behind its back. It stops before committing, unless it
            # already is.
            abandon.set()
            if write is not None:
                write.cancel()
                wait([write])
            raise

    def _refuse_reentrant(self, what: str) -> None:
        """Raises ``ReentrantCallError`` where ``what`` would wait for its caller: on this ledger's
        write thread (a contract, an authorize hook), or on a thread inside a read of it (a
        contract's query), since a close, or a write that grows the map, waits for every read."""
        if threading.get_ident() == self._write_thread:
            raise ReentrantCallError(f"{what} from inside this ledger's own write (a contract or hook) would wait for itself")
        if self._store.held_here():
            raise ReentrantCallError(f"{what} from inside a read of this ledger (a contract's query) would wait for that read")

    def _write(
        self, items: Sequence[_Item], executed: Callable[[], None] | None, checking: _Check | None,
        abandon: threading.Event,
    ) -> list[Block]:
        """:meth:`_commit`'s write, on the write thread."""
        hint = sum(4 * sum(map(len, c.raws)) + 4096 for c, *_ in items)
        with self._write_lock:
            t0 = time.perf_counter()
            try:
                blocks, ran = self._store.transact(
                    lambda txn: self._execute_all(txn, items, executed, checking, abandon), hint
                )
            except BaseException:
                self._overlay.discard()
                self._reload_log()  # hashes appended for blocks that did not commit
                raise
            self._changing_state(self._overlay.publish)
            self._sweep = self._staged_sweep
            if ran:  # the map's ids and these blocks' are in the run this commit wrote
                self._locator, self._located = _native.TxLocator(), blocks[-1].height
            else:
                for b in blocks:
                    self._locator.add_block(b.height, b._txids)
            self._head = blocks[-1].header
            # The fsync is shared: each block's commit time gets an equal part of it.
            shared = time.perf_counter() - t0 - sum(b.timings["execute"] + b.timings["commit"] for b in blocks)
            for b, (decoded, *_) in zip(blocks, items):
                b.timings["commit"] += shared / len(blocks)
                b.timings["verify"] = decoded.timings["verify"]  # a check that ran beside execution
        return blocks

    def _execute_all(
        self, txn: Any, items: Sequence[_Item], executed: Callable[[], None] | None, checking: _Check | None,
        abandon: threading.Event,
    ) -> tuple[list[Block], bool]:
        """Executes and stages the blocks; and, when the locator's map would pass
        ``LOCATOR_RUN_IDS``, a run of its ids and theirs (True: the map is to be emptied)."""
        if self._log.size != self._head.height + 1:
            self._reload_log()  # an earlier try of this write ran out of map space midway
        # Drops what an earlier try of this write staged, after merging the last write into the
        # overlay: left out of that write's commit, the merge runs here, while this write's
        # signatures are checked on other threads.
        self._overlay.discard()
        self._check_head(txn)
        first, (head, out) = self._head.height + 1, (self._head, [])
        for n, (decoded, timestamp, proposer, consensus, _) in enumerate(items, 1):
            last = n == len(items)
            block = self._execute(txn, head, decoded, timestamp, proposer, consensus, executed if last else None)
            self._log.append(block.hash)
            head = block.header
            out.append(block)
        self._stage_fold(txn, first, head.height)
        ran = len(self._locator) + sum(b.header.tx_count for b in out) >= LOCATOR_RUN_IDS
        if ran:
            self._stage_locator_run(txn, out)
        if checking is not None:
            checking.result()  # raises, so the write aborts, if a signature failed
        for block, item in zip(out, items):
            if item.expect is not None and block.header != item.expect:
                raise HeaderMismatchError(_header_difference(block.header, item.expect))
        if abandon.is_set():
            raise _Abandoned  # the caller is gone (interrupted): no commit
        return out, ran

    def _check_head(self, txn: Any) -> None:
        """Refuses to write on a head that is no longer the stored one. LMDB lets one process
        write at a time, but a second ``Ledger`` on the same path (in another process) keeps its
        own head: writing blocks on it would overwrite blocks the other committed."""
        stored = self._stored_height(txn)
        if stored != self._head.height:
            raise ConcurrentWriteError(
                f"another process committed to this ledger since this handle read it (stored height "
                f"{'?' if stored is None else stored}, this handle's {self._head.height}): nothing was "
                "written; a read catches it up"
            )

    def _stage_fold(self, txn: Any, first: int, last: int) -> None:
        """Writes the next slice of the overlay into ``state``; and, as of this write (blocks
        ``first..last`` staged), the height below which every change is in ``state`` and where
        the sweep is.

        The mark is the highest of three heights below which every change is in ``state``: the
        last write's mark (the table only gets newer entries), the lowest height of a change this
        write leaves unfolded, and, once the sweep passes the end of the key space, the height its
        round began at (the round passed every key since then). The last keeps the mark moving
        when the ledger is reopened more often than a sweep takes: each reopen reads back every
        change from the mark on, and the sweep goes on from the stored cursor."""
        meta, (mark, round_start) = self._store.tables["meta"], self._sweep
        cursor = self._overlay.cursor
        folded = self._overlay.fold(-(-len(self._overlay) // STATE_SWEEP_COMMITS))
        if folded:
            with txn.cursor(db=self._store.tables["state"]) as cur:
                cur.putmulti(folded)
            if cursor is not None and folded[-1][0] <= cursor:  # past the end: a round is done
                mark, round_start = max(mark, round_start), first
            cursor = folded[-1][0]
        low = self._overlay.lowest_height()
        mark = max(mark, last + 1 if low is None else low)
        txn.put(b"state_mark", height_key(mark), db=meta)
        txn.put(b"state_sweep", height_key(round_start) + (cursor or b""), db=meta)
        self._staged_sweep = (mark, round_start)

    def _stage_locator_run(self, txn: Any, blocks: list[Block]) -> None:
        """Writes the map's ids and ``blocks``' as one run, merged with the newest stored runs
        that are no bigger than it while the result stays within ``LOCATOR_RUN_MAX_IDS`` (so run
        sizes roughly double going back up to that bound: O(log n) runs below it, and each id
        is rewritten O(log n) times, in sequential writes)."""
        newest = _native.TxLocator()
        for b in blocks:
            newest.add_block(b.height, b._txids)
        parts = [self._locator.to_run(), newest.to_run()]
        size, most = sum(map(len, parts)), LOCATOR_RUN_MAX_IDS * LOCATOR_RECORD_LEN
        with txn.cursor(db=self._store.tables["locator"]) as cur:
            while cur.last() and len(cur.value()) <= size and size + len(cur.value()) <= most:
                parts.append(cur.value())
                size += len(parts[-1])
                cur.delete()
        txn.put(height_key(blocks[-1].height), _native.merge_runs(parts), db=self._store.tables["locator"])

    def _execute(
        self, txn: Any, head: BlockHeader, decoded: _Decoded, timestamp: int | None, proposer: bytes, consensus: bytes,
        executed: Callable[[], None] | None = None,
    ) -> Block:
        """Executes one decoded block on ``head`` and stages its writes in ``txn``, whose reads see
        the blocks staged before it."""
        batch = decoded.batch
        t2 = time.perf_counter()
        height = head.height + 1
        ts = max(head.timestamp, int(time.time() * 1000) if timestamp is None else timestamp)
        senders, nonces = batch.public_keys, batch.nonces
        heads = self._store.get_many(txn, "nonces", _native.nonce_heads(senders))
        runs = heads + self._read_nonce_runs(txn, _native.nonce_lookups(senders, nonces, heads))
        fresh, nonce_puts, nonce_deletes = _native.nonce_update(senders, nonces, runs)
        reads = _StateReads(self._store, txn, self._overlay)
        result = execute(
            batch, height=height, timestamp=ts, contracts=self._contracts, nonce_fresh=fresh,
            state=StateReader(reads.values), authorize=self._authorize,
        )  # fmt: skip
        current = reads.entries(result.unread)
        if executed is not None:
            executed()
        t3 = time.perf_counter()
        ids = batch.ids
        writes = (result.keys, result.values, result.txs)
        receipts = encode_receipts(batch.count, result.errors, result.events)
        header = BlockHeader(
            suite=self.suite.name, chain_id=self.chain_id, height=height, prev_hash=head.hash,
            tx_root=merkle.root(ids, self.suite.hash),
            state_root=_native.state_root(self.suite.hash, head.state_root, *writes),
            history_root=self._log.root(), timestamp=ts, proposer=proposer, tx_count=batch.count,
            consensus=consensus, receipts_root=hashing.digest(receipts, self.suite.hash) if self._receipts_roots else b"",
        )  # fmt: skip
        history = _native.stage_block_entries(self._overlay, height, *writes, ids, current)
        write = BlockWrite(height)
        txids = ids.tobytes()
        self._stage_block(write, header, decoded.raws, receipts, txids)
        write.appends["history"] = history
        write.put_many("nonces", nonce_puts)
        write.deletes["nonces"] = nonce_deletes
        self._store.put_block(txn, write)
        timings = {**decoded.timings, "execute": t3 - t2, "commit": time.perf_counter() - t3}
        return Block(header, decoded.raws, receipts, txids, timings)

    def _read_nonce_runs(self, txn: Any, starts: list[bytes]) -> list[tuple[bytes, bytes]]:
        """Up to ``NONCE_LOOKUP_ROWS`` stored runs of the sender from each ``sender || nonce``,
        short of its head run: for the few nonces below their sender's head run. A bounded read
        per such nonce, so a sender whose gaps left many runs cannot make each block walk them."""
        runs: list[tuple[bytes, bytes]] = []
        with txn.cursor(db=self._store.tables["nonces"]) as cur:
            for start in starts:
                sender = start[:-8]
                if cur.set_range(start):
                    for key, value in itertools.islice(cur, NONCE_LOOKUP_ROWS):
                        if key[:-8] != sender or key[-8:] == NONCE_HEAD:
                            break
                        runs.append((key, value))
        return runs

    def _reload_log(self) -> None:
        log = merkle.MerkleLog(self.suite.hash)
        log.extend(self._store.values("hashes"))
        self._log = log

    # -- reading ---------------------------------------------------------------------------

    @property
    @_following
    def height(self) -> int:
        """Height of the last committed block (0: only the genesis block)."""
        return self._head.height

    @property
    @_following
    def head(self) -> BlockHeader:
        return self._head

    def _header_at(self, height: int) -> BlockHeader:
        raw = self._store.get("headers", height_key(height)) if height >= 0 else None
        if raw is None:
            raise NotFoundError(f"no block at height {height}")
        return BlockHeader.decode(raw)

    @_following
    def header(self, height: int) -> BlockHeader:
        """The header of the block at ``height``."""
        return self._header_at(self._check_height(height))

    def _check_height(self, height: int) -> int:
        if not isinstance(height, int) or isinstance(height, bool):
            raise InvalidInputError(f"a block height is an int, got {type(height).__name__}")
        if not 0 <= height <= self._head.height:
            raise NotFoundError(f"no block at height {_shown(height)}; the chain has heights 0..{self._head.height}")
        return height

    @_following
    def block(self, height: int) -> Block:
        """The block at ``height`` with its transactions and receipts."""
        h = height_key(self._check_height(height))
        with self._store.read() as txn:
            body, receipts, txids = (txn.get(h, db=self._store.tables[t]) for t in ("blocks", "receipts", "txids"))
        if body is None or receipts is None or txids is None:
            table = "blocks" if body is None else "receipts" if receipts is None else "txids"
            raise IntegrityError(height, table, "missing")
        header, raws = decode_block(body)
        return Block(header, raws, receipts, txids)

    def get(self, contract: str, key: str | bytes) -> bytes | None:
        """The current value of ``contract/key``, or None (also for a contract no one registered).
        A malformed contract name or key raises a ValueError (MalformedInputError, ContractInputError)."""
        found = self.get_versioned(contract, key)
        return None if found is None else found[0]

    @_following
    def get_versioned(self, contract: str, key: str | bytes) -> tuple[bytes, int, int] | None:
        """``(value, height, tx index)`` of the last write of ``contract/key``, or None."""
        skey = state_key(contract, key)
        raw = self._overlay.get(skey)  # before the snapshot: see _current_values
        with self._store.read() as txn:
            raw = raw or txn.get(skey, db=self._store.tables["state"])
            if raw is None or not raw[CHANGE_SIZE]:
                return None
            found = _live_values(self._store, txn, [(skey, raw)])
        height, index = _location(raw)
        return found[skey], height, index

    @_following
    def history(self, contract: str, key: str | bytes) -> list[HistoryEntry]:
        """Every change ever made to ``contract/key``, oldest first: the chain of history entries
        from the one its state entry names back through each entry's previous change."""
        skey = state_key(contract, key)
        out = []
        raw = self._overlay.get(skey)  # before the snapshot: see _current_values
        with self._store.read() as txn:
            raw = raw or txn.get(skey, db=self._store.tables["state"])
            change = NO_CHANGE if raw is None else raw[:CHANGE_SIZE]
            table = self._store.tables["history"]
            while change != NO_CHANGE:
                height, index = _location(change)
                v = txn.get(change, db=table)
                value = _changes([skey], [change], [v])[0]
                assert v is not None  # _changes refuses a missing entry
                # Each link names an older change of the same key: a store that says otherwise is
                # corrupt, and must not send this walk round in circles.
                if v[:CHANGE_SIZE] >= change:
                    raise IntegrityError(height, "history", f"change {change.hex()} links to a later one")
                out.append(HistoryEntry(height, index, v[CHANGE_SIZE : CHANGE_SIZE + 32], value))
                change = v[:CHANGE_SIZE]
        out.reverse()
        return out

    @_following
    def query(self, contract: str, method: str, /, **args: Any) -> Any:
        """Runs a contract's read-only query against the current state: every read it makes
        sees the same block's state, while other threads commit."""
        c = self._contracts.get(contract) if isinstance(contract, str) else None
        if c is None:
            raise UnknownNameError(f"unknown contract {contract!r}")
        # One block's state for the whole query, however many reads it makes: one snapshot, and
        # an overlay that nothing changed meanwhile (else it runs again; after a few tries, with
        # commits held off).
        for _ in range(QUERY_TRIES):
            seen = self._state_version
            if seen % 2 == 0:  # no change under way
                try:
                    result = self._query_once(c, contract, method, args, seen)
                except _Overlapped:
                    continue
                if self._state_version == seen:  # (a query that caught _Overlapped itself)
                    return result
        with self._write_lock:  # no commit or catch-up changes the overlay now
            return self._query_once(c, contract, method, args, self._state_version)

    def _query_once(self, c: Contract, contract: str, method: str, args: dict[str, Any], seen: int) -> Any:
        """Runs a query on one snapshot; ``_Overlapped`` if the overlay changes from ``seen``."""
        with self._store.read() as txn:  # it holds every change the overlay held at `seen`

            def values(keys: list[bytes]) -> dict[bytes, bytes]:
                found, missing = self._overlay.split(list(keys))
                if self._state_version != seen:  # found may name changes newer than txn
                    raise _Overlapped
                return _live_values(self._store, txn, found + self._store.get_many(txn, "state", missing))

            return c.query(ContractState(StateReader(values), contract), method, args)

    @_following
    def tx_heights(self, txids: Iterable[bytes]) -> dict[bytes, int]:
        """The commit height of each of ``txids`` that is committed (absent ones are left out), in
        one bulk lookup: for admitting batches without a lookup per transaction."""
        if not isinstance(txids, (list, tuple)):
            if isinstance(txids, (str, bytes, bytearray, memoryview)) or not isinstance(txids, Iterable):
                raise InvalidInputError(f"txids must be a sequence of 32-byte ids, got {type(txids).__name__}")
            txids = list(txids)  # an iterator is read once, here
        try:
            return {t: height for t, (height, _) in self._locate(txids).items()}
        except TypeError:  # off the hot path: an id that is not hashable bytes
            pass
        if not all(isinstance(t, (bytes, bytearray, memoryview)) for t in txids):
            raise InvalidInputError("txids must be a sequence of 32-byte ids (bytes)")
        return {t: height for t, (height, _) in self._locate([bytes(t) for t in txids]).items()}

    def _locate(self, txids: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """``(height, index)`` of each of ``txids`` that is committed. The locator (its stored runs
        and its in-memory map) names the blocks that may hold each one; each is confirmed against
        its block's stored ids, lowest height first, so a transaction included twice is found where
        it first committed."""
        # The map first, then the snapshot: the map is emptied only after the commit that wrote its
        # ids as a run, so whatever the map no longer holds, this snapshot's runs do. The head
        # before both: a block is visible once it is the head's (as to `block` and `header`), not
        # as soon as its write commits, a moment earlier; the snapshot holds every block up to it.
        top = self._head.height
        locator = self._locator
        found: dict[bytes, tuple[int, int]] = {}
        with self._store.read(buffers=True) as txn:
            with txn.cursor(db=self._store.tables["locator"]) as cur:
                runs = [np.frombuffer(v, dtype=np.uint8) for v in cur.iternext(keys=False, values=True)]
            positions, heights = locator.candidates(txids, runs)
            table = self._store.tables["txids"]
            # Not np.unique: numpy 2.4 imports numpy.ma on its first call, which opens files (and,
            # out of file descriptors, raised a bare OSError that stopped a node's admission).
            for h in sorted(set(heights[heights <= top].tolist())):
                block_ids = txn.get(height_key(h), db=table)
                if block_ids is None:  # every block up to the head is stored
                    raise IntegrityError(h, "txids", "missing")
                wanted = [txids[p] for p in positions[heights == h].tolist() if txids[p] not in found]
                for t, i in zip(wanted, _native.id_positions(bytes(block_ids), wanted).tolist()):
                    if i >= 0:
                        found.setdefault(t, (h, i))
        return found

    @_following
    def tx(self, txid: bytes) -> TxRecord:
        """A committed transaction with its receipt and its inclusion proof to the block's tx root."""
        if not isinstance(txid, (bytes, bytearray, memoryview)) or len(txid) != 32:
            raise InvalidInputError(f"a transaction id is 32 bytes, got {txid!r:.80}")
        loc = self._locate([bytes(txid)]).get(bytes(txid))
        if loc is None:
            raise NotFoundError(f"no committed transaction {bytes(txid).hex()}")
        height, index = loc
        block = self.block(height)
        ids = np.frombuffer(block._txids, dtype=np.uint8).reshape(-1, 32)
        log = merkle.MerkleLog(self.suite.hash)
        log.extend(ids)
        return TxRecord(
            tx=Transaction.decode(block.raws[index]), receipt=block.receipts[index], height=height, index=index,
            tx_count=block.header.tx_count, proof=log.inclusion_proof(index),
        )  # fmt: skip

    @_following
    def history_root(self, size: int | None = None) -> bytes:
        """Root of the Merkle log over the hashes of blocks ``0..size-1`` (default: every block)."""
        return self._log.root(self._log_size(size))

    def _log_size(self, size: int | None, name: str = "size") -> int:
        """``size``, or every committed block; never the blocks of a group still being written.
        The log is in memory, but a closed ledger proves nothing: the store's check first."""
        self._store.check_open()
        committed = self._head.height + 1
        if size is None:
            return committed
        return _check_size(size, committed, name, "the number of committed blocks")

    @_following
    def block_proof(self, height: int, size: int | None = None) -> list[bytes]:
        """Proof that block ``height``'s hash is leaf ``height`` of the block-hash log of ``size`` blocks.

        Check it with ``merkle.verify_inclusion(hash, height, size, proof, root, algo=led.suite.hash)`` where root is
        ``history_root(size)``, or the ``history_root`` of the header at height ``size``.
        """
        return self._log.inclusion_proof(self._check_height(height), self._log_size(size))

    @_following
    def audit(self, *, replay: bool = True) -> AuditReport:
        """Re-derives headers, links, roots and state from the stored blocks (see ``ledgercore.audit``);
        raises ``IntegrityError`` naming the first height and field that disagree."""
        from .audit import audit

        _check_flag(replay, "replay")
        return audit(self, replay=replay)

    @_following
    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the block-hash log of ``old_size`` blocks is a prefix of the one of ``new_size``."""
        new = self._log_size(new_size, "new_size")
        return self._log.consistency_proof(_check_size(old_size, new, "old_size", "the new size"), new)
