"""The programs in examples/ run, and the docs show what they really print."""

from __future__ import annotations

import os
import sys

import pytest
from helpers import documented_output, echo_round_trip, run_example, running_server


def test_example_buffer_tour_matches_docs() -> None:
    assert run_example("buffer_tour.py") == documented_output("buffer.md", "buffer_tour.py")


def test_example_listener_server_matches_docs() -> None:
    assert run_example("listener_server.py") == documented_output(
        "listener.md", "listener_server.py"
    )


def test_example_connect_tour_matches_docs() -> None:
    assert run_example("connect_tour.py") == documented_output("connect.md", "connect_tour.py")


@pytest.mark.parametrize("program", ["echo_raw.py", "echo_buffered.py"])
def test_example_echo_servers(program: str) -> None:
    payload = os.urandom(2_000_000)
    with running_server(sys.executable, f"examples/{program}", "--port", "0") as address:
        assert echo_round_trip(address, b"hello\n") == b"hello\n"
        assert echo_round_trip(address, payload) == payload


def test_example_buffered_tour_matches_docs() -> None:
    assert run_example("buffered_tour.py") == documented_output("streams.md", "buffered_tour.py")


def test_example_tls_echo_matches_docs() -> None:
    assert run_example("tls_echo.py") == documented_output("tls.md", "tls_echo.py")


def test_example_ratelimit_stream_matches_docs() -> None:
    assert run_example("ratelimit_stream.py") == documented_output(
        "ratelimit.md", "ratelimit_stream.py"
    )


def test_example_ratelimit_group_matches_docs() -> None:
    assert run_example("ratelimit_group.py") == documented_output(
        "ratelimit.md", "ratelimit_group.py"
    )


def test_example_pair_backpressure_matches_docs() -> None:
    assert run_example("pair_backpressure.py") == documented_output(
        "pairs.md", "pair_backpressure.py"
    )


def test_example_filter_zlib_matches_docs() -> None:
    assert run_example("filter_zlib.py") == documented_output("filters.md", "filter_zlib.py")


def test_example_filter_framer_matches_docs() -> None:
    assert run_example("filter_framer.py") == documented_output("filters.md", "filter_framer.py")
