"""Reading a source ahead of its consumer, on a daemon thread (``Ledger.apply_blocks``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """Calls ``produce`` over and over on its own thread, in order, until it returns None or
    raises; :meth:`take` hands out the results (or raises the error) in the same order.

    At most ``depth`` calls are made beyond those :meth:`allow` permits. The thread is a daemon:
    a source that waits forever (a live feed gone quiet) holds neither ``Ledger.close`` nor the
    interpreter's exit, and after :meth:`stop` no further call starts (one running finishes)."""

    def __init__(self, produce: Callable[[], T | None], depth: int, name: str) -> None:
        self._produce = produce
        self._permits = threading.Semaphore(depth)
        self._results: queue.SimpleQueue[tuple[T | None, BaseException | None]] = queue.SimpleQueue()
        self._stopped = False
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while True:
            self._permits.acquire()
            if self._stopped:
                return
            try:
                item = self._produce()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, at its turn
                self._results.put((None, exc))
                return
            self._results.put((item, None))
            if item is None:
                return

    def take(self) -> T | None:
        """The next result, waiting for it; None once the source has ended."""
        item, error = self._results.get()
        if error is not None:
            raise error
        return item

    def allow(self) -> None:
        """Lets the thread make one more call."""
        self._permits.release()

    def stop(self) -> None:
        """No call starts after this one (a call running now still finishes)."""
        self._stopped = True
        self._permits.release()
