"""Stream wrappers against their bare transport: one-way throughput at 64 KiB writes.

One table, one run. Each row is a :class:`Case`: a maker of a (sender, receiver) pair
and the row it is compared with. The filter, rate-limit, buffered and TLS rows wrap a
real socketpair (the bare ``trio.SocketStream`` row is their baseline; evtrio's TLS
stream is also compared with the ``trio.SSLStream`` it wraps); the pair rows are
in-memory transports, compared with the socketpair and with Trio's
``memory_stream_pair``.

Goal: a passthrough wrapper costs less than 10% of the throughput at 64 KiB writes.

Then the composition run: 64 MiB of random data through TLS over a zlib filter over a
rate-limited pair, with BufferedStreams on top, checked byte for byte.

Run: ``python -m benchmarks bench_wrappers``, or ``python -m benchmarks.bench_wrappers
--repeat N`` (default 5; the best run of each case counts).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio.testing
import trustme

from evtrio.streams import (
    BufferedStream,
    FlushMode,
    RateLimitedStream,
    RateLimitGroup,
    TokenBucketConfig,
    start_buffered_stream,
    wrap_tls,
)
from evtrio.streams.filter import DeflateFilter, FilterStream, InflateFilter
from evtrio.streams.pair import open_stream_pair

from ._report import best_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

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


FAR_ABOVE = TokenBucketConfig(1 << 40, 1 << 40, 1 << 40, 1 << 40)
"""A limit no benchmark reaches: what is left is the cost of the accounting."""


async def _ratelimit_over_socketpair() -> Streams:
    a, b = await _socketpair()
    return RateLimitedStream(a, FAR_ABOVE), RateLimitedStream(b, FAR_ABOVE)


async def _ratelimit_group_over_socketpair() -> Streams:
    a, b = await _socketpair()
    group = RateLimitGroup(FAR_ABOVE)
    ends = RateLimitedStream(a), RateLimitedStream(b)
    for end in ends:
        group.add(end)
    return ends


async def _buffered_over_socketpair() -> Streams:
    a, b = await _socketpair()
    return BufferedStream(a), BufferedStream(b)


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A (client, server) pair of contexts trusting one throwaway CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("bench.example").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return client, server


CONTEXTS = tls_contexts()


async def _ssl_over_socketpair() -> Streams:
    a, b = await _socketpair()
    client, server = CONTEXTS
    ends = (
        trio.SSLStream(a, client, server_hostname="bench.example"),
        trio.SSLStream(b, server, server_side=True),
    )
    async with trio.open_nursery() as nursery:
        for end in ends:
            nursery.start_soon(end.do_handshake)
    return ends


async def _tls_over_socketpair() -> Streams:
    a, b = await _socketpair()
    client, server = CONTEXTS
    ends = (
        wrap_tls(a, client, server_hostname="bench.example"),
        wrap_tls(b, server, server_side=True),
    )
    async with trio.open_nursery() as nursery:
        for end in ends:
            nursery.start_soon(end.do_handshake)
    return ends


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
    Case("BufferedStream (pull mode)", _buffered_over_socketpair, BARE, passthrough=True),
    Case("RateLimitedStream, own limit", _ratelimit_over_socketpair, BARE, passthrough=True),
    Case("RateLimitedStream, in a group", _ratelimit_group_over_socketpair, BARE, passthrough=True),
    Case("trio.SSLStream", _ssl_over_socketpair, BARE, total=64 * MiB),
    Case("TLSStream", _tls_over_socketpair, "trio.SSLStream", total=64 * MiB, passthrough=True),
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
        if isinstance(sender, trio.abc.HalfCloseableStream):
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


def _zlib_both_ways(stream: trio.abc.Stream, mode: FlushMode) -> FilterStream:
    return FilterStream(
        stream, output_filter=DeflateFilter(), input_filter=InflateFilter(), send_mode=mode
    )


def wrapper_stack(
    layers: Sequence[str], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> Streams:
    """Both ends of an evtrio pair wrapped in *layers* ("ratelimit", "zlib", "tls"),
    innermost first. The rate limit (32 MiB/s in 10 ms ticks) queues and waits."""
    client_context, server_context = contexts
    ends: Streams = open_stream_pair(max_buffer=WRITE_SIZE)
    for depth, layer in enumerate(layers):
        if layer == "ratelimit":
            config = TokenBucketConfig(327_680, 655_360, 327_680, 655_360, tick=0.01)
            ends = (RateLimitedStream(ends[0], config), RateLimitedStream(ends[1], config))
        elif layer == "zlib":
            # With TLS above it, every record must be decodable at once (the handshake
            # waits for answers), so each send flushes; otherwise a final flush does.
            mode = FlushMode.FLUSH if "tls" in layers[depth + 1 :] else FlushMode.NORMAL
            ends = (
                FilterStream(
                    ends[0],
                    output_filter=DeflateFilter(),
                    input_filter=InflateFilter(),
                    send_mode=mode,
                ),
                FilterStream(
                    ends[1],
                    output_filter=DeflateFilter(),
                    input_filter=InflateFilter(),
                    send_mode=mode,
                ),
            )
        elif layer == "tls":
            ends = (
                wrap_tls(ends[0], client_context, server_hostname="bench.example"),
                wrap_tls(ends[1], server_context, server_side=True),
            )
        else:
            raise ValueError(f"unknown layer {layer!r}")
    return ends


async def _composition(total: int) -> None:
    """*total* random bytes through TLS over zlib over a rate-limited pair, checked."""
    rng = random.Random(2)
    block = rng.randbytes(WRITE_SIZE)
    async with trio.open_nursery() as nursery:
        inner_sender, inner_receiver = wrapper_stack(("ratelimit", "zlib", "tls"), CONTEXTS)
        sender = start_buffered_stream(nursery, inner_sender, write_high=4 * WRITE_SIZE)
        receiver = start_buffered_stream(nursery, inner_receiver)
        sent, received = hashlib.sha256(), hashlib.sha256()

        async def send() -> None:
            for _ in range(total // WRITE_SIZE):
                await sender.send_all(block)
                sent.update(block)
            await sender.flush(FlushMode.FLUSH)

        nursery.start_soon(send)
        count = 0
        while count < total:
            chunk = await receiver.receive_some()
            received.update(chunk)
            count += len(chunk)
        assert sent.digest() == received.digest(), "the composition corrupted the data"
        await sender.aclose()
        await receiver.aclose()


def composition(total: int = 64 * MiB) -> float:
    """Run the 64 MiB composition once; return payload bytes per second."""
    seconds = best_of(lambda: trio.run(_composition, total), repeat=1)
    print(f"\ncomposition: {total // MiB} MiB through TLS over zlib over a rate-limited pair")
    print(f"  {total / seconds / 1e6:,.1f} MB/s (rate limit 33.6 MB/s), every byte checked")
    return total / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_wrappers")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    report(CASES, measure(CASES, repeat=args.repeat))
    composition()


if __name__ == "__main__":
    main(sys.argv[1:])
