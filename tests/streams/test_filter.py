"""FilterStream and the built-in filters: Trio conformance with and without filters,
the libevent filter contract (limits, NEED_MORE, ERROR, flush modes), cancellation,
bounded inflate (a 1 GiB bomb), and each filter fed three ways plus Hypothesis."""

from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from helpers import NotHalfCloseable, send_in_pieces
from hypothesis import given
from hypothesis import strategies as st

from evtrio import Buffer
from evtrio.errors import FilterError, FilterLimitError
from evtrio.streams.buffered import BufferedStream, start_buffered_stream
from evtrio.streams.filter import (
    DEFAULT_FILTER_LIMIT,
    CRLFToLFFilter,
    DeflateFilter,
    FilterResult,
    FilterStream,
    HalfCloseableFilterStream,
    InflateFilter,
    LFToCRLFFilter,
)
from evtrio.streams.flush import FlushMode
from evtrio.streams.pair import open_stream_pair

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from evtrio.streams.filter import Filter


# ---------------------------------------------------------------------- test filters


_XOR = bytes(b ^ 0x5A for b in range(256))


def xor_filter(source: Buffer, destination: Buffer, limit: int, mode: FlushMode) -> FilterResult:
    """A stateless 1:1 filter (its own inverse): the smallest filter there is."""
    if not source:
        return FilterResult.NEED_MORE
    destination.add(source.remove(limit).translate(_XOR))
    return FilterResult.OK


class LineFilter:
    """Emits only complete lines (a record framer in miniature): holds partial ones."""

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        end = source.search(b"\n", 0, limit)
        if end < 0:
            if mode is FlushMode.FINISHED and 0 < len(source) <= limit:
                destination.add(source.remove(len(source)))
                return FilterResult.OK
            return FilterResult.NEED_MORE
        destination.add(source.remove(end + 1))
        return FilterResult.OK


class ScriptedFilter:
    """Passes bytes through, then returns (or raises) whatever it is told to."""

    def __init__(self, after: int, outcome: object, error: str | None = None) -> None:
        self.after = after
        self.outcome = outcome
        self.error = error
        self.calls: list[tuple[int, int, FlushMode]] = []

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        self.calls.append((len(source), limit, mode))
        if self.after <= 0 and source:
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome  # type: ignore[return-value]
        moved = source.remove_buffer(destination, min(limit, self.after))
        self.after -= moved
        return FilterResult.OK if moved else FilterResult.NEED_MORE


def zlib_options() -> dict[str, object]:
    return {
        "input_filter": InflateFilter(),
        "output_filter": DeflateFilter(),
        "send_mode": FlushMode.FLUSH,
    }


FILTER_CASES: dict[str, Callable[[], dict[str, object]]] = {
    "passthrough": dict,
    "xor": lambda: {"input_filter": xor_filter, "output_filter": xor_filter},
    "zlib": zlib_options,
    "crlf": lambda: {"input_filter": CRLFToLFFilter(), "output_filter": LFToCRLFFilter()},
    "small-limits": lambda: {
        "input_filter": xor_filter,
        "output_filter": xor_filter,
        "input_limit": 300,
        "output_limit": 200,
    },
}


def filtered(
    a: trio.abc.Stream, b: trio.abc.Stream, case: str
) -> tuple[FilterStream, FilterStream]:
    options = FILTER_CASES[case]
    return FilterStream(a, **options()), FilterStream(b, **options())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- conformance


@pytest.mark.parametrize("case", list(FILTER_CASES))
@pytest.mark.parametrize(
    "pair", [trio.testing.memory_stream_pair, open_stream_pair], ids=["memory", "evtrio-pair"]
)
async def test_FilterStream_conforms(
    pair: Callable[[], tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]],
    case: str,
) -> None:
    async def maker() -> tuple[FilterStream, FilterStream]:
        return filtered(*pair(), case)

    async def clogged() -> tuple[FilterStream, FilterStream]:
        return filtered(*trio.testing.lockstep_stream_pair(), case)

    with trio.fail_after(60):  # a filter that held bytes back would hang the checker
        await trio.testing.check_half_closeable_stream(maker, clogged)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["passthrough", "zlib"])
