"""The Raft log on disk: :class:`~ledgercore.consensus.log.MemoryStorage`'s rules, made durable in
LMDB. Every ``sync`` writes the operations since the last one in a single fsync'd transaction, so
term, vote and entries are on disk before the node sends anything that depends on them."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import lmdb

from ..consensus.log import MemoryStorage, _MemState
from ..consensus.messages import ConfState, Entry, EntryType, HardState, MsgSnap, Snapshot, decode_message, encode_message
from ..errors import LedgerError

_U64 = struct.Struct(">Q")
_HARD = struct.Struct(">QQQ")
_ENTRY_HEAD = struct.Struct(">QB")  # term, type; the data follows


class RaftStoreError(LedgerError):
    """The Raft log store could not be opened or is inconsistent."""


def _encode_snapshot(snap: Snapshot) -> bytes:
    # The wire codec already encodes snapshots exactly; reuse it rather than a second format.
    return encode_message(MsgSnap(frm=1, to=1, snapshot=snap))


def _decode_snapshot(data: bytes) -> Snapshot:
    msg = decode_message(data)
    if not isinstance(msg, MsgSnap):
        raise RaftStoreError("stored snapshot record is not a snapshot")
    return msg.snapshot


class DurableStorage(MemoryStorage):
    """Raft storage whose ``sync`` is an fsync'd LMDB commit; reopening restores what was synced.

    Layout: ``entries``: u64 index -> u64 term || u8 type || data, for every entry after the base;
    ``meta``: ``hard`` (term, vote, commit), ``snap`` (the last snapshot), ``base`` (u64 index and
    term of the entry the log starts after: the compaction point).
    """

    def __init__(self, path: str | os.PathLike[str], map_size: int = 1 << 32) -> None:
        super().__init__()
        os.makedirs(path, exist_ok=True)
        try:
            self._env = lmdb.open(os.fspath(path), map_size=map_size, max_dbs=2, sync=True, metasync=True)
        except lmdb.Error as exc:
            raise RaftStoreError(f"cannot open the raft log at {os.fspath(path)!r}: {exc}") from exc
        self._entries = self._env.open_db(b"entries")
        self._meta = self._env.open_db(b"meta")
        self._load()

    @property
    def is_new(self) -> bool:
        return self._live.snap.index == 0 and self.last_index() == 0

    def bootstrap_voters(self, voters: Sequence[int]) -> None:
        """Gives a brand-new log its initial configuration as a snapshot at index 1, term 1."""
        self.apply_snapshot(Snapshot(1, 1, ConfState(voters=tuple(sorted(voters))), b""))
        self.set_hard_state(HardState(term=1, vote=0, commit=1))
        self.sync()

    def close(self) -> None:
        self._env.close()

    def _load(self) -> None:
        state = _MemState()
        with self._env.begin() as txn:
            hard, snap, base = (txn.get(k, db=self._meta) for k in (b"hard", b"snap", b"base"))
            if hard is not None:
                state.hard_state = HardState(*_HARD.unpack(hard))
            if snap is not None:
                state.snap = _decode_snapshot(snap)
            base_index, base_term = (0, 0) if base is None else (_U64.unpack(base[:8])[0], _U64.unpack(base[8:])[0])
            state.ents = [Entry(base_term, base_index)]
            with txn.cursor(db=self._entries) as cur:
                if cur.set_range(_U64.pack(base_index + 1)):
                    for key, value in cur:
                        index = _U64.unpack(key)[0]
                        if index != state.ents[-1].index + 1:
                            raise RaftStoreError(f"raft log has a gap before entry {index}")
                        term, typ = _ENTRY_HEAD.unpack_from(value)
                        state.ents.append(Entry(term, index, EntryType(typ), value[_ENTRY_HEAD.size :]))
        self._live, self._durable = state, state.copy()

    def sync(self) -> None:
        """Writes every operation since the last sync in one durable LMDB transaction."""
        if self._pending:
            with self._env.begin(write=True) as txn:
                for op, arg in self._pending:
                    getattr(self, "_put_" + op)(txn, arg)
        super().sync()

    def _put_set_hard_state(self, txn: lmdb.Transaction, hs: HardState) -> None:
        txn.put(b"hard", _HARD.pack(hs.term, hs.vote, hs.commit), db=self._meta)

    def _put_set_snapshot(self, txn: lmdb.Transaction, snap: Snapshot) -> None:
        txn.put(b"snap", _encode_snapshot(snap), db=self._meta)

    def _put_apply_snapshot(self, txn: lmdb.Transaction, snap: Snapshot) -> None:
        self._put_set_snapshot(txn, snap)
        txn.drop(self._entries, delete=False)
        txn.put(b"base", _U64.pack(snap.index) + _U64.pack(snap.term), db=self._meta)

    def _put_compact(self, txn: lmdb.Transaction, index: int) -> None:
        term = self._durable_term_after(txn, index)
        last = _U64.pack(index)  # big-endian, so keys sort as their indexes
        with txn.cursor(db=self._entries) as cur:
            if cur.first():
                while cur.key() and cur.key() <= last and cur.delete():
                    pass
        txn.put(b"base", _U64.pack(index) + _U64.pack(term), db=self._meta)

    def _durable_term_after(self, txn: lmdb.Transaction, index: int) -> int:
        raw = txn.get(_U64.pack(index), db=self._entries)
        if raw is not None:
            return _ENTRY_HEAD.unpack_from(raw)[0]
        base = txn.get(b"base", db=self._meta)
        if base is not None and _U64.unpack(base[:8])[0] == index:
            return _U64.unpack(base[8:])[0]
        raise RaftStoreError(f"cannot compact to {index}: entry not stored")

    def append(self, entries: Sequence[Entry]) -> None:
        # Encode the records now, on the caller's thread: sync() often runs on a worker thread while
        # the caller keeps going, and Python work there fights the caller for the GIL.
        batch = _Appended(entries)
        batch.records = [(_U64.pack(i), _ENTRY_HEAD.pack(t, y) + d) for t, i, y, d in batch]
        self._write("append", batch)

    def _put_append(self, txn: lmdb.Transaction, entries: list[Entry]) -> None:
        if not entries:
            return
        first = entries[0].index
        # Appending replaces any conflicting suffix, exactly as the in-memory log does.
        with txn.cursor(db=self._entries) as cur:
            if cur.set_range(_U64.pack(first)):
                while cur.delete():
                    pass
        records = getattr(entries, "records", None)
        if records is None:
            records = [(_U64.pack(e.index), _ENTRY_HEAD.pack(e.term, e.type) + e.data) for e in entries]
        with txn.cursor(db=self._entries) as cur:
            cur.putmulti(records, append=True)


class _Appended(list):  # type: ignore[type-arg]
    """Entries to append, with their LMDB records (key, value) encoded up front."""

    __slots__ = ("records",)
