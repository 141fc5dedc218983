"""Rate limits: the sans-IO accounting with exact numbers, Trio conformance, then the
streams and groups under a MockClock (exact bytes per tick), and one real-socket run."""

from __future__ import annotations

import dataclasses
import math
import random
import socket
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from helpers import NotHalfCloseable
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_ratelimit import measure_group_accuracy
from evtrio import RateLimitGroupError
from evtrio.streams._socket import wrap_socket
from evtrio.streams.buffered import BufferedStream
from evtrio.streams.flush import FlushMode
from evtrio.streams.ratelimit import (
    RATE_LIMIT_MAX,
    HalfCloseableRateLimitedStream,
    RateLimitedStream,
    RateLimitGroup,
    TokenBucketConfig,
    _GroupCore,
    _tick_index,
    _TokenBucket,
)

if TYPE_CHECKING:
    from collections.abc import Callable

READ, WRITE = 0, 1


def config(rate: int, burst: int | None = None, tick: float = 1.0) -> TokenBucketConfig:
    """The same rate and burst in both directions."""
    burst = rate if burst is None else burst
    return TokenBucketConfig(rate, burst, rate, burst, tick)


FAR_ABOVE = config(1 << 40)
"""A limit far above any load in these tests."""


# ---------------------------------------------------------------------- configuration


