"""``ledgercore sim``: run the deterministic fault simulator over many seeds, or replay one.

Each seed fixes the whole run: fault rates, network delays, crashes, membership changes, the
client workload. A failing seed prints the violated property and the exact command that replays
it; ``--trace`` prints what happened, tick by tick.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any

from . import DEFAULT_STEPS, PROTOCOLS, SimResult, replay_command, run_seed
from .raft import BUGS

CHUNK = 16  # seeds per task sent to a worker: amortizes the pool's cost per task


def register(commands: Any) -> None:
    """Adds ``sim`` to the top-level ``commands`` sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "sim", help="deterministic fault simulation of the consensus protocol", description=__doc__
    )
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="raft")
    parser.add_argument("--seeds", type=int, default=None, help="how many seeds to run (default 100)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the seed to replay, or the first of --seeds (default 0)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"ticks of faults before they stop (default {DEFAULT_STEPS})")
    parser.add_argument("--nodes", type=int, choices=(3, 5), default=3, help="initial voters")
    parser.add_argument("--bug", choices=[b for b in BUGS if b], default=None,
                        help="run a deliberately broken node, to see the checks catch it")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for --seeds (at most one per seed and per CPU)")
    parser.add_argument("--trace", action="store_true", help="print the events of a single seed")
    parser.set_defaults(handler=run)


def _one(args: tuple[int, str, int, int, str | None]) -> SimResult:
    seed, protocol, steps, nodes, bug = args
    return run_seed(seed, protocol=protocol, steps=steps, nodes=nodes, bug=bug)


def _chunk(work: list[tuple[int, str, int, int, str | None]]) -> list[SimResult]:
    return [_one(w) for w in work]


def _pooled(pool: ProcessPoolExecutor, work: Iterator[tuple[int, str, int, int, str | None]],
            jobs: int) -> Iterator[SimResult]:
    """The results in seed order, like ``pool.map``, with at most two chunks per worker in
    flight: ``pool.map`` submits every chunk at once, so memory grew with --seeds."""
    pending: deque[Future[list[SimResult]]] = deque()
    while chunk := list(islice(work, CHUNK)):
        if len(pending) == 2 * jobs:
            yield from pending.popleft().result()
        pending.append(pool.submit(_chunk, chunk))
    while pending:
        yield from pending.popleft().result()


def _describe(r: SimResult) -> str:
    return (
        f"ticks={r.ticks} events={r.events} messages={r.messages} crashes={r.crashes} "
        f"partitions={r.partitions} conf_changes={r.conf_changes} transfers={r.transfers} "
        f"writes_acked={r.writes_acked} reads_served={r.reads_served} commit_index={r.commit_index} healed_in={r.heal_ticks}"
    )


def _bad_argument(args: argparse.Namespace) -> str | None:
    """What is wrong with the numbers given, if anything."""
    if args.steps < 0:
        return f"--steps must be at least 0, got {args.steps}"
    if args.seeds is not None and args.seeds < 1:
        return f"--seeds must be at least 1, got {args.seeds}"
    if args.jobs < 1:
        return f"--jobs must be at least 1, got {args.jobs}"
    if args.trace and (args.seeds is not None or args.seed is None):
        return "--trace prints the events of a single seed: give --seed N without --seeds"
    return None


def run(args: argparse.Namespace) -> int:
    bad = _bad_argument(args)
    if bad:
        print(f"ledgercore sim: {bad}", file=sys.stderr)
        return 2
    if args.seeds is None and args.seed is not None:
        r = run_seed(args.seed, protocol=args.protocol, steps=args.steps, nodes=args.nodes,
                     bug=args.bug, trace=args.trace)
        for line in r.trace:
            print(line)
        print(f"seed {r.seed}: {_describe(r)}")
        if r.violation:
            print(f"FAIL seed {r.seed}: {r.violation}")
            print(f"  replay: {replay_command(r.seed, args.protocol, args.steps, args.nodes, args.bug)}")
            return 1
        print(f"seed {r.seed}: ok")
        return 0
    count = args.seeds if args.seeds is not None else 100
    first = args.seed if args.seed is not None else 0
    work = ((s, args.protocol, args.steps, args.nodes, args.bug) for s in range(first, first + count))
    start = time.perf_counter()
    failures = 0
    # More workers than seeds or CPUs only cost processes (--jobs 100000 would exhaust pids).
    jobs = min(args.jobs, count, os.cpu_count() or 1)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            failures = _report(_pooled(pool, work, jobs), args)
    else:
        failures = _report(map(_one, work), args)
    elapsed = time.perf_counter() - start
    rate = count / elapsed if elapsed > 0 else 0.0
    print(
        f"{args.protocol}: {count} seeds from {first}, {args.nodes} nodes, {args.steps} steps: "
        f"{failures} failed, {elapsed:.1f} s ({rate:.1f} seeds/s)"
    )
    return 1 if failures else 0


def _report(results: Any, args: argparse.Namespace) -> int:
    failures = 0
    for r in results:
        if r.violation:
            failures += 1
            print(f"FAIL seed {r.seed}: {r.violation}")
            print(f"  replay: {replay_command(r.seed, args.protocol, args.steps, args.nodes, args.bug)}",
                  flush=True)
    return failures
