"""The Raft adapter for the simulator: each node is a :class:`RaftNode` over a
:class:`MemoryStorage` that loses unsynced writes on a crash, with a tiny application (a rolling
digest of applied entries) and the Raft-specific checks: log matching, leader completeness.

Two deliberately broken nodes show that the checks bite (``bug=``):

- ``lazy-fsync`` sends a Ready's messages before fsyncing (it syncs on its next tick), as
  journal-less Raft libraries do, so a crash can lose a vote or an acknowledged entry;
- ``forget-vote`` never persists its vote, so after a restart it may vote twice in one term.
"""

from __future__ import annotations

import hashlib
import random

from ..consensus.describe import describe_message
from ..consensus.log import MemoryStorage
from ..consensus.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MsgVoteResp,
    decode_message,
    encode_message,
)
from ..consensus.raft import Config, ProposalDroppedError, RaftNode, Ready, StateType
from .core import SafetyChecker, Violation

_ZERO = bytes(16)
BUGS = (None, "lazy-fsync", "forget-vote")


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(p)
    return h.digest()


def entry_digest(e: Entry) -> bytes:
    return _digest(bytes((int(e.type),)), e.data)


class RaftReplica:
    """One simulated node: storage (survives crashes, minus unsynced writes) and a RaftNode."""

    def __init__(self, nid: int, storage: MemoryStorage, rng: random.Random, cluster: RaftCluster) -> None:
        self.id = nid
        self.storage = storage
        self.rng = rng
        self.cluster = cluster
        self.raft: RaftNode | None = None
        self.app_index = 0
        self.app_state = _ZERO
        self.waiting: dict[int, int] = {}  # write id -> 1, for writes this node accepted
        self.reads: dict[bytes, int] = {}  # read context -> read id
        self.needs_sync = False
        self.snap_every = rng.choice((8, 25, 60))
        self.keep_tail = rng.choice((0, 2, 10))
        self.start()

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def start(self) -> None:
        snap = self.storage.snapshot()
        self.app_index = snap.index
        self.app_state = snap.data[8:] if snap.data else _ZERO
        c = self.cluster
        cfg = Config(
            id=self.id,
            storage=self.storage,
            election_tick=c.election_tick,
            heartbeat_tick=c.heartbeat_tick,
            applied=snap.index,
            max_size_per_msg=c.max_size,
            max_entries_per_msg=c.max_entries,
            max_inflight_msgs=c.max_inflight,
            pre_vote=c.pre_vote,
            check_quorum=c.check_quorum,
            rng=random.Random(self.rng.getrandbits(64)),
        )
        self.raft = RaftNode(cfg)
        self.waiting = {}
        self.reads = {}
        self.needs_sync = False

    def crash(self, rng: random.Random) -> None:
        pending = self.storage.unsynced
        self.storage.crash(keep=rng.randint(0, pending) if pending else 0)
        self.raft = None

    def handle_ready(self) -> None:
        raft = self.raft
        assert raft is not None
        c = self.cluster
        while raft.has_ready():
            rd = raft.ready()
            st = self.storage
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            if rd.entries:
                c.observe_entries(self, rd.entries)
                st.append(rd.entries)
            if rd.hard_state is not None:
                hs = rd.hard_state
                if c.forget_vote:
                    hs = HardState(hs.term, 0, hs.commit)  # the bug: the vote never reaches disk
                st.set_hard_state(hs)
            if rd.must_sync:
                if c.lazy_fsync:
                    self.needs_sync = True  # the bug: messages below leave before the fsync
                else:
                    st.sync()
            for m in rd.messages:
                if type(m) is MsgVoteResp and not m.reject:
                    c.observe_vote(m.frm, m.term, m.to)
                c.outbox.append((self.id, m.to, encode_message(m)))
            if rd.soft_state is not None and rd.soft_state.state == StateType.LEADER:
                c.on_leader(self)
            self._apply(rd)
            raft.advance(rd)
            if rd.committed_entries or rd.snapshot is not None:
                self._maybe_snapshot()

    def _apply(self, rd: Ready) -> None:
        c = self.cluster
        checker = c.checker
        if rd.snapshot is not None:
            s = rd.snapshot
            self.app_index = s.index
            self.app_state = s.data[8:] if s.data else _ZERO
            checker.apply(self.id, s.index, self.app_state)
        term = self.raft.term if self.raft is not None else 0
        for e in rd.committed_entries:
            if e.index <= self.app_index:
                continue
            if e.index != self.app_index + 1:
                raise Violation("apply order", f"node {self.id} applied {e.index} after {self.app_index}")
            d = entry_digest(e)
            checker.commit(self.id, e.index, d, term)
            c.record_commit(e, term)
            self.app_state = _digest(self.app_state, e.index.to_bytes(8, "big"), d)
            self.app_index = e.index
            checker.apply(self.id, e.index, self.app_state)
            if e.type == EntryType.NORMAL and len(e.data) >= 8:
                w = int.from_bytes(e.data[:8], "big")
                if self.waiting.pop(w, None) is not None:
                    checker.ack(w, e.index)
        for r in rd.read_states:
            rid = self.reads.pop(r.context, None)
            if rid is not None:
                checker.read_served(rid, r.index)

    def _maybe_snapshot(self) -> None:
        raft = self.raft
        assert raft is not None
        st = self.storage
        if self.app_index - st.snapshot().index < self.snap_every:
            return
        data = self.app_index.to_bytes(8, "big") + self.app_state
        st.create_snapshot(self.app_index, raft.conf_state(), data)
        upto = self.app_index - self.keep_tail
        if upto >= st.first_index():
            st.compact(upto)


