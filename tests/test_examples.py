"""The programs in examples/ run, and the docs show what they really print."""

from __future__ import annotations

from helpers import documented_output, run_example


def test_example_buffer_tour_matches_docs() -> None:
    assert run_example("buffer_tour.py") == documented_output("buffer.md", "buffer_tour.py")


def test_example_listener_server_matches_docs() -> None:
    assert run_example("listener_server.py") == documented_output(
        "listener.md", "listener_server.py"
    )


def test_example_ratelimit_stream_matches_docs() -> None:
    assert run_example("ratelimit_stream.py") == documented_output(
        "ratelimit.md", "ratelimit_stream.py"
    )


def test_example_ratelimit_group_matches_docs() -> None:
    assert run_example("ratelimit_group.py") == documented_output(
        "ratelimit.md", "ratelimit_group.py"
    )
