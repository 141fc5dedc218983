"""`evtrio echo` driven by real third-party clients: nc, socat, and a plain stdlib
client moving 100 MiB in random-size writes. Loopback only.

The peers are installed by ``scripts/install-peers.sh`` (run by ``make test``); a
missing one fails the test with the command that installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, require_program, running_server

HERE = Path(__file__).resolve().parent
EVTRIO_ECHO = (sys.executable, "-m", "evtrio", "--quiet", "echo", "--port", "0")


def test_echo_with_nc(tmp_path: Path) -> None:
    nc = require_program("nc", "netcat-openbsd")
    data = os.urandom(1 << 20) + b"\nlast line\n"
    (tmp_path / "in").write_bytes(data)
    with running_server(*EVTRIO_ECHO) as (host, port), (tmp_path / "in").open("rb") as source:
        # -N: half-close after stdin's EOF (OpenBSD nc), then read until the server closes.
        result = subprocess.run(
            [nc, "-N", host, str(port)], stdin=source, capture_output=True, timeout=60, check=True
        )
    assert result.stdout == data


def test_echo_with_socat(tmp_path: Path) -> None:
    socat = require_program("socat", "socat")
    data = b"".join(b"line %d of the socat test\r\n" % i for i in range(20_000))
    with running_server(*EVTRIO_ECHO) as (host, port):
        result = subprocess.run(
            [socat, "-t", "30", "-", f"TCP:{host}:{port}"],
            input=data,
            capture_output=True,
            timeout=60,
            check=True,
        )
    assert result.stdout == data


def test_echo_100_mib_in_random_writes() -> None:
    size = 100 * 1024 * 1024
    with running_server(*EVTRIO_ECHO) as (host, port):
        result = subprocess.run(
            [sys.executable, str(HERE / "bulk_echo_client.py"), host, str(port), str(size), "7"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"echo ok {size}"