async def test_FilterStream_over_plain_stream_conforms(case: str) -> None:
    async def maker() -> tuple[FilterStream, FilterStream]:
        a, b = trio.testing.memory_stream_pair()
        return filtered(NotHalfCloseable(a), NotHalfCloseable(b), case)

    async def clogged() -> tuple[FilterStream, FilterStream]:
        a, b = trio.testing.lockstep_stream_pair()
        return filtered(NotHalfCloseable(a), NotHalfCloseable(b), case)

    await trio.testing.check_two_way_stream(maker, clogged)


def test_FilterStream_is_half_closeable_exactly_when_its_transport_is() -> None:
    a, _ = trio.testing.memory_stream_pair()
    stream = FilterStream(a)
    assert isinstance(stream, HalfCloseableFilterStream)
    assert stream.transport_stream is a
    plain = FilterStream(NotHalfCloseable(a))
    assert type(plain) is FilterStream
    assert not isinstance(plain, trio.abc.HalfCloseableStream)
    assert not hasattr(plain, "send_eof")
    with pytest.raises(TypeError, match="not half-closeable"):
        HalfCloseableFilterStream(NotHalfCloseable(a))


def test_FilterStream_validates_options() -> None:
    a, _ = trio.testing.memory_stream_pair()
    for name in ("input_limit", "output_limit", "max_pending"):
        with pytest.raises(ValueError, match=f"{name} must be >= 1"):
            FilterStream(a, **{name: 0})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            FilterStream(a, **{name: 1.5})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="send_mode FINISHED"):
        FilterStream(a, send_mode=FlushMode.FINISHED)


# ---------------------------------------------------------------------- the filter contract


async def test_FilterStream_missing_filter_passes_bytes_through() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, input_limit=10)
    await stream.send_all(b"unchanged")
    assert await y.receive_some() == b"unchanged"
    await y.send_all(b"0123456789abcdef")
    assert await stream.receive_some() == b"0123456789"  # never more than input_limit
    assert await stream.receive_some() == b"abcdef"
    stats = stream.statistics()
    assert (stats.bytes_sent, stats.bytes_written) == (9, 9)
    assert (stats.bytes_read, stats.bytes_received) == (16, 16)
    assert (stream.input_filter, stream.output_filter) == (None, None)


async def test_FilterStream_input_filter_gets_the_room_below_input_limit() -> None:
    x, y = trio.testing.memory_stream_pair()
    spy = ScriptedFilter(after=1000, outcome=FilterResult.ERROR)
    stream = FilterStream(x, input_filter=spy, input_limit=8)
    await y.send_all(b"abcdefghijkl")
    assert await stream.receive_some(3) == b"abc"
    assert await stream.receive_some() == b"defgh"  # the rest of the first 8
    assert await stream.receive_some() == b"ijkl"
    # (source length, limit): the filter is asked first (it may hold output of its
    # own), then after each read; the limit is the room left below input_limit.
    normal = FlushMode.NORMAL
    assert spy.calls == [(0, 8, normal), (12, 8, normal), (4, 8, normal), (0, 4, normal)]


async def test_FilterStream_output_limit_bounds_each_write() -> None:
    x, y = trio.testing.memory_stream_pair()
    writes: list[int] = []
    real_send_all = x.send_all

    async def recording_send_all(data: bytes | bytearray | memoryview) -> None:
        writes.append(len(data))
        await real_send_all(data)

    x.send_all = recording_send_all  # type: ignore[method-assign]
    stream = FilterStream(x, output_filter=LFToCRLFFilter(), output_limit=10)
    await stream.send_all(b"a\nb\nc\nd\ne\nf\ng\n")
    assert await y.receive_some() == b"a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\n"
    assert max(writes) <= 10
    assert sum(writes) == 21


