"""A TCP server with evtrio.serve_tcp: a connection cap, pause/resume, a failing handler
and a graceful shutdown, driven by clients in the same program. Loopback only.

Run it: python examples/listener_server.py
"""

from __future__ import annotations

import logging
from functools import partial

import trio

import evtrio
from evtrio import EOL
from evtrio.streams import BufferedStream, open_tcp_stream


async def main() -> None:
    count = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal count
        count += 1
        await stream.send_all(b"welcome, you are connection %d\n" % count)
        while request := await stream.receive_some():
            if request == b"crash":
                raise ValueError("bad request")
            await stream.send_all(b"echo: " + request)
        # The server closes the stream when the handler returns or fails.

    def report(exc: Exception) -> None:
        print("on_error:", repr(exc))

    async def connect() -> BufferedStream:
        return BufferedStream(await open_tcp_stream("127.0.0.1", port))

    async def greeting(stream: BufferedStream) -> str:
        return (await stream.readln(EOL.LF) or b"").decode()

    async def client(n: int) -> BufferedStream:
        stream = await connect()
        print(f"client {n}: {await greeting(stream)}")
        return stream

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    evtrio.serve_tcp,
                    handler,
                    0,
                    host="127.0.0.1",
                    max_connections=2,
                    on_error=report,
                )
            )
            port = server.port
            print("serving on", len(server.listeners), "listener")

            # Two connections fill the cap; the third waits in the kernel's backlog.
            first, second = await client(1), await client(2)
            third = await connect()
            await trio.sleep(0.2)
            print("client 3 connected; accepted:", server.statistics().accepted)
            await first.aclose()
            print(f"client 1 left; client 3: {await greeting(third)}")
            await second.aclose()
            await third.aclose()

            # Paused, the server accepts nothing: connections queue up until resume().
            server.pause()
            fourth = await connect()
            await trio.sleep(0.2)
            print("paused; client 4 connected, accepted:", server.statistics().accepted)
            server.resume()
            print(f"resumed; client 4: {await greeting(fourth)}")

            # A failing handler is logged and reported; the server keeps serving.
            await fourth.send_all(b"crash")
            print("client 4 closed by the server:", await fourth.receive_some() == b"")
            await fourth.aclose()

            # Shutdown: stop accepting, give handlers 0.5 s, then cancel them.
            fifth = await client(5)
            await server.shutdown(grace=0.5)
            print("shut down; client 5 closed by the server:", await fifth.receive_some() == b"")
            await fifth.aclose()

    stats = server.statistics()
    print(f"accepted={stats.accepted} active={stats.active} errors={stats.handler_errors}")


if __name__ == "__main__":
    # This demo reports failures through on_error; a real server would configure
    # logging and let evtrio log the traceback of each failed handler.
    logging.getLogger("evtrio.listener").setLevel(logging.CRITICAL)
    trio.run(main)
