"""The Raft log: a :class:`Storage` protocol (what is durable), :class:`MemoryStorage` (for tests and
the simulator, tracking which writes were ``sync()``ed), and :class:`RaftLog` (storage plus the
unstable tail not yet persisted, with the commit and apply cursors).

Index conventions (as in etcd-io/raft): a storage holds a snapshot at ``first_index() - 1`` and
entries ``first_index() .. last_index()``; ``term(first_index() - 1)`` is the snapshot's term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .. import _native
from .messages import ConfState, ConsensusError, Entry, HardState, Snapshot

NO_LIMIT = 0


class CompactedError(ConsensusError):
    """The requested index lies at or below the storage's snapshot (compacted away)."""


class UnavailableError(ConsensusError):
    """The requested index lies beyond the last entry."""


class SnapshotOutOfDateError(ConsensusError):
    """A snapshot older than the one the storage already holds."""


#: Bytes an entry counts for beyond its data, in batching and flow control.
ENTRY_OVERHEAD = 24


def entries_size(ents: Sequence[Entry]) -> int:
    """The bytes ``ents`` count for in batching and flow control (data plus a fixed header each)."""
    return _native.entries_prefix(ents, NO_LIMIT, ENTRY_OVERHEAD)[1]


def limit_entries(ents: list[Entry], max_bytes: int, max_count: int = NO_LIMIT) -> list[Entry]:
    """The longest prefix within ``max_bytes`` and ``max_count`` (never fewer than one entry)."""
    if max_count and len(ents) > max_count:
        ents = ents[:max_count]
    if not max_bytes or not ents:
        return ents
    n = _native.entries_prefix(ents, max_bytes, ENTRY_OVERHEAD)[0]  # one native walk, not one call per entry
    return ents if n == len(ents) else ents[:n]


class Storage(Protocol):
    """Read access to what a node has persisted. Raft only reads; the application writes."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi); raises CompactedError / UnavailableError."""
        ...

    def term(self, index: int) -> int:
        """The term of entry ``index`` (first_index()-1 included); raises as ``entries``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class _MemState:
    """The content of a MemoryStorage: a hard state, a snapshot and the entries after it."""

    __slots__ = ("hard_state", "snap", "ents")

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snap = Snapshot()
        # ents[0] is a dummy standing for the snapshot: index and term of snap.
        self.ents: list[Entry] = [Entry(0, 0)]

    def copy(self) -> _MemState:
        c = _MemState()
        c.hard_state = self.hard_state
        c.snap = self.snap
        c.ents = list(self.ents)
        return c

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        if snap.index < self.ents[0].index:
            raise SnapshotOutOfDateError(f"snapshot {snap.index} older than {self.ents[0].index}")
        self.snap = snap
        self.ents = [Entry(snap.term, snap.index)]

    def set_snapshot(self, snap: Snapshot) -> None:
        self.snap = snap

    def compact(self, index: int) -> None:
        offset = self.ents[0].index
        if index <= offset:
            raise CompactedError(f"compact {index}: already compacted to {offset}")
        if index > self.ents[-1].index:
            raise UnavailableError(f"compact {index}: beyond last index {self.ents[-1].index}")
        i = index - offset
        self.ents = [Entry(self.ents[i].term, index)] + self.ents[i + 1 :]

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = self.ents[0].index + 1
        last = entries[0].index + len(entries) - 1
        if last < first:
            return  # all already compacted
        if first > entries[0].index:
            entries = list(entries[first - entries[0].index :])
        offset = entries[0].index - self.ents[0].index
        if offset > len(self.ents):
            raise UnavailableError(
                f"append at {entries[0].index} leaves a gap after {self.ents[-1].index}"
            )
        # Appending truncates any conflicting suffix: the caller only appends what Raft accepted.
        del self.ents[offset:]
        self.ents.extend(entries)


class MemoryStorage:
    """An in-memory :class:`Storage` that models a disk with a page cache.

    Every write lands in the live state (what reads see) and in a list of pending operations;
    :meth:`sync` makes them durable. :meth:`crash` models power loss: the durable state survives,
    plus optionally a prefix of the pending writes (a disk may have flushed some), and the rest
    is lost.
    """

    def __init__(self) -> None:
        self._live = _MemState()
        self._durable = _MemState()
        self._pending: list[tuple[str, object]] = []
        self.syncs = 0

    @classmethod
    def bootstrap(cls, conf_state: ConfState, index: int = 1, term: int = 1) -> MemoryStorage:
        """A durable storage whose snapshot at (index, term) holds the initial configuration."""
        s = cls()
        s.apply_snapshot(Snapshot(index, term, conf_state, b""))
        s.set_hard_state(HardState(term=term, vote=0, commit=index))
        s.sync()
        return s

    # --- Storage reads ---------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._live.hard_state, self._live.snap.conf_state

    def first_index(self) -> int:
        return self._live.ents[0].index + 1

    def last_index(self) -> int:
        ents = self._live.ents
        return ents[0].index + len(ents) - 1

    def term(self, index: int) -> int:
        ents = self._live.ents
        offset = ents[0].index
        if index < offset:
            raise CompactedError(f"term {index}: compacted to {offset}")
        if index - offset >= len(ents):
            raise UnavailableError(f"term {index}: beyond last index {offset + len(ents) - 1}")
        return ents[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        ents = self._live.ents
        offset = ents[0].index
        if lo <= offset:
            raise CompactedError(f"entries from {lo}: compacted to {offset}")
        if hi > offset + len(ents):
            raise UnavailableError(f"entries to {hi}: beyond last index {offset + len(ents) - 1}")
        return limit_entries(ents[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._live.snap

    def hard_state(self) -> HardState:
        return self._live.hard_state

    # --- writes (made durable by sync) -------------------------------------------------------------

    def _write(self, op: str, arg: object) -> None:
        getattr(self._live, op)(arg)  # raises before anything is recorded
        self._pending.append((op, arg))

    def set_hard_state(self, hs: HardState) -> None:
        self._write("set_hard_state", hs)

    def append(self, entries: Sequence[Entry]) -> None:
        self._write("append", list(entries))

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replaces everything with ``snap`` (a snapshot received from the leader)."""
        self._write("apply_snapshot", snap)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Records the application's snapshot at ``index`` (entries stay until :meth:`compact`)."""
        cur = self._live.snap.index
        if index <= cur:
            raise SnapshotOutOfDateError(f"snapshot at {index}: already have {cur}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot at {index}: beyond last index {self.last_index()}")
        snap = Snapshot(index, self.term(index), conf_state, data)
        self._write("set_snapshot", snap)
        return snap

    def compact(self, index: int) -> None:
        """Discards the entries before ``index`` (a snapshot must cover them)."""
        if index > self._live.snap.index:
            raise UnavailableError(f"compact {index}: no snapshot covers it")
        self._write("compact", index)

    def sync(self) -> None:
        """fsync: every write so far becomes durable."""
        for op, arg in self._pending:
            getattr(self._durable, op)(arg)
        self._pending.clear()
        self.syncs += 1

    @property
    def unsynced(self) -> int:
        """How many writes a crash now could lose."""
        return len(self._pending)

    def crash(self, keep: int = 0) -> None:
        """Power loss: durable state plus the first ``keep`` pending writes survive."""
        for op, arg in self._pending[:keep]:
            getattr(self._durable, op)(arg)
        self._pending.clear()
        self._live = self._durable.copy()