async def test_FilterStream_holds_back_what_a_filter_needs_more_for() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, input_filter=LineFilter())
    await y.send_all(b"first\nsec")
    assert await stream.receive_some() == b"first\n"
    with trio.move_on_after(0.01) as scope:
        await stream.receive_some()  # "sec" is not a line yet
    assert scope.cancelled_caught
    assert stream.statistics().input_pending == 3  # kept for the next call
    await y.send_all(b"ond\nthi")
    assert await stream.receive_some() == b"second\n"
    await y.send_eof()  # FINISHED: the filter lets the partial line go
    assert await stream.receive_some() == b"thi"
    assert await stream.receive_some() == b""


async def test_FilterStream_max_pending_bounds_held_back_bytes() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, input_filter=LineFilter(), max_pending=100)
    await y.send_all(b"x" * 250)  # no newline, ever
    with pytest.raises(FilterLimitError) as info:
        await stream.receive_some()
    assert (info.value.direction, info.value.max_pending) == ("input", 100)
    assert stream.statistics().input_pending == 100  # never read more than allowed
    assert stream.statistics().state == "broken"
    with pytest.raises(trio.BrokenResourceError):
        await stream.receive_some()


async def test_FilterStream_output_max_pending() -> None:
    x, _ = trio.testing.memory_stream_pair()
    stream = FilterStream(x, output_filter=LineFilter(), max_pending=10)
    await stream.send_all(b"0123456789")
    with pytest.raises(FilterLimitError) as info:
        await stream.send_all(b"!")
    assert info.value.direction == "output"
    with pytest.raises(trio.BrokenResourceError, match="failed earlier"):
        await stream.send_all(b"more")


async def test_FilterStream_bytes_left_unfiltered_at_eof_are_an_error() -> None:
    class Pairs:  # consumes bytes two at a time: an odd byte at the end is unusable
        def __call__(
            self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
        ) -> FilterResult:
            n = min(len(source), limit) // 2 * 2
            if not n:
                return FilterResult.NEED_MORE
            destination.add(source.remove(n))
            return FilterResult.OK

    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, input_filter=Pairs())
    await y.send_all(b"abcde")
    await y.send_eof()
    assert await stream.receive_some() == b"abcd"
    with pytest.raises(FilterError, match="1 bytes left unfiltered at the end"):
        await stream.receive_some()


async def test_FilterStream_filter_ERROR_is_a_typed_error_after_earlier_bytes() -> None:
    x, y = trio.testing.memory_stream_pair()
    bad = ScriptedFilter(after=4, outcome=FilterResult.ERROR, error="bad checksum")
    stream = FilterStream(x, input_filter=bad)
    await y.send_all(b"gooddata")
    assert await stream.receive_some() == b"good"  # what came before the failure
    with pytest.raises(FilterError) as info:
        await stream.receive_some()
    error = info.value
    assert (error.direction, error.filter, error.reason) == ("input", bad, "bad checksum")
    assert isinstance(error, trio.BrokenResourceError)
    assert "bad checksum" in str(error)
    with pytest.raises(trio.BrokenResourceError, match="failed earlier") as again:
        await stream.receive_some()
    assert again.value.__cause__ is error
    assert stream.statistics().state == "broken"
    await stream.send_all(b"sending still works")
    assert await y.receive_some() == b"sending still works"


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (ValueError("boom"), "raised ValueError"),
        ("OK", "not a FilterResult"),
        (FilterResult.ERROR, "failed$"),
    ],
)
async def test_FilterStream_output_filter_failures(outcome: object, message: str) -> None:
    x, _ = trio.testing.memory_stream_pair()
    bad = ScriptedFilter(after=0, outcome=outcome)
    stream = FilterStream(x, output_filter=bad)
    with pytest.raises(FilterError, match=message) as info:
        await stream.send_all(b"x")
    assert info.value.direction == "output"
    if isinstance(outcome, BaseException):
        assert info.value.__cause__ is outcome
    with pytest.raises(trio.BrokenResourceError):
        await stream.send_all(b"y")
    await stream.aclose()  # the broken direction is not flushed, the stream closes


