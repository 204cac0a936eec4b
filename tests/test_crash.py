"""Crash safety with real processes, real SIGKILL and real LMDB files.

A writer process (tests/crash_writer.py) applies deterministic blocks to one ledger directory and
acknowledges each block once ``apply_block`` has returned. The test kills it with SIGKILL at seeded
random moments, five kinds equally often: anywhere from interpreter start-up on, right after the
ledger opened, the moment an acknowledgement arrives, anywhere inside ``apply_block`` of a large
block, and inside the block's LMDB write transaction itself (the writer announces its start). It
restarts the writer on the same directory, which resumes from the reopened height (its map starts
at 1 MiB, so map growth is crossed too), and after every kill checks what a restarted node relies on:

* the reopened height is at least the last acknowledged one (acknowledged blocks are durable);
* every block 1..height is whole and exactly what the writer sent: header, body, txids, receipts
  (failures exactly where the writer put failing transactions), header fields;
* the state table holds exactly the keys of blocks <= height, each with its value and version, and
  nothing of later blocks; nonces and history have exactly their entries,
  and every committed transaction id is found at the height it first committed;
* ``Ledger.audit()`` passes: links, tx roots, history roots, and state re-derived by replay.

A block the writer began but did not acknowledge must be absent if the kill came before its write
transaction started, present if after it ended, and either (never partial) in between.

``LEDGERCORE_CRASH_SEED`` picks another seed; ``pytest -m slow`` runs the long variant
(``LEDGERCORE_CRASH_CYCLES`` kills, default 120). The default run prints its statistics (``-s``).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import pytest

from ledgercore import Ledger, Transaction, hashing, merkle, signing
from ledgercore import ledger as ledger_module
from ledgercore.codec import decode_value
from ledgercore.errors import ConcurrentWriteError, NotFoundError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_writer as spec
from raw_state import raw_state

HERE = Path(__file__).parent
SEED = int(os.environ.get("LEDGERCORE_CRASH_SEED", "20261122"))
SMALL_MAP = 1 << 20  # the writer starts with a 1 MiB map, so it grows the map (and file) as it goes
BIG = 400  # blocks of at least this many transactions are "large" (their commit takes a while)


class Writer:
    """A crash_writer.py process whose output lines are collected as they arrive."""

    def __init__(self, path: Path, seed: int, stderr_path: Path) -> None:
        self._stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_writer.py"), str(path), str(seed), "--map-size", str(SMALL_MAP)],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
        )  # fmt: skip
        self.started = time.monotonic()
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_for(self, predicate, timeout: float) -> str | None:
        """The first line (from now) that satisfies ``predicate``, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            self.seen.append(line)
            if predicate(line):
                return line
        return None

    def kill(self) -> list[str]:
        """SIGKILLs the writer; returns every line it printed. Fails if it had died by itself."""
        alive = self.proc.poll() is None
        if alive:
            os.kill(self.proc.pid, signal.SIGKILL)
        rc = self.proc.wait()
        self._thread.join()
        self._stderr.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        if not alive or rc != -signal.SIGKILL:
            err = Path(self._stderr.name).read_text(errors="replace")
            raise AssertionError(f"writer exited by itself with {rc}:\n{err[-3000:]}")
        return self.seen


def acknowledged(lines: list[str]) -> int:
    return max((int(line.split()[1]) for line in lines if line.startswith("committed ")), default=0)


