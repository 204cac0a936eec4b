"""What every benchmark suite shares: timing, results with goals, the machine, table and JSON output."""

from __future__ import annotations

import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Literal

import ledgercore

from .. import _native


class BenchError(RuntimeError):
    """A measured call gave a wrong answer: its speed means nothing."""


def check(condition: bool, what: str) -> None:
    """Raises :class:`BenchError` unless ``condition`` holds (kept under ``python -O``, unlike assert)."""
    if not condition:
        raise BenchError(f"correctness check failed: {what}")


def scratch_dir(base: str | None, prefix: str) -> str:
    """A new temporary directory inside ``base`` (created if missing; None: the system temp dir)."""
    try:
        if base:
            os.makedirs(base, exist_ok=True)
        return tempfile.mkdtemp(prefix=prefix, dir=base or None)
    except OSError as exc:
        raise BenchError(f"cannot make a scratch directory in {base!r}: {exc.strerror or exc}") from exc


def best_times(calls: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best wall time (``time.perf_counter``) of each call over ``repeat`` rounds.

    The calls run round-robin, one of each per round, so that a burst of noise on a shared machine
    hits ledgercore and its peer alike. The garbage collector is paused while a call runs.
    """
    best = {name: float("inf") for name in calls}
    for _ in range(max(1, repeat)):
        for name, call in calls.items():
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
            finally:
                if gc_was_enabled:
                    gc.enable()
            best[name] = min(best[name], elapsed)
    return best


@dataclass(frozen=True)
class Goal:
    """A speed goal: ledgercore at least ``value`` times the peer (``ratio``), or ``value`` items/s (``rate``)."""

    kind: Literal["ratio", "rate"]
    value: float

    def describe(self, unit: str) -> str:
        if self.kind == "ratio":
            return f">= {self.value:g}x"
        return f">= {format_rate(self.value)} {unit}"

    def met_by(self, rate: float, ratio: float | None) -> bool | None:
        if self.kind == "rate":
            return rate >= self.value
        return None if ratio is None else ratio >= self.value


@dataclass
class Result:
    """One operation: ledgercore's rate and, measured in the same run, a peer's rate for the same work."""

    operation: str
    unit: str
    items: int
    rate: float
    peer: str | None = None
    peer_items: int | None = None
    peer_rate: float | None = None
    goal: Goal | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.peer_rate:
            return None
        return self.rate / self.peer_rate

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met_by(self.rate, self.ratio)

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "unit": self.unit,
            "items": self.items,
            "rate": self.rate,
            "peer": self.peer,
            "peer_items": self.peer_items,
            "peer_rate": self.peer_rate,
            "ratio": self.ratio,
            "goal": None if self.goal is None else {"kind": self.goal.kind, "value": self.goal.value},
            "goal_text": None if self.goal is None else self.goal.describe(self.unit),
            "met": self.met,
            "note": self.note,
        }


def optional(module: str) -> bool:
    """Whether a peer library the comparison needs can be imported."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def missing(peer: str, package: str) -> str:
    return f"{peer}: not installed (pip install {package})"


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= threshold:
            return f"{rate / threshold:.3g}{suffix}"
    return f"{rate:.3g}"


def format_ratio(ratio: float | None) -> str:
    """A ratio to the peer: two decimals below 1 (0.43x, not 0.4x, against a goal of 0.6x), one above."""
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio < 1 else f"{ratio:.1f}x"


def cpu_model() -> str:
    """The CPU model as ``lscpu`` names it (falling back to /proc/cpuinfo, then the platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# The batch checks' own native threads, by name: Linux keeps the first 15 bytes of it.
VERIFY_THREADS = _native.CHECK_THREAD_NAME[:15]


def verify_thread_cpu() -> float | None:
    """CPU seconds this process's signature-check threads have used so far (Linux: the scheduler's
    per-thread run time, in ns; None without it): set against the process's CPU it splits a run's
    cost into verification and everything else."""
    total = 0
    if not os.path.exists("/proc/self/schedstat"):
        return None
    tasks = os.listdir("/proc/self/task")
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="utf-8") as f:
                if not f.read().startswith(VERIFY_THREADS):
                    continue
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # the thread ended
            continue
    return total / 1e9


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "ledgercore_threads": ledgercore.thread_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions(packages: Sequence[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("ledgercore", *packages):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@dataclass
class Report:
    suite: str
    quick: bool
    results: list[Result] = field(default_factory=list)
    packages: Sequence[str] = ()
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        goals = [r.met for r in self.results if r.goal is not None]
        return {
            "suite": self.suite,
            "date": self.date,
            "command": " ".join(["ledgercore", *sys.argv[1:]]),
            "quick": self.quick,
            "machine": machine(),
            "versions": versions(self.packages),
            "info": self.info,
            "results": [r.to_json() for r in self.results],
            "goals_met": all(m is True for m in goals),
        }

    def table(self) -> str:
        header = ("operation", "ledgercore rate", "peer", "peer rate", "ratio", "goal", "met?")
        rows = [header]
        for r in self.results:
            met = {True: "yes", False: "NO", None: "-"}[r.met]
            rows.append((
                r.operation,
                f"{format_rate(r.rate)} {r.unit}",
                r.peer or "-",
                f"{format_rate(r.peer_rate)} {r.unit}" if r.peer_rate else "n/a",
                format_ratio(r.ratio),
                r.goal.describe(r.unit) if r.goal else "-",
                met,
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(lines)

    def text(self) -> str:
        m = machine()
        head = [
            f"ledgercore bench {self.suite}{' --quick' if self.quick else ''}  ({self.date})",
            f"CPU: {m['cpu_model']}, {m['cpus']} CPUs ({m['usable_cpus']} usable); "
            f"ledgercore threads: {m['ledgercore_threads']}; Python {m['python']}",
        ]
        if self.quick:
            head.append("--quick: small inputs and one round, a smoke test; the goals apply to full-size runs")
        notes = [f"  {r.operation}: {r.note}" for r in self.results if r.note]
        return "\n".join([*head, "", self.table(), *(["", "notes:", *notes] if notes else [])])

    def emit(self, as_json: bool) -> None:
        if as_json:
            print(json.dumps(self.to_json(), indent=2))
        else:
            print(self.text())


def progress(message: str) -> None:
    """Progress on stderr, so ``--json`` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)