class RaftCluster:
    """The :class:`~ledgercore.sim.core.ProtocolAdapter` for Raft."""

    def __init__(
        self,
        rng: random.Random,
        checker: SafetyChecker,
        nodes: int = 3,
        spares: int = 1,
        bug: str | None = None,
    ) -> None:
        if bug not in BUGS:
            raise ValueError(f"unknown bug {bug!r}; known: {', '.join(b for b in BUGS if b)}")
        self.rng = rng
        self.checker = checker
        self.lazy_fsync = bug == "lazy-fsync"
        self.forget_vote = bug == "forget-vote"
        self.election_tick = 10
        self.heartbeat_tick = rng.choice((1, 2))
        self.max_size = rng.choice((64, 256, 1 << 20))
        self.max_entries = rng.choice((0, 1, 4))
        self.max_inflight = rng.choice((1, 4, 64))
        self.pre_vote = rng.random() < 0.8
        self.check_quorum = rng.random() < 0.8
        self.initial_voters = list(range(1, nodes + 1))
        self.node_ids = list(range(1, nodes + spares + 1))
        self.outbox: list[tuple[int, int, bytes]] = []
        # Raft-specific history for the checks.
        self.entry_at: dict[tuple[int, int], tuple[bytes, int]] = {}  # (index, term) -> (digest, prev term)
        self.commit_at: dict[int, tuple[int, int]] = {}  # index -> (entry term, term first seen)
        self.votes: dict[tuple[int, int], int] = {}  # (voter, term) -> candidate
        self.replicas: dict[int, RaftReplica] = {}
        cs = ConfState(tuple(self.initial_voters), ())
        for nid in self.node_ids:
            if nid in self.initial_voters:
                storage = MemoryStorage.bootstrap(cs, index=1, term=1)
            else:
                storage = MemoryStorage()  # a spare joins later through a membership change
            self.replicas[nid] = RaftReplica(nid, storage, random.Random(rng.getrandbits(64)), self)

    # ---- adapter API ----------------------------------------------------------------------------

    def alive(self, node: int) -> bool:
        return self.replicas[node].raft is not None

    def tick(self, node: int, now: int) -> None:
        r = self.replicas[node]
        if r.needs_sync:
            r.storage.sync()
            r.needs_sync = False
        assert r.raft is not None
        r.raft.tick()
        r.handle_ready()

    def deliver(self, node: int, data: bytes) -> None:
        r = self.replicas[node]
        assert r.raft is not None
        r.raft.step(decode_message(data))
        r.handle_ready()

    def take_outbox(self) -> list[tuple[int, int, bytes]]:
        out, self.outbox = self.outbox, []
        return out

    def submit(self, node: int, write: int, payload: bytes) -> bool:
        r = self.replicas[node]
        if r.raft is None:
            return False
        try:
            r.raft.propose(payload)
        except ProposalDroppedError:
            return False
        r.waiting[write] = 1
        r.handle_ready()
        return True

    def read(self, node: int, read: int) -> bool:
        r = self.replicas[node]
        if r.raft is None:
            return False
        ctx = read.to_bytes(8, "big")
        try:
            r.raft.read_index(ctx)
        except ProposalDroppedError:
            return False
        r.reads[ctx] = read
        r.handle_ready()
        return True

    def crash(self, node: int, rng: random.Random) -> None:
        self.replicas[node].crash(rng)

    def restart(self, node: int) -> None:
        r = self.replicas[node]
        if r.raft is None:
            r.start()
            r.handle_ready()

    def _leader(self) -> RaftReplica | None:
        best: RaftReplica | None = None
        for r in self.replicas.values():
            if r.raft is not None and r.raft.state == StateType.LEADER:
                if best is None or r.raft.term > best.raft.term:  # type: ignore[union-attr]
                    best = r
        return best

    def membership_change(self, rng: random.Random) -> str | None:
        lead = self._leader()
        if lead is None:
            return None
        raft = lead.raft
        assert raft is not None
        voters, learners = list(raft.voters), list(raft.learners)
        outsiders = [n for n in self.node_ids if n not in voters and n not in learners]
        options: list[tuple[ConfChangeType, int]] = []
        options += [(ConfChangeType.ADD_LEARNER, n) for n in outsiders]
        options += [(ConfChangeType.ADD_VOTER, n) for n in learners]
        options += [(ConfChangeType.REMOVE, n) for n in learners]
        if len(voters) > max(2, len(self.initial_voters) - 1):
            options += [(ConfChangeType.REMOVE, n) for n in voters]
        if not options:
            return None
        kind, node = rng.choice(options)
        try:
            raft.propose_conf_change(ConfChange(kind, node))
        except ProposalDroppedError:
            return None
        lead.handle_ready()
        return f"{kind.name.lower()} {node} via {lead.id}"

    def transfer(self, rng: random.Random) -> str | None:
        lead = self._leader()
        if lead is None or lead.raft is None:
            return None
        others = [v for v in lead.raft.voters if v != lead.id]
        if not others:
            return None
        to = rng.choice(others)
        lead.raft.transfer_leader(to)
        lead.handle_ready()
        return f"{lead.id} -> {to}"

    def describe(self, data: bytes) -> str:
        return describe_message(decode_message(data))

    def check(self) -> None:
        pass  # the Raft checks run as events are observed (observe_entries, on_leader)

    def settled(self) -> str | None:
        lead = self._leader()
        if lead is None:
            return "no leader"
        raft = lead.raft
        assert raft is not None
        log = raft.log
        if log.term_or_zero(log.committed) != raft.term:
            return f"leader {lead.id} has not committed an entry of term {raft.term}"
        if log.committed != log.last_index():
            return f"leader {lead.id} commit {log.committed} < last index {log.last_index()}"
        for nid in raft.voters + raft.learners:
            r = self.replicas[nid]
            if r.raft is None:
                return f"member {nid} is down"
            if nid in raft.voters and (r.raft.term != raft.term or r.raft.lead != lead.id):
                return f"voter {nid} at term {r.raft.term} follows {r.raft.lead}, not {lead.id}"
            if r.app_index != log.committed:
                return f"member {nid} applied {r.app_index} of {log.committed}"
        return None

    def applied_state(self) -> tuple[int, bytes]:
        lead = self._leader()
        assert lead is not None
        raft = lead.raft
        assert raft is not None
        states = {self.replicas[n].app_state for n in raft.voters + raft.learners}
        if len(states) != 1:
            raise Violation("state-machine safety", "members applied to one index disagree")
        return lead.app_index, lead.app_state

    def members(self) -> list[int]:
        lead = self._leader()
        assert lead is not None and lead.raft is not None
        return sorted(lead.raft.voters + lead.raft.learners)

    # ---- Raft-specific checks -------------------------------------------------------------------

    def observe_entries(self, r: RaftReplica, entries: list[Entry]) -> None:
        """Log matching, by induction: an (index, term) pair names one entry and one predecessor."""
        raft = r.raft
        assert raft is not None
        prev_term = raft.log.term_or_zero(entries[0].index - 1)
        for e in entries:
            key = (e.index, e.term)
            d = entry_digest(e)
            seen = self.entry_at.get(key)
            if seen is None:
                self.entry_at[key] = (d, prev_term)
            elif seen != (d, prev_term) and not (seen[0] == d and 0 in (prev_term, seen[1])):
                raise Violation(
                    "log matching",
                    f"node {r.id} holds a different entry (or predecessor) at index {e.index} "
                    f"term {e.term}",
                )
            prev_term = e.term

    def observe_vote(self, voter: int, term: int, candidate: int) -> None:
        """Vote safety: a node grants at most one vote per term, across crashes."""
        prev = self.votes.setdefault((voter, term), candidate)
        if prev != candidate:
            raise Violation(
                "vote safety", f"node {voter} voted for {prev} and {candidate} in term {term}"
            )

    def record_commit(self, e: Entry, term: int) -> None:
        if e.index not in self.commit_at:
            self.commit_at[e.index] = (e.term, term)

    def on_leader(self, r: RaftReplica) -> None:
        raft = r.raft
        assert raft is not None
        self.checker.leader(raft.term, r.id)
        # Leader completeness: every entry committed before this term is in the new leader's log.
        log = raft.log
        first = log.first_index()
        for index, (eterm, seen_term) in self.commit_at.items():
            if seen_term < raft.term and index >= first and not log.match_term(index, eterm):
                raise Violation(
                    "leader completeness",
                    f"leader {r.id} of term {raft.term} lacks committed entry {index} (term {eterm})",
                )
