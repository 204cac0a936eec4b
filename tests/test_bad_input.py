"""Bad input (issue 3 item 7) beyond what test_ledger.py covers: every failure is a failed receipt or
a typed error with a clear message, nothing is half-written (whole-store dumps before and after),
and the ledger stays usable (the next good block commits and the audit passes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import pytest

from ledgercore import BlockInput, Ledger, Transaction, hashing, merkle, signing
from ledgercore import ledger as ledger_module
from ledgercore.audit import state_entries
from ledgercore.block import HEADER_FIELDS, BlockHeader, decode_block, encode_block
from ledgercore.cli import main
from ledgercore.codec import decode_value, encode_value
from ledgercore.contracts import Contract, ContractError, ContractInputError, method, query
from ledgercore.contracts.base import MAX_KEY_SIZE, SliceResult
from ledgercore.errors import (
    ChainMismatchError,
    DecodeError,
    EncodeError,
    HeaderMismatchError,
    IntegrityError,
    InvalidInputError,
    InvalidSignatureError,
    LedgerError,
    MalformedInputError,
    ReentrantCallError,
    UnknownNameError,
)
from ledgercore.receipts import MAX_ERROR_CHARS, receipt_error
from ledgercore.store import TABLES, Store, StoreError, height_key
from ledgercore.suites import get_suite
from ledgercore.transaction import MAX_TX_SIZE

HERE = Path(__file__).parent
KP = signing.from_private_bytes("ed25519", bytes(range(1, 33)))


def dump(led: Ledger) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every entry of every table, and every state entry the store means (folded into ``state``
    or not yet): what "nothing written" is compared with."""
    with led._store.read() as txn:
        tables = {t: list(txn.cursor(db=led._store.tables[t]).iternext()) for t in TABLES}
        return {**tables, "state": state_entries(txn, led._store)}


def put(nonce: int, key: str | None = None, kp: signing.KeyPair = KP, **kw: object) -> bytes:
    args = {"key": key or f"k/{nonce}", "digest": bytes([nonce % 256]) * 32}
    return Transaction.create(kp, "evidence", "put", args, nonce, **kw).encode()


def raw_tx(args: bytes, nonce: int = 99, contract: str = "evidence", method_: str = "put", chain: bytes = b"dev",
           ) -> bytes:  # fmt: skip
    """A correctly signed transaction whose payload is laid out by hand (docs/FORMAT.md section 3),
    so it can carry what the encoder refuses to produce."""
    payload = (
        bytes([1, 1, len(chain)]) + chain + KP.public_key + struct.pack(">QQ", nonce, 1_700_000_000_000)
        + bytes([len(contract)]) + contract.encode() + bytes([len(method_)]) + method_.encode()
        + struct.pack(">I", len(args)) + args
    )  # fmt: skip
    return payload + KP.sign(payload)


def test_raw_tx_helper_matches_the_encoder():
    args = {"key": "k", "digest": b"d" * 32}
    made = Transaction.create(KP, "evidence", "put", args, 99, timestamp=1_700_000_000_000).encode()
    assert raw_tx(encode_value(args)) == made


def _unsorted_map() -> bytes:
    entry = lambda k: struct.pack(">I", 1) + k + b"\x00"  # noqa: E731  key -> null
    return b"\x07" + struct.pack(">I", 2) + entry(b"z") + entry(b"a")


def _flip_last(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


BAD = {
    "truncated": (lambda: put(99)[:-5], DecodeError, "transaction {i}"),
    "trailing byte": (lambda: put(99) + b"\0", DecodeError, "transaction {i}"),
    "garbage": (lambda: b"\x01garbage", DecodeError, "transaction {i}"),
    "empty": (lambda: b"", DecodeError, "transaction {i}"),
    "other chain": (lambda: put(99, chain_id="gov-sh"), DecodeError, "transaction {i}"),
    "other suite": (lambda: put(99, kp=signing.from_private_bytes("sm2", b"\x07" * 32)), DecodeError,
                    "transaction {i}"),  # fmt: skip
    "args not a map": (lambda: raw_tx(encode_value([1, 2])), DecodeError, "must be a map"),
    "args unsorted": (lambda: raw_tx(_unsorted_map()), DecodeError, "increasing byte order"),
    "oversize": (lambda: raw_tx(encode_value({"key": "k", "digest": b"d" * 32, "meta": b"x" * MAX_TX_SIZE})),
                 DecodeError, f"over the {MAX_TX_SIZE}-byte maximum"),  # fmt: skip
    "bad signature": (lambda: _flip_last(put(99)), InvalidSignatureError, "at index {i}"),
}


@pytest.mark.parametrize("position", [0, 2, 4])
@pytest.mark.parametrize("kind", list(BAD))
def test_one_bad_transaction_among_good_ones_writes_nothing(tmp_path, kind, position):
    make, error, message = BAD[kind]
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(n) for n in range(1, 4)])
        before, head = dump(led), led.head
        good = [put(n) for n in range(10, 14)]
        block = good[:position] + [make()] + good[position:]
        with pytest.raises(error, match=message.format(i=position)) as info:
            led.apply_block(block)
        assert isinstance(info.value, InvalidInputError) and isinstance(info.value, LedgerError)
        if isinstance(info.value, DecodeError):
            assert info.value.index == position
        else:
            assert info.value.indices == [position]
        assert dump(led) == before and led.head == head and led.height == 1
        # Still usable: the good transactions commit, and everything re-derives.
        blk = led.apply_block(good)
        assert blk.height == 2 and all(r.ok for r in blk.receipts)
        assert led.audit().height == 2


def test_oversize_transactions_are_refused_with_a_clear_message_and_the_limit_itself_works(tmp_path):
    class Blob(Contract):
        name = "blob"

        @method
        def store(self, ctx, key: str, data: bytes) -> None:
            ctx.put(key, data)

    base = Transaction.create(KP, "blob", "store", {"key": "b", "data": b""}, 1).encode()
    fill = MAX_TX_SIZE - len(base)
    exact = Transaction.create(KP, "blob", "store", {"key": "b", "data": b"x" * fill}, 1, timestamp=7)
    assert len(exact.encode()) == MAX_TX_SIZE
    with pytest.raises(EncodeError, match=f"over the {MAX_TX_SIZE}-byte maximum"):
        Transaction.create(KP, "blob", "store", {"key": "b", "data": b"x" * (fill + 1)}, 1)
    over = raw_tx(encode_value({"key": "b", "data": b"x" * (fill + 1)}), nonce=1, contract="blob", method_="store")
    assert len(over) == MAX_TX_SIZE + 1
    with Ledger.open(tmp_path / "l", contracts=[Blob()]) as led:
        before = dump(led)
        with pytest.raises(DecodeError, match=f"{MAX_TX_SIZE + 1} bytes, over the {MAX_TX_SIZE}-byte maximum"):
            led.apply_block([over])
        assert dump(led) == before
        blk = led.apply_block([exact.encode()])
        assert blk.receipts[0].ok and len(led.get("blob", "b")) == fill


def test_wrong_type_arguments_to_the_builtins_get_failed_receipts_and_write_nothing(tmp_path):
    d = b"d" * 32
    cases = [
        ("evidence", "put", {"key": 123, "digest": d}, "key must be a str, got int"),
        ("evidence", "put", {"key": b"bytes", "digest": d}, "key must be a str, got bytes"),
        ("evidence", "put", {"key": None, "digest": d}, "key must be a str, got null"),
        ("evidence", "put", {"key": "a", "digest": "text"}, "digest must be bytes, got str"),
        ("evidence", "put", {"key": "b", "digest": b"short"}, "digest must be 16..64 bytes, got 5"),
        ("evidence", "put", {"key": "c"}, 'missing argument "digest"'),
        ("evidence", "put", {"key": "d", "digest": d, "extra": 1}, 'unexpected argument "extra"'),
        ("evidence", "put", {"key": "", "digest": d}, "key must be 1..256 bytes, got 0"),
        ("evidence", "put", {"key": "k" * 257, "digest": d}, "key must be 1..256 bytes, got 257"),
        ("evidence", "put", {"key": "e", "digest": d, "meta": b"m" * 4097}, "4096-byte limit"),
        ("cert", "issue", {"cert_id": 5, "digest": d, "meta": None}, "cert_id must be a str, got int"),
        ("cert", "issue", {"cert_id": "c", "digest": [1], "meta": None}, "digest must be bytes, got list"),
        ("cert", "revoke", {"cert_id": "ok", "reason": 5}, "reason must be a str, got int"),
        ("cert", "revoke", {"cert_id": "ok"}, 'missing argument "reason"'),
        ("cert", "revoke", {"cert_id": "ok", "reason": "r" * 513}, "reason must be 1..512 bytes, got 513"),
        ("cert", "revoke", {"cert_id": "nope", "reason": "r"}, 'certificate "nope" is not registered'),
        ("cert", "status", {"cert_id": "ok"}, 'contract "cert" has no method "status"'),
    ]
    with Ledger.open(tmp_path / "l") as led:
        issue = Transaction.create(KP, "cert", "issue", {"cert_id": "ok", "digest": d, "meta": None}, 1)
        led.apply_block([issue.encode()])
        before = dump(led)
        raws = [Transaction.create(KP, c, m, a, 10 + i).encode() for i, (c, m, a, _) in enumerate(cases)]
        good = put(100, "good")
        blk = led.apply_block(raws + [good])
        for (c, m, a, message), r in zip(cases, blk.receipts):
            assert not r.ok and message in r.error, (c, m, a, r.error)
            assert r.error.startswith(f"{c}.{m}: ") or "has no method" in r.error
        assert blk.receipts[-1].ok
        after = dump(led)
        # The only state change is the good put; the failures left no state, history or events.
        new_state = [kv for kv in after["state"] if kv not in before["state"]]
        assert [k for k, _ in new_state] == [b"evidence/good"]
        assert len(after["history"]) == len(before["history"]) + 1
        assert decode_value(led.get("cert", "ok"))["revoked"] is False
        _, failures, events = decode_value(after["receipts"][-1][1])
        assert [i for i, _ in failures] == list(range(len(cases))) and events == []
        assert led.audit().height == 2