class Chain:
    """What the writer's blocks must be, computed on this side and cached by height."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._raws: dict[int, list[bytes]] = {}
        self._ids: dict[int, bytes] = {}

    def raws(self, h: int) -> list[bytes]:
        if h not in self._raws:
            self._raws[h] = spec.block_raws(self.seed, h)
        return self._raws[h]

    def size(self, h: int) -> int:
        return len(spec.block_ops(self.seed, h))

    def ids(self, h: int) -> bytes:
        # The id is the suite hash of the payload (raw less the 64-byte signature): computed here
        # independently of the ledger's decoder.
        if h not in self._ids:
            self._ids[h] = hashing.digest_many([r[:-64] for r in self.raws(h)], "blake3").tobytes()
        return self._ids[h]


def check_ledger(path: Path, chain: Chain, acked: int) -> tuple[int, float]:
    """Reopens the ledger after a kill and checks everything; returns (height, audit seconds)."""
    seed = chain.seed
    with Ledger.open(path, spec.SUITE, chain_id=spec.CHAIN_ID) as led:
        top = led.height
        assert top >= acked, f"block {acked} was acknowledged but the reopened ledger has height {top}"
        proposer = spec.proposer(seed)
        for h in range(1, top + 1):
            blk = led.block(h)
            header = blk.header
            assert header == led.header(h), h
            assert (header.height, header.timestamp, header.proposer) == (h, spec.T0 + h * 1000, proposer), h
            assert header.tx_count == len(blk.raws), h
            assert blk.raws == chain.raws(h), f"block {h} is not what the writer sent"
            assert b"".join(blk.txids) == chain.ids(h), f"block {h}: stored txids"
            receipts = blk.receipts
            assert len(receipts) == header.tx_count, h
            assert [i for i, r in enumerate(receipts) if not r.ok] == spec.failed_indices(seed, h), h
        for h in (top + 1, top + 2):
            with pytest.raises(NotFoundError):
                led.header(h)
        # Every committed transaction is found where it first committed, through the locator the
        # reopened ledger rebuilt from the stored ids.
        first: dict[bytes, int] = {}
        for h in range(1, top + 1):
            ids = chain.ids(h)
            for i in range(0, len(ids), 32):
                first.setdefault(ids[i : i + 32], h)
        assert led.tx_heights(list(first)) == first
        t0 = time.perf_counter()
        report = led.audit()
        audit_s = time.perf_counter() - t0
        assert report.height == top and report.replayed
        assert report.transactions == sum(chain.size(h) for h in range(1, top + 1))
    # The raw LMDB tables, read without ledgercore: exactly the keys of blocks 1..top.
    env = lmdb.open(str(path), readonly=True, max_dbs=16, lock=True)
    try:
        with env.begin() as txn:
            db = {name: env.open_db(name, txn=txn, create=False) for name in (b"state", b"history", b"meta", b"nonces")}
            state = raw_state(txn, db[b"state"], db[b"history"], db[b"meta"])
            history = dict(txn.cursor(db=db[b"history"]))
            nonce_runs = list(txn.cursor(db=db[b"nonces"]))
            names = ("history", "headers", "blocks", "txids", "receipts", "hashes")
            entries = {n: txn.stat(env.open_db(n.encode(), txn=txn, create=False))["entries"] for n in names}
    finally:
        env.close()
    expected = spec.expected_state(seed, top)
    missing = expected.keys() - state.keys()
    extra = state.keys() - expected.keys()
    assert not missing, f"height {top}: {len(missing)} committed keys missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"height {top}: {len(extra)} keys of uncommitted blocks present, e.g. {sorted(extra)[:3]}"
    pubkeys = [kp.public_key for kp in spec.keypairs(seed)]
    for key, (version, digest, sender, revoked) in expected.items():
        raw = state[key]
        assert int.from_bytes(raw[:8], "big") == version, key
        assert len(raw) == 17 and raw[16] == 1, key  # change id (16) and flag: live
        record = decode_value(spec.stored_value(key, history[raw[:16]]))
        owner = record["owner"] if key.startswith(b"evidence/") else record["issuer"]
        assert record["digest"] == digest and owner == pubkeys[sender], key
        assert record.get("revoked", False) == revoked, key
    writes = sum(1 for h in range(1, top + 1) for op in spec.block_ops(seed, h) if op.kind != "dup")
    # Every transaction's nonce is used, nothing else: read back from the runs as FORMAT.md says.
    used = {(pubkeys[op.sender], op.nonce) for h in range(1, top + 1) for op in spec.block_ops(seed, h)}
    assert used_nonces(nonce_runs) == used
    assert entries["history"] == writes
    assert {entries[t] for t in ("headers", "blocks", "txids", "receipts", "hashes")} == {top + 1}
    return top, audit_s


def used_nonces(rows: list[tuple[bytes, bytes]]) -> set[tuple[bytes, int]]:
    """(sender, nonce) of every nonce the `nonces` table's runs cover (docs/FORMAT.md section 6)."""
    out = set()
    for key, value in rows:
        sender, end = key[:-8], int.from_bytes(key[-8:], "big")
        if key[-8:] == b"\xff" * 8:  # the sender's highest run: start and end in the value
            start, end = int.from_bytes(value[:8], "big"), int.from_bytes(value[8:], "big")
        else:
            start = int.from_bytes(value, "big")
        out.update((sender, n) for n in range(start, end + 1))
    return out


