"""Focused tests of the Raft state machine: the wire codec (round trips, malformed input), the
log and storage (durability model), and invariants of RaftNode driven by a small in-test network."""

from __future__ import annotations

import random
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgercore.consensus import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    ConsensusError,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    MessageDecodeError,
    ProposalDroppedError,
    RaftNode,
    Snapshot,
    StateType,
    decode_conf_change,
    decode_message,
    encode_conf_change,
    encode_message,
)
from ledgercore.consensus.log import CompactedError, RaftLog, UnavailableError, limit_entries
from ledgercore.consensus.messages import (
    MESSAGE_TYPES,
    MalformedMessageError,
    Message,
    MsgApp,
    MsgAppResp,
    MsgHeartbeat,
    MsgPreVoteResp,
    MsgProp,
    MsgSnap,
    MsgTimeoutNow,
    MsgVote,
    MsgVoteResp,
    decode_entries,
    new_entries,
)
from ledgercore.consensus.raft import Inflights, Progress, ProgressState
from ledgercore.errors import EncodeError, LedgerError, MalformedInputError

# ---- codec --------------------------------------------------------------------------------------

u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
small = st.integers(min_value=0, max_value=1 << 20)
blob = st.binary(max_size=64)


@st.composite
def entries_after(draw: st.DrawFn, index: int, log_term: int, term: int) -> tuple[Entry, ...]:
    n = draw(st.integers(0, 5))
    out = []
    t = log_term
    for i in range(n):
        t = draw(st.integers(min_value=t, max_value=max(t, term)))
        out.append(Entry(t, index + 1 + i, draw(st.sampled_from(EntryType)), draw(blob)))
    return tuple(out)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    members = sorted(draw(st.sets(st.integers(1, 50), min_size=1, max_size=6)))
    split = draw(st.integers(1, len(members)))  # a configuration has a voter
    return Snapshot(draw(small), draw(small), ConfState(tuple(members[:split]), tuple(members[split:])),
                    draw(blob))


@st.composite
def messages(draw: st.DrawFn) -> Message:
    cls = draw(st.sampled_from(sorted(MESSAGE_TYPES.values(), key=lambda c: c.TYPE)))
    frm, to = draw(ids), draw(ids)
    term = draw(small)
    if cls is MsgApp:
        index, log_term = draw(small), draw(st.integers(0, term))
        return MsgApp(frm=frm, to=to, term=term, log_term=log_term, index=index, commit=draw(u64),
                      entries=draw(entries_after(index, log_term, term)))
    if cls is MsgAppResp:
        return MsgAppResp(frm=frm, to=to, term=term, index=draw(u64), reject=draw(st.booleans()),
                          reject_hint=draw(u64), log_term=draw(u64))
    if cls.__name__ in ("MsgVote", "MsgPreVote"):
        return cls(frm=frm, to=to, term=term, log_term=draw(u64), index=draw(u64),  # type: ignore[call-arg]
                   transfer=draw(st.booleans()))
    if cls.__name__ in ("MsgVoteResp", "MsgPreVoteResp"):
        return cls(frm=frm, to=to, term=term, reject=draw(st.booleans()))  # type: ignore[call-arg]
    if cls is MsgHeartbeat:
        return MsgHeartbeat(frm=frm, to=to, term=term, commit=draw(u64), read_seq=draw(u64))
    if cls.__name__ == "MsgHeartbeatResp":
        return cls(frm=frm, to=to, term=term, read_seq=draw(u64))  # type: ignore[call-arg]
    if cls is MsgSnap:
        return MsgSnap(frm=frm, to=to, term=term, snapshot=draw(snapshots()))
    if cls is MsgProp:
        ents = draw(st.lists(st.builds(Entry, st.just(0), st.just(0), st.sampled_from(EntryType), blob),
                             max_size=4))
        return MsgProp(frm=frm, to=to, term=term, entries=tuple(ents))
    if cls.__name__ == "MsgTransferLeader":
        return cls(frm=frm, to=to, term=term, transferee=draw(u64))  # type: ignore[call-arg]
    if cls.__name__ == "MsgTimeoutNow":
        return cls(frm=frm, to=to, term=term)
    if cls.__name__ == "MsgReadIndex":
        return cls(frm=frm, to=to, term=term, context=draw(blob))  # type: ignore[call-arg]
    return cls(frm=frm, to=to, term=term, index=draw(u64), context=draw(blob))  # type: ignore[call-arg]