def test_TokenBucketConfig_fields_and_defaults() -> None:
    cfg = TokenBucketConfig(100, 300, 50, 60)
    assert (cfg.read_rate, cfg.read_burst, cfg.write_rate, cfg.write_burst) == (100, 300, 50, 60)
    assert cfg.tick == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.read_rate = 5  # type: ignore[misc]
    assert TokenBucketConfig(1, 1, 1, 1, tick=0.001).tick == 0.001


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0, 10, 1, 1), ValueError, "read_rate must be between 1 and"),
        ((10, 9, 1, 1), ValueError, "read_burst must be between 10 and"),
        ((1, 1, 0, 1), ValueError, "write_rate must be between 1"),
        ((1, 1, 5, 4), ValueError, "write_burst must be between 5"),
        ((1, RATE_LIMIT_MAX + 1, 1, 1), ValueError, "read_burst must be between"),
        ((1.5, 2, 1, 1), TypeError, "read_rate must be an int, not float"),
        ((True, 2, 1, 1), TypeError, "read_rate must be an int, not bool"),
        ((1, 1, 1, 1, 0.0009), ValueError, "tick must be a finite number of seconds >= 0.001"),
        ((1, 1, 1, 1, math.inf), ValueError, "tick must be a finite"),
        ((1, 1, 1, 1, math.nan), ValueError, "tick must be a finite"),
        ((1, 1, 1, 1, "1"), TypeError, "tick must be a number of seconds, not str"),
    ],
)
def test_TokenBucketConfig_validation(
    args: tuple[object, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        TokenBucketConfig(*args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- sans-IO: one bucket


def test_TokenBucket_starts_with_one_tick_and_refills_by_whole_ticks() -> None:
    bucket = _TokenBucket(TokenBucketConfig(100, 250, 10, 10, tick=0.25), now=10.1)
    assert bucket.tokens(READ, 10.1) == 100  # one tick of tokens to start with
    bucket.consume(READ, 80)
    assert bucket.tokens(READ, 10.2499) == 20  # still tick 40: nothing added
    assert bucket.tokens(READ, 10.25) == 120  # tick 41 started
    assert bucket.tokens(READ, 10.74) == 220  # tick 42
    assert bucket.tokens(READ, 10.75) == 250  # tick 43: capped at the burst
    assert bucket.tokens(WRITE, 10.75) == 10  # the write bucket never went above its burst
    bucket.consume(WRITE, 10)
    assert bucket.tokens(WRITE, 11.0) == 10  # one tick later, one tick of tokens


def test_TokenBucket_negative_after_consume_and_refills_from_there() -> None:
    bucket = _TokenBucket(config(100, 300), now=0.0)
    bucket.consume(WRITE, 350)
    assert bucket.tokens(WRITE, 0.5) == -250
    assert bucket.tokens(WRITE, 2.0) == -50  # two ticks of 100
    assert bucket.tokens(WRITE, 3.0) == 50
    bucket.consume(WRITE, -1000)  # a negative amount adds tokens, past the burst even
    assert bucket.tokens(WRITE, 3.5) == 1050
    assert bucket.tokens(WRITE, 4.0) == 300  # the next refill clips to the burst


def test_TokenBucket_ignores_a_clock_going_back() -> None:
    bucket = _TokenBucket(config(100), now=5.0)
    bucket.consume(READ, 100)
    assert bucket.tokens(READ, 3.0) == 0
    assert bucket.tokens(READ, 5.9) == 0
    assert bucket.tokens(READ, 6.0) == 100


def test_TokenBucket_reconfigure_only_clips_down() -> None:
    bucket = _TokenBucket(config(100, 500), now=0.0)
    assert bucket.tokens(READ, 4.0) == 500
    bucket.consume(WRITE, 50)
    bucket.reconfigure(config(10, 200), now=4.5)
    assert bucket.tokens(READ, 4.5) == 200  # clipped to the new burst
    assert bucket.tokens(WRITE, 4.5) == 200  # 450 clipped too
    bucket.reconfigure(config(1000, 5000), now=4.6)
    assert bucket.tokens(READ, 4.6) == 200  # a bigger burst adds nothing this tick
    assert bucket.tokens(READ, 5.0) == 1200  # the new rate from the next tick
    bucket.reconfigure(config(1000, 5000, tick=0.25), now=5.1)  # a new tick length
    assert bucket.tokens(READ, 5.1) == 1200
    assert bucket.tokens(READ, 5.25) == 2200


@given(
    now=st.floats(min_value=-1e7, max_value=1e7, allow_nan=False),
    tick=st.floats(min_value=0.001, max_value=1000),
)
def test_TokenBucket_next_refill_is_the_next_tick(now: float, tick: float) -> None:
    bucket = _TokenBucket(TokenBucketConfig(1, 1, 1, 1, tick), now)
    refill = bucket.next_refill(now)
    assert refill > now
    assert _tick_index(refill, tick) == _tick_index(now, tick) + 1


# ---------------------------------------------------------------------- sans-IO: groups


def group_core(
    rate: int = 300, members: int = 3, *, burst: int | None = None, **options: object
) -> _GroupCore[str]:
    core: _GroupCore[str] = _GroupCore(config(rate, burst), 0.0, **options)  # type: ignore[arg-type]
    for index in range(members):
        core.add(f"m{index}")
    return core


def test_GroupCore_grant_rule_shares_the_bucket_and_overdraws_on_the_last_grant() -> None:
    core = group_core(300, 3, min_share=0)
    assert core.acquire(WRITE, "m0", 0.0) == 100  # ceil(300 / 3)
    assert core.acquire(WRITE, "m0", 0.0) == 100  # the same grant until released
    core.release(WRITE, "m0", 100)
    assert core.acquire(WRITE, "m1", 0.0) == 67  # ceil(200 / 3)
    core.release(WRITE, "m1", 30)  # used less: the rest returns
    assert core.available(WRITE) == 170
    assert core.acquire(WRITE, "m2", 0.0) == 57
    assert core.acquire(WRITE, "m0", 0.0) == 38  # ceil(113 / 3)
    assert core.acquire(WRITE, "m1", 0.0) == 25
    assert core.acquire(WRITE, "m0", 0.0) == 38  # still holds its grant
    core.release(WRITE, "m2", 57)
    core.release(WRITE, "m0", 38)
    core.release(WRITE, "m1", 25)
    assert core.bucket.tokens(WRITE, 0.0) == 50
    # The read side is untouched.
    assert core.bucket.tokens(READ, 0.0) == 300


def test_GroupCore_min_share_is_the_smallest_grant_and_may_overdraw() -> None:
    core = group_core(1000, 100)  # default min_share: 64
    grants = [core.acquire(WRITE, f"m{i}", 0.0) for i in range(17)]
    assert grants == [64] * 16 + [0]  # 16 x 64 = 1024: the bucket went to -24
    assert core.available(WRITE) == -24
    assert core.sides[WRITE].suspended
    assert core.sides[WRITE].waiting == {"m16"}


def test_GroupCore_min_share_is_clipped_to_the_rate() -> None:
    core = group_core(50, 10, min_share=64)
    assert core.effective_min_share(READ) == 50
    assert core.acquire(READ, "m0", 0.0) == 50
    assert core.acquire(READ, "m1", 0.0) == 0  # 50 - 50: suspended
    core.release(READ, "m0", 50)
    assert core.sides[READ].newly_granted == []
    core.update(1.0)  # refilled to 50 >= the clipped min_share: resumed, m1 served
    assert core.take_granted(READ) == ["m1"]
    assert core.acquire(READ, "m1", 1.0) == 50


def test_GroupCore_resumes_after_a_refill_only_with_min_share_available() -> None:
    core = group_core(100, 2, burst=100, min_share=64)
    assert core.acquire(WRITE, "m0", 0.0) == 64
    core.release(WRITE, "m0", 64)
    assert core.acquire(WRITE, "m1", 0.0) == 64
    core.release(WRITE, "m1", 64)  # bucket -28: suspended
    assert core.acquire(WRITE, "m0", 0.0) == 0
    core.update(1.0)  # -28 + 100 = 72 >= 64: resumed
    assert core.take_granted(WRITE) == ["m0"]
    core.release(WRITE, "m0", 72)  # 0 left
    core.decrement(WRITE, 40)  # -40
    assert core.acquire(WRITE, "m1", 1.0) == 0
    core.update(2.0)  # 60 < 64: still suspended
    assert core.take_granted(WRITE) == []
    assert core.sides[WRITE].suspended
    core.update(3.0)  # 100 (the burst)
    assert core.take_granted(WRITE) == ["m1"]


def test_GroupCore_decrement_suspends_and_resumes_at_once() -> None:
    core = group_core(100, 2, min_share=64)
    core.decrement(READ, 150)
    assert core.bucket.tokens(READ, 0.0) == -50
    assert core.acquire(READ, "m0", 0.0) == 0
    assert core.acquire(READ, "m1", 0.0) == 0
    core.decrement(READ, -51)  # a negative decrement adds: 1 token, enough to resume
    assert core.take_granted(READ) == ["m0"]  # served first; its grant spends the bucket
    assert core.acquire(READ, "m0", 0.0) == 64
    assert core.sides[READ].waiting == {"m1"}


def run_rounds(core: _GroupCore[str], ticks: int) -> list[list[str]]:
    """Every member sends its whole grant each tick, then asks again; who was served."""
    side = core.sides[WRITE]
    served = []
    for tick in range(ticks):
        now = float(tick)
        core.update(now)
        this_tick = core.take_granted(WRITE)
        for member in core.members:
            if member not in this_tick and core.acquire(WRITE, member, now):
                this_tick.append(member)  # granted at once (the first tick)
        served.append(this_tick)
        for member, grant in list(side.granted.items()):
            core.release(WRITE, member, grant)
        for member in core.members:
            assert core.acquire(WRITE, member, now) == 0  # spent: wait for the next tick
    return served


def test_GroupCore_rounds_are_round_robin_in_member_order() -> None:
    core = group_core(1000, 100)  # 64-byte grants; the last one of a tick overdraws
    served = run_rounds(core, 8)
    # Bucket: 1000 -> -24, 976 -> -48, 952 -> -8, 992 -> -32, 968 -> -56, 944 -> -16, ...
    assert [len(tick) for tick in served] == [16, 16, 15, 16, 16, 15, 16, 15]
    assert core.bucket.tokens(WRITE, 7.0) == 0
    flat = [int(member[1:]) for tick in served for member in tick]
    assert flat == [i % 100 for i in range(125)]  # nobody twice before everyone once


def test_GroupCore_random_start_comes_from_the_rng() -> None:
    core = group_core(300, 5, min_share=60, rng=random.Random(7))
    served = run_rounds(core, 6)
    assert served[0] == ["m0", "m1", "m2", "m3", "m4"]  # at once, in the order they asked
    draws = random.Random(7)
    for tick in served[1:]:
        first = draws.randrange(5)
        assert tick == [f"m{(first + i) % 5}" for i in range(5)]


def test_GroupCore_set_config_only_clips_down() -> None:
    core = group_core(100, 2, burst=1000, min_share=0)
    core.update(20.0)
    assert core.bucket.tokens(READ, 20.0) == 1000
    core.set_config(config(10, 300), 20.5)
    assert core.bucket.tokens(READ, 20.5) == 300
    core.set_config(config(10, 5000), 20.6)
    assert core.bucket.tokens(READ, 20.6) == 300
    assert core.bucket.tokens(READ, 21.0) == 310


def test_GroupCore_remove_and_withdraw_return_grants() -> None:
    core = group_core(300, 4, min_share=100)
    for member in ("m0", "m1", "m2", "m3"):
        core.acquire(READ, member, 0.0)
    assert core.sides[READ].reserved == 300
    assert core.sides[READ].waiting == {"m3"}
    assert core.acquire(READ, "m1", 0.0) == 100  # the grant it holds
    core.remove("m0")  # its 100 come back: m3 is served
    assert core.take_granted(READ) == ["m3"]
    assert core.members == ["m1", "m2", "m3"]
    core.withdraw(READ, "m2")
    core.release(READ, "m3", 40)
    assert core.sides[READ].reserved == 100
    assert core.share(READ, 0.0) == 100  # ceil(160 / 3) = 54, raised to min_share
    core.remove("m1")
    assert core.sides[READ].reserved == 0
    assert core.share(READ, 0.0) == 130  # ceil(260 / 2)


# ---------------------------------------------------------------------- conformance


def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = socket.socketpair()
    return wrap_socket(a), wrap_socket(b)


@pytest.mark.parametrize(
    "pair",
    [trio.testing.memory_stream_pair, socket_stream_pair],
    ids=["memory", "socket"],
)
async def test_RateLimitedStream_conforms_with_a_limit_far_above_the_load(
    pair: Callable[[], tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]],
) -> None:
    async def maker() -> tuple[HalfCloseableRateLimitedStream, HalfCloseableRateLimitedStream]:
        a, b = pair()
        return RateLimitedStream(a, FAR_ABOVE), RateLimitedStream(b, FAR_ABOVE)

    async def clogged() -> tuple[HalfCloseableRateLimitedStream, HalfCloseableRateLimitedStream]:
        a, b = trio.testing.lockstep_stream_pair()
        return RateLimitedStream(a, FAR_ABOVE), RateLimitedStream(b, FAR_ABOVE)

    await trio.testing.check_half_closeable_stream(maker, clogged)


@pytest.mark.parametrize("grouped", [False, True], ids=["own-limit", "group"])
async def test_RateLimitedStream_conforms_with_a_tight_limit(
    autojump_clock: trio.testing.MockClock, grouped: bool
) -> None:
    tight = config(8192, 16384, tick=0.01)  # the 2 x 1 MiB duplex check takes 128+ ticks

    def wrap(
        a: trio.abc.HalfCloseableStream, b: trio.abc.HalfCloseableStream
    ) -> tuple[HalfCloseableRateLimitedStream, HalfCloseableRateLimitedStream]:
        if not grouped:
            return RateLimitedStream(a, tight), RateLimitedStream(b, tight)
        group = RateLimitGroup(tight, rng=random.Random(1))
        streams = RateLimitedStream(a), RateLimitedStream(b)
        for stream in streams:
            group.add(stream)
        return streams

    async def maker() -> tuple[HalfCloseableRateLimitedStream, HalfCloseableRateLimitedStream]:
        return wrap(*trio.testing.memory_stream_pair())

    async def clogged() -> tuple[HalfCloseableRateLimitedStream, HalfCloseableRateLimitedStream]:
        return wrap(*trio.testing.lockstep_stream_pair())

    await trio.testing.check_half_closeable_stream(maker, clogged)


async def test_RateLimitedStream_over_a_plain_stream_conforms(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def maker() -> tuple[RateLimitedStream, RateLimitedStream]:
        a, b = trio.testing.memory_stream_pair()
        return (
            RateLimitedStream(NotHalfCloseable(a), config(65536, tick=0.01)),
            RateLimitedStream(NotHalfCloseable(b), config(65536, tick=0.01)),
        )

    async def clogged() -> tuple[RateLimitedStream, RateLimitedStream]:
        a, b = trio.testing.lockstep_stream_pair()
        return RateLimitedStream(NotHalfCloseable(a)), RateLimitedStream(NotHalfCloseable(b))

    await trio.testing.check_two_way_stream(maker, clogged)


async def test_RateLimitedStream_is_half_closeable_exactly_when_its_transport_is() -> None:
    a, _ = trio.testing.memory_stream_pair()
    stream = RateLimitedStream(a, config(10))
    assert type(stream) is HalfCloseableRateLimitedStream
    assert stream.transport_stream is a
    plain = RateLimitedStream(NotHalfCloseable(a))
    assert type(plain) is RateLimitedStream
    assert not isinstance(plain, trio.abc.HalfCloseableStream)
    with pytest.raises(TypeError, match="not half-closeable"):
        HalfCloseableRateLimitedStream(NotHalfCloseable(a))


# ---------------------------------------------------------------------- helpers for timing


class Arrivals:
    """Bytes received per clock value, by a task reading until EOF."""

    def __init__(self) -> None:
        self.at: dict[float, int] = defaultdict(int)
        self.data = bytearray()

    async def collect(self, stream: trio.abc.ReceiveStream, max_bytes: int | None = None) -> None:
        while chunk := await stream.receive_some(max_bytes):
            self.at[trio.current_time()] += len(chunk)
            self.data += chunk

    def per_tick(self) -> list[tuple[float, int]]:
        return sorted(self.at.items())


async def send_then_eof(stream: trio.abc.HalfCloseableStream, data: bytes) -> None:
    await stream.send_all(data)
    await stream.send_eof()


# ---------------------------------------------------------------------- one stream, exact figures


async def test_RateLimitedStream_write_limit_moves_exactly_rate_per_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, config(100))
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)
        await send_then_eof(limited, bytes(range(256)) * 4)
    assert arrivals.per_tick() == [(float(t), 100) for t in range(10)] + [(10.0, 24)]
    assert arrivals.data == bytes(range(256)) * 4
    stats = limited.statistics()
    assert stats.bytes_written == 1024
    assert stats.write_waits == 10
    assert stats.write_limit == 76
    assert stats.read_limit == 100


async def test_RateLimitedStream_read_limit_moves_exactly_rate_per_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(b, TokenBucketConfig(100, 100, 1, 1, tick=0.5))
    await a.send_all(b"r" * 1000)
    await a.send_eof()
    assert await limited.receive_some(30) == b"r" * 30  # max_bytes below the tokens
    assert limited.max_to_read == 70
    arrivals = Arrivals()
    await arrivals.collect(limited)
    assert arrivals.per_tick() == [(0.0, 70)] + [(t * 0.5, 100) for t in range(1, 10)]
    assert trio.current_time() == 5.0  # EOF came with the next tokens, and cost none
    assert limited.statistics().bytes_read == 1000
    assert limited.read_limit == 100


async def test_RateLimitedStream_burst_after_idle_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, config(100, 350))
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)
        await trio.sleep(5.5)  # idle: 100 + 5 x 100, capped at the burst of 350
        assert limited.write_limit == 350
        await send_then_eof(limited, b"b" * 700)
    assert arrivals.per_tick() == [(5.5, 350), (6.0, 100), (7.0, 100), (8.0, 100), (9.0, 50)]