@dataclass
class Stats:
    cycles: int = 0
    modes: dict[str, int] = field(default_factory=dict)
    inside_block: int = 0  # kills that landed between "begin h" and "committed h"
    inside_commit: int = 0  # ... between "commit-start h" and "commit-end h": inside the LMDB write
    durable_unacked: int = 0  # ... where block h turned out durable (never acknowledged)
    height: int = 0
    audit_s: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.cycles} kill cycles {self.modes}, {self.inside_block} inside apply_block, "
            f"{self.inside_commit} of them inside the LMDB write transaction; {self.durable_unacked} "
            f"blocks durable but never acknowledged; final height {self.height}, "
            f"audits {self.audit_s:.1f} s"
        )


MODES = ("start", "open", "ack", "apply", "commit")


def kill_cycle(path: Path, chain: Chain, mode: str, rng: random.Random, stats: Stats, tmp: Path) -> None:
    writer = Writer(path, chain.seed, tmp / f"writer-{stats.cycles}.err")
    if mode == "start":  # anywhere from interpreter start-up through opening to the first blocks
        time.sleep(rng.uniform(0, 0.4))
    elif mode == "open":  # right after the store opened, or a little later
        assert writer.wait_for(lambda s: s.startswith("open "), 20), "writer did not open the ledger"
        time.sleep(rng.choice([0.0, rng.uniform(0, 0.003), rng.uniform(0, 0.1)]))
    elif mode == "ack":  # the moment an acknowledgement arrives
        for _ in range(rng.randint(1, 6)):
            writer.wait_for(lambda s: s.startswith("committed "), 20)
    elif mode == "apply":  # anywhere in apply_block of a large block: decode, verify, execute, commit
        if writer.wait_for(lambda s: s.startswith("begin ") and int(s.split()[2]) >= BIG, 3):
            time.sleep(rng.uniform(0, 0.1))
    else:  # inside the LMDB write transaction (puts, page writes, fsyncs) of a large block
        if writer.wait_for(lambda s: s.startswith("commit-start ") and chain.size(int(s.split()[1])) >= BIG, 3):
            time.sleep(rng.choice([0.0, rng.uniform(0, 0.01)]))
    lines = writer.kill()
    acked = acknowledged(lines)
    before = stats.height
    top, audit_s = check_ledger(path, chain, acked)
    # Nothing beyond the blocks this writer started: a block it began and never acknowledged is
    # either whole (durable before the ack was printed) or absent, never partial (check_ledger).
    begun = max((int(s.split()[1]) for s in lines if s.startswith("begin ")), default=before)
    assert before <= top <= max(begun, before), (before, top, begun)
    stats.cycles += 1
    stats.modes[mode] = stats.modes.get(mode, 0) + 1
    stats.height, stats.audit_s = top, stats.audit_s + audit_s
    last = lines[-1].split() if lines else ["", "0"]
    if last[0] in ("begin", "commit-start", "commit-end"):
        h = int(last[1])
        stats.inside_block += 1
        stats.inside_commit += last[0] == "commit-start"
        stats.durable_unacked += top == h  # durable although never acknowledged
        if last[0] == "begin":
            assert top == h - 1, f"block {h} was killed before its commit started, yet is present"
        elif last[0] == "commit-end":
            assert top == h, f"block {h} finished its commit but is not durable"
        # After "commit-start" either is right (the commit may have finished just before the kill).


