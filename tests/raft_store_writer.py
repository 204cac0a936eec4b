"""A Raft log writer for the DurableStorage crash test, run as its own process and SIGKILLed.

    python tests/raft_store_writer.py PATH SEED

Appends batches to the DurableStorage at PATH forever (some replacing a suffix that starts inside an
earlier batch's record, with a higher term), compacts now and then, and syncs after every few
writes. Before each sync it prints ``syncing <digest>`` and after it ``synced <digest>``, where
the digest is :func:`log_digest` of the log once that sync is done, flushing each line.
"""

from __future__ import annotations

import hashlib
import random
import struct
import sys

from ledgercore.consensus.messages import ConfState, Entry, HardState, encode_entries
from ledgercore.node.raft_store import DurableStorage


def log_digest(s: DurableStorage) -> str:
    """What a reopened log must hold: its bounds, base term, hard state and every entry."""
    first, last = s.first_index(), s.last_index()
    hs = s.hard_state()
    head = struct.pack(">QQQQQQ", first, last, s.term(first - 1), hs.term, hs.vote, hs.commit)
    return hashlib.blake2b(head + encode_entries(s.entries(first, last + 1)), digest_size=16).hexdigest()


def say(line: str) -> None:
    """One line in one write: SIGKILL may land between the writes of a ``print`` when stdout is
    unbuffered (``PYTHONUNBUFFERED``), leaving the reader half a line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    s = DurableStorage(path)
    if s.is_new:
        s.bootstrap_voters([1, 2, 3])
    term = s.hard_state().term
    while True:
        for _ in range(rng.randint(1, 4)):
            last = s.last_index()
            if rng.random() < 0.3 and last - s.first_index() > 2:
                # A new leader overwrites an uncommitted suffix that may start inside a record.
                term += 1
                start = rng.randint(s.first_index() + 1, last)
            else:
                start = last + 1
            n = rng.randint(1, 50)
            s.append([Entry(term, i, 0, rng.randbytes(rng.randint(0, 300))) for i in range(start, start + n)])
            s.set_hard_state(HardState(term, 1, s.hard_state().commit))
        last = s.last_index()
        if rng.random() < 0.3 and last - s.snapshot().index > 20:
            at = rng.randint(s.snapshot().index + 1, last - 5)
            s.create_snapshot(at, ConfState(voters=(1, 2, 3)), b"")
            s.compact(rng.randint(s.first_index(), at))
        want = log_digest(s)
        say(f"syncing {want}")
        s.sync()
        say(f"synced {want}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