@given(messages())
def test_codec_round_trip(m: Message) -> None:
    wire = encode_message(m)
    assert wire[0] == 1 and wire[1] == type(m).TYPE
    assert decode_message(wire) == m
    assert encode_message(decode_message(wire)) == wire


@given(messages(), st.data())
def test_codec_rejects_every_truncation(m: Message, data: st.DataObject) -> None:
    wire = encode_message(m)
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(MessageDecodeError):
        decode_message(wire[:cut])


@given(messages(), st.binary(min_size=1, max_size=8))
def test_codec_rejects_trailing_bytes(m: Message, extra: bytes) -> None:
    with pytest.raises(MessageDecodeError, match="trailing"):
        decode_message(encode_message(m) + extra)


@given(st.binary(max_size=200))
def test_codec_garbage_is_rejected_or_reencodes_exactly(garbage: bytes) -> None:
    # Random bytes either fail with the typed error or are exactly one canonical message.
    try:
        m = decode_message(garbage)
    except MessageDecodeError:
        return
    assert encode_message(m) == garbage


def test_decode_error_is_a_malformed_input_and_a_ledger_error() -> None:
    with pytest.raises(MalformedInputError):
        decode_message(b"")
    assert issubclass(MessageDecodeError, LedgerError)
    assert issubclass(MessageDecodeError, ConsensusError)
    assert issubclass(MessageDecodeError, ValueError)


def _wire(**kw: object) -> bytes:
    return encode_message(MsgVote(frm=1, to=2, term=3, log_term=2, index=7, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: b"\x02" + w[1:], "unknown version"),
        (lambda w: w[:1] + b"\x63" + w[2:], "unknown type"),
        (lambda w: w[:2] + bytes(8) + w[10:], "node id 0"),
        # A peer naming a term near 2**64: every node adopted it and overflowed at its next
        # election, then again on every restart (the term is durable).
        (lambda w: w[:18] + struct.pack(">Q", 2**63) + w[26:], r"term 9223372036854775808 is past the highest"),
        (lambda w: w[:18] + b"\xff" * 8 + w[26:], r"term 18446744073709551615 is past the highest"),
        (lambda w: w[:-1] + b"\x02", "transfer flag"),
    ],
)
def test_decode_rejects_bad_fields(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MessageDecodeError, match=message):
        decode_message(mutate(_wire()))


def test_decode_rejects_out_of_order_entries_and_hostile_lengths() -> None:
    good = MsgApp(frm=1, to=2, term=2, log_term=1, index=4, commit=0,
                  entries=(Entry(1, 5), Entry(2, 6)))
    wire = bytearray(encode_message(good))
    # Rewrite the second entry's index (6 -> 9): no longer contiguous.
    pos = wire.rfind(struct.pack(">QQ", 2, 6))
    wire[pos + 8 : pos + 16] = struct.pack(">Q", 9)
    with pytest.raises(MessageDecodeError, match="out of order"):
        decode_message(bytes(wire))
    # An entry count far beyond the bytes present is refused before anything is allocated.
    head = encode_message(MsgApp(frm=1, to=2, term=2))[:-4]
    with pytest.raises(MessageDecodeError, match="exceeds"):
        decode_message(head + struct.pack(">I", 0xFFFFFFFF))
    # Entries of a forwarded proposal carry no term or index.
    prop = bytearray(encode_message(MsgProp(frm=1, to=2, entries=(Entry(0, 0),))))
    prop[-13] = 1  # the entry's index
    with pytest.raises(MessageDecodeError):
        decode_message(bytes(prop))
    with pytest.raises(MessageDecodeError):
        decode_message("not bytes")  # type: ignore[arg-type]


