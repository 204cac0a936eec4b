"""DurableStorage: the Raft log in LMDB, one record per appended batch.

Checked against MemoryStorage (the model of what must be durable) over random operations and
reopens, record by record for truncation and compaction, and against SIGKILL of a writer process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgercore.consensus.log import MemoryStorage
from ledgercore.consensus.messages import ConfState, Entry, EntryType, HardState, Snapshot
from ledgercore.node.raft_store import DurableStorage, RaftStoreError

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import raft_store_writer as writer  # noqa: E402

CONF = ConfState(voters=(1, 2, 3))


def ents(term: int, first: int, n: int, tag: bytes = b"") -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, b"%d/%d%s" % (term, i, tag)) for i in range(first, first + n)]


def records(s: DurableStorage) -> list[tuple[int, int]]:
    """(first index, entry count) of every stored record."""
    with s._env.begin() as txn:
        return [
            (struct.unpack(">Q", k)[0], struct.unpack_from(">I", v)[0])
            for k, v in txn.cursor(db=s._entries)
        ]


def content(s: MemoryStorage) -> tuple[object, ...]:
    first, last = s.first_index(), s.last_index()
    return first, last, s.term(first - 1), s.hard_state(), s.snapshot(), s.entries(first, last + 1)


def reopen(s: DurableStorage, path: Path) -> DurableStorage:
    s.close()
    return DurableStorage(path)


def test_batches_survive_reopen_one_record_each(tmp_path: Path) -> None:
    s = DurableStorage(tmp_path)
    s.bootstrap_voters([1, 2, 3])
    s.append(ents(1, 2, 100))
    s.append(ents(1, 102, 1))
    s.set_hard_state(HardState(1, 1, 50))
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(2, 100), (102, 1)]
    assert s.entries(2, 103) == ents(1, 2, 100) + ents(1, 102, 1)
    assert s.hard_state() == HardState(1, 1, 50) and s.snapshot().conf_state == CONF


def test_truncation_inside_a_record_keeps_its_prefix(tmp_path: Path) -> None:
    s = DurableStorage(tmp_path)
    s.bootstrap_voters([1, 2, 3])
    s.append(ents(1, 2, 10))  # 2..11
    s.append(ents(1, 12, 10))  # 12..21
    s.sync()
    s.append(ents(2, 7, 3))  # replaces 7.. : cuts the first record to 2..6, drops the second
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(2, 5), (7, 3)]
    assert s.entries(2, 10) == ents(1, 2, 5) + ents(2, 7, 3)
    assert s.last_index() == 9
    # At a record boundary: the record starting there goes whole, nothing is cut.
    s.append(ents(3, 7, 1))
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(2, 5), (7, 1)] and s.term(7) == 3 and s.last_index() == 7


def test_compaction_drops_whole_records_and_keeps_the_base(tmp_path: Path) -> None:
    s = DurableStorage(tmp_path)
    s.bootstrap_voters([1, 2, 3])
    s.append(ents(1, 2, 4))  # 2..5
    s.append(ents(2, 6, 4))  # 6..9
    s.append(ents(2, 10, 4))  # 10..13
    s.create_snapshot(8, CONF, b"snap")
    s.compact(8)
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(6, 4), (10, 4)]  # 6..9 still holds 9, so it stays (6..8 unread)
    assert (s.first_index(), s.last_index(), s.term(8)) == (9, 13, 2)
    assert s.entries(9, 14) == ents(2, 9, 1) + ents(2, 10, 4)
    assert s.snapshot().index == 8 and s.snapshot().data == b"snap"
    # Truncating inside the partly compacted record keeps its unread prefix consistent.
    s.append(ents(3, 10, 2))
    s.create_snapshot(10, CONF, b"")
    s.compact(10)
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(10, 2)] and (s.first_index(), s.last_index(), s.term(10)) == (11, 11, 3)
    # Entries wholly at or below the base are ignored, as MemoryStorage ignores them.
    s.append(ents(3, 5, 3))
    s.sync()
    s = reopen(s, tmp_path)
    assert records(s) == [(10, 2)] and s.last_index() == 11


def test_a_corrupt_record_is_a_typed_error(tmp_path: Path) -> None:
    s = DurableStorage(tmp_path)
    s.append(ents(1, 1, 3))
    s.sync()
    with s._env.begin(write=True) as txn:
        txn.put(struct.pack(">Q", 1), b"\x00\x00\x00\x05junk", db=s._entries)
    s.close()
    with pytest.raises(RaftStoreError, match="record at 1"):
        DurableStorage(tmp_path)


@pytest.mark.parametrize(
    ("table", "key", "value", "words"),
    [
        ("meta", b"hard", b"\x00" * 5, "the raft log at {path} is damaged: unpack requires a buffer of 24 bytes"),
        ("meta", b"base", b"\x00" * 3, "the raft log at {path} is damaged"),
        ("meta", b"snap", b"garbage", "the raft log at {path} is damaged: consensus message"),
        ("meta", b"base", struct.pack(">QQ", 100, 1), "the raft log starts after entry 100, but its snapshot is at 0"),
        ("entries", b"\x00\x01", b"", "the raft log at {path} is damaged: unpack requires a buffer of 8 bytes"),
    ],
)
def test_a_damaged_meta_record_or_key_is_a_typed_error(
    tmp_path: Path, table: str, key: bytes, value: bytes, words: str
) -> None:
    s = DurableStorage(tmp_path)
    s.append(ents(1, 1, 3))
    s.sync()
    with s._env.begin(write=True) as txn:
        txn.put(key, value, db=s._meta if table == "meta" else s._entries)
    s.close()
    with pytest.raises(RaftStoreError, match=re.escape(words.format(path=repr(str(tmp_path))))):
        DurableStorage(tmp_path)


_MAKE_STORES = """
import os, sys
from ledgercore import Ledger
from ledgercore.errors import LedgerError
from ledgercore.node.raft_store import DurableStorage
for name, make in (("ledger", Ledger.open), ("raft", DurableStorage)):
    try:
        make(os.path.join(sys.argv[1], name)).close()
        print(name, "opened")
    except LedgerError as exc:
        print(name, type(exc).__name__, exc)
