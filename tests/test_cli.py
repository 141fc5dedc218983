"""The ``evtrio`` command: version, help, and the demo."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import echo_round_trip, running_server

import evtrio
from evtrio.cli import main


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"evtrio {evtrio.__version__}"


def test_cli_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_cli_without_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: evtrio" in capsys.readouterr().err


def test_cli_runs_as_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "evtrio", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"evtrio {evtrio.__version__}"


def test_cli_demo_serves_echo_and_stops_gracefully() -> None:
    command = (sys.executable, "-m", "evtrio", "--quiet", "demo", "--echo-port", "0")
    with running_server(*command) as address:
        assert echo_round_trip(address, b"ping\n") == b"ping\n"
