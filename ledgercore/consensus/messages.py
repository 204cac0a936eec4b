"""Raft data types (entries, hard state, snapshots, messages) and their versioned binary codec.

Every wire message is a frozen dataclass. ``encode_message`` writes an explicit, versioned
big-endian layout (never pickle); ``decode_message`` accepts exactly that layout and rejects
anything else (truncated, trailing bytes, unknown version or type, bad flags, entries that are not
contiguous) with :class:`MessageDecodeError`.

Wire layout, version 1 (all integers unsigned big-endian; ``bytes`` is a u32 length then data)::

    header   u8 version=1 | u8 type | u64 from | u64 to | u64 term
    entry    u64 term | u64 index | u8 type | bytes data
    entries  u32 count | entry * count
    ids      u32 count | u64 * count (strictly increasing)
    snapshot u64 index | u64 term | ids voters | ids learners | bytes data

    MsgApp            u64 log_term | u64 index | u64 commit | entries
    MsgAppResp        u64 index | u8 reject | u64 reject_hint | u64 log_term
    MsgVote/PreVote   u64 log_term | u64 index | u8 transfer
    MsgVoteResp/...   u8 reject
    MsgHeartbeat      u64 commit | u64 read_seq
    MsgHeartbeatResp  u64 read_seq
    MsgSnap           snapshot
    MsgProp           entries
    MsgTransferLeader u64 transferee
    MsgTimeoutNow     (nothing)
    MsgReadIndex      bytes context
    MsgReadIndexResp  u64 index | bytes context
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, NamedTuple

from .. import _native
from ..errors import DecodeError, EncodeError, LedgerError
from ..native_args import bytes_of

WIRE_VERSION = 1
#: Upper bound on a single bytes field and on a decoded message (defends against hostile lengths).
MAX_FIELD_BYTES = 1 << 30
#: The highest term a message may carry. Terms grow by one per election, so no cluster gets near
#: it; a peer naming a term near 2**64 would have every node adopt it and overflow the u64 at
#: its next election, on every restart too (the term is durable).
MAX_TERM = (1 << 63) - 1


class ConsensusError(LedgerError):
    """Base class of the errors raised by the consensus layer."""


class MalformedMessageError(ConsensusError):
    """A message no correct peer sends (no term where one is due, an index past the log):
    ``RaftNode.step`` refuses it before it changes anything."""


class MessageDecodeError(DecodeError, ConsensusError):
    """Bytes that are not a version-1 consensus message."""


class EntryType(IntEnum):
    """What an entry's data holds: opaque application bytes or an encoded :class:`ConfChange`."""

    NORMAL = 0
    CONF_CHANGE = 1