"""
_FULL_DISK = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
""" + _MAKE_STORES


def test_a_store_made_where_the_disk_is_full_is_a_typed_error(tmp_path: Path) -> None:
    # Regression: a bare lmdb.Error escaped Ledger.open and DurableStorage (a node died with a
    # traceback), and on a full filesystem LMDB's lock file, written through a mapping, killed
    # the process with SIGBUS and no message.
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ledger, raft = out.stdout.splitlines()
    assert ledger.startswith(f"ledger StoreError cannot open ledger store at '{tmp_path / 'ledger'}': "), ledger
    assert raft.startswith(f"raft RaftStoreError cannot open the raft log at '{tmp_path / 'raft'}': "), raft
    assert all(("No space" in line or "too large" in line) for line in (ledger, raft)), out.stdout


_FILL = """
import os, sys
with open(sys.argv[1] + "/fill", "wb", buffering=0) as f:
    try:
        while True:
            f.write(bytes(4096))
    except OSError:
        pass
os.truncate(sys.argv[1] + "/fill", max(0, os.path.getsize(sys.argv[1] + "/fill") - int(sys.argv[2])))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="a full tmpfs needs root and unshare")
@pytest.mark.parametrize("free", [0, 8192, 16384, 32768])
def test_a_store_made_on_a_really_full_filesystem_is_a_typed_error_not_a_sigbus(tmp_path: Path, free: int) -> None:
    # Regression: LMDB's lock file is a hole written through a shared mapping: on a full
    # filesystem, making a ledger or a Raft log killed the process with SIGBUS (exit 135).
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size=4m tmpfs {mnt} && {sys.executable} -c \"$FILL\" {mnt} {free} && "
              f"{sys.executable} -c \"$MAKE\" {mnt}")  # fmt: skip
    env = {**os.environ, "FILL": _FILL, "MAKE": _MAKE_STORES}
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    if "mount" in out.stderr and out.returncode != 0 and "Traceback" not in out.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    assert out.returncode == 0, out
    for line in out.stdout.splitlines():
        assert line.endswith("opened") or "No space left on device" in line, out.stdout


def test_an_emptied_or_truncated_store_is_refused_not_reset_or_fatal(tmp_path: Path) -> None:
    # Opened anyway, an emptied file would come back as a new log (term 0, no vote: the node could
    # vote twice in a term), and a file cut short kills the process with SIGBUS when LMDB reads
    # past its end: both are refused before LMDB maps them.
    s = DurableStorage(tmp_path)
    s.set_hard_state(HardState(term=5, vote=2, commit=0))
    for k in range(8):  # a file of several pages
        s.append(ents(5, 1 + 200 * k, 200, tag=b"x" * 100))
        s.sync()
    s.close()
    data = tmp_path / "data.mdb"
    whole = data.read_bytes()
    data.write_bytes(whole[:8192])
    probe = subprocess.run([sys.executable, "-c", f"from ledgercore.node.raft_store import DurableStorage\n"
                            f"DurableStorage({str(tmp_path)!r})"], capture_output=True, text=True)  # fmt: skip
    assert probe.returncode == 1 and "the file was cut short" in probe.stderr  # an error, not a signal
    data.write_bytes(b"")
    with pytest.raises(RaftStoreError, match="holds no LMDB meta page: it is empty or not an LMDB file"):
        DurableStorage(tmp_path)
    data.write_bytes(whole)
    assert DurableStorage(tmp_path).hard_state() == HardState(term=5, vote=2, commit=0)
    with pytest.raises(RaftStoreError, match="cannot open the raft log at"):
        DurableStorage(data)  # a file, not a directory


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 12), st.integers(1, 9)),  # back-off, count
        st.tuples(st.just("compact"), st.integers(0, 30), st.integers(0, 30)),
        st.tuples(st.just("hard"), st.integers(0, 5), st.integers(0, 5)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_ops)
def test_matches_the_memory_model_across_syncs_and_reopens(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]) -> None:
    path = tmp_path_factory.mktemp("log")
    d, m = DurableStorage(path), MemoryStorage()
    for s in (d, m):
        s.apply_snapshot(Snapshot(1, 1, CONF, b""))
        s.sync()
    term = 1
    for op, a, b in ops:
        if op == "append":
            term += 1
            start = max(m.first_index() - 2, m.last_index() + 1 - a)
            batch = ents(term, max(start, 1), b)
            for s in (d, m):
                s.append(batch)
        elif op == "compact":
            lo, hi = m.snapshot().index + 1, m.last_index()
            if lo <= hi:
                at = lo + a % (hi - lo + 1)
                for s in (d, m):
                    s.create_snapshot(at, CONF, b"%d" % at)
                c = m.first_index() + b % (at - m.first_index() + 1)
                for s in (d, m):
                    s.compact(c)
        elif op == "hard":
            for s in (d, m):
                s.set_hard_state(HardState(term, a, 0))
        elif op == "sync":
            d.sync()
            m.sync()
        else:
            d.sync()
            m.sync()
            d = reopen(d, path)
        assert content(d) == content(m)
    d.sync()
    m.sync()
    d = reopen(d, path)
    assert content(d) == content(m)
    d.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_leaves_exactly_what_was_synced(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "log"
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "raft_store_writer.py"), str(path), str(seed * 100 + round_)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        deadline = time.monotonic() + 0.3 + 0.2 * round_
        synced: str | None = None
        syncing: str | None = None
        for line in proc.stdout:
            word, digest = line.split()
            if word == "syncing":
                syncing = digest
            else:
                synced = digest
            if time.monotonic() > deadline and synced is not None:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout:  # what it printed before it died
            word, digest = line.split()
            if word == "syncing":
                syncing = digest
            else:
                synced = digest
        s = DurableStorage(path)
        try:
            got = writer.log_digest(s)
        finally:
            s.close()
        # The last acknowledged sync, or the one in flight if its commit reached the disk first.
        assert got in (synced, syncing)
