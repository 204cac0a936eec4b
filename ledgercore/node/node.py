"""A consensus node: Raft orders blocks of transactions, and every node applies each committed
block through its own :class:`~ledgercore.ledger.Ledger`, so all reach identical block hashes and
state roots.

The node drives the pure :class:`~ledgercore.consensus.raft.RaftNode` from an asyncio loop: frames
from the mutual-TLS transport are stepped in, a timer ticks it, and each ``Ready`` is handled in
Raft's order: the log is made durable (fsync), then messages go out, then committed blocks are
queued to be applied. One lock serialises the Raft side, so the state machine never sees two
callers; committed blocks are applied in order by their own task, outside that lock, so the next
blocks replicate while one executes, and blocks that wait together are applied in one group
commit (:meth:`~ledgercore.ledger.Ledger.apply_group`: one durable write for all of them).
A follower too far behind for the leader's log gets a snapshot, which the same task installs in
log order (it fetches the blocks up to it from peers) while Raft goes on voting and appending.

A Raft entry is a block proposal, one canonical value: ``{"ts": ms, "txs": [raw, ...], "head":
[height, hash]}``, the timestamp its block gets, its transactions in order, and the leader's
ledger head when it cut them. Every node checks its own block at that height against the hash,
so a node whose chain has left the cluster's stops (``DivergedError``) within a few blocks. A
leader with nothing more to propose names its head once in an entry of its own, ``{"head":
[height, hash]}``, so that on an idle chain too the last block is checked within ``block_ms``.

Every transaction's signature is checked once per node: at admission on the leader (which then
applies the blocks it cut without checking again), and on a follower as each block is appended
(ahead of its commit), or at apply when that check did not run.

Frames between nodes start with one byte saying what they carry: ``R`` a Raft message, ``F``
transactions forwarded to the leader, ``S`` a request for committed blocks, ``B`` such blocks.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import random
import struct
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain, compress, islice, repeat
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np

from .. import _native
from ..block import BlockHeader, decode_block, encode_block
from ..codec import decode_value, encode_value
from ..consensus.messages import (
    Entry,
    EntryType,
    HardState,
    MalformedMessageError,
    MessageDecodeError,
    MsgProp,
    MsgSnap,
    decode_message,
    encode_message,
)
from ..consensus.raft import NONE, Config, ProposalDroppedError, RaftNode, Ready, StateType
from ..consensus.send_early import may_send_before_persist
from ..errors import (
    DecodeError,
    HeaderMismatchError,
    InvalidInputError,
    InvalidSignatureError,
    LedgerError,
    MalformedInputError,
)
from ..ledger import Block, BlockInput, CheckedBlock, Ledger, split_ids
from ..net.transport import DEFAULT_MAX_FRAME_SIZE, Transport
from ..transaction import now_ms
from ..user_code import load_authorizer, load_contracts
from ..waits import at_most
from .config import NodeConfig
from .forwarded import Forwarded, pop_keys
from .peer_warnings import PeerWarnings
from .raft_store import DurableStorage

log = logging.getLogger("ledgercore.node")

FRAME_RAFT, FRAME_FORWARD, FRAME_SYNC_REQUEST, FRAME_SYNC_BLOCKS = b"R", b"F", b"S", b"B"
_CONSENSUS = struct.Struct(">4sQQ")  # b"raft", term, index: what each block header records
_SYNC_BATCH = 64  # most blocks per sync answer
_SYNC_WAIT_S = 2.0  # a node catching up waits this long for the peer it asked, then asks again
# Most bytes of transactions (or block bodies) one frame between nodes carries: a block, a forward,
# a sync answer. Half the transport's frame limit, so encoding overhead never pushes one past it;
# a single transaction (at most MAX_TX_SIZE) always fits. Unbounded, a client's batch of large
# transactions made a block no follower could receive, and the leader's block cutter died on it.
_FRAME_PAYLOAD = DEFAULT_MAX_FRAME_SIZE // 2
# A follower re-sends what its leader has not committed after this long, then after twice as long
# each time, at most _REFORWARD_MAX_S (forwarded.py).
_REFORWARD_S = 1.0
_REFORWARD_MAX_S = 8.0
_WAIT_TIMEOUT_S = 30.0  # a commit wait gives up after this long once the transaction's block is due
READ_TIMEOUT_S = 5.0
"""Longest :meth:`Node.read_barrier` waits for a read point (no leader, no quorum: it gives up)."""
_ADMIT_BATCH = 8192  # transactions per signature-check batch at admission
_APPLY_BACKLOG = 16  # committed blocks waiting to be applied before the Raft loop waits for them
_APPLY_GROUP = 8  # most committed blocks applied in one group commit (one LMDB write, one fsync)
# Log bytes a node installing a snapshot appends before its Raft loop waits for the install to end
# (as the entries committed meanwhile wait in its log, in memory, until the ledger has caught up).
_HELD_LOG_BYTES = 256 << 20
MAX_SUBMIT_BATCH = 10_000
_BAD_SIGNATURE = "invalid signature"  # why a submitted transaction was rejected
"""Most transactions one :meth:`Node.submit_many` call (or one ``POST /txs``) may carry."""
_T = TypeVar("_T")
# What a frame of a peer's that does not decode, or asks for what is not there, raises while
# handled: logged as the peer's fault; anything else is this node's, and fails it.
_BAD_FRAME_ERRORS = (LedgerError, KeyError, TypeError, ValueError)

# Raft frames waiting for the Raft loop: beyond these the receive loop waits (backpressure), except
# during a snapshot catch-up, when it drops the oldest (Raft retransmits) so sync answers still flow.
_RAFT_INBOX_FRAMES = 4096
_RAFT_INBOX_BYTES = 64 << 20


def check_batch_size(count: int) -> None:
    """Refuses (``InvalidInputError``) a batch of more than :data:`MAX_SUBMIT_BATCH` transactions."""
    if count > MAX_SUBMIT_BATCH:
        raise InvalidInputError(f"{count} transactions in one batch; at most {MAX_SUBMIT_BATCH}")


def _block_time() -> int:
    """The leader's clock for a block it cuts, within what a proposal holds (an i64) and a header
    allows (0..2**64 - 1): a clock set before 1970 would stamp a block every node refuses."""
    return min(max(now_ms(), 0), 2**63 - 1)


def _copied_bytes(raws: Iterable[object]) -> list[bytes]:
    """``raws`` as ``bytes`` (a bytearray or memoryview copied), or ``MalformedInputError`` naming the
    first item that is not bytes-like (``bytes(70)`` would be 70 zero bytes, ``bytes("a")`` a TypeError)."""
    out = []
    for i, raw in enumerate(raws):
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise MalformedInputError(f"transaction {i} is {type(raw).__name__}, not bytes")
        out.append(bytes(raw))
    return out


class DataDirInUseError(LedgerError):
    """Another process already runs a node on this data directory."""


def snapshot_point(data: bytes) -> tuple[int, bytes]:
    """The ledger height and block hash a node's snapshot names (what ``_snapshot`` writes):
    ``MalformedInputError`` for anything else."""
    try:
        point = decode_value(data)
    except DecodeError as exc:
        raise MalformedInputError(f"snapshot data does not decode: {exc}") from None
    if not (isinstance(point, dict) and set(point) == {"height", "hash"} and isinstance(point["height"], int)
            and 0 <= point["height"] < 2**63 and isinstance(point["hash"], bytes) and len(point["hash"]) == 32):  # fmt: skip
        raise MalformedInputError(f"snapshot data must be {{'height': int, 'hash': 32 bytes}}, got {point!r:.100}")
    return point["height"], point["hash"]


class DivergedError(LedgerError):
    """This node's chain and the cluster's differ: its ledger holds another block than the one the
    cluster's snapshot or the leader's proposal fixed, or no peer serves blocks that follow from
    its head."""


class NotReadyError(LedgerError):
    """The node cannot take transactions now (no leader known, or the mempool is full); retry."""


class TimestampOutOfWindowError(InvalidInputError):
    """A submitted transaction's timestamp is further from the node's clock than
    ``tx_time_window_ms``: signed long ago, or by a client whose clock is wrong."""


def out_of_window(timestamps: np.ndarray, now: int, window: int) -> dict[int, str]:
    """Positions of the timestamps (ms) further than ``window`` ms from ``now``, with why: none
    in the usual case, found without a Python step per transaction."""
    ts = timestamps.astype(np.uint64, copy=False)
    late = (ts > np.uint64(now + window)) | (ts < np.uint64(max(now - window, 0)))
    return {
        int(i): f"timestamp {int(ts[i])} ms is {(int(ts[i]) - now) / 1000:+.0f} s from this node's clock; "
        f"at most {window / 1000:g} s either way is admitted (tx_time_window_ms)"
        for i in np.flatnonzero(late)
    }


def sync_peer(
    peers: Sequence[str], refused: Container[str], leader: str | None, last: str | None, move_on: bool
) -> str | None:
    """The one peer a node catching up asks for blocks this round (asking more, it would use one
    answer and find the others stale): first the leader, when known and not refused; then
    ``last`` again while its answers apply blocks (not ``move_on``); else the next peer after
    ``last`` in ``peers`` not refused, so every peer is asked in turn. None when all are refused.

    A node catching up does not step Raft meanwhile, so the leader it knows is the one it knew
    when it began: one that died then must be moved on from like any peer, or the node, kept
    from voting, could leave the survivors without a quorum."""
    if last is None and leader is not None and leader not in refused:
        return leader
    if last is not None and not move_on and last not in refused:
        return last
    after = peers.index(last) + 1 if last in peers else 0
    return next((p for p in [*peers[after:], *peers[:after]] if p not in refused), None)


def consensus_data(term: int, index: int) -> bytes:
    return _CONSENSUS.pack(b"raft", term, index)


def applied_index(consensus: bytes) -> int:
    """The Raft index a block header says it was committed at (0 for genesis)."""
    if not consensus:
        return 0
    tag, _term, index = _CONSENSUS.unpack(consensus)
    if tag != b"raft":
        raise LedgerError(f"block header consensus data is not Raft's: {consensus!r}")
    return index


class _SnapshotMark(NamedTuple):
    """A snapshot in the apply queue: the log index it stands at, and its data."""

    log_index: int
    data: bytes


@dataclass(frozen=True)
class Submitted:
    """What became of a batch of submitted transactions."""

    txids: list[bytes]  # every transaction's id, in submission order
    rejected: dict[int, str]  # position -> why it was refused; every other one was admitted
    heights: list[int | None] | None  # when waited for: each one's commit height (None where rejected)
    # When waited for: position -> the error of each committed transaction whose receipt failed
    # (a replayed nonce, an unknown contract or method, a contract's error); every other committed
    # one's receipt is ok. The block still commits a failed transaction: its height alone does not
    # say it took effect.
    failed: dict[int, str] | None = None


@dataclass
class _Admission:
    """Decoded transactions waiting for one batch signature check."""

    raws: list[bytes]
    ids: list[bytes]
    done: asyncio.Future[list[int]] | None  # -> positions whose signature failed; None: nobody waits
    size: int  # bytes of ``raws``, counted in the node's held bytes while they wait


class _CommitWait:
    """Resolves once each of a batch's transactions is committed or rejected, with its height;
    meanwhile it gathers which of them failed (their receipts' errors)."""

    __slots__ = ("failed", "future", "heights", "left", "unknown")

    def __init__(self, future: asyncio.Future[dict[bytes, int | None]], txids: set[bytes]) -> None:
        self.future = future
        self.heights: dict[bytes, int | None] = {}
        self.failed: dict[bytes, str] = {}  # txid -> its receipt's error, for those that failed
        self.unknown: set[bytes] = set()  # committed before it was waited for: receipt not yet read
        self.left = txids

    def record(self, heights: Mapping[bytes, int | None], failed: Mapping[bytes, str] | None) -> None:
        """Takes the heights of those of its transactions in ``heights`` (None: rejected), and the
        errors of those of them in ``failed`` (None: their receipts are not known here, to be read
        from the ledger), by set operations and C-level iteration: no Python step per transaction
        (but one per failure)."""
        done = self.left & heights.keys()
        if done:
            self.heights.update(zip(done, map(heights.__getitem__, done)))
            if failed is None:
                self.unknown |= done
            elif failed:
                self.failed.update((t, failed[t]) for t in done & failed.keys())
            self.left -= done
            if not self.left and not self.future.done():
                self.future.set_result(self.heights)


def _failures(blk: Block, txids: list[bytes], distinct: int) -> dict[bytes, str]:
    """The error of each of ``blk``'s transactions whose receipt failed, by id (``txids``, the
    block's, ``distinct`` of them different). An id the block holds twice (its second copy fails
    as a replay) is its first copy's, as ``Ledger.tx`` answers it. One Python step per failure,
    none per transaction."""
    failed = blk.failures
    if not failed:
        return {}
    if distinct == len(txids):
        return {txids[i]: error for i, error in failed.items()}
    first = dict(zip(reversed(txids), range(len(txids) - 1, -1, -1)))  # id -> its lowest position
    return {txids[i]: error for i, error in failed.items() if first[txids[i]] == i}


def _fitting(items: Sequence[bytes], budget: int = _FRAME_PAYLOAD) -> int:
    """How many of ``items``, from the first, fit in ``budget`` bytes together (at least one)."""
    if not items:
        return 0
    total = np.cumsum(np.fromiter(map(len, items), dtype=np.int64, count=len(items)))
    return max(1, int(np.searchsorted(total, budget, side="right")))


def _chunks(items: Sequence[bytes], budget: int = _FRAME_PAYLOAD) -> Iterator[Sequence[bytes]]:
    """``items`` in order, in runs that each fit in ``budget`` bytes (or hold one item)."""
    while items:
        n = _fitting(items, budget)
        yield items[:n]
        items = items[n:]


def _take(pool: dict[bytes, bytes], keys: Iterable[bytes]) -> int:
    """Removes ``keys`` from a pool of raw transactions where present; the bytes removed."""
    return sum(map(len, filter(None, map(pool.pop, keys, repeat(b"")))))


class Node:
    """One member of a Raft-ordered consortium chain."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.ledger: Ledger
        self._names = {config.raft_id: config.id, **{p.raft_id: p.id for p in config.peers}}
        self._raft_ids = {name: raft_id for raft_id, name in self._names.items()}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._ledger_jobs: set[asyncio.Future[Any]] = set()
        self._admit_queue: asyncio.Queue[_Admission] = asyncio.Queue()
        # Committed entries and snapshots to install, in log order. The Raft loop waits for room
        # past _APPLY_BACKLOG, except while a snapshot installs (see _queue_committed).
        self._apply_queue: asyncio.Queue[Entry | _SnapshotMark] = asyncio.Queue()
        self._apply_taken = asyncio.Event()  # set: the apply loop took what was queued
        self._mempool: OrderedDict[bytes, bytes] = OrderedDict()  # txid -> raw, not yet proposed, oldest first
        # Bytes of the transactions in the mempool, proposed, or queued for admission: bounded by
        # config.mempool_bytes (transactions are up to 1 MB each, so a count alone bounds nothing).
        self._held_bytes = 0
        self._queued = 0  # transactions queued for admission: held too, counted against mempool_limit
        self._settled_in_check: dict[bytes, int] | None = None  # see _admit_loop
        self._forwarded = Forwarded(_REFORWARD_S, _REFORWARD_MAX_S)  # what a follower sent on, not yet committed
        # The leader it was sent to, and its term: a leader that restarted and won again has lost
        # what it held as surely as a new one.
        self._forwarded_to: tuple[str, int] | None = None
        self._unforwarded = False  # the mempool may hold transactions never sent to a leader
        self._proposed: OrderedDict[bytes, bytes] = OrderedDict()  # txid -> raw, proposed, not yet applied
        self._proposed_blocks = 0  # blocks in this leader's log past what it applied
        self._head_named = 0  # the highest height this leader's proposals named as its head (genesis: every node's)
        self._proposed_at = 0.0  # when it last proposed (time.monotonic())
        self._leading = False  # the role the pools were last kept for (see _track_role)
        self._waiting_since: float | None = None  # when the oldest unproposed transaction arrived
        self._cut_wake = asyncio.Event()  # set: a full block waits, or room for another opened
        # (term, index) of log entries whose signatures this node has checked: True for the blocks
        # it cut (from its checked mempool), a future for a follower's check ahead (the block
        # decoded and checked, or None: apply then checks it again and says what is wrong).
        self._checked: dict[tuple[int, int], bool | asyncio.Future[CheckedBlock | None]] = {}
        # Each block is checked on one native thread (one batch equation: ~10% less CPU per
        # signature than a block split across the threads), as many at once as there are threads.
        # A follower's checks are off the commit path: they run while the block replicates.
        self._checker = ThreadPoolExecutor(max_workers=_native.thread_count(), thread_name_prefix="node-check")
        self._waits: set[_CommitWait] = set()  # one per batch a caller waits on
        self._sync_inbox: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()  # (peer, block bodies)
        # peer -> the task answering its sync request: at most one each, so a peer cannot have
        # this node read more than one answer's blocks at a time for it.
        self._sync_answers: dict[str, asyncio.Task[None]] = {}
        self._stopped = asyncio.Event()
        self.failed = asyncio.Event()  # set when one of the node's loops died: it must stop
        self.failure: str | None = None  # which, and why
        self._raft_inbox: deque[tuple[str, bytes]] = deque()
        self._peer_warnings = PeerWarnings(log)  # what peers send wrong, a flood of it logged in part
        self._raft_inbox_bytes = 0
        self._raft_waiting = asyncio.Event()  # set: frames in the inbox
        self._raft_room = asyncio.Event()  # set: the inbox has room
        self._catching_up = False
        # Snapshots queued to install and bytes appended to the log since the first: while there
        # are any, Raft holds committed entries back; past _HELD_LOG_BYTES, the loops wait.
        self._installs = 0
        self._held_log_bytes = 0
        self._log_room = asyncio.Event()
        self._log_room.set()
        # Linearizable reads (Raft read-index): each request's context -> its read point, and
        # waiters for this node to have handled every committed entry up to an index (applied it,
        # or skipped it: not a block); entries are handled in log order by the apply loop.
        self._read_points: dict[bytes, asyncio.Future[int]] = {}
        self._handled = 0
        self._handled_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the node's stores and transport and starts its loops; if that fails part way,
        what was opened is closed again before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        cfg.tls.check_node(cfg.id)  # before anything is created
        cfg.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the ledger is the node's alone to read
        mode = cfg.data_dir.stat().st_mode & 0o777
        if mode & 0o077:  # made by an earlier version (0755), or by hand
            try:
                cfg.data_dir.chmod(mode & 0o700)
                log.warning("node %s: %s was readable by others (%o): made %o", cfg.id, cfg.data_dir, mode, mode & 0o700)
            except OSError as exc:
                log.warning("node %s: %s is readable by others (%o), and cannot be made private: %s", cfg.id, cfg.data_dir, mode, exc)
        # Two processes driving one node's log and ledger would fork its history: refuse.
        self._dir_lock = open(cfg.data_dir / "LOCK", "a")  # held until stop()
        try:
            fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._dir_lock.close()
            raise DataDirInUseError(f"{cfg.data_dir} is in use by another node process") from None
        contracts, authorize = load_contracts(cfg.contracts), load_authorizer(cfg.authorize)
        self.ledger = Ledger.open(
            cfg.data_dir / "ledger", cfg.suite, chain_id=cfg.chain_id, contracts=contracts, authorize=authorize,
            receipts_roots=cfg.receipts_roots,
        )  # fmt: skip
        self.storage = DurableStorage(cfg.data_dir / "raft")
        if self.storage.is_new:
            self.storage.bootstrap_voters(sorted(self._names))
        self.transport = Transport.from_files(
            cfg.id, cfg.tls, listen=(cfg.host, cfg.port), peers={p.id: (p.host, p.port) for p in cfg.peers}
        )
        await self.transport.start()
        self._spawn(self._receive_loop(), "receive")
        # A node stopped while it installed a snapshot has its ledger short of it: the apply loop
        # finishes the install, with Raft running (it votes and acknowledges meanwhile, as for a
        # snapshot received). A ledger at or past the snapshot must hold the block it names.
        snap = self.storage.snapshot()
        ledger_at = applied_index(self.ledger.head.consensus)
        install = bool(snap.data) and self.ledger.height < snapshot_point(snap.data)[0]
        if snap.data and not install:
            self._check_block_hash(*snapshot_point(snap.data), "the cluster's snapshot at that height")
        applied = max(ledger_at, snap.index)
        hs = self.storage.hard_state()
        if applied > hs.commit:
            # Blocks were applied, so they were committed; the commit index that said so rode a
            # write that was never fsync'd (see _persist). Restore it before Raft starts.
            self.storage.set_hard_state(HardState(hs.term, hs.vote, applied))
            self.storage.sync()
        self._durable_hard_state = self.storage.hard_state()
        self._handled = ledger_at if install else applied
        self.raft = RaftNode(
            Config(
                id=cfg.raft_id, storage=self.storage, election_tick=cfg.election_ticks,
                heartbeat_tick=cfg.heartbeat_ticks, applied=applied, max_size_per_msg=4 << 20,
                max_inflight_msgs=64, rng=random.Random(os.urandom(8)),
            )
        )  # fmt: skip
        if install:
            self._queue_install(_SnapshotMark(snap.index, snap.data))
        loops = ((self._raft_loop(), "raft"), (self._tick_loop(), "tick"), (self._admit_loop(), "admit"),
                 (self._cut_loop(), "cut"), (self._apply_loop(), "apply"))  # fmt: skip
        for coro, name in loops:
            self._spawn(coro, name)
        log.info("node %s started at height %d (raft applied %d), data in %s", cfg.id, self.ledger.height, applied, cfg.data_dir)

    async def stop(self) -> None:
        """Stops the loops and closes whatever :meth:`start` opened (all of it, or, after a start
        that failed, the part it got to: the attributes it had not set are absent)."""
        self.stop_waits()
        tasks = [*self._tasks, *self._sync_answers.values()]  # none starts once the receive loop is cancelled
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A cancelled task does not stop its worker thread: let ledger work finish before closing.
        await asyncio.gather(*self._ledger_jobs, return_exceptions=True)
        self._checker.shutdown()
        if hasattr(self, "transport"):
            await self.transport.stop()
        async with self._lock:
            if hasattr(self, "storage"):
                self.storage.close()
            if hasattr(self, "ledger"):
                self.ledger.close()
        if hasattr(self, "_dir_lock"):
            self._dir_lock.close()

    async def hand_over(self) -> bool:
        """A leader about to stop hands leadership to the voter whose log is furthest along (Raft's
        leader transfer), so the cluster does not wait out an election timeout; waits at most one.
        Whether another node leads on return (False also when this one was not leading)."""
        if not self.is_leader:
            return False
        prs = {i: pr for i, pr in self.raft.prs.items() if i != self.raft.id and not pr.is_learner}
        if not prs:
            return False
        to = max(prs, key=lambda i: (prs[i].match, prs[i].recent_active))
        async with self._lock:
            self.raft.transfer_leader(to)
            await self._drain()
        deadline = time.monotonic() + self.config.election_ticks * self.config.tick_ms / 1000
        while self.is_leader and time.monotonic() < deadline:
            await asyncio.sleep(self.config.tick_ms / 1000)
        if not self.is_leader:
            log.info("node %s: handed leadership to %s before stopping", self.config.id, self._names.get(to, to))
        return not self.is_leader

    def stop_waits(self) -> None:
        """Answers every caller waiting for a commit or a read point with ``NotReadyError``, and
        refuses new submissions: the node is stopping (its client API can then close at once)."""
        self._stopped.set()
        for w in self._waits:
            if not w.future.done():
                w.future.set_exception(NotReadyError(
                    "the node stopped before it saw the transaction commit (it may still commit: a resubmission "
                    "is answered with its height once it has)"
                ))
        for point in self._read_points.values():
            if not point.done():
                point.set_exception(NotReadyError("the node stopped before its read point came"))
        for _, done in self._handled_waiters:
            if not done.done():
                done.set_exception(NotReadyError("the node stopped before it applied the read point"))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.config.id}-{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("node %s: task %s failed", self.config.id, task.get_name(), exc_info=task.exception())
            # Without any one of its loops the node cannot take part (a leader that no longer cuts
            # blocks still heartbeats, so no one replaces it): it fails, for its runner to stop it.
            if self.failure is None:
                self.failure = f"task {task.get_name()} failed: {task.exception()!r}"
            self.failed.set()

    def _ledger_job(
        self, fn: Callable[..., _T], *args: Any, executor: ThreadPoolExecutor | None = None, **kwargs: Any
    ) -> asyncio.Future[_T]:
        """Starts ledger work on a worker thread (of ``executor``, else the loop's default pool);
        :meth:`stop` waits for it before closing the ledger."""
        job = asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args, **kwargs))
        self._ledger_jobs.add(job)
        job.add_done_callback(self._ledger_jobs.discard)
        return job

    async def _ledger_call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Runs ledger work on a worker thread; it finishes even if the caller is cancelled."""
        return await asyncio.shield(self._ledger_job(fn, *args, **kwargs))

    # -- client side -------------------------------------------------------------------------

    async def submit(self, raw: bytes, *, wait: bool) -> tuple[bytes, int | None]:
        """Admits one encoded transaction; with ``wait``, returns once it is committed: its id and
        height (whether its receipt failed, :meth:`submit_one` says).
        Raises ``InvalidSignatureError`` if its signature fails."""
        out = await self.submit_one(raw, wait=wait)
        return out.txids[0], None if out.heights is None else out.heights[0]

    async def submit_one(self, raw: bytes, *, wait: bool) -> Submitted:
        """:meth:`submit_many` of one transaction, whose failed signature raises
        ``InvalidSignatureError`` (and timestamp out of the window ``TimestampOutOfWindowError``)
        instead of being reported in ``rejected``."""
        out = await self.submit_many([raw], wait=wait)
        if out.rejected:
            why = out.rejected[0]
            raise InvalidSignatureError([0]) if why == _BAD_SIGNATURE else TimestampOutOfWindowError(why)
        return out

    async def submit_many(self, raws: Sequence[bytes], *, wait: bool) -> Submitted:
        """Admits a batch of encoded transactions: one decode, one signature-check batch, one waiter.

        Transactions whose signature fails, or whose timestamp is further than ``tx_time_window_ms``
        from this node's clock, are reported in ``rejected`` and the rest admitted. With ``wait``,
        returns once every admitted one is committed (those already committed at once).
        Raises ``DecodeError`` (naming the position) if one does not decode, and ``NotReadyError``
        when no leader is known or the mempool has no room."""
        if isinstance(raws, (bytes, bytearray, memoryview, str)):  # its items would be ints or chars
            raise MalformedInputError(f"expected a sequence of encoded transactions, got a single {type(raws).__name__}")
        if not raws:
            raise InvalidInputError("no transactions to submit")
        check_batch_size(len(raws))
        if self._stopped.is_set():
            raise NotReadyError("the node is stopping")
        if self.raft.lead == NONE:  # nothing would commit them until one is elected
            raise NotReadyError("no leader known (an election is under way, or no quorum is reachable); retry later")
        raws = list(raws) if set(map(type, raws)) == {bytes} else _copied_bytes(raws)  # the check in C
        size = sum(map(len, raws))
        if not self._has_room(len(raws), size):
            cfg = self.config
            raise NotReadyError(
                f"mempool full ({self._held_count()} of {cfg.mempool_limit} transactions, "
                f"{self._held_bytes} of {cfg.mempool_bytes} bytes held); retry later"
            )
        cfg = self.config
        batch = _native.decode_txs(cfg.suite, cfg.chain_id, raws)
        ids = split_ids(batch.ids.tobytes())
        # Checked where a client submits, not where a peer forwards: a leader whose clock differs
        # from the follower's would drop what the follower holds and sends again.
        late = out_of_window(batch.timestamps, now_ms(), cfg.tx_time_window_ms)
        del batch
        admitted = [i for i in range(len(raws)) if i not in late] if late else None
        loop = asyncio.get_running_loop()
        waiter = self._wait_for(ids) if wait else None  # before admission, so no commit is missed
        done: asyncio.Future[list[int]] = loop.create_future()
        if admitted is None:
            self._queue_admission(_Admission(raws, ids, done, size))
        elif admitted:
            admit = [raws[i] for i in admitted]
            self._queue_admission(_Admission(admit, [ids[i] for i in admitted], done, sum(map(len, admit))))
        else:
            done.set_result([])
        try:
            bad = await done
            rejected = {i: _BAD_SIGNATURE for i in (bad if admitted is None else [admitted[j] for j in bad])}
            rejected.update(late)
            if waiter is None:
                return Submitted(ids, rejected, None)
            if rejected:  # a tx id names the signed content, so a forged copy may share a good one's id
                good = {t for i, t in enumerate(ids) if i not in rejected}
                waiter.record(dict.fromkeys({ids[i] for i in rejected} - good), {})
            # A partial block is cut block_ms after its first transaction waits: counted in too.
            longest = _WAIT_TIMEOUT_S + self.config.block_ms / 1000
            heights = await asyncio.wait_for(asyncio.shield(waiter.future), longest)
            failed = waiter.failed
            if waiter.unknown:  # committed before this call: their receipts are read from the ledger
                known = await self._ledger_call(self._committed_failures, {t: heights[t] for t in waiter.unknown})
                failed = {**failed, **known}
            failed_at: dict[int, str] = {}
            if failed:  # positions by C-level iteration; a Python step per failure only
                at = compress(range(len(ids)), map(failed.__contains__, ids))
                failed_at = {i: failed[ids[i]] for i in at if i not in rejected}
            if not rejected:
                return Submitted(ids, rejected, list(map(heights.__getitem__, ids)), failed_at)
            heights_at = [None if i in rejected else heights[t] for i, t in enumerate(ids)]
            return Submitted(ids, rejected, heights_at, failed_at)
        finally:
            if waiter is not None:
                self._waits.discard(waiter)

    def _wait_for(self, txids: list[bytes]) -> _CommitWait:
        w = _CommitWait(asyncio.get_running_loop().create_future(), set(txids))
        self._waits.add(w)
        return w

    def _committed_failures(self, heights: Mapping[bytes, int | None]) -> dict[bytes, str]:
        """The errors of those of ``heights``' transactions (txid -> the height it committed at)
        whose receipts failed, read from the ledger: one block read per height. For transactions
        committed before a caller waited for them (resubmitted), a rare path."""
        by_height: dict[int, list[bytes]] = {}
        for t, h in heights.items():
            if h is not None:
                by_height.setdefault(h, []).append(t)
        out: dict[bytes, str] = {}
        for h, wanted in by_height.items():
            blk = self.ledger.block(h)
            txids = blk.txids
            failed = _failures(blk, txids, len(set(txids)))
            if failed:
                out.update((t, failed[t]) for t in wanted if t in failed)
        return out

    def _txids(self, raws: list[bytes]) -> list[bytes]:
        """The ids of this chain's encoded transactions (``DecodeError`` if one does not decode)."""
        return split_ids(_native.decode_txs(self.config.suite, self.config.chain_id, raws).ids.tobytes())

    def _settle_block(self, blk: Block) -> None:
        """A committed block's transactions settled, their waiters told their heights and which
        failed (from the block's receipts: no ledger read). Without pools or waiters (a follower no
        client submits to) there is nothing to settle, and no map of its 10k ids is built."""
        checking = self._settled_in_check
        if self._mempool or self._proposed or self._forwarded or self._waits or checking is not None:
            txids = blk.txids
            heights = dict.fromkeys(txids, blk.height)
            if checking is not None:
                checking.update(heights)
            self._settle(heights, _failures(blk, txids, len(heights)) if self._waits else {})

    def _held_count(self) -> int:
        """Transactions held: in the mempool, proposed, or queued for admission."""
        return len(self._mempool) + len(self._proposed) + self._queued

    def _has_room(self, count: int, size: int) -> bool:
        """Whether ``count`` more transactions of ``size`` bytes fit the mempool's bounds."""
        cfg = self.config
        return self._held_count() + count <= cfg.mempool_limit and self._held_bytes + size <= cfg.mempool_bytes

    def _queue_admission(self, a: _Admission) -> None:
        self._held_bytes += a.size
        self._queued += len(a.raws)
        self._admit_queue.put_nowait(a)

    def _settle(self, heights: dict[bytes, int], failed: Mapping[bytes, str] | None) -> None:
        """Transactions now committed (txid -> height): out of the pools, their waiters told, with
        the errors of those that failed (``failed``; None: not known here, the waiter reads them)."""
        for pool in (self._mempool, self._proposed):
            if pool:
                self._held_bytes -= _take(pool, heights)
        if self._forwarded:
            self._forwarded.discard(heights)
        if not self._mempool:
            self._waiting_since = None
        for w in self._waits:
            w.record(heights, failed)

    def status(self) -> dict[str, Any]:
        head = self.ledger.head
        st = self.raft.status()
        return {
            "node": self.config.id,
            "role": {StateType.LEADER: "leader", StateType.FOLLOWER: "follower"}.get(st.state, st.state.name.lower()),
            "term": st.term,
            "leader": self._names.get(st.lead) if st.lead != NONE else None,
            "height": head.height,
            "block_hash": head.hash.hex(),
            "state_root": head.state_root.hex(),
        }

    @property
    def is_leader(self) -> bool:
        return self.raft.state == StateType.LEADER

    # -- admission: batch signature checks -----------------------------------------------------

    async def _admit_loop(self) -> None:
        while True:
            batch = [await self._admit_queue.get()]
            count = len(batch[0].raws)
            while count < _ADMIT_BATCH and not self._admit_queue.empty():
                batch.append(self._admit_queue.get_nowait())
                count += len(batch[-1].raws)
            raws = list(chain.from_iterable(a.raws for a in batch))
            ids = list(chain.from_iterable(a.ids for a in batch))
            # Blocks applied while the batch is checked are settled before it joins the pools: what
            # they hold of it is gathered here, else it would join after its own commit and stay.
            settled: dict[bytes, int] = {}
            self._settled_in_check = settled
            try:
                valid, committed = await self._ledger_call(self._check_admission, raws, ids)
            except OSError as exc:  # out of file descriptors or memory for now: not the node's end
                log.warning("node %s: cannot check %d transactions for admission: %s", self.config.id, len(raws), exc)
                self._drop_admissions(batch, NotReadyError(f"cannot check transactions now ({exc}): retry"))
                continue
            finally:
                self._settled_in_check = None
            if settled.keys() & ids:
                committed = {**committed, **{t: settled[t] for t in settled.keys() & ids}}
            bad = np.flatnonzero(~valid)
            at = 0
            for a in batch:
                if a.done is not None and not a.done.done():
                    mine = bad[(bad >= at) & (bad < at + len(a.raws))] - at if bad.size else bad
                    a.done.set_result(mine.tolist())
                at += len(a.raws)
            # Set operations and C-level iteration: no Python step per transaction unless some
            # are already known (by position for bad signatures: a forged copy may share an id).
            # The pairs go straight into the mempool, not through a list of tuples: ~10k container
            # objects a batch would set the cycle collector off several times.
            pairs: Iterable[tuple[bytes, bytes]] = zip(ids, raws) if not bad.size else compress(zip(ids, raws), valid)
            skip = committed.keys() | (self._proposed.keys() & ids) | (self._mempool.keys() & ids)
            if skip:
                pairs = [p for p in pairs if p[0] not in skip]
            before = len(self._mempool)
            self._mempool.update(pairs)
            added = len(self._mempool) - before  # new keys, so the newest ones (dicts keep order)
            # Held while queued; now only what joined the mempool stays held.
            self._held_bytes += sum(map(len, islice(reversed(self._mempool.values()), added))) - sum(
                a.size for a in batch
            )
            self._queued -= len(raws)
            if added:
                self._mempool_grew()
            self._settle(committed, None)  # committed before: their receipts are read only if waited for
            if added and not self.is_leader:
                self._forward(list(islice(reversed(self._mempool.keys()), added))[::-1])

    def _drop_admissions(self, batch: list[_Admission], why: NotReadyError) -> None:
        """Admissions given up: no longer held, their submitters told ``why`` (a follower whose
        forward this was sends it again)."""
        for a in batch:
            if a.done is not None and not a.done.done():
                a.done.set_exception(why)
            self._held_bytes -= a.size
            self._queued -= len(a.raws)

    def _check_admission(self, raws: list[bytes], ids: list[bytes]) -> tuple[np.ndarray, dict[bytes, int]]:
        """Signature check of a batch of decodable transactions, and which are committed already."""
        cfg = self.config
        valid = _native.decode_txs(cfg.suite, cfg.chain_id, raws).verify_signatures(os.urandom(32))
        return valid, self.ledger.tx_heights(ids)

    def _leader_name(self) -> str | None:
        """The node a follower sends transactions on to (None: no leader known, or itself)."""
        leader = self._names.get(self.raft.lead)
        return None if leader == self.config.id else leader

    def _forward(self, txids: list[bytes]) -> None:
        """A follower sends newly admitted transactions on to its leader."""
        if not self._forwarded:
            self._cut_wake.set()  # the cut loop may sleep block_ms: it is to wake in _REFORWARD_S
        leader = self._leader_name()
        if leader is None or (leader, self.raft.term) != self._forwarded_to:
            self._unforwarded = True  # sent once a leader is known, with everything else held
            if leader is not None:
                self._reforward()
            return
        self._forwarded.sent(txids, time.monotonic())
        self._send_on(leader, txids)

    def _send_on(self, leader: str, txids: list[bytes]) -> None:
        raws = [self._mempool[t] for t in txids if t in self._mempool]
        for chunk in _chunks(raws):
            self.transport.send(leader, FRAME_FORWARD + encode_value(list(chunk)))

    def _reforward(self) -> None:
        """A follower sends on again what its leader has not committed in a while (backing off:
        :class:`Forwarded`), everything it holds to a new leader (the old one may have lost it),
        and what it could not send for want of a leader."""
        leader = self._leader_name()
        if leader is None:
            return
        now = time.monotonic()
        if (leader, self.raft.term) != self._forwarded_to:
            self._forwarded_to = (leader, self.raft.term)
            again = self._forwarded.restart(now)
        else:
            again = self._forwarded.due(now)
        if self._unforwarded:
            self._unforwarded = False
            new = [t for t in self._mempool if t not in self._forwarded]
            self._forwarded.sent(new, now)
            again += new
        if again:
            self._send_on(leader, again)

    # -- block cutting (leader) ----------------------------------------------------------------

    async def _cut_loop(self) -> None:
        """The leader proposes a block as soon as ``block_txs`` transactions wait, or once the
        oldest has waited ``block_ms``, while fewer than ``max_inflight_blocks`` are unapplied;
        a follower sends on what its leader has not committed."""
        cfg = self.config
        while True:
            room = self._proposed_blocks < cfg.max_inflight_blocks
            since = self._waiting_since if self.is_leader and room and self._mempool else None
            wait = cfg.block_ms / 1000 if since is None else max(0.0, since + cfg.block_ms / 1000 - time.monotonic())
            if not self.is_leader and (self._forwarded or self._unforwarded):
                wait = min(wait, _REFORWARD_S)  # what the leader has not committed is sent on in time
            await at_most(self._cut_wake.wait(), wait)
            self._cut_wake.clear()
            if not self.is_leader:
                self._reforward()
                continue
            while self._mempool and self._proposed_blocks < cfg.max_inflight_blocks:
                due = self._waiting_since is not None and time.monotonic() - self._waiting_since >= cfg.block_ms / 1000
                if len(self._mempool) < cfg.block_txs and not due:
                    break  # a partial block waits for its deadline
                txids = list(islice(self._mempool, cfg.block_txs))  # the oldest: no scan
                raws = list(map(self._mempool.__getitem__, txids))
                if (fit := _fitting(raws)) < len(raws):  # large transactions: a smaller block
                    txids, raws = txids[:fit], raws[:fit]
                head = self.ledger.head  # every node checks its own block there against this hash
                data = encode_value({"ts": _block_time(), "txs": raws, "head": [head.height, head.hash]})
                async with self._lock:
                    if not self.is_leader:  # leadership may have moved while this task waited
                        break
                    try:
                        placed = self.raft.propose(data)
                    except ProposalDroppedError:
                        break  # the transactions stay in the mempool; a follower forwards them
                    if placed is not None:  # it checked these signatures at admission: apply skips them
                        self._checked[placed] = True
                    pop_keys(self._mempool, txids)
                    self._proposed.update(zip(txids, raws))
                    self._proposed_blocks += 1
                    self._head_named = max(self._head_named, head.height)
                    self._proposed_at = time.monotonic()
                    if not self._mempool:
                        self._waiting_since = None
                    await self._drain()
            await self._name_head_when_idle()

    async def _name_head_when_idle(self) -> None:
        """Proposes ``{"head": [height, hash]}`` once the last block is applied and nothing was
        proposed for ``block_ms``: a block is checked against the next proposal's head, and on an
        idle chain there is none, so a node whose last block differs would serve its state until
        traffic resumed. (Steady traffic names every head in its blocks: no entry is added.)"""
        head = self.ledger.head
        if self._mempool or self._proposed_blocks or head.height <= self._head_named:
            return
        if time.monotonic() - self._proposed_at < self.config.block_ms / 1000:
            return
        async with self._lock:
            if not self.is_leader:
                return
            try:
                self.raft.propose(encode_value({"head": [head.height, head.hash]}))
            except ProposalDroppedError:
                return  # a leadership transfer under way: the next leader names it
            self._proposed_blocks += 1  # it holds the next block back until applied, like one
            self._head_named = head.height
            self._proposed_at = time.monotonic()
            await self._drain()

    def _mempool_grew(self) -> None:
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        if len(self._mempool) >= self.config.block_txs:
            self._cut_wake.set()

    # -- Raft plumbing -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        interval = self.config.tick_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._log_room.wait()
            async with self._lock:
                self.raft.tick()
                await self._drain()

    async def _receive_loop(self) -> None:
        """Routes frames: Raft messages to the Raft loop, the rest handled here. Kept apart so that
        block-sync answers still arrive while a catch-up holds the Raft loop (past
        ``_HELD_LOG_BYTES``)."""
        while True:
            peer, payload = await self.transport.recv()
            if payload[:1] == FRAME_RAFT:
                while self._raft_inbox_full():
                    if self._catching_up:
                        self._raft_inbox_bytes -= len(self._raft_inbox.popleft()[1])
                        continue
                    self._raft_room.clear()
                    await self._raft_room.wait()
                self._raft_inbox.append((peer, payload))
                self._raft_inbox_bytes += len(payload)
                self._raft_waiting.set()
            else:
                await self._handle(peer, payload)

    async def _raft_loop(self) -> None:
        """Steps every Raft message waiting, under one lock round."""
        while True:
            await self._raft_waiting.wait()
            await self._log_room.wait()
            self._raft_waiting.clear()
            msgs = []
            while self._raft_inbox:
                peer, payload = self._raft_inbox.popleft()
                self._raft_inbox_bytes -= len(payload)
                m = self._decode_raft(peer, payload)
                if m is not None:
                    msgs.append((peer, m))
            self._raft_room.set()
            if msgs:
                async with self._lock:
                    for peer, m in msgs:
                        try:
                            self.raft.step(m)
                        except MalformedMessageError as exc:  # refused before it changed anything
                            self._peer_warnings.warn(peer, "node %s: dropped a raft message: %s", self.config.id, exc)
                    await self._drain()

    def _raft_inbox_full(self) -> bool:
        return len(self._raft_inbox) >= _RAFT_INBOX_FRAMES or self._raft_inbox_bytes >= _RAFT_INBOX_BYTES

    def _decode_raft(self, peer: str, payload: bytes) -> Any:
        """The Raft message in a frame from ``peer``, or None. A message must come from the node
        it names as its sender: the transport authenticated ``peer`` (its certificate's name), so
        a node cannot cast another's vote or speak as another's leader."""
        try:
            m = decode_message(payload[1:])
        except MessageDecodeError as exc:
            self._peer_warnings.warn(peer, "node %s: bad raft message from %s: %s", self.config.id, peer, exc)
            return None
        if m.frm != self._raft_ids.get(peer):
            self._peer_warnings.warn(peer, "node %s: raft message from %s claims sender %d; dropped", self.config.id, peer, m.frm)
            return None
        if isinstance(m, MsgProp):
            # Nodes forward transactions ("F" frames: checked at admission), never proposals: a
            # leader would append a peer's entries as they are, and a forged block (or "head")
            # in one would be applied, or stop, every node.
            self._peer_warnings.warn(
                peer, "node %s: a proposal from %s (nodes forward transactions, not entries); dropped", self.config.id, peer
            )
            return None
        if isinstance(m, MsgSnap):
            try:
                snapshot_point(m.snapshot.data)
            except MalformedInputError as exc:  # persisted, it would stop this node on every start
                self._peer_warnings.warn(peer, "node %s: snapshot from %s: %s; dropped", self.config.id, peer, exc)
                return None
        return m

    async def _handle(self, peer: str, payload: bytes) -> None:
        kind, body = payload[:1], payload[1:]
        try:
            if kind == FRAME_FORWARD:
                await self._admit_forwarded(decode_value(body))  # type: ignore[arg-type]
            elif kind == FRAME_SYNC_REQUEST:
                self._serve_sync(peer, body)
            elif kind == FRAME_SYNC_BLOCKS:
                bodies = decode_value(body)
                if not isinstance(bodies, list) or not all(isinstance(b, bytes) for b in bodies):
                    raise InvalidInputError("blocks come as a list of byte strings")
                if self._catching_up:  # else a late answer, or unasked: held, it would only take memory
                    await self._sync_inbox.put((peer, bodies))
            else:
                self._peer_warnings.warn(peer, "node %s: frame of unknown kind %r from %s", self.config.id, kind, peer)
        except _BAD_FRAME_ERRORS as exc:
            self._warn_bad_frame(peer, kind, exc)

    def _warn_bad_frame(self, peer: str, kind: bytes, exc: Exception) -> None:
        self._peer_warnings.warn(peer, "node %s: bad %r frame from %s: %s", self.config.id, kind, peer, exc)

    async def _admit_forwarded(self, raws: list[bytes]) -> None:
        """Transactions a follower sent on: checked like any submission; any that does not decode
        is dropped (the follower decoded it, so the frame was damaged or the peer is broken). So
        are all of them while the mempool has no room for them: the follower keeps them and sends
        them again (``_REFORWARD_S``), so they wait there instead of here. Those it holds already
        (a follower sends again what has not committed in a while) are dropped before their
        signatures are checked again."""
        try:
            ids = self._txids(raws)
        except DecodeError:
            raws = [r for r in raws if self._decodes(r)]
            if not raws:
                return
            ids = self._txids(raws)
        held = (self._mempool.keys() & ids) | (self._proposed.keys() & ids)
        if held:
            raws, ids = [r for r, t in zip(raws, ids) if t not in held], [t for t in ids if t not in held]
        size = sum(map(len, raws))
        if raws and self._has_room(len(raws), size):
            self._queue_admission(_Admission(raws, ids, None, size))

    def _decodes(self, raw: bytes) -> bool:
        try:
            _native.decode_txs(self.config.suite, self.config.chain_id, [raw])
        except DecodeError:
            return False
        return True

    async def _drain(self) -> None:
        """Handles every pending Ready in Raft's order. Caller holds the lock."""
        self._track_role()
        while self.raft.has_ready():
            rd = self.raft.ready()
            early = may_send_before_persist(rd, self.is_leader, self._durable_hard_state)
            if early:
                self._send(rd)
            await self._persist(rd)
            if not early:
                self._send(rd)
            if rd.snapshot is not None and rd.snapshot.data:
                # Installed by the apply loop, after the blocks before it. Raft goes on meanwhile
                # (this node may be what a quorum needs), holding back what commits after it.
                self._queue_install(_SnapshotMark(rd.snapshot.index, rd.snapshot.data))
            for e in rd.committed_entries:
                # Applied by _apply_loop, so replication goes on while blocks execute. Entries
                # that are not blocks go there too, to count as handled after the blocks before them.
                await self._queue_committed(e)
            for rs in rd.read_states:
                point = self._read_points.pop(rs.context, None)
                if point is not None and not point.done():
                    point.set_result(rs.index)
            self.raft.advance(rd)
            self._track_role()  # a membership change applied in advance may have removed the leader
            await self._maybe_compact()

    def _track_role(self) -> None:
        """Keeps the pools in step with the role, once whatever changed it (a message, a tick, a
        membership change) has run: they are kept for the role last seen, not read from before
        the change. Every call into Raft is followed by :meth:`_drain`, which calls this first."""
        leading = self.is_leader
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self._adopt_log_tail()
            self._cut_wake.set()  # a block of what it holds may be due: not after a follower's sleep
            return
        # Proposed but not applied may never commit: back to the front of the queue, to forward.
        self._mempool = OrderedDict([*self._proposed.items(), *self._mempool.items()])
        self._proposed.clear()
        self._proposed_blocks = 0
        self._unforwarded = True
        if self._mempool:
            self._mempool_grew()

    def _adopt_log_tail(self) -> None:
        """A new leader commits every entry its log holds (a leader never overwrites its own), so
        the blocks past what it applied are in flight: they count against ``max_inflight_blocks``,
        and their transactions move from the mempool to the proposed pool instead of going into a
        block again (back, if it steps down before they apply)."""
        log_ = self.raft.log
        # Past what was handled, not past the ledger's head: an entry that applied no block (a
        # head named, a block refused) would count for ever, and hold back a block slot.
        for e in log_.entries_from(max(self._handled + 1, log_.first_index())):
            if e.type != EntryType.NORMAL or not e.data:
                continue
            self._proposed_blocks += 1
            if not self._mempool:
                continue
            try:
                ids = self._txids(decode_value(e.data)["txs"])  # type: ignore[index]
            except (LedgerError, KeyError, TypeError):
                continue  # not a block: applying it fails on every node alike
            for txid in self._mempool.keys() & ids:
                self._proposed[txid] = self._mempool.pop(txid)
        if not self._mempool:
            self._waiting_since = None

    def _send(self, rd: Ready) -> None:
        for m in rd.messages:
            name = self._names.get(m.to)
            if name is not None:
                self.transport.send(name, FRAME_RAFT + encode_message(m))
                if isinstance(m, MsgSnap):
                    self.raft.report_snapshot(m.to, True)

    async def _persist(self, rd: Ready) -> None:
        s = self.storage
        if rd.snapshot is not None:
            s.apply_snapshot(rd.snapshot)
        if rd.entries:
            s.append(rd.entries)
            if self._installs:  # their checks would compete with the install's
                self._held_log_bytes += sum(len(e.data) for e in rd.entries)
                if self._held_log_bytes > _HELD_LOG_BYTES:
                    self._log_room.clear()
            elif not self.is_leader:
                self._check_ahead(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        # A Ready that only moves the commit index need not be fsync'd (a crash may forget how far
        # the commit reached; Raft learns it again): it rides the next write that must be.
        if s.unsynced and rd.must_sync:
            await self._sync()

    async def _sync(self) -> None:
        """Makes the Raft log's pending writes durable (fsync, on a thread). Not cut short by a
        cancellation (a read barrier's timeout, ``stop()``): the thread would go on writing while
        the caller released the Raft lock, and a second sync started beside it would mark entries
        appended meanwhile durable unwritten. The caller's cancellation is raised once it ends."""
        job = asyncio.ensure_future(asyncio.to_thread(self.storage.sync))
        cancelled = False
        while not job.done():
            try:
                await asyncio.shield(job)
            except asyncio.CancelledError:
                cancelled = True
        job.result()
        self._durable_hard_state = self.storage.hard_state()
        if cancelled:
            raise asyncio.CancelledError

    def _check_ahead(self, entries: Sequence[Entry]) -> None:
        """A follower starts checking the signatures of blocks as they are appended, so the check
        overlaps the round trip to commit instead of delaying the apply."""
        for e in entries:
            if e.type == EntryType.NORMAL and e.data and (e.term, e.index) not in self._checked:
                self._checked[(e.term, e.index)] = self._ledger_job(self._check_block, e.data, executor=self._checker)

    def _check_block(self, data: bytes) -> CheckedBlock | None:
        try:
            return self.ledger.check_block(decode_value(data)["txs"], one_thread=True)  # type: ignore[index]
        except (LedgerError, KeyError, TypeError):
            return None  # apply will say what is wrong with it

    def _queue_install(self, mark: _SnapshotMark) -> None:
        """Queues a snapshot for the apply loop to install; Raft holds back what commits after it
        until every queued install has ended (see :meth:`_install`)."""
        self._installs += 1
        self.raft.hold_committed = True
        self._apply_queue.put_nowait(mark)

    async def _queue_committed(self, e: Entry) -> None:
        """Queues a committed entry to apply. Past ``_APPLY_BACKLOG`` queued, the Raft loop waits
        here (backpressure on a node that cannot keep up), unless a snapshot installs: then what
        queues behind it is what the same Ready committed (Raft holds the rest back), and waiting
        for the install would stop this node voting and acknowledging until it ends."""
        while self._apply_queue.qsize() >= _APPLY_BACKLOG and not self._installs:
            self._apply_taken.clear()
            await self._apply_taken.wait()
        self._apply_queue.put_nowait(e)

    async def _apply_loop(self) -> None:
        """Applies committed blocks and installs snapshots in log order; blocks waiting together
        go in one group commit."""
        while True:
            items = [await self._apply_queue.get()]
            while len(items) < _APPLY_GROUP and not self._apply_queue.empty():
                items.append(self._apply_queue.get_nowait())
            self._apply_taken.set()
            entries: list[Entry] = []
            for item in items:
                if isinstance(item, _SnapshotMark):
                    await self._apply_handled(entries)
                    entries = []
                    await self._install(item)
                else:
                    entries.append(item)
            await self._apply_handled(entries)

    async def _apply_handled(self, entries: list[Entry]) -> None:
        if entries:
            await self._apply(entries)
            self._handled_up_to(entries[-1].index)

    async def _install(self, mark: _SnapshotMark) -> None:
        """Brings the ledger to the block a snapshot names; then Raft hands out what committed
        after it (unless another snapshot is queued)."""
        target, digest = snapshot_point(mark.data)
        start, t0 = self.ledger.height, time.monotonic()
        log.info("node %s: installing a snapshot: fetching blocks %d..%d from peers", self.config.id, start + 1, target)
        try:
            await self._catch_up(target, digest)
            log.info("node %s: snapshot installed: at height %d after %.1f s", self.config.id, target, time.monotonic() - t0)
        finally:
            self._installs -= 1
            if not self._installs:
                self.raft.hold_committed = False
                self._held_log_bytes = 0
                self._log_room.set()
        self._handled_up_to(mark.log_index)

    def _handled_up_to(self, index: int) -> None:
        """Every committed entry up to ``index`` is handled: wakes the reads waiting for it."""
        self._handled = max(self._handled, index)
        waiting = []
        for at, done in self._handled_waiters:
            if at <= self._handled:
                if not done.done():
                    done.set_result(None)
            elif not done.done():
                waiting.append((at, done))
        self._handled_waiters = waiting

    async def read_barrier(self, timeout: float = READ_TIMEOUT_S) -> None:
        """Returns once this node has applied every block the cluster had committed when it was
        called (Raft read-index: the leader confirms with a quorum that it still leads, and names
        its commit index). A read made after it, on this node, sees every transaction any node
        acknowledged as committed before the call. Raises ``NotReadyError`` if no leader answers
        within ``timeout`` seconds (an election, a partition)."""
        context = os.urandom(16)
        point: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._read_points[context] = point

        async def applied_through_point() -> None:
            async with self._lock:
                self.raft.read_index(context)
                await self._drain()
            index = await point
            if self._handled < index:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._handled_waiters.append((index, done))
                await done

        try:
            await asyncio.wait_for(applied_through_point(), timeout)
        except ProposalDroppedError as exc:
            raise NotReadyError(f"no linearizable read now: {exc}") from None
        except asyncio.TimeoutError:
            raise NotReadyError(
                f"no linearizable read point within {timeout:g} s: no leader answered (an election, or no quorum)"
            ) from None
        finally:
            self._read_points.pop(context, None)

    async def _apply(self, entries: list[Entry]) -> None:
        applied = applied_index(self.ledger.head.consensus)
        pending: list[tuple[Entry, bool | CheckedBlock | None]] = []
        for e in entries:
            if e.type != EntryType.NORMAL or not e.data:  # a leader's empty entry, a membership change
                continue
            checked: bool | CheckedBlock | None | asyncio.Future[CheckedBlock | None]
            checked = self._checked.pop((e.term, e.index), False)
            if e.index <= applied:
                continue
            if isinstance(checked, asyncio.Future):
                try:
                    checked = await checked
                except Exception:  # the check ahead is an optimisation: apply checks again
                    log.exception("node %s: checking entry %d ahead failed", self.config.id, e.index)
                    checked = None
            pending.append((e, checked))
        if len(self._checked) > 4 * _APPLY_BACKLOG:  # entries overwritten before they committed
            self._checked = {k: v for k, v in self._checked.items() if k[1] > applied}
        if not pending:
            return
        results = await self._ledger_call(self._apply_committed, pending)
        for (e, _), blk in zip(pending, results):
            if self._proposed_blocks and self.is_leader:
                self._proposed_blocks -= 1
                self._cut_wake.set()
            if blk is None:  # a head named, checked
                continue
            if isinstance(blk, LedgerError):
                # Deterministic on every node: the block is skipped everywhere.
                log.error("node %s: committed entry %d is not a valid block: %s", self.config.id, e.index, blk)
                continue
            self._settle_block(blk)

    def _apply_committed(
        self, pending: list[tuple[Entry, bool | CheckedBlock | None]]
    ) -> list[Block | LedgerError | None]:
        """Decodes committed entries' block proposals and applies them as one group, on a worker
        thread (a proposal is a whole block: decoding it on the event loop would stall Raft). A
        block checked ahead goes in as its checked, decoded form; the others are decoded again.

        Each proposal names the leader's head when it cut the block: a block this node has
        applied by then (it is earlier in the log). A different hash there means this node's
        chain has left the cluster's (a contract that is not deterministic, another version of
        the code, a damaged store): ``DivergedError``, and the node stops within a few blocks
        instead of serving a state no other node holds. An entry that holds only a head is checked
        so and applies no block (None in what this returns)."""
        out: list[LedgerError | bool] = []  # per entry: why it is no block, or whether it applies one
        inputs, heads = [], []
        for e, checked in pending:
            try:
                proposal = decode_value(e.data)
                if "head" in proposal:  # type: ignore[operator]  # not in proposals of earlier versions
                    height, digest = proposal["head"]  # type: ignore[index, misc]
                    heads.append((e.index, height, digest))
                if isinstance(proposal, dict) and proposal.keys() == {"head"}:  # an idle leader's
                    out.append(False)
                    continue
                txs = checked if isinstance(checked, CheckedBlock) else proposal["txs"]  # type: ignore[index]
                ts = proposal["ts"]  # type: ignore[index]
                if type(ts) is not int:  # None would stamp the block with each node's own clock
                    raise TypeError(f"its timestamp is {type(ts).__name__}, not an int")
                inputs.append(BlockInput(
                    txs, timestamp=ts, consensus=consensus_data(e.term, e.index),
                    signatures_checked=checked is True,
                ))  # fmt: skip
                out.append(True)
            except (LedgerError, KeyError, TypeError, ValueError) as exc:
                out.append(MalformedInputError(f"not a block proposal: {exc}"))
        applied = iter(self.ledger.apply_group(inputs) if inputs else [])
        results = [(next(applied) if o else None) if isinstance(o, bool) else o for o in out]
        for index, height, digest in heads:
            self._check_block_hash(height, digest, f"the leader's head when it cut entry {index}")
        return results

    def _check_block_hash(self, height: int, expected: bytes, whose: str) -> None:
        """Raises ``DivergedError`` unless this ledger's block at ``height`` has the hash
        ``expected``, which ``whose`` gave."""
        try:
            mine: bytes | None = self.ledger.header(height).hash
        except LedgerError:
            mine = None
        if mine != expected:
            here = "no block" if mine is None else mine.hex()
            raise DivergedError(
                f"block {height} here is {here}, but {whose} says {bytes(expected).hex()}: this node's chain "
                "has left the cluster's (its contracts, code or store differ)"
            )

    async def _maybe_compact(self) -> None:
        s, every = self.storage, self.config.snapshot_every
        # One read: the apply worker may commit between two, and a snapshot at this index naming
        # a later block took a follower installing it past its log, which it could never restart from.
        head = self.ledger.head
        applied = applied_index(head.consensus)
        if applied - s.snapshot().index < every or applied <= s.snapshot().index:
            return
        s.create_snapshot(applied, self.raft.conf_state(), encode_value({"height": head.height, "hash": head.hash}))
        keep_from = applied - every // 2  # slightly lagging followers still catch up from the log
        if keep_from > s.first_index():
            s.compact(keep_from)
        await self._sync()

    # -- block sync (snapshot install) -----------------------------------------------------------

    def _serve_sync(self, peer: str, body: bytes) -> None:
        """Answers ``peer``'s sync request on a task of its own: read there, its blocks do not hold
        up the receive loop, so Raft frames (heartbeats, votes) are stepped meanwhile. A request
        that comes while ``peer`` is being answered is dropped; the peer asks again after waiting."""
        if peer in self._sync_answers:
            return
        task = asyncio.create_task(self._answer_sync(peer, body), name=f"{self.config.id}-sync-{peer}")
        self._sync_answers[peer] = task
        task.add_done_callback(functools.partial(self._sync_answered, peer))

    def _sync_answered(self, peer: str, task: asyncio.Task[None]) -> None:
        del self._sync_answers[peer]
        self._task_done(task)

    async def _answer_sync(self, peer: str, body: bytes) -> None:
        try:
            req = decode_value(body)
            start, end = int(req["from"]), min(int(req["to"]), self.ledger.height)  # type: ignore[index]
            bodies = await self._ledger_call(self._block_bodies, start, min(end, start + _SYNC_BATCH - 1))
        except _BAD_FRAME_ERRORS as exc:
            self._warn_bad_frame(peer, FRAME_SYNC_REQUEST, exc)
            return
        self.transport.send(peer, FRAME_SYNC_BLOCKS + encode_value(bodies))

    def _block_bodies(self, start: int, end: int) -> list[bytes]:
        """Blocks ``start..end`` encoded, as many as fit one frame (at least one): the peer asks
        again from where the answer ends."""
        bodies: list[bytes] = []
        size = 0
        for h in range(start, end + 1):
            blk = self.ledger.block(h)
            bodies.append(encode_block(blk.header, blk.raws))
            size += len(bodies[-1])
            if size > _FRAME_PAYLOAD:
                return bodies[:-1] or bodies
        return bodies

    async def _catch_up(self, target: int, expected: bytes) -> None:
        """Fetches and applies committed blocks from peers until the ledger reaches the snapshot's
        height, then checks that block's hash against the snapshot's: a node whose chain is not
        the one the cluster committed (a peer served another history, or its own store differs)
        must not take part. It raises ``DivergedError``, and the node stops. So does a fetched
        block that does not re-execute, on this node's head, to the header the peer served with
        it; that block is not written."""
        self._catching_up = True
        self._raft_room.set()  # a receive loop waiting for room drops instead
        try:
            await self._fetch_blocks(target)
        finally:
            self._catching_up = False
        self._check_block_hash(target, expected, "the cluster's snapshot at that height")

    async def _fetch_blocks(self, target: int) -> None:
        """Applies committed blocks fetched from peers up to ``target``, asking one peer a round
        (see :func:`sync_peer`). A peer whose answer does not decode, or whose block does not
        re-execute here to the header it served, is not asked again: its chain, or this node's, has
        left the cluster's. The other peers are asked instead, and this node stops
        (``DivergedError``) once every peer has been refused."""
        refused: dict[str, str] = {}  # peer -> why its answer was refused
        asked: str | None = None
        asked_before: set[str] = set()  # an answer from a peer never asked is dropped unread
        move_on = False
        while self.ledger.height < target:
            asked = self._sync_peer(refused, asked, move_on)
            if refused and asked is None:
                raise DivergedError(
                    f"no peer serves a block {self.ledger.height + 1} that follows this node's chain: "
                    + "; ".join(f"{p}: {why}" for p, why in refused.items())
                )
            if asked is not None:
                asked_before.add(asked)
                want = {"from": self.ledger.height + 1, "to": target}
                self.transport.send(asked, FRAME_SYNC_REQUEST + encode_value(want))
            move_on = True  # unless the answer of the peer asked applies blocks
            # The round ends with that answer, or after _SYNC_WAIT_S. Another peer's answer (asked
            # in a round that timed out) is applied too: its blocks may still follow. So is a late
            # answer of the peer asked, to an earlier round: it applies nothing (its blocks are
            # below the head) and, unless empty, the round waits on for the answer to this one.
            deadline = time.monotonic() + _SYNC_WAIT_S
            while self.ledger.height < target and (wait := deadline - time.monotonic()) > 0:
                answer = await at_most(self._sync_inbox.get(), wait)
                if answer is None:
                    break
                peer, bodies = answer
                if peer in refused or peer not in asked_before:
                    continue
                applied = await self._apply_fetched(peer, bodies, refused)
                if peer == asked and (applied or not bodies or peer in refused):
                    move_on = not applied
                    break

    async def _apply_fetched(self, peer: str, bodies: list[bytes], refused: dict[str, str]) -> int:
        """Applies the blocks of ``peer``'s answer that follow this node's head, in one durable
        write; how many. A block that does not decode, or whose transactions do not decode or
        verify, refuses ``peer`` (in ``refused``, with why) and ends the answer: the blocks before
        it are applied. So does a block that does not re-execute here to the header it came with;
        then none of the answer is applied."""
        blocks: list[tuple[BlockHeader, list[bytes]]] = []
        for body in bodies:
            try:
                header, raws = decode_block(body)
            except DecodeError as exc:
                refused[peer] = f"its answer holds a block that does not decode: {exc}"
                break
            if header.height == self.ledger.height + 1 + len(blocks):
                blocks.append((header, raws))
        applied: list[Block] = []
        try:
            if blocks:
                applied, invalid = await self._ledger_call(self._apply_blocks_fetched, blocks)
                if invalid is not None:
                    refused[peer] = invalid
        except HeaderMismatchError as exc:  # nothing was written
            refused[peer] = f"its chain and this node's differ: {exc}"
        for blk in applied:
            self._settle_block(blk)
        if peer in refused:
            log.warning("node %s: catching up, %s's answer refused: %s", self.config.id, peer, refused[peer])
        return len(applied)

    def _apply_blocks_fetched(self, blocks: list[tuple[BlockHeader, list[bytes]]]) -> tuple[list[Block], str | None]:
        """Checks fetched blocks, then applies as one group those before the first that fails its
        check, each to re-execute to its header: the blocks applied, and why that one failed."""
        inputs, invalid = [], None
        for header, raws in blocks:
            try:
                checked = self.ledger.check_block(raws)
            except (DecodeError, InvalidSignatureError) as exc:
                invalid = f"its block {header.height} is invalid: {type(exc).__name__}: {exc}"
                break
            inputs.append(BlockInput(checked, header.timestamp, header.proposer, header.consensus, expect=header))
        # Checked above, so apply_group refuses none of them: every item is a Block.
        applied = cast(list[Block], self.ledger.apply_group(inputs) if inputs else [])
        return applied, invalid

    def _sync_peer(self, refused: Mapping[str, str], last: str | None, move_on: bool) -> str | None:
        """Whom to ask for committed blocks this round (see :func:`sync_peer`)."""
        leader = self._names.get(self.raft.lead)
        return sync_peer(
            [p.id for p in self.config.peers], refused, leader if leader != self.config.id else None, last, move_on
        )
