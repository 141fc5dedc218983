"""BufferedStream: Trio conformance in every mode, then each behaviour with exact numbers."""

from __future__ import annotations

import array
import os
import random
import socket
import struct
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from helpers import NotHalfCloseable, send_in_pieces

from evtrio import EOL, LineTooLongError
from evtrio.errors import (
    DelimiterNotFoundError,
    IncompleteReadError,
    ReadTimeoutError,
    WriteBufferFullError,
    WriteTimeoutError,
)
from evtrio.streams._socket import wrap_socket
from evtrio.streams.buffered import (
    BEV,
    DEFAULT_READ_HIGH,
    BufferedStream,
    HalfCloseableBufferedStream,
    Watermarks,
    start_buffered_stream,
)
from evtrio.streams.flush import FlushMode

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from evtrio.streams.buffered import StreamEvent


def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = socket.socketpair()
    return wrap_socket(a), wrap_socket(b)


def foreign_socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """Socket streams that evtrio did not create (found through Trio's wrapper)."""
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


# ---------------------------------------------------------------------- conformance: pull mode


@pytest.mark.parametrize(
    "options",
    [{}, {"read_low": 100, "read_high": 700}],
    ids=["default", "small-read-high"],
)
@pytest.mark.parametrize(
    "pair",
    [trio.testing.memory_stream_pair, socket_stream_pair, foreign_socket_stream_pair],
    ids=["memory", "socket", "foreign-socket"],
)
async def test_BufferedStream_pull_conforms(
    pair: Callable[[], tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]],
    options: dict[str, int],
) -> None:
    async def maker() -> tuple[BufferedStream, BufferedStream]:
        a, b = pair()
        return BufferedStream(a, **options), BufferedStream(b, **options)

    async def clogged() -> tuple[BufferedStream, BufferedStream]:
        a, b = trio.testing.lockstep_stream_pair()
        return BufferedStream(a, **options), BufferedStream(b, **options)

    await trio.testing.check_half_closeable_stream(maker, clogged)


# ---------------------------------------------------------------- conformance: background mode


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"write_high": 4096, "write_low": 1024},
        {"write_high": 1 << 20, "read_high": 500, "read_low": 20},
    ],
    ids=["write-through", "write-behind", "write-behind-small-read"],
)
@pytest.mark.parametrize(
    "pair", [trio.testing.memory_stream_pair, socket_stream_pair], ids=["memory", "socket"]
)
async def test_BufferedStream_background_conforms(
    nursery: trio.Nursery,
    pair: Callable[[], tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]],
    options: dict[str, int],
) -> None:
    async def maker() -> tuple[BufferedStream, BufferedStream]:
        a, b = pair()
        return start_buffered_stream(nursery, a, **options), start_buffered_stream(
            nursery, b, **options
        )

    async def clogged() -> tuple[BufferedStream, BufferedStream]:
        # Lockstep transports, each side's input filled to read high and output to
        # write high: the next send in either direction waits for a receive.
        clog = {**options, "read_high": 4, "read_low": 0, "write_low": 0}
        clog["write_high"] = 8
        a, b = trio.testing.lockstep_stream_pair()
        streams = (
            start_buffered_stream(nursery, a, **clog),
            start_buffered_stream(nursery, b, **clog),
        )
        while True:
            await trio.testing.wait_all_tasks_blocked()
            rooms = [clog["write_high"] - len(stream.output) for stream in streams]
            if max(rooms) <= 0:
                return streams
            for stream, room in zip(streams, rooms, strict=True):
                if room > 0:
                    stream.write(b"z" * room)

    await trio.testing.check_half_closeable_stream(maker, clogged)


def test_BufferedStream_is_half_closeable_exactly_when_its_transport_is() -> None:
    a, _ = trio.testing.memory_stream_pair()
    assert isinstance(BufferedStream(a), HalfCloseableBufferedStream)
    assert isinstance(BufferedStream(a), trio.abc.HalfCloseableStream)
    tls_like = NotHalfCloseable(a)
    stream = BufferedStream(tls_like)
    assert type(stream) is BufferedStream
    assert not isinstance(stream, trio.abc.HalfCloseableStream)
    assert not hasattr(stream, "send_eof")
    with pytest.raises(TypeError, match="not half-closeable"):
        HalfCloseableBufferedStream(tls_like)


