"""Child processes of ledgercore's own modules start wherever the caller stands, including a source
checkout whose ``ledgercore/`` lacks the built extension (the README's ``pip install .`` case); calls
run in a child answer, or say how the child died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ledgercore.child_process import ChildDied, module_process, run_isolated


def test_a_child_ignores_a_shadowing_package_in_the_callers_directory(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    checkout = tmp_path / "checkout"
    (checkout / "ledgercore").mkdir(parents=True)
    (checkout / "ledgercore" / "__init__.py").write_text("raise ImportError('the source tree, not the install')\n")
    monkeypatch.chdir(checkout)
    # What `python -m` does from there: the checkout's package wins, and the child dies on import.
    shadowed = subprocess.run([sys.executable, "-m", "ledgercore", "--help"], capture_output=True, text=True, check=False)
    assert shadowed.returncode != 0 and "the source tree, not the install" in shadowed.stderr
    # A child started through module_process runs in its own directory and gets the installed one.
    own = tmp_path / "node"
    own.mkdir()
    proc = module_process("ledgercore", ["--help"], cwd=own, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "demo" in out


def _die_of(signum: int) -> None:
    os.kill(os.getpid(), signum)


def _exit_with(code: int) -> None:
    raise SystemExit(code)


def test_run_isolated_answers_from_another_process() -> None:
    assert run_isolated(os.getpid) != os.getpid()
    assert run_isolated(sorted, [3, 1, 2]) == [1, 2, 3]


def test_run_isolated_says_how_a_child_died_without_answering() -> None:
    fault = run_isolated(_die_of, signal.SIGSEGV)
    assert fault == ChildDied(signal.SIGSEGV, -signal.SIGSEGV) and fault.crashed and str(fault) == "SIGSEGV"
    stopped = run_isolated(_die_of, signal.SIGTERM)
    assert isinstance(stopped, ChildDied) and stopped.signal == signal.SIGTERM and not stopped.crashed
    exited = run_isolated(_exit_with, 3)
    assert exited == ChildDied(None, 3) and not exited.crashed and str(exited) == "exit status 3"
