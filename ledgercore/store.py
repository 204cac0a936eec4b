"""The node's LMDB environment: one durable write transaction per block, snapshot reads meanwhile.

Tables (LMDB named databases), all keys big-endian where numeric:
  meta      b"suite", b"chain_id", b"height", b"store_format", b"state_mark", b"state_sweep" ->
            chain metadata (height: u64 of the last block; store_format: u32 layout of these
            tables; state_mark: u64 height from which history holds the changes not yet folded
            into state; state_sweep: u64 height its current round began || the last key folded)
  headers   u64 height -> encoded block header
  blocks    u64 height -> encoded block (header and raw transactions)
  txids     u64 height -> the block's transaction ids, 32 bytes each
  receipts  u64 height -> encoded receipts of the block's failed transactions and events
  hashes    u64 height -> block hash (the leaves of the block-hash Merkle log)
  nonces    sender || u64 end -> u64 start: a run of consecutive nonces the sender has used;
            its highest run under sender || 0xff * 8 -> u64 start || u64 end
  state     contract "/" key -> change id || flag (flag 0: deleted, a tombstone that keeps the key's
            history reachable); the value is in the history entry the change id keys. The
            newest changes are in the ledger's in-memory overlay instead, folded in a slice
            per commit
  history   change id -> previous change id of the key (zeros: none) || tx id || flag ||
            u16 len || contract "/" key || value (flag 0: the change deleted the key)
  locator   u64 last height covered -> a sorted run of 12-byte records, tx id prefix || u32 height
where a change id is u64 height || u32 tx index || u32 write ordinal (position among the block's
writes): history keys only grow, so each block's history is appended after the last page, and a
key's changes are a chain from its state entry back. docs/FORMAT.md section 6 has the bytes.

There is no table keyed by tx id: the ledger finds a committed transaction through the ``locator``
runs and an in-memory map of the blocks after the last run (``_native.TxLocator``), rebuilt from
``txids`` on open, so a commit writes no random-key index page.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import lmdb

from . import _native
from .errors import IntegrityError, LedgerError
from .lmdb_file import create_lmdb_file, lmdb_file_damage, reserve_lock_file, write_failure

TABLES = ("meta", "headers", "blocks", "txids", "receipts", "hashes", "nonces", "state", "history", "locator")
DEFAULT_MAP_SIZE = 1 << 30
_T = TypeVar("_T")


class StoreError(LedgerError):
    """The store could not be opened, read or written (a damaged file, a full disk, ...)."""


def height_key(height: int) -> bytes:
    return height.to_bytes(8, "big")


@dataclass
class BlockWrite:
    """Everything one block changes, written in a single LMDB transaction."""

    height: int
    puts: dict[str, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    # Puts sorted by key whose first key sorts after the table's last: appended (MDB_APPEND), which
    # fills pages whole instead of splitting them, and never searches the tree.
    appends: dict[str, Sequence[tuple[bytes, bytes]] | _native.KeyValues] = field(default_factory=dict)
    # Keys to delete, before the puts (none of which it names).
    deletes: dict[str, list[bytes]] = field(default_factory=dict)
    # Bytes the write adds, roughly; decides when the map must grow before writing.
    size_hint: int = 0

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.puts.setdefault(table, []).append((key, value))

    def put_many(self, table: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        self.puts.setdefault(table, []).extend(items)


class Store:
    """An LMDB environment with the ledger's tables. Thread-safe: one writer, many readers."""

    def __init__(self, path: str | os.PathLike[str], map_size: int = DEFAULT_MAP_SIZE, *, create: bool = True) -> None:
        """Opens the store at ``path``, creating it (and its tables) if ``create``; without, a
        path that holds no ledger store is a ``StoreError`` and nothing is written there.
        An LMDB environment holding anything but a ledger's tables is refused either way."""
        where = os.fspath(path)
        try:
            if create:
                os.makedirs(path, exist_ok=True)
                create_lmdb_file(path, map_size)
            if os.path.isfile(os.path.join(where, "data.mdb")):  # else nothing is written there
                reserve_lock_file(where)
        except (OSError, lmdb.Error) as exc:  # a file (or a file's child), no permission, no space, ...
            why = "it is a file, not a directory" if os.path.isfile(where) else getattr(exc, "strerror", None) or str(exc)
            raise StoreError(f"cannot open ledger store at {where!r}: {why}") from exc
        damage = lmdb_file_damage(path)
        if damage is not None:
            raise StoreError(f"cannot open ledger store at {where!r}: {damage}") from IntegrityError(None, "data.mdb", damage)
        try:
            self.env = lmdb.open(
                os.fspath(path),
                map_size=map_size,
                max_dbs=len(TABLES),
                max_readers=512,
                sync=True,
                metasync=True,
                readahead=False,
                create=create,
            )
        except lmdb.Error as exc:
            raise StoreError(f"cannot open ledger store at {where!r}: {exc}") from exc
        # Reader slots of processes that died (SIGKILL, power loss) inside a read would pin the
        # pages of their snapshot for as long as any process keeps the environment open.
        try:
            self.env.reader_check()
            with self.env.begin() as txn:  # the main database names the environment's tables
                held = {bytes(k) for k in txn.cursor().iternext(values=False)}
            foreign = sorted(k.decode("utf-8", "replace") for k in held - {t.encode() for t in TABLES})
            if foreign or (held and b"meta" not in held) or (not create and not held):
                self.env.close()
                what = f"it holds {', '.join(map(repr, foreign[:8]))}" if foreign else "it holds no ledger metadata"
                raise StoreError(f"{where!r} is not a ledger store: {what}")
            while True:
                try:
                    self.tables = {name: self.env.open_db(name.encode(), create=create) for name in TABLES}
                    break
                except lmdb.MapResizedError:
                    self.env.set_mapsize(0)  # the writer process grew the map since we opened it
        except lmdb.Error as exc:  # e.g. an LMDB environment that holds something else
            self.env.close()
            raise StoreError(f"{where!r} is not a ledger store: {exc}") from exc
        # Growing the map needs every transaction of this process closed: readers register here.
        self._gate = threading.Condition()
        self.where = where  # named in read and write errors: a node host may hold several stores
        # The reads this process has open: a token each, naming the thread that holds it. A token,
        # not a count, so that forgetting a read is idempotent and can be retried after an interrupt.
        self._reads: dict[object, int] = {}
        self.closed = False
        self._resizing = False

    def close(self) -> None:
        """Closes the environment once this process's reads in flight have ended: LMDB frees what
        they use, and a read running on another thread would touch freed memory. Reads that start
        later raise ``StoreError``. Writes must have stopped (the ledger's writer shuts down first)."""
        with self._gate:
            if self.closed:
                return
            if self.held_here():
                raise StoreError("the ledger store cannot close inside a read of it: the close waits for every read to end")
            self.closed = True
            while self._reads:
                self._gate.wait()
            self.env.close()

    def held_here(self) -> bool:
        """Whether the calling thread has a read of this store open (a query running a nested call)."""
        return threading.get_ident() in self._reads.values()

    def check_open(self) -> None:
        """Raises ``StoreError`` once the store is closed."""
        if self.closed:
            raise StoreError("the ledger store is closed")

    @contextmanager
    def read(self, buffers: bool = False) -> Iterator[lmdb.Transaction[Any]]:
        """A consistent snapshot of the last committed block; may run while a block commits.
        ``buffers``: values are memoryviews into the map, valid until the snapshot closes."""
        while True:
            token = object()
            try:
                with self._gate:
                    # A read nested in one this thread holds does not wait for a growth: the growth
                    # waits for the outer read to end.
                    while self._resizing and not self.held_here():
                        self._gate.wait()
                    self.check_open()  # under the gate: close() waits for the reads it holds
                    self._reads[token] = threading.get_ident()
                try:
                    txn: lmdb.Transaction[Any] = self.env.begin(buffers=True) if buffers else self.env.begin()
                except lmdb.MapResizedError:
                    # Another process (the node's writer) grew the map past ours: adopt its size,
                    # which waits for every read of this process to end: not from inside one.
                    self._release(token)
                    if self.held_here():
                        raise StoreError(
                            "another process grew the ledger store's map while this thread holds a read of it: "
                            "end that read, then read again"
                        ) from None
                    self._grow(0)
                    continue
                except lmdb.Error as exc:  # every reader slot taken, ...
                    raise StoreError(f"cannot read the ledger store at {self.where!r}: {exc}") from exc
                try:
                    with txn:
                        yield txn
                except lmdb.Error as exc:  # a damaged page: LMDB's own error, named as the store's
                    raise StoreError(f"cannot read the ledger store at {self.where!r}: {exc}") from exc
                return
            finally:
                self._release(token)

    def last_txnid(self) -> int:
        """The id of the last write committed to the environment, by any process."""
        with self._gate:
            self.check_open()
            return int(self.env.info()["last_txnid"])

    def _release(self, token: object) -> None:
        """Forgets a read (once: a token already forgotten is left alone). A Ctrl-C landing in it
        is raised after the read is forgotten, not instead: a read left registered would make
        close() and every growth of the map wait forever."""
        interrupted: KeyboardInterrupt | None = None
        while token in self._reads:
            try:
                with self._gate:
                    self._reads.pop(token, None)
                    self._gate.notify_all()
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted

    def get(self, table: str, key: bytes) -> bytes | None:
        with self.read() as txn:
            return txn.get(key, db=self.tables[table])

    def get_many(self, txn: lmdb.Transaction[Any], table: str, keys: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """The (key, value) pairs of ``keys`` that exist, in one C-level pass, in key order (each
        key once). Looking keys up in order keeps the B-tree path in cache from one to the next."""
        if not keys:
            return []
        with txn.cursor(db=self.tables[table]) as cur:
            return cur.getmulti(_native.sorted_keys(keys) if len(keys) > 1 else keys)

    def values(self, table: str) -> list[bytes]:
        with self.read() as txn, txn.cursor(db=self.tables[table]) as cur:
            return list(cur.iternext(keys=False, values=True))

    def scan(self, txn: lmdb.Transaction[Any], table: str, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``table`` from key ``start`` on, in key order, as of ``txn``."""
        with txn.cursor(db=self.tables[table]) as cur:
            if cur.set_range(start):
                yield from cur.iternext()

    def transact(self, fn: Callable[[lmdb.Transaction], _T], size_hint: int) -> _T:
        """Runs ``fn`` in one write transaction and commits it durably (fsync), or writes nothing
        if ``fn`` raises. When the map fills, it grows and ``fn`` runs again from the start on a
        fresh transaction, so ``fn`` must depend only on what it reads through the transaction."""
        self.check_open()
        self._ensure_room(size_hint)
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapFullError:
                self._grow(self.env.info()["map_size"] * 2)
            except lmdb.MapResizedError:
                self._grow(0)  # another process grew the map: adopt its size, then write
            except lmdb.Error as exc:  # a damaged page, a full disk: nothing was written
                raise StoreError(f"cannot write the ledger store at {self.where!r}: {write_failure(self.where, exc)}") from exc

    def put_block(self, txn: lmdb.Transaction, write: BlockWrite) -> None:
        """Stages one block's writes in ``txn``; later reads through ``txn`` see them."""
        for table, keys in write.deletes.items():
            db = self.tables[table]
            for key in keys:  # few: the nonce runs a block merged
                txn.delete(key, db=db)
        for table, items in write.puts.items():
            with txn.cursor(db=self.tables[table]) as cur:
                cur.putmulti(items)
        for table, appended in write.appends.items():
            with txn.cursor(db=self.tables[table]) as cur:
                if cur.putmulti(appended, append=True)[1] != len(appended):
                    raise StoreError(f"{table}: appended keys must sort after the table's last")

    def _ensure_room(self, incoming: int) -> None:
        info, stat = self.env.info(), self.env.stat()
        used = (info["last_pgno"] + 1) * stat["psize"]
        # B-tree pages and copy-on-write roughly double what a block adds.
        if used + 2 * incoming > info["map_size"]:
            self._grow(max(info["map_size"] * 2, used + 4 * incoming))

    def _grow(self, new_size: int) -> None:
        """Sets the map size once no transaction of this process is open (0: adopt the size
        another process set)."""
        with self._gate:
            self._resizing = True
            try:
                while self._reads:
                    self._gate.wait()
                self.env.set_mapsize(new_size)
            finally:
                self._resizing = False
                self._gate.notify_all()
