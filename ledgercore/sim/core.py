"""The protocol-independent simulator: clock and event queue, network model, fault schedule,
client workload and the protocol-independent safety checks.

A protocol plugs in through :class:`ProtocolAdapter` (see :mod:`ledgercore.sim.raft` for Raft).
Time is an integer count of *units*; a tick is :data:`TICK` units, and each node ticks at its
own phase within the tick. Everything random comes from one ``random.Random(seed)``, so a seed
fixes the whole run and a failure replays exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..consensus.messages import ConsensusError

TICK = 10  # units per tick
PROBE_BOUND = 30  # ticks, once settled, within which a read asked of each member must be served


class Violation(ConsensusError):
    """A safety or liveness property failed; ``check`` names which."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass
class FaultConfig:
    """Fault rates for one run (drawn from the seed unless given)."""

    drop: float = 0.0  # probability a message is lost
    duplicate: float = 0.0  # probability a message is delivered twice
    min_delay: int = 1  # units
    max_delay: int = 5  # units; random delays reorder messages
    reorder: float = 0.0  # probability a message is held back by up to 3 ticks
    crash: float = 0.0  # per tick, probability one live node crashes (at a random instant)
    reboot: float = 0.5  # probability a crash is a reboot: the node restarts at once
    crash_after_send: float = 0.0  # probability a node reboots right after sending messages
    max_down: int = 30  # ticks a crashed node stays down, at most
    partition: float = 0.0  # per tick, probability a partition starts
    heal: float = 0.1  # per tick, probability a partition heals
    membership: float = 0.0  # per tick, probability of a membership change
    transfer: float = 0.0  # per tick, probability of a leadership transfer
    write: float = 0.3  # per tick, probability the client submits a write
    read: float = 0.0  # per tick, probability the client asks for a read index
    retry_ticks: int = 20  # the client resubmits a write not acknowledged (a read not served) after this long
    max_outstanding: int = 8  # the client's concurrency: writes awaiting acknowledgement

    @classmethod
    def draw(cls, rng: random.Random) -> FaultConfig:
        """Fault rates for a seed: from gentle to harsh, so seeds cover both."""
        harsh = rng.random() < 0.5
        return cls(
            drop=rng.choice((0.0, 0.01, 0.05, 0.1, 0.2)) if harsh else rng.choice((0.0, 0.02)),
            duplicate=rng.choice((0.0, 0.02, 0.1)),
            min_delay=1,
            max_delay=rng.choice((2, 5, 10, 20)),
            reorder=rng.choice((0.0, 0.02, 0.1)),
            crash=rng.choice((0.0, 0.02, 0.05, 0.1)),
            reboot=rng.choice((0.2, 0.5, 0.8)),
            crash_after_send=rng.choice((0.0, 0.002, 0.01)),
            max_down=rng.choice((5, 20, 60)),
            partition=rng.choice((0.0, 0.01, 0.04)),
            heal=rng.choice((0.05, 0.2)),
            membership=rng.choice((0.0, 0.02, 0.06)),
            transfer=rng.choice((0.0, 0.01, 0.04)),
            write=rng.choice((0.2, 0.5, 1.0)),
            read=rng.choice((0.0, 0.1)),
            retry_ticks=20,
        )


class SafetyChecker:
    """Protocol-independent invariants, fed by the adapter as things happen.

    - election safety: at most one leader per term (epoch, view);
    - state-machine safety: one value per committed index, one state digest per applied index;
    - acknowledged writes: once acked at an index, that index never holds anything else;
    - linearizable reads: a read point is at or above every write acked before the read began.
    """

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}
        self.committed: dict[int, tuple[bytes, int]] = {}  # index -> (value digest, first term seen)
        self.applied: dict[int, bytes] = {}  # index -> state digest after applying it
        self.acked: dict[int, int] = {}  # write id -> index
        self.max_acked_index = 0
        self.reads: dict[int, int] = {}  # read id -> max acked index when it was issued
        self.reads_served = 0

    def leader(self, term: int, node: int) -> None:
        prev = self.leaders.setdefault(term, node)
        if prev != node:
            raise Violation("election safety", f"two leaders in term {term}: {prev} and {node}")

    def commit(self, node: int, index: int, value: bytes, term: int) -> None:
        seen = self.committed.get(index)
        if seen is None:
            self.committed[index] = (value, term)
        elif seen[0] != value:
            raise Violation(
                "state-machine safety",
                f"node {node} committed a different entry at index {index}",
            )

    def apply(self, node: int, index: int, state: bytes) -> None:
        seen = self.applied.setdefault(index, state)
        if seen != state:
            raise Violation(
                "state-machine safety",
                f"node {node} reached a different state at applied index {index}",
            )

    def ack(self, write: int, index: int) -> None:
        if write in self.acked:
            return  # a retried write applied again; the first acknowledgement stands
        if index not in self.committed:
            raise Violation("acknowledged writes", f"write {write} acked at uncommitted {index}")
        self.acked[write] = index
        self.max_acked_index = max(self.max_acked_index, index)

    def final(self, index: int, state: bytes) -> None:
        """After the heal: every member reached one state, which extends every state seen before
        (so no committed entry was lost) and covers every acknowledged write."""
        if self.applied.get(index) != state:
            raise Violation("committed entries", f"final state at {index} differs from history")
        lost = [w for w, i in self.acked.items() if i > index]
        if lost:
            raise Violation("acknowledged writes", f"writes {lost[:5]} acked beyond final index {index}")

    def read_issued(self, read: int) -> None:
        self.reads[read] = self.max_acked_index

    def read_served(self, read: int, index: int) -> None:
        floor = self.reads.pop(read, None)
        self.reads_served += floor is not None
        if floor is not None and index < floor:
            raise Violation(
                "linearizable read",
                f"read {read} served at index {index}, below write acked at {floor}",
            )


