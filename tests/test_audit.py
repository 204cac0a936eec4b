"""Ledger.audit and `ledgercore audit PATH` on healthy ledgers (corrupted ones: test_bad_input.py)."""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import threading

import lmdb
import pytest

from ledgercore import Ledger, Transaction, signing
from ledgercore.cli import main
from ledgercore.codec import decode_value, encode_value
from ledgercore.contracts import Contract, ContractError, method
from ledgercore.errors import IntegrityError, LedgerError
from ledgercore.store import StoreError, height_key

SCHEME = {"ed25519-blake3": "ed25519", "sm2-sm3": "sm2", "p256-sha256": "p256"}


class Counter(Contract):
    """A Python contract, for audits that must replay more than the built-ins."""

    name = "counter"

    @method
    def add(self, ctx, by: int) -> None:
        if by <= 0:
            raise ContractError("by must be positive")
        n = int.from_bytes(ctx.get("n") or bytes(8), "big") + by
        ctx.put("n", n.to_bytes(8, "big"))
        ctx.emit("added", n.to_bytes(8, "big"))


def _chain(path, suite: str, blocks: int = 4, chain_id: str = "dev", receipts_roots: bool = True) -> None:
    kp = signing.generate(SCHEME[suite])
    tx = lambda c, m, n, **a: Transaction.create(kp, c, m, a, n, chain_id=chain_id).encode()  # noqa: E731
    with Ledger.open(path, suite, chain_id=chain_id, contracts=[Counter()], receipts_roots=receipts_roots) as led:
        for b in range(1, blocks + 1):
            n = b * 100
            led.apply_block(
                [tx("evidence", "put", n, key=f"e/{b}", digest=bytes([b]) * 32),
                 tx("cert", "issue", n + 1, cert_id=f"c/{b}", digest=bytes([b]) * 32, meta=None),
                 tx("counter", "add", n + 2, by=b), tx("counter", "add", n + 3, by=-1),
                 tx("evidence", "put", n + 4, key=f"e/{b}", digest=b"\0" * 32)]  # fails: anchored
                + ([tx("cert", "revoke", n + 5, cert_id=f"c/{b - 1}", reason="r")] if b > 1 else []),
                timestamp=1_000 * b, proposer=kp.public_key if b % 2 else b"",
            )  # fmt: skip


@pytest.mark.parametrize("suite", list(SCHEME))
def test_audit_passes_on_a_healthy_ledger_of_every_suite(tmp_path, suite):
    _chain(tmp_path / "l", suite, chain_id="gov-bj")
    with Ledger.open(tmp_path / "l", suite, chain_id="gov-bj", contracts=[Counter()]) as led:
        report = led.audit()
    assert (report.suite, report.chain_id, report.height, report.blocks) == (suite, "gov-bj", 4, 5)
    assert report.transactions == 5 + 3 * 6 and report.failed_transactions == 8 and report.replayed
    assert "audit passed" in str(report)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda v: v[:16] + b"\x00", "says deleted"),  # the flag of a live entry
        (lambda v: (9).to_bytes(8, "big") + v[8:], "newer than its newest change"),
        (lambda v: v[:12] + (7).to_bytes(4, "big") + v[16:], "missing or another key's"),
        (lambda v: v[:10], "not a change id and a flag"),
    ],
    ids=["flag", "newer", "missing", "short"],
)
def test_audit_checks_state_entries_that_a_change_not_yet_folded_replaces(tmp_path, damage, says):
    # Such an entry is not what the store means (the newer change is), so the comparison with
    # the replay never saw it: a damaged one passed the audit.
    path = tmp_path / "l"
    _chain(path, "ed25519-blake3")
    key = b"cert/c/1"  # folded by commit 2, which also revoked it: the revocation is not folded yet
    with Ledger.open(path, contracts=[Counter()]) as led:
        stored, newer = led._store.get("state", key), led._overlay.get(key)
        assert stored is not None and newer is not None and stored[:16] < newer[:16]
        assert led.audit().height == 4
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        db = env.open_db(b"state", txn=txn, create=False)
        txn.put(key, damage(txn.get(key, db=db)), db=db)
    env.close()
    with Ledger.open(path, contracts=[Counter()]) as led:
        with pytest.raises(IntegrityError, match=says) as info:
            led.audit()
    assert info.value.field == "state"


