"""One cluster member of ``ledgercore bench raft``, run as its own OS process.

``python -m ledgercore.bench.raft_node KIND SPEC_JSON`` starts one node and then obeys one JSON
command per line on stdin, answering one JSON line on stdout (so the parent drives three of them
without sharing a GIL with any). KIND is:

``opaque``
    :class:`OpaqueNode`: ledgercore's Raft (:class:`~ledgercore.consensus.raft.RaftNode`) over the
    real mutual-TLS :class:`~ledgercore.net.transport.Transport` with the Raft log in
    :class:`~ledgercore.node.raft_store.DurableStorage` (one fsync'd LMDB transaction per Ready),
    each Ready handled in Raft's order (persist, send, apply, advance); with ``pipelined`` (the
    default) the node keeps stepping messages while an fsync runs (see "Raft plumbing" below),
    without it the discipline is :class:`~ledgercore.node.Node`'s. The state machine is a no-op:
    it counts the opaque entries it applies and folds them into a running BLAKE2b digest, so the
    parent can check every node applied the same entries in the same order. The leader is its own
    client: it proposes ``batch`` entries at a time (``RaftNode.propose_many``) while fewer than
    ``window`` proposed entries are unapplied.
``pysyncobj``
    A PySyncObj ``SyncObj`` with one ``@replicated`` method that counts and digests the same
    entries; the leader's process is the client, keeping up to ``window`` commands in flight. No
    journal file: PySyncObj persists nothing by default.
``ledger``
    The real :class:`~ledgercore.node.Node` (mempool, batch signature checks, blocks applied through
    each node's Ledger). Its client submits the signed transactions the parent wrote for it
    in-process, ``batch`` at a time with ``Node.submit_many`` (the call ``POST /txs`` makes: one
    decode, one admission batch, one commit waiter), ``clients`` batches in flight, and records each
    batch's submit-to-commit latency (until its last transaction commits), weighted by its size.

Commands: ``{"cmd": "status"}`` (role, counters, clocks), ``{"cmd": "load", "on": bool}``,
``{"cmd": "mark"}`` (start or stop recording latencies), ``{"cmd": "digest"}``, ``{"cmd": "exit"}``.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import random
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import LedgerError

log = logging.getLogger("ledgercore.bench.raft")


# -- the command channel -------------------------------------------------------------------------


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_commands(deliver: Callable[[dict[str, Any]], object]) -> None:
    """Reads JSON commands from stdin on a daemon thread and hands each to ``deliver``."""

    def loop() -> None:
        for line in sys.stdin:
            if line.strip():
                deliver(json.loads(line))
        deliver({"cmd": "exit"})  # the parent went away

    threading.Thread(target=loop, name="bench-commands", daemon=True).start()


def clocks() -> dict[str, float]:
    return {"t": time.monotonic(), "cpu": time.process_time()}


def weighted_percentiles(samples: list[tuple[float, int]], qs: tuple[float, ...]) -> list[float | None]:
    """Percentiles of latencies given as (latency, how many entries had it)."""
    if not samples:
        return [None for _ in qs]
    samples = sorted(samples)
    total = sum(n for _, n in samples)
    out: list[float | None] = []
    for q in qs:
        rank, seen = q * total, 0
        for lat, n in samples:
            seen += n
            if seen >= rank:
                out.append(lat)
                break
        else:
            out.append(samples[-1][0])
    return out


class Latencies:
    """Latency samples between two ``mark`` commands, as (seconds, how many entries had it)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] | None = None  # None: not recording

    def add(self, latency: float, n: int = 1) -> None:
        samples = self.samples  # read once: a mark on another thread may swap it
        if samples is not None:
            samples.append((latency, n))

    def mark(self) -> dict[str, Any]:
        """Starts recording, or stops and answers the percentiles of what was recorded."""
        if self.samples is None:
            self.samples = []
            return {"ok": True}
        lat, self.samples = self.samples, None
        p50, p99 = weighted_percentiles(lat, (0.5, 0.99))
        return {"p50": p50, "p99": p99, "samples": sum(n for _, n in lat)}