async def test_RateLimitedStream_negative_bucket_after_decrement(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, config(100, 200))
    limited.decrement_write(250)  # e.g. bytes that left by another way
    assert limited.write_limit == -150
    assert limited.max_to_write == 0
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)
        await send_then_eof(limited, b"n" * 300)
    # -150 -> -50 at t=1 -> 50 at t=2 -> 150 at t=3 ...
    assert arrivals.per_tick() == [(2.0, 50), (3.0, 100), (4.0, 100), (5.0, 50)]
    limited.decrement_write(-1000)  # negative: adds tokens
    assert limited.write_limit == 1050
    await trio.sleep(1)
    assert limited.write_limit == 200  # the next refill clips to the burst


async def test_RateLimitedStream_decrement_wakes_a_waiting_reader(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(b, config(10, tick=100.0))
    limited.decrement_read(10)
    await a.send_all(b"abcdef")
    async with trio.open_nursery() as nursery:

        async def give_tokens() -> None:
            await trio.sleep(1)
            limited.decrement_read(-4)

        nursery.start_soon(give_tokens)
        assert await limited.receive_some() == b"abcd"
        assert trio.current_time() == 1.0


async def test_RateLimitedStream_set_config_mid_transfer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, config(100, 100))
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)

        async def reconfigure() -> None:
            await trio.sleep(2.5)
            limited.set_config(config(300, 300))  # faster from the next tick on
            await trio.sleep(2)
            limited.set_config(config(50, 50))  # a smaller burst clips what is left
            await trio.sleep(1)
            limited.set_config(None)  # no limit: the rest goes at once

        nursery.start_soon(reconfigure)
        await send_then_eof(limited, b"c" * 2000)
    assert arrivals.per_tick() == [
        (0.0, 100),
        (1.0, 100),
        (2.0, 100),
        (3.0, 300),
        (4.0, 300),
        (5.0, 50),
        (5.5, 1050),
    ]
    assert limited.read_limit == limited.write_limit == RATE_LIMIT_MAX
    assert limited.max_to_read == RATE_LIMIT_MAX
    with pytest.raises(RuntimeError, match="no rate limit of its own"):
        limited.decrement_read(1)