def test_audit_replays_with_the_ledgers_own_contracts(tmp_path):
    _chain(tmp_path / "l", "ed25519-blake3")
    # Without the Python contract its transactions replay as "unknown contract": the receipts
    # (and the state root) differ, and the audit says where.
    with Ledger.open(tmp_path / "l") as led:
        with pytest.raises(IntegrityError) as info:
            led.audit()
    assert info.value.height == 1 and info.value.field == "state_root"
    with Ledger.open(tmp_path / "l", contracts=[Counter()]) as led:
        assert led.audit().height == 4


def test_audit_reads_one_snapshot_while_blocks_commit(tmp_path):
    kp = signing.generate("ed25519")
    def put(n: int) -> bytes:
        return Transaction.create(kp, "evidence", "put", {"key": f"k/{n}", "digest": b"d" * 32}, n).encode()

    with Ledger.open(tmp_path / "l") as led:
        for b in range(1, 6):
            led.apply_block([put(b * 1000 + i) for i in range(200)])
        stop, errors = threading.Event(), []

        def writer() -> None:
            try:
                b = 6
                while not stop.is_set():
                    led.apply_block([put(b * 1000 + i) for i in range(200)])
                    b += 1
            except Exception as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        try:
            reports = [led.audit() for _ in range(3)]
        finally:
            stop.set()
            t.join()
        assert not errors
        assert all(r.height >= 5 for r in reports) and reports[-1].height > 5
        assert led.audit().height == led.height


def test_cli_audit(tmp_path, capsys):
    path = tmp_path / "l"
    _chain(path, "sm2-sm3", chain_id="gov-sh")
    assert main(["audit", str(path), "--contract", "test_audit:Counter"]) == 0
    out = capsys.readouterr().out
    assert "audit passed: sm2-sm3 chain 'gov-sh', blocks 0..4" in out and "by replay" in out
    assert main(["audit", str(path), "--no-replay"]) == 0
    assert "by replay" not in capsys.readouterr().out
    # Corrupt one stored hash leaf: exit status 1 and the height named.
    import lmdb

    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        db = env.open_db(b"hashes", txn=txn, create=False)
        txn.put(height_key(2), bytes(32), db=db)
    env.close()
    assert main(["audit", str(path), "--contract", "test_audit:Counter"]) == 1
    assert "audit FAILED: height 2: hash:" in capsys.readouterr().out
    # Damage the ledger refuses to open on (history it rebuilds state from) fails the audit too.
    damaged = tmp_path / "damaged"
    _chain(damaged, "ed25519-blake3", chain_id="gov-sh")
    env = lmdb.open(str(damaged), max_dbs=16)
    with env.begin(write=True) as txn:
        db = env.open_db(b"history", txn=txn, create=False)
        first = next(iter(txn.cursor(db=db).iternext(values=False)))
        txn.put(first, b"\x00", db=db)
    env.close()
    assert main(["audit", str(damaged), "--contract", "test_audit:Counter"]) == 1
    assert "audit FAILED: height 1: history: malformed history entry" in capsys.readouterr().out
    # Not a ledger: exit status 2, and nothing created there.
    assert main(["audit", str(tmp_path / "nothing")]) == 2
    assert "no ledger" in capsys.readouterr().err and not (tmp_path / "nothing").exists()


