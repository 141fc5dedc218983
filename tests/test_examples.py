"""The programs in examples/ run, and the docs show what they really print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def documented_output(chapter: str, example: str) -> str:
    """The ```text block that follows the literalinclude of *example* in *chapter*."""
    text = (ROOT / "docs" / chapter).read_text()
    include = r"literalinclude\W+\.\./examples/" + re.escape(example)
    match = re.search(include + r".*?```text\n(.*?)```", text, re.S)
    assert match, f"{chapter} shows no output for {example}"
    return match.group(1)


def test_example_buffer_tour_matches_docs() -> None:
    assert run_example("buffer_tour.py") == documented_output("buffer.md", "buffer_tour.py")


def test_example_connect_tour_matches_docs() -> None:
    assert run_example("connect_tour.py") == documented_output("connect.md", "connect_tour.py")
