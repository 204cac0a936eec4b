"""Warnings about what peers send, rate-limited per peer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class PeerWarnings:
    """Logs warnings about a peer's frames, at most ``burst`` at once and then one per
    ``interval`` seconds per peer (a token bucket): a peer speaking nonsense in a flood of frames
    must not fill the node's disk with its log (10 MB of empty frames made 246 MB of log, one line
    each) nor hold up the event loop writing it. The next warning logged says how many were held
    back."""

    def __init__(
        self, log: logging.Logger, *, burst: int = 20, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log, self._burst, self._interval, self._clock = log, burst, interval, clock
        self._peers: dict[str, tuple[float, float, int]] = {}  # peer -> (tokens, as of, held back)

    def warn(self, peer: str, message: str, *args: object) -> None:
        """``log.warning(message, *args)`` unless ``peer`` has used up its warnings for now."""
        now = self._clock()
        tokens, since, held = self._peers.get(peer, (float(self._burst), now, 0))
        tokens = min(float(self._burst), tokens + (now - since) / self._interval)
        if tokens < 1:
            self._peers[peer] = (tokens, now, held + 1)
            return
        if held:
            message += f" ({held} more warning(s) about {peer}'s frames were not logged)"
        self._log.warning(message, *args)
        self._peers[peer] = (tokens - 1, now, 0)
