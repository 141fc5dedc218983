"""Run by tests/test_listener.py in a subprocess: a server survives running out of fds.

It starts evtrio.serve_tcp on loopback, lowers RLIMIT_NOFILE, fills every remaining
descriptor, connects a client (the kernel queues it) so that accept() fails with EMFILE,
then frees the descriptors and shows that the queued client is served and serving goes
on. It prints what happened on stdout; the server's warnings go to stderr.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import sys
from functools import partial

import trio

import evtrio

GREETING = b"hello\n"


async def greet(stream: trio.SocketStream) -> None:
    await stream.send_all(GREETING)
    while await stream.receive_some():
        pass


def open_descriptors() -> list[int]:
    return [int(name) for name in os.listdir("/dev/fd")]


def fill_descriptors() -> list[int]:
    """Open /dev/null until the process has no descriptor left."""
    fillers: list[int] = []
    while True:
        try:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            if exc.errno != errno.EMFILE:
                raise
            return fillers


async def receive_greeting(stream: trio.SocketStream) -> bytes:
    data = b""
    while len(data) < len(GREETING):
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


async def main() -> None:
    errors: list[Exception] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    evtrio.serve_tcp,
                    greet,
                    0,
                    host="127.0.0.1",
                    on_error=errors.append,
                    max_backoff=0.2,
                )
            )
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(open_descriptors()) + 16, hard))

            client_socket = trio.socket.socket()  # before the filling: it needs a descriptor
            fillers = fill_descriptors()
            await client_socket.connect(("127.0.0.1", server.port))
            client = trio.SocketStream(client_socket)
            while server.statistics().capacity_errors < 3:  # noqa: ASYNC110 - a snapshot
                await trio.sleep(0.01)
            print("accepted while out of descriptors:", server.statistics().accepted)
            print("backed off at least 3 times:", server.statistics().capacity_errors >= 3)
            codes = sorted({errno.errorcode[getattr(exc, "errno", 0)] for exc in errors})
            print("on_error saw:", ", ".join(codes))

            for fd in fillers:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            print("greeting once descriptors were freed:", await receive_greeting(client))
            async with await trio.open_tcp_stream("127.0.0.1", server.port) as second:
                await receive_greeting(second)
            print("accepted after recovery:", server.statistics().accepted)
            await client.aclose()
            await server.shutdown(grace=5)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    trio.run(main)