def test_encode_rejects_out_of_range_fields() -> None:
    with pytest.raises(EncodeError, match="term"):
        encode_message(MsgVoteResp(frm=1, to=2, term=-1))
    with pytest.raises(EncodeError, match="commit"):
        encode_message(MsgHeartbeat(frm=1, to=2, term=1, commit=1 << 64))
    with pytest.raises(EncodeError, match="not a consensus message"):
        encode_message(Message(frm=1, to=2))


@pytest.mark.parametrize(
    "msg, words",
    [
        (MsgHeartbeat(frm=0, to=2, term=1), "node id 0"),
        (MsgHeartbeat(frm=1, to=2, term=2**63), "term 9223372036854775808 is past the highest"),
        (MsgProp(frm=1, to=2, entries=(Entry(1, 5),)), "carry no term or index"),
        (MsgSnap(frm=1, to=2, term=1, snapshot=Snapshot(5, 1, ConfState(()))), "voters must be some"),
        (MsgSnap(frm=1, to=2, term=1, snapshot=Snapshot(5, 1, ConfState((1,), (1,)))), "none a learner"),
        (MsgSnap(frm=1, to=2, term=1, snapshot=Snapshot(5, 1, ConfState((2, 1)))), "strictly increasing"),
        (MsgSnap(frm=1, to=2, term=1, snapshot=Snapshot(5, 1, ConfState((0, 1)))), "strictly increasing"),
        (MsgApp(frm=1, to=2, term=2, index=4, log_term=1, entries=(Entry(2, 6),)), r"entries\[0\].*index 6"),
        (MsgApp(frm=1, to=2, term=2, index=4, log_term=1, entries=(Entry(2, 5), Entry(1, 6))), r"entries\[1\]"),
        (MsgApp(frm=1, to=2, term=2, index=4, log_term=1, entries=(Entry(3, 5),)), "append of term 2"),
        (MsgApp(frm=1, to=2, term=2, index=4, log_term=2, entries=(Entry(1, 5),)), "index 4 of term 2"),
    ],
)
def test_encode_refuses_what_every_receiver_would_refuse(msg: Message, words: str) -> None:
    # Regression: these encoded, and only the receivers' decoders refused them.
    with pytest.raises(EncodeError, match=words):
        encode_message(msg)


def test_the_decoders_take_bytes_and_the_conf_change_encoder_a_known_type() -> None:
    # Regression: decode_entries(4) read bytes(4), four zeros, as an empty run; a str raised TypeError.
    for bad in (4, [0, 0, 0, 0], "abc", None):
        with pytest.raises(MessageDecodeError, match="must be bytes, got"):
            decode_entries(bad)  # type: ignore[arg-type]
        with pytest.raises(MessageDecodeError, match="must be bytes, got"):
            decode_conf_change(bad)  # type: ignore[arg-type]
    for kind in (9, 0, True, "1"):
        with pytest.raises(EncodeError, match="is not a ConfChangeType"):
            encode_conf_change(ConfChange(kind, 1))  # type: ignore[arg-type]


def test_entry_data_is_bytes_like_never_a_count_of_zero_bytes() -> None:
    # Regression: entry data went through bytes(obj), so an int 5 became five zero bytes and
    # new_entries(1, 1, b"\x03\x02") two entries of zeros; the Python encoder refused the same.
    released = memoryview(b"x")
    released.release()
    for datas, words in (([5], "entries\\[0\\].data: is int, not bytes"), (b"\x03\x02", "is int, not bytes"),
                         ([b"ok", "text"], "entries\\[1\\].data: is str, not bytes"), ([released], "released")):
        with pytest.raises(EncodeError, match=words):
            new_entries(1, 1, datas)  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="is int, not bytes"):
        encode_message(MsgProp(frm=1, to=2, entries=(Entry(0, 0, EntryType.NORMAL, 4),)))  # type: ignore[arg-type]
    made = new_entries(2, 7, [b"a", bytearray(b"bc"), memoryview(b"def")])
    assert [(e.index, e.data) for e in made] == [(7, b"a"), (8, b"bc"), (9, b"def")]


