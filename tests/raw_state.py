"""The state entries a ledger store means, read from raw LMDB by docs/FORMAT.md section 6 alone
(no ledgercore code): the `state` table's, with the changes `history` records from the height
`meta/state_mark` names on over them, the newest per key."""

from __future__ import annotations

import struct
from typing import Any


def raw_state(txn: Any, state_db: Any, history_db: Any, meta_db: Any) -> dict[bytes, bytes]:
    """``state key -> change id || flag`` for every key that has an entry."""
    state = {bytes(k): bytes(v) for k, v in txn.cursor(db=state_db)}
    mark = txn.get(b"state_mark", db=meta_db)
    assert mark is not None and len(mark) == 8, f"meta/state_mark is {mark!r}"
    with txn.cursor(db=history_db) as cur:
        if cur.set_range(mark):
            for change, entry in cur.iternext():
                # previous change (16) || tx id (32) || flag (1) || u16 key length || key || value
                (n,) = struct.unpack(">H", entry[49:51])
                state[bytes(entry[51 : 51 + n])] = bytes(change) + bytes(entry[48:49])
    return state