async def test_FilterStream_retries_a_filter_that_needs_more_room() -> None:
    def framer(source: Buffer, destination: Buffer, limit: int, mode: FlushMode) -> FilterResult:
        if not source or limit < 3:  # a 2-byte header and at least 1 byte of payload
            return FilterResult.NEED_MORE
        payload = source.remove(min(limit - 2, 7))
        destination.add(len(payload).to_bytes(2, "big") + payload)
        return FilterResult.OK

    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, output_filter=framer, output_limit=10)
    await stream.send_all(b"abcdefghij")  # a 9-byte frame leaves 1 byte of room: too small
    wire = b""
    with trio.fail_after(5):  # before the retry, the last 3 bytes never left
        while len(wire) < 14:
            wire += await y.receive_some()
    assert wire == b"\x00\x07abcdefg\x00\x03hij"
    assert stream.statistics().output_pending == 0


async def test_FilterStream_OK_without_progress_does_not_spin() -> None:
    x, _ = trio.testing.memory_stream_pair()
    calls = 0

    def lazy(source: Buffer, destination: Buffer, limit: int, mode: FlushMode) -> FilterResult:
        nonlocal calls
        calls += 1
        return FilterResult.OK  # a wrong answer: no progress at all

    stream = FilterStream(x, output_filter=lazy)
    with trio.move_on_after(0.01):
        await stream.send_all(b"data")
    assert calls == 1


# ---------------------------------------------------------------------- flush modes (zlib)


async def test_FilterStream_flush_modes_with_zlib() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, output_filter=DeflateFilter())
    peer = zlib.decompressobj()
    text = b"the same words again and again " * 100
    await stream.send_all(text)
    await stream.flush(FlushMode.NORMAL)  # zlib may keep everything for now
    seen = (
        peer.decompress(bytes(await y.receive_some())) if stream.statistics().bytes_written else b""
    )
    assert len(seen) < len(text)
    await stream.flush(FlushMode.FLUSH)  # Z_SYNC_FLUSH: everything sent so far decodes
    seen += peer.decompress(bytes(await y.receive_some()))
    assert seen == text
    assert not peer.eof
    written = stream.statistics().bytes_written
    await stream.flush(FlushMode.FLUSH)  # nothing new: nothing written
    assert stream.statistics().bytes_written == written
    await stream.send_all(b"the end")
    await stream.flush(FlushMode.FINISHED)  # Z_FINISH, then EOF on the transport
    assert peer.decompress(bytes(await y.receive_some())) == b"the end"
    assert peer.eof
    assert await y.receive_some() == b""
    assert stream.statistics().eof_sent
    with pytest.raises(trio.ClosedResourceError, match="finished"):
        await stream.send_all(b"too late")
    await stream.flush(FlushMode.FINISHED)  # nothing to do any more
    await stream.send_eof()


async def test_FilterStream_flush_FINISHED_needs_half_close_or_flush() -> None:
    a, b = trio.testing.memory_stream_pair()
    stream = FilterStream(NotHalfCloseable(a), output_filter=DeflateFilter())
    await stream.send_all(b"kept")
    with pytest.raises(TypeError, match="cannot half-close"):
        await stream.flush(FlushMode.FINISHED)
    assert stream.statistics().output_pending == 0  # nothing changed: still usable
    await stream.flush(FlushMode.FLUSH)
    assert zlib.decompressobj().decompress(bytes(await b.receive_some())) == b"kept"


async def test_FilterStream_flush_reaches_a_flushable_transport(nursery: trio.Nursery) -> None:
    x, y = trio.testing.memory_stream_pair()
    buffered = start_buffered_stream(nursery, x, write_high=1 << 20)
    stream = FilterStream(buffered, output_filter=LFToCRLFFilter())
    await stream.send_all(b"one\ntwo\n")
    await stream.flush(FlushMode.FLUSH)
    assert len(buffered.output) == 0  # the BufferedStream was flushed too
    assert await y.receive_some() == b"one\r\ntwo\r\n"
    await stream.flush(FlushMode.FINISHED)  # the BufferedStream sends the EOF
    assert await y.receive_some() == b""
    await stream.aclose()


async def test_FilterStream_aclose_finishes_the_output_filter() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, output_filter=DeflateFilter())
    await stream.send_all(b"held back by zlib until the end")
    await stream.aclose()
    wire = b""
    while chunk := await y.receive_some():
        wire += chunk
    assert zlib.decompress(wire) == b"held back by zlib until the end"
    assert stream.statistics().state == "closed"
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some()