async def test_RateLimitedStream_limit_set_later_starts_with_one_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, _ = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a)
    await trio.sleep(10)
    limited.set_config(config(64, 1000))
    assert limited.write_limit == 64
    assert limited.config == config(64, 1000)
    with pytest.raises(TypeError, match="amount must be an int"):
        limited.decrement_write(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount must be between"):
        limited.decrement_write(RATE_LIMIT_MAX + 1)


async def test_RateLimitedStream_receive_validates_max_bytes() -> None:
    a, _ = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(a, config(10))
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        await limited.receive_some(0)
    with pytest.raises(TypeError):
        await limited.receive_some(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- cancellation


async def test_RateLimitedStream_cancelled_wait_costs_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(b, config(100, tick=10.0))
    limited.decrement_read(100)
    await a.send_all(b"x" * 50)
    with trio.move_on_after(5):
        await limited.receive_some()
    assert limited.read_limit == 0
    assert limited.statistics().bytes_read == 0
    assert await limited.receive_some() == b"x" * 50  # at t=10, nothing was lost
    assert limited.read_limit == 50


async def test_RateLimitedStream_cancelled_socket_send_charges_exactly_what_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = socket_stream_pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    async with RateLimitedStream(a, config(1 << 30, tick=100.0)) as limited, b:
        with trio.move_on_after(1):
            await limited.send_all(b"s" * (8 << 20))  # more than the kernel buffers hold
        sent = limited.statistics().bytes_written
        assert 0 < sent < 8 << 20
        assert limited.write_limit == (1 << 30) - sent
        await limited.send_eof()
        received = 0
        while chunk := await b.receive_some():
            received += len(chunk)
        assert received == sent


async def test_RateLimitedStream_cancelled_generic_send_charges_the_piece(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, _ = trio.testing.lockstep_stream_pair()  # send_all waits for a receiver
    limited = RateLimitedStream(a, config(1000, tick=100.0))
    with trio.move_on_after(1):
        await limited.send_all(b"p" * 300)
    assert limited.write_limit == 700  # the piece may have left: charged in full


async def test_RateLimitedStream_close_wakes_waiting_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, _ = trio.testing.memory_stream_pair()
    group = RateLimitGroup(config(10, tick=100.0))
    limited = RateLimitedStream(a, config(10, tick=100.0))
    group.add(limited)
    limited.decrement_write(10)
    group.decrement_read(10)

    async def expect_closed(operation: Callable[[], object]) -> None:
        with pytest.raises(trio.ClosedResourceError):
            await operation()  # type: ignore[misc]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(expect_closed, lambda: limited.send_all(b"x"))
        nursery.start_soon(expect_closed, lambda: limited.receive_some(5))
        await trio.testing.wait_all_tasks_blocked()
        assert group.statistics().tasks_waiting_to_read == 1
        await limited.aclose()
    assert trio.current_time() == 0.0
    assert limited.group is None
    assert group.members == ()
    assert group.statistics().tasks_waiting_to_read == 0
    await limited.aclose()  # idempotent


# ---------------------------------------------------------------------- flush


async def test_RateLimitedStream_flush_passes_through() -> None:
    a, b = trio.testing.memory_stream_pair()
    limited = RateLimitedStream(BufferedStream(a, write_high=1024), config(1000))
    await limited.flush(FlushMode.NORMAL)
    await limited.send_all(b"hello")
    await limited.flush(FlushMode.FINISHED)  # BufferedStream flushes, then sends EOF
    assert await b.receive_some() == b"hello"
    assert await b.receive_some() == b""
    with pytest.raises(trio.ClosedResourceError, match="send_eof"):
        await limited.send_all(b"more")

    c, d = trio.testing.memory_stream_pair()
    direct = RateLimitedStream(c, config(1000))
    await direct.flush()
    await direct.flush(FlushMode.FINISHED)  # no flush below: send_eof
    assert await d.receive_some() == b""

    plain = RateLimitedStream(NotHalfCloseable(trio.testing.memory_stream_pair()[0]))
    with pytest.raises(TypeError, match="cannot half-close or flush"):
        await plain.flush(FlushMode.FINISHED)
    await plain.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await plain.flush()


async def test_BufferedStream_over_RateLimitedStream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    buffered = BufferedStream(RateLimitedStream(a, config(100)), write_high=4096)
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)
        buffered.write(b"w" * 250)
        await buffered.flush(FlushMode.FINISHED)
    assert arrivals.per_tick() == [(0.0, 100), (1.0, 100), (2.0, 50)]


# ---------------------------------------------------------------------- groups


async def open_group_senders(
    nursery: trio.Nursery,
    group: RateLimitGroup,
    count: int,
    *,
    own: TokenBucketConfig | None = None,
    start: float = 0.0,
) -> list[int]:
    """*count* members of *group*, each sending without end; returns the bytes each
    receiver got from *start* seconds on (the list fills in as they arrive)."""
    received = [0] * count
    start += trio.current_time()
    for index in range(count):
        a, b = trio.testing.memory_stream_pair()
        stream = RateLimitedStream(a, own)
        group.add(stream)

        async def send(stream: RateLimitedStream = stream) -> None:
            while True:
                await stream.send_all(b"g" * 65536)

        async def receive(b: trio.abc.ReceiveStream = b, index: int = index) -> None:
            while True:
                chunk = await b.receive_some()
                if trio.current_time() >= start:
                    received[index] += len(chunk)

        nursery.start_soon(send)
        nursery.start_soon(receive)
    return received


async def test_RateLimitGroup_three_streams_share_the_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(1000, 2000, tick=0.5))
    async with trio.open_nursery() as nursery:
        received = await open_group_senders(nursery, group, 3, start=1.0)
        await trio.sleep(1.0)
        group.reset_totals()
        await trio.sleep(10.0 - 1e-9)  # ticks at 1.0, 1.5, ..., 10.5: 20 ticks
        nursery.cancel_scope.cancel()
    assert abs(sum(received) - 20_000) <= 3  # a grant rounded up may overdraw a byte
    assert group.totals() == (0, sum(received))
    for got in received:
        assert abs(got - 20_000 / 3) <= 0.05 * 20_000 / 3
    assert max(received) - min(received) <= 3  # in fact: one byte of rounding a tick


async def test_RateLimitGroup_min_share_with_100_members(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(1000, 1000))
    assert group.min_share == 64
    async with trio.open_nursery() as nursery:
        received = await open_group_senders(nursery, group, 100, start=1.0)
        await trio.sleep(7.5)
        nursery.cancel_scope.cancel()
    assert group.totals() == (0, 8000)  # ticks 0..7: 125 grants of 64 (see the core test)
    assert group.write_limit == 0
    # Ticks 1..7 served 109 members in turn, 64 bytes each: round-robin means nobody
    # was served twice before everyone was served once.
    assert sum(received) == 109 * 64
    assert sorted(received) == [64] * 91 + [128] * 9


async def test_RateLimitGroup_without_min_share_100_members_get_tiny_grants(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(1000, 1000), min_share=0)
    async with trio.open_nursery() as nursery:
        received = await open_group_senders(nursery, group, 100, start=2.0)
        await trio.sleep(4.5)  # ticks 2, 3, 4: 10 bytes per member each
        nursery.cancel_scope.cancel()
    assert received == [30] * 100


async def drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some():
        pass


async def send_order(group: RateLimitGroup, members: int, seconds: float) -> list[int]:
    """*members* new members of *group* send 100 bytes at a time for *seconds*; which
    member finished each send, in order."""
    order: list[int] = []
    async with trio.open_nursery() as nursery:
        for index in range(members):
            a, b = trio.testing.memory_stream_pair()
            stream = RateLimitedStream(a)
            group.add(stream)

            async def send(stream: RateLimitedStream = stream, index: int = index) -> None:
                while True:
                    await stream.send_all(b"o" * 100)
                    order.append(index)

            nursery.start_soon(send)
            nursery.start_soon(drain, b)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return order


async def test_RateLimitGroup_fair_order_from_the_rng(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 4 members, 100 B per tick, min_share 100: one member per tick, drawn by the rng.
    group = RateLimitGroup(config(100), min_share=100, rng=random.Random(42))
    order = await send_order(group, 4, 8.5)
    draws = random.Random(42)
    expected = [draws.randrange(4) for _ in range(8)]
    assert order[1:] == expected  # tick 0 went at once to the first member to ask


async def test_RateLimitGroup_round_robin_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order = await send_order(RateLimitGroup(config(100), min_share=100), 3, 9.5)
    first, rest = order[0], order[1:]
    assert rest == [(first + 1 + i) % 3 for i in range(9)]


async def test_RateLimitGroup_set_config_mid_transfer_clips_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(300, 3000), min_share=0)  # no overdraw: exact figures
    async with trio.open_nursery() as nursery:
        await trio.sleep(20)  # the idle bucket fills to its burst
        assert group.write_limit == 3000
        group.set_config(config(300, 600))
        assert group.write_limit == 600
        received = await open_group_senders(nursery, group, 2)
        await trio.sleep(0.5)
        assert group.totals() == (0, 600)  # t=20: the clipped bucket
        await trio.sleep(1)
        assert group.totals() == (0, 900)  # t=21: one tick of 300
        group.set_config(config(100, 100))
        await trio.sleep(1)
        assert group.totals() == (0, 1000)  # t=22: the new rate
        nursery.cancel_scope.cancel()
    assert sum(received) == 1000


async def test_RateLimitGroup_with_own_limits_the_own_limit_binds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(1000), min_share=0)
    async with trio.open_nursery() as nursery:
        received = await open_group_senders(nursery, group, 2, own=config(100), start=1.0)
        await trio.sleep(4.5)  # ticks 1..4
        nursery.cancel_scope.cancel()
    assert received == [400, 400]  # each stream's own 100 B/tick binds


