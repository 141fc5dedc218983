"""The services behind the ``evtrio echo`` and ``evtrio demo`` commands.

Each service is a ``serve_*`` function in Trio's style (runs until cancelled, reports
its :class:`~evtrio.Server` through ``task_status``), and :func:`run_until_signalled`
runs a set of them until Ctrl-C or SIGTERM, then shuts them down gracefully.
"""

from __future__ import annotations

__all__ = ("echo_handler", "run_until_signalled", "serve_echo")

import logging
import signal
from functools import partial
from typing import TYPE_CHECKING

import trio

from .listener import serve_tcp
from .streams.buffered import BufferedStream
from .util import format_sockaddr

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from .listener import Server

logger = logging.getLogger("evtrio.demo")


async def echo_handler(stream: trio.SocketStream) -> None:
    """Echo everything *stream* sends back to it, through a :class:`BufferedStream`.

    Logs the connection and its end at INFO. A peer that resets the connection just
    ends it.

    Cancellation: the connection is closed.
    """
    peer = _describe(stream)
    logger.info("echo: connection from %s", peer)
    buffered = BufferedStream(stream)
    try:
        while data := await buffered.receive_some():
            await buffered.send_all(data)
    except trio.BrokenResourceError as exc:
        logger.info("echo: %s broke the connection (%s)", peer, exc)
    finally:
        await buffered.aclose()
        logger.info("echo: %s disconnected after %d bytes", peer, buffered.statistics().bytes_read)


async def serve_echo(
    port: int,
    *,
    host: str = "127.0.0.1",
    max_connections: int | None = 1024,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the buffered echo server on *host*:*port* until cancelled or shut down.

    Args:
      port: the TCP port; 0 lets the kernel choose.
      host: the address to bind (loopback by default).
      max_connections: the most connections served at once.
      task_status: receives the :class:`~evtrio.Server` once it listens.

    Cancellation: stops serving; running connections are cancelled.
    """
    await serve_tcp(
        echo_handler, port, host=host, max_connections=max_connections, task_status=task_status
    )


async def run_until_signalled(
    services: Sequence[tuple[str, Callable[..., Awaitable[object]]]], *, grace: float = 5.0
) -> None:
    """Start every ``(name, serve_function)``; on Ctrl-C or SIGTERM shut them down.

    Each serve function is started with ``nursery.start`` and must report a
    :class:`~evtrio.Server`; its addresses are printed as it comes up. The first
    signal stops accepting and gives running connections *grace* seconds to finish;
    a second signal cancels everything at once. Must run in the main thread.

    Cancellation: everything is cancelled.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            servers: list[Server] = []
            for name, serve in services:
                server = await nursery.start(serve)
                servers.append(server)
                for address in server.addresses:
                    print(f"{name}: listening on {format_sockaddr(address)}", flush=True)
            async for signum in signals:
                name = signal.Signals(signum).name
                if nursery.cancel_scope.cancel_called or not servers:
                    break
                print(f"{name}: shutting down (again to stop at once)", flush=True)
                nursery.start_soon(partial(_shutdown_all, servers, grace, nursery.cancel_scope))
                servers = []
            nursery.cancel_scope.cancel()


async def _shutdown_all(servers: list[Server], grace: float, scope: trio.CancelScope) -> None:
    async with trio.open_nursery() as nursery:
        for server in servers:
            nursery.start_soon(server.shutdown, grace)
    scope.cancel()


def _describe(stream: trio.SocketStream) -> str:
    try:
        return format_sockaddr(stream.socket.getpeername())
    except OSError:
        return "a peer that already left"