class Entry(NamedTuple):
    """One log entry; ``data`` is opaque to Raft (a whole block, for the node).

    Immutable like the other types here, but a named tuple rather than a frozen dataclass: every
    replicated entry is built once on the leader and once per follower, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) cost twice as much as the rest of decoding."""

    term: int
    index: int  # type: ignore[assignment]  # shadows tuple.index, which entries never use
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """A membership configuration: voters and learners (disjoint, sorted)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application state up to ``index`` (whose entry had ``term``) plus the membership then."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    data: bytes = b""


class ConfChangeType(IntEnum):
    """Single-step membership changes; each changes the voter set by at most one node."""

    ADD_VOTER = 1  # add a voter, or promote a learner
    ADD_LEARNER = 2  # add a learner, or demote a voter
    REMOVE = 3  # remove a voter or learner


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change carried in a ``CONF_CHANGE`` entry."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""


# ---- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Fields every message carries. ``term`` 0 marks a proposal that carries no term."""

    TYPE: ClassVar[int] = 0
    frm: int
    to: int
    term: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgApp(Message):
    """Leader -> follower: entries after (log_term, index), plus the leader's commit index."""

    TYPE: ClassVar[int] = 1
    log_term: int = 0
    index: int = 0
    commit: int = 0
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgAppResp(Message):
    """Follower -> leader: accepted through ``index``, or rejected with a (hint, log_term) probe."""

    TYPE: ClassVar[int] = 2
    index: int = 0
    reject: bool = False
    reject_hint: int = 0
    log_term: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgVote(Message):
    """Candidate -> voter; ``transfer`` marks a leader-transfer election that ignores leases."""

    TYPE: ClassVar[int] = 3
    log_term: int = 0
    index: int = 0
    transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgVoteResp(Message):
    """Voter -> candidate."""

    TYPE: ClassVar[int] = 4
    reject: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgPreVote(Message):
    """Pre-candidate -> voter, at the term it would campaign in; changes no one's term or vote."""

    TYPE: ClassVar[int] = 5
    log_term: int = 0
    index: int = 0
    transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgPreVoteResp(Message):
    """Voter -> pre-candidate."""

    TYPE: ClassVar[int] = 6
    reject: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgHeartbeat(Message):
    """Leader -> follower; ``read_seq`` numbers the read-index round it confirms."""

    TYPE: ClassVar[int] = 7
    commit: int = 0
    read_seq: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgHeartbeatResp(Message):
    """Follower -> leader, echoing ``read_seq``."""

    TYPE: ClassVar[int] = 8
    read_seq: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgSnap(Message):
    """Leader -> lagging follower: install this snapshot."""

    TYPE: ClassVar[int] = 9
    snapshot: Snapshot = field(default_factory=Snapshot)


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgProp(Message):
    """A proposal forwarded from a follower to the leader (entries without term or index)."""

    TYPE: ClassVar[int] = 10
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgTransferLeader(Message):
    """A leadership-transfer request forwarded to the leader."""

    TYPE: ClassVar[int] = 11
    transferee: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgTimeoutNow(Message):
    """Leader -> transferee: campaign now, without pre-vote and ignoring leases."""

    TYPE: ClassVar[int] = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgReadIndex(Message):
    """A read-index request forwarded to the leader; ``context`` identifies it to the caller."""

    TYPE: ClassVar[int] = 13
    context: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class MsgReadIndexResp(Message):
    """Leader -> requester: reads are linearizable once applied through ``index``."""

    TYPE: ClassVar[int] = 14
    index: int = 0
    context: bytes = b""


TERMLESS: tuple[type[Message], ...] = (MsgProp, MsgReadIndex, MsgTransferLeader)
"""The messages a follower forwards to its leader: they carry term 0, every other one its sender's term."""

MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        MsgApp,
        MsgAppResp,
        MsgVote,
        MsgVoteResp,
        MsgPreVote,
        MsgPreVoteResp,
        MsgHeartbeat,
        MsgHeartbeatResp,
        MsgSnap,
        MsgProp,
        MsgTransferLeader,
        MsgTimeoutNow,
        MsgReadIndex,
        MsgReadIndexResp,
    )
}

# ---- codec ----------------------------------------------------------------------------------------

_HEADER = struct.Struct(">BBQQQ")
_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_Q2 = struct.Struct(">QQ")
_Q3 = struct.Struct(">QQQ")
_APP_RESP = struct.Struct(">QBQQ")
_VOTE = struct.Struct(">QQB")
_MAX_U64 = (1 << 64) - 1
_ENTRY_TYPES = (EntryType.NORMAL, EntryType.CONF_CHANGE)  # indexed by the wire value