def test_entries_are_made_only_of_a_four_field_named_tuple_class() -> None:
    # Regression: a struct sequence (a tuple subclass of tuple's size that keeps more items than
    # it shows) passed the check, and freeing the entries made of it crashed the process.
    import os
    import time

    from ledgercore import _native
    from ledgercore.consensus.messages import _ENTRY_TYPES

    for cls in (time.struct_time, os.stat_result, tuple):
        with pytest.raises(TypeError, match="named tuple of four fields"):
            _native.make_entries(cls, _ENTRY_TYPES, 1, 1, 0, [b"x"])


@given(st.sampled_from(ConfChangeType), ids, blob)
def test_conf_change_round_trip(kind: ConfChangeType, node: int, ctx: bytes) -> None:
    cc = ConfChange(kind, node, ctx)
    data = encode_conf_change(cc)
    assert decode_conf_change(data) == cc
    for cut in range(len(data)):
        with pytest.raises(MessageDecodeError):
            decode_conf_change(data[:cut])
    with pytest.raises(MessageDecodeError):
        decode_conf_change(data + b"\x00")


# ---- log and storage ------------------------------------------------------------------------------


def test_memory_storage_loses_only_unsynced_writes() -> None:
    s = MemoryStorage()
    s.append([Entry(1, 1), Entry(1, 2)])
    s.set_hard_state(HardState(1, 1, 0))
    s.sync()
    s.append([Entry(1, 3)])
    s.set_hard_state(HardState(2, 2, 0))
    assert s.unsynced == 2 and s.last_index() == 3
    s.crash()
    assert s.last_index() == 2 and s.hard_state() == HardState(1, 1, 0)
    # A crash may keep a prefix of the pending writes, in order.
    s.append([Entry(2, 3)])
    s.set_hard_state(HardState(2, 0, 3))
    s.crash(keep=1)
    assert s.last_index() == 3 and s.term(3) == 2 and s.hard_state() == HardState(1, 1, 0)


def test_memory_storage_snapshot_and_compaction() -> None:
    s = MemoryStorage.bootstrap(ConfState((1, 2, 3)), index=5, term=2)
    assert (s.first_index(), s.last_index(), s.term(5)) == (6, 5, 2)
    s.append([Entry(2, 6), Entry(3, 7), Entry(3, 8)])
    snap = s.create_snapshot(7, ConfState((1, 2)), b"state")
    assert (snap.index, snap.term) == (7, 3)
    s.compact(7)
    assert s.first_index() == 8 and s.term(7) == 3
    with pytest.raises(CompactedError):
        s.entries(6, 8)
    with pytest.raises(UnavailableError):
        s.term(9)
    with pytest.raises(UnavailableError):
        s.compact(8)  # no snapshot covers it
    s.sync()
    s.crash()
    assert s.snapshot().data == b"state" and s.first_index() == 8


def test_limit_entries_keeps_at_least_one() -> None:
    ents = [Entry(1, i, data=bytes(100)) for i in range(1, 5)]
    assert len(limit_entries(ents, 1)) == 1
    assert len(limit_entries(ents, 300)) == 2
    assert len(limit_entries(ents, 0, 3)) == 3


def test_raft_log_refuses_to_overwrite_committed_entries() -> None:
    s = MemoryStorage.bootstrap(ConfState((1,)), index=1, term=1)
    log = RaftLog(s)
    assert log.maybe_append(1, 1, 3, [Entry(1, 2), Entry(1, 3)]) == 3
    assert log.committed == 3
    with pytest.raises(ConsensusError, match="committed"):
        log.maybe_append(1, 1, 3, [Entry(2, 2)])
    # A conflict above the commit index truncates and replaces.
    log.maybe_append(3, 1, 3, [Entry(1, 4), Entry(1, 5)])
    log.maybe_append(3, 1, 3, [Entry(2, 4)])
    assert log.last_index() == 4 and log.term(4) == 2


