"""Shared test configuration: Hypothesis profiles and small helpers."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# `ci` (the default) is fast and repeatable: derandomized, no deadline (CI has 2 noisy
# cores), a bounded number of examples. `HYPOTHESIS_PROFILE=thorough` digs deeper.
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