class Registry(Contract):
    """A Python contract that misbehaves on request."""

    name = "registry"

    @method
    def set(self, ctx, key, value: bytes) -> None:
        ctx.put(key, value)

    @method
    def set_many_then_fail(self, ctx, how: str) -> None:
        ctx.put("a", b"1")
        ctx.put("b", b"2")
        ctx.delete("kept")
        ctx.emit("halfway", b"x")
        if how == "contract":
            raise ContractError("refused after writing")
        if how == "runtime":
            raise RuntimeError("bug after writing")
        if how == "key":
            {}["missing"]  # a KeyError from a contract bug
        if how == "recursion":
            self.set_many_then_fail(ctx, how)
        if how == "bad value":
            ctx.put("c", "not bytes")
        if how == "huge value":
            ctx.put("c", b"v" * ((1 << 20) + 1))
        if how == "huge key":
            ctx.put("k" * (MAX_KEY_SIZE + 1), b"v")
        if how == "int key":
            ctx.put(10**12, b"v")  # would be a terabyte of zeros if treated as bytes(n)
        if how == "int event data":
            ctx.emit("e", 5)  # would be five zero bytes if treated as bytes(n)
        if how == "wide event data":  # 2 MiB in 256k items: len() counts items, the limit bytes
            ctx.emit("e", memoryview(bytes(2 << 20)).cast("Q"))
        if how == "event name":
            ctx.emit(5, b"")
        if how == "surrogate event":
            ctx.emit("\udc80", b"")  # used to fail the whole block when the receipts were encoded
        if how == "surrogate message":  # so did a message quoting bytes decoded with surrogateescape
            raise ContractError("bad name " + b"\xffoo".decode("utf-8", "surrogateescape"))
        if how == "unprintable":
            raise _Unprintable("x")
        if how == "exit":
            raise SystemExit(3)  # a BaseException, raised by the contract itself
        if how == "long message":
            raise ContractError("m" * 100_000)  # a receipt keeps the first MAX_ERROR_CHARS
        if how == "type error inside":
            ctx.put("c", b"x" + None)  # a TypeError of the contract's own, not of its arguments
        if how == "interpreter's message":
            max([])  # "max() arg is an empty sequence" on 3.11, "max() iterable argument is empty" on 3.12
        if how == "interrupt":
            raise KeyboardInterrupt  # raised by the contract: no Ctrl-C reaches the write thread
        if how == "exit from str":
            raise ContractError(_ExitingMessage())


FAILURES = {
    "contract": "refused after writing",
    "runtime": "RuntimeError in registry.set_many_then_fail",
    "key": "KeyError in registry.set_many_then_fail",
    "recursion": "RecursionError in registry.set_many_then_fail",
    "bad value": "values are bytes, got str",
    "huge value": f"value of {(1 << 20) + 1} bytes exceeds the {1 << 20}-byte limit",
    "huge key": f"key must be 1..{MAX_KEY_SIZE} bytes, got {MAX_KEY_SIZE + 1}",
    "int key": "key must be str or bytes, got int",
    "int event data": "event data is bytes, got int",
    "wide event data": f"event data of {2 << 20} bytes exceeds the {1 << 20}-byte limit",
    "event name": "an event name is a str of 1..256 UTF-8 bytes, got 5",
    "surrogate event": "is not valid UTF-8 (it holds a lone surrogate)",
    "surrogate message": "bad name \\udcffoo",
    "unprintable": "_Unprintable in registry.set_many_then_fail",
    "exit": "SystemExit in registry.set_many_then_fail",
    "long message": "m" * MAX_ERROR_CHARS,
    "type error inside": "TypeError in registry.set_many_then_fail",
    "interpreter's message": "ValueError in registry.set_many_then_fail",
    "interrupt": "KeyboardInterrupt in registry.set_many_then_fail",
    "exit from str": "<ContractError whose message cannot be shown>",
}
# Receipts name only the type of an exception other than ContractError, never the interpreter's
# message (which differs between Python versions): nodes on different Pythons store equal receipts.
WHOLE = {"runtime", "key", "recursion", "unprintable", "exit", "type error inside", "interpreter's message", "interrupt"}


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise TypeError("a __str__ with a bug")


class _ExitingMessage:
    def __str__(self) -> str:
        raise SystemExit("raised from __str__")


def test_a_python_contract_that_fails_midway_leaves_none_of_its_writes(tmp_path):
    tx = lambda m, n, **a: Transaction.create(KP, "registry", m, a, n).encode()  # noqa: E731
    with Ledger.open(tmp_path / "l", contracts=[Registry()]) as led:
        led.apply_block([tx("set", 1, key="kept", value=b"k")])
        before = dump(led)
        hows = list(FAILURES)
        raws = [tx("set_many_then_fail", 10 + i, how=h) for i, h in enumerate(hows)]
        # After all the failures, a transaction in the same block still sees the block's start state.
        raws.append(tx("set", 50, key="after", value=b"ok"))
        raws.append(tx("nosuch", 51))  # unknown method on a Python contract
        raws.append(tx("execute", 52))  # a Contract attribute that is not a method
        raws.append(tx("set", 53, key="x"))  # missing argument
        blk = led.apply_block(raws)
        rs = blk.receipts
        for h, r in zip(hows, rs):
            assert not r.ok and FAILURES[h] in r.error and r.events == (), (h, r)
            assert h not in WHOLE or r.error == FAILURES[h], (h, r)
            assert len(r.error) <= MAX_ERROR_CHARS, h
        assert rs[len(hows)].ok
        assert "has no method 'nosuch'" in rs[-3].error and "has no method 'execute'" in rs[-2].error
        assert rs[-1].error == "bad arguments for registry.set: it takes (key, value), got (key)"
        assert led.get("registry", "a") is None and led.get("registry", "b") is None
        assert led.get("registry", "kept") == b"k" and led.get("registry", "after") == b"ok"
        assert led.history("registry", "a") == []
        after = dump(led)
        assert after["state"] == sorted(before["state"] + [(b"registry/after", after["state"][0][1])])
        assert led.audit().height == 2


def _down(n: int) -> int:
    return 0 if n == 0 else 1 + _down(n - 1)


class Deep(Contract):
    """Recurses as deep as a transaction asks."""

    name = "deep"

    @method
    def go(self, ctx, n: int) -> None:
        ctx.put("k", str(_down(n)).encode())


def _apply_from_depth(path, raws, depth: int):
    """Applies a block with ``depth`` more frames on the caller's stack."""
    if depth:
        return _apply_from_depth(path, raws, depth - 1)
    with Ledger.open(path, contracts=[Deep()]) as led:
        return led.apply_block(raws, timestamp=10)


def test_a_contract_recursing_deep_gets_the_same_receipt_whatever_the_callers_stack_depth(tmp_path):
    # RecursionError fires at a depth counted from the thread's first frame: a contract run on the
    # caller's thread succeeded from a shallow caller and failed from a deep one, so two nodes
    # applying one block from different call paths reached different state roots.
    limit = sys.getrecursionlimit()
    near, past = limit - 100, limit + 100
    raws = [Transaction.create(KP, "deep", "go", {"n": n}, i, timestamp=5).encode() for i, n in enumerate([near, past], 1)]
    shallow = _apply_from_depth(tmp_path / "a", raws, 0)
    deep = _apply_from_depth(tmp_path / "b", raws, 300)
    assert shallow.header == deep.header
    assert [r.ok for r in shallow.receipts] == [r.ok for r in deep.receipts] == [True, False]
    assert "RecursionError in deep.go" in deep.receipts[1].error