def test_find_conflict_by_term_skips_a_whole_term() -> None:
    s = MemoryStorage.bootstrap(ConfState((1,)), index=1, term=1)
    s.append([Entry(1, 2), Entry(3, 3), Entry(3, 4), Entry(3, 5)])
    log = RaftLog(s)
    assert log.find_conflict_by_term(5, 2) == (2, 1)
    assert log.find_conflict_by_term(9, 3) == (5, 3)


def test_inflights_and_progress_flow_control() -> None:
    inf = Inflights(2, max_bytes=1000)
    pr = Progress(5, inf, False)
    pr.become_replicate()
    assert pr.next == 1 and pr.should_send(10, 0)
    pr.sent_entries(3, 100)
    pr.sent_entries(3, 100)
    assert pr.next == 7 and inf.full() and not pr.can_send_entries(10)
    pr.maybe_update(3)
    inf.free_le(3)
    assert not inf.full() and pr.can_send_entries(10)
    # A stale rejection (already matched) changes nothing; a real one falls back to match + 1.
    assert not pr.maybe_decr_to(2, 0)
    assert pr.maybe_decr_to(6, 4) and pr.next == 4
    pr.become_probe()
    pr.sent_entries(1, 10)
    assert pr.paused and not pr.should_send(10, 0)
    pr.become_snapshot(9)
    assert pr.state == ProgressState.SNAPSHOT and not pr.should_send(10, 0)
    pr.become_probe()
    assert pr.next == 10  # continues after the snapshot it sent


# ---- RaftNode invariants, on a small synchronous network ------------------------------------------------


class Net:
    """Nodes over MemoryStorage with a perfect network; handle() runs each Ready in order."""

    def __init__(self, n: int, **cfg: object) -> None:
        cs = ConfState(tuple(range(1, n + 1)))
        self.storages = {i: MemoryStorage.bootstrap(cs) for i in range(1, n + 1)}
        self.cfg = cfg
        self.nodes = {i: self._start(i) for i in range(1, n + 1)}
        self.inbox: list[Message] = []
        self.sent: list[tuple[int, Message, HardState]] = []  # (sender, msg, durable hard state)
        self.applied: dict[int, list[Entry]] = {i: [] for i in self.nodes}
        self.down: set[int] = set()

    def _start(self, i: int) -> RaftNode:
        s = self.storages[i]
        return RaftNode(Config(id=i, storage=s, applied=s.snapshot().index,
                               rng=random.Random(i), **self.cfg))  # type: ignore[arg-type]

    def handle(self, i: int) -> None:
        node = self.nodes[i]
        s = self.storages[i]
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                s.apply_snapshot(rd.snapshot)
            s.append(rd.entries)
            if rd.hard_state is not None:
                s.set_hard_state(rd.hard_state)
            if rd.must_sync:
                s.sync()
            for m in rd.messages:
                # What storage would hold after a crash right now.
                s2 = MemoryStorage()
                s2._durable = s._durable.copy()
                s2.crash()
                self.sent.append((i, m, s2.hard_state()))
                self.inbox.append(m)
            self.applied[i].extend(rd.committed_entries)
            node.advance(rd)

    def settle(self) -> None:
        for i in self.nodes:
            if i not in self.down:
                self.handle(i)
        while self.inbox:
            m = self.inbox.pop(0)
            if m.to in self.down or m.frm in self.down or m.to not in self.nodes:
                continue
            self.nodes[m.to].step(decode_message(encode_message(m)))
            self.handle(m.to)

    def elect(self, i: int) -> None:
        self.nodes[i].campaign()
        self.settle()
        assert self.nodes[i].state == StateType.LEADER


