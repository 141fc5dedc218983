"""Stream wrappers against their bare transport: one-way throughput at 64 KiB writes.

One table, one run. Each row is a :class:`Case`: a maker of a (sender, receiver) pair
and the row it is compared with. The filter rows wrap a real socketpair (the bare
``trio.SocketStream`` row is their baseline); the pair rows are in-memory transports,
compared with the socketpair and with Trio's ``memory_stream_pair``. More wrappers (a
rate limit far above the load, TLS) are more entries in ``CASES``.

Goal: a passthrough wrapper costs less than 10% of the throughput at 64 KiB writes.

Run: ``python -m benchmarks bench_wrappers``, or ``python -m benchmarks.bench_wrappers
--repeat N`` (default 5; the best run of each case counts).
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio.testing

from evtrio.streams.filter import DeflateFilter, FilterStream, InflateFilter
from evtrio.streams.pair import open_stream_pair

from ._report import best_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

WRITE_SIZE = 64 * 1024
MiB = 1 << 20


def _text_block() -> bytes:
    """64 KiB of word soup: compresses about 3:1, like protocol text."""
    rng = random.Random(0)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)
    ]
    text = b" ".join(rng.choices(words, k=WRITE_SIZE // 4))
    return text[:WRITE_SIZE]


TEXT = _text_block()
RANDOM = random.Random(1).randbytes(WRITE_SIZE)

Streams = tuple[trio.abc.Stream, trio.abc.Stream]


@dataclass(frozen=True, slots=True)
class Case:
    """One row: how to make the (sender, receiver) pair, and what to compare with.

    ``passthrough`` marks a wrapper that transforms nothing: the 10% goal applies.
    """

    name: str
    make: Callable[[], Awaitable[Streams]]
    baseline: str | None = None
    payload: bytes = TEXT
    total: int = 256 * MiB
    passthrough: bool = False


async def _socketpair() -> Streams:
    a, b = socket.socketpair()
    return (
        trio.SocketStream(trio.socket.from_stdlib_socket(a)),
        trio.SocketStream(trio.socket.from_stdlib_socket(b)),
    )


async def _passthrough_over_socketpair() -> Streams:
    a, b = await _socketpair()
    return FilterStream(a), FilterStream(b)


async def _zlib_over_socketpair(level: int = -1) -> Streams:
    a, b = await _socketpair()
    return (
        FilterStream(a, output_filter=DeflateFilter(level=level)),
        FilterStream(b, input_filter=InflateFilter()),
    )


async def _zlib_level_1_over_socketpair() -> Streams:
    return await _zlib_over_socketpair(1)


async def _evtrio_pair() -> Streams:
    return open_stream_pair()


async def _trio_memory_pair() -> Streams:
    return trio.testing.memory_stream_pair()


async def _passthrough_over_evtrio_pair() -> Streams:
    a, b = open_stream_pair()
    return FilterStream(a), FilterStream(b)


BARE = "socketpair (trio.SocketStream)"
CASES: list[Case] = [
    Case(BARE, _socketpair),
    Case("FilterStream, no filters", _passthrough_over_socketpair, BARE, passthrough=True),
    Case("FilterStream, zlib, text", _zlib_over_socketpair, BARE, total=64 * MiB),
    Case("FilterStream, zlib, random", _zlib_over_socketpair, BARE, RANDOM, total=32 * MiB),
    Case("FilterStream, zlib level 1, text", _zlib_level_1_over_socketpair, BARE, total=64 * MiB),
    Case("evtrio open_stream_pair", _evtrio_pair, BARE),
    Case("trio memory_stream_pair", _trio_memory_pair, BARE),
    Case(
        "FilterStream over the pair",
        _passthrough_over_evtrio_pair,
        "evtrio open_stream_pair",
        passthrough=True,
    ),
]


async def _transfer(case: Case) -> None:
    """Send ``case.total`` bytes in 64 KiB writes; receive until all of them arrived."""
    sender, receiver = await case.make()
    payload = case.payload

    async def send() -> None:
        for _ in range(case.total // len(payload)):
            await sender.send_all(payload)
        assert isinstance(sender, trio.abc.HalfCloseableStream)
        await sender.send_eof()  # for zlib: Z_FINISH, so the last bytes leave too

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        received = 0
        while received < case.total:
            received += len(await receiver.receive_some(WRITE_SIZE))
    await sender.aclose()
    await receiver.aclose()


def measure(cases: list[Case], *, repeat: int) -> dict[str, float]:
    """Payload bytes per second of each case (the best of *repeat* runs)."""
    rates: dict[str, float] = {}
    for case in cases:
        seconds = best_of(lambda case=case: trio.run(_transfer, case), repeat=repeat)
        rates[case.name] = case.total / seconds
    return rates


def report(cases: list[Case], rates: dict[str, float]) -> None:
    print(f"\none-way throughput, {WRITE_SIZE // 1024} KiB writes (payload MB/s; best run)")
    for case in cases:
        rate = rates[case.name]
        versus = ""
        if case.baseline is not None:
            ratio = rate / rates[case.baseline]
            versus = f"  {ratio:6.1%} of {case.baseline}"
        print(f"  {case.name:<34} {rate / 1e6:7,.0f} MB/s{versus}")
    for case in cases:
        if case.passthrough and case.baseline is not None:
            cost = 1 - rates[case.name] / rates[case.baseline]
            verdict = "met" if cost < 0.10 else "NOT met"
            print(f"  goal: a passthrough wrapper costs < 10%: {case.name}: {cost:.1%} ({verdict})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_wrappers")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    report(CASES, measure(CASES, repeat=args.repeat))


if __name__ == "__main__":
    main(sys.argv[1:])