async def test_FilterStream_cancelled_aclose_closes_forcefully() -> None:
    x, y = trio.testing.lockstep_stream_pair()  # nobody reads: the trailer cannot go out
    stream = FilterStream(x, output_filter=DeflateFilter())
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.aclose()
    assert stream.statistics().state == "closed"
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"x")
    with pytest.raises(trio.BrokenResourceError):
        await y.send_all(b"x")


# ---------------------------------------------------------------------- cancellation


async def test_FilterStream_cancel_before_writing_leaves_the_stream_usable() -> None:
    x, y = trio.testing.memory_stream_pair()
    stream = FilterStream(x, output_filter=LFToCRLFFilter())
    with trio.CancelScope() as scope:
        scope.cancel()
        await stream.send_all(b"never\n")
    assert stream.statistics().bytes_sent == 0
    await stream.send_all(b"fine\n")
    assert await y.receive_some() == b"fine\r\n"


async def test_FilterStream_cancel_while_the_transport_writes_breaks_sending() -> None:
    x, y = trio.testing.lockstep_stream_pair()
    stream = FilterStream(x, output_filter=LFToCRLFFilter())
    with trio.move_on_after(0.01):
        await stream.send_all(b"half a block may have gone\n")
    with pytest.raises(trio.BrokenResourceError, match="failed earlier") as info:
        await stream.send_all(b"more")
    assert "interrupted while the transport was writing" in str(info.value.__cause__)
    assert stream.statistics().state == "broken"
    await stream.aclose()
    await y.aclose()


@pytest.mark.parametrize("case", ["zlib", "crlf", "xor"])
async def test_FilterStream_random_receive_cancels_lose_nothing(case: str) -> None:
    rng = random.Random(99)
    a, b = open_stream_pair(max_buffer=5000)
    sender, receiver = filtered(a, b, case)
    payload = rng.randbytes(150_000) + b"\r\n\r" * 1000 + bytes(50_000)
    got = bytearray()
    cancelled = 0

    async def send() -> None:
        await send_in_pieces(sender, payload, rng, 4000)
        await sender.send_eof()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            while True:
                with trio.move_on_after(rng.choice([0, 1e-6, 1e-5, 1e-4])) as scope:
                    chunk = await receiver.receive_some(rng.randint(1, 3000))
                    if not chunk:
                        break
                    got += chunk
                cancelled += scope.cancelled_caught
    assert bytes(got) == payload
    assert cancelled > 10


# ---------------------------------------------------------------------- composition


async def test_BufferedStream_over_zlib_FilterStream_over_pair() -> None:
    a, b = open_stream_pair(max_buffer=1000)
    client = BufferedStream(
        FilterStream(a, input_filter=InflateFilter(), output_filter=DeflateFilter())
    )
    server = BufferedStream(
        FilterStream(b, input_filter=InflateFilter(), output_filter=DeflateFilter())
    )
    lines = [b"line %d of a compressed conversation" % i for i in range(500)]
    async with trio.open_nursery() as nursery:

        async def talk() -> None:
            for line in lines:
                await client.send_all(line + b"\r\n")
            await client.flush(FlushMode.FINISHED)  # zlib trailer, then the pair's EOF

        nursery.start_soon(talk)
        for line in lines:
            assert await server.readln() == line
        assert await server.readln() is None
    wire = a.statistics().bytes_sent
    assert wire < sum(len(line) + 2 for line in lines) // 4  # it really was compressed


# ---------------------------------------------------------------------- the decompression bomb