def test_vote_is_durable_before_the_reply_leaves() -> None:
    net = Net(3, pre_vote=False)
    net.elect(1)
    for sender, m, durable in net.sent:
        if isinstance(m, MsgVoteResp) and not m.reject:
            assert durable.term == m.term and durable.vote == m.to
        if isinstance(m, MsgAppResp) and not m.reject:
            assert net.storages[sender].last_index() >= m.index


def test_a_stale_candidate_is_refused_at_the_voters_term_and_adopts_it() -> None:
    """Without pre-vote, a candidate below the others' term learns their term from the refusals
    (the Raft paper's rule). Ignored instead, as etcd does, a node whose log is the longest could
    stay below every term for good: the simulator found such a cluster with no leader at all."""
    net = Net(3, pre_vote=False, check_quorum=False)  # no leader lease: 2 and 1 can take over
    net.elect(1)
    net.down.add(3)
    net.elect(2)
    net.elect(1)
    assert (net.nodes[1].term, net.nodes[3].term) == (4, 2)
    net.down.discard(3)
    net.sent.clear()
    net.nodes[3].campaign()
    net.settle()
    refusals = [(s, m.term) for s, m, _ in net.sent if isinstance(m, MsgVoteResp) and m.to == 3]
    assert sorted(refusals) == [(1, 4), (2, 4)] and all(m.reject for _, m, _ in net.sent if isinstance(m, MsgVoteResp))
    assert (net.nodes[3].term, net.nodes[3].state) == (4, StateType.FOLLOWER)


def _fingerprint(n: RaftNode) -> tuple[object, ...]:
    return (n.term, n.vote, n.lead, n.state, n.election_elapsed, n.log.last_index(), n.log.committed,
            {i: (p.match, p.next, p.recent_active) for i, p in n.prs.items()})  # fmt: skip


