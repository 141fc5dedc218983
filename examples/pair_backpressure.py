"""Paired streams: two connected ends in one program, no sockets.

A producer sends more than the pair holds and waits (byte-level backpressure); then a
BufferedStream on each end reads lines, and flush(FINISHED) becomes the partner's EOF;
last, closing one end breaks the other's sends.

Run it: python examples/pair_backpressure.py
"""

from __future__ import annotations

import trio

from evtrio.streams import FlushMode, open_stream_pair
from evtrio.streams.buffered import BufferedStream


async def main() -> None:
    client, server = open_stream_pair(max_buffer=16)
    print("partners:", client.partner is server and server.partner is client)

    # 24 bytes through a pair that holds 16: the sender waits until the receiver reads.
    request = b"GET /a\r\nGET /b\r\nGET /c\r\n"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, request)
        first = await server.receive_some()
        second = await server.receive_some()
    print(f"{len(request)} bytes arrived as {len(first)} + {len(second)}")

    # BufferedStreams on both ends: watermarks above the pair, lines, flush modes.
    writer = BufferedStream(client, write_high=1024)
    reader = BufferedStream(server, read_high=64)
    writer.write(b"hello\r\nfrom the\r\nother end\r\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.flush, FlushMode.FINISHED)  # then EOF to the partner
        while (line := await reader.readln()) is not None:
            print("line:", line)
    stats = server.statistics()
    print(f"server received {stats.bytes_received} bytes, EOF: {stats.eof_received}")

    # Closing one end: the other has no partner any more, and sending is broken.
    await writer.aclose()
    print("server's partner after the client closed:", server.partner)
    try:
        await reader.send_all(b"anyone there?")
    except trio.BrokenResourceError as exc:
        print("sending to a closed partner:", repr(exc))
    await reader.aclose()


if __name__ == "__main__":
    trio.run(main)