async def test_RateLimitGroup_with_own_limits_the_group_binds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(100), min_share=0)
    async with trio.open_nursery() as nursery:
        received = await open_group_senders(nursery, group, 2, own=config(1000), start=1.0)
        await trio.sleep(4.5)
        nursery.cancel_scope.cancel()
    assert received == [200, 200]  # the group's 100 B/tick binds


async def test_RateLimitGroup_decrement_and_limits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(TokenBucketConfig(100, 100, 50, 50))
    assert (group.read_limit, group.write_limit) == (100, 50)
    group.decrement_write(170)
    assert group.write_limit == -120
    a, b = trio.testing.memory_stream_pair()
    stream = RateLimitedStream(a)
    group.add(stream)
    assert stream.max_to_write == 0
    assert stream.max_to_read == 100  # ceil(100 / 1), above min_share
    arrivals = Arrivals()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(arrivals.collect, b)

        async def give_back() -> None:
            await trio.sleep(1.5)
            group.decrement_write(-90)  # -70 + 90 = 20 > 0: resumes at once

        nursery.start_soon(give_back)
        await send_then_eof(stream, b"d" * 200)
    # A decrement resumes the group as soon as it is positive, and the grant is at least
    # min_share (64, clipped to the write rate: 50), so the bucket goes to -30; a refill
    # resumes it only with min_share available: not at t=2 (20), at t=3 (50, the burst).
    assert arrivals.per_tick() == [(1.5, 50), (3.0, 50), (4.0, 50), (5.0, 50)]
    stats = group.statistics()
    assert stats.members == 1
    assert stats.total_written == 200
    assert stats.borrowed_write_tokens == 0
    assert stats.tasks_waiting_to_write == 0
    assert stats.config == group.config