def test_an_audit_whose_own_replay_cannot_be_written_is_no_verdict(tmp_path):
    # Regression: the replay ledger (a scratch store in /dev/shm or the temp dir) failing to
    # write, its disk full, was reported as damage of the healthy ledger audited: exit 1.
    path = tmp_path / "l"
    kp = signing.generate("ed25519")
    with Ledger.open(path) as led:
        for b in range(5):
            led.apply_block([Transaction.create(kp, "evidence", "put", {"key": f"k/{b}/{i}", "digest": bytes(32)}, b * 300 + i).encode()
                             for i in range(300)])  # fmt: skip

    def small_files() -> None:  # the replay ledger may grow to 64 KiB only
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, resource.RLIM_INFINITY))

    audit_ = [sys.executable, "-m", "ledgercore", "audit", str(path)]
    out = subprocess.run(audit_, capture_output=True, text=True, preexec_fn=small_files, timeout=120)
    assert out.returncode == 2, out
    assert out.stderr.startswith(f"ledgercore audit: cannot audit '{path}': cannot write the ledger store at "), out.stderr
    assert "/replay'" in out.stderr and "files of at most 65536 bytes (RLIMIT_FSIZE)" in out.stderr, out.stderr
    assert subprocess.run(audit_, capture_output=True, timeout=120).returncode == 0  # the ledger is sound


def test_a_contract_that_cannot_be_loaded_is_a_usage_error_not_damage(tmp_path, capsys, monkeypatch):
    # Whatever loading a --contract raised beyond ImportError/AttributeError/ValueError was
    # reported as damage: 'audit FAILED: reading the store raised TypeError...', exit status 1.
    path = tmp_path / "l"
    _chain(path, "ed25519-blake3", blocks=1)
    (tmp_path / "broken_syntax.py").write_text("def (:\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('no config')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the audit's child process gets this sys.path too
    cases = {
        "subprocess:Popen": "TypeError",  # a class whose __init__ needs an argument
        "broken_syntax:X": "SyntaxError",
        "raises_on_import:X": "RuntimeError: no config",
        ".relative:X": "TypeError",
        "nosuchmodule:X": "ModuleNotFoundError",
        "nocolon": "wants MODULE:NAME",
    }
    for spec, why in cases.items():
        assert main(["audit", str(path), "--contract", spec]) == 2, spec
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"ledgercore audit: cannot load --contract {spec}: "), err
        assert why in err and err.count("\n") == 1, err
    assert main(["audit", str(path), "--authorize", "raises_on_import:f"]) == 2
    assert "cannot load --authorize raises_on_import:f: RuntimeError" in capsys.readouterr().err


def test_integrity_error_is_a_ledger_error_with_height_and_field():
    err = IntegrityError(7, "tx_root", "not the root")
    assert isinstance(err, LedgerError) and (err.height, err.field) == (7, "tx_root")
    assert str(err) == "height 7: tx_root: not the root"
    assert str(IntegrityError(None, "meta.suite", "x")) == "chain metadata: meta.suite: x"


def _tables(path) -> list[bytes]:
    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return [bytes(k) for k in txn.cursor().iternext(values=False)]
    finally:
        env.close()


