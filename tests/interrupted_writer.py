"""A ledger writer for the interrupted-write test, run as its own process (a fresh interpreter:
no thread or child another test left behind in the test runner has a say in when its signal
handler runs).

    python tests/interrupted_writer.py PATH

Its one contract method sends SIGINT to the main thread (Ctrl-C) while the write runs, then goes
on only once the interrupted caller has told its write to stop (``_commit``'s ``abandon``; at most
30 s), and writes. It applies that transaction with ``apply_block`` and with ``apply_blocks`` and
prints, for each, ``<how> interrupted at height <h>`` (or ``<how> returned``), then reopens the
ledger and prints ``reopened at height <h>, done=<the method's write>``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from ledgercore import Ledger, Transaction, signing
from ledgercore import ledger as ledger_module
from ledgercore.contracts import Contract, method


class Interrupting(Contract):
    name = "interrupting"

    @method
    def go(self, ctx) -> None:  # type: ignore[no-untyped-def]
        caller = threading.main_thread().ident
        assert caller is not None
        signal.pthread_kill(caller, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _told_to_stop(caller):
            time.sleep(0.01)
        ctx.put("done", b"yes")


def _told_to_stop(thread: int) -> bool:
    """Whether ``thread`` is inside ``Ledger._commit`` with its write's ``abandon`` set."""
    frame = sys._current_frames().get(thread)
    while frame is not None:
        if frame.f_code is ledger_module.Ledger._commit.__code__:
            abandon = frame.f_locals.get("abandon")
            return isinstance(abandon, threading.Event) and abandon.is_set()
        frame = frame.f_back
    return False


def main(path: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job starts with it ignored
    go = Transaction.create(signing.generate("ed25519"), "interrupting", "go", {}, 1).encode()
    with Ledger.open(path, contracts=[Interrupting()]) as led:
        for how, apply in (("apply_block", led.apply_block), ("apply_blocks", lambda r: list(led.apply_blocks([r])))):
            try:
                apply([go])
                print(f"{how} returned", flush=True)
            except KeyboardInterrupt:
                print(f"{how} interrupted at height {led.height}", flush=True)
    with Ledger.open(path) as led:
        print(f"reopened at height {led.height}, done={led.get('interrupting', 'done')!r}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
