"""The programs in examples/ run, and the docs show what they really print."""

from __future__ import annotations

from helpers import documented_output, run_example


def test_example_buffer_tour_matches_docs() -> None:
    assert run_example("buffer_tour.py") == documented_output("buffer.md", "buffer_tour.py")


def test_example_listener_server_matches_docs() -> None:
    assert run_example("listener_server.py") == documented_output(
        "listener.md", "listener_server.py"
    )


def test_example_pair_backpressure_matches_docs() -> None:
    assert run_example("pair_backpressure.py") == documented_output(
        "pairs.md", "pair_backpressure.py"
    )


def test_example_filter_zlib_matches_docs() -> None:
    assert run_example("filter_zlib.py") == documented_output("filters.md", "filter_zlib.py")


def test_example_filter_framer_matches_docs() -> None:
    assert run_example("filter_framer.py") == documented_output("filters.md", "filter_framer.py")
