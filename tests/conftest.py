"""Shared test helpers: the vector files under tests/vectors/, the hypothesis profile, and the check
of a typed argument error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from ledgercore.errors import InvalidInputError

VECTORS = Path(__file__).parent / "vectors"

# Modest example counts keep the whole suite well under a minute on a 2-core machine; raise them
# locally with HYPOTHESIS_PROFILE=thorough.
settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def load_vectors(name: str) -> dict:
    """The parsed JSON vector file ``tests/vectors/<name>``."""
    with open(VECTORS / name, encoding="utf-8") as f:
        return json.load(f)


def assert_typed_argument_error(call: Callable[[], Any], error: type[Exception], message: str) -> None:
    """``call`` raises exactly ``error`` (an InvalidInputError, so a ValueError) with ``message``,
    not the bare TypeError of a native argument conversion, and with no TypeError in its traceback."""
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)
    assert str(info.value) == message
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)