def test_bad_keys_and_arguments_on_reads_are_typed_errors(tmp_path):
    # The caller is at fault, so each is a ValueError (ContractInputError; a ContractError too, so
    # that a contract passing the same bad key fails its transaction the usual way).
    with Ledger.open(tmp_path / "l") as led:
        with pytest.raises(ContractInputError, match="key must be 1..446 bytes, got 5000"):
            led.get("evidence", "k" * 5000)
        with pytest.raises(ContractInputError, match="got 0"):
            led.history("evidence", "")
        # bytes(5) is five zero bytes: an int key must not quietly become one (or allocate 10**12).
        for key in (5, 10**12, None, 1.5):
            with pytest.raises(ContractInputError, match="key must be str or bytes"):
                led.get("evidence", key)
        with pytest.raises(ContractInputError, match="bad arguments for evidence.get"):
            led.query("evidence", "get")
        with pytest.raises(ContractInputError, match="bad arguments for cert.status"):
            led.query("cert", "status", cert_id="c", colour="red")
        with pytest.raises(ContractInputError, match="no query"):
            led.query("evidence", "put", key="k")
        assert led.query("evidence", "get", key="k") is None
        for read in (led.get, led.get_versioned, led.history):
            with pytest.raises(ContractInputError, match="contract must be a str, got int"):
                read(5, "k")  # type: ignore[arg-type]
        # A presented digest is bytes: a hex string must not read as "does not match" (tampered).
        led.apply_block([put(1, "doc")])
        digest = led.query("evidence", "get", key="doc")["digest"]
        assert led.query("evidence", "verify", key="doc", digest=digest)
        assert not led.query("evidence", "verify", key="doc", digest=bytes(32))
        with pytest.raises(ContractInputError, match="digest must be bytes, got str"):
            led.query("evidence", "verify", key="doc", digest=digest.hex())
        with pytest.raises(ContractInputError, match="digest must be bytes, got str"):
            led.query("cert", "status", cert_id="c", digest=digest.hex())
        assert issubclass(ContractInputError, ValueError) and issubclass(ContractInputError, ContractError)


def test_contract_names_are_checked_on_reads_and_registration(tmp_path):
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(1)])
        # "evidence/k" under a contract named "evidence/" ... would read evidence's own key "k"
        # through another name: a name transactions cannot carry never reaches the store.
        for name, reason in [("", "1 to 64 bytes"), ("Evidence", "lowercase"), ("evidence/x", "outside [a-z0-9_]"),
                             ("e" * 65, "1 to 64 bytes")]:
            for read in (led.get, led.history, led.get_versioned):
                with pytest.raises(MalformedInputError, match=f"contract name: .*{re.escape(reason)}"):
                    read(name, "k")
        # A well-formed name that no contract registered holds nothing.
        assert led.get("nobody", "k") is None and led.history("nobody", "k") == []

        class Misnamed(Contract):
            name = "Registry"

        with pytest.raises(MalformedInputError, match="contract name"):
            led.register(Misnamed())
        with pytest.raises(InvalidInputError, match="a contract is a Contract instance, got int"):
            led.register(5)  # type: ignore[arg-type]
        with pytest.raises(UnknownNameError):
            led.query("Registry", "get", key="k")  # it was not registered
    with pytest.raises(MalformedInputError, match="contract name"):
        Ledger.open(tmp_path / "m", contracts=[Misnamed()])
    assert not (tmp_path / "m").exists()  # refused before anything was created


@pytest.mark.parametrize("method_name", ["reimburseV2", "_internal", "r" * 65])
def test_a_contract_with_a_method_no_transaction_can_name_is_refused_at_registration(tmp_path, method_name):
    # It was registered, and only a transaction for it said (at creation) that it could not be.
    def body(self: Contract, ctx: Any) -> None:
        ctx.put("k", b"v")

    invoices = type("Invoices", (Contract,), {"name": "invoices", method_name: method(body)})()
    with pytest.raises(InvalidInputError, match=f"contract 'invoices': no transaction can call method '{method_name}'"):
        Ledger.open(tmp_path / "l", contracts=[invoices])
    with Ledger.open(tmp_path / "l") as led, pytest.raises(InvalidInputError, match="no transaction can call"):
        led.register(invoices)


def test_the_longest_key_a_contract_may_write_survives_folds_and_reopening(tmp_path, monkeypatch):
    # A key that execution accepted but the `state` table (LMDB keys: 511 bytes at most) could not
    # take used to stop every later write at the fold that reached it: one transaction with a long
    # key argument wedged the chain on every node alike.
    tx = lambda m, n, **a: Transaction.create(KP, "registry", m, a, n).encode()  # noqa: E731
    longest, too_long = "k" * MAX_KEY_SIZE, "k" * (MAX_KEY_SIZE + 1)
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 1)  # each commit folds every entry
    with Ledger.open(tmp_path / "l", contracts=[Registry()]) as led:
        blk = led.apply_block([tx("set", 1, key=longest, value=b"v"), tx("set", 2, key=too_long, value=b"w")])
        assert blk.receipts[0].ok and not blk.receipts[1].ok
        assert f"key must be 1..{MAX_KEY_SIZE} bytes" in blk.receipts[1].error
        for n in (3, 4):
            assert led.apply_block([tx("set", n, key=f"k/{n}", value=b"x")]).receipts[0].ok
        assert led.get("registry", longest) == b"v" and led.audit().height == led.height
    with Ledger.open(tmp_path / "l", contracts=[Registry()]) as led:
        assert led.get("registry", longest) == b"v" and led.history("registry", longest)[0].value == b"v"


class Rogue(Contract):
    """Builds its own SliceResult, as a native-speed contract may: each method breaks one rule."""

    name = "rogue"

    def methods(self) -> frozenset[str]:
        return frozenset(ROGUE_RESULTS)

    def execute(self, sl):  # type: ignore[no-untyped-def]
        n, mine = len(sl.indices), sl.indices.tolist()
        return ROGUE_RESULTS[sl.batch.methods[mine[0]]](n, mine)


ROGUE_RESULTS = {
    # Another contract's namespace: an evidence anchor must never be replaced by anyone.
    "overwrite": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"evidence/k/1"], values=[b"x"], txs=mine[:1]),
    "prefix": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogues/k"], values=[b"x"], txs=mine[:1]),
    "outcomes": lambda n, mine: SliceResult(ok=np.ones(n + 1, bool)),
    "columns": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogue/k"], values=[], txs=mine),
    "writer": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogue/k"], values=[b"x"], txs=[0]),
    "value": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogue/k"], values=["x"], txs=mine[:1]),
    "nothing": lambda n, mine: None,
    # Two writes of one key listed latest first: the store would keep the earlier as the key's value.
    "reversed": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogue/k"] * n, values=[b"a", b"b"],
                                            txs=mine[::-1]),  # fmt: skip
    "failed_writer": lambda n, mine: SliceResult(ok=np.zeros(n, bool), errors=dict.fromkeys(mine, "no"),
                                                 keys=[b"rogue/k"], values=[b"x"], txs=mine[:1]),  # fmt: skip
    # A failed receipt for the evidence put at index 0, which succeeded: a forged receipt.
    "stray_error": lambda n, mine: SliceResult(ok=np.ones(n, bool), errors={0: "forged"}),
    "silent_failure": lambda n, mine: SliceResult(ok=np.zeros(n, bool)),
    "error_type": lambda n, mine: SliceResult(ok=np.zeros(n, bool), errors=dict.fromkeys(mine, 5)),
    "stray_event": lambda n, mine: SliceResult(ok=np.ones(n, bool), events=[(0, "e", b"")]),
    "event_type": lambda n, mine: SliceResult(ok=np.ones(n, bool), events=[(mine[0], 5, b"")]),
    # In its namespace, but longer than any LMDB key (512 bytes): only staging can refuse it.
    "long_key": lambda n, mine: SliceResult(ok=np.ones(n, bool), keys=[b"rogue/" + b"k" * 506], values=[b"v"], txs=mine),
}


@pytest.mark.parametrize(
    ("method_", "words"),
    [
        ("overwrite", "contract 'rogue' wrote b'evidence/k/1', outside its namespace 'rogue/'"),
        ("prefix", "outside its namespace 'rogue/'"),
        ("outcomes", "returned (3,) outcomes for 2 transactions"),
        ("columns", "returned 1 keys, 0 values, 2 writers"),
        ("writer", "attributed writes to transactions outside its slice"),
        ("value", "is str, not bytes or None"),
        ("nothing", "returned NoneType for its slice, not a SliceResult"),
        ("reversed", "listed its writes out of block order"),
        ("failed_writer", "attributed writes to transactions it failed"),
        ("stray_error", "must give an error message for each transaction it failed, and only those"),
        ("silent_failure", "must give an error message for each transaction it failed, and only those"),
        ("error_type", "gave an error message that is not a str"),
        ("stray_event", "returned the event (0, 'e', b''): events are (index of a transaction it ran"),
        ("event_type", "returned the event (1, 5, b'')"),
    ],
)
def test_a_slice_result_that_breaks_the_rules_fails_the_block_and_writes_nothing(tmp_path, method_, words):
    with Ledger.open(tmp_path / "l", contracts=[Rogue()]) as led:
        led.apply_block([put(1)])  # anchors evidence/k/1
        before, head = dump(led), led.head
        raws = [Transaction.create(KP, "rogue", method_, {}, nonce).encode() for nonce in (2, 4)]
        with pytest.raises(InvalidInputError, match=re.escape(words)):
            led.apply_block([put(3), *raws])  # the evidence put at index 0 is not the rogue's
        assert dump(led) == before and led.head == head
        assert led.query("evidence", "get", key="k/1")["digest"] == bytes([1]) * 32


