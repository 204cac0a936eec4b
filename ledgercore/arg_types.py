"""argparse types for the command line's numbers: a value out of range is a usage error (exit 2,
naming the option and the range) before any work starts, not a traceback minutes later."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer of at least ``low`` (and at most ``high``, if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r:.40}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def finite_float(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite number in the interval from ``low`` to ``high`` (ends included unless open)."""
    shown = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r:.40}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            raise argparse.ArgumentTypeError(f"must be a finite number in {shown}, got {text!r:.40}")
        return value

    return parse


POSITIVE = int_at_least(1)
NON_NEGATIVE = int_at_least(0)
SECONDS = finite_float(0, low_open=True)  # a positive duration
SECONDS_OR_NONE = finite_float(0)  # a duration, 0 for none
FRACTION_BELOW_HALF = finite_float(0, 0.5, high_open=True)  # revocations: at most every other transaction