class Unstable:
    """Entries (and maybe a snapshot) accepted by Raft but not yet handed to storage."""

    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset  # index of entries[0]

    def maybe_first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.index == i:
                return self.snapshot.term
            return None
        j = i - self.offset
        if j >= len(self.entries):
            return None
        return self.entries[j].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries through ``index`` were persisted, unless they were replaced meanwhile."""
        if index < self.offset or self.maybe_term(index) != term:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces all unstable entries; storage entries from `after` on are overwritten too.
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """Storage plus the unstable tail, with ``committed`` and ``applied`` cursors.

    Invariant: applied <= committed <= last_index().
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """The term of entry ``i``; raises CompactedError / UnavailableError."""
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        if i < self.unstable.offset:
            return self.storage.term(i)
        raise UnavailableError(f"term {i}: beyond last index {self.last_index()}")

    def term_or_zero(self, i: int) -> int:
        try:
            return self.term(i)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a log ending at (term, last_index) is at least as up to date as ours (§5.4.1)."""
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """The index of the first entry whose term disagrees with ours (or is new); 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (i, t) with i <= index whose term t <= term (for fast log repair)."""
        while index > 0:
            try:
                t = self.term(index)
            except CompactedError:
                return index, 0
            except UnavailableError:
                index = self.last_index()
                continue
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: Sequence[Entry]
    ) -> int | None:
        """Appends ``ents`` if our entry ``index`` has ``log_term``; the new last index, or None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            # Log matching: a conflict can only exist above what is committed.
            if ci <= self.committed:
                raise ConsensusError(f"entry {ci} conflicts with committed entry {self.committed}")
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise ConsensusError(
                f"append after {ents[0].index - 1} would overwrite committed {self.committed}"
            )
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise ConsensusError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Advances the commit index to ``index`` if that entry is from ``term`` (§5.4.2)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index:
            if index > self.committed or index < self.applied:
                raise ConsensusError(f"applied {index} outside [{self.applied}, {self.committed}]")
            self.applied = index

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_entries(self, max_bytes: int = NO_LIMIT) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def slice(self, lo: int, hi: int, max_bytes: int = NO_LIMIT, max_count: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi) from storage and the unstable tail; raises CompactedError."""
        if lo >= hi:
            return []
        fi = self.first_index()
        if lo < fi:
            raise CompactedError(f"entries from {lo}: compacted to {fi - 1}")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries to {hi}: beyond last index {self.last_index()}")
        if max_count and hi - lo > max_count:
            hi = lo + max_count
        ents: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            ents = self.storage.entries(lo, min(hi, off), max_bytes)
            if len(ents) < min(hi, off) - lo:
                return ents  # hit the byte limit inside storage
        if hi > off:
            ents = ents + self.unstable.slice(max(lo, off), hi)
        return limit_entries(ents, max_bytes)

    def entries_from(self, i: int, max_bytes: int = NO_LIMIT, max_count: int = NO_LIMIT) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_bytes, max_count)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.index
        self.unstable.restore(snap)

    def persisted_last_index(self) -> int:
        """The last index whose entry (and all before it) storage holds as in this log."""
        if self.unstable.snapshot is not None:
            return 0
        return min(self.storage.last_index(), self.unstable.offset - 1)

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)
