"""What a follower sent on to its leader and has not yet seen committed, and when to send it again.

A leader with a backlog holds forwarded transactions for seconds before they commit. Sending each
one again every second would make the leader decode and check the same signatures again and again
just when it is busiest. So every resend of a transaction waits twice as long as the one before,
up to ``max_s``. A new leader gets everything again at once (:meth:`Forwarded.restart`), since the
old one may have lost what it held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice, repeat, takewhile
from typing import Any


class Forwarded:
    """Transaction ids by the number of times they were re-sent (their round). Round ``n`` waits
    ``first_s * 2**n`` (at most ``max_s``) after the last send. Each round is a dict of id -> time
    of the last send, oldest first, so finding what is due reads only what is due."""

    def __init__(self, first_s: float, max_s: float) -> None:
        self._waits: list[float] = [first_s]
        while self._waits[-1] < max_s:
            self._waits.append(min(self._waits[-1] * 2, max_s))
        self._rounds: list[dict[bytes, float]] = [{} for _ in self._waits]

    def __bool__(self) -> bool:
        return any(self._rounds)

    def __len__(self) -> int:
        return sum(map(len, self._rounds))

    def __contains__(self, txid: object) -> bool:
        return any(txid in r for r in self._rounds)

    def sent(self, txids: Iterable[bytes], now: float) -> None:
        """``txids`` were sent for the first time (or again after a :meth:`restart`)."""
        txids = list(txids)
        self.discard(txids)
        self._rounds[0].update(dict.fromkeys(txids, now))

    def due(self, now: float) -> list[bytes]:
        """The ids whose wait is over, those sent most often (the oldest) first; each moves on to
        its next round as sent at ``now`` (the last round repeats)."""
        out: list[bytes] = []
        for n in reversed(range(len(self._rounds))):  # from the last: an id moves on just once
            rnd = self._rounds[n]
            cutoff = now - self._waits[n]
            due = list(islice(rnd, len(list(takewhile(cutoff.__ge__, rnd.values())))))
            if due:
                pop_keys(rnd, due)
                self._rounds[min(n + 1, len(self._rounds) - 1)].update(dict.fromkeys(due, now))
                out += due
        return out

    def discard(self, txids: Iterable[bytes]) -> None:
        """``txids`` committed (or are no longer held): never sent again."""
        txids = txids if isinstance(txids, (list, tuple, dict)) else list(txids)
        for rnd in self._rounds:
            if rnd:
                pop_keys(rnd, txids)

    def restart(self, now: float) -> list[bytes]:
        """Every id held, in the order they were last sent, now sent again as if for the first time
        (to a new leader)."""
        held = sorted((t for r in self._rounds for t in r.items()), key=lambda item: item[1])
        for rnd in self._rounds:
            rnd.clear()
        txids = [t for t, _ in held]
        self._rounds[0].update(dict.fromkeys(txids, now))
        return txids


def pop_keys(d: dict[bytes, Any], keys: Iterable[bytes]) -> None:
    """Removes ``keys`` from ``d`` where present, in one C-level pass."""
    deque(map(d.pop, keys, repeat(None)), maxlen=0)
