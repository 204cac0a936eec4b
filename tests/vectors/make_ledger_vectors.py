"""Regenerates ledger_v1.json: what a ledger answers and commits for fixed blocks (run from the
repository root).

The blocks are signed with fixed keys (Ed25519 signs deterministically) and applied with fixed
timestamps, so the output depends only on the ledger's behaviour: every block header (hence state
roots and block hashes), ``history`` and ``get_versioned`` of every key written, and a digest of
each store table whose layout is not meant to change. The blocks cover what history must keep:
keys written by several transactions of one block, deletes, re-creation after a delete, failed
and replayed transactions, and two contracts whose slices interleave transaction indices.
tests/test_ledger_vectors.py replays them with the current code and compares.

The file was made with the code before the history table was keyed by change id (commit b6883c7):
the layout changed, these answers did not. Its ``txindex`` table digest was dropped when that table
gave way to the in-memory transaction locator. State entries stopped holding their values (each
names the history entry that does) and `meta` gained `store_format`, `state_mark` and
`state_sweep`, which the digest leaves out. Store format 4 keeps each sender's used nonces as runs
instead of a row per nonce: the `nonces` digest was recomputed then (headers, history and every
other table unchanged). The other tables are still byte for byte the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import lmdb

from ledgercore import Ledger, Transaction, signing
from ledgercore.contracts import Contract, ContractError, method

HERE = Path(__file__).parent
VECTORS = HERE / "ledger_v1.json"
# Tables whose layout did not change with the history table's: compared by digest.
STABLE_TABLES = ("meta", "headers", "blocks", "txids", "receipts", "hashes", "nonces")
T0 = 1_700_000_000_000


class Registry(Contract):
    """A Python contract that sets and deletes keys."""

    name = "registry"

    @method
    def set(self, ctx, key: str, value: bytes) -> None:
        ctx.put(key, value)

    @method
    def drop(self, ctx, key: str) -> None:
        if ctx.get(key) is None:
            raise ContractError(f"{key} is not set")
        ctx.delete(key)


def _blocks() -> list[list[bytes]]:
    alice = signing.from_private_bytes("ed25519", bytes(range(1, 33)))
    bob = signing.from_private_bytes("ed25519", bytes(range(2, 34)))
    nonces = {alice.public_key: 0, bob.public_key: 0}

    def tx(kp: signing.KeyPair, contract: str, m: str, nonce: int | None = None, **args: Any) -> bytes:
        if nonce is None:
            nonces[kp.public_key] += 1
            nonce = nonces[kp.public_key]
        return Transaction.create(kp, contract, m, args, nonce, chain_id="vectors", timestamp=T0).encode()

    def digest(s: str) -> bytes:
        return hashlib.sha256(s.encode()).digest()

    reg, ev, cert = "registry", "evidence", "cert"
    return [
        [  # interleaved contracts; k written three times, by alice and bob
            tx(alice, reg, "set", key="k", value=b"v1"),
            tx(alice, ev, "put", key="lic/1", digest=digest("1"), meta=None),
            tx(bob, reg, "set", key="k", value=b"v2"),
            tx(bob, cert, "issue", cert_id="BL-1", digest=digest("BL-1"), meta={"type": "licence"}),
            tx(alice, reg, "set", key="j", value=b"j1"),
            tx(alice, ev, "put", key="lic/2", digest=digest("2"), meta=[1, "x"]),
            tx(bob, reg, "set", key="k", value=b"v3"),
            tx(alice, cert, "issue", cert_id="BL-2", digest=digest("BL-2"), meta=None),
        ],
        [  # delete, failed delete, re-create in one block; a revoke; a failed put; a replayed nonce
            tx(alice, reg, "drop", key="k"),
            tx(bob, reg, "drop", key="k"),
            tx(alice, cert, "revoke", cert_id="BL-1", reason="wrong issuer"),
            tx(bob, cert, "revoke", cert_id="BL-1", reason="cancelled"),
            tx(alice, reg, "set", key="k", value=b"v4"),
            tx(alice, ev, "put", key="lic/1", digest=digest("1b"), meta=None),
            tx(bob, reg, "drop", key="j"),
            tx(alice, reg, "set", key="x", value=b"", nonce=1),
        ],
        [  # j back after its delete; k deleted and left deleted; an empty value
            tx(bob, reg, "set", key="j", value=b"j2"),
            tx(alice, reg, "drop", key="k"),
            tx(alice, reg, "set", key="e", value=b""),
            tx(bob, ev, "put", key="lic/3", digest=digest("3"), meta=None),
        ],
        [tx(alice, reg, "set", key="k", value=b"v5"), tx(bob, reg, "drop", key="e")],
        [],
    ]


KEYS = [("registry", k) for k in ("k", "j", "e", "x", "never")] + [
    ("evidence", "lic/1"), ("evidence", "lic/2"), ("evidence", "lic/3"), ("cert", "BL-1"), ("cert", "BL-2"),
]  # fmt: skip


def build(path: str | os.PathLike[str], receipts_roots: bool = False) -> dict[str, Any]:
    """Applies the blocks to a new ledger at ``path`` and returns what it answered and stored. The
    recorded file is of a chain without receipts roots (version 1 headers), as chains made before
    them go on: ``receipts_roots`` makes one with them."""
    out: dict[str, Any] = {"headers": [], "history": {}, "versioned": {}, "tables": {}}
    with Ledger.open(path, "ed25519-blake3", chain_id="vectors", contracts=[Registry()], receipts_roots=receipts_roots) as led:
        for i, raws in enumerate(_blocks()):
            blk = led.apply_block(raws, timestamp=T0 + 1000 * (i + 1))
            out["headers"].append(blk.header.encode().hex())
        for contract, key in KEYS:
            name = f"{contract}/{key}"
            out["history"][name] = [
                [e.height, e.index, e.txid.hex(), None if e.value is None else e.value.hex()]
                for e in led.history(contract, key)
            ]
            found = led.get_versioned(contract, key)
            out["versioned"][name] = None if found is None else [found[0].hex(), found[1], found[2]]
    env = lmdb.open(os.fspath(path), readonly=True, max_dbs=16)
    try:
        with env.begin() as txn:
            for table in STABLE_TABLES:
                h = hashlib.sha256()
                for k, v in txn.cursor(db=env.open_db(table.encode(), txn=txn, create=False)):
                    if table == "meta" and k in (b"store_format", b"state_mark", b"state_sweep"):  # added since
                        continue
                    h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
                out["tables"][table] = h.hexdigest()
    finally:
        env.close()
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        vectors = build(Path(tmp) / "ledger")
    VECTORS.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {VECTORS}", file=sys.stderr)