def test_messages_no_correct_peer_sends_are_refused_and_change_nothing() -> None:
    """Each took effect before: a term-0 message skipped every term check (a heartbeat made a
    follower commit an entry the cluster had overwritten, a vote response elected a second
    leader, a timeout deposed a healthy leader), and an acknowledgement past the leader's log
    let it count an entry as replicated that it alone held."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    last = leader.log.last_index()
    refused = [
        (3, MsgHeartbeat(frm=1, to=3, term=0, commit=last), "MsgHeartbeat from 1 carries no term"),
        (1, MsgVoteResp(frm=2, to=1, term=0), "MsgVoteResp from 2 carries no term"),
        (2, MsgVote(frm=3, to=2, term=0, log_term=9, index=99), "MsgVote from 3 carries no term"),
        (1, MsgTimeoutNow(frm=2, to=1, term=0), "MsgTimeoutNow from 2 carries no term"),
        (1, MsgAppResp(frm=3, to=1, term=leader.term, index=last + 1), f"acknowledges index {last + 1}, past the last, {last}"),
        (3, MsgHeartbeat(frm=1, to=3, term=leader.term, commit=last + 5), f"commits {last + 5}, past the last index, {last}"),
        # At a higher term, these deposed the leader (a durable term bump) before they were refused.
        (1, MsgHeartbeat(frm=3, to=1, term=leader.term + 1, commit=last + 5), f"commits {last + 5}, past the last index, {last}"),
        (2, MsgHeartbeat(frm=3, to=2, term=leader.term + 1, commit=last + 1), f"commits {last + 1}, past the last index, {last}"),
    ]  # fmt: skip
    for i, m, words in refused:
        before = {j: _fingerprint(n) for j, n in net.nodes.items()}
        with pytest.raises(MalformedMessageError, match=re.escape(words)):
            net.nodes[i].step(m)
        assert {j: _fingerprint(n) for j, n in net.nodes.items()} == before, m
        assert isinstance(MalformedMessageError(""), ConsensusError)
    # A refusal from a node still at term 0 is no such message.
    net.nodes[1].step(MsgPreVoteResp(frm=2, to=1, term=0, reject=True))
    # The cluster goes on.
    leader.propose(b"x")
    net.settle()
    assert all(net.applied[i][-1].data == b"x" for i in net.nodes)


def test_a_snapshot_without_voters_does_not_decode() -> None:
    snap = Snapshot(500, 2, ConfState((2,), (1,)), b"")
    wire = encode_message(MsgSnap(frm=3, to=1, term=7, snapshot=snap))  # the encoder refuses no voters
    voters = struct.pack(">IQ", 1, 2)
    assert wire.count(voters) == 1
    with pytest.raises(MessageDecodeError, match="snapshot has no voters"):
        decode_message(wire.replace(voters, struct.pack(">I", 0)))


def test_leader_commits_only_what_it_persisted() -> None:
    net = Net(1)
    net.elect(1)
    leader = net.nodes[1]
    leader.propose(b"x")
    rd = leader.ready()
    assert rd.entries and rd.entries[-1].data == b"x"
    assert leader.log.committed < rd.entries[-1].index  # not before the entry is on disk
    net.storages[1].append(rd.entries)
    net.storages[1].sync()
    leader.advance(rd)
    assert leader.log.committed == rd.entries[-1].index


def test_ready_twice_without_advance_is_an_error() -> None:
    net = Net(1)
    net.nodes[1].campaign()
    net.nodes[1].ready()
    with pytest.raises(ConsensusError):
        net.nodes[1].ready()


def test_replication_forwarding_and_restart_keep_everything() -> None:
    net = Net(3)
    net.elect(1)
    assert net.nodes[2].propose(b"via-follower") is None  # forwarded: the leader places it
    term, index = net.nodes[1].propose(b"direct")  # type: ignore[misc]
    net.settle()
    datas = [[e.data for e in net.applied[i] if e.data] for i in (1, 2, 3)]
    assert datas[0] == datas[1] == datas[2] == [b"direct", b"via-follower"]
    placed = next(e for e in net.applied[1] if e.data == b"direct")
    assert (placed.term, placed.index) == (term, index)
    # Restart node 3 from its storage: term, vote and log survive.
    before = net.nodes[3].hard_state()
    net.nodes[3] = net._start(3)
    assert net.nodes[3].hard_state().term == before.term
    assert net.nodes[3].hard_state().vote == before.vote
    assert net.nodes[3].log.last_index() == net.nodes[1].log.last_index()


def test_a_node_holding_committed_entries_acknowledges_appends_and_votes_but_does_not_stand() -> None:
    # What a node installing a snapshot needs: its application cannot take entries yet, but the
    # cluster must not wait for it (with another voter down, it is the quorum).
    net = Net(3)
    net.elect(1)
    net.down.add(2)
    held = net.nodes[3]
    held.hold_committed = True
    net.nodes[1].propose(b"while-held")
    net.settle()
    assert [e.data for e in net.applied[1] if e.data] == [b"while-held"]  # committed with 3's ack
    assert not any(e.data for e in net.applied[3]) and not held.has_ready()
    assert held.log.committed == net.nodes[1].log.committed  # it knows, and keeps them in its log
    net.down.clear()
    net.nodes[1].tick()  # a heartbeat: 2 is sent what it missed
    net.settle()
    assert net.nodes[2].log.last_index() == held.log.last_index()
    net.down.add(1)  # the leader goes: 3 still votes, but does not stand
    held.campaign()
    assert held.state == StateType.FOLLOWER
    # Its timer must run out its lease on the old leader, even drawn as short as it can be (a
    # restart at each timeout then kept it in the lease for good, refusing 2 every pre-vote).
    held.randomized_election_timeout = held.cfg.election_tick
    for _ in range(10 * held.cfg.election_tick):
        for i in (2, 3):
            net.nodes[i].tick()
        net.settle()
        if net.nodes[2].state == StateType.LEADER:
            break
    assert net.nodes[2].state == StateType.LEADER and held.state == StateType.FOLLOWER
    held.hold_committed = False
    assert held.has_ready()
    net.settle()
    assert [e.data for e in net.applied[3] if e.data] == [b"while-held"]


def test_candidate_drops_proposals_and_single_conf_change_at_a_time() -> None:
    net = Net(3)
    net.nodes[1].campaign()
    with pytest.raises(ProposalDroppedError):
        net.nodes[1].propose(b"x")
    net.settle()
    leader = net.nodes[1]
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDroppedError):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))
    net.settle()
    assert leader.learners == (4,)
    # Removing voters one at a time down to one voter works; the last voter cannot go.
    for victim in (3, 2):
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE, victim))
        net.settle()
    assert leader.voters == (1,)
    with pytest.raises(ProposalDroppedError):
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE, 1))


def test_removed_leader_steps_down_and_cannot_campaign() -> None:
    net = Net(3)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE, 1))
    net.settle()
    assert net.nodes[1].state == StateType.FOLLOWER
    assert net.nodes[2].voters == (2, 3)
    net.nodes[1].campaign()  # not a voter any more: nothing happens
    assert net.nodes[1].state == StateType.FOLLOWER


def test_a_node_restarted_past_its_snapshot_keeps_the_membership_changes_it_applied() -> None:
    # The application says it applied everything (``applied`` past the snapshot): those entries
    # are not delivered again, so their membership changes must still hold after the restart.
    net = Net(3)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE, 3))
    net.settle()
    applied = net.nodes[2].log.applied
    assert net.nodes[2].voters == (1, 2) and applied > net.storages[2].snapshot().index
    restarted = RaftNode(Config(id=2, storage=net.storages[2], applied=applied, rng=random.Random(2)))
    assert restarted.voters == (1, 2)  # not the snapshot's (1, 2, 3): node 3's vote no longer counts


def test_a_leader_made_sole_voter_serves_reads_only_once_it_committed_in_its_term() -> None:
    # The previous leader may have committed more than this one knows before its removal left this
    # node the only voter: a read point must wait for this leader's own first commit.
    storage = MemoryStorage.bootstrap(ConfState((1,)))
    node = RaftNode(Config(id=1, storage=storage, applied=storage.snapshot().index, rng=random.Random(1)))
    node.campaign()
    assert node.state == StateType.LEADER
    node.read_index(b"r")
    rd = node.ready()
    assert rd.read_states == []  # its empty entry of this term is not committed yet
    storage.append(rd.entries)
    storage.sync()
    node.advance(rd)
    rd = node.ready()
    assert [(r.index, r.context) for r in rd.read_states] == [(node.log.committed, b"r")]
    assert node.log.term_or_zero(rd.read_states[0].index) == node.term


def test_every_message_type_survives_the_wire_in_a_busy_cluster() -> None:
    net = Net(3)
    net.elect(1)
    net.nodes[2].read_index(b"r")
    net.nodes[3].transfer_leader(2)
    net.settle()
    assert net.nodes[2].state == StateType.LEADER
    kinds = {type(m).__name__ for _, m, _ in net.sent}
    assert {"MsgApp", "MsgAppResp", "MsgVote", "MsgVoteResp", "MsgPreVote", "MsgPreVoteResp",
            "MsgHeartbeat", "MsgHeartbeatResp", "MsgReadIndex", "MsgReadIndexResp",
            "MsgTransferLeader", "MsgTimeoutNow"} <= kinds


def test_config_validation() -> None:
    with pytest.raises(ConsensusError):
        RaftNode(Config(id=0, storage=MemoryStorage()))
    with pytest.raises(ConsensusError):
        RaftNode(Config(id=1, storage=MemoryStorage(), election_tick=1, heartbeat_tick=1))


def test_restart_with_commit_beyond_the_log_is_refused() -> None:
    s = MemoryStorage.bootstrap(ConfState((1,)))
    s.set_hard_state(HardState(1, 0, 5))
    with pytest.raises(ConsensusError, match="beyond last index"):
        RaftNode(Config(id=1, storage=s))
