"""waits.at_most: a timeout that never loses a cancellation (asyncio.wait_for did, before 3.12)."""

from __future__ import annotations

import asyncio

import pytest

from ledgercore.waits import at_most


def test_a_cancellation_in_the_turn_the_wait_ends_is_not_lost():
    async def main() -> None:
        woken = asyncio.Event()
        waiter = asyncio.ensure_future(at_most(woken.wait(), 10))
        await asyncio.sleep(0)  # it waits
        woken.set()  # the wait ends, and in the same turn the waiter is cancelled
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())


def test_the_result_or_none_once_the_time_is_up():
    async def main() -> None:
        async def answer() -> int:
            return 42

        assert await at_most(answer(), 1) == 42
        never = asyncio.Event()
        assert await at_most(never.wait(), 0.01) is None

    asyncio.run(main())
