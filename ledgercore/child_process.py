"""Child processes: ledgercore's own modules (cluster nodes, benchmark nodes), and calls run apart
from this process (reads of a store that may be damaged)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar, cast

_T = TypeVar("_T")


def module_process(module: str, args: list[str], *, cwd: str | os.PathLike[str], **popen: Any) -> subprocess.Popen[Any]:
    """Starts ``python -m module args`` with this interpreter, in ``cwd``.

    ``python -m`` puts its working directory first on ``sys.path``. Started from a source checkout
    (where the README's ``pip install .`` runs), the checkout's ``ledgercore/``, which has no built
    extension, would shadow the installed package and the child would die on import; so the child
    runs in a directory of its own, never the caller's."""
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, **popen)


# Signals a damaged memory-mapped store raises in its reader: LMDB follows a page number or a size
# it does not check (SIGSEGV, SIGBUS) or trips one of its own assertions (SIGABRT).
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE})


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11; a number Python has no name for (a real-time signal) as itself."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """How a child ended, from its return code: ``exit status 3``, ``killed by SIGKILL``."""
    return f"killed by {signal_name(-returncode)}" if returncode < 0 else f"exit status {returncode}"


@dataclass(frozen=True)
class ChildDied:
    """A child that ended without an answer: killed by ``signal`` (None if it exited, ``exitcode``)."""

    signal: int | None
    exitcode: int

    @property
    def crashed(self) -> bool:
        """Whether it died of a fault (a bad memory access, an assertion), not of being stopped."""
        return self.signal in CRASH_SIGNALS

    def __str__(self) -> str:
        return f"exit status {self.exitcode}" if self.signal is None else signal_name(self.signal)


def run_isolated(fn: Callable[..., _T], *args: Any) -> _T | ChildDied:
    """``fn(*args)`` in a fresh child process (``spawn``: the child imports what this process's
    ``sys.path`` finds, and inherits no threads), its answer sent back; or how the child died.

    For reads of a memory-mapped file that may be damaged: a bad page can kill the reader with a
    signal, which would otherwise take this process with it."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_answer, args=(send, fn, args), daemon=True)
    child.start()
    send.close()
    try:
        answer = receive.recv()
    except EOFError:  # it died before answering
        answer = None
    finally:
        receive.close()
        child.join()
    if answer is not None:
        return cast(_T, answer[0])
    code = child.exitcode if child.exitcode is not None else 1
    return ChildDied(-code if code < 0 else None, code)


def _answer(send: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    send.send((fn(*args),))
    send.close()