def test_a_state_key_the_store_cannot_hold_fails_the_block_and_writes_nothing(tmp_path):
    with Ledger.open(tmp_path / "l", contracts=[Rogue()]) as led:
        led.apply_block([put(1)])
        before, head = dump(led), led.head
        raw = Transaction.create(KP, "rogue", "long_key", {}, 2).encode()
        with pytest.raises(MalformedInputError, match="write 0 has a state key of 512 bytes: 1..=511 allowed"):
            led.apply_block([raw])
        assert dump(led) == before and led.head == head
        assert led.apply_block([put(2)]).receipts[0].ok  # still usable


def test_lmdb_errors_inside_a_read_are_store_errors_and_the_ledger_goes_on(tmp_path):
    # LMDB's reader table has 512 slots: a read beyond them fails as the store's own error (as a
    # damaged page does), not as an lmdb exception the caller never heard of.
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(1)])
        with contextlib.ExitStack() as held:
            for _ in range(512):
                held.enter_context(led._store.read())
            where = re.escape(repr(str(tmp_path / "l")))  # which store, on a host that runs several
            with pytest.raises(StoreError, match=f"cannot read the ledger store at {where}: .*MDB_READERS_FULL"):
                led.get("evidence", "k/1")
        assert led.get("evidence", "k/1") is not None and led.apply_block([put(2)]).height == 2


def test_a_bad_proposer_or_timestamp_fails_the_block_and_writes_nothing(tmp_path):
    with Ledger.open(tmp_path / "l") as led:
        led.apply_block([put(1)])
        before, head = dump(led), led.head
        # The proposer's length is the suite's: the header encoder refuses it, after execution.
        with pytest.raises(EncodeError, match="proposer"):
            led.apply_block([put(2)], proposer=b"not a key")
        # Types and the timestamp's range are checked before anything runs. A negative timestamp
        # must not be quietly raised to the previous block's.
        for kw, words in [
            ({"timestamp": 2**64}, "timestamp must be None or milliseconds in 0..2**64 - 1"),
            ({"timestamp": -1}, "got -1"),
            ({"timestamp": "1700000000000"}, "got '1700000000000'"),
            ({"timestamp": True}, "got True"),
            ({"proposer": "abc"}, "proposer must be bytes, got str"),
            ({"consensus": 5}, "consensus must be bytes, got int"),
        ]:
            with pytest.raises(InvalidInputError, match=re.escape(words)):
                led.apply_block([put(2)], **kw)
            with pytest.raises(InvalidInputError, match=re.escape(words)):
                led.apply_group([BlockInput([put(2)], **kw)])
        with pytest.raises(InvalidInputError, match="timestamp"):
            list(led.apply_blocks([[put(2)]], timestamps=[-5]))
        with pytest.raises(InvalidInputError, match="a group holds BlockInput values, got list"):
            led.apply_group([BlockInput([put(2)]), [put(3)]])  # type: ignore[list-item]
        assert dump(led) == before and led.head == head
        blk = led.apply_block([put(2)], proposer=KP.public_key)
        assert blk.height == 2 and blk.receipts[0].ok and blk.header.history_root == led.history_root(2)
        assert led.audit().height == 2


def test_a_block_that_does_not_re_execute_to_the_expected_header_writes_nothing(tmp_path):
    # A node catching up applies a peer's block with the header the peer served: the block must
    # re-execute, on this ledger's head, to exactly that header, or it is not written at all.
    with (
        Ledger.open(tmp_path / "peer") as peer,
        Ledger.open(tmp_path / "here") as here,
        Ledger.open(tmp_path / "fork") as fork,
    ):
        peer.register(Registry())  # a contract this ledger lacks: its transactions fail here
        first = peer.apply_block([put(1)], timestamp=10)
        here.apply_block(first.raws, timestamp=10, expect=first.header)
        fork.apply_block([put(1, "other")], timestamp=10)
        before, head = dump(here), here.head
        following = peer.apply_block([put(2)], timestamp=20)
        forked = fork.apply_block(following.raws, timestamp=20)
        registry = Transaction.create(KP, "registry", "set", {"key": "r", "value": b"v"}, 3).encode()
        unknown_here = peer.apply_block([registry], timestamp=30)
        tampered = BlockHeader(**{**{f: getattr(following.header, f) for f in HEADER_FIELDS}, "tx_count": 2})
        for raws, expect, words in [
            (forked.raws, forked.header, f"prev_hash {head.hash.hex()} here, {forked.header.prev_hash.hex()} expected"),
            (following.raws, tampered, "tx_count 1 here, 2 expected"),
            (unknown_here.raws, unknown_here.header, "another header than the one expected: height 2 here, 3 expected"),
        ]:
            with pytest.raises(HeaderMismatchError, match=re.escape(words)):
                here.apply_block(raws, timestamp=expect.timestamp, consensus=expect.consensus, expect=expect)
            assert dump(here) == before and here.head == head
        assert here.apply_block(following.raws, timestamp=20, expect=following.header).header == following.header
        with pytest.raises(HeaderMismatchError, match="state_root"):  # the registry's write is missing here
            here.apply_block(unknown_here.raws, timestamp=30, expect=unknown_here.header)
        assert here.height == 2 and here.get("registry", "r") is None
        with pytest.raises(InvalidInputError, match="expect must be a BlockHeader or None, got dict"):
            here.apply_block([put(4)], expect={"height": 3})  # type: ignore[arg-type]
        assert here.audit().height == 2


def test_a_group_with_a_block_that_does_not_re_execute_to_its_expected_header_writes_nothing(tmp_path):
    # A node catching up applies a peer's answer (several blocks) as one group: one block that
    # does not re-execute to the header the peer served leaves the whole group unwritten.
    with Ledger.open(tmp_path / "peer") as peer, Ledger.open(tmp_path / "here") as here:
        served = [peer.apply_block([put(n)], timestamp=10 * n, consensus=b"c%d" % n) for n in (1, 2, 3)]
        inputs = [BlockInput(b.raws, b.header.timestamp, consensus=b.header.consensus, expect=b.header) for b in served]
        wrong = BlockHeader(**{**{f: getattr(served[1].header, f) for f in HEADER_FIELDS}, "timestamp": 21})
        before, head = dump(here), here.head
        with pytest.raises(HeaderMismatchError, match=re.escape("timestamp 20 here, 21 expected")):
            here.apply_group([inputs[0], dataclasses.replace(inputs[1], expect=wrong), inputs[2]])
        assert dump(here) == before and here.head == head
        with pytest.raises(InvalidInputError, match="expect must be a BlockHeader or None, got bytes"):
            BlockInput([put(1)], expect=served[0].header.hash)  # type: ignore[arg-type]
        # A block's header values are refused as it is made, not when its group commits (where one
        # bad timestamp refused every block of the group, and stopped a node applying it).
        for bad in ({"timestamp": -1}, {"timestamp": 2**64}, {"proposer": "p"}, {"consensus": None}):
            with pytest.raises(InvalidInputError, match=next(iter(bad))):
                BlockInput([put(1)], **bad)  # type: ignore[arg-type]
        assert [b.header for b in here.apply_group(inputs)] == [b.header for b in served]
        assert here.audit().height == 3


def test_reopening_as_another_suite_or_chain_changes_nothing(tmp_path):
    path = tmp_path / "l"
    with Ledger.open(path, chain_id="gov-bj") as led:
        led.apply_block([put(1, chain_id="gov-bj")])
        before = dump(led)
    for kw in ({"suite": "sm2-sm3", "chain_id": "gov-bj"}, {"chain_id": "gov-sh"}, {}):
        with pytest.raises(ChainMismatchError):
            Ledger.open(path, **kw)
    with Ledger.open(path, "ed25519-blake3", chain_id="gov-bj") as led:
        assert dump(led) == before
        assert led.apply_block([put(2, chain_id="gov-bj")]).height == 2


def test_opening_something_that_is_not_a_ledger_directory_is_a_typed_error(tmp_path):
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="it is a file, not a directory"):
        Ledger.open(tmp_path / "file")
    with pytest.raises(StoreError, match="cannot open ledger store"):
        Ledger.open(tmp_path / "file" / "below")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "data.mdb").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StoreError, match="not an LMDB file|MDB_INVALID"):
        Ledger.open(tmp_path / "garbage")
    env = lmdb.open(str(tmp_path / "foreign"))  # an LMDB environment that holds something else
    with env.begin(write=True) as txn:
        txn.put(b"meta", b"someone else's data")
    env.close()
    with pytest.raises(StoreError, match="not a ledger store"):
        Ledger.open(tmp_path / "foreign")
    # Refusing touched nothing: the file is intact, the foreign environment keeps its data.
    assert (tmp_path / "file").read_bytes() == b"not a directory"
    env = lmdb.open(str(tmp_path / "foreign"), readonly=True)
    with env.begin() as txn:
        assert list(txn.cursor()) == [(b"meta", b"someone else's data")]
    env.close()


