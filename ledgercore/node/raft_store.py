"""The Raft log on disk: :class:`~ledgercore.consensus.log.MemoryStorage`'s rules, made durable in
LMDB. Every ``sync`` writes the operations since the last one in a single fsync'd transaction, so
term, vote and entries are on disk before the node sends anything that depends on them."""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import lmdb

from ..consensus.log import MemoryStorage, _MemState
from ..consensus.messages import (
    ConfState,
    ConsensusError,
    Entry,
    HardState,
    MessageDecodeError,
    MsgSnap,
    Snapshot,
    decode_entries,
    decode_message,
    encode_entries,
    encode_message,
)
from ..errors import LedgerError
from ..lmdb_file import create_lmdb_file, lmdb_file_damage, reserve_lock_file, write_failure

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_BASE = struct.Struct(">QQ")  # index, term
_HARD = struct.Struct(">QQQ")


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

    Layout: ``entries``: one record per appended batch, u64 index of its first entry -> the batch
    as a run of entries (:func:`~ledgercore.consensus.messages.encode_entries`, the wire form);
    ``meta``: ``hard`` (term, vote, commit), ``snap`` (the last snapshot), ``base`` (u64 index and
    term of the entry the log starts after: the compaction point).

    Invariants: records are contiguous (each starts right after the previous one's last entry);
    the first record holds entry ``base + 1`` or starts there (compaction drops whole records, so
    the first may still hold entries at or below the base, which reads skip).
    """

    def __init__(self, path: str | os.PathLike[str], map_size: int = 1 << 32) -> None:
        super().__init__()
        where = os.fspath(path)
        try:
            os.makedirs(path, exist_ok=True)
            create_lmdb_file(path, map_size)
            reserve_lock_file(path)
        except (OSError, lmdb.Error) as exc:  # a file there, no permission, no space, ...
            why = getattr(exc, "strerror", None) or exc
            raise RaftStoreError(f"cannot open the raft log at {where!r}: {why}") from None
        damage = lmdb_file_damage(path)
        if damage is not None:  # opened anyway, it would kill the node or come back empty (a second vote)
            raise RaftStoreError(f"cannot open the raft log at {where!r}: {damage}")
        try:
            self._env = lmdb.open(os.fspath(path), map_size=map_size, max_dbs=2, sync=True, metasync=True)
        except lmdb.Error as exc:
            raise RaftStoreError(f"cannot open the raft log at {where!r}: {exc}") from exc
        self._where = where  # named in read and write errors
        try:  # a new log writes its tables here: on a full disk, this is the first write to fail
            self._entries = self._env.open_db(b"entries")
            self._meta = self._env.open_db(b"meta")
        except lmdb.Error as exc:
            self._env.close()
            raise RaftStoreError(f"cannot open the raft log at {where!r}: {exc}") from exc
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
        try:
            self._read_log()
        except lmdb.Error as exc:  # a damaged page: LMDB's own error, named as the log's
            raise RaftStoreError(f"cannot read the raft log at {self._where!r}: {exc}") from exc
        except (struct.error, MessageDecodeError) as exc:  # a record of the wrong size or form
            raise RaftStoreError(f"the raft log at {self._where!r} is damaged: {exc}") from exc

    def _read_log(self) -> None:
        state = _MemState()
        with self._env.begin() as txn:
            hard, snap, base = (txn.get(k, db=self._meta) for k in (b"hard", b"snap", b"base"))
            if hard is not None:
                state.hard_state = HardState(*_HARD.unpack(hard))
            if snap is not None:
                state.snap = _decode_snapshot(snap)
            base_index, base_term = (0, 0) if base is None else _BASE.unpack(base)
            if base_index > state.snap.index:  # compaction never passes the snapshot
                raise RaftStoreError(
                    f"the raft log starts after entry {base_index}, but its snapshot is at {state.snap.index}"
                )
            state.ents = [Entry(base_term, base_index)]
            for key, value in txn.cursor(db=self._entries):
                first = _U64.unpack(key)[0]
                try:
                    ents = decode_entries(value)
                except MessageDecodeError as exc:
                    raise RaftStoreError(f"raft log record at {first} is not a run of entries: {exc}") from exc
                if not ents or ents[0].index != first or ents[-1].index != first + len(ents) - 1:
                    raise RaftStoreError(f"raft log record at {first} does not hold entries {first}..")
                if first <= base_index:
                    ents = ents[base_index + 1 - first :]
                    if not ents:
                        continue
                if ents[0].index != state.ents[-1].index + 1:
                    raise RaftStoreError(f"raft log has a gap before entry {ents[0].index}")
                state.ents.extend(ents)
        self._live, self._durable = state, state.copy()

    def sync(self) -> None:
        """Writes every operation since the last sync in one durable LMDB transaction."""
        if self._pending:
            try:
                with self._env.begin(write=True, buffers=True) as txn:
                    for op, arg in self._pending:
                        getattr(self, "_put_" + op)(txn, arg)
            except lmdb.Error as exc:  # a full disk or map, a damaged page: nothing was written
                raise RaftStoreError(f"cannot write the raft log at {self._where!r}: {write_failure(self._where, exc)}") from exc
        super().sync()

    def _put_set_hard_state(self, txn: lmdb.Transaction, hs: HardState) -> None:
        txn.put(b"hard", _HARD.pack(hs.term, hs.vote, hs.commit), db=self._meta)

    def _put_set_snapshot(self, txn: lmdb.Transaction, snap: Snapshot) -> None:
        txn.put(b"snap", _encode_snapshot(snap), db=self._meta)

    def _put_apply_snapshot(self, txn: lmdb.Transaction, snap: Snapshot) -> None:
        self._put_set_snapshot(txn, snap)
        txn.drop(self._entries, delete=False)
        txn.put(b"base", _BASE.pack(snap.index, snap.term), db=self._meta)

    def compact(self, index: int) -> None:
        # The new base's term is taken now: the entry is committed (a snapshot covers it), so it is
        # the same when the sync writes the base.
        try:
            term = self.term(index)
        except ConsensusError:
            term = 0  # out of range: MemoryStorage.compact refuses it before anything is recorded
        super().compact(_Compaction(index, term))

    def _put_compact(self, txn: lmdb.Transaction, index: _Compaction) -> None:
        # Drop every record whose entries all lie at or below the new base: one delete per batch.
        with txn.cursor(db=self._entries) as cur:
            if cur.first():
                while True:
                    count = _U32.unpack_from(cur.value())[0]
                    if _U64.unpack(cur.key())[0] + count - 1 > index or not cur.delete() or not cur.key():
                        break
        txn.put(b"base", _BASE.pack(int(index), index.term), db=self._meta)

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        # As MemoryStorage does: entries at or below the base are dropped (all of them: no write).
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        # Encode the record now, on the caller's thread and in one native call: sync() often runs
        # on a worker thread while the caller keeps going, and Python work there fights the caller
        # for the GIL.
        batch = _Appended(entries)
        batch.record = encode_entries(batch)
        self._write("append", batch)

    def _put_append(self, txn: lmdb.Transaction, batch: _Appended) -> None:
        first = batch[0].index
        with txn.cursor(db=self._entries) as cur:
            # Appending replaces any conflicting suffix, as the in-memory log does: records from
            # `first` on go whole, and one that starts before `first` but reaches it is cut short.
            if cur.set_range(_U64.pack(first)):
                while cur.delete():
                    pass
            if cur.last():
                start = _U64.unpack(cur.key())[0]
                if start + _U32.unpack_from(cur.value())[0] > first:
                    kept = decode_entries(bytes(cur.value()))[: first - start]
                    cur.put(bytes(cur.key()), encode_entries(kept))
        txn.put(_U64.pack(first), batch.record, db=self._entries, append=True)


class _Appended(list):  # type: ignore[type-arg]
    """Entries to append, with their LMDB record encoded up front."""

    __slots__ = ("record",)
    record: bytes


class _Compaction(int):
    """A compaction index with the term of its entry (the new base)."""

    term: int

    def __new__(cls, index: int, term: int) -> _Compaction:
        self = super().__new__(cls, index)
        self.term = term
        return self
