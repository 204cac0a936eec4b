"""A deterministic fault simulator for consensus protocols.

:mod:`.core` is protocol-independent (clock, network model, faults, client workload, safety and
liveness checks); :mod:`.raft` adapts Raft to it. :func:`run_seed` runs one seed; the same seed
always makes the same run, so ``ledgercore sim --protocol raft --seed S`` replays a failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from .core import FaultConfig, Harness, ProtocolAdapter, SafetyChecker, SimResult, Violation
from .raft import RaftCluster

PROTOCOLS: dict[str, Callable[..., ProtocolAdapter]] = {"raft": RaftCluster}
DEFAULT_STEPS = 200


def run_seed(
    seed: int,
    protocol: str = "raft",
    steps: int = DEFAULT_STEPS,
    nodes: int = 3,
    bug: str | None = None,
    trace: bool = False,
) -> SimResult:
    """Runs one seed and returns what happened (``violation`` is None if all checks held)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    options: dict[str, object] = {"nodes": nodes, "bug": bug}
    factory: Callable[[random.Random, SafetyChecker], ProtocolAdapter] = partial(
        PROTOCOLS[protocol], **options
    )
    return Harness(factory, seed, steps=steps, trace=trace).run()


def replay_command(
    seed: int, protocol: str = "raft", steps: int = DEFAULT_STEPS, nodes: int = 3, bug: str | None = None
) -> str:
    """The command line that replays ``seed`` exactly."""
    cmd = f"ledgercore sim --protocol {protocol} --seed {seed}"
    if steps != DEFAULT_STEPS:
        cmd += f" --steps {steps}"
    if nodes != 3:
        cmd += f" --nodes {nodes}"
    if bug:
        cmd += f" --bug {bug}"
    return cmd


__all__ = [
    "FaultConfig",
    "Harness",
    "PROTOCOLS",
    "ProtocolAdapter",
    "RaftCluster",
    "SafetyChecker",
    "SimResult",
    "Violation",
    "replay_command",
    "run_seed",
]
