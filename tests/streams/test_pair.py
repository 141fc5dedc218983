"""Paired streams: Trio conformance, byte-level backpressure with exact numbers, EOF and
close semantics, cancellation, and BufferedStream watermarks over a pair."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from evtrio.streams.buffered import BufferedStream, start_buffered_stream
from evtrio.streams.flush import FlushMode
from evtrio.streams.pair import DEFAULT_MAX_BUFFER, PairedStream, open_stream_pair

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# ---------------------------------------------------------------------- conformance


def clogged_pair(max_buffer: int) -> Callable[[], Awaitable[tuple[PairedStream, PairedStream]]]:
    """A maker of pairs whose buffers are full in both directions: sends wait."""

    async def clogged() -> tuple[PairedStream, PairedStream]:
        a, b = open_stream_pair(max_buffer=max_buffer)
        await a.send_all(b"z" * max_buffer)
        await b.send_all(b"z" * max_buffer)
        return a, b

    return clogged


@pytest.mark.parametrize("max_buffer", [100, 4096, DEFAULT_MAX_BUFFER])
async def test_PairedStream_conforms(max_buffer: int) -> None:
    async def maker() -> tuple[PairedStream, PairedStream]:
        return open_stream_pair(max_buffer=max_buffer)

    await trio.testing.check_half_closeable_stream(maker, clogged_pair(max_buffer))


@pytest.mark.parametrize("background", [False, True], ids=["pull", "background"])
async def test_BufferedStream_over_pair_conforms(nursery: trio.Nursery, background: bool) -> None:
    def wrap(stream: PairedStream) -> BufferedStream:
        if background:
            return start_buffered_stream(nursery, stream, write_high=300, read_high=200)
        return BufferedStream(stream, read_high=200)

    async def maker() -> tuple[BufferedStream, BufferedStream]:
        a, b = open_stream_pair(max_buffer=100)
        return wrap(a), wrap(b)

    async def clogged() -> tuple[BufferedStream, BufferedStream]:
        a, b = await clogged_pair(10)()
        if background:  # fill the layers above too: the read and write high watermarks
            streams = (
                start_buffered_stream(nursery, a, write_high=8, read_high=4),
                start_buffered_stream(nursery, b, write_high=8, read_high=4),
            )
            for stream in streams:
                stream.write(b"z" * 8)
            await trio.testing.wait_all_tasks_blocked()
            return streams
        return BufferedStream(a), BufferedStream(b)

    await trio.testing.check_half_closeable_stream(maker, clogged)


async def test_PairedStream_one_byte_buffer(nursery: trio.Nursery) -> None:
    a, b = open_stream_pair(max_buffer=1)
    nursery.start_soon(a.send_all, b"one byte at a time")
    got = b""
    while len(got) < 18:
        await trio.testing.wait_all_tasks_blocked()
        assert b.statistics().input_buffered == 1
        got += await b.receive_some()
    assert got == b"one byte at a time"


def test_open_stream_pair_validates_max_buffer() -> None:
    with pytest.raises(ValueError, match="max_buffer must be >= 1"):
        open_stream_pair(max_buffer=0)
    with pytest.raises(TypeError):
        open_stream_pair(max_buffer=1.5)  # type: ignore[arg-type]
    a, b = open_stream_pair()
    assert a.max_buffer == b.max_buffer == DEFAULT_MAX_BUFFER == 65536
    with pytest.raises(TypeError, match="no public constructor"):
        PairedStream(None, None, 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- backpressure


async def test_PairedStream_backpressure_is_byte_exact(nursery: trio.Nursery) -> None:
    a, b = open_stream_pair(max_buffer=10)
    payload = bytes(range(24))
    done = trio.Event()

    async def send() -> None:
        await a.send_all(payload)
        done.set()

    nursery.start_soon(send)
    await trio.testing.wait_all_tasks_blocked()
    stats = a.statistics()
    assert (stats.bytes_sent, stats.output_buffered, stats.send_waiting) == (10, 10, True)
    assert b.statistics().input_buffered == 10
    assert await b.receive_some(4) == payload[:4]
    await trio.testing.wait_all_tasks_blocked()
    assert (a.statistics().bytes_sent, b.statistics().input_buffered) == (14, 10)
    assert await b.receive_some() == payload[4:14]  # everything buffered, never more
    await trio.testing.wait_all_tasks_blocked()
    assert done.is_set()
    assert await b.receive_some(100) == payload[14:]
    stats = b.statistics()
    assert (stats.bytes_received, stats.input_buffered, stats.receive_waiting) == (24, 0, False)


async def test_PairedStream_wait_send_all_might_not_block_waits_for_room(
    nursery: trio.Nursery,
) -> None:
    a, b = open_stream_pair(max_buffer=4)
    await a.send_all(b"full")
    woke = trio.Event()

    async def wait() -> None:
        await a.wait_send_all_might_not_block()
        woke.set()

    nursery.start_soon(wait)
    await trio.testing.wait_all_tasks_blocked()
    assert not woke.is_set()
    assert await b.receive_some(1) == b"f"
    await trio.testing.wait_all_tasks_blocked()
    assert woke.is_set()


async def test_PairedStream_bytes_are_handed_over_not_copied() -> None:
    a, b = open_stream_pair()
    payload = bytes(range(256)) * 64  # 16 KiB of immutable bytes
    await a.send_all(payload)
    assert await b.receive_some() is payload
    mutable = bytearray(b"original")
    await a.send_all(mutable)
    mutable[:] = b"mutated!"  # a bytearray is copied: the change does not travel
    assert await b.receive_some() == b"original"
    await a.send_all(memoryview(payload)[:3000])  # a slice of bytes: referenced
    assert await b.receive_some() == payload[:3000]


# ---------------------------------------------------------------------- EOF, close, partner


async def test_PairedStream_partner_until_either_end_closes() -> None:
    a, b = open_stream_pair()
    assert a.partner is b
    assert b.partner is a
    await b.aclose()
    assert a.partner is None
    assert b.partner is None
    c, d = open_stream_pair()
    await c.aclose()
    assert d.partner is None


async def test_PairedStream_send_eof_and_flush_finished_deliver_eof() -> None:
    a, b = open_stream_pair()
    await a.send_all(b"data")
    await a.flush(FlushMode.NORMAL)  # nothing to do: the bytes are already there
    await a.flush(FlushMode.FLUSH)
    assert not b.statistics().eof_received
    await a.flush(FlushMode.FINISHED)
    assert (a.statistics().eof_sent, b.statistics().eof_received) == (True, True)
    assert await b.receive_some() == b"data"
    assert await b.receive_some() == b""
    assert await b.receive_some() == b""  # and again
    with pytest.raises(trio.ClosedResourceError, match="send_eof"):
        await a.send_all(b"more")
    await a.send_eof()  # idempotent
    await b.send_all(b"reply")  # the other direction still works
    assert await a.receive_some() == b"reply"


async def test_PairedStream_close_gives_partner_eof_then_broken_sends() -> None:
    a, b = open_stream_pair()
    await a.send_all(b"last words")
    await b.send_all(b"never read")
    await a.aclose()
    assert b.statistics().output_buffered == 0  # dropped with the closed end
    assert b.statistics().partner_closed
    assert await b.receive_some() == b"last words"
    assert await b.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError, match="partner was closed"):
        await b.send_all(b"x")
    await b.wait_send_all_might_not_block()  # returns: nothing will ever block
    with pytest.raises(trio.ClosedResourceError):
        await a.receive_some()
    await a.aclose()  # idempotent


async def test_PairedStream_close_wakes_the_partners_blocked_sender(
    nursery: trio.Nursery,
) -> None:
    a, b = open_stream_pair(max_buffer=8)
    outcome: list[BaseException] = []

    async def send() -> None:
        try:
            await a.send_all(b"x" * 20)
        except trio.BrokenResourceError as exc:
            outcome.append(exc)

    nursery.start_soon(send)
    await trio.testing.wait_all_tasks_blocked()
    await b.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert len(outcome) == 1
    assert a.statistics().bytes_sent == 8  # the part that made it in before the close


async def test_PairedStream_close_wakes_its_own_blocked_tasks() -> None:
    a, _b = open_stream_pair(max_buffer=1)
    await a.send_all(b"x")

    async def expect_closed(operation: object) -> None:
        with pytest.raises(trio.ClosedResourceError):
            await operation()  # type: ignore[operator]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_closed, a.receive_some)
        nursery.start_soon(expect_closed, lambda: a.send_all(b"y"))
        await trio.testing.wait_all_tasks_blocked()
        await a.aclose()


async def test_PairedStream_cancelled_aclose_still_closes() -> None:
    a, b = open_stream_pair()
    with trio.CancelScope() as scope:
        scope.cancel()
        await a.aclose()
    assert a.statistics().closed
    assert await b.receive_some() == b""


async def test_PairedStream_statistics_and_repr() -> None:
    a, b = open_stream_pair(max_buffer=50)
    await a.send_all(b"12345")
    assert await b.receive_some(2) == b"12"
    stats = a.statistics()
    assert (stats.max_buffer, stats.bytes_sent, stats.output_buffered) == (50, 5, 3)
    assert (stats.eof_sent, stats.closed, stats.partner_closed) == (False, False, False)
    assert b.statistics().bytes_received == 2
    assert repr(b) == "<PairedStream open in=3 out=0 max_buffer=50>"


# ---------------------------------------------------------------------- random cancellation


async def test_PairedStream_random_cancels_lose_and_duplicate_nothing() -> None:
    """Senders and receivers are cancelled at random; ``bytes_sent`` tells exactly how
    much of a cancelled send went in, and the receiver gets exactly that, in order."""
    rng = random.Random(4321)
    a, b = open_stream_pair(max_buffer=1000)
    payload = rng.randbytes(200_000)
    sent = bytearray()
    got = bytearray()
    partial_sends = cancelled_receives = 0

    async def send() -> None:
        nonlocal partial_sends
        view = memoryview(payload)
        while view:
            size = rng.randint(1, 3000)
            before = a.statistics().bytes_sent
            with trio.move_on_after(rng.choice([0, 1e-6, 1e-4, 1])):
                await a.send_all(view[:size])
            went = a.statistics().bytes_sent - before
            partial_sends += 0 < went < min(size, len(view))
            sent.extend(view[:went])
            view = view[went:]
        await a.send_eof()

    async def receive() -> None:
        nonlocal cancelled_receives
        while True:
            with trio.move_on_after(rng.choice([0, 1e-6, 1e-4, 1])) as scope:
                chunk = await b.receive_some(rng.randint(1, 2000))
                if not chunk:
                    return
                got.extend(chunk)
            cancelled_receives += scope.cancelled_caught

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(receive)
    assert bytes(sent) == payload
    assert bytes(got) == payload
    assert partial_sends > 10
    assert cancelled_receives > 10


# ---------------------------------------------------------------------- BufferedStream on both ends


async def test_BufferedStream_pull_over_pair() -> None:
    a, b = open_stream_pair(max_buffer=16)
    left, right = BufferedStream(a, write_high=1000), BufferedStream(b, read_high=64)
    left.write(b"GET / HTTP/1.1\r\nHost: pair\r\n\r\n")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.flush, FlushMode.FINISHED)  # 16 bytes at a time
        assert await right.readln() == b"GET / HTTP/1.1"
        assert await right.readln() == b"Host: pair"
        assert await right.readln() == b""
    assert await right.readln() is None  # FINISHED reached the pair as EOF
    await right.send_all(b"200 OK\r\n")  # fits in max_buffer: returns at once
    assert await left.receive_until(b"\r\n") == b"200 OK"


async def test_BufferedStream_background_watermarks_over_pair(nursery: trio.Nursery) -> None:
    """Backpressure runs through every layer: the receiver's read high, the pair's
    max_buffer, then the sender's output buffer."""
    a, b = open_stream_pair(max_buffer=100)
    sender = start_buffered_stream(nursery, a, write_high=1000)
    receiver = start_buffered_stream(nursery, b, read_high=50, read_low=10)
    payload = random.Random(7).randbytes(1000)
    sender.write(payload)
    await trio.testing.wait_all_tasks_blocked()
    assert len(receiver.input) == 50  # read high
    assert b.statistics().input_buffered == 100  # the pair is full
    assert a.statistics().bytes_sent == 150  # the rest waits in the sender's output
    assert a.statistics().send_waiting
    assert len(sender.output) == 1000  # (drained once the transport took all of it)
    got = await receiver.receive_exactly(50)
    await trio.testing.wait_all_tasks_blocked()
    assert (len(receiver.input), b.statistics().input_buffered) == (50, 100)
    assert a.statistics().bytes_sent == 200
    while len(got) < len(payload):
        got += await receiver.receive_some()
    assert got == payload
    await sender.flush(FlushMode.FINISHED)
    assert await receiver.receive_some() == b""
    await sender.aclose()
    await receiver.aclose()
