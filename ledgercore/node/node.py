"""A consensus node: Raft orders blocks of transactions, and every node applies each committed
block through its own :class:`~ledgercore.ledger.Ledger`, so all reach identical block hashes and
state roots.

The node drives the pure :class:`~ledgercore.consensus.raft.RaftNode` from an asyncio loop: frames
from the mutual-TLS transport are stepped in, a timer ticks it, and each ``Ready`` is handled in
Raft's order: the log is made durable (fsync), then messages go out, then committed blocks are
applied. One lock serialises all of it, so the state machine never sees two callers.

Frames between nodes start with one byte saying what they carry: ``R`` a Raft message, ``F``
transactions forwarded to the leader, ``S`` a request for committed blocks, ``B`` such blocks.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import random
import struct
import time
from collections import OrderedDict, deque
from itertools import islice
from dataclasses import dataclass
from typing import Any

from .. import _native
from ..block import decode_block, encode_block
from ..codec import decode_value, encode_value
from ..consensus.messages import Entry, EntryType, MessageDecodeError, MsgSnap, decode_message, encode_message
from ..consensus.raft import NONE, Config, ProposalDroppedError, RaftNode, Ready, StateType
from ..errors import DecodeError, InvalidSignatureError, LedgerError, NotFoundError
from ..ledger import Ledger
from ..net.transport import Transport
from ..transaction import now_ms
from .config import NodeConfig
from .raft_store import DurableStorage

log = logging.getLogger("ledgercore.node")

FRAME_RAFT, FRAME_FORWARD, FRAME_SYNC_REQUEST, FRAME_SYNC_BLOCKS = b"R", b"F", b"S", b"B"
_CONSENSUS = struct.Struct(">4sQQ")  # b"raft", term, index: what each block header records
_SYNC_BATCH = 64  # blocks per sync answer
_REFORWARD_S = 1.0  # a follower re-sends transactions the leader has not committed after this long
_WAIT_TIMEOUT_S = 30.0
_ADMIT_BATCH = 8192
# Raft frames waiting for the Raft loop: beyond these the receive loop waits (backpressure), except
# during a snapshot catch-up, when it drops the oldest (Raft retransmits) so sync answers still flow.
_RAFT_INBOX_FRAMES = 4096
_RAFT_INBOX_BYTES = 64 << 20


class DataDirInUseError(LedgerError):
    """Another process already runs a node on this data directory."""


class NotReadyError(LedgerError):
    """The node cannot take transactions now (no leader known, or the mempool is full); retry."""


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


@dataclass
class _Admission:
    raw: bytes
    txid: bytes
    done: asyncio.Future[bytes] | None  # None: forwarded by a peer, nobody waits


class Node:
    """One member of a Raft-ordered consortium chain."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.ledger: Ledger
        self._names = {config.raft_id: config.id, **{p.raft_id: p.id for p in config.peers}}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._admit_queue: asyncio.Queue[_Admission] = asyncio.Queue()
        self._mempool: OrderedDict[bytes, bytes] = OrderedDict()  # txid -> raw, not yet proposed, oldest first
        self._forwarded: dict[bytes, float] = {}  # txid -> when a follower last sent it on
        self._proposed: OrderedDict[bytes, bytes] = OrderedDict()  # txid -> raw, proposed, not yet applied
        self._proposed_blocks = 0
        self._waiters: dict[bytes, list[asyncio.Future[int]]] = {}
        self._sync_inbox: asyncio.Queue[list[bytes]] = asyncio.Queue()
        self._stopped = asyncio.Event()
        self._raft_inbox: deque[tuple[str, bytes]] = deque()
        self._raft_inbox_bytes = 0
        self._raft_waiting = asyncio.Event()  # set: frames in the inbox
        self._raft_room = asyncio.Event()  # set: the inbox has room
        self._catching_up = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        # Two processes driving one node's log and ledger would fork its history: refuse.
        self._dir_lock = open(cfg.data_dir / "LOCK", "a")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(self._dir_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._dir_lock.close()
            raise DataDirInUseError(f"{cfg.data_dir} is in use by another node process") from None
        self.ledger = Ledger.open(cfg.data_dir / "ledger", cfg.suite, chain_id=cfg.chain_id)
        self.storage = DurableStorage(cfg.data_dir / "raft")
        if self.storage.is_new:
            self.storage.bootstrap_voters(sorted(self._names))
        self.transport = Transport.from_files(
            cfg.id, cfg.tls, listen=(cfg.host, cfg.port), peers={p.id: (p.host, p.port) for p in cfg.peers}
        )
        await self.transport.start()
        self._spawn(self._receive_loop(), "receive")
        # A snapshot installed before a restart may be ahead of the ledger: catch up first.
        snap = self.storage.snapshot()
        if snap.data:
            await self._catch_up(decode_value(snap.data)["height"])  # type: ignore[index]
        applied = max(applied_index(self.ledger.head.consensus), snap.index)
        self.raft = RaftNode(
            Config(
                id=cfg.raft_id, storage=self.storage, election_tick=cfg.election_ticks,
                heartbeat_tick=cfg.heartbeat_ticks, applied=applied, max_size_per_msg=4 << 20,
                max_inflight_msgs=64, rng=random.Random(os.urandom(8)),
            )
        )  # fmt: skip
        loops = ((self._raft_loop(), "raft"), (self._tick_loop(), "tick"), (self._admit_loop(), "admit"),
                 (self._cut_loop(), "cut"))  # fmt: skip
        for coro, name in loops:
            self._spawn(coro, name)
        log.info("node %s started at height %d (raft applied %d)", cfg.id, self.ledger.height, applied)

    async def stop(self) -> None:
        self._stopped.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.stop()
        async with self._lock:
            self.storage.close()
            self.ledger.close()
        self._dir_lock.close()
        for futures in self._waiters.values():
            for f in futures:
                if not f.done():
                    f.set_exception(NotReadyError("the node stopped before the transaction committed"))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.config.id}-{name}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("node %s: task %s failed", self.config.id, task.get_name(), exc_info=task.exception())

    # -- client side -------------------------------------------------------------------------

    async def submit(self, raw: bytes, *, wait: bool) -> tuple[bytes, int | None]:
        """Admits one encoded transaction; with ``wait``, returns once it is committed."""
        if len(self._mempool) + len(self._proposed) >= self.config.mempool_limit:
            raise NotReadyError(f"mempool full ({self.config.mempool_limit} transactions); retry later")
        batch = _native.decode_txs(self.config.suite, self.config.chain_id, [bytes(raw)])
        txid = batch.ids[0].tobytes()
        try:
            return txid, self.ledger.tx(txid).height  # already committed
        except NotFoundError:
            pass
        committed = self._wait_for(txid) if wait else None
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        await self._admit_queue.put(_Admission(bytes(raw), txid, done))
        try:
            await done
            if committed is None:
                return txid, None
            return txid, await asyncio.wait_for(committed, _WAIT_TIMEOUT_S)
        except BaseException:
            if committed is not None:
                self._forget_waiter(txid, committed)
            raise

    def submit_many(self, raws: list[bytes]) -> list[tuple[bytes, asyncio.Future[int]]]:
        """Admits many encoded transactions at once: one decode, one signature-check batch and no
        task per transaction. Returns each one's txid and a future resolving to the height it
        commits at (at once if already committed), or failing as :meth:`submit` would (an invalid
        signature, the node stopping). Raises when the node cannot take them or one does not decode."""
        if len(self._mempool) + len(self._proposed) + len(raws) > self.config.mempool_limit:
            raise NotReadyError(f"mempool full ({self.config.mempool_limit} transactions); retry later")
        raws = [bytes(r) for r in raws]
        ids = _native.decode_txs(self.config.suite, self.config.chain_id, raws).ids
        loop = asyncio.get_running_loop()
        out: list[tuple[bytes, asyncio.Future[int]]] = []
        for raw, tid in zip(raws, ids):
            txid = tid.tobytes()
            try:
                committed = loop.create_future()
                committed.set_result(self.ledger.tx(txid).height)
            except NotFoundError:
                committed = self._wait_for(txid)
                done: asyncio.Future[bytes] = loop.create_future()
                done.add_done_callback(lambda d, t=txid, c=committed: self._admitted(t, c, d))
                self._admit_queue.put_nowait(_Admission(raw, txid, done))
            out.append((txid, committed))
        return out

    def _admitted(self, txid: bytes, committed: asyncio.Future[int], done: asyncio.Future[bytes]) -> None:
        if not done.cancelled() and done.exception() is not None:
            self._forget_waiter(txid, committed)
            if not committed.done():
                committed.set_exception(done.exception())  # type: ignore[arg-type]

    def _wait_for(self, txid: bytes) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(txid, []).append(fut)
        return fut

    def _forget_waiter(self, txid: bytes, fut: asyncio.Future[int]) -> None:
        waiting = self._waiters.get(txid, [])
        if fut in waiting:
            waiting.remove(fut)
        if not waiting:
            self._waiters.pop(txid, None)

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
            items = [await self._admit_queue.get()]
            while len(items) < _ADMIT_BATCH and not self._admit_queue.empty():
                items.append(self._admit_queue.get_nowait())
            valid = await asyncio.to_thread(self._verify, [a.raw for a in items])
            fresh = []
            for a, ok in zip(items, valid):
                if not ok:
                    if a.done is not None and not a.done.done():
                        a.done.set_exception(InvalidSignatureError([0]))
                    continue
                if a.txid not in self._mempool and a.txid not in self._proposed:
                    self._mempool[a.txid] = a.raw
                    fresh.append(a.txid)
                if a.done is not None and not a.done.done():
                    a.done.set_result(a.txid)
            if fresh and not self.is_leader:
                self._forward(fresh)

    def _verify(self, raws: list[bytes]) -> list[bool]:
        """Signature check of a batch; a batch that does not decode is checked one by one."""
        cfg = self.config
        try:
            return _native.decode_txs(cfg.suite, cfg.chain_id, raws).verify_signatures(os.urandom(32)).tolist()
        except DecodeError:
            return [ok for raw in raws for ok in self._verify_one(raw)]

    def _verify_one(self, raw: bytes) -> list[bool]:
        try:
            return self._verify([raw])
        except DecodeError:
            return [False]

    def _forward(self, txids: list[bytes]) -> None:
        leader = self._names.get(self.raft.lead)
        if leader is None or leader == self.config.id:
            return
        now = time.monotonic()
        raws = [self._mempool[t] for t in txids if t in self._mempool]
        for t in txids:
            self._forwarded[t] = now
        if raws:
            self.transport.send(leader, FRAME_FORWARD + encode_value(raws))

    # -- block cutting (leader) ----------------------------------------------------------------

    async def _cut_loop(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.block_ms / 1000)
            if not self.is_leader:
                stale = [t for t, at in self._forwarded.items() if time.monotonic() - at > _REFORWARD_S]
                unsent = [t for t in self._mempool if t not in self._forwarded]
                if stale or unsent:
                    self._forward(stale + unsent)
                continue
            while self._mempool and self._proposed_blocks < cfg.max_inflight_blocks:
                txids = list(islice(self._mempool, cfg.block_txs))  # the oldest: no scan
                raws = [self._mempool[t] for t in txids]
                data = encode_value({"ts": now_ms(), "txs": raws})
                async with self._lock:
                    try:
                        # Leadership may have moved while this task waited for the lock.
                        self.raft.propose(data)
                    except ProposalDroppedError:
                        break  # the transactions stay in the mempool; a follower forwards them
                    for t, raw in zip(txids, raws):
                        if self._mempool.pop(t, None) is not None:
                            self._proposed[t] = raw
                    self._proposed_blocks += 1
                    await self._drain()

    # -- Raft plumbing -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        interval = self.config.tick_ms / 1000
        while True:
            await asyncio.sleep(interval)
            async with self._lock:
                self.raft.tick()
                await self._drain()

    async def _receive_loop(self) -> None:
        """Routes frames: Raft messages to the Raft loop, the rest handled here. Kept apart so that
        block-sync answers still arrive while the Raft loop waits in a snapshot catch-up."""
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
            self._raft_waiting.clear()
            msgs = []
            while self._raft_inbox:
                peer, payload = self._raft_inbox.popleft()
                self._raft_inbox_bytes -= len(payload)
                m = self._decode_raft(peer, payload)
                if m is not None:
                    msgs.append(m)
            self._raft_room.set()
            if msgs:
                async with self._lock:
                    for m in msgs:
                        self.raft.step(m)
                    await self._drain()

    def _raft_inbox_full(self) -> bool:
        return len(self._raft_inbox) >= _RAFT_INBOX_FRAMES or self._raft_inbox_bytes >= _RAFT_INBOX_BYTES

    def _decode_raft(self, peer: str, payload: bytes) -> Any:
        try:
            return decode_message(payload[1:])
        except MessageDecodeError as exc:
            log.warning("node %s: bad raft message from %s: %s", self.config.id, peer, exc)
            return None

    async def _handle(self, peer: str, payload: bytes) -> None:
        kind, body = payload[:1], payload[1:]
        try:
            if kind == FRAME_FORWARD:
                await self._admit_forwarded(decode_value(body))  # type: ignore[arg-type]
            elif kind == FRAME_SYNC_REQUEST:
                await self._answer_sync(peer, body)
            elif kind == FRAME_SYNC_BLOCKS:
                await self._sync_inbox.put(decode_value(body))  # type: ignore[arg-type]
            else:
                log.warning("node %s: frame of unknown kind %r from %s", self.config.id, kind, peer)
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            log.warning("node %s: bad %r frame from %s: %s", self.config.id, kind, peer, exc)

    async def _admit_forwarded(self, raws: list[bytes]) -> None:
        cfg = self.config
        try:
            ids = _native.decode_txs(cfg.suite, cfg.chain_id, raws).ids
        except DecodeError:
            raws = [r for r in raws if self._verify_one(r)[0]]
            ids = _native.decode_txs(cfg.suite, cfg.chain_id, raws).ids
        for raw, txid in zip(raws, ids):
            await self._admit_queue.put(_Admission(raw, txid.tobytes(), None))

    async def _drain(self) -> None:
        """Handles every pending Ready in Raft's order. Caller holds the lock."""
        while self.raft.has_ready():
            rd = self.raft.ready()
            await self._persist(rd)
            for m in rd.messages:
                name = self._names.get(m.to)
                if name is not None:
                    self.transport.send(name, FRAME_RAFT + encode_message(m))
                    if isinstance(m, MsgSnap):
                        self.raft.report_snapshot(m.to, True)
            if rd.snapshot is not None and rd.snapshot.data:
                await self._catch_up(decode_value(rd.snapshot.data)["height"])  # type: ignore[index]
            for e in rd.committed_entries:
                await self._apply(e)
            was_leader = self.is_leader
            self.raft.advance(rd)
            if was_leader and not self.is_leader:
                # Proposed but not applied may never commit: back to the front of the queue, to forward.
                self._mempool = OrderedDict([*self._proposed.items(), *self._mempool.items()])
                self._proposed.clear()
                self._proposed_blocks = 0
            await self._maybe_compact()

    async def _persist(self, rd: Ready) -> None:
        s = self.storage
        if rd.snapshot is not None:
            s.apply_snapshot(rd.snapshot)
        if rd.entries:
            s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        if s.unsynced:
            await asyncio.to_thread(s.sync)

    async def _apply(self, e: Entry) -> None:
        if e.type != EntryType.NORMAL or not e.data or e.index <= applied_index(self.ledger.head.consensus):
            return
        proposal = decode_value(e.data)
        raws: list[bytes] = proposal["txs"]  # type: ignore[index]
        try:
            blk = await asyncio.to_thread(
                self.ledger.apply_block, raws, timestamp=proposal["ts"], consensus=consensus_data(e.term, e.index)  # type: ignore[index]
            )
        except (DecodeError, InvalidSignatureError) as exc:
            # Deterministic on every node: the block is skipped everywhere.
            log.error("node %s: committed entry %d is not a valid block: %s", self.config.id, e.index, exc)
            return
        if self._proposed_blocks and self.is_leader:
            self._proposed_blocks -= 1
        self._settle(blk.txids, blk.height)

    def _settle(self, txids: list[bytes], height: int) -> None:
        for t in txids:
            self._mempool.pop(t, None)
            self._proposed.pop(t, None)
            self._forwarded.pop(t, None)
            for fut in self._waiters.pop(t, ()):
                if not fut.done():
                    fut.set_result(height)

    async def _maybe_compact(self) -> None:
        s, every = self.storage, self.config.snapshot_every
        applied = applied_index(self.ledger.head.consensus)
        if applied - s.snapshot().index < every or applied <= s.snapshot().index:
            return
        head = self.ledger.head
        s.create_snapshot(applied, self.raft.conf_state(), encode_value({"height": head.height, "hash": head.hash}))
        keep_from = applied - every // 2  # slightly lagging followers still catch up from the log
        if keep_from > s.first_index():
            s.compact(keep_from)
        await asyncio.to_thread(s.sync)

    # -- block sync (snapshot install) -----------------------------------------------------------

    async def _answer_sync(self, peer: str, body: bytes) -> None:
        req = decode_value(body)
        start, end = int(req["from"]), min(int(req["to"]), self.ledger.height)  # type: ignore[index]
        bodies = []
        for h in range(start, min(end, start + _SYNC_BATCH - 1) + 1):
            bodies.append(await asyncio.to_thread(self._block_body, h))
        self.transport.send(peer, FRAME_SYNC_BLOCKS + encode_value(bodies))

    def _block_body(self, height: int) -> bytes:
        blk = self.ledger.block(height)
        return encode_block(blk.header, blk.raws)

    async def _catch_up(self, target: int) -> None:
        """Fetches and applies committed blocks from peers until the ledger reaches ``target``."""
        self._catching_up = True
        self._raft_room.set()  # a receive loop waiting for room drops instead
        try:
            await self._fetch_blocks(target)
        finally:
            self._catching_up = False

    async def _fetch_blocks(self, target: int) -> None:
        while self.ledger.height < target:
            want = {"from": self.ledger.height + 1, "to": target}
            lead = getattr(self, "raft", None)
            peers = [self._names[lead.lead]] if lead is not None and lead.lead in self._names else []
            peers = [p for p in peers if p != self.config.id] or [p.id for p in self.config.peers]
            for p in peers:
                self.transport.send(p, FRAME_SYNC_REQUEST + encode_value(want))
            try:
                bodies = await asyncio.wait_for(self._sync_inbox.get(), 2.0)
            except asyncio.TimeoutError:
                continue
            for body in bodies:
                header, raws = decode_block(body)
                if header.height != self.ledger.height + 1:
                    continue
                blk = await asyncio.to_thread(
                    self.ledger.apply_block, raws, timestamp=header.timestamp, proposer=header.proposer,
                    consensus=header.consensus,
                )  # fmt: skip
                if blk.header != header:
                    raise LedgerError(f"block {header.height} from a peer re-executes to a different header")
                self._settle(blk.txids, blk.height)
