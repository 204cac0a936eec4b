"""Waiting with a timeout without losing a cancellation.

Before Python 3.12, ``asyncio.wait_for`` returns the awaited result when it finishes in the same
turn of the loop as a cancellation of the waiter, and the cancellation is lost: a loop cancelled
by a stop then runs on, and the stop waits for it for ever. ``asyncio.wait`` has no such race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


async def at_most(aw: Awaitable[_T], timeout: float) -> _T | None:
    """``aw``'s result, or None once ``timeout`` passes (``aw`` then cancelled); a cancellation
    of the caller always propagates."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait((task,), timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    return task.result() if task.done() and not task.cancelled() else None