async def test_RateLimitGroup_idle_readers_do_not_hold_back_an_active_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(1100), min_share=0)
    idle = []
    for _ in range(10):
        a, _ = trio.testing.memory_stream_pair()
        stream = RateLimitedStream(a)
        group.add(stream)
        idle.append(stream)
    busy_sender, busy_receiver = trio.testing.memory_stream_pair()
    busy = RateLimitedStream(busy_receiver)
    group.add(busy)
    got = Arrivals()
    async with trio.open_nursery() as nursery:
        for stream in idle:
            nursery.start_soon(stream.receive_some)  # blocks, holding a grant
        await trio.testing.wait_all_tasks_blocked()
        # Ten grants of ceil(available / 11): 100, 91, 83, 76, 69, 62, 57, 52, 47, 43.
        assert group.statistics().borrowed_read_tokens == 680
        await busy_sender.send_all(b"r" * 100_000)
        nursery.start_soon(got.collect, busy)
        await trio.sleep(5.5)
        assert group.statistics().borrowed_read_tokens == 0  # they expired at t=1
        nursery.cancel_scope.cancel()
    # From the second tick on the active member reads the whole rate, in shrinking
    # pieces of ceil(available / 11) each.
    per_tick = defaultdict(int)
    for when, size in got.per_tick():
        per_tick[math.floor(when)] += size
    assert [per_tick[tick] for tick in range(1, 6)] == [1100] * 5


