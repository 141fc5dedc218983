"""Echo servers side by side: evtrio's BufferedStream vs raw Trio vs asyncio, one run.

Each server runs in a process of its own on 127.0.0.1; the load comes from a separate
process, ``echo_client.c`` (compiled here with the system C compiler), so the client
never competes with the server for the interpreter. Workloads:

  * ping-pong, 1 connection x 100 B      (latency of one exchange)
  * ping-pong, 50 connections x 100 B    (scheduling many small exchanges)
  * ping-pong, 1 connection x 64 KiB     (bulk round trips)
  * blast, 1 connection, 64 KiB writes   (pipelined throughput, both directions)

Run: ``python -m benchmarks bench_echo`` (``--seconds N`` per measurement, default 3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio

from evtrio.streams.buffered import BufferedStream

from ._report import table

HERE = Path(__file__).resolve().parent
CLIENT_SOURCE = HERE / "echo_client.c"
CLIENT = HERE / "results" / "echo_client"

SERVERS = ("evtrio", "trio", "asyncio-streams", "asyncio-protocol")
WORKLOADS = (
    ("ping-pong 1 x 100 B", 1, 100, "pingpong", "round trips/s"),
    ("ping-pong 50 x 100 B", 50, 100, "pingpong", "round trips/s"),
    ("ping-pong 1 x 64 KiB", 1, 65536, "pingpong", "round trips/s"),
    ("blast 1 x 64 KiB writes", 1, 65536, "blast", "B/s"),
)


# ---------------------------------------------------------------------- the servers


# A client that exits with unread echoes resets its connections: every handler treats
# that as the end of the connection, as a real server would.


async def _serve_evtrio(port: int) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        buffered = BufferedStream(stream)
        with contextlib.suppress(trio.BrokenResourceError):
            async for chunk in buffered:
                await buffered.send_all(chunk)

    await trio.serve_tcp(handler, port, host="127.0.0.1")


async def _serve_trio(port: int) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            async for chunk in stream:
                await stream.send_all(chunk)

    await trio.serve_tcp(handler, port, host="127.0.0.1")


async def _serve_asyncio_streams(port: int) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", port)
    await server.serve_forever()


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _serve_asyncio_protocol(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_EchoProtocol, "127.0.0.1", port)
    await server.serve_forever()


def serve(kind: str, port: int) -> None:
    """Run one echo server until killed (the child-process side)."""
    if kind == "evtrio":
        trio.run(_serve_evtrio, port)
    elif kind == "trio":
        trio.run(_serve_trio, port)
    elif kind == "asyncio-streams":
        asyncio.run(_serve_asyncio_streams(port))
    else:
        asyncio.run(_serve_asyncio_protocol(port))


# ---------------------------------------------------------------------- the driver


def _build_client() -> Path:
    if CLIENT.exists() and CLIENT.stat().st_mtime >= CLIENT_SOURCE.stat().st_mtime:
        return CLIENT
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise SystemExit("bench_echo needs a C compiler (cc, gcc or clang) for its load client")
    CLIENT.parent.mkdir(exist_ok=True)
    subprocess.run([compiler, "-O2", "-o", str(CLIENT), str(CLIENT_SOURCE)], check=True)
    return CLIENT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(kind: str):  # type: ignore[no-untyped-def]
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_echo", "--serve", kind, str(port)], cwd=HERE.parent
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"the {kind} server did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait()


def measure(kind: str, connections: int, size: int, mode: str, seconds: float) -> float:
    """Units per second (round trips or bytes) of one server under one workload."""
    client = _build_client()
    with _server(kind) as port:
        result = subprocess.run(
            [client, "127.0.0.1", str(port), str(connections), str(size), str(seconds), mode],
            capture_output=True,
            text=True,
            check=True,
        )
    return int(result.stdout) / seconds


def main(argv: list[str] | None = None) -> None:
    """Measure every server under every workload and print ratios against raw Trio."""
    parser = argparse.ArgumentParser(prog="bench_echo")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"))
    args = parser.parse_args(argv if argv is not None else [])
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    for title, connections, size, mode, unit in WORKLOADS:
        rows = {kind: measure(kind, connections, size, mode, args.seconds) for kind in SERVERS}
        table(title, unit, rows, ours="evtrio")


if __name__ == "__main__":
    main(sys.argv[1:])