class ProtocolAdapter(Protocol):
    """What the harness needs from a consensus protocol's nodes.

    Messages are opaque bytes (the protocol's wire codec); writes are opaque payloads; an adapter
    reports leaders, commits, applied states, acknowledgements and reads to the SafetyChecker, and
    raises :class:`Violation` from ``check`` for protocol-specific invariants.
    """

    node_ids: list[int]

    def alive(self, node: int) -> bool: ...

    def tick(self, node: int, now: int) -> None: ...

    def deliver(self, node: int, data: bytes) -> None: ...

    def take_outbox(self) -> list[tuple[int, int, bytes]]:
        """Messages sent since the last call, as (from, to, bytes)."""
        ...

    def submit(self, node: int, write: int, payload: bytes) -> bool:
        """Offers a client write to ``node``; False if refused at once."""
        ...

    def read(self, node: int, read: int) -> bool: ...

    def crash(self, node: int, rng: random.Random) -> None: ...

    def restart(self, node: int) -> None: ...

    def membership_change(self, rng: random.Random) -> str | None: ...

    def transfer(self, rng: random.Random) -> str | None: ...

    def check(self) -> None: ...

    def describe(self, data: bytes) -> str:
        """A message in words, for traces."""
        ...

    def settled(self) -> str | None:
        """None once a leader leads every member and all applied its commit; else why not."""
        ...

    def applied_state(self) -> tuple[int, bytes]:
        """Once settled: the index every member applied through, and the state digest there."""
        ...

    def members(self) -> list[int]:
        """Once settled: the nodes of the configuration, each of which must serve a read."""
        ...


@dataclass
class SimResult:
    """What one seed did; ``violation`` is None when every check held."""

    seed: int
    violation: str | None = None
    ticks: int = 0
    events: int = 0
    messages: int = 0
    crashes: int = 0
    partitions: int = 0
    conf_changes: int = 0
    transfers: int = 0
    writes_acked: int = 0
    reads_served: int = 0
    commit_index: int = 0
    heal_ticks: int = 0
    trace: list[str] = field(default_factory=list)


class Network:
    """Messages in flight, with drop, duplication, delay, reordering and partitions."""

    def __init__(self, rng: random.Random, faults: FaultConfig) -> None:
        self.rng = rng
        self.faults = faults
        self.groups: dict[int, int] | None = None  # node -> partition group
        self.sent = 0

    def cut(self, a: int, b: int) -> bool:
        g = self.groups
        return g is not None and g.get(a, -1) != g.get(b, -2)

    def delays(self, frm: int, to: int) -> list[int]:
        """The delays of the copies of one message that will arrive (none if it is lost)."""
        self.sent += 1
        f = self.faults
        rng = self.rng
        if self.cut(frm, to) or (f.drop and rng.random() < f.drop):
            return []
        out = [rng.randint(f.min_delay, f.max_delay)]
        if f.reorder and rng.random() < f.reorder:
            out[0] += rng.randint(1, 3 * TICK)
        if f.duplicate and rng.random() < f.duplicate:
            out.append(rng.randint(f.min_delay, f.max_delay + TICK))
        return out


