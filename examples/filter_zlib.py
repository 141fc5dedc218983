"""Compression on both ends of a connection with the built-in zlib filters.

A client and an upper-casing echo server talk over an in-memory pair; each wraps its
end in a FilterStream that deflates what it sends and inflates what it receives.
FLUSH (a zlib sync flush) makes each message decodable at once; FINISHED ends the
compressed stream and sends EOF. Then a decompression bomb, 1 MiB that inflates to
1 GiB, arrives at a receiver that never holds more than its input limit.

Run it: python examples/filter_zlib.py
"""

from __future__ import annotations

import zlib

import trio

from evtrio.streams import (
    DeflateFilter,
    FilterStream,
    FlushMode,
    InflateFilter,
    open_stream_pair,
)


def compressed(transport: trio.abc.HalfCloseableStream) -> FilterStream:
    return FilterStream(transport, input_filter=InflateFilter(), output_filter=DeflateFilter())


async def echo_upper(stream: FilterStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data.upper())
        await stream.flush(FlushMode.FLUSH)  # the client can decode every byte now
    await stream.flush(FlushMode.FINISHED)  # the zlib trailer, then EOF


async def receive_exactly(stream: FilterStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await stream.receive_some()
    return data


def gigabyte_bomb() -> bytes:
    """Raw deflate of 1 GiB of zeros: each MiB compresses to the same 1 KiB segment."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressor.compress(bytes(1 << 20))
    compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return segment * 1024 + compressor.flush(zlib.Z_FINISH)


async def main() -> None:
    a, b = open_stream_pair()
    client, server = compressed(a), compressed(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_upper, server)
        for message in (b"hello, compressed world! " * 40, b"the same words " * 400):
            await client.send_all(message)
            await client.flush(FlushMode.FLUSH)
            reply = await receive_exactly(client, len(message))
            print(f"echoed {len(reply)} bytes: {reply[:30]!r}...")
        await client.flush(FlushMode.FINISHED)
        print("server finished too:", await client.receive_some() == b"")
    stats = client.statistics()
    print(f"client sent {stats.bytes_sent} bytes;", end=" ")
    print("on the wire, less than a tenth of that:", stats.bytes_written < stats.bytes_sent / 10)
    await client.aclose()
    await server.aclose()

    bomb = gigabyte_bomb()
    attacker, victim_end = open_stream_pair()
    victim = FilterStream(victim_end, input_filter=InflateFilter(format="raw"))
    print(f"bomb: about {round(len(bomb) / 2**20)} MiB that inflates to 1 GiB of zeros")
    total = largest = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(attacker.send_all, bomb)
        while total < 64 << 20:  # read 64 MiB of the gigabyte, then hang up
            chunk = await victim.receive_some()
            largest = max(largest, len(chunk))
            total += len(chunk)
        nursery.cancel_scope.cancel()
    print(f"inflated {total >> 20} MiB, never more than {largest} bytes at a time")
    await victim.aclose()
    await attacker.aclose()


if __name__ == "__main__":
    trio.run(main)