def _check_u64(path: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_U64:
        raise EncodeError(f"{path}: {value!r} is not a u64")


def _put_bytes(out: list[bytes], path: str, data: bytes) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodeError(f"{path}: {type(data).__name__} is not bytes")
    if len(data) > MAX_FIELD_BYTES:
        raise EncodeError(f"{path}: {len(data)} bytes exceeds {MAX_FIELD_BYTES}")
    out.append(_U32.pack(len(data)))
    out.append(bytes(data))


def _put_entries(out: list[bytes], entries: Sequence[Entry], follows: tuple[int, int, int] | None = None) -> None:
    # The hot path of replication: the whole run in one native call (EncodeError names the entry).
    # With ``follows`` = (index, log_term, term), an append's order is checked as receivers check it.
    out.append(_native.encode_entries(entries, follows))


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """The byte form of a run of entries (``entries`` in the layout above), as MsgApp carries it;
    the durable log stores each appended batch as one such run."""
    return _native.encode_entries(entries)


def decode_entries(data: bytes) -> list[Entry]:
    """The entries of a run :func:`encode_entries` wrote; raises :class:`MessageDecodeError`."""
    r = _Reader.of(data, "entries")
    ents = r.entries()
    if r.pos != len(r.buf):
        raise MessageDecodeError(f"entries: {len(r.buf) - r.pos} trailing bytes")
    return list(ents)


def new_entries(term: int, first_index: int, datas: Iterable[bytes]) -> list[Entry]:
    """Normal entries of ``term`` holding ``datas``, indexed from ``first_index`` (a leader's new
    entries), built in one native call; each data is ``bytes``, or a bytearray or memoryview (copied);
    anything else is :class:`EncodeError`."""
    return _native.make_entries(Entry, _ENTRY_TYPES, term, first_index, EntryType.NORMAL, datas)


def _put_ids(out: list[bytes], path: str, ids: tuple[int, ...]) -> None:
    out.append(_U32.pack(len(ids)))
    for i, v in enumerate(ids):
        _check_u64(f"{path}[{i}]", v)
        if v == 0 or (i and v <= ids[i - 1]):
            raise EncodeError(f"{path}: ids must be nonzero and strictly increasing, got {ids!r:.100}")
        out.append(_U64.pack(v))


def encode_snapshot(snap: Snapshot) -> bytes:
    """The wire form of a snapshot (also used inside ``MsgSnap``)."""
    out: list[bytes] = []
    _put_snapshot(out, snap)
    return b"".join(out)


def _put_snapshot(out: list[bytes], snap: Snapshot) -> None:
    _check_u64("snapshot.index", snap.index)
    _check_u64("snapshot.term", snap.term)
    out.append(_Q2.pack(snap.index, snap.term))
    voters, learners = snap.conf_state.voters, snap.conf_state.learners
    if not voters or set(voters) & set(learners):
        raise EncodeError(f"snapshot: voters must be some and none a learner, got {voters!r:.60} and {learners!r:.60}")
    _put_ids(out, "snapshot.voters", snap.conf_state.voters)
    _put_ids(out, "snapshot.learners", snap.conf_state.learners)
    _put_bytes(out, "snapshot.data", snap.data)


def encode_message(msg: Message) -> bytes:
    """The version-1 wire bytes of ``msg``; raises :class:`~ledgercore.errors.EncodeError`."""
    cls = type(msg)
    if MESSAGE_TYPES.get(cls.TYPE) is not cls:
        raise EncodeError(f"message: {cls.__name__} is not a consensus message type")
    if msg.frm == 0 or msg.to == 0:
        raise EncodeError(f"{cls.__name__}: node id 0 is reserved for 'none' (frm={msg.frm}, to={msg.to})")
    if isinstance(msg.term, int) and msg.term > MAX_TERM:
        raise EncodeError(f"{cls.__name__}: term {msg.term} is past the highest a cluster reaches (2**63 - 1)")
    if isinstance(msg, MsgProp) and any(e.term or e.index for e in msg.entries):
        raise EncodeError("MsgProp: proposed entries carry no term or index (the leader assigns them)")
    try:
        return _encode(msg)
    except struct.error as exc:
        # struct refuses negative or oversized integers; find the field to name it.
        for name in ("frm", "to", "term", "log_term", "index", "commit", "reject_hint",
                     "read_seq", "transferee"):
            if hasattr(msg, name):
                _check_u64(name, getattr(msg, name))
        raise EncodeError(f"{cls.__name__}: {exc}") from exc


def _encode(msg: Message) -> bytes:
    out = [_HEADER.pack(WIRE_VERSION, msg.TYPE, msg.frm, msg.to, msg.term)]
    if isinstance(msg, MsgApp):
        out.append(_Q3.pack(msg.log_term, msg.index, msg.commit))
        _put_entries(out, msg.entries, (msg.index, msg.log_term, msg.term))
    elif isinstance(msg, MsgAppResp):
        out.append(_APP_RESP.pack(msg.index, 1 if msg.reject else 0, msg.reject_hint, msg.log_term))
    elif isinstance(msg, (MsgVote, MsgPreVote)):
        out.append(_VOTE.pack(msg.log_term, msg.index, 1 if msg.transfer else 0))
    elif isinstance(msg, (MsgVoteResp, MsgPreVoteResp)):
        out.append(_U8.pack(1 if msg.reject else 0))
    elif isinstance(msg, MsgHeartbeat):
        out.append(_Q2.pack(msg.commit, msg.read_seq))
    elif isinstance(msg, MsgHeartbeatResp):
        out.append(_U64.pack(msg.read_seq))
    elif isinstance(msg, MsgSnap):
        _put_snapshot(out, msg.snapshot)
    elif isinstance(msg, MsgProp):
        _put_entries(out, msg.entries)
    elif isinstance(msg, MsgTransferLeader):
        out.append(_U64.pack(msg.transferee))
    elif isinstance(msg, MsgReadIndex):
        _put_bytes(out, "context", msg.context)
    elif isinstance(msg, MsgReadIndexResp):
        out.append(_U64.pack(msg.index))
        _put_bytes(out, "context", msg.context)
    return b"".join(out)


class _Reader:
    """A bounds-checked cursor over the bytes being decoded."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    @classmethod
    def of(cls, data: object, what: str) -> _Reader:
        """A reader over ``data``, which must be bytes-like (``bytes(4)`` would read four zeros)."""
        return cls(bytes_of(data, what, MessageDecodeError))

    def fail(self, what: str) -> MessageDecodeError:
        return MessageDecodeError(f"consensus message: {what} at byte {self.pos}")

    def unpack(self, st: struct.Struct, what: str) -> tuple[int, ...]:
        end = self.pos + st.size
        if end > len(self.buf):
            raise self.fail(f"truncated {what}")
        values = st.unpack_from(self.buf, self.pos)
        self.pos = end
        return values

    def flag(self, value: int, what: str) -> bool:
        if value > 1:
            raise self.fail(f"{what} flag is {value}, not 0 or 1")
        return value == 1

    def raw(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise self.fail(f"truncated {what} ({n} bytes announced)")
        data = self.buf[self.pos : end]
        self.pos = end
        return data

    def blob(self, what: str) -> bytes:
        (n,) = self.unpack(_U32, f"{what} length")
        return self.raw(n, what)

    def entries(self, follows: tuple[int, int, int] | None = None) -> tuple[Entry, ...]:
        """The run of entries here, decoded in one native call; with ``follows`` = (index,
        log_term, term) they must be an append's: contiguous after ``index``, terms never
        decreasing, from ``log_term`` up to ``term``."""
        try:
            ents, self.pos = _native.decode_entries(self.buf, self.pos, Entry, _ENTRY_TYPES, follows)
        except DecodeError as exc:
            raise MessageDecodeError(f"consensus message: {exc}") from None
        return tuple(ents)

    def ids(self, what: str) -> tuple[int, ...]:
        (count,) = self.unpack(_U32, f"{what} count")
        if count * 8 > len(self.buf) - self.pos:
            raise self.fail(f"{what} count {count} exceeds the bytes left")
        out = [self.unpack(_U64, what)[0] for _ in range(count)]
        if any(v == 0 for v in out) or any(a >= b for a, b in zip(out, out[1:])):
            raise self.fail(f"{what} are not nonzero and strictly increasing")
        return tuple(out)

    def snapshot(self) -> Snapshot:
        index, term = self.unpack(_Q2, "snapshot")
        voters = self.ids("snapshot voters")
        learners = self.ids("snapshot learners")
        if set(voters) & set(learners):
            raise self.fail("snapshot voters and learners overlap")
        if not voters:  # no node ever holds a configuration without one
            raise self.fail("snapshot has no voters")
        data = self.blob("snapshot data")
        return Snapshot(index, term, ConfState(voters, learners), data)


def decode_message(data: bytes) -> Message:
    """The message ``data`` encodes; raises :class:`MessageDecodeError` for anything else."""
    r = _Reader.of(data, "consensus message")
    version, mtype, frm, to, term = r.unpack(_HEADER, "header")
    if version != WIRE_VERSION:
        raise MessageDecodeError(f"consensus message: unknown version {version}")
    cls = MESSAGE_TYPES.get(mtype)
    if cls is None:
        raise MessageDecodeError(f"consensus message: unknown type {mtype}")
    if frm == 0 or to == 0:
        raise MessageDecodeError("consensus message: node id 0 is reserved for 'none'")
    if term > MAX_TERM:
        raise MessageDecodeError(f"consensus message: term {term} is past the highest a cluster reaches (2**63 - 1)")
    msg: Message
    if cls is MsgApp:
        log_term, index, commit = r.unpack(_Q3, "MsgApp")
        entries = r.entries(follows=(index, log_term, term))
        msg = MsgApp(
            frm=frm, to=to, term=term, log_term=log_term, index=index, commit=commit,
            entries=entries,
        )
    elif cls is MsgAppResp:
        index, reject, hint, log_term = r.unpack(_APP_RESP, "MsgAppResp")
        msg = MsgAppResp(
            frm=frm, to=to, term=term, index=index, reject=r.flag(reject, "reject"),
            reject_hint=hint, log_term=log_term,
        )
    elif cls is MsgVote or cls is MsgPreVote:
        log_term, index, transfer = r.unpack(_VOTE, cls.__name__)
        msg = cls(
            frm=frm, to=to, term=term, log_term=log_term, index=index,
            transfer=r.flag(transfer, "transfer"),
        )
    elif cls is MsgVoteResp or cls is MsgPreVoteResp:
        (reject,) = r.unpack(_U8, cls.__name__)
        msg = cls(frm=frm, to=to, term=term, reject=r.flag(reject, "reject"))
    elif cls is MsgHeartbeat:
        commit, seq = r.unpack(_Q2, "MsgHeartbeat")
        msg = MsgHeartbeat(frm=frm, to=to, term=term, commit=commit, read_seq=seq)
    elif cls is MsgHeartbeatResp:
        (seq,) = r.unpack(_U64, "MsgHeartbeatResp")
        msg = MsgHeartbeatResp(frm=frm, to=to, term=term, read_seq=seq)
    elif cls is MsgSnap:
        msg = MsgSnap(frm=frm, to=to, term=term, snapshot=r.snapshot())
    elif cls is MsgProp:
        entries = r.entries()
        if any(e.term or e.index for e in entries):
            raise MessageDecodeError("consensus message: proposed entries carry a term or index")
        msg = MsgProp(frm=frm, to=to, term=term, entries=entries)
    elif cls is MsgTransferLeader:
        (transferee,) = r.unpack(_U64, "MsgTransferLeader")
        msg = MsgTransferLeader(frm=frm, to=to, term=term, transferee=transferee)
    elif cls is MsgTimeoutNow:
        msg = MsgTimeoutNow(frm=frm, to=to, term=term)
    elif cls is MsgReadIndex:
        msg = MsgReadIndex(frm=frm, to=to, term=term, context=r.blob("context"))
    else:  # MsgReadIndexResp
        (index,) = r.unpack(_U64, "MsgReadIndexResp")
        msg = MsgReadIndexResp(frm=frm, to=to, term=term, index=index, context=r.blob("context"))
    if r.pos != len(r.buf):
        raise MessageDecodeError(
            f"consensus message: {len(r.buf) - r.pos} trailing bytes after {cls.__name__}"
        )
    return msg


# ---- conf change codec (the data of a CONF_CHANGE entry) -----------------------------------------

_CONF = struct.Struct(">BBQ")
_CONF_TYPES = frozenset(ConfChangeType)


def encode_conf_change(cc: ConfChange) -> bytes:
    """The entry data for ``cc``: u8 version | u8 type | u64 node_id | bytes context."""
    _check_u64("node_id", cc.node_id)
    if cc.node_id == 0:
        raise EncodeError("node_id: 0 is reserved for 'none'")
    if isinstance(cc.type, bool) or cc.type not in _CONF_TYPES:
        raise EncodeError(f"type: {cc.type!r} is not a ConfChangeType")
    out = [_CONF.pack(WIRE_VERSION, int(cc.type), cc.node_id)]
    _put_bytes(out, "context", cc.context)
    return b"".join(out)


def decode_conf_change(data: bytes) -> ConfChange:
    """The change a ``CONF_CHANGE`` entry carries; raises :class:`MessageDecodeError`."""
    r = _Reader.of(data, "conf change")
    version, ctype, node_id = r.unpack(_CONF, "conf change")
    if version != WIRE_VERSION:
        raise MessageDecodeError(f"conf change: unknown version {version}")
    if ctype not in (1, 2, 3):
        raise MessageDecodeError(f"conf change: unknown type {ctype}")
    if node_id == 0:
        raise MessageDecodeError("conf change: node id 0")
    context = r.blob("context")
    if r.pos != len(r.buf):
        raise MessageDecodeError("conf change: trailing bytes")
    return ConfChange(ConfChangeType(ctype), node_id, context)
