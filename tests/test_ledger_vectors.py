"""The layout of the history and state tables changed (history keyed by change id, a chain per
key; state entries naming the history entry that holds their value); what the ledger commits and
answers did not: fixed blocks give the headers (state roots, block hashes), history,
versions and unchanged tables recorded in tests/vectors/ledger_v1.json by the code before the
change. Regenerate with ``python tests/vectors/make_ledger_vectors.py`` only for a deliberate change.
"""

from __future__ import annotations

import json
import os
import struct
import sys

import lmdb

from ledgercore import BlockHeader, Ledger, hashing
from ledgercore.block import differing_fields
from ledgercore.store import height_key

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors"))
import make_ledger_vectors as vectors
from raw_state import raw_state


def test_fixed_blocks_give_the_recorded_headers_history_and_tables(tmp_path):
    expected = json.loads(vectors.VECTORS.read_text())
    got = vectors.build(tmp_path / "l")
    assert got["headers"] == expected["headers"]
    for key, entries in expected["history"].items():
        assert got["history"][key] == entries, key
    assert got["versioned"] == expected["versioned"]
    assert got["tables"] == expected["tables"]
    # The vectors cover what history must keep: several writes of a key in one block, deletes,
    # and re-creation after a delete.
    k = expected["history"]["registry/k"]
    assert [e[0] for e in k[:3]] == [1, 1, 1] and None in [e[3] for e in k]


def test_a_chain_with_receipts_roots_differs_from_the_recorded_one_only_in_its_headers(tmp_path):
    """Receipts roots (version 2 headers) change the headers, and with them every block hash,
    nothing else; each block's root is the suite hash of its stored receipts record."""
    expected = json.loads(vectors.VECTORS.read_text())
    got = vectors.build(tmp_path / "l", receipts_roots=True)
    assert got["history"] == expected["history"] and got["versioned"] == expected["versioned"]
    changed = {t for t in expected["tables"] if got["tables"][t] != expected["tables"][t]}
    assert changed == {"headers", "blocks", "hashes"}  # the blocks hold their headers
    with Ledger.open(tmp_path / "l", chain_id="vectors", contracts=[vectors.Registry()]) as led:
        for h, old in enumerate(expected["headers"], start=1):
            new, v1 = led.header(h), BlockHeader.decode(bytes.fromhex(old))
            assert new.encode()[0] == 2 and v1.encode()[0] == 1
            assert new.receipts_root == hashing.digest(led._store.get("receipts", height_key(h)), "blake3")
            assert differing_fields(new, v1) == ["prev_hash", "history_root", "receipts_root"]  # over changed hashes


def test_state_and_history_entries_are_laid_out_as_format_md_says(tmp_path):
    """Parses the raw tables by docs/FORMAT.md section 6 alone and rebuilds every key's history."""
    path = tmp_path / "l"
    vectors.build(path)
    env = lmdb.open(str(path), readonly=True, max_dbs=16)
    with env.begin() as txn:
        db = {name: env.open_db(name, txn=txn, create=False) for name in (b"history", b"state", b"meta")}
        history = dict(txn.cursor(db=db[b"history"]))
        state = raw_state(txn, db[b"state"], db[b"history"], db[b"meta"])
        store_format = txn.get(b"store_format", db=db[b"meta"])
    env.close()
    assert store_format == (4).to_bytes(4, "big")
    assert list(history) == sorted(history)  # appended in change-id order
    walked: dict[bytes, list] = {}
    for skey, value in state.items():
        change, chain = value[:16], []
        assert value[16] in (0, 1) and len(value) == 17  # change id, flag: the value is in history
        while change != bytes(16):
            entry = history[change]
            prev, txid, flag, n = entry[:16], entry[16:48], entry[48], struct.unpack(">H", entry[49:51])[0]
            assert entry[51 : 51 + n] == skey and prev < change
            height, index, _ordinal = struct.unpack(">QII", change)
            chain.append((height, index, txid, entry[51 + n :] if flag else None))
            change = prev
        walked[skey] = chain[::-1]
    assert sum(len(c) for c in walked.values()) == len(history)  # every entry is on some key's chain
    with Ledger.open(path, "ed25519-blake3", chain_id="vectors", contracts=[vectors.Registry()]) as led:
        for skey, chain in walked.items():
            contract, _, key = skey.partition(b"/")
            got = [(e.height, e.index, e.txid, e.value) for e in led.history(contract.decode(), key)]
            assert got == chain, skey
