"""zlib filter streams against Python's plain zlib and gzip modules on the other end.

The peer is a blocking stdlib socket in a worker thread: nothing of evtrio or Trio's
streams on that side, only ``zlib.compressobj``/``zlib.decompressobj`` and ``gzip``.
"""

from __future__ import annotations

import gzip
import socket
import zlib

import pytest
import trio

from evtrio.streams.filter import DeflateFilter, FilterStream, InflateFilter
from evtrio.streams.flush import FlushMode

WBITS = {"zlib": zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS, "raw": -zlib.MAX_WBITS}
MESSAGES = [b"message %d: " % i + b"compress me " * (i * 37 % 200) for i in range(40)]


def stream_and_peer() -> tuple[trio.SocketStream, socket.socket]:
    ours, theirs = socket.socketpair()
    return trio.SocketStream(trio.socket.from_stdlib_socket(ours)), theirs


def read_until_decoded(peer: socket.socket, decoder: zlib._Decompress, size: int) -> bytes:
    """Read and decode until *size* bytes came out (a sync flush promises they will)."""
    decoded = b""
    while len(decoded) < size:
        data = peer.recv(65536)
        assert data, "EOF before the flushed bytes decoded"
        decoded += decoder.decompress(data)
    return decoded


@pytest.mark.parametrize("fmt", ["zlib", "gzip", "raw"])
async def test_deflating_stream_decoded_by_plain_zlib(fmt: str) -> None:
    transport, peer = stream_and_peer()
    stream = FilterStream(transport, output_filter=DeflateFilter(format=fmt))  # type: ignore[arg-type]

    def plain_peer() -> bool:
        decoder = zlib.decompressobj(WBITS[fmt])
        with peer:
            for message in MESSAGES:
                assert read_until_decoded(peer, decoder, len(message)) == message
                peer.sendall(b"+")  # ack: evtrio's FLUSH made it decodable on its own
            while data := peer.recv(65536):
                assert decoder.decompress(data) == b""
            return decoder.eof and not decoder.unused_data

    async with trio.open_nursery() as nursery:
        result: list[bool] = []

        async def run_peer() -> None:
            result.append(await trio.to_thread.run_sync(plain_peer))

        nursery.start_soon(run_peer)
        for message in MESSAGES:
            await stream.send_all(message)
            await stream.flush(FlushMode.FLUSH)
            assert await stream.receive_some() == b"+"
        await stream.flush(FlushMode.FINISHED)  # Z_FINISH, then the socket's EOF
    assert result == [True]
    stats = stream.statistics()
    assert stats.bytes_sent == sum(map(len, MESSAGES))
    assert stats.bytes_written < stats.bytes_sent // 3
    await stream.aclose()


@pytest.mark.parametrize("fmt", ["zlib", "gzip", "raw"])
async def test_plain_zlib_decoded_by_inflating_stream(fmt: str) -> None:
    transport, peer = stream_and_peer()
    stream = FilterStream(transport, input_filter=InflateFilter(format=fmt))  # type: ignore[arg-type]

    def plain_peer() -> None:
        encoder = zlib.compressobj(9, zlib.DEFLATED, WBITS[fmt])
        with peer:
            for message in MESSAGES:
                peer.sendall(encoder.compress(message) + encoder.flush(zlib.Z_SYNC_FLUSH))
                assert peer.recv(1) == b"+"
            peer.sendall(encoder.flush(zlib.Z_FINISH))
            peer.shutdown(socket.SHUT_WR)
            assert peer.recv(1) == b""

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, plain_peer)
        for message in MESSAGES:
            got = b""
            while len(got) < len(message):
                got += await stream.receive_some()
            assert got == message  # exactly the message: nothing more was sent yet
            await stream.send_all(b"+")
        assert await stream.receive_some() == b""
        await stream.aclose()
    assert stream.input_filter.finished  # type: ignore[union-attr]


async def test_gzip_module_both_ways() -> None:
    transport, peer = stream_and_peer()
    stream = FilterStream(
        transport,
        input_filter=InflateFilter(format="auto"),
        output_filter=DeflateFilter(format="gzip", level=9),
    )
    document = b"".join(MESSAGES)

    def plain_peer() -> bytes:
        with peer:
            peer.sendall(gzip.compress(document))
            peer.shutdown(socket.SHUT_WR)
            received = b""
            while data := peer.recv(65536):
                received += data
            return gzip.decompress(received)

    async with trio.open_nursery() as nursery:
        echoed: list[bytes] = []

        async def run_peer() -> None:
            echoed.append(await trio.to_thread.run_sync(plain_peer))

        nursery.start_soon(run_peer)
        while chunk := await stream.receive_some():
            await stream.send_all(chunk.upper())
        await stream.send_eof()
    assert echoed == [document.upper()]
    await stream.aclose()
