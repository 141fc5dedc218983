"""A tour of BufferedStream over an in-memory connection: line and record reads,
watermarks, write-behind, events, and callbacks for ported libevent code.

Run it: python examples/buffered_tour.py
"""

from __future__ import annotations

import trio
import trio.testing

from evtrio import EOL
from evtrio.streams import BufferedStream, StreamEvent, open_buffered_stream


async def pull_mode() -> None:
    client_side, server_side = trio.testing.memory_stream_pair()
    client = BufferedStream(client_side)
    server = BufferedStream(server_side, read_high=4096)  # bounded input buffer

    async def send_in_odd_pieces() -> None:
        for piece in (b"HELLO evt", b"rio\r", b"\n0005wor", b"ldkey=va", b"lue;port=80;"):
            await client.send_all(piece)

    # A line, a length-prefixed record and delimited fields, arriving in odd pieces.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_in_odd_pieces)
        print("line:", await server.readln(EOL.CRLF_STRICT, max_length=100))
        size = int(await server.receive_exactly(4))
        print("record:", await server.receive_exactly(size))
        print("field:", await server.receive_until(b";", max_bytes=64))
        print("field:", await server.receive_until(b";", max_bytes=64))

    # write() queues without waiting (up to write high); drain() sends it.
    server.set_watermarks(write_high=1024)
    for word in (b"queued ", b"then ", b"drained\n"):
        server.write(word)
    print("queued bytes:", len(server.output))
    await server.drain()
    print("client got:", await client.readln())
    await client.aclose()
    print("after EOF:", await server.readln())


async def background_mode() -> None:
    peer, transport = trio.testing.memory_stream_pair()
    async with open_buffered_stream(transport, read_low=10, read_high=64) as stream:
        events = stream.events()
        await peer.send_all(b"12345")  # below read low: no READ event yet
        await peer.send_all(b"6789012345")  # now 15 bytes are buffered
        seen = [(await events.__anext__()).what for _ in range(2)]
        print("events:", [event.name for event in seen])
        print("buffered:", len(stream.input))


async def ported_callbacks() -> None:
    peer, transport = trio.testing.memory_stream_pair()
    log: list[str] = []

    def on_read(stream: BufferedStream) -> None:  # libevent's readcb
        data = stream.input.remove(len(stream.input))
        log.append(f"read {data!r}")
        stream.output.add(data.upper())

    def on_event(stream: BufferedStream, event: StreamEvent) -> None:  # libevent's eventcb
        log.append(f"event {event.what.name}")

    async with open_buffered_stream(transport) as stream, trio.open_nursery() as nursery:
        nursery.start_soon(lambda: stream.run_callbacks(on_read=on_read, on_event=on_event))
        await peer.send_all(b"shout")
        print("peer got:", bytes(await peer.receive_some()))
        await peer.send_eof()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    print("\n".join(log))


async def main() -> None:
    print("-- pull mode")
    await pull_mode()
    print("-- background mode")
    await background_mode()
    print("-- callbacks for ported code")
    await ported_callbacks()


if __name__ == "__main__":
    trio.run(main)