def run_cycles(tmp_path: Path, cycles: int, seed: int) -> Stats:
    path = tmp_path / "ledger"
    chain, rng, stats = Chain(seed), random.Random(seed), Stats()
    # Every kind of moment equally often, in a seeded random order.
    modes = [MODES[i % len(MODES)] for i in range(cycles)]
    rng.shuffle(modes)
    for mode in modes:
        kill_cycle(path, chain, mode, rng, stats, tmp_path)
    print(stats)
    return stats


def test_sigkill_many_times_leaves_a_prefix_of_whole_blocks(tmp_path):
    stats = run_cycles(tmp_path, 32, SEED)
    assert stats.cycles == 32
    # The kills proved something: blocks were committed, and some kills hit a block's write.
    assert stats.height > 0 and stats.inside_commit > 0, str(stats)


@pytest.mark.slow
def test_sigkill_long_run(tmp_path):
    cycles = int(os.environ.get("LEDGERCORE_CRASH_CYCLES", "120"))
    stats = run_cycles(tmp_path, cycles, SEED + 1)
    assert stats.cycles == cycles and stats.inside_commit > 0, str(stats)


def test_readers_never_see_a_partial_block_while_the_writer_is_killed(tmp_path):
    path = tmp_path / "ledger"
    chain, rng = Chain(SEED + 2), random.Random(SEED + 2)
    writer = Writer(path, chain.seed, tmp_path / "w0.err")
    assert writer.wait_for(lambda s: s.startswith("committed "), 20), "writer made no block"
    stop = tmp_path / "stop"
    readers = {
        mode: subprocess.Popen(
            [sys.executable, str(HERE / "crash_reader.py"), str(path), str(chain.seed), "--mode", mode,
             "--stop-file", str(stop)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        for mode in ("store", "ledger", "follow")
    }
    acked = 0
    try:
        for cycle in range(4):
            if cycle:
                writer = Writer(path, chain.seed, tmp_path / f"w{cycle}.err")
            if cycle % 2:  # inside apply_block of a large block
                line = writer.wait_for(lambda s: s.startswith("begin ") and int(s.split()[2]) >= BIG, 3)
                time.sleep(rng.uniform(0, 0.1) if line else 0)
            else:  # after a few acknowledgements: the chain moves on even if every large block is cut
                for _ in range(rng.randint(2, 5)):
                    writer.wait_for(lambda s: s.startswith("committed "), 20)
            acked = max(acked, acknowledged(writer.kill()))
            for mode, reader in readers.items():
                assert reader.poll() is None, f"{mode} reader died: {reader.communicate()[0][-3000:]}"
    finally:
        stop.touch()
        outputs = {mode: r.communicate(timeout=60)[0] for mode, r in readers.items()}
    for mode, reader in readers.items():
        out = outputs[mode]
        assert reader.returncode == 0 and "FAIL" not in out, f"{mode} reader: {out[-3000:]}"
        reads, distinct, highest = map(int, out.split("ok ")[-1].split())
        print(f"{mode} reader: {reads} checked reads over {distinct} heights up to {highest}")
        assert reads > 10 and distinct > 1, f"{mode} reader saw too little: {out}"
    top, _ = check_ledger(path, chain, acked)
    assert top >= highest


def run_writer_until(path: Path, seed: int, height: int, map_size: int = SMALL_MAP) -> None:
    subprocess.run(
        [sys.executable, str(HERE / "crash_writer.py"), str(path), str(seed), "--stop-at", str(height),
         "--map-size", str(map_size)],
        check=True, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def test_a_reader_process_follows_the_map_growth_of_the_writer_process(tmp_path):
    # Regression: another process growing the LMDB map made every read here fail with a raw
    # lmdb.MapResizedError (and Ledger.open with it, from open_db), until the reader restarted.
    path = tmp_path / "ledger"
    run_writer_until(path, SEED, 1)
    with Ledger.open(path, spec.SUITE, map_size=SMALL_MAP) as led:
        size = led._store.env.info()["map_size"]
        run_writer_until(path, SEED, 40)  # grows the file well past this process's map
        assert os.path.getsize(path / "data.mdb") > size
        assert led._store.get("meta", b"height") == (40).to_bytes(8, "big")
        assert led._store.get("headers", (40).to_bytes(8, "big")) is not None
        assert led._store.env.info()["map_size"] >= os.path.getsize(path / "data.mdb")


@pytest.mark.parametrize("contract", ["evidence", "nosuch"])
def test_a_ledger_another_process_wrote_to_refuses_to_write_over_its_blocks(tmp_path, contract):
    # Regression: a second Ledger on the same path kept the head it read when it opened and wrote
    # its next block over the one another process had committed there since (acknowledged, and
    # lost). A block of failed transactions, which appends no history, went through silently.
    path = tmp_path / "ledger"
    run_writer_until(path, SEED, 1)
    kp = signing.generate("ed25519")
    args = {"key": "late", "digest": bytes(32)}
    raw = Transaction.create(kp, contract=contract, method="put", args=args, nonce=1).encode()
    with Ledger.open(path, spec.SUITE) as led:
        run_writer_until(path, SEED, 5)
        with pytest.raises(ConcurrentWriteError, match="stored height 5, this handle's 1"):
            led.apply_block([raw])
    top, _ = check_ledger(path, Chain(SEED), 5)  # exactly the writer's blocks, audited
    assert top == 5
    with Ledger.open(path, spec.SUITE) as led:
        run_writer_until(path, SEED, 7)
        assert led.height == 7  # a read catches the handle up, and it may write on the new head
        blk = led.apply_block([raw])
        assert blk.header.height == 8 and blk.receipts[0].ok == (contract == "evidence")


def test_a_reader_process_follows_what_a_writer_process_commits_and_can_take_over(tmp_path, monkeypatch):
    # Regression: a handle opened before another process committed kept each key it held in its
    # state overlay as of its open (a certificate revoked since stayed valid to it), saw other
    # keys only once folded, and never found transactions committed after its open.
    monkeypatch.setattr(ledger_module, "FOLLOWED_OVERLAY_MIN", 64)  # forget folded entries often
    path, chain = tmp_path / "ledger", Chain(SEED)
    run_writer_until(path, SEED, 1)
    with Ledger.open(path, spec.SUITE) as led:
        done = 1
        for top in (2, 3, 9, 30, 75):  # the writer folds a quarter of its overlay and writes runs
            run_writer_until(path, SEED, top)
            assert led.height == top and led.head == led.header(top)
            expected = spec.expected_state(SEED, top)
            for key, (version, digest, _, revoked) in expected.items():
                contract, name = key.split(b"/", 1)
                value, height, _ = led.get_versioned(contract.decode(), name)
                record = decode_value(value)
                assert (height, record["digest"], record.get("revoked", False)) == (version, digest, revoked), key
            ids = {chain.ids(h)[i : i + 32]: h for h in range(done + 1, top + 1) for i in range(0, len(chain.ids(h)), 32)}
            assert led.tx_heights(list(ids)) == ids
            assert len(led._locator) < spec.LOCATOR_RUN_IDS  # ids the writer put in runs are dropped
            root = led.history_root()
            assert merkle.verify_inclusion(led.header(top).hash, top, top + 1, led.block_proof(top), root, algo="blake3")
            done = top
        assert len(led._overlay) < len(expected), "the follower kept entries the writer had folded"
        # The writer is gone: this handle writes the next block, on the state it followed.
        led.apply_block(spec.block_raws(SEED, top + 1), timestamp=spec.T0 + (top + 1) * 1000, proposer=spec.proposer(SEED))
    assert check_ledger(path, chain, top + 1)[0] == top + 1  # every key, table and root, audited




def test_threads_sharing_a_following_handle_never_read_behind_or_fail(tmp_path, monkeypatch):
    # Regression: a read that found another thread of the handle catching up answered from the
    # head that catch-up was replacing (0 blocks, after the writer process had committed and
    # exited), and proofs read while the catch-up extended the block-hash log raised a bare
    # RuntimeError ("Already mutably borrowed").
    path = tmp_path / "ledger"
    run_writer_until(path, SEED, 1)
    with Ledger.open(path, spec.SUITE) as led:
        assert led.height == 1
        run_writer_until(path, SEED, 12)
        inside, catch_up = threading.Event(), ledger_module.Ledger._catch_up

        def slow_catch_up(self: Ledger, txn: object) -> None:
            inside.set()
            time.sleep(0.3)  # the other thread's read comes in meanwhile
            catch_up(self, txn)

        monkeypatch.setattr(ledger_module.Ledger, "_catch_up", slow_catch_up)
        seen: dict[str, int] = {}
        first = threading.Thread(target=lambda: seen.setdefault("first", led.height))
        first.start()
        assert inside.wait(10)
        seen["second"] = led.height
        first.join()
        assert seen == {"first": 12, "second": 12}
    # The block-hash log is read from other threads while one extends it.
    log, errors = merkle.MerkleLog("blake3"), []
    log.append(b"genesis")
    stop, leaves = threading.Event(), [os.urandom(32) for _ in range(200_000)]

    def prove() -> None:
        while not stop.is_set():
            try:
                log.root(), log.inclusion_proof(0)
            except Exception as exc:  # noqa: BLE001 (any failure is the finding)
                errors.append(exc)

    reader = threading.Thread(target=prove)
    reader.start()
    try:
        for _ in range(5):
            log.extend(leaves)
    finally:
        stop.set()
        reader.join()
    assert errors == [] and log.size == 1_000_001


def test_a_reader_killed_mid_read_leaves_no_stale_slot(tmp_path):
    # Regression: a process SIGKILLed inside a read transaction kept its LMDB reader slot (and so
    # the pages of its snapshot, which then could never be reused) for as long as any other process
    # kept the environment open. Opening the store now clears slots of dead processes.
    path = tmp_path / "ledger"
    run_writer_until(path, SEED, 2)
    code = (
        "import sys, time\nfrom ledgercore.store import Store\n"
        "s = Store(sys.argv[1])\n"
        "with s.read() as txn:\n    print('reading', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    victim = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "reading" and victim.stdout.readline().strip() == "reading"
        victim.kill()
        victim.wait()
        with Ledger.open(path, spec.SUITE) as led:
            table = led._store.env.readers()
        pids = {line.split()[0] for line in table.splitlines()[1:] if line.strip()}
        assert str(holder.pid) in pids and str(victim.pid) not in pids, table
    finally:
        for p in (holder, victim):
            p.kill()
            p.wait()
            p.stdout.close()


_CREATE = "import sys\nfrom ledgercore import Ledger\nLedger.open(sys.argv[1]).close()\n"


@pytest.mark.parametrize("calls", ["pwrite64,pwritev", "fsync,fdatasync", "rename,renameat,renameat2"])
def test_a_ledger_killed_while_it_is_created_opens_afterwards(tmp_path, calls):
    """SIGKILL at each write, flush or rename of a new ledger's creation in turn: every path left
    behind opens (as a new ledger) and takes blocks. LMDB creates its data file before it writes
    the meta pages; killed in between, it left an empty data.mdb that every later open refused."""
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    for n in range(1, 100):
        path = tmp_path / f"l{n}"
        cmd = ["strace", "-f", "-qq", "-o", os.devnull, "-e", f"inject={calls}:signal=KILL:when={n}",
               sys.executable, "-c", _CREATE, str(path)]  # fmt: skip
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if run.returncode != 0 and "ptrace" in run.stderr:
            pytest.skip(f"cannot trace here: {run.stderr.strip()[:200]}")
        with Ledger.open(path) as led:
            assert led.height == 0
            assert led.apply_block([Transaction.create(signing.generate("ed25519"), "evidence", "put",
                                                       {"key": "k", "digest": b"d" * 32}, 1).encode()]).height == 1  # fmt: skip
        if run.returncode == 0:  # n passed the creation's last such call: every one was a kill point
            assert n > 1, "no kill point was reached"
            return
    raise AssertionError("the creation did not finish within 100 kill points")


def test_processes_creating_one_ledger_at_once_make_one_store(tmp_path):
    """Several processes open the same new path at once: one creates the store, the others find it
    (a second data file renamed over the first would unlink the one a process had open)."""
    path = tmp_path / "l"
    go = tmp_path / "go"
    child = ("import os, sys, time\nfrom ledgercore import Ledger\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
             "with Ledger.open(sys.argv[1]) as led: print(led.height)\n")  # fmt: skip
    procs = [subprocess.Popen([sys.executable, "-c", child, str(path), str(go)], stdout=subprocess.PIPE, text=True)
             for _ in range(6)]  # fmt: skip
    time.sleep(1.0)  # every child started and waiting
    go.touch()
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6 and all(o.strip() == "0" for o in outs), outs
    with Ledger.open(path) as led:
        assert led.height == 0
        led.audit()  # raises IntegrityError on any disagreement
        put = Transaction.create(signing.generate("ed25519"), "evidence", "put", {"key": "k", "digest": b"d" * 32}, 1)
        assert led.apply_block([put.encode()]).height == 1
    assert sorted(p.name for p in path.iterdir()) == ["data.mdb", "lock.mdb"]  # no staging left


def test_every_acknowledged_block_was_fsynced_before_the_ack(tmp_path):
    """SIGKILL leaves the OS page cache intact, so it cannot show that an acknowledged block would
    survive a power cut. This traces the writer's system calls instead: for each block, between the
    start and end of its write transaction, the data file is fdatasync'd and then the meta page
    (which makes the block current) is written synchronously, all before the ack is printed."""
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    cmd = ["strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,pwrite64,pwritev,write", "-e", "signal=none",
           "-o", str(trace), sys.executable, str(HERE / "crash_writer.py"), str(tmp_path / "l"), str(SEED),
           "--stop-at", "4"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if run.returncode != 0 and "ptrace" in run.stderr:
        pytest.skip(f"cannot trace here: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == "committed 4"
    lines = trace.read_text().splitlines()
    # The ledger opens its store on the calling thread and commits on its own write thread; the
    # caller waits while the write thread works, so their calls are in one order in the trace.
    threads = {next(line.split()[0] for line in lines if f'write(1, "{say} ' in line) for say in ("open", "commit-start")}
    events: list[tuple[str, str]] = []  # (kind, detail) in the writer process's order
    dsync_fds, data_fds = set(), set()
    for line in lines:
        who, _, call = line.partition(" ")
        call = call.strip()
        if who not in threads:
            continue
        if call.startswith("openat(") and "data.mdb" in call and "= -1" not in call:
            fd = call.rsplit("=", 1)[1].strip()
            data_fds.add(fd)
            if "O_DSYNC" in call or "O_SYNC" in call:
                dsync_fds.add(fd)
        elif call.startswith(("fsync(", "fdatasync(")):
            events.append(("sync", call.split("(")[1].split(")")[0]))
        elif call.startswith(("pwrite64(", "pwritev(")):
            events.append(("pwrite", call.split("(")[1].split(",")[0]))
        elif call.startswith('write(1, "'):
            events.append(("say", call.split('"')[1]))
    says = [d for k, d in events if k == "say"]
    for h in range(1, 5):
        start, end, ack = (events.index(("say", f"{w} {h}")) for w in ("commit-start", "commit-end", "committed"))
        assert start < end < ack, says
        inside = events[start + 1 : end]
        syncs = [i for i, (k, fd) in enumerate(inside) if k == "sync" and fd in data_fds]
        assert syncs, f"block {h}: no fsync/fdatasync of data.mdb inside its commit: {inside}"
        # After the data is flushed, the meta page goes out synchronously: through an O_DSYNC
        # descriptor, or followed by another flush.
        after = inside[syncs[0] + 1 :]
        meta_written = any(k == "pwrite" and fd in dsync_fds for k, fd in after) or any(
            k == "pwrite" and fd in data_fds for k, fd in after
        ) and any(k == "sync" and fd in data_fds for k, fd in after)
        assert meta_written, f"block {h}: the meta page is not written durably after the data flush: {inside}"
