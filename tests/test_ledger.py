"""The single-node ledger as a user drives it: real LMDB files under a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from ledgercore import Block, BlockInput, Ledger, Transaction, _native, hashing, merkle, signing
from ledgercore import ledger as ledger_module
from ledgercore.codec import decode_value, encode_value
from ledgercore.contracts import Contract, ContractError, method, query
from ledgercore.contracts.base import SliceResult
from ledgercore.errors import (
    ChainMismatchError,
    DecodeError,
    IntegrityError,
    InvalidInputError,
    InvalidLengthError,
    InvalidSignatureError,
    LedgerError,
    MalformedInputError,
    NotFoundError,
    OutOfRangeError,
    UnknownNameError,
)
from ledgercore.receipts import verify_receipt
from ledgercore.store import Store, StoreError, height_key
from ledgercore.suites import get_suite

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors"))
import make_ledger_vectors as vectors  # its Registry contract sets and deletes keys

SUITES = ["ed25519-blake3", "sm2-sm3", "p256-sha256"]
SCHEME = {"ed25519-blake3": "ed25519", "sm2-sm3": "sm2", "p256-sha256": "p256"}
HASH = {"ed25519-blake3": "blake3", "sm2-sm3": "sm3", "p256-sha256": "sha256"}


def put(kp: signing.KeyPair, key: str, nonce: int, digest: bytes | None = None, **kw: object) -> bytes:
    digest = digest if digest is not None else bytes([nonce % 256]) * 32
    return Transaction.create(kp, "evidence", "put", {"key": key, "digest": digest}, nonce, **kw).encode()


@pytest.fixture(params=SUITES)
def suite(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def kp(suite: str) -> signing.KeyPair:
    return signing.generate(SCHEME[suite])


def test_new_ledger_has_a_genesis_block_and_reopens_with_its_suite(tmp_path, suite):
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        assert led.height == 0
        genesis = led.header(0)
        assert genesis.height == 0 and genesis.tx_count == 0 and genesis.prev_hash == bytes(32)
    with Ledger.open(tmp_path / "l") as led:
        assert led.suite.name == suite
        assert led.header(0) == genesis
    other = "sm2-sm3" if suite != "sm2-sm3" else "p256-sha256"
    with pytest.raises(ChainMismatchError, match=suite):
        Ledger.open(tmp_path / "l", suite=other)
    with pytest.raises(ChainMismatchError, match="dev"):
        Ledger.open(tmp_path / "l", chain_id="gov-bj")
    with pytest.raises(UnknownNameError, match="nope"):
        Ledger.open(tmp_path / "m", suite="nope")


def test_creating_a_chain_another_process_created_first_keeps_the_first(tmp_path):
    # Two processes opening one new path at once both found no chain; the second's genesis
    # overwrote the first's. Creation now writes only where the chain is still absent.
    with Ledger.open(tmp_path / "l", chain_id="gov-bj") as led:
        genesis = led.header(0)
        late = Ledger._write_genesis(led._store, get_suite("sm2-sm3"), "gov-sh", True)
        assert late == b"ed25519-blake3"  # the suite of the chain that is there
        assert led._store.get("meta", b"chain_id") == b"gov-bj"
        assert led._store.get("headers", height_key(0)) == genesis.encode()


def test_apply_block_commits_state_headers_proofs(tmp_path, suite, kp):
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        raws = [put(kp, f"lic/{i}", i) for i in range(1, 6)]
        blk = led.apply_block(raws)
        assert blk.header.height == led.height == 1
        assert [r.ok for r in blk.receipts] == [True] * 5
        h = led.header(1)
        assert h == blk.header and h.prev_hash == led.header(0).hash and h.tx_count == 5
        ids = [Transaction.decode(r).id for r in raws]
        assert blk.txids == ids
        assert h.tx_root == merkle.root(ids, HASH[suite])
        assert h.history_root == merkle.root([led.header(0).hash], HASH[suite])
        record = decode_value(led.get("evidence", "lic/3"))
        assert record == {"digest": bytes([3]) * 32, "meta": None, "owner": kp.public_key}
        assert led.get("evidence", "lic/99") is None
        # Every transaction is provable against its block's tx root.
        for i, txid in enumerate(ids):
            t = led.tx(txid)
            assert (t.height, t.index, t.receipt.ok) == (1, i, True)
            assert t.tx.encode() == raws[i]
            assert merkle.verify_inclusion(txid, t.index, h.tx_count, t.proof, led.header(t.height).tx_root, HASH[suite])
        assert led.block(1).raws == raws


def test_a_transactions_outcome_is_proven_by_its_blocks_receipts_root(tmp_path, kp, suite):
    # Receipts were in no header: an inclusion proof showed a transaction was in a block, and
    # nothing showed whether it succeeded (a second reimbursement refused, or paid).
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        blk = led.apply_block([put(kp, "lic/1", 1), put(kp, "lic/1", 2), put(kp, "lic/2", 3)])
        header, record = led.header(blk.height), led.block(blk.height).receipts_record
        assert header.receipts_root == hashing.digest(record, HASH[suite]) and header.encode()[0] == 2
        proven = [verify_receipt(record, i, header) for i in range(3)]
        assert proven == blk.receipts and [r.ok for r in proven if r] == [True, False, True]
        assert "already" in str(proven[1].error)  # type: ignore[union-attr]
        count, failures, events = decode_value(record)  # type: ignore[misc]
        forged = encode_value([count, [], events])  # the failure dropped: all succeeded
        assert verify_receipt(forged, 1, header) is None
        with pytest.raises(InvalidInputError, match="one of the block's 3 positions, got 3"):
            verify_receipt(record, 3, header)
    with Ledger.open(tmp_path / "old", suite=suite, receipts_roots=False) as led:  # as chains were made before
        blk = led.apply_block([put(kp, "lic/1", 1)])
        with pytest.raises(InvalidInputError, match="proven by a version 2 header"):
            verify_receipt(blk.receipts_record, 0, blk.header)


def test_block_hash_log_proves_inclusion_and_append_only(tmp_path, kp, suite):
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        for b in range(1, 9):
            led.apply_block([put(kp, f"k/{b}", b)])
        algo = led.suite.hash
        for h in range(0, 9):
            proof = led.block_proof(h)
            assert merkle.verify_inclusion(led.header(h).hash, h, 9, proof, led.history_root(), algo)
        # A header's history_root commits to every earlier block.
        assert led.header(6).history_root == led.history_root(6)
        proof = led.block_proof(2, size=6)
        assert merkle.verify_inclusion(led.header(2).hash, 2, 6, proof, led.header(6).history_root, algo)
        cp = led.consistency_proof(4, 9)
        assert merkle.verify_consistency(4, 9, led.history_root(4), led.history_root(9), cp, algo)
        with pytest.raises(NotFoundError):
            led.block_proof(9)
        with pytest.raises(ValueError):
            led.consistency_proof(10)
        # Sizes are counts of committed blocks: anything else is named and refused.
        for call, words in [
            (lambda: led.block_proof(0, size=10), "size 10 is outside 0..9, the number of committed blocks"),
            (lambda: led.block_proof(0, size="9"), "size is an int, got str"),
            (lambda: led.consistency_proof(5, 4), "old_size 5 is outside 0..4, the new size"),
            (lambda: led.consistency_proof(-1), "old_size -1 is outside 0..9"),
            (lambda: led.consistency_proof(True, 4), "old_size is an int, got bool"),
            (lambda: led.consistency_proof(1, 10), "new_size 10 is outside 0..9"),
            # str() refuses ints of over 4300 digits: such a value is named by its size.
            (lambda: led.consistency_proof(10**5000), "old_size (an int of 16610 bits) is outside 0..9"),
        ]:
            with pytest.raises(InvalidInputError, match=re.escape(words)):
                call()
        for call, words in [
            (lambda: led.block_proof(-(10**5000)), "no block at height -(an int of 16610 bits)"),
            (lambda: led.header(10**5000), "no block at height (an int of 16610 bits)"),
        ]:
            with pytest.raises(NotFoundError, match=re.escape(words)):
                call()


def test_failed_transactions_get_receipts_and_no_writes(tmp_path, kp, suite):
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        led.apply_block([put(kp, "lic/a", 1)])
        raws = [
            put(kp, "lic/a", 2),  # already anchored
            put(kp, "lic/b", 1),  # replayed nonce
            Transaction.create(kp, "nosuch", "put", {}, 3).encode(),
            Transaction.create(kp, "evidence", "remove", {"key": "lic/a"}, 4).encode(),
            Transaction.create(kp, "evidence", "put", {"key": "lic/c", "digest": b"x" * 32, "meta": b"m" * 5000}, 5).encode(),
            put(kp, "lic/d", 6),
            put(kp, "lic/e", 6),  # same nonce again inside the block
        ]
        blk = led.apply_block(raws)
        rs = blk.receipts
        assert [r.ok for r in rs] == [False, False, False, False, False, True, False]
        assert "already anchored" in rs[0].error
        assert "replayed nonce 1" in rs[1].error
        assert "unknown contract 'nosuch'" in rs[2].error
        assert "no method \"remove\"" in rs[3].error
        assert "4096-byte limit" in rs[4].error
        assert "replayed nonce 6" in rs[6].error
        assert led.get("evidence", "lic/b") is None and led.get("evidence", "lic/c") is None
        assert led.get("evidence", "lic/e") is None and led.get("evidence", "lic/d") is not None
        assert decode_value(led.get("evidence", "lic/a"))["digest"] == bytes([1]) * 32
        # A replay of a whole committed transaction fails and keeps the original's index entry.
        again = led.apply_block([raws[5]])
        assert not again.receipts[0].ok and "replayed nonce" in again.receipts[0].error
        assert led.tx(Transaction.decode(raws[5]).id).height == 2


def test_bad_blocks_are_refused_whole_and_the_ledger_stays_usable(tmp_path, kp, suite):
    with Ledger.open(tmp_path / "l", suite=suite) as led:
        good = [put(kp, f"g/{i}", i) for i in range(1, 4)]
        tampered = bytearray(good[1])
        tampered[-1] ^= 1
        with pytest.raises(InvalidSignatureError, match="index 1") as info:
            led.apply_block([good[0], bytes(tampered), good[2]])
        assert info.value.indices == [1]
        with pytest.raises(DecodeError, match="transaction 1"):
            led.apply_block([good[0], good[1][:-5]])
        with pytest.raises(DecodeError, match="transaction 0"):
            led.apply_block([put(kp, "x", 9, chain_id="other-chain")])
        with pytest.raises(DecodeError):
            led.apply_block([b"\x00garbage"])
        assert led.height == 0 and led.get("evidence", "g/1") is None
        blk = led.apply_block(good)
        assert blk.header.height == 1 and all(r.ok for r in blk.receipts)
        assert isinstance(info.value, LedgerError) and isinstance(info.value, ValueError)


def test_a_sender_may_use_its_nonces_in_any_order_each_once(tmp_path):
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l") as led:
        blk = led.apply_block([put(kp, "a", 5), put(kp, "b", 3), put(kp, "c", 5), put(kp, "d", 4), put(kp, "e", 9)])
        assert [r.ok for r in blk.receipts] == [True, True, False, True, True]
        assert "replayed nonce 5" in blk.receipts[2].error
        # One group write: the second block sees the nonces the first used.
        first, second = led.apply_group([
            BlockInput([put(kp, "f", 1), put(kp, "g", 3)]),
            BlockInput([put(kp, "h", 1), put(kp, "i", 2), put(kp, "j", 10)]),
        ])  # fmt: skip
        assert [r.ok for r in first.receipts] == [True, False] and [r.ok for r in second.receipts] == [False, True, True]
        assert led.audit().height == 3
        with led._store.read() as txn:
            runs = list(txn.cursor(db=led._store.tables["nonces"]))
    # Used: 1..5 and 9..10, as docs/FORMAT.md section 6 lays them out.
    u64 = lambda n: n.to_bytes(8, "big")  # noqa: E731
    assert runs == [(kp.public_key + u64(5), u64(1)), (kp.public_key + b"\xff" * 8, u64(9) + u64(10))]

def test_a_nonce_below_the_head_reads_its_neighbours_not_every_run(tmp_path, monkeypatch):
    """A sender whose gaps left 1,000 runs: going back below its head reads the one or two runs
    each low nonce can be in or join, not all the runs above it (which a sender could otherwise
    make every block walk)."""
    kp = signing.generate("ed25519")
    read: list[int] = []
    reader = Ledger._read_nonce_runs

    def counted(self, txn, starts):
        rows = reader(self, txn, starts)
        read.append(len(rows))
        return rows

    monkeypatch.setattr(Ledger, "_read_nonce_runs", counted)
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(kp, f"e{n}", n) for n in range(2, 2002, 2)])  # used: 2, 4, ..., 2000
        assert read == [0]
        blk = led.apply_block([put(kp, "a", 1), put(kp, "b", 4), put(kp, "c", 3), put(kp, "d", 1001), put(kp, "f", 2001)])
        assert [r.ok for r in blk.receipts] == [True, False, True, True, True]
        assert "replayed nonce 4" in blk.receipts[1].error
        # Lookups from 0, 2, 3 and 1000 (2001 is above the head's start): at most two rows each.
        assert read[1] <= 2 * 4
        again = led.apply_block([put(kp, "g", 3), put(kp, "h", 1001), put(kp, "i", 5)])
        assert [r.ok for r in again.receipts] == [False, False, True]
        assert led.audit().height == 3
        with led._store.read() as txn:
            runs = {k[-8:]: v for k, v in txn.cursor(db=led._store.tables["nonces"]) if k.startswith(kp.public_key)}
    u64 = lambda n: n.to_bytes(8, "big")  # noqa: E731
    # 1..6 joined; 1000..1002 joined; 2000..2001 is the head run; every other even nonce alone.
    assert runs[u64(6)] == u64(1) and runs[u64(1002)] == u64(1000) and runs[b"\xff" * 8] == u64(2000) + u64(2001)
    assert len(runs) == 1000 - 2 - 1  # of the 1,000 runs, 2, 4, 6 are one now, and 1000, 1002



def test_history_records_every_change(tmp_path):
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l", contracts=[vectors.Registry()]) as led:
        tx = lambda m, n, **a: Transaction.create(kp, "registry", m, a, n).encode()  # noqa: E731
        b1 = led.apply_block([tx("set", 1, key="k", value=b"v1"), tx("set", 2, key="k", value=b"v2")])
        b2 = led.apply_block([tx("drop", 3, key="k"), tx("drop", 4, key="k"), tx("set", 5, key="k", value=b"v3")])
        assert [r.ok for r in b2.receipts] == [True, False, True]
        assert "k is not set" in b2.receipts[1].error
        hist = led.history("registry", "k")
        assert [(e.height, e.index, e.value) for e in hist] == [(1, 0, b"v1"), (1, 1, b"v2"), (2, 0, None), (2, 2, b"v3")]
        assert hist[0].txid == b1.txids[0]
        assert led.get_versioned("registry", "k") == (b"v3", 2, 2)
        # History is keyed by change id (height, tx, write ordinal): appended block after block.
        with led._store.read() as txn, txn.cursor(db=led._store.tables["history"]) as cur:
            assert [k[:12] for k in cur.iternext(values=False)] == [
                height_key(h) + i.to_bytes(4, "big") for h, i in [(1, 0), (1, 1), (2, 0), (2, 2)]
            ]


def test_history_keeps_every_write_of_one_transaction_and_survives_deletes(tmp_path):
    kp = signing.generate("ed25519")

    class Counter(Contract):
        """Writes ``key`` once per value given, all in one transaction (the base class would keep
        only the last), then optionally deletes it."""

        name = "counter"

        def execute(self, sl):
            res = SliceResult(ok=np.ones(len(sl.indices), dtype=bool))
            args = sl.batch.args
            for i in sl.indices.tolist():
                a = decode_value(args[i])
                for v in a["values"]:
                    res.keys.append(_native.state_key("counter", a["key"].encode()))
                    res.values.append(v)
                    res.txs.append(i)
            return res

    with Ledger.open(tmp_path / "l", contracts=[Counter()]) as led:
        def tx(nonce: int, key: str, *values: bytes | None) -> bytes:
            return Transaction.create(kp, "counter", "w", {"key": key, "values": list(values)}, nonce).encode()

        led.apply_block([tx(1, "a", b"1", b"2"), tx(2, "b", b"x"), tx(3, "a", b"3", None, b"4", None)])
        assert [(e.height, e.index, e.value) for e in led.history("counter", "a")] == [
            (1, 0, b"1"), (1, 0, b"2"), (1, 2, b"3"), (1, 2, None), (1, 2, b"4"), (1, 2, None),
        ]  # fmt: skip
        # Deleted: absent to readers, but its history stays reachable and grows on re-creation.
        assert led.get("counter", "a") is None and led.get_versioned("counter", "a") is None
        led.apply_block([tx(4, "a", b"5")])
        assert [e.value for e in led.history("counter", "a")] == [b"1", b"2", b"3", None, b"4", None, b"5"]
        assert led.get_versioned("counter", "a") == (b"5", 2, 0)
        assert [e.value for e in led.history("counter", "b")] == [b"x"]
        assert led.audit().height == 2
        # Beside a built-in slice (whose kernel reads every key it writes), a slice that writes
        # a stored key it never read still links that write to the key's last change.
        led.apply_block([put(kp, "e/1", 5), tx(6, "b", b"y")])
        assert [(e.height, e.value) for e in led.history("counter", "b")] == [(1, b"x"), (3, b"y")]
        assert led.get("evidence", "e/1") is not None
        assert led.audit().height == 3


def test_a_broken_history_chain_is_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 1)  # each commit folds all before it
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(kp, "a", 1)])
        led.apply_block([put(kp, "ab", 2)])
        led.apply_block([])  # folds both keys' entries into the state table
        store = led._store
        skey = _native.state_key("evidence", b"a")
        with store.env.begin(write=True) as txn:
            change = txn.get(skey, db=store.tables["state"])[:16]
            # Point key a at key ab's change: the walk must notice it is another key's entry, even
            # one whose key starts with a's.
            b_change = txn.get(_native.state_key("evidence", b"ab"), db=store.tables["state"])[:16]
            txn.put(skey, b_change + txn.get(skey, db=store.tables["state"])[16:], db=store.tables["state"])
        with pytest.raises(IntegrityError, match="another key's"):
            led.history("evidence", "a")
        with store.env.begin(write=True) as txn:
            txn.put(skey, change + txn.get(skey, db=store.tables["state"])[16:], db=store.tables["state"])
            entry = txn.get(change, db=store.tables["history"])
            txn.put(change, change + entry[16:], db=store.tables["history"])  # a link to itself
        with pytest.raises(IntegrityError, match="links to a later one"):
            led.history("evidence", "a")


def test_cert_issue_revoke_and_query(tmp_path):
    bureau, other = signing.generate("sm2"), signing.generate("sm2")
    with Ledger.open(tmp_path / "l", suite="sm2-sm3") as led:
        digest = b"\x11" * 32
        issue = Transaction.create(bureau, "cert", "issue", {"cert_id": "BL-1", "digest": digest, "meta": {"type": "licence"}}, 1)
        led.apply_block([issue.encode()])
        assert led.query("cert", "status", cert_id="BL-1", digest=digest)["digest_matches"] is True
        assert led.query("cert", "status", cert_id="BL-1", digest=b"\x12" * 32)["digest_matches"] is False
        assert led.query("cert", "status", cert_id="BL-2")["registered"] is False
        steal = Transaction.create(other, "cert", "revoke", {"cert_id": "BL-1", "reason": "x"}, 1)
        revoke = Transaction.create(bureau, "cert", "revoke", {"cert_id": "BL-1", "reason": "cancelled"}, 2)
        blk = led.apply_block([steal.encode(), revoke.encode()])
        assert [r.ok for r in blk.receipts] == [False, True]
        status = led.query("cert", "status", cert_id="BL-1", digest=digest)
        assert status["registered"] and status["revoked"] and status["reason"] == "cancelled"
        assert status["meta"] == {"type": "licence"} and status["issuer"] == bureau.public_key
        with pytest.raises(UnknownNameError):
            led.query("nosuch", "status")


def test_python_contract_errors_and_permission_hook(tmp_path):
    admin, citizen = signing.generate("ed25519"), signing.generate("ed25519")

    class Counter(Contract):
        name = "counter"

        @method
        def add(self, ctx, by: int) -> None:
            current = int.from_bytes(ctx.get("n") or b"\0" * 8, "big")
            if by <= 0:
                raise ContractError("by must be positive")
            ctx.put("n", (current + by).to_bytes(8, "big"))
            ctx.emit("added", encode_value(by))

        @method
        def boom(self, ctx) -> None:
            ctx.put("n", b"\xff" * 8)
            raise RuntimeError("bug")

    def authorize(senders: np.ndarray, contracts: list[str], methods: list[str]) -> np.ndarray:
        return np.array([c != "counter" or s.tobytes() == admin.public_key for s, c in zip(senders, contracts)])

    with Ledger.open(tmp_path / "l", contracts=[Counter()], authorize=authorize) as led:
        tx = lambda kp, m, n, **a: Transaction.create(kp, "counter", m, a, n).encode()  # noqa: E731
        blk = led.apply_block(
            [tx(admin, "add", 1, by=2), tx(admin, "add", 2, by=-1), tx(admin, "boom", 3), tx(citizen, "add", 1, by=5),
             tx(admin, "add", 4, bz=1), tx(admin, "add", 5, by=3)]
        )  # fmt: skip
        rs = blk.receipts
        assert [r.ok for r in rs] == [True, False, False, False, False, True]
        assert rs[1].error == "by must be positive"
        assert rs[2].error == "RuntimeError in counter.boom"  # the interpreter's text differs between versions
        assert "not permitted" in rs[3].error
        assert rs[4].error == "bad arguments for counter.add: it takes (by), got (bz)"
        assert rs[0].events == (("added", encode_value(2)),)
        assert int.from_bytes(led.get("counter", "n"), "big") == 5
        # The hook is not asked about an empty block: its answer, np.array([]), would be floats.
        assert led.apply_block([]).height == 2
    # A hook that answers once for the whole block (a scalar would broadcast) fails the block whole.
    with Ledger.open(tmp_path / "m", contracts=[Counter()], authorize=lambda s, c, m: True) as led:
        with pytest.raises(InvalidInputError, match=r"one bool per transaction \(1\), got shape \(\)"):
            led.apply_block([Transaction.create(citizen, "counter", "add", {"by": 1}, 1).encode()])
        assert led.height == 0
    # Answers that are not bools are not read as truth values: "no" would permit.
    for answer, kind in ((["no"], "<U2"), ([1], "int64"), ([None], "object")):
        with Ledger.open(tmp_path / f"n{kind}", contracts=[Counter()], authorize=lambda s, c, m, a=answer: a) as led:
            with pytest.raises(InvalidInputError, match=f"authorize must answer bools, got {kind} values"):
                led.apply_block([Transaction.create(citizen, "counter", "add", {"by": 1}, 1).encode()])
            assert led.height == 0


def _read_while_applying(led: Ledger, blocks: list[list[bytes]], read: Callable[[int], None]) -> None:
    """Applies ``blocks`` while another thread calls ``read(height)`` with the height it saw just
    before, over and over; its first failure fails the caller."""
    stop, errors = threading.Event(), []

    def reader() -> None:
        try:
            while not stop.is_set():
                read(led.height)
                time.sleep(0)  # hand the GIL over: a reader spinning on it starves the writer
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for raws in blocks:
            led.apply_block(raws)
    finally:
        stop.set()
        t.join()
    assert not errors, errors[0]


def _put_blocks(count: int, size: int) -> list[list[bytes]]:
    """Blocks 1..count of ``size`` puts each, of keys ``r/<height>/<i>``."""
    kp = signing.generate("ed25519")
    return [[put(kp, f"r/{b}/{i}", b * 1000 + i) for i in range(size)] for b in range(1, count + 1)]


def test_readers_run_while_blocks_commit(tmp_path):
    seen: list[int] = []

    def read(h: int) -> None:
        seen.append(h)
        assert led.header(h).height == h

    with Ledger.open(tmp_path / "l") as led:
        _read_while_applying(led, _put_blocks(29, 50), read)
    assert len(set(seen)) > 1


def test_state_reads_never_miss_a_key_while_the_overlay_folds_into_the_state_table(tmp_path, monkeypatch):
    """Each commit folds half the overlay into the state table and then drops it from the overlay
    while a reader reads: every key of every committed block is found, at its version, throughout."""
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 2)
    reads = [0]

    def read(h: int) -> None:
        for b in range(1, h + 1):
            key = f"r/{b}/{(reads[0] + b) % 40}"
            got = led.get_versioned("evidence", key)
            assert got is not None and got[1] == b, (key, got)
            assert [e.height for e in led.history("evidence", key)] == [b]
            reads[0] += 1

    with Ledger.open(tmp_path / "l") as led:
        _read_while_applying(led, _put_blocks(39, 40), read)
        assert reads[0] > 100 and 0 < len(led._overlay) < 39 * 40  # some folded, some not yet
        with led._store.read() as txn:
            assert 0 < txn.stat(led._store.tables["state"])["entries"] < 39 * 40


class _Pair(Contract):
    """Keeps a + b == 100 in every block; its query reads the two with two reads."""

    name = "pair"

    @method
    def move(self, ctx, n: int) -> None:
        ctx.put("a", (100 - n % 100).to_bytes(2, "big"))
        ctx.put("b", (n % 100).to_bytes(2, "big"))

    @query
    def total(self, state) -> int:
        return sum(int.from_bytes(state.get(k) or bytes(2), "big") for k in ("a", "b"))


def test_a_query_reads_one_blocks_state_however_many_reads_it_makes(tmp_path, monkeypatch):
    """Each read of a query used to read the state as it was then: with blocks committing
    meanwhile, a query saw a from one block and b from the next (totals of 1, 101, 102)."""
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 2)  # folds into `state` as well
    kp = signing.generate("ed25519")
    blocks = [[Transaction.create(kp, "pair", "move", {"n": n}, n).encode()] for n in range(1, 300)]
    totals: list[int] = []
    with Ledger.open(tmp_path / "l", contracts=[_Pair()]) as led:
        led.apply_block(blocks[0])
        _read_while_applying(led, blocks[1:], lambda h: totals.append(led.query("pair", "total")))
    assert len(totals) > 100 and set(totals) == {100}


def test_a_fold_hands_its_entries_to_lmdb_one_pair_at_a_time_all_of_them_in_key_order(tmp_path):
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block(_put_blocks(1, 50)[0])
        unfolded = led._overlay.items()  # (state key, state entry) in key order
        folded = led._overlay.fold(30)
        led._overlay.discard()
    assert len(unfolded) == 50 and len(folded) == 30 and list(folded) == unfolded[:30]
    assert folded[-1] == folded[29] == unfolded[29] and folded[0] == unfolded[0]
    with pytest.raises(IndexError, match="pair 30 of 30"):
        folded[30]
    with pytest.raises(IndexError, match="pair -31 of 30"):
        folded[-31]
    store = Store(tmp_path / "s")
    with store.env.begin(write=True) as txn, txn.cursor(db=store.tables["state"]) as cur:
        assert cur.putmulti(folded) == (30, 30)
    with store.read() as txn:
        assert list(store.scan(txn, "state")) == list(folded)
    store.close()


def test_reopening_more_often_than_a_sweep_takes_keeps_the_state_read_back_bounded(tmp_path, monkeypatch):
    # Regression: the state mark moved only once the sweep had passed every key within one
    # process's life, and each open started the sweep again. A ledger reopened every few commits
    # read back all of its history on every open, held it all in memory, and never used `state`.
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 8)
    blocks, per_open, size = _put_blocks(90, 20), 3, 20  # 3 commits an open: far fewer than a sweep
    read_back, marks = [], []
    for start in range(0, len(blocks), per_open):
        with Ledger.open(tmp_path / "l") as led:
            read_back.append(len(led._overlay))
            for raws in blocks[start : start + per_open]:
                led.apply_block(raws)
            marks.append(int.from_bytes(led._store.get("meta", b"state_mark"), "big"))
    with Ledger.open(tmp_path / "l") as led:
        for b in range(1, len(blocks) + 1):
            assert led.get_versioned("evidence", f"r/{b}/{b % size}")[1] == b
        assert led.audit().height == len(blocks)
    assert marks == sorted(marks) and marks[-1] > len(blocks) - 4 * 8
    # About two rounds of the sweep (each some 8 commits) at most, not all 1800 keys.
    assert max(read_back[-10:]) <= 4 * 8 * size, read_back


@pytest.mark.parametrize("run_ids", [None, 500], ids=["in-memory", "with-runs"])
def test_tx_lookups_run_while_blocks_commit_and_never_see_a_block_half(tmp_path, monkeypatch, run_ids):
    """With runs, the map is written out and emptied every few blocks while the reader looks up."""
    if run_ids is not None:
        monkeypatch.setattr(ledger_module, "LOCATOR_RUN_IDS", run_ids)
    blocks = _put_blocks(24, 200)
    ids = [Transaction.decode(raw).id for raws in blocks for raw in raws]
    sizes: list[int] = []

    def read(_height: int) -> None:
        found = led.tx_heights(ids)
        # Whole blocks only, in order: every id of the blocks found so far, none after.
        assert len(found) % 200 == 0 and set(found.values()) == set(range(1, len(found) // 200 + 1))
        sizes.append(len(found))
        if found:
            last = ids[len(found) - 1]
            assert led.tx(last).height == len(found) // 200

    with Ledger.open(tmp_path / "l") as led:
        _read_while_applying(led, blocks, read)
        assert len(set(sizes)) > 1 and led.tx_heights(ids) == {t: i // 200 + 1 for i, t in enumerate(ids)}


def test_ids_are_found_once_their_block_is_the_head_not_when_its_write_commits(tmp_path, monkeypatch):
    """Right after the write commits, before the head moves (another thread's reads can land
    there), the block's ids are already in the snapshot, here as a stored run: they must not be
    reported committed at a height that ``block`` and ``tx`` still refuse."""
    monkeypatch.setattr(ledger_module, "LOCATOR_RUN_IDS", 100)  # each commit writes its ids as a run
    blocks = _put_blocks(3, 100)
    ids = [[Transaction.decode(raw).id for raw in raws] for raws in blocks]
    seen: list[tuple[int, dict[bytes, int]]] = []
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block(blocks[0])
        transact = led._store.transact

        def committed_then_look(fn, size_hint):  # type: ignore[no-untyped-def]
            out = transact(fn, size_hint)
            seen.append((led._head.height, led.tx_heights(ids[0] + ids[len(seen) + 1])))
            return out

        monkeypatch.setattr(led._store, "transact", committed_then_look)
        for raws in blocks[1:]:
            led.apply_block(raws)
        assert seen == [(1, dict.fromkeys(ids[0], 1)), (2, dict.fromkeys(ids[0], 1))]
        assert led.tx_heights(ids[2]) == dict.fromkeys(ids[2], 3) and led.tx(ids[2][-1]).height == 3


def test_map_grows_instead_of_failing(tmp_path):
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l", map_size=1 << 20) as led:
        for b in range(1, 6):
            led.apply_block([put(kp, f"grow/{b}/{i}" + "x" * 200, b * 1000 + i) for i in range(500)])
        assert led.height == 5
    with Ledger.open(tmp_path / "l") as led:
        assert led.get("evidence", "grow/5/499" + "x" * 200) is not None


def test_a_write_that_fills_the_map_runs_again_from_the_start_on_a_grown_map(tmp_path):
    store = Store(tmp_path / "s", map_size=1 << 16)
    calls = []

    def fill(txn):  # type: ignore[no-untyped-def]
        calls.append(store.env.info()["map_size"])
        assert txn.get(b"k0", db=store.tables["state"]) is None  # nothing of a failed try is left
        with txn.cursor(db=store.tables["state"]) as cur:
            cur.putmulti([(b"k%d" % i, bytes(1000)) for i in range(2000)])
        return len(calls)

    assert store.transact(fill, size_hint=0) >= 2  # the hint said nothing: the first try ran out
    assert calls[-1] > calls[0]
    with store.read() as txn:
        assert txn.stat(store.tables["state"])["entries"] == 2000
    store.close()


def test_missing_things_raise_not_found(tmp_path):
    with Ledger.open(tmp_path / "l") as led:
        with pytest.raises(NotFoundError, match="height 3"):
            led.header(3)
        with pytest.raises(NotFoundError):
            led.block(-1)
        with pytest.raises(NotFoundError, match="no committed transaction"):
            led.tx(b"\0" * 32)


def test_pipelined_apply_blocks_equals_one_at_a_time(tmp_path):
    kp = signing.generate("ed25519")
    blocks = [[put(kp, f"p/{b}/{i}", b * 1000 + i) for i in range(200)] for b in range(1, 6)]
    blocks[2].append(blocks[1][0])  # a replay inside the stream fails the same way in both modes
    times = [1_700_000_000_000 + b for b in range(1, 6)]
    with Ledger.open(tmp_path / "one") as one, Ledger.open(tmp_path / "piped") as piped:
        singles = [one.apply_block(raws, timestamp=t) for raws, t in zip(blocks, times)]
        streamed = list(piped.apply_blocks(blocks, timestamps=times))
        assert [b.header for b in streamed] == [b.header for b in singles]
        assert [r.ok for r in streamed[2].receipts][-1] is False
        # A bad block stops the stream there; everything before it is committed.
        bad = [put(kp, "q/1", 90_001)]
        worse = bytearray(put(kp, "q/2", 90_002))
        worse[-3] ^= 1
        it = piped.apply_blocks([bad, [bytes(worse)], bad])
        assert next(it).header.height == 6
        with pytest.raises(InvalidSignatureError):
            next(it)  # it executed beside its check: nothing of it stays
        assert piped.height == 6 and piped.get("evidence", "q/2") is None
        it = piped.apply_blocks([[put(kp, "q/3", 90_003)], [b"\x00garbage"], bad])
        assert next(it).header.height == 7
        with pytest.raises(DecodeError):
            next(it)
        assert piped.height == 7 and piped.audit().height == 7


def test_a_block_whose_signatures_the_caller_checked_commits_the_same(tmp_path):
    kp = signing.generate("ed25519")
    raws = [put(kp, f"s/{i}", i) for i in range(1, 50)]
    with Ledger.open(tmp_path / "a") as a, Ledger.open(tmp_path / "b") as b:
        checked = a.apply_block(raws, timestamp=7, signatures_checked=True)
        plain = b.apply_block(raws, timestamp=7)  # its check runs beside execution, and is timed
        assert checked.header == plain.header
        assert checked.timings["verify"] == 0.0 < plain.timings["verify"]
        # Decoding still runs: the flag vouches for signatures only.
        with pytest.raises(DecodeError):
            a.apply_block([raws[0][:-1]], signatures_checked=True)
        assert a.height == 1


def test_tx_heights_finds_committed_ids_in_one_lookup(tmp_path):
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l") as led:
        first = led.apply_block([put(kp, f"h/{i}", i) for i in range(1, 4)])
        second = led.apply_block([put(kp, "h/9", 9)])
        absent = Transaction.decode(put(kp, "h/10", 10)).id
        ids = [*second.txids, absent, *first.txids]
        assert led.tx_heights(ids) == {**dict.fromkeys(first.txids, 1), second.txids[0]: 2}
        assert led.tx_heights([]) == {}
        replay = led.apply_block([first.raws[1]])  # the same transaction again: fails, found at 1
        assert not replay.receipts[0].ok
    # Reopened: the in-memory locator is rebuilt from the stored ids and answers the same.
    with Ledger.open(tmp_path / "l") as led:
        assert led.tx_heights(ids) == {**dict.fromkeys(first.txids, 1), second.txids[0]: 2}
        t = led.tx(first.txids[1])
        assert (t.height, t.index, t.tx.encode()) == (1, 1, first.raws[1])
        with pytest.raises(NotFoundError):
            led.tx(absent)


def test_locator_runs_bound_the_map_and_answer_after_reopen(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "LOCATOR_RUN_IDS", 250)
    kp = signing.generate("ed25519")
    blocks = [[put(kp, f"r/{b}/{i}", b * 1000 + i) for i in range(100)] for b in range(1, 21)]
    blocks[7].append(blocks[1][5])  # a transaction included again (it fails): found where it first committed
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        for raws in blocks[:12]:
            led.apply_block(raws)
            assert len(led._locator) < 250
        for group in (blocks[12:15], blocks[15:20]):  # a group commit may pass the bound several times over
            led.apply_group([BlockInput(raws) for raws in group])
            assert len(led._locator) == 0
        ids = [Transaction.decode(raw).id for raws in blocks for raw in raws[:100]]
        expected = {t: i // 100 + 1 for i, t in enumerate(ids)}
        assert led.tx_heights(ids) == expected
        with led._store.read() as txn, txn.cursor(db=led._store.tables["locator"]) as cur:
            runs = [(int.from_bytes(k, "big"), len(v) // 12) for k, v in cur]
        # Runs cover contiguous heights, newest smallest (older ones were merged as they came).
        assert 8 <= runs[-1][0] <= 20 and sum(n for _, n in runs) == 100 * runs[-1][0] + 1  # + the repeat
        assert [n for _, n in runs] == sorted((n for _, n in runs), reverse=True) and len(runs) < 5
        led.audit()
    with Ledger.open(path) as led:  # only the blocks after the last run go back into memory
        assert len(led._locator) == 100 * (20 - runs[-1][0])
        assert led.tx_heights(ids) == expected
        t = led.tx(ids[150])
        assert (t.height, t.index) == (2, 50)


def test_locator_runs_stop_merging_at_their_bound_and_every_transaction_is_still_found(tmp_path, monkeypatch):
    # Unbounded merges rewrite every id of the chain in one commit, and pass LMDB's value limit.
    monkeypatch.setattr(ledger_module, "LOCATOR_RUN_IDS", 100)
    monkeypatch.setattr(ledger_module, "LOCATOR_RUN_MAX_IDS", 400)
    kp = signing.generate("ed25519")
    blocks = [[put(kp, f"m/{b}/{i}", b * 1000 + i) for i in range(100)] for b in range(1, 31)]
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        for raws in blocks:
            led.apply_block(raws)
        with led._store.read() as txn, txn.cursor(db=led._store.tables["locator"]) as cur:
            runs = [len(v) // 12 for v in cur.iternext(keys=False)]
        assert sum(runs) == 3000 and max(runs) == 400
        assert runs.count(400) == 7 and len(runs) <= 7 + 3  # full runs, then a few doubling ones
        ids = [Transaction.decode(raw).id for raws in blocks for raw in raws]
        expected = {t: i // 100 + 1 for i, t in enumerate(ids)}
        assert led.tx_heights(ids) == expected
        led.audit()
    with Ledger.open(path) as led:
        assert led.tx_heights(ids) == expected
        t = led.tx(ids[2345])
        assert (t.height, t.index) == (24, 45)


def test_a_damaged_locator_run_is_found_by_the_audit_and_refused_by_lookups(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "LOCATOR_RUN_IDS", 150)
    kp = signing.generate("ed25519")
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        ids = [led.apply_block([put(kp, f"d/{b}/{i}", b * 1000 + i) for i in range(100)]).txids for b in range(1, 5)]
    def put_run(key: bytes, value: bytes) -> None:
        store = Store(path)
        with store.env.begin(write=True) as txn:
            txn.put(key, value, db=store.tables["locator"])
        store.close()

    store = Store(path)
    with store.read() as txn:
        key, run = next(store.scan(txn, "locator"))
    store.close()
    for damaged, error in ((run[:-12], "does not hold exactly"), (run[12:] + run[:12], "malformed"), (run[:-5], "malformed")):
        put_run(key, damaged)
        with Ledger.open(path) as led:
            with pytest.raises(IntegrityError, match=f"locator: .*{error}"):
                led.audit(replay=False)
            if len(damaged) % 12:
                with pytest.raises(InvalidLengthError, match="locator run"):
                    led.tx_heights(ids[0])
    put_run(key, run)
    with Ledger.open(path) as led:
        assert led.audit(replay=False).height == 4
        assert set(led.tx_heights([t for b in ids for t in b]).values()) == {1, 2, 3, 4}


def test_the_tx_locator_refuses_bad_input_with_typed_errors():
    loc = _native.TxLocator()
    loc.add_block(3, bytes(64))
    with pytest.raises(OutOfRangeError, match="ascending"):
        loc.add_block(3, bytes(32))
    with pytest.raises(InvalidLengthError):
        loc.add_block(4, bytes(33))
    with pytest.raises(OutOfRangeError):
        loc.add_block(1 << 32, bytes(32))
    with pytest.raises(InvalidLengthError):
        loc.candidates([bytes(31)])
    with pytest.raises(InvalidLengthError):
        _native.id_positions(bytes(32), [bytes(33)])
    assert len(loc) == 2
    positions, heights = loc.candidates([bytes(range(32)), bytes(32)])
    assert positions.tolist() == [1] and heights.tolist() == [3]
    run = loc.to_run()
    assert run == bytes(8) + (3).to_bytes(4, "big")  # the two ids share a prefix at one height
    with pytest.raises(InvalidLengthError, match="locator run"):
        loc.candidates([bytes(32)], [np.frombuffer(run + b"x", dtype=np.uint8)])
    with pytest.raises(MalformedInputError, match="locator run: record 1 does not sort"):
        _native.merge_runs([run + run])
    positions, heights = _native.TxLocator().candidates([bytes(32)], [np.frombuffer(run, dtype=np.uint8)])
    assert heights.tolist() == [3]


def test_a_group_commit_equals_blocks_one_at_a_time_and_skips_a_bad_block_in_place(tmp_path):
    kp = signing.generate("ed25519")
    blocks = [[put(kp, f"g/{b}/{i}", b * 1000 + i) for i in range(150)] for b in range(1, 5)]
    blocks[2] += [put(kp, "g/1/0", 5000), blocks[0][0]]  # a key block 1 anchored; a replay of block 1
    forged = bytearray(put(kp, "g/x", 99_999))
    forged[-3] ^= 1
    inputs = [BlockInput(raws, timestamp=10 + i, consensus=b"c%d" % i) for i, raws in enumerate(blocks)]
    inputs.insert(2, BlockInput([bytes(forged)], timestamp=99))
    inputs.insert(3, BlockInput([b"not a transaction"]))
    with Ledger.open(tmp_path / "one") as one, Ledger.open(tmp_path / "group", map_size=1 << 16) as group:
        singles = [one.apply_block(b.raws, timestamp=b.timestamp, consensus=b.consensus) for b in inputs[:2] + inputs[4:]]
        out = group.apply_group(inputs)  # from a 64 KiB map, which has to grow
        assert isinstance(out[2], InvalidSignatureError) and isinstance(out[3], DecodeError)
        applied = [b for b in out if isinstance(b, Block)]
        assert [b.header for b in applied] == [b.header for b in singles]
        assert [b.header.height for b in applied] == [1, 2, 3, 4] and group.height == 4
        # Block 3 sees what block 1 wrote in the same group: the key is taken, the nonce used.
        assert [r.ok for r in applied[2].receipts] == [True] * 150 + [False, False]
        assert [r.error for r in applied[2].receipts[-2:]] == [r.error for r in singles[2].receipts[-2:]]
        assert group.get("evidence", "g/1/0") == one.get("evidence", "g/1/0")
        assert group.history_root() == one.history_root() and group.block_proof(2) == one.block_proof(2)
        with pytest.raises(OutOfRangeError):
            group.history_root(6)
        group.audit()
    with Ledger.open(tmp_path / "group") as reopened:  # durable, and the block-hash log agrees
        assert reopened.header(4) == singles[-1].header
        assert reopened.apply_group([]) == []


def test_a_block_checked_ahead_applies_as_its_raws_would(tmp_path):
    """check_block decodes and verifies a block apart from any write (as a node does while the
    block replicates); apply_group takes the result without decoding it again and gives the
    header the raws would. A bad block is refused by the check, and a checked block of another
    chain by the group."""
    kp = signing.generate("ed25519")
    blocks = [[put(kp, f"k/{b}/{i}", b * 100 + i) for i in range(40)] for b in range(1, 4)]
    with Ledger.open(tmp_path / "one") as one, Ledger.open(tmp_path / "ahead") as ahead:
        singles = [one.apply_block(raws, timestamp=7, consensus=b"c") for raws in blocks]
        checked = [ahead.check_block(raws, one_thread=b == 1) for b, raws in enumerate(blocks)]
        assert list(checked[0].raws) == blocks[0] and ahead.height == 0  # checking writes nothing
        # What was checked is what is applied: .raws gives no handle to swap a transaction in.
        with pytest.raises(TypeError):
            checked[0].raws[0] = put(kp, "k/forged", 1)  # type: ignore[index]
        out = ahead.apply_group([BlockInput(c, timestamp=7, consensus=b"c") for c in checked])
        assert [b.header for b in out] == [b.header for b in singles]
        assert [r.ok for r in out[2].receipts] == [True] * 40
        forged = bytearray(put(kp, "k/x", 999))
        forged[-3] ^= 1
        for one_thread in (False, True):
            with pytest.raises(InvalidSignatureError):
                ahead.check_block([put(kp, "k/y", 998), bytes(forged)], one_thread=one_thread)
        with pytest.raises(DecodeError):
            ahead.check_block([b"not a transaction"])
        with Ledger.open(tmp_path / "other", chain_id="other-chain") as other:
            foreign = other.check_block([put(kp, "k/z", 1, chain_id="other-chain")])
        [refused] = ahead.apply_group([BlockInput(foreign)])
        assert isinstance(refused, ChainMismatchError) and "other-chain" in str(refused)
        assert ahead.height == 3
        ahead.audit()


def test_proposer_and_consensus_data_go_into_the_header(tmp_path):
    kp = signing.generate("ed25519")
    with Ledger.open(tmp_path / "l") as led:
        blk = led.apply_block([put(kp, "c/1", 1)], timestamp=5, proposer=kp.public_key, consensus=b"raft:7:42")
        assert (blk.header.proposer, blk.header.consensus, blk.header.timestamp) == (kp.public_key, b"raft:7:42", 5)
        assert led.header(1) == blk.header
        led.audit()


def test_a_closed_ledger_answers_with_a_typed_error(tmp_path):
    # Regression: reads and writes on a closed ledger raised py-lmdb's own lmdb.Error.
    kp = signing.generate("ed25519")
    led = Ledger.open(tmp_path / "l")
    led.apply_block([put(kp, "a", 1)])
    led.close()
    for call in (
        lambda: led.height, lambda: led.head,  # not even what it knew: a closed handle answers nothing
        lambda: led.get("evidence", "a"), lambda: led.block(1), lambda: led.history("evidence", "a"),
        lambda: led.tx_heights([bytes(32)]), lambda: led.apply_block([put(kp, "b", 2)]),
        lambda: next(led.apply_blocks([[put(kp, "b", 2)]])),
        # Proofs from the in-memory block-hash log, too: a closed ledger proves nothing.
        lambda: led.block_proof(0), lambda: led.consistency_proof(1), lambda: led.history_root(),
    ):  # fmt: skip
        with pytest.raises(StoreError, match="closed"):
            call()


_CLOSE_WHILE_READING = """
import sys, threading, time
from ledgercore import Ledger, Transaction, signing
from ledgercore.store import StoreError

