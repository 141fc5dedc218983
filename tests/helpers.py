"""Helpers shared by the test modules (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

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


@contextlib.contextmanager
def running_server(*command: str, timeout: float = 30) -> Iterator[tuple[str, int]]:
    """Run a server program that prints ``...: listening on HOST:PORT``; yield the
    address; then stop it with SIGINT and check that it exits cleanly (status 0).

    Its stderr goes to a temporary file (a pipe nobody reads could fill up and stall
    the server); it is shown when the server misbehaves.
    """
    with (
        tempfile.TemporaryFile("w+") as errors,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT
        ) as process,
    ):
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + timeout
            while (line := process.stdout.readline()) and "listening on" not in line:
                assert time.monotonic() < deadline, "the server never said where it listens"
            match = re.search(r"listening on \[?([^\]\s]+?)\]?:(\d+)", line)
            assert match, f"no listening address in {line!r}"
            yield match.group(1), int(match.group(2))
            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=timeout)
            errors.seek(0)
            assert status == 0, f"exit status {status}; stderr:\n{errors.read()}"
        finally:
            if process.poll() is None:
                process.kill()


def echo_round_trip(address: tuple[str, int], data: bytes, *, timeout: float = 60) -> bytes:
    """Send *data* with a plain blocking socket, half-close, and return everything
    that comes back (reading and writing at once, as a real client does)."""
    received = bytearray()
    with socket.create_connection(address, timeout=timeout) as sock:
        reader = threading.Thread(target=lambda: _read_all(sock, received))
        reader.start()
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reader.join(timeout)
    return bytes(received)


def _read_all(sock: socket.socket, into: bytearray) -> None:
    while chunk := sock.recv(1 << 16):
        into += chunk


class NotHalfCloseable(trio.abc.Stream):
    """A plain Stream (like trio.SSLStream) over *inner*: no send_eof."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def send_in_pieces(
    stream: trio.abc.SendStream, data: bytes, rng: random.Random, max_piece: int
) -> None:
    """Send *data* in pieces of random sizes, 1 to *max_piece* bytes each."""
    view = memoryview(data)
    while view:
        size = rng.randint(1, max_piece)
        await stream.send_all(view[:size])
        view = view[size:]


def require_program(name: str, package: str) -> str:
    """The path of the peer program *name*; fail (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed, and evtrio's interop tests need it. Install it as "
            f"root:\n    apt-get update && apt-get install -y --no-install-recommends "
            f"{package}\n(`make test` does this through scripts/install-peers.sh)",
            pytrace=False,
        )
    return path
