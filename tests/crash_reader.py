"""A ledger reader for the crash tests: reads while crash_writer.py commits and is SIGKILLed.

    python tests/crash_reader.py PATH SEED --mode store|ledger|follow --stop-file FILE

``store`` keeps one Store (one LMDB environment) open for its whole life, as a read service in a
second process would, and checks each read snapshot: the newest block is whole (header, body,
txids, receipts, hash leaf, exactly the writer's transactions and failures), every key that block
wrote is in state (read from the raw tables as docs/FORMAT.md section 6 says) at that block's
version, and nothing of the next block is visible.
``ledger`` instead reopens the Ledger for every read and checks the same through the public API
(and finds the block's transactions); ``follow`` does that through one Ledger kept open, which
catches up with the writer's blocks as it reads.

It runs until FILE exists, then prints ``ok <reads> <distinct heights> <max height>``; on the first
violation it prints ``FAIL <what>`` and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import crash_writer as spec
from raw_state import raw_state

from ledgercore import Ledger, _native, hashing
from ledgercore.block import BlockHeader, decode_block
from ledgercore.codec import decode_value
from ledgercore.store import Store, height_key

_raws: dict[int, list[bytes]] = {}


def raws(seed: int, h: int) -> list[bytes]:
    if h not in _raws:
        _raws[h] = spec.block_raws(seed, h)
    return _raws[h]


def txids(seed: int, h: int) -> bytes:
    # Independent of the ledger's decoder: the id is the suite hash of the payload (raw less the
    # 64-byte signature).
    return hashing.digest_many([r[:-64] for r in raws(seed, h)], "blake3").tobytes() if h else b""


class Violation(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Violation(what)


def state_key(op: spec.Op) -> bytes:
    return _native.state_key(op.contract, op.key.encode())


def check_snapshot(store: Store, seed: int) -> int:
    with store.read() as txn:
        top = int.from_bytes(txn.get(b"height", db=store.tables["meta"]), "big")
        key = height_key(top)
        for table in ("headers", "blocks", "txids", "receipts", "hashes"):
            with txn.cursor(db=store.tables[table]) as cur:
                expect(cur.last() and cur.key() == key, f"{table}: last entry is not height {top}")
        header = BlockHeader.decode(txn.get(key, db=store.tables["headers"]))
        body_header, body_raws = decode_block(txn.get(key, db=store.tables["blocks"]))
        expect(body_header == header and header.height == top, f"block {top}: body header differs")
        expect(txn.get(key, db=store.tables["hashes"]) == header.hash, f"block {top}: hash leaf")
        expect(body_raws == raws(seed, top), f"block {top}: not the writer's transactions")
        expect(txn.get(key, db=store.tables["txids"]) == txids(seed, top), f"block {top}: txids")
        count, failures, _ = decode_value(txn.get(key, db=store.tables["receipts"]))
        expect(count == len(body_raws), f"block {top}: receipts cover {count} txs")
        expect([i for i, _ in failures] == spec.failed_indices(seed, top), f"block {top}: failures")
        if top == 0:
            return top
        ops = spec.block_ops(seed, top)
        written = [op for op in ops if op.kind in ("put", "issue", "revoke")]
        found = raw_state(txn, *(store.tables[t] for t in ("state", "history", "meta")))
        for op in written:
            value = found.get(state_key(op))
            expect(value is not None, f"block {top}: {op.contract}/{op.key} missing")
            expect(int.from_bytes(value[:8], "big") == top, f"block {top}: {op.key} has another version")
        following = [op for op in spec.block_ops(seed, top + 1) if op.kind in ("put", "issue", "revoke")]
        changes = [found[state_key(op)][:16] for op in following if state_key(op) in found]
        history = dict(store.get_many(txn, "history", changes))
        for op in following:
            value = found.get(state_key(op))
            if op.kind == "revoke":
                record = None if value is None else decode_value(spec.stored_value(state_key(op), history[value[:16]]))
                expect(record is not None and not record["revoked"],
                       f"block {top}: {op.key} already revoked by block {top + 1}")  # fmt: skip
            else:
                expect(value is None, f"block {top}: {op.key} of block {top + 1} is visible")
        return top


def check_ledger(led: Ledger, seed: int) -> int:
    """Checks the newest block through the public API; each call may catch up with later ones."""
    top = led.height
    blk = led.block(top)
    expect(blk.header == led.header(top) and led.head.height >= top, f"block {top}: headers differ")
    expect(blk.raws == raws(seed, top), f"block {top}: not the writer's transactions")
    expect(b"".join(blk.txids) == txids(seed, top), f"block {top}: txids")
    failed = [i for i, r in enumerate(blk.receipts) if not r.ok]
    expect(failed == spec.failed_indices(seed, top), f"block {top}: failures {failed}")
    for op in spec.block_ops(seed, top):
        if op.kind in ("put", "issue", "revoke"):
            got = led.get_versioned(op.contract, op.key)
            expect(got is not None and got[1] >= top, f"block {top}: {op.key} missing")
    ids = txids(seed, top)
    located = led.tx_heights([ids[i : i + 32] for i in range(0, len(ids), 32)])
    expect(all(h <= top for h in located.values()) and len(located) == len(ids) // 32, f"block {top}: tx lookups")
    return top


def open_ledger(path: str) -> Ledger:
    return Ledger.open(path, spec.SUITE, chain_id=spec.CHAIN_ID, map_size=1 << 20)


def check_reopened(path: str, seed: int) -> int:
    with open_ledger(path) as led:
        return check_ledger(led, seed)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("seed", type=int)
    parser.add_argument("--mode", choices=("store", "ledger", "follow"), required=True)
    parser.add_argument("--stop-file", required=True)
    args = parser.parse_args()
    heights: list[int] = []
    # A small map on purpose: the writer grows the file past it while this process reads.
    store = Store(args.path, map_size=1 << 20) if args.mode == "store" else None
    followed = open_ledger(args.path) if args.mode == "follow" else None
    print("ready", flush=True)
    try:
        while not os.path.exists(args.stop_file):
            if store is not None:
                top = check_snapshot(store, args.seed)
            elif followed is not None:
                top = check_ledger(followed, args.seed)
            else:
                top = check_reopened(args.path, args.seed)
            if heights:
                expect(top >= heights[-1], f"height went back from {heights[-1]} to {top}")
            heights.append(top)
    except Violation as exc:
        print(f"FAIL {exc}", flush=True)
        return 1
    print(f"ok {len(heights)} {len(set(heights))} {max(heights, default=0)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