def gigabyte_bomb() -> bytes:
    """1 MiB of raw deflate that inflates to 1 GiB of zeros (1 KiB per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    megabyte = bytes(1 << 20)
    compressor.compress(megabyte)
    compressor.flush(zlib.Z_FULL_FLUSH)  # from here on, each MiB compresses the same
    segment = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert len(segment) < 1100
    return segment * 1024 + compressor.flush(zlib.Z_FINISH)


def test_InflateFilter_bomb_never_exceeds_the_limit() -> None:
    bomb = gigabyte_bomb()
    inflate = InflateFilter(format="raw")
    source, destination = Buffer(bomb), Buffer()
    tracemalloc.start()
    try:
        for _ in range(200):
            before = len(destination)
            assert inflate(source, destination, 4096, FlushMode.NORMAL) is FilterResult.OK
            assert len(destination) - before == 4096  # exactly the limit, every time
            destination.clear()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert len(bomb) - len(source) < 2000  # it only took the input it needed


async def test_FilterStream_bomb_memory_stays_bounded() -> None:
    bomb = gigabyte_bomb()
    a, b = open_stream_pair()
    receiver = FilterStream(b, input_filter=InflateFilter(format="raw"), input_limit=32768)
    received = 0
    tracemalloc.start()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_all, bomb)
            while received < 64 << 20:  # 64 MiB of the 1 GiB
                chunk = await receiver.receive_some()
                assert 0 < len(chunk) <= 32768
                received += len(chunk)
            nursery.cancel_scope.cancel()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the bomb is 1 MiB, its output 1 GiB: neither was held
    assert receiver.statistics().input_buffered <= 32768


# ---------------------------------------------------------------------- filters fed three ways


def run_filter(
    flt: Filter, source: Buffer, mode: FlushMode, *, limit: int = DEFAULT_FILTER_LIMIT
) -> tuple[bytes, FilterResult]:
    """Call *flt* until it needs more or fails; every call must respect *limit*
    (except deflate's: zlib emits whole blocks, see DeflateFilter)."""
    destination = Buffer()
    for _ in range(100_000):
        before = len(destination)
        result = flt(source, destination, limit, mode)
        assert isinstance(flt, DeflateFilter) or len(destination) - before <= limit
        if result is not FilterResult.OK:
            return bytes(destination), result
    raise AssertionError("the filter never stopped")


def feed(flt: Filter, pieces: Iterable[bytes], *, limit: int = DEFAULT_FILTER_LIMIT) -> bytes:
    """Feed *pieces* one by one (NORMAL), then finish; return everything produced."""
    source = Buffer()
    out = b""
    for piece in pieces:
        source.add(piece)
        produced, result = run_filter(flt, source, FlushMode.NORMAL, limit=limit)
        assert result is FilterResult.NEED_MORE
        out += produced
    produced, result = run_filter(flt, source, FlushMode.FINISHED, limit=limit)
    assert result is FilterResult.NEED_MORE
    assert not source
    return out + produced


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def check_whole_and_bytewise(make: Callable[[], Filter], data: bytes, expected: bytes) -> None:
    """The first two of the three ways: all of *data* at once, then one byte at a time
    with a limit of 1 (the third, trailing bytes, is each filter's own)."""
    assert feed(make(), [data]) == expected
    assert feed(make(), one_byte_at_a_time(data), limit=1) == expected


TEXT = b"".join(b"%d bottles of beer on the wall\n" % i for i in range(300))


@pytest.mark.parametrize("fmt", ["zlib", "gzip", "raw"])
def test_InflateFilter_three_ways(fmt: str) -> None:
    wbits = {"zlib": 15, "gzip": 31, "raw": -15}[fmt]
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    compressed = compressor.compress(TEXT) + compressor.flush()
    check_whole_and_bytewise(lambda: InflateFilter(format=fmt), compressed, TEXT)  # type: ignore[arg-type]
    # Trailing bytes stay put: the stream's data comes out, then ERROR, "tail" untouched.
    inflate = InflateFilter(format=fmt)  # type: ignore[arg-type]
    source = Buffer(compressed + b"tail")
    produced, result = run_filter(inflate, source, FlushMode.NORMAL)
    assert (produced, result) == (TEXT, FilterResult.ERROR)
    assert bytes(source) == b"tail"
    assert inflate.finished
    assert inflate.error == "4 bytes after the end of the compressed stream"


def test_InflateFilter_auto_detects_zlib_and_gzip() -> None:
    assert feed(InflateFilter(format="auto"), [zlib.compress(TEXT)]) == TEXT
    assert feed(InflateFilter(format="auto"), [gzip.compress(TEXT)]) == TEXT


def test_InflateFilter_errors() -> None:
    inflate = InflateFilter()
    produced, result = run_filter(inflate, Buffer(b"not zlib at all"), FlushMode.NORMAL)
    assert (produced, result) == (b"", FilterResult.ERROR)
    assert inflate.error is not None
    assert inflate.error.startswith("corrupt compressed data")
    # Cut short: fine while more may come, an error once the input is finished.
    truncated = Buffer(zlib.compress(TEXT)[:-10])
    inflate = InflateFilter()
    produced, result = run_filter(inflate, truncated, FlushMode.NORMAL)
    assert result is FilterResult.NEED_MORE
    assert run_filter(inflate, truncated, FlushMode.FINISHED)[1] is FilterResult.ERROR
    assert inflate.error == "the compressed stream was cut short"
    # No input at all is an empty stream, not a truncated one.
    assert run_filter(InflateFilter(), Buffer(), FlushMode.FINISHED) == (
        b"",
        FilterResult.NEED_MORE,
    )
    with pytest.raises(ValueError, match="format must be one of"):
        InflateFilter(format="lzma")  # type: ignore[arg-type]


def test_DeflateFilter_modes_against_plain_zlib() -> None:
    deflate = DeflateFilter(level=9)
    peer = zlib.decompressobj()
    source = Buffer(TEXT)
    out, result = run_filter(deflate, source, FlushMode.NORMAL)
    assert result is FilterResult.NEED_MORE
    seen = peer.decompress(out)
    assert len(seen) < len(TEXT)  # zlib holds some back in NORMAL
    out, _ = run_filter(deflate, source, FlushMode.FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")  # the sync flush marker
    assert seen + peer.decompress(out) == TEXT  # everything so far decodes
    assert run_filter(deflate, source, FlushMode.FLUSH) == (b"", FilterResult.NEED_MORE)
    out, _ = run_filter(deflate, source, FlushMode.FINISHED)
    peer.decompress(out)
    assert peer.eof
    assert deflate.finished
    assert run_filter(deflate, source, FlushMode.FINISHED) == (b"", FilterResult.NEED_MORE)
    source.add(b"after the end")
    assert run_filter(deflate, source, FlushMode.NORMAL)[1] is FilterResult.ERROR
    assert deflate.error == "13 bytes to compress after the end of the stream"


@pytest.mark.parametrize("fmt", ["zlib", "gzip", "raw"])
def test_DeflateFilter_formats_decode_with_the_stdlib(fmt: str) -> None:
    compressed = feed(DeflateFilter(format=fmt), [TEXT[:100], TEXT[100:]])  # type: ignore[arg-type]
    decoded = {
        "zlib": zlib.decompress,
        "gzip": gzip.decompress,
        "raw": lambda data: zlib.decompress(data, -15),
    }[fmt](compressed)
    assert decoded == TEXT
    assert repr(DeflateFilter(format=fmt)) == f"DeflateFilter(level=-1, format={fmt!r})"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level must be between"):
        DeflateFilter(level=10)


def test_DeflateFilter_respects_the_limit_on_input() -> None:
    data = random.Random(5).randbytes(100_000)  # incompressible: output ~ input
    deflate = DeflateFilter(level=1)
    source = Buffer(data)
    destination = Buffer()
    assert deflate(source, destination, 10_000, FlushMode.NORMAL) is FilterResult.OK
    assert len(source) == 90_000  # it took no more input than the limit
    assert len(destination) <= 10_000 + 64


def test_CRLFToLFFilter_three_ways() -> None:
    wire = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody\rwith a lone CR\n\r"
    expected = b"GET / HTTP/1.1\nHost: x\n\nbody\rwith a lone CR\n\r"
    check_whole_and_bytewise(CRLFToLFFilter, wire, expected)
    # Trailing bytes: a CR at the end of what arrived stays put until the next byte.
    crlf = CRLFToLFFilter()
    source = Buffer(b"line\r")
    assert run_filter(crlf, source, FlushMode.NORMAL) == (b"line", FilterResult.NEED_MORE)
    assert run_filter(crlf, source, FlushMode.FLUSH) == (b"", FilterResult.NEED_MORE)
    assert bytes(source) == b"\r"
    source.add(b"\nnext")
    assert run_filter(crlf, source, FlushMode.NORMAL) == (b"\nnext", FilterResult.NEED_MORE)
    source.add(b"\r")
    assert run_filter(crlf, source, FlushMode.FINISHED) == (b"\r", FilterResult.NEED_MORE)


def test_LFToCRLFFilter_three_ways() -> None:
    text = b"one\ntwo\r\n\nthree"
    expected = b"one\r\ntwo\r\r\n\r\nthree"
    check_whole_and_bytewise(LFToCRLFFilter, text, expected)
    # No trailing bytes are ever held back; a limit of 1 splits a CRLF across two calls.
    lf = LFToCRLFFilter()
    source, destination = Buffer(b"\nx"), Buffer()
    assert lf(source, destination, 1, FlushMode.NORMAL) is FilterResult.OK
    assert (bytes(destination), bytes(source)) == (b"\r", b"\nx")
    assert lf(source, destination, 1, FlushMode.NORMAL) is FilterResult.OK
    assert (bytes(destination), bytes(source)) == (b"\r\n", b"x")
    out, _ = run_filter(lf, Buffer(b"\n\n\n\nabc"), FlushMode.NORMAL, limit=3)
    assert out == b"\r\n\r\n\r\n\r\nabc"
    assert repr(lf) == "LFToCRLFFilter()"
    assert repr(CRLFToLFFilter()) == "CRLFToLFFilter()"


# ---------------------------------------------------------------------- Hypothesis round trips


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


CRLF_TEXT = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"bc"]), max_size=200).map(
    b"".join
)