# ---------------------------------------------------------------------- helpers for behaviour tests


def pull_pair(**options: object) -> tuple[HalfCloseableBufferedStream, HalfCloseableBufferedStream]:
    a, b = trio.testing.memory_stream_pair()
    return BufferedStream(a, **options), BufferedStream(b, **options)  # type: ignore[arg-type]


def buffered_with(
    data: bytes, *, then_eof: bool = False, **options: object
) -> HalfCloseableBufferedStream:
    """A pull-mode stream whose transport already holds *data* (and maybe EOF)."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    send.send_all_nowait = None  # type: ignore[attr-defined]
    receive.put_data(data)  # type: ignore[attr-defined]
    if then_eof:
        receive.put_eof()  # type: ignore[attr-defined]
    return BufferedStream(trio.StapledStream(send, receive), **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- reading helpers


async def test_BufferedStream_readln() -> None:
    stream = buffered_with(b"one\r\ntwo\n\r\nlast", then_eof=True)
    assert await stream.readln() == b"one"
    assert await stream.readln() == b"two"
    assert await stream.readln() == b""
    assert await stream.readln() == b"last"  # the final line needs no terminator
    assert await stream.readln() is None
    assert await stream.readln() is None


async def test_BufferedStream_readln_split_terminator() -> None:
    a, b = pull_pair()
    await a.send_all(b"abc\r")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"\ndef\r\n")
        assert await b.readln(max_length=3) == b"abc"
    assert await b.readln() == b"def"


async def test_BufferedStream_readln_limits() -> None:
    stream = buffered_with(b"x" * 20 + b"\n", read_high=32)
    with pytest.raises(LineTooLongError):
        await stream.readln(max_length=10)
    assert len(stream.input) == 21  # nothing consumed
    assert await stream.readln(max_length=20) == b"x" * 20
    with pytest.raises(ValueError, match="between 0 and 30"):
        await stream.readln(max_length=31)  # the line and its CRLF must fit in read high


async def test_BufferedStream_readln_default_limit_follows_read_high() -> None:
    stream = buffered_with(b"y" * 100, read_high=50)
    with pytest.raises(LineTooLongError) as info:
        await stream.readln()
    assert info.value.max_length == 48


async def test_BufferedStream_receive_until() -> None:
    a, b = pull_pair()
    await a.send_all(b"key=val")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"ue;;next;;")
        assert await b.receive_until(b";;") == b"key=value"
    assert await b.receive_until(b";;") == b"next"
    with pytest.raises(ValueError, match="empty"):
        await b.receive_until(b"")


async def test_BufferedStream_receive_until_delimiter_not_found_keeps_bytes() -> None:
    stream = buffered_with(b"abcdefgh;rest")
    with pytest.raises(DelimiterNotFoundError) as info:
        await stream.receive_until(b";", max_bytes=5)
    assert info.value.max_bytes == 5
    assert bytes(stream.input) == b"abcdefgh;rest"
    assert await stream.receive_until(b";", max_bytes=8) == b"abcdefgh"


async def test_BufferedStream_receive_until_eof_keeps_bytes() -> None:
    stream = buffered_with(b"abcd", then_eof=True)
    with pytest.raises(IncompleteReadError):
        await stream.receive_until(b"\r\n", max_bytes=64)
    assert bytes(stream.input) == b"abcd"


async def test_BufferedStream_receive_exactly() -> None:
    stream = buffered_with(b"0123456789", then_eof=True)
    assert await stream.receive_exactly(4) == b"0123"
    assert await stream.receive_exactly(0) == b""
    with pytest.raises(IncompleteReadError) as info:
        await stream.receive_exactly(7)
    assert (info.value.expected, info.value.buffered) == (7, 6)
    assert bytes(stream.input) == b"456789"
    with pytest.raises(ValueError, match="read_high"):
        await stream.receive_exactly(DEFAULT_READ_HIGH + 1)


async def test_BufferedStream_receive_at_least_uses_read_low() -> None:
    a, b = pull_pair(read_low=5)
    await a.send_all(b"ab")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, b"cdef")
        assert await b.receive_at_least() == b"abcdef"
    await a.send_all(b"xyz")
    await a.send_eof()
    assert await b.receive_at_least(10) == b"xyz"  # the end: what is left
    assert await b.receive_at_least(1) == b""


async def test_BufferedStream_receive_some_respects_read_high() -> None:
    stream = buffered_with(b"z" * 100, read_high=30)
    assert await stream.receive_some() == b"z" * 30
    assert await stream.receive_some(1000) == b"z" * 30
    assert await stream.receive_some(7) == b"z" * 7
    with pytest.raises(ValueError, match=">= 1"):
        await stream.receive_some(0)


async def test_BufferedStream_async_iteration() -> None:
    stream = buffered_with(b"hello world", then_eof=True, read_high=4)
    assert [chunk async for chunk in stream] == [b"hell", b"o wo", b"rld"]


# ---------------------------------------------------------------------- writing


async def test_BufferedStream_write_and_drain() -> None:
    a, b = pull_pair(write_high=10, write_low=2)
    a.write(b"hello")
    a.write(bytearray(b" you"))
    with pytest.raises(WriteBufferFullError) as info:
        a.write(b"!!")
    assert (info.value.write_high, info.value.buffered, info.value.size) == (10, 9, 2)
    assert len(a.output) == 9
    await a.drain()
    assert len(a.output) <= 2
    await a.flush()
    assert await b.receive_some() == b"hello you"


async def test_BufferedStream_write_through_refuses_write() -> None:
    a, _ = pull_pair()
    with pytest.raises(WriteBufferFullError, match="write-through"):
        a.write(b"x")


async def test_BufferedStream_send_all_flushes_earlier_writes_first() -> None:
    a, b = pull_pair(write_high=100)
    a.write(b"first ")
    await a.send_all(b"second")
    assert bytes(await b.receive_some()) == b"first second"


async def test_BufferedStream_write_behind_copies_mutable_data(nursery: trio.Nursery) -> None:
    x, y = trio.testing.lockstep_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=1000)
    receiver = BufferedStream(y)
    data = bytearray(b"original")
    await sender.send_all(data)  # returns before the peer reads anything
    data[:] = b"mutated!"
    assert await receiver.receive_exactly(8) == b"original"


async def test_BufferedStream_write_behind_failure_is_sticky(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=1 << 20)
    await y.aclose()
    await sender.send_all(b"lost")  # queued; the writer then fails
    await trio.testing.wait_all_tasks_blocked()
    for operation in (
        lambda: sender.send_all(b"x"),
        sender.drain,
        sender.send_eof,
        sender.wait_send_all_might_not_block,
    ):
        with pytest.raises(trio.BrokenResourceError):
            await operation()
    assert sender.statistics().state == "broken"
    assert sender.statistics().discarded == 4


async def test_BufferedStream_send_eof_flushes_first(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=1 << 20)
    receiver = BufferedStream(y)
    await sender.send_all(b"a" * 100_000)
    await sender.send_eof()
    assert len(await receiver.receive_exactly(100_000)) == 100_000
    assert await receiver.receive_some() == b""
    assert await sender.send_eof() is None  # idempotent
    with pytest.raises(trio.ClosedResourceError, match="send_eof"):
        await sender.send_all(b"more")


async def test_BufferedStream_aclose_flushes_then_closes(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=1 << 20)
    receiver = BufferedStream(y)
    await sender.send_all(b"b" * 50_000)
    await sender.aclose()
    assert len(await receiver.receive_exactly(50_000)) == 50_000
    assert await receiver.receive_some() == b""
    assert sender.statistics().state == "closed"
    assert sender.statistics().discarded == 0


async def test_BufferedStream_cancelled_aclose_still_closes_and_counts(
    nursery: trio.Nursery,
) -> None:
    x, y = trio.testing.lockstep_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=1 << 20)
    await sender.send_all(b"c" * 1000)  # nobody reads: stuck in the output buffer
    with trio.CancelScope() as scope:
        scope.cancel()
        await sender.aclose()
    stats = sender.statistics()
    assert stats.state == "closed"
    assert stats.discarded == 1000
    with pytest.raises(trio.ClosedResourceError):
        await sender.send_all(b"x")
    await y.aclose()


async def test_BufferedStream_busy_in_each_direction() -> None:
    a, _ = pull_pair()
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.receive_some)
            nursery.start_soon(a.readln)
    with pytest.RaisesGroup(trio.BusyResourceError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_all, b"x" * 10_000_000)
            nursery.start_soon(a.drain)


async def test_BufferedStream_flush_modes(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=100, write_low=10)
    receiver = BufferedStream(y)
    sender.write(b"n" * 50)
    await sender.flush(FlushMode.NORMAL)
    assert len(sender.output) <= 10
    sender.write(b"f" * 50)
    await sender.flush(FlushMode.FLUSH)
    assert len(sender.output) == 0
    sender.write(b"end")
    await sender.flush(FlushMode.FINISHED)
    assert await receiver.receive_exactly(103) == b"n" * 50 + b"f" * 50 + b"end"
    assert await receiver.receive_some() == b""


async def test_BufferedStream_flush_finished_needs_half_close() -> None:
    a, _ = trio.testing.memory_stream_pair()
    stream = BufferedStream(NotHalfCloseable(a))
    with pytest.raises(TypeError, match="cannot half-close"):
        await stream.flush(FlushMode.FINISHED)
    await stream.flush(FlushMode.FLUSH)


# ---------------------------------------------------------------------- watermarks and events


async def next_events(events: object, count: int) -> list[StreamEvent]:
    iterator = events.__aiter__()  # type: ignore[attr-defined]
    return [await iterator.__anext__() for _ in range(count)]


async def test_BufferedStream_read_watermarks_drive_READ_events(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours, read_low=10, read_high=20)
    events = stream.events()
    assert [e.what for e in await next_events(events, 1)] == [BEV.CONNECTED]
    await peer.send_all(b"12345")
    await trio.testing.wait_all_tasks_blocked()
    assert len(stream.input) == 5  # below read low: no READ
    await peer.send_all(b"6789012")
    assert [e.what for e in await next_events(events, 1)] == [BEV.READ]
    assert len(stream.input) == 12
    await peer.send_all(b"x" * 30)
    await trio.testing.wait_all_tasks_blocked()
    assert len(stream.input) == 20  # read high: reading stopped, 22 bytes wait upstream
    assert [e.what for e in await next_events(events, 1)] == [BEV.READ]  # coalesced
    assert len(await stream.receive_some()) == 20  # never more than read high
    await trio.testing.wait_all_tasks_blocked()
    assert len(stream.input) == 20
    stream.input.drain(15)
    await trio.testing.wait_all_tasks_blocked()
    assert len(stream.input) == 7  # the last 2 upstream bytes arrived, below read low
    stats = stream.statistics()
    assert (stats.bytes_read, stats.input_buffered) == (42, 7)


async def test_BufferedStream_write_low_drives_WRITE_events(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours, write_low=4, write_high=16)
    events = stream.events()
    await next_events(events, 1)
    stream.write(b"abcdefghij")
    assert [e.what for e in await next_events(events, 1)] == [BEV.WRITE]
    assert len(stream.output) == 0
    assert await peer.receive_some() == b"abcdefghij"

    blocked_peer, blocked = trio.testing.lockstep_stream_pair()
    stuck = start_buffered_stream(nursery, blocked, write_low=4, write_high=16)
    stuck_events = stuck.events()
    await next_events(stuck_events, 1)
    stuck.write(b"abcdefghij")
    await trio.testing.wait_all_tasks_blocked()
    with trio.move_on_after(0.05):
        await next_events(stuck_events, 1)
        pytest.fail("WRITE before the output drained to write low")
    assert await blocked_peer.receive_some(100) == b"abcdefghij"
    assert [e.what for e in await next_events(stuck_events, 1)] == [BEV.WRITE]


async def test_BufferedStream_EOF_and_ERROR_events(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours)
    await peer.send_all(b"bye")
    await peer.send_eof()
    got = [e.what for e in await next_events(stream.events(), 3)]
    assert got == [BEV.CONNECTED, BEV.READ, BEV.EOF | BEV.READING]
    assert await stream.receive_some() == b"bye"
    assert await stream.receive_some() == b""
    assert stream.statistics().state == "eof"

    peer2, ours2 = trio.testing.memory_stream_pair()
    broken = start_buffered_stream(nursery, ours2, write_high=100)
    await peer2.aclose()  # the reader sees EOF, the writer a broken pipe
    broken.write(b"nobody listens")
    got = {event.what: event.error for event in await next_events(broken.events(), 3)}
    assert set(got) == {BEV.CONNECTED, BEV.EOF | BEV.READING, BEV.ERROR | BEV.WRITING}
    assert isinstance(got[BEV.ERROR | BEV.WRITING], trio.BrokenResourceError)


async def test_BufferedStream_slow_event_consumer_costs_nothing(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours, read_high=1 << 20)
    events = stream.events()
    for _ in range(1000):
        await peer.send_all(b"x")
        await trio.testing.wait_all_tasks_blocked()
        stream.input.drain(1)
    assert len(stream.input) == 0
    assert [e.what for e in await next_events(events, 2)] == [BEV.CONNECTED, BEV.READ]
    with trio.move_on_after(1):
        await next_events(events, 1)
        pytest.fail("an event was left over")


async def test_BufferedStream_events_need_background_mode() -> None:
    a, _ = pull_pair()
    with pytest.raises(RuntimeError, match="background mode"):
        a.events()


async def test_BufferedStream_run_callbacks_follow_the_book(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(
        nursery, ours, read_low=4, read_high=8, write_low=0, write_high=64
    )
    calls: list[tuple[str, object]] = []

    def on_read(s: BufferedStream) -> None:
        calls.append(("read", len(s.input)))
        s.output.add(s.input.remove(len(s.input)).upper())  # an upper-casing echo

    async def on_write(s: BufferedStream) -> None:
        calls.append(("write", len(s.output)))

    def on_event(s: BufferedStream, event: StreamEvent) -> None:
        calls.append(("event", event.what))

    nursery.start_soon(
        lambda: stream.run_callbacks(on_read=on_read, on_write=on_write, on_event=on_event)
    )
    await peer.send_all(b"ab")
    await trio.testing.wait_all_tasks_blocked()
    await peer.send_all(b"cdefghijkl")
    await trio.testing.wait_all_tasks_blocked()
    assert await peer.receive_some() == b"ABCDEFGHIJKL"
    await peer.send_eof()
    await trio.testing.wait_all_tasks_blocked()
    # Read callbacks: 2 bytes were below read low; read high caps the next read at 8.
    assert [size for kind, size in calls if kind == "read"] == [8, 4]
    assert ("write", 0) in calls  # the echo drained to write low
    assert calls[0] == ("event", BEV.CONNECTED)
    assert calls[-1] == ("event", BEV.EOF | BEV.READING)


# ---------------------------------------------------------------------- timeouts


async def test_BufferedStream_read_timeout_pull(autojump_clock: trio.testing.MockClock) -> None:
    a, b = pull_pair(read_timeout=5)
    start = trio.current_time()
    with pytest.raises(ReadTimeoutError) as info:
        await b.receive_some()
    assert trio.current_time() - start == 5
    assert (info.value.direction, info.value.timeout) == ("read", 5)
    await a.send_all(b"late")
    assert await b.receive_some() == b"late"  # the stream still works


async def test_BufferedStream_read_timeout_counts_only_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = pull_pair(read_timeout=5)

    async def trickle() -> None:
        for piece in (b"a", b"b", b"c", b"\n"):
            await trio.sleep(4)  # each gap is under the timeout
            await a.send_all(piece)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        assert await b.readln() == b"abc"  # 16 s in all, but never 5 s of silence


async def test_BufferedStream_read_timeout_background_pauses_reading(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours, read_timeout=2)
    events = stream.events()
    assert [e.what for e in await next_events(events, 2)] == [
        BEV.CONNECTED,
        BEV.TIMEOUT | BEV.READING,
    ]
    assert not stream.reading
    with pytest.raises(ReadTimeoutError):
        await stream.receive_some()
    await peer.send_all(b"now")
    stream.resume_reading()
    assert await stream.receive_some() == b"now"


async def test_BufferedStream_write_timeout(autojump_clock: trio.testing.MockClock) -> None:
    x, _ = trio.testing.lockstep_stream_pair()  # nobody ever reads
    stream = BufferedStream(x, write_timeout=3)
    with pytest.raises(WriteTimeoutError) as info:
        await stream.send_all(b"stuck")
    assert info.value.direction == "write"
    with pytest.raises(WriteTimeoutError):
        await stream.send_all(b"again")  # the transport was left mid-send: sticky


async def test_BufferedStream_write_timeout_background(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    x, _ = trio.testing.lockstep_stream_pair()
    stream = start_buffered_stream(nursery, x, write_timeout=3, write_high=100)
    events = stream.events()
    await stream.send_all(b"stuck")
    assert [e.what for e in await next_events(events, 2)] == [
        BEV.CONNECTED,
        BEV.TIMEOUT | BEV.WRITING,
    ]
    with pytest.raises(WriteTimeoutError):
        await stream.send_all(b"more")


async def test_BufferedStream_timeouts_compose_with_cancel_scopes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, b = pull_pair(read_timeout=10)
    with trio.move_on_after(3) as scope:
        await b.receive_some()
    assert scope.cancelled_caught  # the outer, shorter scope won
    with pytest.raises(ValueError, match="timeout"):
        b.read_timeout = -1


# ---------------------------------------------------------------- pause, EOF, errors, statistics


async def test_BufferedStream_pause_and_resume_pull(autojump_clock: trio.testing.MockClock) -> None:
    a, b = pull_pair()
    await a.send_all(b"data")
    b.pause_reading()
    assert not b.reading
    with trio.move_on_after(10) as scope:
        await b.receive_some()
    assert scope.cancelled_caught  # paused: nothing is read
    b.resume_reading()
    assert await b.receive_some() == b"data"


async def test_BufferedStream_pause_and_resume_background(nursery: trio.Nursery) -> None:
    peer, ours = trio.testing.memory_stream_pair()
    stream = start_buffered_stream(nursery, ours)
    stream.pause_reading()
    await peer.send_all(b"waiting")
    await trio.testing.wait_all_tasks_blocked()
    assert len(stream.input) == 0
    stream.resume_reading()
    await trio.testing.wait_all_tasks_blocked()
    assert bytes(stream.input) == b"waiting"


async def test_BufferedStream_half_close_keeps_receiving() -> None:
    a, b = pull_pair()
    await a.send_eof()
    assert await b.receive_some() == b""
    await b.send_all(b"still open")
    assert await a.receive_some() == b"still open"


async def test_BufferedStream_socket_reset_is_broken_resource() -> None:
    left, right = socket.socketpair()
    right.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream = BufferedStream(wrap_socket(left))
    right.close()  # an RST, not a FIN
    with pytest.raises(trio.BrokenResourceError) as info:
        await stream.send_all(b"x" * 65536)
    assert isinstance(info.value.__cause__, OSError)
    await stream.aclose()


async def test_BufferedStream_statistics_and_repr() -> None:
    a, b = pull_pair(read_low=1, read_high=100, write_low=2, write_high=50)
    await a.send_all(b"12345")
    assert await b.receive_exactly(2) == b"12"
    stats = b.statistics()
    assert stats.watermarks == Watermarks(1, 100, 2, 50)
    assert (stats.bytes_read, stats.input_buffered, stats.state) == (5, 3, "open")
    assert not stats.background
    assert stats.reading
    assert a.statistics().bytes_written == 5
    assert "pull in=3 out=0" in repr(b)
    with pytest.raises(ValueError, match="read_low=200 is above read_high"):
        b.set_watermarks(read_low=200)
    with pytest.raises(ValueError, match="write_low=60 is above write_high"):
        b.set_watermarks(write_low=60)
    with pytest.raises(ValueError, match="read_high >= 1"):
        b.set_watermarks(read_high=0)


# ---------------------------------------------------------------------- the socket fast path


async def test_BufferedStream_socket_fast_path_bypasses_trio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = socket_stream_pair()

    async def refuse(*args: object) -> None:
        raise AssertionError("the fast path should not call Trio's socket stream")

    monkeypatch.setattr(trio.SocketStream, "send_all", refuse)
    monkeypatch.setattr(trio.SocketStream, "receive_some", refuse)
    left, right = BufferedStream(a), BufferedStream(b)
    await left.send_all(b"ping\n")
    assert await right.readln() == b"ping"
    await right.send_all(memoryview(b"pong"))
    assert await left.receive_exactly(4) == b"pong"
    await left.aclose()
    await right.aclose()


async def test_BufferedStream_sends_file_segments_with_sendfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_sendfile = os.sendfile

    def counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting_sendfile)
    path = tmp_path / "payload"
    path.write_bytes(os.urandom(300_000))
    a, b = socket_stream_pair()
    sender, receiver = BufferedStream(a, write_high=1 << 20), BufferedStream(b)
    sender.output.add(b"HEAD")
    sender.output.add_file(path.open("rb"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.flush)
        assert await receiver.receive_exactly(4) == b"HEAD"
        assert (
            await receiver.receive_exactly(150_000) + await receiver.receive_exactly(150_000)
            == path.read_bytes()
        )
    assert calls  # the file went through os.sendfile
    await sender.aclose()
    await receiver.aclose()


async def test_BufferedStream_large_send_queues_rest_without_copy() -> None:
    a, b = socket_stream_pair()
    sender, receiver = BufferedStream(a), BufferedStream(b)
    payload = os.urandom(8 << 20)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender.send_all, payload)
        got = bytearray()
        while len(got) < len(payload):
            got += await receiver.receive_some()
    assert got == payload
    await sender.aclose()
    await receiver.aclose()


# ---------------------------------------------------------------------- random cancellation


@pytest.mark.parametrize("background", [False, True], ids=["pull", "background"])
@pytest.mark.parametrize(
    "pair", [trio.testing.memory_stream_pair, socket_stream_pair], ids=["memory", "socket"]
)
async def test_BufferedStream_random_cancels_lose_nothing(
    nursery: trio.Nursery,
    pair: Callable[[], tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]],
    background: bool,
) -> None:
    """Receivers are cancelled at random points; every byte arrives once, in order."""
    rng = random.Random(1234)
    payload = rng.randbytes(300_000).replace(b"\n", b"\r")
    lines = [payload[i : i + rng.randint(1, 500)] for i in range(0, len(payload), 500)]
    wire = b"".join(line + b"\n" for line in lines)
    x, y = pair()
    if background:
        sender = start_buffered_stream(nursery, x, write_high=4096)
        receiver = start_buffered_stream(nursery, y, read_high=8192)
    else:
        sender, receiver = BufferedStream(x), BufferedStream(y, read_high=8192)

    async def send() -> None:
        await send_in_pieces(sender, wire, rng, 3000)
        await sender.send_eof()

    nursery.start_soon(send)
    got = bytearray()
    with trio.fail_after(60):
        while True:
            kind = rng.choice(["some", "exactly", "line", "until", "at_least"])
            with trio.move_on_after(rng.choice([0, 0, 1e-6, 1e-4, 1e-3])):
                if kind == "some":
                    chunk = await receiver.receive_some(rng.randint(1, 700))
                    if not chunk:
                        break
                    got += chunk
                elif kind == "exactly":
                    got += await receiver.receive_exactly(
                        min(rng.randint(1, 700), len(wire) - len(got)) or 1
                    )
                elif kind == "line":
                    line = await receiver.readln(EOL.LF, max_length=600)
                    if line is None:
                        break
                    got += line + b"\n"
                elif kind == "until":
                    got += await receiver.receive_until(b"\n", max_bytes=600) + b"\n"
                else:
                    got += await receiver.receive_at_least(rng.randint(1, 50))
            if len(got) == len(wire) and not receiver.input:
                break
    assert bytes(got) == wire
    await sender.aclose()
    await receiver.aclose()


async def test_BufferedStream_write_behind_takes_strided_views(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    sender = start_buffered_stream(nursery, x, write_high=4)
    receiver = BufferedStream(y)
    numbers = array.array("H", range(8))
    strided = memoryview(numbers)[::2]  # not contiguous, not bytes, over write high
    await sender.send_all(strided)  # type: ignore[arg-type]
    assert await receiver.receive_exactly(8) == array.array("H", [0, 2, 4, 6]).tobytes()