kp, root, faults = signing.generate(), sys.argv[1], []
for trial in range(int(sys.argv[2])):
    led = Ledger.open(f"{root}/{trial}")
    blk = led.apply_block([Transaction.create(kp, "evidence", "put", {"key": "k", "digest": b"d" * 32}, nonce=1).encode()])
    txid = blk.txids[0]

    def reader(read):
        try:
            while True:
                read()
        except StoreError:  # closed: what every read after close() answers
            pass
        except BaseException as exc:
            faults.append(repr(exc))

    reads = [lambda: led.get("evidence", "k"), lambda: led.history("evidence", "k"), lambda: led.tx(txid), lambda: led.block(1)]
    threads = [threading.Thread(target=reader, args=(r,)) for r in reads]
    for t in threads:
        t.start()
    time.sleep(0.002)
    led.close()
    for t in threads:
        t.join()
print("faults:", faults)
"""


def test_closing_a_ledger_waits_for_reads_in_flight_and_later_reads_are_refused(tmp_path):
    # Regression: close() freed the LMDB environment under reads running on other threads, and the
    # process died of a segmentation fault within a few dozen tries.
    run = subprocess.run(
        [sys.executable, "-c", _CLOSE_WHILE_READING, str(tmp_path), "60"], capture_output=True, text=True, timeout=300
    )
    assert (run.returncode, run.stdout.strip()) == (0, "faults: []"), run.stderr[-2000:]


def test_wrong_argument_types_and_refused_opens_are_typed_and_leave_nothing(tmp_path):
    # A map too small for the tables (4 KiB failed as "not a ledger store: MDB_MAP_FULL"), or one no
    # address space maps, or not a size at all, is named before anything is created.
    for map_size in (4096, 0, -1, 1 << 47, "1", 1.5, True):
        with pytest.raises(InvalidInputError, match=re.escape(f"map_size must be an int of {1 << 16}..")):
            Ledger.open(tmp_path / "refused", map_size=map_size)
    for kw in ({"suite": "nope"}, {"chain_id": ""}, {"chain_id": "x" * 65}, {"contracts": [5]}, {"authorize": 5}):
        with pytest.raises(ValueError):
            Ledger.open(tmp_path / "refused", **kw)
    assert not (tmp_path / "refused").exists()
    with Ledger.open(tmp_path / "l") as led:
        for call, arg in ((led.header, 1.5), (led.block, "1"), (led.tx, "abc"), (led.tx, b"short"), (led.apply_block, 5)):
            with pytest.raises(LedgerError):
                call(arg)


class Index(Contract):
    """Queries whose parameters share names with Ledger.query's own."""

    name = "index"

    @query
    def by(self, state, contract: str, method: str) -> str:
        return f"{contract}.{method}"


def test_a_query_may_take_parameters_named_contract_and_method(tmp_path):
    # Ledger.query(contract, method, **args) took them as its own: a bare TypeError.
    with Ledger.open(tmp_path / "l", contracts=[Index()]) as led:
        assert led.query("index", "by", contract="cert", method="issue") == "cert.issue"


_OUT_OF_DESCRIPTORS = """
import os, resource, sys
from ledgercore import Ledger, Transaction, signing
kp = signing.generate("ed25519")
with Ledger.open(sys.argv[1]) as led:
    tx = Transaction.create(kp, "evidence", "put", {"key": "k", "digest": bytes(32)}, 1)
    led.apply_block([tx.encode()])
    in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(led.tx_heights([tx.id, bytes(32)]) == {tx.id: 1})
"""


def test_transactions_are_found_with_no_file_descriptor_to_spare(tmp_path):
    # Regression: the lookup's first np.unique imported numpy.ma (numpy 2.4), which opens files:
    # out of descriptors, a bare OSError, and a node's admission loop died of it.
    out = subprocess.run([sys.executable, "-c", _OUT_OF_DESCRIPTORS, str(tmp_path / "l")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "True\n", out.stderr
