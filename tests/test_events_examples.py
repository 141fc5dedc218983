"""The event-base examples in examples/events/ run, and docs/events.md shows their output.

Examples whose output depends on time run here on Trio's MockClock (their ``main``
is imported and run in-process); the others run as programs, like tests/test_examples.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest
import trio
import trio.testing
from helpers import ROOT, documented_output, run_example

CHAPTER = "events.md"


def run_on_mock_clock(name: str) -> str:
    """Run ``main()`` of examples/events/*name* on an autojumping MockClock; its stdout."""
    spec = importlib.util.spec_from_file_location(
        f"example_{name[:-3]}", ROOT / "examples" / "events" / name
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        trio.run(module.main, clock=trio.testing.MockClock(autojump_threshold=0))
    return out.getvalue()


@pytest.mark.parametrize("name", ["tick_loopexit.py", "persistent_timer.py"])
def test_example_timed_matches_docs(name: str) -> None:
    assert run_on_mock_clock(name) == documented_output(CHAPTER, f"events/{name}")


@pytest.mark.parametrize("name", ["watchdog_loopbreak.py", "sighup.py", "priorities.py"])
def test_example_program_matches_docs(name: str) -> None:
    assert run_example(f"events/{name}") == documented_output(CHAPTER, f"events/{name}")