def test_a_store_in_another_layout_is_refused_on_open_and_left_as_it_was(tmp_path):
    """Before `meta/store_format` existed state entries held their values: reading such a store
    with today's layout would misread every key, so opening refuses it, as it does a future format."""
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        led.apply_block([put(1)])
        before = dump(led)
    for stored, number in ((None, 1), ((5).to_bytes(4, "big"), 5)):
        env = lmdb.open(str(path), max_dbs=len(TABLES))
        with env.begin(write=True, db=env.open_db(b"meta")) as txn:
            if stored is None:
                txn.delete(b"store_format")
            else:
                txn.put(b"store_format", stored)
        env.close()
        with pytest.raises(StoreError, match=f"in store format {number}; this ledgercore reads formats 2 to 4"):
            Ledger.open(path)
        env = lmdb.open(str(path), max_dbs=len(TABLES), readonly=True)
        with env.begin(db=env.open_db(b"meta", create=False)) as txn:
            assert txn.get(b"store_format") == stored  # refusing wrote nothing
        env.close()
    env = lmdb.open(str(path), max_dbs=len(TABLES))
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"store_format", (4).to_bytes(4, "big"))
    env.close()
    with Ledger.open(path) as led:
        assert dump(led) == before


def _one_row_per_nonce(txn: lmdb.Transaction, db: object) -> None:
    """Rewrites a `nonces` table of runs as formats 2 and 3 kept it: ``sender || u64 nonce`` per
    used nonce (the value, where the nonce was used, is not read back)."""
    runs = list(txn.cursor(db=db))
    txn.drop(db, delete=False)
    for key, value in runs:
        sender = key[:-8]
        start, end = (value[:8], value[8:]) if key[-8:] == b"\xff" * 8 else (value, key[-8:])
        for n in range(int.from_bytes(start, "big"), int.from_bytes(end, "big") + 1):
            txn.put(sender + n.to_bytes(8, "big"), bytes(12), db=db)


@pytest.mark.parametrize("old", [2, 3])
def test_a_format_2_or_3_store_opens_converted_to_format_4(tmp_path, monkeypatch, old):
    """Formats 2 and 3 kept one `nonces` row per used nonce, and format 2 every state entry in the
    `state` table: such a store opens with its nonces as runs (and, from format 2, its fold mark
    past its last block), and reads and writes on as format 4."""
    path = tmp_path / "l"
    monkeypatch.setattr(ledger_module, "STATE_SWEEP_COMMITS", 1)
    other = signing.from_private_bytes("ed25519", bytes(range(2, 34)))
    with Ledger.open(path) as led:
        led.apply_block([put(1, "a"), put(2, "b"), put(5, "c"), put(7, "d", kp=other)])
        led.apply_block([])  # folds every entry: the state table is whole, as format 2 kept it
        expected, value = dump(led), led.get("evidence", "a")
    env = lmdb.open(str(path), max_dbs=len(TABLES))
    with env.begin(write=True) as txn:
        meta, nonces = env.open_db(b"meta", txn=txn), env.open_db(b"nonces", txn=txn)
        txn.put(b"store_format", old.to_bytes(4, "big"), db=meta)
        if old == 2:
            txn.delete(b"state_mark", db=meta)
        _one_row_per_nonce(txn, nonces)
        assert txn.stat(nonces)["entries"] == 4
    env.close()
    with Ledger.open(path) as led:
        assert led._store.get("meta", b"store_format") == (4).to_bytes(4, "big")
        assert led._store.get("meta", b"state_mark") == height_key(3)
        got = dump(led)
        assert got["nonces"] == expected["nonces"] and len(got["nonces"]) == 3  # KP: 1..2 and 5; other: 7
        assert got["state"] == expected["state"] and led.get("evidence", "a") == value is not None
        blk = led.apply_block([put(3, "a"), put(2, "e"), put(4, "e")])
        assert [r.ok for r in blk.receipts] == [False, False, True]  # anchored once; replayed nonce
        assert "replayed nonce 2" in blk.receipts[1].error
        assert [e.value for e in led.history("evidence", "a")] == [value]
        assert led.audit().height == 3


# -- corruption of the stored files: the audit names the height and the field ------------------

TOP = 5


def _build(path) -> None:
    """TOP blocks; every state entry but the last block's folded into the ``state`` table, where
    the corruptions below edit them."""
    sweep = ledger_module.STATE_SWEEP_COMMITS
    ledger_module.STATE_SWEEP_COMMITS = 1  # each commit folds every entry committed before it
    try:
        with Ledger.open(path) as led:
            for h in range(1, TOP + 1):
                # The last put of each block reuses a nonce: one failed receipt per block.
                led.apply_block([put(h * 10 + i, f"c/{h}/{i}") for i in range(4)] + [put(h * 10, "dup")])
    finally:
        ledger_module.STATE_SWEEP_COMMITS = sweep


def _edit(path, table: str, key: bytes, change) -> None:
    """Rewrites one stored value with raw LMDB (``change(old) -> new``; None deletes it)."""
    env = lmdb.open(str(path), max_dbs=len(TABLES))
    try:
        with env.begin(write=True) as txn:
            db = env.open_db(table.encode(), txn=txn, create=False)
            old = txn.get(key, db=db)
            assert old is not None, (table, key)
            new = change(old)
            if new is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, new, db=db)
    finally:
        env.close()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _flip_state_root(raw: bytes) -> bytes:
    return _flip(raw, raw.index(BlockHeader.decode(raw).state_root) + 5)


def _flip_signature_in_body(raw: bytes) -> bytes:
    header, raws = decode_block(raw)
    return encode_block(header, [raws[0], _flip_last(raws[1]), *raws[2:]])


def _forge_top(path) -> None:
    """A self-consistent forgery of the newest block: another state root in its header and its
    body, and the matching hash leaf. Only re-deriving the state can tell."""
    holder = {}

    def header(raw: bytes) -> bytes:
        h = BlockHeader.decode(raw)
        fields = {f: getattr(h, f) for f in BlockHeader.__dataclass_fields__ if not f.startswith("_")}
        forged = BlockHeader(**{**fields, "state_root": bytes(32)})
        holder["h"] = forged
        return forged.encode()

    k = height_key(TOP)
    _edit(path, "headers", k, header)
    _edit(path, "blocks", k, lambda raw: encode_block(holder["h"], decode_block(raw)[1]))
    _edit(path, "hashes", k, lambda raw: holder["h"].hash)


def _state_key_written_at(h: int) -> bytes:
    return f"evidence/c/{h}/1".encode()


CORRUPTIONS = {
    # name: (corrupt(path), expected height, expected field)
    "header byte": (lambda p: _edit(p, "headers", height_key(3), _flip_state_root), 3, "block.header"),
    "body signature": (lambda p: _edit(p, "blocks", height_key(2), _flip_signature_in_body), 2, "signatures"),
    "txid byte": (lambda p: _edit(p, "txids", height_key(4), lambda v: _flip(v, 40)), 4, "txids"),
    "hash leaf": (lambda p: _edit(p, "hashes", height_key(1), lambda v: _flip(v, 0)), 1, "hash"),
    "receipts": (lambda p: _edit(p, "receipts", height_key(3), lambda v: encode_value([5, [], []])), 3, "receipts_root"),  # its header commits to them
    "missing txids": (lambda p: _edit(p, "txids", height_key(2), lambda v: None), 2, "txids"),
    "state value": (lambda p: _edit(p, "state", _state_key_written_at(3), lambda v: _flip(v, len(v) - 3)), 3, "state"),
    "state deleted": (lambda p: _edit(p, "state", _state_key_written_at(4), lambda v: None), 4, "state"),
    "history entry": (lambda p: _history_drop(p, 2), 2, "history"),
    "nonce run": (lambda p: _first_entry_drop(p, "nonces"), None, "nonces"),  # runs name no height
    "forged top block": (_forge_top, TOP, "state_root"),
}


def _history_drop(path, h: int) -> None:
    env = lmdb.open(str(path), max_dbs=len(TABLES))
    with env.begin() as txn:
        db = env.open_db(b"history", txn=txn, create=False)
        key = next(k for k, _ in txn.cursor(db=db) if int.from_bytes(k[:8], "big") == h)
    env.close()
    _edit(path, "history", key, lambda v: None)