def test_another_lmdb_environment_is_refused_and_left_as_it_was(tmp_path, capsys):
    # Opening (or auditing) a plain LMDB environment created the ledger's ten tables in it and,
    # for Ledger.open, wrote a genesis block there; an empty environment was written to as well.
    foreign = tmp_path / "foreign"
    env = lmdb.open(str(foreign), max_dbs=4)
    with env.begin(write=True) as txn:
        txn.put(b"alice", b"admin", db=env.open_db(b"users", txn=txn))
    env.close()
    empty = tmp_path / "empty"
    lmdb.open(str(empty)).close()
    before = {p: (p / "data.mdb").read_bytes() for p in (foreign, empty)}
    assert main(["audit", str(foreign)]) == 2
    assert "is not a ledger store: it holds 'users'" in capsys.readouterr().err
    assert main(["audit", str(empty)]) == 2
    assert "is not a ledger store: it holds no ledger metadata" in capsys.readouterr().err
    with pytest.raises(StoreError, match="is not a ledger store: it holds 'users'"):
        Ledger.open(foreign)
    assert {p: (p / "data.mdb").read_bytes() for p in (foreign, empty)} == before
    assert _tables(foreign) == [b"users"]
    with Ledger.open(empty) as led:  # an environment holding nothing yet may become a ledger
        assert led.height == 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("hashes", "hashes: the store holds no block hashes"),  # was a bare OverflowError
        ("chain_id", "meta/chain_id: not UTF-8"),  # was a bare UnicodeDecodeError
        ("no_chain_id", "meta/chain_id: missing"),  # was 'is chain \'\', not \'dev\''
        ("cut", "data.mdb: "),  # was 'cannot audit' (exit 2), as if it were no ledger
        ("top_header", "the stored header at the top, height 2, does not decode"),  # was exit 2 too
        ("genesis_header", "the stored genesis header does not decode"),  # read for its version: was a bare DecodeError
        ("unknown_suite", "meta/suite: names no suite: 'sm2-sm4'"),  # was UnknownNameError, exit 2
        # Was opened as that suite: the next block was appended under the other suite's rules.
        ("other_suite", "the top block's suite is 'ed25519-blake3', the store's metadata says 'sm2-sm3'"),
    ],
)
def test_a_damaged_store_fails_to_open_with_a_typed_error_and_fails_the_audit(tmp_path, capsys, damage, message):
    path = tmp_path / "l"
    _chain(path, "ed25519-blake3", blocks=2)
    if damage == "cut":
        data = path / "data.mdb"
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:
        env = lmdb.open(str(path), max_dbs=16)
        with env.begin(write=True) as txn:
            if damage == "hashes":
                txn.drop(env.open_db(b"hashes", txn=txn, create=False), delete=False)
            elif damage in ("top_header", "genesis_header"):
                headers, at = env.open_db(b"headers", txn=txn, create=False), height_key(2 if damage == "top_header" else 0)
                txn.put(at, txn.get(at, db=headers)[:-3], db=headers)
            elif damage == "chain_id":
                txn.put(b"chain_id", b"\xff\xfe", db=env.open_db(b"meta", txn=txn, create=False))
            elif damage in ("unknown_suite", "other_suite"):
                name = b"sm2-sm4" if damage == "unknown_suite" else b"sm2-sm3"
                txn.put(b"suite", name, db=env.open_db(b"meta", txn=txn, create=False))
            else:
                txn.delete(b"chain_id", db=env.open_db(b"meta", txn=txn, create=False))
        env.close()
    with pytest.raises(LedgerError) as opened:
        Ledger.open(path, contracts=[Counter()])
    shown = f"{opened.value} / {opened.value.__cause__}"
    assert message in shown, shown
    assert main(["audit", str(path), "--contract", "test_audit:Counter"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("audit FAILED") and message in out and "Traceback" not in out, out


@pytest.mark.parametrize(
    ("stored", "says"),
    [
        ([5, [[-1, "x"]], []], "a failure that is not for one of the block's transactions"),  # marked the last tx failed
        ([5, [], [[7, "e", b""]]], "an event that is not for one of the block's transactions"),  # was a bare IndexError
        ([5, [], [[0, "e", "text"]]], "an event whose data is not bytes"),
        ([5, [[0, 5]], []], "a failure that is not for one of the block's transactions"),  # an error that is no str
        ([5, [[0, "x"], [0, "y"]], []], "two failures for one transaction"),  # the audit counted two
        ([5, [[0]], []], "do not decode"),  # was a bare ValueError
        ([6, [], []], "cover 6 transactions, the block has 5"),
        (None, "do not decode"),  # not an encoding at all
    ],
)
def test_damaged_receipts_are_store_damage_wherever_they_are_read(tmp_path, capsys, stored, says):
    path = tmp_path / "l"
    _chain(path, "ed25519-blake3", blocks=2)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        data = b"\xff" if stored is None else encode_value(stored)
        txn.put(height_key(1), data, db=env.open_db(b"receipts", txn=txn, create=False))
    env.close()
    with Ledger.open(path, contracts=[Counter()]) as led:
        first = led.block(1).txids[0]
        reads = [lambda: led.block(1).receipts, lambda: led.tx(first)]
        if "event" not in says:  # failures alone are read without the events
            reads.append(lambda: led.block(1).failures)
        for read in reads:
            with pytest.raises(IntegrityError, match=f"height 1: receipts: .*{re.escape(says)}"):
                read()
        assert led.block(2).receipts[0].ok  # the other blocks read as before
    assert main(["audit", str(path), "--no-replay"]) == 1
    assert "audit FAILED: height 1: receipts: " in capsys.readouterr().out


def test_a_receipt_changed_in_the_store_no_longer_matches_its_blocks_receipts_root(tmp_path, capsys):
    # Receipts were in no header: a failed transaction's receipt rewritten as a success (or the
    # reverse) changed no hash, and only a replay, with the chain's code, could tell.
    path = tmp_path / "l"
    _chain(path, "ed25519-blake3", blocks=2)
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        receipts = env.open_db(b"receipts", txn=txn, create=False)
        count, failures, events = decode_value(txn.get(height_key(1), db=receipts))  # type: ignore[misc]
        assert failures  # the block's anchored-twice evidence
        txn.put(height_key(1), encode_value([count, [], events]), db=receipts)  # now all succeeded
    env.close()
    assert main(["audit", str(path), "--no-replay", "--contract", "test_audit:Counter"]) == 1
    assert "audit FAILED: height 1: receipts_root: not the hash of the block's stored receipts" in capsys.readouterr().out


def test_a_chain_made_before_receipts_roots_keeps_version_1_headers_and_audits_clean(tmp_path):
    path = tmp_path / "l"
    _chain(path, "sm2-sm3", blocks=2, receipts_roots=False)
    with Ledger.open(path, contracts=[Counter()]) as led:
        kp = signing.generate("sm2")
        led.apply_block([Transaction.create(kp, "evidence", "put", {"key": "late", "digest": bytes(32)}, 1).encode()])
        assert [led.header(h).receipts_root for h in range(4)] == [b""] * 4
        assert [led.header(h).encode()[0] for h in range(4)] == [1] * 4
        assert led.audit().height == 3
    _chain(tmp_path / "new", "sm2-sm3", blocks=1)
    with Ledger.open(tmp_path / "new", contracts=[Counter()]) as led:
        assert [led.header(h).encode()[0] for h in range(2)] == [2, 2] and led.audit().height == 1


def only_the_first_sender(senders, contracts, methods):  # type: ignore[no-untyped-def]
    """A chain's permission hook: the sender whose key starts lowest-valued may call; others not."""
    import numpy as np

    return np.array([bytes(s)[0] < 0x80 for s in senders], dtype=bool)


def test_the_audit_command_replays_with_the_chains_permission_hook(tmp_path, capsys):
    # Without the hook the replay admitted what the chain had refused, and an honest ledger was
    # reported as tampered ('state_root: differs from the replay').
    keys = [signing.from_private_bytes("ed25519", bytes([i]) * 32) for i in range(1, 40)]
    low = next(k for k in keys if k.public_key[0] < 0x80)
    high = next(k for k in keys if k.public_key[0] >= 0x80)
    path = tmp_path / "l"
    with Ledger.open(path, authorize=only_the_first_sender) as led:
        put = lambda kp, key: Transaction.create(kp, "evidence", "put", {"key": key, "digest": bytes(32)}, 1).encode()  # noqa: E731
        assert [r.ok for r in led.apply_block([put(low, "a"), put(high, "b")]).receipts] == [True, False]
    assert main(["audit", str(path)]) == 1
    out = capsys.readouterr().out
    assert "state_root" in out and "give the chain's with --authorize MODULE:NAME" in out, out
    assert main(["audit", str(path), "--authorize", "test_audit:only_the_first_sender"]) == 0
    assert "audit passed" in capsys.readouterr().out