async def test_RateLimitGroup_membership_errors() -> None:
    group = RateLimitGroup(config(100))
    other = RateLimitGroup(config(100))
    a, _ = trio.testing.memory_stream_pair()
    stream = RateLimitedStream(a)
    group.add(stream)
    with pytest.raises(RateLimitGroupError, match="already in this group") as info:
        group.add(stream)
    assert info.value.stream is stream
    assert info.value.group is group
    with pytest.raises(RateLimitGroupError, match="already in another group"):
        other.add(stream)
    with pytest.raises(RateLimitGroupError, match="not in this group") as info:
        other.remove(stream)
    assert info.value.group is group
    group.remove(stream)
    other.add(stream)
    assert stream.group is other
    assert other.members == (stream,)
    with pytest.raises(TypeError, match="only a RateLimitedStream"):
        group.add(a)  # type: ignore[arg-type]
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        group.add(stream)
    with pytest.raises(ValueError, match="min_share must be between 0"):
        RateLimitGroup(config(1), min_share=-1)
    with pytest.raises(ValueError, match="min_share must be between 0"):
        group.set_min_share(-5)
    with pytest.raises(TypeError, match="config must be a TokenBucketConfig"):
        group.set_config(None)  # type: ignore[arg-type]
    group.set_min_share(0)
    assert group.min_share == 0
    assert "members=0" in repr(group)


