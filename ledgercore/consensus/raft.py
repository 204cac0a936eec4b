"""Raft as a pure state machine, in the shape of etcd-io/raft's ``RawNode``.

The caller drives a :class:`RaftNode`: it feeds received messages to :meth:`RaftNode.step`, calls
:meth:`RaftNode.tick` at a fixed rate, and whenever :meth:`RaftNode.has_ready` it takes a
:class:`Ready` and handles it in this order:

1. persist ``snapshot``, ``entries`` and ``hard_state`` to storage, and fsync if ``must_sync``;
2. only then send ``messages`` (they may promise what step 1 made durable: a vote, an append);
3. apply ``snapshot`` then ``committed_entries`` to the application; serve ``read_states``;
4. call :meth:`RaftNode.advance` with the same Ready.

While the application cannot take committed entries (it is still installing a snapshot), it sets
:attr:`RaftNode.hold_committed`: they wait in the log, and the node goes on voting and appending,
but does not campaign.

Nothing in here reads a clock, opens a socket or file, starts a thread, or draws randomness except
from the seeded ``random.Random`` in :class:`Config` (election timeouts).

A leader counts its own log towards a quorum only for entries it has persisted (after
``advance``), so no entry is committed on the strength of a write a crash could lose.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from .log import NO_LIMIT, CompactedError, RaftLog, Storage, UnavailableError, entries_size
from .messages import (
    TERMLESS,
    ConfChange,
    ConfChangeType,
    ConfState,
    ConsensusError,
    Entry,
    EntryType,
    HardState,
    MalformedMessageError,
    Message,
    MsgApp,
    MsgAppResp,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgPreVote,
    MsgPreVoteResp,
    MsgProp,
    MsgReadIndex,
    MsgReadIndexResp,
    MsgSnap,
    MsgTimeoutNow,
    MsgTransferLeader,
    MsgVote,
    MsgVoteResp,
    Snapshot,
    decode_conf_change,
    encode_conf_change,
    new_entries,
)

NONE = 0  # "no node": no leader, no vote


class ProposalDroppedError(ConsensusError):
    """A proposal (or conf change, read or transfer) this node cannot accept now; retry later."""


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3

    def __str__(self) -> str:
        return _STATE_NAMES[self]


_STATE_NAMES = {
    StateType.FOLLOWER: "StateFollower",
    StateType.CANDIDATE: "StateCandidate",
    StateType.LEADER: "StateLeader",
    StateType.PRE_CANDIDATE: "StatePreCandidate",
}


class ProgressState(IntEnum):
    """How the leader replicates to one follower."""

    PROBE = 0  # one append per heartbeat until we learn where the follower's log matches
    REPLICATE = 1  # stream appends optimistically, bounded by the inflight window
    SNAPSHOT = 2  # a snapshot is on its way; send nothing until it lands or times out

    def __str__(self) -> str:
        return ("StateProbe", "StateReplicate", "StateSnapshot")[self]


class Inflights:
    """The appends sent to one follower and not yet acknowledged: a bounded window."""

    __slots__ = ("size", "max_bytes", "buf", "bytes")

    def __init__(self, size: int, max_bytes: int = NO_LIMIT) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.buf: deque[tuple[int, int]] = deque()  # (last index of the append, its bytes)
        self.bytes = 0

    def add(self, index: int, nbytes: int) -> None:
        self.buf.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        buf = self.buf
        while buf and buf[0][0] <= index:
            self.bytes -= buf.popleft()[1]

    def full(self) -> bool:
        return len(self.buf) >= self.size or (self.max_bytes > 0 and self.bytes >= self.max_bytes)

    def reset(self) -> None:
        self.buf.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.buf)


class Progress:
    """The leader's view of one follower. Invariant: 0 <= match < next."""

    __slots__ = (
        "match", "next", "state", "pending_snapshot", "recent_active", "paused",
        "inflights", "is_learner", "pending_commit", "snap_elapsed",
    )

    def __init__(self, next_index: int, inflights: Inflights, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.paused = False  # probes paused until a response (or heartbeat response) arrives
        self.inflights = inflights
        self.is_learner = is_learner
        self.pending_commit = 0  # highest commit index sent (< next)
        self.snap_elapsed = 0

    def _reset_state(self, state: ProgressState) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()
        self.snap_elapsed = 0

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1
        self.pending_commit = min(self.pending_commit, self.next - 1)

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1
        self.pending_commit = min(self.pending_commit, self.match)

    def become_snapshot(self, index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = index

    def sent_entries(self, count: int, nbytes: int) -> None:
        if self.state == ProgressState.REPLICATE and count > 0:
            self.next += count
            self.inflights.add(self.next - 1, nbytes)
        self.paused = True

    def can_send_entries(self, last: int) -> bool:
        return self.next <= last and (self.state == ProgressState.PROBE or not self.inflights.full())

    def can_bump_commit(self, commit: int) -> bool:
        return self.pending_commit < min(commit, self.next - 1)

    def sent_commit(self, commit: int) -> None:
        self.pending_commit = min(max(self.pending_commit, commit), self.next - 1)

    def maybe_update(self, n: int) -> bool:
        if n <= self.match:
            return False
        self.match = n
        self.next = max(self.next, n + 1)
        return True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Lowers next after a rejection; False if the rejection is stale (reordered, duplicated)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            self.pending_commit = min(self.pending_commit, self.match)
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.pending_commit = min(self.pending_commit, self.next - 1)
        self.paused = False
        return True

    def should_send(self, last: int, commit: int) -> bool:
        if self.state == ProgressState.PROBE:
            return not self.paused
        if self.state == ProgressState.REPLICATE:
            return self.can_bump_commit(commit) or (
                self.match < last and (not self.paused or self.can_send_entries(last))
            )
        return False

    def __str__(self) -> str:
        s = f"{self.state} match={self.match} next={self.next}"
        if self.is_learner:
            s += " learner"
        if self.state == ProgressState.SNAPSHOT or (
            self.paused and (self.state == ProgressState.PROBE or self.inflights.full())
        ):
            s += " paused"
        if self.pending_snapshot:
            s += f" pendingSnap={self.pending_snapshot}"
        if not self.recent_active:
            s += " inactive"
        if len(self.inflights):
            s += f" inflight={len(self.inflights)}"
            if self.inflights.full():
                s += "[full]"
        return s


@dataclass(frozen=True)
class SoftState:
    """Volatile state worth reporting: who leads and what this node is."""

    lead: int
    state: StateType


@dataclass(frozen=True)
class ReadState:
    """A read-index answer: reads for ``context`` are linearizable once applied >= ``index``."""

    index: int
    context: bytes


@dataclass
class Ready:
    """Work for the caller; see the module docstring for the order it must be handled in."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


@dataclass
class Status:
    """A snapshot of a node's state, for operators and tests."""

    id: int
    term: int
    vote: int
    commit: int
    applied: int
    lead: int
    state: StateType
    conf_state: ConfState
    lead_transferee: int
    progress: dict[int, str]


Logger = Callable[[str, str], None]  # (level, text), level in DEBUG/INFO/WARN


@dataclass
class Config:
    """How a node behaves. Ticks are the caller's unit of time."""

    id: int
    storage: Storage
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0  # how far the application had applied when restarting
    max_size_per_msg: int = 1 << 20  # batching: bytes per append (at least one entry)
    max_entries_per_msg: int = NO_LIMIT  # batching: entries per append
    max_committed_size_per_ready: int = NO_LIMIT
    max_inflight_msgs: int = 256  # pipelining: appends in flight per follower
    max_inflight_bytes: int = NO_LIMIT
    check_quorum: bool = True
    # Off, a node removed while cut off (it never learns it was) raises every voter's term again and
    # again and can keep a leader from emerging (Raft paper, section 6; sim seed 9117099).
    pre_vote: bool = True
    disable_proposal_forwarding: bool = False
    snapshot_retry_ticks: int = 0  # 0: twice the election timeout
    rng: random.Random | None = None
    logger: Logger | None = None

    def validate(self) -> None:
        if self.id == NONE:
            raise ConsensusError("node id 0 is reserved for 'none'")
        if self.heartbeat_tick <= 0:
            raise ConsensusError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConsensusError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ConsensusError("max_inflight_msgs must be > 0")


class RaftNode:
    """One Raft participant; see the module docstring for how to drive it."""

    def __init__(self, config: Config) -> None:
        config.validate()
        self.id = config.id
        self.cfg = config
        self._rng = config.rng if config.rng is not None else random.Random(config.id)
        self._logger = config.logger
        self.log = RaftLog(config.storage)
        hs, cs = config.storage.initial_state()
        self.term = hs.term
        self.vote = hs.vote
        self.lead = NONE
        self.state = StateType.FOLLOWER
        if hs.commit:
            if hs.commit > self.log.last_index():
                raise ConsensusError(
                    f"{self.id}: commit {hs.commit} beyond last index {self.log.last_index()}"
                )
            self.log.commit_to(hs.commit)
        if config.applied > self.log.applied:
            self.log.applied_to(config.applied)
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.prs: dict[int, Progress] = {}
        self._peers: tuple[int, ...] = ()  # voters and learners except self, sorted
        self._set_config(cs.voters, cs.learners)
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self._read_seq = 0
        self._read_acks: dict[int, int] = {}
        self._reads: deque[tuple[int, int, int, bytes]] = deque()  # (seq, index, requester, ctx)
        self._pending_reads: list[tuple[int, bytes]] = []  # until a commit in this term
        self._snapshot_retry = config.snapshot_retry_ticks or 2 * config.election_tick
        # The storage's membership is its snapshot's. Entries up to ``applied`` are not delivered
        # again, so the membership changes among those after the snapshot are applied here: else
        # a restarted node would count votes of members it had removed.
        after = config.storage.snapshot().index + 1
        if self.log.applied >= after:
            for e in self.log.slice(after, self.log.applied + 1):
                if e.type == EntryType.CONF_CHANGE:
                    self._apply_conf_change(e)
        self._become_follower(self.term, NONE)
        self._prev_soft = SoftState(self.lead, self.state)
        self._prev_hard = HardState(self.term, self.vote, self.log.committed)
        self._awaiting_advance = False
        # Set by the caller: Ready carries no committed entries until cleared (etcd's paused
        # applying), and the node does not campaign. Votes, appends, their acknowledgements and
        # reads go on.
        self.hold_committed = False
        self._info(
            "%d newRaft [peers: [%s], term: %d, commit: %d, applied: %d, lastindex: %d, lastterm: %d]",
            self.id, ",".join(map(str, self.voters)), self.term, self.log.committed,
            self.log.applied, self.log.last_index(), self.log.last_term(),
        )

    # ---- logging ----------------------------------------------------------------------------------

    def _info(self, fmt: str, *args: object) -> None:
        if self._logger is not None:
            self._logger("INFO", fmt % args)

    def _debug(self, fmt: str, *args: object) -> None:
        if self._logger is not None:
            self._logger("DEBUG", fmt % args)

    def _warn(self, fmt: str, *args: object) -> None:
        if self._logger is not None:
            self._logger("WARN", fmt % args)

    # ---- configuration ----------------------------------------------------------------------------

    def _set_config(self, voters: Iterable[int], learners: Iterable[int]) -> None:
        self.voters = tuple(sorted(set(voters)))
        self.learners = tuple(sorted(set(learners) - set(self.voters)))
        members = set(self.voters) | set(self.learners)
        last = self.log.last_index()
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        for nid in sorted(members):
            pr = self.prs.get(nid)
            if pr is None:
                pr = self._new_progress(last + 1, nid in self.learners)
                pr.recent_active = True  # a new member gets a grace period before check-quorum
                self.prs[nid] = pr
            else:
                pr.is_learner = nid in self.learners
        self._peers = tuple(n for n in sorted(members) if n != self.id)

    def _new_progress(self, next_index: int, is_learner: bool) -> Progress:
        return Progress(
            next_index,
            Inflights(self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes),
            is_learner,
        )

    def conf_state(self) -> ConfState:
        """The membership as of the applied index (what a snapshot taken now must record)."""
        return ConfState(self.voters, self.learners)

    @property
    def promotable(self) -> bool:
        """Only a voter of its own configuration may campaign."""
        return self.id in self.voters and self.log.unstable.snapshot is None

    def _quorum(self) -> int:
        return len(self.voters) // 2 + 1

    # ---- state transitions ------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self._rng.randrange(
            self.cfg.election_tick
        )
        self.lead_transferee = NONE
        self.votes = {}
        last = self.log.last_index()
        for nid, pr in list(self.prs.items()):
            fresh = self._new_progress(last + 1, pr.is_learner)
            if nid == self.id:
                fresh.match = self.log.persisted_last_index()
                fresh.next = max(fresh.match + 1, last + 1)
            self.prs[nid] = fresh
        self.pending_conf_index = 0
        self._read_acks = {}
        self._reads.clear()
        self._pending_reads = []

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER
        self._info("%d became follower at term %d", self.id, self.term)

    def _become_pre_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise ConsensusError("invalid transition [leader -> pre-candidate]")
        # Pre-vote changes neither term nor vote, so a partitioned node cannot inflate terms.
        self.votes = {}
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE
        self._info("%d became pre-candidate at term %d", self.id, self.term)

    def _become_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise ConsensusError("invalid transition [leader -> candidate]")
        self._reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE
        self._info("%d became candidate at term %d", self.id, self.term)

    def _become_leader(self) -> None:
        if self.state == StateType.FOLLOWER:
            raise ConsensusError("invalid transition [follower -> leader]")
        self._reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        own = self.prs.get(self.id)
        if own is not None:
            own.become_replicate()
            own.match = self.log.persisted_last_index()
            own.next = self.log.last_index() + 1
            own.recent_active = True
        self._append_entries([Entry(0, 0)])
        # A new leader may not propose a membership change until an entry of its own term is
        # applied (the fix to single-server changes in Ongaro's thesis errata).
        self.pending_conf_index = self.log.last_index()
        self._info("%d became leader at term %d", self.id, self.term)

    # ---- the public API ---------------------------------------------------------------------------

    def tick(self) -> None:
        """Advances logical time by one tick."""
        if self.state == StateType.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Starts an election now (with pre-vote if configured), as a timeout would."""
        self._hup(transfer=False)

    def propose(self, data: bytes) -> tuple[int, int] | None:
        """Proposes an opaque entry; raises :class:`ProposalDroppedError` if it cannot be taken.
        Returns the ``(term, index)`` the entry got when this node leads and appended it, None
        when it was forwarded to the leader (which places it)."""
        self._propose((Entry(0, 0, EntryType.NORMAL, bytes(data)),))
        return (self.term, self.log.last_index()) if self.state == StateType.LEADER else None

    def propose_many(self, datas: Iterable[bytes]) -> None:
        """Proposes opaque entries as one batch: on the leader, one append to the log and one round
        of appends to the followers; raises :class:`ProposalDroppedError` as :meth:`propose` does."""
        if self.state == StateType.LEADER and self.id in self.prs and self.lead_transferee == NONE:
            # The leader's fast path: build the log entries directly (what _propose would do in
            # two passes, through term-less proposal entries).
            ents = new_entries(self.term, self.log.last_index() + 1, datas)
            if ents:
                self.log.append(ents)
                self._bcast_append()
                return
            datas = ()
        self._propose(tuple(Entry(0, 0, EntryType.NORMAL, bytes(d)) for d in datas))

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Proposes a single-step membership change; it takes effect when applied."""
        self._propose((Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc)),))

    def read_index(self, context: bytes) -> None:
        """Requests a linearizable read point; the answer arrives as a ReadState in a Ready."""
        if self.state == StateType.LEADER:
            self._leader_read_index(self.id, bytes(context))
        elif self.lead != NONE:
            self._send(MsgReadIndex(frm=self.id, to=self.lead, context=bytes(context)))
        else:
            raise ProposalDroppedError(f"{self.id}: no leader to serve read index")

    def transfer_leader(self, transferee: int) -> None:
        """Asks the leader to hand leadership to ``transferee``."""
        if self.state == StateType.LEADER:
            self._leader_transfer(transferee)
        elif self.lead != NONE:
            self._send(MsgTransferLeader(frm=self.id, to=self.lead, transferee=transferee))
        else:
            raise ProposalDroppedError(f"{self.id}: no leader to transfer leadership")

    def report_unreachable(self, node: int) -> None:
        """The transport failed to reach ``node``: fall back to probing it."""
        pr = self.prs.get(node)
        if self.state == StateType.LEADER and pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, node: int, ok: bool) -> None:
        """The transport finished sending a snapshot to ``node`` (``ok``) or gave up."""
        pr = self.prs.get(node)
        if self.state != StateType.LEADER or pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.paused = True  # wait for a heartbeat response before probing again

    def status(self) -> Status:
        prs = {n: str(p) for n, p in sorted(self.prs.items())} if self.state == StateType.LEADER else {}
        return Status(
            self.id, self.term, self.vote, self.log.committed, self.log.applied, self.lead,
            self.state, self.conf_state(), self.lead_transferee, prs,
        )

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    # ---- Ready / advance --------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether :meth:`ready` has anything to hand out."""
        if self._awaiting_advance:
            return False
        log = self.log
        return bool(
            self.msgs
            or self.read_states
            or log.unstable.entries
            or log.unstable.snapshot is not None
            or (log.has_next_committed() and not self.hold_committed)
            or self._prev_soft.lead != self.lead
            or self._prev_soft.state != self.state
            or self._prev_hard.term != self.term
            or self._prev_hard.vote != self.vote
            or self._prev_hard.commit != log.committed
        )

    def ready(self) -> Ready:
        """Takes the pending work; call :meth:`advance` with it before the next ``ready``."""
        if self._awaiting_advance:
            raise ConsensusError("ready() called again before advance()")
        log = self.log
        rd = Ready()
        soft = SoftState(self.lead, self.state)
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hard = HardState(self.term, self.vote, log.committed)
        if hard != self._prev_hard:
            rd.hard_state = hard
            rd.must_sync = hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote
            self._prev_hard = hard
        rd.entries = log.unstable_entries()
        rd.snapshot = log.unstable.snapshot
        if rd.entries or rd.snapshot is not None:
            rd.must_sync = True
        if not self.hold_committed:
            rd.committed_entries = log.next_committed_entries(self.cfg.max_committed_size_per_ready)
        rd.messages = self.msgs
        self.msgs = []
        rd.read_states = self.read_states
        self.read_states = []
        self._awaiting_advance = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Records that ``rd`` was persisted, sent and applied."""
        if not self._awaiting_advance:
            raise ConsensusError("advance() without a pending ready()")
        self._awaiting_advance = False
        log = self.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.index)
            if rd.snapshot.index > log.applied:
                log.applied = rd.snapshot.index
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        conf_change = EntryType.CONF_CHANGE
        for e in rd.committed_entries:
            if e.type == conf_change and e.index > log.applied:
                log.applied_to(e.index - 1)  # everything before it is applied
                self._apply_conf_change(e)
        if rd.committed_entries and rd.committed_entries[-1].index > log.applied:
            log.applied_to(rd.committed_entries[-1].index)
        # The leader's own acknowledgement: only what storage now holds counts towards quorum.
        if self.state == StateType.LEADER and (rd.entries or rd.snapshot is not None):
            own = self.prs.get(self.id)
            if own is not None and own.maybe_update(log.persisted_last_index()):
                if self._maybe_commit():
                    self._bcast_append()

    # ---- step -------------------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handles one message received from the network."""
        if m.to != self.id:
            self._debug("%d ignored a message addressed to %d", self.id, m.to)
            return
        if isinstance(m, MsgHeartbeat) and m.term >= self.term and m.commit > self.log.last_index():
            # Refused before its term deposes anyone. The leader sends min(match, commit), so a
            # correct one never commits past what this node holds.
            raise MalformedMessageError(f"{self.id}: MsgHeartbeat from {m.frm} commits {m.commit}, "
                                        f"past the last index, {self.log.last_index()}")  # fmt: skip
        if m.term == 0:
            # A forwarded proposal, read or transfer carries no term; so may a refused pre-vote
            # from a node still at term 0. Anything else would skip every term check below.
            if not isinstance(m, TERMLESS) and not (isinstance(m, MsgPreVoteResp) and m.reject):
                raise MalformedMessageError(f"{self.id}: {type(m).__name__} from {m.frm} carries no term")
        elif m.term > self.term:
            if isinstance(m, (MsgVote, MsgPreVote)):
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_tick
                )
                if in_lease and not m.transfer:
                    # Leader lease: we heard from a leader recently, so ignore the disruptor.
                    self._info(
                        "%d [logterm: %d, index: %d, vote: %d] ignored %s from %d [logterm: %d, "
                        "index: %d] at term %d: lease is not expired (remaining ticks: %d)",
                        self.id, self.log.last_term(), self.log.last_index(), self.vote,
                        type(m).__name__, m.frm, m.log_term, m.index, self.term,
                        self.cfg.election_tick - self.election_elapsed,
                    )
                    return
            if isinstance(m, MsgPreVote) or (isinstance(m, MsgPreVoteResp) and not m.reject):
                pass  # pre-votes never change our term
            else:
                self._info(
                    "%d [term: %d] received a %s message with higher term from %d [term: %d]",
                    self.id, self.term, type(m).__name__, m.frm, m.term,
                )
                if isinstance(m, (MsgApp, MsgHeartbeat, MsgSnap)):
                    self._become_follower(m.term, m.frm)
                else:
                    self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and isinstance(m, (MsgHeartbeat, MsgApp)):
                # A stale leader: tell it our term so it steps down (it may be cut off from us
                # only in one direction, and pre-vote keeps us from raising our term past it).
                self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term))
            elif isinstance(m, (MsgVote, MsgPreVote)):
                # A stale (pre-)candidate is refused at our term, which it adopts. etcd refuses
                # pre-votes so but ignores votes; the Raft paper refuses both. Silence can strand
                # the node with the longest log below everyone's term for good: pre-vote (which
                # would tell it) may be off, and voters that have not yet applied its promotion
                # never send it a higher term.
                self._info(
                    "%d [logterm: %d, index: %d, vote: %d] rejected %s from %d [logterm: %d, "
                    "index: %d] at term %d",
                    self.id, self.log.last_term(), self.log.last_index(), self.vote,
                    type(m).__name__, m.frm, m.log_term, m.index, self.term,
                )
                refusal = MsgPreVoteResp if isinstance(m, MsgPreVote) else MsgVoteResp
                self._send(refusal(frm=self.id, to=m.frm, term=self.term, reject=True))
            else:
                self._debug(
                    "%d [term: %d] ignored a %s message with lower term from %d [term: %d]",
                    self.id, self.term, type(m).__name__, m.frm, m.term,
                )
            return

        if isinstance(m, (MsgVote, MsgPreVote)):
            self._handle_vote_request(m)
        elif self.state == StateType.LEADER:
            self._step_leader(m)
        elif self.state == StateType.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _handle_vote_request(self, m: MsgVote | MsgPreVote) -> None:
        pre = isinstance(m, MsgPreVote)
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (pre and m.term > self.term)
        )
        name = type(m).__name__
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._info(
                "%d [logterm: %d, index: %d, vote: %d] cast %s for %d [logterm: %d, index: %d] "
                "at term %d",
                self.id, self.log.last_term(), self.log.last_index(), self.vote, name, m.frm,
                m.log_term, m.index, self.term,
            )
            # The reply carries the candidate's term: a pre-candidate has not raised its own.
            if pre:
                self._send(MsgPreVoteResp(frm=self.id, to=m.frm, term=m.term))
            else:
                # The vote goes into the hard state of this Ready, which is fsync'd before the
                # reply is sent: one vote per term survives any crash.
                self.election_elapsed = 0
                self.vote = m.frm
                self._send(MsgVoteResp(frm=self.id, to=m.frm, term=m.term))
        else:
            self._info(
                "%d [logterm: %d, index: %d, vote: %d] rejected %s from %d [logterm: %d, index: %d] "
                "at term %d",
                self.id, self.log.last_term(), self.log.last_index(), self.vote, name, m.frm,
                m.log_term, m.index, self.term,
            )
            if pre:
                self._send(MsgPreVoteResp(frm=self.id, to=m.frm, term=self.term, reject=True))
            else:
                self._send(MsgVoteResp(frm=self.id, to=m.frm, term=self.term, reject=True))

    def _step_leader(self, m: Message) -> None:
        if isinstance(m, MsgProp):
            if not self._leader_append_proposal(m.entries):
                self._debug("%d dropped a proposal forwarded by %d", self.id, m.frm)
            return
        if isinstance(m, MsgReadIndex):
            self._leader_read_index(m.frm, m.context)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            self._debug("%d no progress available for %d", self.id, m.frm)
            return
        if isinstance(m, MsgAppResp):
            self._handle_append_response(m, pr)
        elif isinstance(m, MsgHeartbeatResp):
            pr.recent_active = True
            pr.paused = False
            self._maybe_send_append(m.frm)
            if m.read_seq:
                self._ack_reads(m.frm, m.read_seq)
        elif isinstance(m, MsgTransferLeader):
            self._leader_transfer(m.transferee)

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, MsgProp):
            self._debug("%d no leader at term %d; dropping proposal", self.id, self.term)
        elif isinstance(m, MsgApp):
            self._become_follower(m.term, m.frm)
            self._handle_append(m)
        elif isinstance(m, MsgHeartbeat):
            self._become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif isinstance(m, MsgSnap):
            self._become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif isinstance(m, (MsgVoteResp, MsgPreVoteResp)):
            pre = self.state == StateType.PRE_CANDIDATE
            if pre != isinstance(m, MsgPreVoteResp):
                return  # a response to an earlier round of the other kind
            granted, rejected, result = self._poll(m.frm, type(m).__name__, not m.reject)
            self._info(
                "%d has received %d %s votes and %d vote rejections",
                self.id, granted, type(m).__name__, rejected,
            )
            if result == "won":
                if pre:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif result == "lost":
                # A pre-candidate that lost stays at its term; the rejecter's term came with m.
                self._become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, MsgProp):
            if self.lead == NONE:
                self._debug("%d no leader at term %d; dropping proposal", self.id, self.term)
            elif self.cfg.disable_proposal_forwarding:
                self._debug("%d not forwarding to leader %d", self.id, self.lead)
            else:
                self._send(MsgProp(frm=self.id, to=self.lead, entries=m.entries))
        elif isinstance(m, MsgApp):
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif isinstance(m, MsgHeartbeat):
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif isinstance(m, MsgSnap):
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif isinstance(m, MsgTransferLeader):
            if self.lead == NONE:
                self._info("%d no leader at term %d; dropping leader transfer", self.id, self.term)
            else:
                self._send(MsgTransferLeader(frm=self.id, to=self.lead, transferee=m.transferee))
        elif isinstance(m, MsgTimeoutNow):
            # Only the leader hands its leadership on (or one this node has not heard from since it
            # restarted: a leader sends this only to a follower that acked its whole log).
            if self.lead not in (NONE, m.frm):
                self._info("%d [term %d] ignored MsgTimeoutNow from %d: not its leader %d",
                           self.id, self.term, m.frm, self.lead)
                return
            self._info(
                "%d [term %d] received MsgTimeoutNow from %d and starts an election to get "
                "leadership", self.id, self.term, m.frm,
            )
            self._hup(transfer=True)
        elif isinstance(m, MsgReadIndex):
            if self.lead == NONE:
                self._info("%d no leader at term %d; dropping index reading", self.id, self.term)
            else:
                self._send(MsgReadIndex(frm=self.id, to=self.lead, context=m.context))
        elif isinstance(m, MsgReadIndexResp):
            self.read_states.append(ReadState(m.index, m.context))

    # ---- elections --------------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        # A node that may not stand lets its timer run on, as its lease on the leader runs out
        # with it: else each timeout restarted the lease, and it could refuse every pre-vote.
        if self.promotable and not self.hold_committed and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._check_quorum_active():
                self._warn("%d stepped down to follower since quorum is not active", self.id)
                self._become_follower(self.term, NONE)
                return
            if self.lead_transferee != NONE:
                self._abort_leader_transfer()
        for nid in self._peers:
            pr = self.prs[nid]
            if pr.state == ProgressState.SNAPSHOT:
                pr.snap_elapsed += 1
                if pr.snap_elapsed >= self._snapshot_retry:
                    # The snapshot (or its answer) was lost: probe again from what we know.
                    pr.pending_snapshot = 0
                    pr.become_probe()
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _check_quorum_active(self) -> bool:
        active = 0
        for nid in self.voters:
            pr = self.prs[nid]
            if nid == self.id or pr.recent_active:
                active += 1
        for nid, pr in self.prs.items():
            if nid != self.id:
                pr.recent_active = False
        return active >= self._quorum()

    def _has_unapplied_conf_change(self) -> bool:
        log = self.log
        lo = max(log.applied + 1, log.first_index())
        if log.committed < lo:
            return False
        return any(e.type == EntryType.CONF_CHANGE for e in log.slice(lo, log.committed + 1))

    def _hup(self, transfer: bool) -> None:
        if self.state == StateType.LEADER:
            self._debug("%d ignoring campaign because already leader", self.id)
            return
        if not self.promotable:
            self._warn("%d is unpromotable and can not campaign", self.id)
            return
        if self.hold_committed:
            # A leader that cannot apply what it commits holds its clients, and its proposals
            # back (its blocks in flight count against it): a node that can leads instead.
            self._info("%d cannot campaign at term %d while it holds committed entries", self.id, self.term)
            return
        if self._has_unapplied_conf_change():
            # Our configuration may be stale until committed changes are applied.
            self._warn(
                "%d cannot campaign at term %d since there are still pending configuration "
                "changes to apply", self.id, self.term,
            )
            return
        self._info("%d is starting a new election at term %d", self.id, self.term)
        self._campaign(pre=self.cfg.pre_vote and not transfer, transfer=transfer)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_term = self.term + 1
        else:
            self._become_candidate()
            vote_term = self.term
        name = "MsgPreVote" if pre else "MsgVote"
        _, _, result = self._poll(self.id, name + "Resp", True)
        if result == "won":
            # A single-voter configuration wins at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        for nid in self.voters:
            if nid == self.id:
                continue
            self._info(
                "%d [logterm: %d, index: %d] sent %s request to %d at term %d",
                self.id, last_term, last_index, name, nid, self.term,
            )
            cls = MsgPreVote if pre else MsgVote
            self._send(cls(frm=self.id, to=nid, term=vote_term, log_term=last_term,
                           index=last_index, transfer=transfer))

    def _poll(self, nid: int, name: str, granted: bool) -> tuple[int, int, str]:
        if granted:
            self._info("%d received %s from %d at term %d", self.id, name, nid, self.term)
        else:
            self._info("%d received %s rejection from %d at term %d", self.id, name, nid, self.term)
        if nid in self.voters and nid not in self.votes:
            self.votes[nid] = granted
        yes = sum(1 for v in self.votes.values() if v)
        no = len(self.votes) - yes
        q = self._quorum()
        if yes >= q:
            return yes, no, "won"
        if no > len(self.voters) - q:
            return yes, no, "lost"
        return yes, no, "pending"

    # ---- replication (leader) ---------------------------------------------------------------------

    def _send(self, m: Message) -> None:
        self.msgs.append(m)

    def _propose(self, entries: tuple[Entry, ...]) -> None:
        if self.state == StateType.LEADER:
            if not self._leader_append_proposal(entries):
                raise ProposalDroppedError(f"{self.id}: leader refused the proposal")
        elif self.state == StateType.FOLLOWER:
            if self.lead == NONE:
                raise ProposalDroppedError(f"{self.id}: no leader at term {self.term}")
            if self.cfg.disable_proposal_forwarding:
                raise ProposalDroppedError(f"{self.id}: proposal forwarding is disabled")
            self._send(MsgProp(frm=self.id, to=self.lead, entries=entries))
        else:
            raise ProposalDroppedError(f"{self.id}: campaigning at term {self.term}, no leader")

    def _leader_append_proposal(self, entries: tuple[Entry, ...]) -> bool:
        if not entries:
            return False
        if self.id not in self.prs:
            self._debug("%d is not in the configuration; dropping proposal", self.id)
            return False
        if self.lead_transferee != NONE:
            self._debug(
                "%d [term %d] transfer leadership to %d is in progress; dropping proposal",
                self.id, self.term, self.lead_transferee,
            )
            return False
        out = list(entries)
        for i, e in enumerate(out):
            if e.type != EntryType.CONF_CHANGE:
                continue
            reason = self._conf_change_refusal(e.data)
            if reason:
                self._info("%d ignoring conf change: %s", self.id, reason)
                if len(out) == 1:
                    return False
                out[i] = Entry(0, 0)  # keep the batch's shape; the change is not applied
            else:
                self.pending_conf_index = self.log.last_index() + i + 1
        self._append_entries(out)
        self._bcast_append()
        return True

    def _conf_change_refusal(self, data: bytes) -> str:
        if self.pending_conf_index > self.log.applied:
            return (
                f"possible unapplied conf change at index {self.pending_conf_index} "
                f"(applied to {self.log.applied})"
            )
        try:
            cc = decode_conf_change(data)
        except ConsensusError as exc:
            return f"malformed conf change: {exc}"
        voters = set(self.voters)
        if cc.type != ConfChangeType.ADD_VOTER:
            voters.discard(cc.node_id)
        else:
            voters.add(cc.node_id)
        if not voters:
            return "removing the last voter"
        if cc.node_id == self.id and len(self.voters) == 2 and self.id not in voters:
            # The other voter learns the change committed only from this leader, which steps down
            # once it applies it: should that news be lost, and this node stop (it was removed),
            # the other waits for ever on a vote of two. Led by the other, the change is safe.
            return "the leader of two voters removing or demoting itself: transfer leadership first"
        return ""

    def _append_entries(self, entries: list[Entry]) -> None:
        li = self.log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(entries)]
        self.log.append(ents)
        # Our own progress advances when these entries are persisted (see advance()).

    def _maybe_commit(self) -> bool:
        matches = sorted((self.prs[v].match for v in self.voters if v in self.prs), reverse=True)
        q = self._quorum()
        if len(matches) < q:
            return False
        if not self.log.maybe_commit(matches[q - 1], self.term):
            return False
        self._release_pending_reads()
        return True

    def _bcast_append(self) -> None:
        for nid in self._peers:
            self._maybe_send_append(nid)

    def _maybe_send_append(self, to: int) -> bool:
        pr = self.prs[to]
        log = self.log
        last = log.last_index()
        commit = log.committed
        if not pr.should_send(last, commit):
            return False
        prev = pr.next - 1
        try:
            prev_term = log.term(prev)
        except CompactedError:
            return self._send_snapshot(to, pr)
        except UnavailableError as exc:
            raise ConsensusError(f"{self.id}: progress of {to} next={pr.next} beyond log {last}") from exc
        ents: list[Entry] = []
        if pr.can_send_entries(last):
            try:
                ents = log.entries_from(
                    pr.next, self.cfg.max_size_per_msg, self.cfg.max_entries_per_msg
                )
            except CompactedError:
                return self._send_snapshot(to, pr)
        self._send(MsgApp(frm=self.id, to=to, term=self.term, log_term=prev_term, index=prev,
                          commit=commit, entries=tuple(ents)))
        pr.sent_entries(len(ents), entries_size(ents))
        pr.sent_commit(commit)
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            self._debug("%d ignore sending snapshot to %d since it is not recently active", self.id, to)
            return False
        snap = self.log.snapshot()
        if snap.index == 0:
            raise ConsensusError(f"{self.id}: need a snapshot for {to} but storage has none")
        self._debug(
            "%d [firstindex: %d, commit: %d] sent snapshot[index: %d, term: %d] to %d [%s]",
            self.id, self.log.first_index(), self.log.committed, snap.index, snap.term, to, pr,
        )
        pr.become_snapshot(snap.index)
        self._send(MsgSnap(frm=self.id, to=to, term=self.term, snapshot=snap))
        return True

    def _bcast_heartbeat(self) -> None:
        seq = self._reads[-1][0] if self._reads else 0
        for nid in self._peers:
            pr = self.prs[nid]
            self._send(MsgHeartbeat(frm=self.id, to=nid, term=self.term,
                                    commit=min(pr.match, self.log.committed), read_seq=seq))

    def _handle_append_response(self, m: MsgAppResp, pr: Progress) -> None:
        if not m.reject and m.index > self.log.last_index():  # acknowledges entries this leader never sent
            raise MalformedMessageError(f"{self.id}: MsgAppResp from {m.frm} acknowledges index {m.index}, "
                                        f"past the last, {self.log.last_index()}")  # fmt: skip
        pr.recent_active = True
        if m.reject:
            self._debug(
                "%d received MsgAppResp(rejected, hint: (index %d, term %d)) from %d for index %d",
                self.id, m.reject_hint, m.log_term, m.frm, m.index,
            )
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of ours whose term is above the follower's at the hint.
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._debug("%d decreased progress of %d to [%s]", self.id, m.frm, pr)
                self._maybe_send_append(m.frm)
            return
        if pr.maybe_update(m.index) or (pr.match == m.index and pr.state == ProgressState.PROBE):
            if pr.state == ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state == ProgressState.SNAPSHOT and pr.match + 1 >= self.log.first_index():
                self._debug("%d recovered from needing snapshot, resumed sending replication "
                            "messages to %d [%s]", self.id, m.frm, pr)
                pr.become_probe()
                pr.become_replicate()
            elif pr.state == ProgressState.REPLICATE:
                pr.inflights.free_le(m.index)
            if self._maybe_commit():
                self._bcast_append()
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self._info("%d sent MsgTimeoutNow to %d after received MsgAppResp", self.id, m.frm)
                self._send(MsgTimeoutNow(frm=self.id, to=m.frm, term=self.term))
            # Pipelining: keep sending while the inflight window has room.
            while self._maybe_send_append(m.frm):
                pass

    # ---- replication (follower) -------------------------------------------------------------------

    def _handle_append(self, m: MsgApp) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term, index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term, index=last_new))
            return
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self._debug(
            "%d [logterm: %d, index: %d] rejected MsgApp [logterm: %d, index: %d] from %d",
            self.id, log.term_or_zero(m.index), m.index, m.log_term, m.index, m.frm,
        )
        self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term, index=m.index, reject=True,
                              reject_hint=hint_index, log_term=hint_term))

    def _handle_heartbeat(self, m: MsgHeartbeat) -> None:
        self.log.commit_to(m.commit)  # within the log: step() refused a commit past it
        self._send(MsgHeartbeatResp(frm=self.id, to=m.frm, term=self.term, read_seq=m.read_seq))

    def _handle_snapshot(self, m: MsgSnap) -> None:
        s = m.snapshot
        if self._restore(s):
            self._info("%d [commit: %d] restored snapshot [index: %d, term: %d]",
                       self.id, self.log.committed, s.index, s.term)
            self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term, index=self.log.last_index()))
        else:
            self._info("%d [commit: %d] ignored snapshot [index: %d, term: %d]",
                       self.id, self.log.committed, s.index, s.term)
            self._send(MsgAppResp(frm=self.id, to=m.frm, term=self.term, index=self.log.committed))

    def _restore(self, s: Snapshot) -> bool:
        log = self.log
        if s.index <= log.committed:
            return False
        if self.state != StateType.FOLLOWER:
            self._become_follower(self.term + 1, NONE)
            return False
        if log.match_term(s.index, s.term):
            # We already hold the snapshot's last entry: just move the commit index forward.
            log.commit_to(s.index)
            return False
        log.restore(s)
        self._set_config(s.conf_state.voters, s.conf_state.learners)
        return True

    # ---- membership -------------------------------------------------------------------------------

    def _apply_conf_change(self, e: Entry) -> None:
        try:
            cc = decode_conf_change(e.data)
        except ConsensusError as exc:
            self._warn("%d skipped malformed conf change at %d: %s", self.id, e.index, exc)
            return
        voters = set(self.voters)
        learners = set(self.learners)
        if cc.type == ConfChangeType.ADD_VOTER:
            learners.discard(cc.node_id)
            voters.add(cc.node_id)
        elif cc.type == ConfChangeType.ADD_LEARNER:
            voters.discard(cc.node_id)
            learners.add(cc.node_id)
        else:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
        if not voters:
            self._warn("%d skipped conf change at %d: it removes the last voter", self.id, e.index)
            return
        self._set_config(voters, learners)
        self._info("%d switched to configuration voters=(%s) learners=(%s)", self.id,
                   " ".join(map(str, self.voters)), " ".join(map(str, self.learners)))
        if self.state != StateType.LEADER:
            return
        if self.id not in self.voters:
            self._become_follower(self.term, NONE)
            return
        if self.lead_transferee != NONE and self.lead_transferee not in self.voters:
            self._abort_leader_transfer()
        # The quorum changed: entries may now be committed, reads confirmed (acks already in may
        # make a quorum of the new voters; a sole voter gets no more), and new members need probing.
        self._maybe_commit()  # the append broadcast below carries the new commit index
        if self._reads:
            self._ack_reads(self.id, self._read_seq)
        self._bcast_append()

    # ---- leader transfer --------------------------------------------------------------------------

    def _leader_transfer(self, transferee: int) -> None:
        pr = self.prs.get(transferee)
        if pr is None or pr.is_learner:
            self._debug("%d ignored transferring leadership to %d: not a voter", self.id, transferee)
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                self._info("%d [term %d] transfer leadership to %d is in progress, ignores request "
                           "to same node %d", self.id, self.term, transferee, transferee)
                return
            self._abort_leader_transfer()
        if transferee == self.id:
            self._debug("%d is already leader. Ignored transferring leadership to self", self.id)
            return
        self._info("%d [term %d] starts to transfer leadership to %d", self.id, self.term, transferee)
        # The transfer must finish within an election timeout, or it is aborted.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self._info("%d sends MsgTimeoutNow to %d immediately as %d already has up-to-date log",
                       self.id, transferee, transferee)
            self._send(MsgTimeoutNow(frm=self.id, to=transferee, term=self.term))
        else:
            pr.paused = False
            self._maybe_send_append(transferee)

    def _abort_leader_transfer(self) -> None:
        if self.lead_transferee != NONE:
            self._info("%d aborted leadership transfer to %d", self.id, self.lead_transferee)
        self.lead_transferee = NONE

    # ---- read index -------------------------------------------------------------------------------

    def _respond_read(self, requester: int, index: int, ctx: bytes) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self._send(MsgReadIndexResp(frm=self.id, to=requester, term=self.term, index=index,
                                        context=ctx))

    def _leader_read_index(self, requester: int, ctx: bytes) -> None:
        if self.log.term_or_zero(self.log.committed) != self.term:
            # Until an entry of this term commits we do not know the cluster's commit index (a
            # sole voter too: a leader before it, whose removal made it sole, may have committed more).
            self._pending_reads.append((requester, ctx))
            return
        if self.voters == (self.id,):
            self._respond_read(requester, self.log.committed, ctx)
            return
        self._read_seq += 1
        self._reads.append((self._read_seq, self.log.committed, requester, ctx))
        self._read_acks[self.id] = self._read_seq
        self._bcast_heartbeat()

    def _release_pending_reads(self) -> None:
        if self._pending_reads and self.log.term_or_zero(self.log.committed) == self.term:
            pending, self._pending_reads = self._pending_reads, []
            for requester, ctx in pending:
                self._leader_read_index(requester, ctx)

    def _ack_reads(self, frm: int, seq: int) -> None:
        if seq > self._read_acks.get(frm, 0):
            self._read_acks[frm] = seq
        # A read is confirmed once a quorum acknowledged a heartbeat sent after it arrived.
        acked = sorted((self._read_acks.get(v, 0) for v in self.voters), reverse=True)
        confirmed = acked[self._quorum() - 1]
        while self._reads and self._reads[0][0] <= confirmed:
            _, index, requester, ctx = self._reads.popleft()
            self._respond_read(requester, index, ctx)
