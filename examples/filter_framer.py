"""Write your own filter: length-prefixed frames, like HTTP's chunked encoding.

FrameEncoder (an output filter) cuts what is sent into frames, a 2-byte big-endian
length and then that many bytes, and ends the stream with an empty frame. FrameDecoder
(an input filter) takes the frames apart again. Between them they use the whole
contract: respect the limit, NEED_MORE when more input (or room) is needed, ERROR for a
broken stream, and FINISHED for the end.

Run it: python examples/filter_framer.py
"""

from __future__ import annotations

import trio

from evtrio import Buffer, FilterError
from evtrio.streams import FilterResult, FilterStream, FlushMode, open_stream_pair


class FrameEncoder:
    """Bytes -> frames; FINISHED adds the end marker (an empty frame)."""

    def __init__(self, max_frame: int = 65535) -> None:
        self.max_frame = max_frame
        self.ended = False

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        if source and limit > 2 and not self.ended:
            payload = source.remove(min(len(source), limit - 2, self.max_frame))
            destination.add(len(payload).to_bytes(2, "big") + payload)
            return FilterResult.OK
        if mode is FlushMode.FINISHED and not source and limit >= 2 and not self.ended:
            destination.add(b"\x00\x00")
            self.ended = True
            return FilterResult.OK
        # More input, a stronger mode, or more room than *limit*: the stream asks again.
        return FilterResult.NEED_MORE


class FrameDecoder:
    """Frames -> bytes; the end marker must come before the end of the stream."""

    def __init__(self) -> None:
        self.remaining = 0  # payload bytes still to come in the current frame
        self.ended = False
        self.error: str | None = None  # FilterError quotes it

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        if self.ended:
            if source:
                self.error = f"{len(source)} bytes after the end marker"
                return FilterResult.ERROR
            return FilterResult.NEED_MORE
        if not self.remaining:
            if len(source) < 2:  # no complete header yet
                if mode is FlushMode.FINISHED:
                    self.error = "the stream ended without its end marker"
                    return FilterResult.ERROR
                return FilterResult.NEED_MORE
            self.remaining = int.from_bytes(source.remove(2), "big")
            if not self.remaining:
                self.ended = True
                return FilterResult.OK
        moved = source.remove_buffer(destination, min(self.remaining, limit))  # no copy
        self.remaining -= moved
        if moved:
            return FilterResult.OK
        if mode is FlushMode.FINISHED:
            self.error = f"cut short: {self.remaining} bytes of a frame missing"
            return FilterResult.ERROR
        return FilterResult.NEED_MORE


async def main() -> None:
    # A filter is a plain callable over two Buffers: call it by hand to see the frames.
    encoder = FrameEncoder(max_frame=8)
    source, wire = Buffer(b"hello, framed world"), Buffer()
    while encoder(source, wire, 64, FlushMode.NORMAL) is FilterResult.OK:
        pass
    encoder(source, wire, 64, FlushMode.FINISHED)
    print("on the wire:", bytes(wire))

    # The same filters on both ends of a connection.
    a, b = open_stream_pair()
    client = FilterStream(a, output_filter=FrameEncoder(max_frame=8))
    server = FilterStream(b, input_filter=FrameDecoder())
    await client.send_all(b"hello, ")
    await client.send_all(b"framed world")
    await client.send_eof()  # FINISHED: the end marker, then EOF
    received = b""
    while chunk := await server.receive_some():
        received += chunk
    print("server received:", received)
    stats = client.statistics()
    print(f"client: {stats.bytes_sent} bytes sent as {stats.bytes_written} on the wire")

    # A peer that hangs up in the middle of a frame: a FilterError, after the bytes
    # that did arrive.
    raw, c = open_stream_pair()
    strict = FilterStream(c, input_filter=FrameDecoder())
    await raw.send_all(b"\x00\x05abc")
    await raw.send_eof()
    print("first:", await strict.receive_some())
    try:
        await strict.receive_some()
    except FilterError as exc:
        print(f"then a FilterError on the {exc.direction}: {exc.reason}")


if __name__ == "__main__":
    trio.run(main)