async def test_RateLimitGroup_cancelled_member_returns_its_grant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = RateLimitGroup(config(300), min_share=100)
    streams = []
    for _ in range(3):
        a, _ = trio.testing.lockstep_stream_pair()  # sends block: grants stay borrowed
        stream = RateLimitedStream(a)
        group.add(stream)
        streams.append(stream)
    with trio.move_on_after(1.5):
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(stream.send_all, b"z" * 1000)
            await trio.testing.wait_all_tasks_blocked()
            stats = group.statistics()
            assert stats.borrowed_write_tokens == 300
    stats = group.statistics()
    assert stats.borrowed_write_tokens == 0
    assert stats.tasks_waiting_to_write == 0
    assert stats.total_written == 300  # the interrupted pieces are charged in full


# ---------------------------------------------------------------------- a real network


async def test_RateLimitGroup_accuracy_over_real_sockets() -> None:
    """What the receivers get in a steady 3 s window is within 10% in total, and within
    25% for each of 20 connections, of the group's rate (tick 0.05 s, burst 2x rate)."""
    connections, tick, rate, window = 20, 0.05, 50_000, 3.0  # 1 MB/s in all
    with trio.fail_after(60):
        received = await measure_group_accuracy(
            connections=connections, tick=tick, rate=rate, warmup=0.5, window=window
        )
    expected = rate * window / tick
    fair = expected / connections
    assert abs(sum(received) - expected) <= 0.10 * expected, (sum(received), expected)
    assert max(abs(got - fair) for got in received) <= 0.25 * fair, (received, fair)
