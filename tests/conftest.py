"""Shared test helpers: the vector files under tests/vectors/ and the hypothesis profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, settings

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
