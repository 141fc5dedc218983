"""The buffered echo server of libevent's source walk-through, the evtrio way.

libevent's version sets a read callback on a bufferevent that moves the whole input
buffer to the output buffer with evbuffer_add_buffer(). Here a background-mode
BufferedStream delivers the same READ events on an async iterator, and the move is the
same zero-copy Buffer.add_buffer(). Watermarks keep memory bounded: when the output
holds HIGH bytes the stream stops reading (the peer feels backpressure) until the
output drains to LOW (a WRITE event).

Run it: python examples/echo_buffered.py [--port 5557]   (then: nc 127.0.0.1 5557)
Ctrl-C stops it; connections in progress get two seconds to finish.
"""

from __future__ import annotations

import argparse
import signal
from functools import partial

import trio

import evtrio
from evtrio.streams import BEV, open_buffered_stream

HIGH = 256 * 1024
LOW = 64 * 1024


async def echo(stream: trio.SocketStream) -> None:
    """Move input to output as it arrives, pausing reads while the output is full."""
    async with open_buffered_stream(stream, write_low=LOW, write_high=HIGH) as buffered:
        async for event in buffered.events():
            if event.what is BEV.READ:
                buffered.output.add_buffer(buffered.input)  # no bytes are copied
                if len(buffered.output) >= HIGH:
                    buffered.pause_reading()
            elif event.what is BEV.WRITE:
                buffered.resume_reading()
            elif event.what & (BEV.EOF | BEV.ERROR):
                break
    # Leaving the block flushes what is still queued, then closes the connection.


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(evtrio.serve_tcp, echo, port, host="127.0.0.1"))
        print(f"echo_buffered: listening on 127.0.0.1:{server.port}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                await server.shutdown(grace=2)
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5557)
    trio.run(main, parser.parse_args().port)
