"""An LMDB data file made whole before it is first opened, and what its meta pages say about it,
read before LMDB maps it (the ledger's store and the Raft log both open one)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import resource
import shutil
import struct
from collections.abc import Callable

import lmdb

# An LMDB meta page (64-bit builds): its page header, then magic, version, map address and size,
# the free table's record (whose first field holds the page size, its last the root page), the main
# table's (the root page last), the last page allocated and the transaction id. Two meta pages start
# the file; LMDB uses the one with the higher id.
_META_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<16xII16xI36xQ40xQ8xQ")  # magic, version, page size, free root, main root, txn id
_NO_PAGE = (1 << 64) - 1  # the root of an empty table
_PAGE_SIZES = frozenset(1 << k for k in range(9, 17))  # 512 B .. 64 KiB


def lmdb_file_damage(directory: str | os.PathLike[str]) -> str | None:
    """Why the LMDB file ``data.mdb`` in ``directory`` cannot be opened safely, or None (absent, or
    its tables' roots inside it). LMDB maps the file and trusts its meta page: a file cut short (a
    truncated copy, a lost tail) is read past its end, which kills the process with SIGBUS, and an
    emptied one is silently made a new, empty store.

    Only the roots are checked: the meta page's last allocated page may lie past the end of a
    healthy file (pages allocated and freed in a write are never written), and a file cut between
    its roots and its last page still fails later, when a read reaches the missing pages."""
    if struct.calcsize("P") != 8:
        return None  # the layout above is the 64-bit one
    path = os.path.join(os.fspath(directory), "data.mdb")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pages = [f.read(_META.size)]
            if len(pages[0]) == _META.size and _META.unpack(pages[0])[2] in _PAGE_SIZES:
                f.seek(_META.unpack(pages[0])[2])
                pages.append(f.read(_META.size))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path!r} cannot be read: {exc.strerror or exc}"
    metas = [_META.unpack(p) for p in pages if len(p) == _META.size]
    valid = [m for m in metas if m[0] == _META_MAGIC and m[2] in _PAGE_SIZES]
    if not valid:
        return f"{path!r} ({size} bytes) holds no LMDB meta page: it is empty or not an LMDB file"
    _, _, psize, *roots, _ = max(valid, key=lambda m: m[5])
    beyond = [r for r in roots if r != _NO_PAGE and (r + 1) * psize > size]
    if beyond:
        return (f"{path!r} is {size} bytes, but its meta page names root page {beyond[0]} "
                f"(at byte {beyond[0] * psize}): the file was cut short")  # fmt: skip
    return None


# Where create_lmdb_file makes a new environment, inside the directory it is for.
STAGING_DIR = ".data.mdb.creating"


def create_lmdb_file(directory: str | os.PathLike[str], map_size: int) -> None:
    """Makes sure ``directory`` (which exists) holds a whole ``data.mdb``: where it holds none, an
    empty environment is made in :data:`STAGING_DIR`, flushed, and its data file renamed into
    place. LMDB creates a new file first and writes its meta pages after: killed in between, it
    left an empty file, which :func:`lmdb_file_damage` must refuse (it looks like a store
    wiped), so the path could never be opened again. Killed here, it leaves no data file and a
    staging directory that the next call clears and makes again."""
    where = os.fspath(directory)
    target = os.path.join(where, "data.mdb")
    if os.path.lexists(target):
        return
    fd = os.open(where, os.O_RDONLY)
    try:
        # Two processes creating the same store at once take turns: the second finds the file
        # made (renamed over, it would unlink the file the first had opened and was writing).
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.lexists(target):
            return
        staging = os.path.join(where, STAGING_DIR)
        shutil.rmtree(staging, ignore_errors=True)  # what a creation killed midway left
        os.mkdir(staging)
        # Writes the meta pages. No lock file: the flock above keeps others out, and a lock file
        # is mapped, where a page the disk has no room for is a SIGBUS, not an error.
        lmdb.open(staging, map_size=map_size, max_dbs=0, sync=True, metasync=True, lock=False).close()
        made = os.path.join(staging, "data.mdb")
        _fsync(made)
        os.rename(made, target)
        os.fsync(fd)  # the rename itself is durable
        shutil.rmtree(staging)
    finally:
        os.close(fd)  # and the lock with it


def write_failure(directory: str | os.PathLike[str], exc: lmdb.Error) -> str:
    """``exc``, from a failed LMDB write to the file in ``directory``, with what may explain it:
    LMDB reports a short write (a full disk, a file-size limit) as EIO, which reads as failing
    hardware."""
    why = [str(exc)]
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(directory).free
        if free < LOW_SPACE:
            why.append(f"the disk holding it has {free} bytes free")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        why.append(f"this process may write files of at most {limit} bytes (RLIMIT_FSIZE)")
    return "; ".join(why)


LOW_SPACE = 64 << 20
"""Free bytes under which a failed write's message says how much room the disk has left."""

LOCK_FILE_SIZE = 9 << 12
"""Bytes of ``lock.mdb`` given real blocks before LMDB maps it: its reader table with 512 slots
(the ledger store's) is 32,896 bytes, nine 4 KiB pages."""

_FALLOC_FL_KEEP_SIZE = 1
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def reserve_lock_file(directory: str | os.PathLike[str]) -> None:
    """Gives ``directory``'s ``lock.mdb`` real blocks before LMDB maps it. LMDB sizes a new one by
    truncating (a hole) and writes it through a shared mapping: on a full disk that is a SIGBUS
    that kills the process with no message, where this is an ``OSError`` (ENOSPC). The blocks are
    reserved past the file's end, its size left alone: LMDB takes a bigger file's size for a
    bigger reader table. Best effort: where ``fallocate`` is missing (not Linux) or fails for any
    reason but a lack of room, nothing is reserved; and a lock file that exists already (its
    first pages written, as LMDB left it) is opened as before, room or not."""
    fallocate = _fallocate()
    if fallocate is None:
        return
    path = os.path.join(os.fspath(directory), "lock.mdb")
    existed = os.path.exists(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_blocks * 512 >= LOCK_FILE_SIZE:
            return
        if fallocate(fd, _FALLOC_FL_KEEP_SIZE, 0, LOCK_FILE_SIZE) != 0:
            err = ctypes.get_errno()
            if err in _NO_ROOM and not existed:
                raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


@functools.cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's ``fallocate64`` (64-bit offsets on every Linux), or None."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "fallocate64", None)
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        fn.restype = ctypes.c_int
    return fn


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
