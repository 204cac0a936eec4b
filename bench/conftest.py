"""Shared helpers for the pytest-benchmark suites. Run them with ``pytest bench/ --benchmark-only``;
the default ``pytest`` run (testpaths = tests) never collects them.

Each group puts ledgercore and a peer on the same input, so pytest-benchmark's table compares them
directly; ``extra_info`` records the item count and the best rate in items per second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Measure = Callable[..., Any]


@pytest.fixture
def measure(benchmark: Any) -> Measure:
    """``measure(fn, items, rounds=None)`` benchmarks ``fn`` (``rounds`` fixed rounds for slow calls,
    else pytest-benchmark's calibration) and returns its result, for the test to check."""

    def run(fn: Callable[[], Any], items: int, rounds: int | None = None) -> Any:
        benchmark.extra_info["items"] = items
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1) if rounds else benchmark(fn)
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            benchmark.extra_info["best_items_per_s"] = round(items / stats.stats.min)
        return result

    return run


@pytest.fixture(scope="session")
def bench_sizes():
    """The sizes ``ledgercore bench crypto`` uses at full size."""
    from ledgercore.bench.crypto import FULL

    return FULL
