"""Regenerates tx_v1.json, header_v1.json and header_v2.json from fixed keys (run from the repository root).

The transactions are signed with fixed private keys; Ed25519 (RFC 8032) and the ECDSA schemes here
(RFC 6979 nonces) sign deterministically, so the output never changes. The files are checked in: a
change to the format or to signing must show up as a diff of them, and tests/test_transaction.py
also rebuilds every payload byte by byte with struct.pack and checks the signatures with
independent libraries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ledgercore import codec, signing
from ledgercore.block import BlockHeader
from ledgercore.suites import SUITES
from ledgercore.transaction import Transaction

HERE = Path(__file__).parent
PRIVATE_KEY = bytes(range(1, 33))  # 0x0102...20: a valid scalar for SM2 and P-256 too
FIELDS = {
    "chain_id": "gov-bj",
    "nonce": 1,
    "timestamp": 1700000000000,
    "contract": "evidence",
    "method": "put",
}
ARGS = {"key": "lic/91110000", "digest": hashlib.sha256(b"91110000").digest()}


def json_args(args: dict) -> dict:
    return {k: {"bytes": v.hex()} if isinstance(v, bytes) else v for k, v in args.items()}


def tx_vectors() -> dict:
    out = []
    for suite in SUITES.values():
        kp = signing.from_private_bytes(suite.scheme, PRIVATE_KEY)
        tx = Transaction.create(kp, args=ARGS, suite=suite.name, **FIELDS)
        out.append(
            {
                "suite": suite.name,
                "private_key": PRIVATE_KEY.hex(),
                "public_key": kp.public_key.hex(),
                **FIELDS,
                "args": json_args(ARGS),
                "args_hex": codec.encode_value(ARGS).hex(),
                "payload": tx.payload.hex(),
                "signature": tx.signature.hex(),
                "id": tx.id.hex(),
                "encoding": tx.encode().hex(),
            }
        )
    return {
        "_comment": "Transaction format v1 (docs/FORMAT.md), one per suite, signed with private key "
        "0x0102..20. args: a JSON object whose {\"bytes\": hex} members are byte strings. "
        "payload = signed bytes; id = suite hash of payload; encoding = payload || signature. "
        "Regenerate with tests/vectors/make_codec_vectors.py.",
        "vectors": out,
    }


def header_vectors(version: int) -> dict:
    out = []
    for suite in SUITES.values():
        proposer = signing.from_private_bytes(suite.scheme, PRIVATE_KEY).public_key
        fields = {
            "suite": suite.name,
            "chain_id": "gov-bj",
            "height": 42,
            "prev_hash": bytes([0x11] * 32),
            "tx_root": bytes([0x22] * 32),
            "state_root": bytes([0x33] * 32),
            "history_root": bytes([0x44] * 32),
            **({"receipts_root": bytes([0x55] * 32)} if version == 2 else {}),
            "timestamp": 1700000000500,
            "proposer": proposer,
            "tx_count": 3,
            "consensus": b"",
        }
        header = BlockHeader(**fields)
        out.append(
            {
                **{k: v.hex() if isinstance(v, bytes) else v for k, v in fields.items()},
                "encoding": header.encode().hex(),
                "hash": header.hash.hex(),
            }
        )
    return {
        "_comment": f"Block header format v{version} (docs/FORMAT.md), one per suite; byte fields in hex; "
        "hash = suite hash of encoding. Regenerate with tests/vectors/make_codec_vectors.py.",
        "vectors": out,
    }


if __name__ == "__main__":
    for name, data in (("tx_v1.json", tx_vectors()), ("header_v1.json", header_vectors(1)), ("header_v2.json", header_vectors(2))):
        (HERE / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print("wrote", HERE / name)
