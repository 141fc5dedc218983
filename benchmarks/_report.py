"""Timing and reporting helpers shared by the benchmarks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def best_of(function: Callable[[], object], *, repeat: int = 5) -> float:
    """The fastest of *repeat* runs of *function*, in seconds (the least disturbed one)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def table(title: str, unit: str, rows: dict[str, float], *, ours: str) -> None:
    """Print *rows* (name -> units per second) with each peer's ratio to *ours*."""
    print(f"\n{title}")
    for name, rate in rows.items():
        ratio = "" if name == ours else f"  evtrio/{name} = {rows[ours] / rate:5.2f}x"
        print(f"  {name:<22} {rate:14,.0f} {unit}{ratio}")