class Harness:
    """Runs one seed: a fault phase of ``steps`` ticks, then a heal phase that must settle (every
    client write acknowledged, every client read served, retried as need be), then a read asked of
    every member, which each must serve within :data:`PROBE_BOUND` ticks."""

    def __init__(
        self,
        adapter_factory: Callable[[random.Random, SafetyChecker], ProtocolAdapter],
        seed: int,
        steps: int = 200,
        heal_bound: int = 200,
        faults: FaultConfig | None = None,
        trace: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults if faults is not None else FaultConfig.draw(self.rng)
        self.checker = SafetyChecker()
        self.adapter = adapter_factory(random.Random(self.rng.getrandbits(64)), self.checker)
        self.net = Network(random.Random(self.rng.getrandbits(64)), self.faults)
        self.steps = steps
        self.heal_bound = heal_bound
        self.now = 0
        self.queue: list[tuple[int, int, int, int, int, bytes]] = []  # (time, seq, kind, a, b, data)
        self.seq = 0
        self.result = SimResult(seed)
        self.tracing = trace
        self.phase = {n: self.rng.randrange(TICK) for n in self.adapter.node_ids}
        self.down_until: dict[int, int] = {}
        self.pending_writes: dict[int, int] = {}  # write id -> tick it was last submitted
        # read id -> (tick it was last asked, the node it must be asked again, or 0 for any node)
        self.pending_reads: dict[int, tuple[int, int]] = {}
        self.probes: list[int] = []  # the reads asked of every member once settled
        self.next_write = 1
        self.next_read = 1
        self.healing = False

    # ---- events -----------------------------------------------------------------------------------

    _DELIVER = 0
    _CRASH = 1

    def _trace(self, text: str) -> None:
        if self.tracing:
            self.result.trace.append(f"t={self.now / TICK:.1f} {text}")

    def _flush(self) -> None:
        out = self.adapter.take_outbox()
        for frm, to, data in out:
            for d in self.net.delays(frm, to):
                self.seq += 1
                heapq.heappush(self.queue, (self.now + d, self.seq, self._DELIVER, frm, to, data))
        self.adapter.check()
        p = self.faults.crash_after_send
        if p and out and not self.healing and self.rng.random() < p:
            # The most revealing instant for a crash: just after a node promised something.
            self._crash(out[-1][0], reboot=True)

    def _deliver_until(self, t: int) -> None:
        q = self.queue
        adapter = self.adapter
        while q and q[0][0] <= t:
            when, _, kind, frm, to, data = heapq.heappop(q)
            self.now = when
            if kind == self._CRASH:
                self._crash(frm, reboot=to == 1)
                continue
            if self.net.cut(frm, to) or not adapter.alive(to):
                continue
            if self.tracing:
                self._trace("deliver " + adapter.describe(data))
            self.result.events += 1
            adapter.deliver(to, data)
            self._flush()

    def _tick_nodes(self, base: int) -> None:
        # Nodes tick at their own phase inside the tick; deliveries interleave with them.
        for node in sorted(self.adapter.node_ids, key=lambda n: self.phase[n]):
            t = base + self.phase[node]
            self._deliver_until(t)
            self.now = t
            if self.adapter.alive(node):
                self.result.events += 1
                self.adapter.tick(node, t)
                self._flush()

    # ---- faults and workload ------------------------------------------------------------------

    def _faults(self, tick: int) -> None:
        f = self.faults
        rng = self.rng
        ids = self.adapter.node_ids
        for node, until in sorted(self.down_until.items()):
            if tick >= until:
                del self.down_until[node]
                self._trace(f"restart {node}")
                self.adapter.restart(node)
                self._flush()
        alive = [n for n in ids if self.adapter.alive(n)]
        if f.crash and alive and rng.random() < f.crash:
            # The crash strikes at a random instant inside this tick, between any two events.
            node = rng.choice(alive)
            self.seq += 1
            reboot = 1 if rng.random() < f.reboot else 0
            heapq.heappush(
                self.queue, (tick * TICK + rng.randrange(TICK), self.seq, self._CRASH, node, reboot, b"")
            )
        if self.net.groups is None:
            if f.partition and rng.random() < f.partition:
                shuffled = list(ids)
                rng.shuffle(shuffled)
                cut = rng.randint(1, len(ids) - 1)
                self.net.groups = {n: (0 if i < cut else 1) for i, n in enumerate(shuffled)}
                self.result.partitions += 1
                self._trace(f"partition {sorted(shuffled[:cut])} / {sorted(shuffled[cut:])}")
        elif rng.random() < f.heal:
            self.net.groups = None
            self._trace("heal")
        if f.membership and rng.random() < f.membership:
            what = self.adapter.membership_change(rng)
            if what:
                self.result.conf_changes += 1
                self._trace(f"membership {what}")
                self._flush()
        if f.transfer and rng.random() < f.transfer:
            what = self.adapter.transfer(rng)
            if what:
                self.result.transfers += 1
                self._trace(f"transfer {what}")
                self._flush()

    def _crash(self, node: int, reboot: bool) -> None:
        if self.healing or not self.adapter.alive(node):
            return
        self.result.crashes += 1
        self.adapter.crash(node, self.rng)
        if reboot:
            self._trace(f"crash {node}, reboot")
            self.adapter.restart(node)
            self._flush()
        else:
            self._trace(f"crash {node}")
            self.down_until[node] = self.now // TICK + self.rng.randint(1, self.faults.max_down)

    def _workload(self, tick: int, retry_all: bool = False) -> None:
        f = self.faults
        rng = self.rng
        alive = [n for n in self.adapter.node_ids if self.adapter.alive(n)]
        if not alive:
            return
        if not retry_all and len(self.pending_writes) < f.max_outstanding and rng.random() < f.write:
            w = self.next_write
            self.next_write += 1
            self.pending_writes[w] = -f.retry_ticks  # submitted just below
        for w, last in sorted(self.pending_writes.items()):
            if tick - last >= f.retry_ticks or (retry_all and tick - last >= 5):
                self.pending_writes[w] = tick
                node = rng.choice(alive)
                payload = w.to_bytes(8, "big") + bytes(rng.randrange(48))
                self.adapter.submit(node, w, payload)
                self._flush()
        if not retry_all and f.read and rng.random() < f.read:
            r = self.next_read
            self.next_read += 1
            self.checker.read_issued(r)
            self.pending_reads[r] = (tick, 0)
            self.adapter.read(rng.choice(alive), r)
            self._flush()
        # A read may be lost (a leader change drops the reads it had not confirmed; a crash, those
        # its node awaited; a message, anything): the client asks again, as it resubmits writes.
        for r, (last, node) in sorted(self.pending_reads.items()):
            if tick - last >= f.retry_ticks or (retry_all and tick - last >= 5):
                self.pending_reads[r] = (tick, node)
                self.adapter.read(node if node else rng.choice(alive), r)
                self._flush()

    def _probe_reads(self, tick: int) -> None:
        """Once settled, a read at every member: each must be served, by that member (a read a
        follower takes must come back through it; retried elsewhere, a lost answer would pass)."""
        for node in self.adapter.members():
            r = self.next_read
            self.next_read += 1
            self.probes.append(r)
            self.checker.read_issued(r)
            self.pending_reads[r] = (tick, node)
            self._trace(f"read {r} at {node}")
            self.adapter.read(node, r)
            self._flush()

    def _collect_acks(self) -> None:
        for w in [w for w in self.pending_writes if w in self.checker.acked]:
            del self.pending_writes[w]
        for r in [r for r in self.pending_reads if r not in self.checker.reads]:
            del self.pending_reads[r]

    # ---- the run ------------------------------------------------------------------------------

    def run(self) -> SimResult:
        try:
            self._run()
        except Violation as v:
            self.result.violation = str(v)
        except Exception as exc:  # noqa: BLE001 - a node raising is a failure too, replayable like any other
            self.result.violation = f"exception: {type(exc).__name__}: {exc}"
        self.result.messages = self.net.sent
        self.result.writes_acked = len(self.checker.acked)
        # Client reads only: the probes are asked of every seed.
        self.result.reads_served = self.checker.reads_served - sum(
            1 for r in self.probes if r not in self.checker.reads
        )
        self.result.commit_index = max(self.checker.committed, default=0)
        return self.result

    def _run(self) -> None:
        for tick in range(self.steps):
            self.result.ticks = tick + 1
            self._faults(tick)
            self._workload(tick)
            self._tick_nodes(tick * TICK)
            self._collect_acks()
        # Heal: faults stop, every node comes back, the network becomes reliable.
        self._trace("faults stop")
        self.healing = True
        self.net.groups = None
        self.faults.drop = self.faults.duplicate = self.faults.reorder = 0.0
        self.faults.max_delay = min(self.faults.max_delay, 5)
        for node in sorted(self.down_until):
            self.adapter.restart(node)
            self._flush()
        self.down_until.clear()
        why: str | None = "not run"
        k = 0
        while k < self.heal_bound or (self.probes and k < self.result.heal_ticks + PROBE_BOUND):
            tick = self.steps + k
            k += 1
            self.result.ticks = tick + 1
            self._workload(tick, retry_all=True)
            self._tick_nodes(tick * TICK)
            self._collect_acks()
            if self.probes:
                if not self.pending_reads:
                    return
                continue
            why = self.adapter.settled()
            if why is None and not self.pending_writes and not self.pending_reads:
                self.result.heal_ticks = k
                self.checker.final(*self.adapter.applied_state())
                self._probe_reads(tick)
            elif why is None:
                why = (
                    f"{len(self.pending_writes)} client writes still unacknowledged"
                    if self.pending_writes
                    else f"client reads {sorted(self.pending_reads)[:5]} still unserved"
                )
        if self.probes:
            where = ", ".join(f"{r} at {n}" for r, (_, n) in sorted(self.pending_reads.items()))
            raise Violation(
                "liveness", f"reads asked of members once settled never served in {PROBE_BOUND} ticks: {where}"
            )
        raise Violation("liveness", f"not settled {self.heal_bound} ticks after faults stopped: {why}")