def _first_entry_drop(path, table: str) -> None:
    env = lmdb.open(str(path), max_dbs=len(TABLES))
    with env.begin() as txn:
        key = next(iter(txn.cursor(db=env.open_db(table.encode(), txn=txn, create=False))))[0]
    env.close()
    _edit(path, table, key, lambda v: None)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_audit_names_the_height_and_field_of_a_corrupted_store(tmp_path, name):
    corrupt, height, field = CORRUPTIONS[name]
    path = tmp_path / "l"
    _build(path)
    with Ledger.open(path) as led:
        assert led.audit().height == TOP
    corrupt(path)
    with Ledger.open(path) as led:
        with pytest.raises(IntegrityError) as info:
            led.audit()
    err = info.value
    assert (err.height, err.field) == (height, field), str(err)
    where = "chain metadata" if height is None else f"height {height}"
    assert isinstance(err, LedgerError) and str(err).startswith(f"{where}: {field}: ")


def test_a_corrupted_newest_header_is_a_typed_error_on_open(tmp_path):
    path = tmp_path / "l"
    _build(path)
    _edit(path, "headers", height_key(TOP), _flip_state_root)
    with pytest.raises(LedgerError, match="stored block hashes do not match"):
        Ledger.open(path)
    _edit(path, "headers", height_key(TOP), lambda raw: raw[:-3])
    # Damage to the store, as the mismatch above (it was a DecodeError, a ValueError: input at fault)
    with pytest.raises(StoreError, match=f"the stored header at the top, height {TOP}, does not decode") as info:
        Ledger.open(path)
    assert isinstance(info.value.__cause__, IntegrityError) and info.value.__cause__.field == "headers"


@pytest.mark.parametrize("table", ["blocks", "receipts", "txids"])
def test_reading_a_block_whose_row_is_gone_names_the_table(tmp_path, table):
    path = tmp_path / "l"
    _build(path)
    _edit(path, table, height_key(2), lambda v: None)
    with Ledger.open(path) as led:
        with pytest.raises(IntegrityError, match=f"height 2: {table}: missing"):
            led.block(2)
        assert led.block(3).height == 3  # the rest of the ledger still reads


def test_a_damaged_history_entry_the_overlay_reads_back_is_a_typed_error_on_open(tmp_path, monkeypatch):
    """Opening reads the changes not yet folded into `state` from history: an entry there that is
    not framed as a change of a key refuses the open with a StoreError, and the store is closed."""
    path = tmp_path / "l"
    _build(path)
    env = lmdb.open(str(path), max_dbs=len(TABLES), readonly=True)
    with env.begin() as txn:
        mark = txn.get(b"state_mark", db=env.open_db(b"meta", txn=txn, create=False))
        with txn.cursor(db=env.open_db(b"history", txn=txn, create=False)) as cur:
            assert cur.set_range(mark)
            change = cur.key()
    env.close()
    _edit(path, "history", change, lambda v: v[:40])
    closed, close = [], Store.close
    monkeypatch.setattr(Store, "close", lambda self: (closed.append(self), close(self)))
    with pytest.raises(StoreError, match="history .* does not parse: .*not framed as a change of a key"):
        Ledger.open(path)
    assert len(closed) == 1


def test_structure_only_audit_skips_the_replay(tmp_path):
    path = tmp_path / "l"
    _build(path)
    _edit(path, "state", _state_key_written_at(2), lambda v: None)
    with Ledger.open(path) as led:
        report = led.audit(replay=False)
        assert report.height == TOP and not report.replayed and report.transactions == 5 * TOP
        assert report.failed_transactions == TOP  # each block's last put reuses a nonce
        with pytest.raises(IntegrityError, match="height 2: state"):
            led.audit()


P_LEAF, P_BRANCH, PAGE_SIZE = 0x02, 0x01, 4096  # LMDB's page flags; its pages on this platform
# Offsets in a meta page (64-bit LMDB): its header, magic, version, address, map size, then the
# free and main tables' records (48 bytes, the root page last), the last page and the txn id.
META_MAIN_ROOT, META_TXNID = 128, 144


def _mislabel_leaves_holding(path, marker: bytes) -> int:
    """Rewrites the header of every leaf page of ``data.mdb`` that holds ``marker`` to call it a
    branch page: damage LMDB does not check when a cursor steps onto the page from the one before
    (an assertion in its ``mdb_cursor_next`` aborts the process). Returns how many pages."""
    data = bytearray((path / "data.mdb").read_bytes())
    pages = 0
    for start in range(2 * PAGE_SIZE, len(data), PAGE_SIZE):  # after the two meta pages
        number, _, flags = struct.unpack_from("<QHH", data, start)
        if number == start // PAGE_SIZE and flags == P_LEAF and marker in data[start : start + PAGE_SIZE]:
            struct.pack_into("<H", data, start + 10, P_BRANCH)
            pages += 1
    (path / "data.mdb").write_bytes(data)
    return pages


def test_cli_audit_reports_a_page_that_kills_its_reader(tmp_path, capsys):
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        for h in range(6):  # history over several leaf pages
            led.apply_block([put(h * 40 + i + 1, f"page/{h}/{i:02}") for i in range(40)])
    assert _mislabel_leaves_holding(path, b"page/4/20") >= 1
    assert main(["audit", str(path)]) == 1  # and this process is still here
    assert "audit FAILED: reading the store killed the auditing process (SIG" in capsys.readouterr().out


def test_cli_audit_reports_damage_lmdb_detects(tmp_path, capsys):
    path = tmp_path / "l"
    _build(path)
    data = bytearray((path / "data.mdb").read_bytes())
    # The meta page LMDB reads (the higher txn id), and in it the root page of the table of tables.
    meta = max((0, PAGE_SIZE), key=lambda at: struct.unpack_from("<Q", data, at + META_TXNID)[0])
    (root,) = struct.unpack_from("<Q", data, meta + META_MAIN_ROOT)
    struct.pack_into("<H", data, root * PAGE_SIZE + 10, 0x10)  # a page type no table has
    (path / "data.mdb").write_bytes(data)
    assert main(["audit", str(path)]) == 1
    assert "audit FAILED: the store is damaged: " in capsys.readouterr().out


def test_apply_blocks_fails_on_a_none_block_and_on_missing_timestamps(tmp_path):
    with Ledger.open(tmp_path / "l") as led:
        applied = led.apply_blocks([[put(1)], None, [put(2)]])
        assert next(applied).height == 1
        with pytest.raises(MalformedInputError):  # as apply_block(None): not the end of the input
            next(applied)
        assert led.height == 1
        with pytest.raises(InvalidInputError, match="fewer timestamps than blocks: none for block 3"):
            list(led.apply_blocks([[put(2)], [put(3)]], timestamps=[100]))
        assert led.height == 2


def test_apply_blocks_commits_every_block_before_its_source_fails(tmp_path):
    # The next blocks are fetched while a block commits: a source that fails there (a peer gone
    # mid-download) used to abort that block's write too.
    def source():
        yield from ([put(n)] for n in range(1, 6))
        raise ConnectionError("peer went away while fetching block 6")

    with Ledger.open(tmp_path / "l") as led:
        applied = []
        with pytest.raises(ConnectionError, match="peer went away"):
            applied.extend(b.height for b in led.apply_blocks(source()))
        assert applied == [1, 2, 3, 4, 5] and led.height == 5
        assert led.apply_block([put(6)]).height == 6
        led.audit()


def test_apply_blocks_commits_a_block_without_waiting_for_the_source_to_produce_the_next(tmp_path):
    # A source streaming blocks as a peer sends them: block 1 must be durable and yielded while
    # block 2 has not arrived. The source used to be read inside block 1's write, so block 1 waited
    # (its LMDB write open) until block 2 came, or the source gave up.
    arrived, pulled = threading.Event(), []

    def source():
        yield [put(1)]
        pulled.append(arrived.wait(timeout=3))
        yield [put(2)]

    with Ledger.open(tmp_path / "l") as led:
        applied = led.apply_blocks(source())
        assert next(applied).height == 1
        assert pulled == [] and led.height == 1  # block 1 committed; block 2 has not arrived
        arrived.set()
        assert [b.height for b in applied] == [2] and pulled == [True]


def test_a_source_that_goes_quiet_holds_neither_close_nor_the_interpreters_exit(tmp_path):
    # apply_blocks reads its source ahead on another thread. That read used to run on the
    # ledger's own pool, which close() and the interpreter's exit both wait for: a live feed
    # gone quiet hung them forever.
    script = f"""
import sys, threading
sys.path.insert(0, {str(HERE)!r})
from test_bad_input import put
from ledgercore import Ledger

def source():
    yield [put(1)]
    threading.Event().wait()  # the feed goes quiet for good

led = Ledger.open({str(tmp_path / "l")!r})
applied = led.apply_blocks(source())
print(next(applied).height, flush=True)
applied.close()
if sys.argv[1] == "close":
    led.close()
    print("closed", flush=True)
"""
    for how in ("close", "exit"):
        run = subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.split() == (["1", "closed"] if how == "close" else ["1"])
        with Ledger.open(tmp_path / "l") as led:
            assert led.height == 1
        shutil.rmtree(tmp_path / "l")