def answer(node: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    """Every node kind's command handler: ``node`` has ``set_loading``, ``latencies``, ``digest``
    and ``status``."""
    what = cmd["cmd"]
    if what == "load":
        node.set_loading(bool(cmd["on"]))
        return {"ok": True}
    if what == "mark":
        return node.latencies.mark()  # type: ignore[no-any-return]
    if what == "digest":
        return node.digest()  # type: ignore[no-any-return]
    return node.status()  # type: ignore[no-any-return]


# -- ledgercore Raft with a no-op state machine ------------------------------------------------------


class OpaqueNode:
    """Raft over the real transport and durable log, applying opaque entries to a counter."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from ..node.config import NodeConfig

        self.cfg = NodeConfig.from_dict(spec["config"])
        self.entry_size: int = spec.get("entry_size", 200)
        self.batch: int = spec.get("batch", 2000)
        self.window: int = spec.get("window", 20000)
        self.compact_every: int = spec.get("compact_every", 100_000)
        self._names = {self.cfg.raft_id: self.cfg.id, **{p.raft_id: p.id for p in self.cfg.peers}}
        self.pipelined: bool = spec.get("pipelined", True)
        self._lock = asyncio.Lock()  # held by whoever calls into Raft (across a Ready unless pipelined)
        self._wake = asyncio.Event()  # set: Raft may have a Ready
        self._syncing: asyncio.Future[None] | None = None  # the log write in flight
        self._room = asyncio.Event()  # set: the leader's client may propose again
        self._tasks: list[asyncio.Task[Any]] = []
        self.loading = False
        self.applied_entries = 0  # opaque entries applied (not Raft's empty leader entries)
        self._hash = hashlib.blake2b(digest_size=16)
        self.syncs = 0
        self.sync_seconds = 0.0  # wall time in fsync'd log writes
        self._seq = 0
        self._filler = os.urandom(self.entry_size)
        self._proposed: deque[tuple[int, int, float]] = deque()  # (last index, entries, when)
        self.latencies = Latencies()

    async def start(self) -> None:
        from ..consensus.raft import Config, RaftNode
        from ..net.transport import Transport
        from ..node.raft_store import DurableStorage

        cfg = self.cfg
        if self.pipelined:
            # The log write runs on a worker thread while this one keeps stepping; py-lmdb takes the
            # GIL back for every put, and at the default 5 ms switch interval a busy event loop
            # stretches a 5 ms write to 100+ ms.
            sys.setswitchinterval(0.0005)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage = DurableStorage(cfg.data_dir / "raft")
        if self.storage.is_new:
            self.storage.bootstrap_voters(sorted(self._names))
        self._durable = self.storage.hard_state()
        self.transport = Transport.from_files(
            cfg.id, cfg.tls, listen=(cfg.host, cfg.port), peers={p.id: (p.host, p.port) for p in cfg.peers}
        )
        await self.transport.start()
        self.raft = RaftNode(
            Config(
                id=cfg.raft_id, storage=self.storage, election_tick=cfg.election_ticks,
                heartbeat_tick=cfg.heartbeat_ticks, applied=self.storage.snapshot().index,
                max_size_per_msg=4 << 20, max_inflight_msgs=64, rng=random.Random(os.urandom(8)),
            )
        )  # fmt: skip
        loops = ((self._ready_loop(), "ready"), (self._receive_loop(), "receive"), (self._tick_loop(), "tick"),
                 (self._load_loop(), "load"))  # fmt: skip
        for coro, name in loops:
            self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.stop()
        if self._syncing is not None:
            await asyncio.gather(self._syncing, return_exceptions=True)
        self.storage.close()

    @property
    def is_leader(self) -> bool:
        from ..consensus.raft import StateType

        return self.raft.state == StateType.LEADER

    def status(self) -> dict[str, Any]:
        st = self.raft.status()
        return {
            "leader": self.is_leader, "term": st.term, "commit": st.commit, "applied": st.applied,
            "entries": self.applied_entries, "syncs": self.syncs,
            "sync_seconds": self.sync_seconds, **clocks(),
        }  # fmt: skip

    # -- Raft plumbing -------------------------------------------------------------------------
    #
    # One task handles Readies, one at a time, in Raft's order; the others step messages, tick and
    # propose. With ``pipelined`` off this is Node's discipline: a Ready is handled under the lock,
    # every write is fsync'd, and messages go out after the fsync. With it on (the default), three
    # standard refinements: (1) the other tasks keep stepping while the fsync runs (they may: the
    # Ready in flight is fixed, and what they add goes into the next Ready, persisted before its
    # own messages are sent); (2) only a Ready that must be durable (entries, term, vote, snapshot)
    # waits for an fsync, and a commit-index-only hard state rides the next one (etcd's MustSync);
    # (3) a leader whose term and vote are already durable sends its appends while its own write is
    # in flight (Raft thesis 10.2.1; its own acknowledgement counts only after advance()).

    async def _tick_loop(self) -> None:
        interval = self.cfg.tick_ms / 1000
        while True:
            await asyncio.sleep(interval)
            async with self._lock:
                self.raft.tick()
            self._wake.set()

    async def _receive_loop(self) -> None:
        from ..consensus.messages import decode_message

        transport = self.transport
        while True:
            _peer, payload = await transport.recv()
            msgs = [decode_message(payload[1:])]
            while (item := transport.recv_nowait()) is not None:
                msgs.append(decode_message(item[1][1:]))
            async with self._lock:
                for m in msgs:
                    self.raft.step(m)
            self._wake.set()

    async def _ready_loop(self) -> None:
        raft = self.raft
        while True:
            if not raft.has_ready():
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.pipelined:
                await self._handle_ready()
            else:
                async with self._lock:
                    await self._handle_ready()

    async def _handle_ready(self) -> None:
        from ..consensus.messages import encode_message
        from ..consensus.send_early import may_send_before_persist

        raft, s = self.raft, self.storage
        rd = raft.ready()
        hs = rd.hard_state
        early = self.pipelined and may_send_before_persist(rd, self.is_leader, self._durable)
        if early:
            self._send(rd.messages, encode_message)
        if rd.snapshot is not None:
            s.apply_snapshot(rd.snapshot)
        if rd.entries:
            s.append(rd.entries)
        if hs is not None:
            s.set_hard_state(hs)
        if s.unsynced and (rd.must_sync or not self.pipelined):
            await self._sync()
        if not early:
            self._send(rd.messages, encode_message)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        raft.advance(rd)
        if rd.soft_state is not None:
            self._room.set()
        applied = raft.log.applied
        if applied - s.snapshot().index >= self.compact_every:
            s.create_snapshot(applied, raft.conf_state(), b"")
            s.compact(applied - self.compact_every // 4)  # lagging followers still catch up from the log
            await self._sync()  # drops whole batch records: a few deletes, not one per entry

    async def _sync(self) -> None:
        s = self.storage
        t0 = time.monotonic()
        self._syncing = asyncio.ensure_future(asyncio.to_thread(s.sync))
        await asyncio.shield(self._syncing)  # a stop() waits for it before closing the log
        self.sync_seconds += time.monotonic() - t0
        self.syncs += 1
        self._durable = s.hard_state()

    def _send(self, messages: list[Any], encode: Callable[[Any], bytes]) -> None:
        for m in messages:
            self.transport.send(self._names[m.to], b"R" + encode(m))

    def _apply(self, entries: list[Any]) -> None:
        datas = [e.data for e in entries if e.data]
        self.applied_entries += len(datas)
        self._hash.update(b"".join(datas))
        last = entries[-1].index
        proposed = self._proposed
        if proposed and proposed[0][0] <= last:
            now = time.monotonic()
            while proposed and proposed[0][0] <= last:
                _, n, when = proposed.popleft()
                self.latencies.add(now - when, n)
        self._room.set()

    # -- the leader's own client ----------------------------------------------------------------

    async def _load_loop(self) -> None:
        me, pack = self.cfg.raft_id, struct.Struct(">QQ").pack
        filler = self._filler[16:]
        while True:
            log_ = self.raft.log
            room = self.window - (log_.last_index() - log_.applied)
            if not (self.loading and self.is_leader and room > 0):
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), 0.05)
                except asyncio.TimeoutError:
                    pass
                continue
            n = min(self.batch, room)
            seq = self._seq
            datas = [pack(me, i) + filler for i in range(seq, seq + n)]  # distinct entries
            self._seq += n
            async with self._lock:
                if not self.is_leader:
                    continue
                self.raft.propose_many(datas)
                self._proposed.append((self.raft.log.last_index(), n, time.monotonic()))
            self._wake.set()

    # -- commands -------------------------------------------------------------------------------

    def set_loading(self, on: bool) -> None:
        self.loading = on
        self._room.set()

    def digest(self) -> dict[str, Any]:
        return {"applied": self.raft.log.applied, "entries": self.applied_entries, "digest": self._hash.hexdigest()}


async def serve_async(node: Any) -> None:
    """Starts ``node`` and answers commands until told to exit."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    read_commands(lambda c: loop.call_soon_threadsafe(inbox.put_nowait, c))
    await node.start()
    reply({"started": True, "pid": os.getpid()})
    while True:
        cmd = await inbox.get()
        if cmd["cmd"] == "exit":
            await node.stop()
            reply({"exited": True})
            return
        reply(answer(node, cmd))


# -- PySyncObj ----------------------------------------------------------------------------------


class PySyncObjRunner:
    """A PySyncObj node (its own threads) whose leader keeps ``window`` commands in flight."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.window: int = spec.get("window", 20000)
        self.loading = False
        self.sent = self.done = self.failed = 0
        self.latencies = Latencies()
        self._room = threading.Condition()
        self._sent_at: deque[float] = deque()  # one per command in flight: PySyncObj applies them in order

    async def start(self) -> None:
        from pysyncobj import SyncObj, SyncObjConf, replicated  # type: ignore[import-untyped]

        spec = self.spec

        class Opaque(SyncObj):  # type: ignore[misc]
            def __init__(self, me: str, partners: list[str]) -> None:
                super().__init__(me, partners, SyncObjConf(**spec.get("conf", {})))
                self.entries = 0
                self.digest = b""  # chained, so that PySyncObj can pickle the state when it compacts its log

            @replicated  # type: ignore[misc]
            def put(self, data: bytes) -> None:
                self.entries += 1
                self.digest = hashlib.blake2b(self.digest + data, digest_size=16).digest()

        self.obj = Opaque(spec["self"], spec["partners"])
        threading.Thread(target=self._load, name="bench-load", daemon=True).start()

    async def stop(self) -> None:
        self.obj.destroy()

    def _done(self, _result: Any, err: Any) -> None:
        with self._room:
            self.done += 1
            when = self._sent_at.popleft() if self._sent_at else None
            if err:
                self.failed += 1
            elif when is not None:
                self.latencies.add(time.monotonic() - when)
            if self.sent - self.done < self.window:
                self._room.notify()

    def _load(self) -> None:
        obj, room, sent_at, size = self.obj, self._room, self._sent_at, self.spec.get("entry_size", 200)
        me, seq, pack = self.spec["index"], 0, struct.Struct(">QQ").pack
        filler = os.urandom(size)[16:]
        while True:
            with room:
                while not (self.loading and obj._isLeader() and self.sent - self.done < self.window):
                    room.wait(0.05)
                n = self.window - (self.sent - self.done)
                self.sent += n
            for i in range(seq, seq + n):
                # Stamped as each is put (the loop over a window takes a while); appended before
                # its put, so before its callback pops it (deque appends and pops are atomic).
                sent_at.append(time.monotonic())
                obj.put(pack(me, i) + filler, callback=self._done)
            seq += n

    def set_loading(self, on: bool) -> None:
        with self._room:
            self.loading = on
            self._room.notify_all()

    def digest(self) -> dict[str, Any]:
        obj = self.obj
        return {"applied": getattr(obj, "raftCommitIndex", None), "entries": obj.entries, "digest": obj.digest.hex()}

    def status(self) -> dict[str, Any]:
        obj = self.obj
        return {
            "leader": bool(obj._isLeader()), "has_leader": obj._getLeader() is not None, "entries": obj.entries,
            "failed": self.failed, **clocks(),
        }  # fmt: skip


# -- the real node: signed transactions end to end ------------------------------------------------


class LedgerNodeRunner:
    """A real :class:`~ledgercore.node.Node` plus an in-process client submitting batches."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from ..node.config import NodeConfig

        self.cfg = NodeConfig.from_dict(spec["config"])
        self.batch: int = spec.get("batch", 1000)
        self.clients: int = spec.get("clients", 4)
        self.leader_only = spec.get("submit", "leader") == "leader"
        self.raws = _read_raws(Path(spec["txs_file"]))
        # The pre-signed transactions are the harness's, not the node's: out of the cycle
        # collector's generations, or each full collection walks their ~2M-item list.
        gc.freeze()
        self.submitted = 0
        self.committed = 0
        self.failed = 0
        self.loading = False
        self.latencies = Latencies()
        self._tasks: list[asyncio.Task[Any]] = []
        self._next = 0
        self._counted_height = self._counted_txs = 0
        self._receipts_height = self._failed_receipts = 0

    async def start(self) -> None:
        from ..node import Node

        self.node = Node(self.cfg)
        await self.node.start()
        self._go = asyncio.Event()
        for i in range(self.clients):
            self._tasks.append(asyncio.create_task(self._client(), name=f"client{i}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.node.stop()

    async def _client(self) -> None:
        node = self.node
        while True:
            await self._go.wait()
            if self.leader_only and not node.is_leader:
                await asyncio.sleep(0.05)
                continue
            if self._next >= len(self.raws):
                self._go.clear()
                continue
            chunk = self.raws[self._next : self._next + self.batch]
            self._next += len(chunk)
            self.submitted += len(chunk)
            t0 = time.monotonic()
            try:
                out = await node.submit_many(chunk, wait=True)
            except LedgerError as exc:
                self.failed += len(chunk)
                log.warning("batch of %d failed: %r", len(chunk), exc)
                continue
            self.failed += len(out.rejected)
            ok = len(chunk) - len(out.rejected)
            self.committed += ok
            self.latencies.add(time.monotonic() - t0, ok)

    def set_loading(self, on: bool) -> None:
        if on:
            self._go.set()
        else:
            self._go.clear()

    def digest(self) -> dict[str, Any]:
        head = self.node.ledger.head
        return {"height": head.height, "digest": head.hash.hex(), "state_root": head.state_root.hex(),
                "failed_receipts": self._count_failed_receipts(head.height)}  # fmt: skip

    def _count_failed_receipts(self, height: int) -> int:
        """Transactions in this node's blocks up to ``height`` whose receipt failed: counted in
        the rate, they must be none (each block read once, as the digest is asked for)."""
        while self._receipts_height < height:
            self._receipts_height += 1
            self._failed_receipts += sum(not r.ok for r in self.node.ledger.block(self._receipts_height).receipts)
        return self._failed_receipts

    def status(self) -> dict[str, Any]:
        node = self.node
        head = node.ledger.head
        return {
            "leader": node.is_leader, "height": head.height, "committed": self.committed, "failed": self.failed,
            "submitted": self.submitted, "left": len(self.raws) - self._next, "ledger_txs": self._ledger_txs(),
            **clocks(),
        }  # fmt: skip

    def _ledger_txs(self) -> int:
        """Transactions in this node's blocks so far (counted from the headers as blocks arrive)."""
        ledger = self.node.ledger
        while self._counted_height < ledger.height:
            self._counted_height += 1
            self._counted_txs += ledger.header(self._counted_height).tx_count
        return self._counted_txs


def write_raws(path: Path, raws: list[bytes]) -> None:
    with open(path, "wb") as f:
        for r in raws:
            f.write(struct.pack(">I", len(r)))
            f.write(r)


def _read_raws(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def main(argv: list[str]) -> int:
    kind, spec = argv[0], json.loads(argv[1])
    logging.basicConfig(level=logging.WARNING, format=f"[{kind} %(process)d] %(name)s: %(message)s")
    if kind == "pysyncobj":
        asyncio.run(serve_async(PySyncObjRunner(spec)))
    elif kind == "opaque":
        asyncio.run(serve_async(OpaqueNode(spec)))
    elif kind == "ledger":
        asyncio.run(serve_async(LedgerNodeRunner(spec)))
    else:
        print(f"unknown node kind {kind!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
