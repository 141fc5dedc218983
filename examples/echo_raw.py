"""The echo server of libevent's source walk-through, reading and writing the stream
directly (no buffering layer): each connection echoes what it receives until EOF.

Run it: python examples/echo_raw.py [--port 5556]   (then: nc 127.0.0.1 5556)
Ctrl-C stops it; connections in progress get two seconds to finish.
"""

from __future__ import annotations

import argparse
import signal
from functools import partial

import trio

import evtrio


async def echo(stream: trio.SocketStream) -> None:
    """Send back every byte, as libevent's read callback did with a plain socket."""
    async for chunk in stream:
        await stream.send_all(chunk)


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(evtrio.serve_tcp, echo, port, host="127.0.0.1"))
        print(f"echo_raw: listening on 127.0.0.1:{server.port}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                await server.shutdown(grace=2)
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5556)
    trio.run(main, parser.parse_args().port)