class Reentrant(Contract):
    """Calls back into the ledger that runs it."""

    name = "reentrant"
    ledger: Ledger

    @method
    def close(self, ctx) -> None:
        self.ledger.close()

    @method
    def apply(self, ctx) -> None:
        self.ledger.apply_block([put(77)])

    @method
    def read(self, ctx) -> None:
        ctx.put("seen", self.ledger.get("evidence", "k/1") or b"none")

    @query
    def closing(self, state) -> None:
        self.ledger.close()

    @query
    def applying(self, state) -> int:
        return self.ledger.apply_block([put(78)]).height

    @query
    def reading(self, state) -> bytes | None:
        return self.ledger.get("evidence", "k/1")


def test_a_contract_calling_its_ledgers_write_or_close_fails_its_transaction_instead_of_waiting_for_itself(tmp_path):
    # Contracts run on the ledger's write thread: close() there tried to join the thread it ran
    # on (a RuntimeError, and the writer shut while the store stayed open), and a nested
    # apply_block waited for the write lock its own caller held, forever.
    contract = Reentrant()
    with Ledger.open(tmp_path / "l", contracts=[contract]) as led:
        contract.ledger = led
        led.apply_block([put(1)])
        calls = [Transaction.create(KP, "reentrant", m, {}, n).encode() for n, m in enumerate(["close", "apply", "read"], 2)]
        rs = led.apply_block(calls).receipts
        for r in rs[:2]:
            assert not r.ok and "ReentrantCallError" in r.error and "would wait for itself" in r.error, r.error
        assert rs[2].ok and led.get("reentrant", "seen") == led.get("evidence", "k/1") != b"none"  # reads are fine
        assert led.height == 2 and led.get("evidence", "k/77") is None
        assert led.apply_block([put(5)]).height == 3  # still open, still writing
    assert issubclass(ReentrantCallError, LedgerError)


def test_a_query_calling_its_ledgers_write_or_close_is_refused_instead_of_waiting_for_its_own_read(tmp_path):
    # A query runs inside a read of the store: close() waited for that read to end, forever, and so
    # did a write once it had to grow the map (the map here is 64 KiB, so the first one does).
    contract = Reentrant()
    with Ledger.open(tmp_path / "l", contracts=[contract], map_size=1 << 16) as led:
        contract.ledger = led
        led.apply_block([put(1)])
        for name in ("closing", "applying"):
            raised: list[BaseException] = []
            caller = threading.Thread(target=_catching(raised, functools.partial(led.query, "reentrant", name)), daemon=True)
            caller.start()
            caller.join(10)
            assert not caller.is_alive(), f"the query calling {name} waits for its own read"
            assert isinstance(raised[0], ReentrantCallError) and "from inside a read of this ledger" in str(raised[0])
        assert led.query("reentrant", "reading") == led.get("evidence", "k/1") is not None  # reads are fine
        assert led.height == 1 and led.apply_block([put(2)] + [put(n) for n in range(3, 200)]).height == 2


def _catching(raised: list[BaseException], call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            raised.append(exc)

    return run


class _InterruptedOnce:
    """A store's gate whose ``n``-th entry raises KeyboardInterrupt, as a Ctrl-C landing there does."""

    def __init__(self, gate: threading.Condition, n: int) -> None:
        self.gate, self.left = gate, n

    def __enter__(self) -> bool:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt
        return self.gate.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.gate.__exit__(*exc)

    def __getattr__(self, name: str) -> object:
        return getattr(self.gate, name)


def test_a_read_nested_in_a_held_one_after_another_process_grew_the_map_is_refused_not_a_hang(tmp_path):
    # Adopting the other process's map size waits for every read of this process to end: from
    # inside one (a contract's query calling ledger.get) it waited for itself, and with its growth
    # pending every other thread's reads waited too.
    store = Store(tmp_path / "s", map_size=1 << 20)
    store.transact(lambda txn: txn.put(b"k", b"v", db=store.tables["meta"]), 16)
    grow = (
        "import sys; from ledgercore.store import Store\n"
        "b = Store(sys.argv[1], map_size=1 << 20)\n"
        "for i in range(24):\n"
        "    b.transact(lambda t, i=i: t.put(b'x%d' % i, bytes(1 << 20), db=b.tables['meta']), 1 << 20)\n"
        "b.close()\n"
    )
    outcome: list[BaseException | bytes] = []

    def nested() -> None:
        try:
            with store.read():
                subprocess.run([sys.executable, "-c", grow, str(tmp_path / "s")], check=True, timeout=120)
                with store.read() as inner:
                    outcome.append(inner.get(b"k", db=store.tables["meta"]))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=nested, daemon=True)
    reader.start()
    reader.join(120)
    assert not reader.is_alive(), "the nested read waits for the read around it"
    assert isinstance(outcome[0], StoreError) and "grew the ledger store's map" in str(outcome[0]), outcome
    with store.read() as txn:  # the outer read ended: this one adopts the new size
        assert txn.get(b"x23", db=store.tables["meta"]) == bytes(1 << 20)
    store.close()


