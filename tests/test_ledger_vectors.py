"""The history table's layout changed (keyed by change id, a chain per key); what the ledger
commits and answers did not: fixed blocks give the headers (state roots, block hashes), history,
versions and unchanged tables recorded in tests/vectors/ledger_v1.json by the code before the
change. Regenerate with ``python tests/vectors/make_ledger_vectors.py`` only for a deliberate change.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors"))
import make_ledger_vectors as vectors  # noqa: E402


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