@given(CRLF_TEXT, st.lists(st.integers(0, 10_000), max_size=20), st.integers(1, 50))
def test_CRLFToLFFilter_any_split(data: bytes, cuts: list[int], limit: int) -> None:
    pieces = split(data, cuts)
    assert feed(CRLFToLFFilter(), pieces, limit=limit) == data.replace(b"\r\n", b"\n")


@given(CRLF_TEXT, st.lists(st.integers(0, 10_000), max_size=20), st.integers(1, 50))
def test_line_ending_filters_round_trip(data: bytes, cuts: list[int], limit: int) -> None:
    encoded = feed(LFToCRLFFilter(), split(data, cuts), limit=limit)
    assert encoded.count(b"\n") == encoded.count(b"\r\n")  # every LF has its CR
    assert feed(CRLFToLFFilter(), split(encoded, cuts), limit=limit) == data


@given(
    st.binary(max_size=5000) | CRLF_TEXT,
    st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=10),
    st.integers(1, 4096),
    st.sampled_from(["zlib", "gzip", "raw"]),
)
def test_zlib_filters_round_trip(
    data: bytes, cuts: list[tuple[int, bool]], limit: int, fmt: str
) -> None:
    """Deflate in random pieces, with a FLUSH after some: after each FLUSH a plain
    zlib decompressor has everything so far; inflate, fed in pieces, restores it all."""
    wbits = {"zlib": 15, "gzip": 31, "raw": -15}[fmt]
    deflate, inflate = DeflateFilter(format=fmt), InflateFilter(format=fmt)  # type: ignore[arg-type]
    peer = zlib.decompressobj(wbits)
    flushes = [flush for _, flush in cuts]
    source = Buffer()
    compressed = decoded = b""
    sent = 0
    for index, piece in enumerate(split(data, [cut for cut, _ in cuts])):
        source.add(piece)
        sent += len(piece)
        flush = index < len(flushes) and flushes[index]
        out, _ = run_filter(
            deflate, source, FlushMode.FLUSH if flush else FlushMode.NORMAL, limit=limit
        )
        compressed += out
        decoded += peer.decompress(out)
        if flush:
            assert decoded == data[:sent]
    out, _ = run_filter(deflate, source, FlushMode.FINISHED, limit=limit)
    compressed += out
    assert decoded + peer.decompress(out) == data
    assert peer.eof
    assert feed(inflate, split(compressed, [cut for cut, _ in cuts]), limit=limit) == data