def test_a_ctrl_c_landing_as_a_read_ends_still_ends_the_read(tmp_path):
    # The read's end was skipped: counted as open for ever, it made close() (and the next growth
    # of the map, and every read after it) wait for ever.
    led = Ledger.open(tmp_path / "l")
    led.apply_block([put(1)])
    store = led._store
    store._gate = _InterruptedOnce(store._gate, 2)  # a read enters the gate twice: to start, to end
    with pytest.raises(KeyboardInterrupt), store.read() as txn:
        assert txn.get(b"height", db=store.tables["meta"]) is not None
    assert led.get("evidence", "k/1") is not None  # usable
    closer = threading.Thread(target=led.close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() waits for a read that ended"

class Interrupting(Contract):
    """Takes its time: its write goes on only once the caller has told it to stop (``_commit``'s
    ``abandon``; at most 30 s), so whether the write commits does not depend on how soon a loaded
    machine runs the caller."""

    name = "interrupting"

    def __init__(self) -> None:
        self.running = threading.Event()
        self.caller = threading.get_ident()

    @method
    def go(self, ctx) -> None:
        self.running.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _told_to_stop(self.caller):
            time.sleep(0.01)
        ctx.put("done", b"yes")


def _told_to_stop(thread: int) -> bool:
    """Whether ``thread`` is inside ``Ledger._commit`` with its write's ``abandon`` set."""
    frame = sys._current_frames().get(thread)
    while frame is not None:
        if frame.f_code is ledger_module.Ledger._commit.__code__:
            abandon = frame.f_locals.get("abandon")
            return isinstance(abandon, threading.Event) and abandon.is_set()
        frame = frame.f_back
    return False


def test_a_write_whose_caller_is_interrupted_does_not_commit_behind_its_back(tmp_path):
    # Every write runs on the ledger's write thread: Ctrl-C stopped only the caller's wait (or,
    # on a ledger's first write, the start of that thread), and the block it was told had failed
    # committed half a second later. The Ctrl-C is the KeyboardInterrupt it raises in the caller's
    # wait for the write, raised there directly: sent as a signal (SIGALRM, SIGINT) it was at times
    # not handled until the write had ended, with the test runner in the background.
    contract = Interrupting()
    go = Transaction.create(KP, "interrupting", "go", {}, 1).encode()
    with Ledger.open(tmp_path / "l", contracts=[contract]) as led:
        submit = led._writer.submit

        def interrupted_while_waiting(*args: object, **kwargs: object) -> Future[Any]:
            write = submit(*args, **kwargs)

            def result(timeout: float | None = None) -> Any:
                contract.running.wait(30)
                raise KeyboardInterrupt

            write.result = result  # type: ignore[method-assign]
            return write

        led._writer.submit = interrupted_while_waiting  # type: ignore[method-assign]
        for apply in (led.apply_block, lambda raws: list(led.apply_blocks([raws]))):
            contract.running.clear()
            with pytest.raises(KeyboardInterrupt):
                apply([go])
            assert contract.running.is_set() and led.height == 0
        led._writer.submit = submit  # type: ignore[method-assign]
    with Ledger.open(tmp_path / "l") as led:
        assert led.height == 0 and led.get("interrupting", "done") is None  # nor committed later


def test_a_ctrl_c_that_lands_inside_submit_after_the_write_is_queued_does_not_commit_it(tmp_path):
    # Regression: the interrupt was caught only around waiting for the write, so one that landed
    # between queueing it and that wait (it did, under load) left it to commit behind the caller.
    with Ledger.open(tmp_path / "l") as led:
        submit, queued = led._writer.submit, []

        def submit_then_interrupted(*args: object, **kwargs: object) -> object:
            queued.append(submit(*args, **kwargs))
            raise KeyboardInterrupt

        led._writer.submit = submit_then_interrupted  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            led.apply_block([put(1)])
        led._writer.submit = submit  # type: ignore[method-assign]
        wait(queued)
        assert led.height == 0
    with Ledger.open(tmp_path / "l") as led:
        assert led.height == 0 and led.apply_block([put(1)]).height == 1


def test_a_receipt_keeps_at_most_max_error_chars_of_a_message_escapes_counted():
    assert receipt_error("m" * 5000) == "m" * MAX_ERROR_CHARS
    # A lone surrogate is kept as a 6-character escape, whole or not at all.
    assert receipt_error("\udc80" * 5000) == "\\udc80" * (MAX_ERROR_CHARS // 6)
    assert receipt_error("a" * (MAX_ERROR_CHARS - 1) + "\udc80") == "a" * (MAX_ERROR_CHARS - 1)
    assert receipt_error("x\udc80y") == "x\\udc80y"


def test_a_ledger_made_with_a_suite_object_reopens_with_it(tmp_path):
    sm2 = get_suite("sm2-sm3")
    Ledger.open(tmp_path / "l", suite=sm2).close()
    with Ledger.open(tmp_path / "l", suite=sm2) as led:
        assert led.suite is sm2
    with pytest.raises(ChainMismatchError, match="uses suite 'sm2-sm3', not 'p256-sha256'"):
        Ledger.open(tmp_path / "l", suite=get_suite("p256-sha256"))


def test_a_ledger_file_cut_short_or_emptied_is_refused_before_lmdb_maps_it(tmp_path):
    # Mapped anyway, reads past the end of a file cut short kill the process with SIGBUS, and an
    # emptied file would open as a new, empty ledger.
    path = tmp_path / "l"
    with Ledger.open(path) as led:
        for h in range(1, 6):
            led.apply_block([put(h * 100 + i, f"cut/{h}/{i}") for i in range(50)])
    data = path / "data.mdb"
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(StoreError, match="the file was cut short"):
        Ledger.open(path)
    data.write_bytes(b"")
    with pytest.raises(StoreError, match="holds no LMDB meta page"):
        Ledger.open(path)
    data.write_bytes(whole)
    with Ledger.open(path) as led:
        assert led.height == 5 and led.audit().height == 5


class _Nameless(Contract):
    """A contract whose class forgot its name."""


class _Surrogate(Contract):
    name = "bad\ud800"


def test_names_keys_and_chain_ids_that_are_not_utf8_strings_are_typed_errors(tmp_path):
    # A str holding a lone surrogate has no UTF-8 form: it raised UnicodeEncodeError (or TypeError
    # for a non-str) from deep inside, instead of an error saying which input is wrong.
    lone = "\ud800"
    with Ledger.open(tmp_path / "l") as led:
        for call, words in [
            (lambda: led.get("evidence", lone), "key '\\ud800' is not valid UTF-8"),
            (lambda: led.get(lone, "k"), "contract '\\ud800' is not valid UTF-8"),
            (lambda: led.history("evidence", lone), "key '\\ud800' is not valid UTF-8"),
            (lambda: led.query("evidence", "get", key=lone), "key '\\ud800' is not valid UTF-8"),
        ]:
            with pytest.raises(ContractInputError, match=re.escape(words)):
                call()
        for contract in (_Nameless(), _Surrogate()):
            with pytest.raises(InvalidInputError, match="a contract's name"):
                led.register(contract)
    with pytest.raises(InvalidInputError, match=re.escape("chain_id '\\ud800' is not valid UTF-8")):
        Ledger.open(tmp_path / "other", chain_id=lone)
    assert not (tmp_path / "other").exists()
    with pytest.raises(InvalidInputError, match="has characters no file name can hold"):
        Ledger.open(str(tmp_path / lone))
    with Ledger.open(tmp_path / "h") as led:
        fields = {name: getattr(led.head, name) for name in HEADER_FIELDS}
    for chain_id, words in ((None, "header field chain_id must be a str, got NoneType"),
                            (lone, "header field chain_id '\\ud800' is not valid UTF-8")):  # fmt: skip
        with pytest.raises(EncodeError, match=re.escape(words)):
            BlockHeader(**{**fields, "chain_id": chain_id})
    # An algorithm or scheme name no UTF-8 encodes: a typed error naming it, as an unknown one.
    for call in (lambda: hashing.digest(b"x", lone), lambda: hashing.digest_many([b"x"], lone),
                 lambda: merkle.root([b"a"], lone), lambda: merkle.inclusion_proof([b"a"], 0, lone),
                 lambda: signing.generate(lone), lambda: signing.verify(lone, bytes(32), b"m", bytes(64)),
                 lambda: signing.verify_batch(lone, [bytes(32)], [b"m"], [bytes(64)])):  # fmt: skip
        with pytest.raises(UnknownNameError, match=re.escape("'\\ud800'")):
            call()
    for kw, words in [
        ({"contract": lone}, "contract '\\ud800' is not valid UTF-8"),
        ({"contract": None}, "contract must be a str, got NoneType"),
        ({"method": 5}, "method must be a str, got int"),
        ({"chain_id": None}, "chain_id must be a str, got NoneType"),
    ]:
        args = {"contract": "evidence", "method": "put", "args": {}, "nonce": 1, **kw}
        with pytest.raises(EncodeError, match=re.escape(words)):
            Transaction.create(KP, **args)


def test_arguments_of_the_wrong_type_are_typed_errors_naming_them(tmp_path):
    # Each raised a bare TypeError (or, for bools and truthy answers, was taken as something else).
    assert decode_value(bytearray(encode_value({"a": 1}))) == decode_value(memoryview(encode_value({"a": 1}))) == {"a": 1}
    with pytest.raises(DecodeError, match="a value to decode must be bytes, got NoneType"):
        decode_value(None)
    with pytest.raises(InvalidInputError, match="contracts must be an iterable of Contract, got NoneType"):
        Ledger.open(tmp_path / "none", contracts=None)
    assert not (tmp_path / "none").exists()
    for kw, words in [({"nonce": True}, "nonce must be an int, got bool"), ({"timestamp": False}, "timestamp must be an int, got bool")]:
        with pytest.raises(EncodeError, match=words):
            Transaction.create(KP, "evidence", "put", {"key": "k", "digest": bytes(32)}, **{"nonce": 1, **kw})
    with Ledger.open(tmp_path / "l") as led:
        before = dump(led)
        fields = {name: getattr(led.head, name) for name in HEADER_FIELDS}
        for name in ("height", "timestamp", "tx_count"):
            with pytest.raises(EncodeError, match=f"header field {name} must be an int, got bool"):
                BlockHeader(**{**fields, name: True})
        with pytest.raises(UnknownNameError, match=re.escape("unknown contract ['x']")):
            led.query(["x"], "get")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="a group is a sequence of BlockInput values, got NoneType"):
            led.apply_group(None)  # type: ignore[arg-type]
        forged = put(1)[:-64] + bytes(64)
        for flag in ("no", 0, None):  # read as truth values, "no" skipped the signature check
            with pytest.raises(InvalidInputError, match="signatures_checked must be a bool"):
                led.apply_block([forged], signatures_checked=flag)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match="signatures_checked must be a bool"):
                BlockInput([forged], signatures_checked=flag)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match="one_thread must be a bool"):
                led.check_block([put(1)], one_thread=flag)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match="replay must be a bool"):
                led.audit(replay=flag)  # type: ignore[arg-type]
        # A set's order is its hash seed's: nodes would build different blocks from one.
        for call in (lambda: led.apply_block({put(1), put(2)}), lambda: led.check_block(frozenset([put(1)])),
                     lambda: list(led.apply_blocks([{put(1)}])), lambda: led.apply_group([BlockInput({put(1)})])):  # fmt: skip
            with pytest.raises(InvalidInputError, match="a block's transactions are in order: a list, not a (frozen)?set"):
                call()
        for blocks, stamps, words in ((None, None, "blocks must be an iterable, got NoneType"),
                                      ([[put(1)]], 5, "timestamps must be an iterable, got int")):  # fmt: skip
            with pytest.raises(InvalidInputError, match=words):
                list(led.apply_blocks(blocks, timestamps=stamps))  # type: ignore[arg-type]
        with pytest.raises(ContractInputError, match=re.escape("contract 'evidence' has no query ['get']")):
            led.query("evidence", ["get"], key="k")  # type: ignore[arg-type]
        assert dump(led) == before
        raw = put(1)
        assert led.apply_block([raw]).header.height == led.height == 1  # still usable
        txid = Transaction.decode(raw).id
        for ids in ([bytearray(txid)], [memoryview(txid)], iter([txid]), {txid}, (t for t in [txid])):
            assert led.tx_heights(ids) == {txid: 1}  # type: ignore[arg-type]
        for ids, words in ((None, "got NoneType"), (txid, "got bytes"), ([txid, 5], "item 1 is int, not bytes")):
            with pytest.raises(InvalidInputError, match=re.escape(words)):
                led.tx_heights(ids)  # type: ignore[arg-type]
    for path in (b"/tmp/x", None, 5):
        with pytest.raises(InvalidInputError, match="path must be a str or os.PathLike"):
            Ledger.open(path)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()
    with pytest.raises(InvalidInputError, match="contracts must have distinct names: 'rogue' given twice"):
        Ledger.open(tmp_path / "twice", contracts=[Rogue(), Rogue()])
    assert not (tmp_path / "twice").exists()
