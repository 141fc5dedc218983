"""Rate limits: how accurately a group holds its rate on real sockets, and what a
:class:`~evtrio.streams.RateLimitedStream` costs when its limit is far above the load.

Accuracy: 20 TCP connections on 127.0.0.1, their senders in one
:class:`~evtrio.streams.RateLimitGroup` (tick 0.05 s, burst 2x rate, 1 MB/s in all).
What the *receivers* get is counted (kernel buffers make sender-side counts lie) over a
steady window that starts at a tick boundary after a warm-up, so the first tick's burst
is excluded. Goal: the total within 3% of the rate and each connection within 10% of
its fair share, over 10 s.

Overhead: 64 KiB writes over a socketpair, received in 64 KiB reads, through the bare
:class:`trio.SocketStream` and through rate-limited streams (own limit, or a group)
far above the load on both ends. Numbers are the best of five runs.

Run: ``python -m benchmarks bench_ratelimit``, or ``python -m benchmarks.bench_ratelimit
--seconds N`` for another accuracy window.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import time

import trio

from evtrio.streams import RateLimitedStream, RateLimitGroup, TokenBucketConfig
from evtrio.streams._socket import wrap_socket

from ._report import table

CONNECTIONS = 20
TICK = 0.05
RATE = 50_000  # bytes per tick for the whole group: 1 MB/s
WARMUP = 0.5

CHUNK = 64 * 1024
TRANSFER = 256 * 1024 * 1024
FAR_ABOVE = TokenBucketConfig(1 << 50, 1 << 50, 1 << 50, 1 << 50)


# ---------------------------------------------------------------------- accuracy


async def measure_group_accuracy(
    *, connections: int, tick: float, rate: int, warmup: float, window: float
) -> list[int]:
    """Bytes each receiver got in a window of *window* seconds.

    *connections* TCP connections on 127.0.0.1 send without end through
    :class:`~evtrio.streams.RateLimitedStream` s in one group (*rate* bytes per *tick*,
    burst 2x rate). The window starts at the first tick boundary *warmup* seconds in.
    """
    group = RateLimitGroup(TokenBucketConfig(rate, 2 * rate, rate, 2 * rate, tick))
    received = [0] * connections
    window_start = window_end = math.inf
    streams: list[trio.abc.Stream] = []

    async def receive(server_side: trio.SocketStream, index: int) -> None:
        while chunk := await server_side.receive_some(CHUNK):
            if window_start <= trio.current_time() < window_end:
                received[index] += len(chunk)

    async def send(stream: RateLimitedStream) -> None:
        chunk = b"a" * CHUNK
        while True:
            await stream.send_all(chunk)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            senders = []
            for index in range(connections):
                client = RateLimitedStream(await trio.open_tcp_stream("127.0.0.1", port))
                server_side = await listeners[0].accept()
                streams += [client, server_side]
                group.add(client)
                senders.append(client)
                nursery.start_soon(receive, server_side, index)
            for stream in senders:
                nursery.start_soon(send, stream)
            window_start = (math.floor((trio.current_time() + warmup) / tick) + 1) * tick
            window_end = window_start + window
            await trio.sleep_until(window_end + 4 * tick)
            nursery.cancel_scope.cancel()
    finally:
        for resource in [*streams, *listeners]:
            await trio.aclose_forcefully(resource)
    return received


def accuracy(seconds: float = 10.0) -> tuple[float, float]:
    """Run the group accuracy measurement; print and return the deviations (fractions):
    the total's from the rate, and the worst connection's from its fair share."""
    received = trio.run(
        lambda: measure_group_accuracy(
            connections=CONNECTIONS, tick=TICK, rate=RATE, warmup=WARMUP, window=seconds
        )
    )
    expected = RATE * seconds / TICK
    fair = expected / CONNECTIONS
    total = sum(received) / expected - 1
    worst = max(abs(got / fair - 1) for got in received)
    mean = sum(abs(got / fair - 1) for got in received) / CONNECTIONS
    print(
        f"\ngroup accuracy: {CONNECTIONS} TCP connections, tick {TICK} s, "
        f"{RATE / TICK:,.0f} B/s in all, burst 2x, {seconds:g} s window"
    )
    print(f"  total:           {total:+7.2%}   (goal: within 3%)")
    print(f"  worst connection: {worst:6.2%}   (goal: within 10%; mean {mean:.2%})")
    return total, worst


# ---------------------------------------------------------------------- overhead


async def _transfer(wrap: str) -> float:
    """Seconds to move TRANSFER bytes in 64 KiB writes over a socketpair."""
    a, b = socket.socketpair()
    sender: trio.abc.Stream = wrap_socket(a)
    receiver: trio.abc.Stream = wrap_socket(b)
    if wrap != "bare":
        group = RateLimitGroup(FAR_ABOVE) if wrap == "group" else None
        own = None if group else FAR_ABOVE
        sender, receiver = RateLimitedStream(sender, own), RateLimitedStream(receiver, own)
        if group is not None:
            group.add(sender)
            group.add(receiver)
    chunk = b"x" * CHUNK

    async def send() -> None:
        for _ in range(TRANSFER // CHUNK):
            await sender.send_all(chunk)

    started = time.perf_counter()
    async with sender, receiver, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        left = TRANSFER
        while left:
            left -= len(await receiver.receive_some(CHUNK))
    return time.perf_counter() - started


def ratelimit_overhead(*, repeat: int = 5) -> dict[str, float]:
    """Throughput (bytes per second) of 64 KiB writes over a socketpair: the bare
    transport, and rate-limited streams with a limit far above the load on both ends."""
    rows = {
        "bare SocketStream": "bare",
        "RateLimitedStream": "own",
        "RateLimitedStream+group": "group",
    }
    rates = {}
    for name, wrap in rows.items():
        best = min(trio.run(_transfer, wrap) for _ in range(repeat))
        rates[name] = TRANSFER / best
    table(
        "rate-limit overhead: 64 KiB writes over a socketpair, limit far above the load",
        "B/s",
        rates,
        ours="RateLimitedStream",
    )
    for name in ("RateLimitedStream", "RateLimitedStream+group"):
        cost = 1 - rates[name] / rates["bare SocketStream"]
        print(f"  {name} costs {cost:+.1%} of the bare throughput")
    return rates


def main(argv: list[str] | None = None) -> None:
    """Run the accuracy and overhead measurements and print them."""
    parser = argparse.ArgumentParser(prog="bench_ratelimit")
    parser.add_argument("--seconds", type=float, default=10.0, help="accuracy window")
    args = parser.parse_args(argv if argv is not None else [])
    accuracy(args.seconds)
    ratelimit_overhead()


if __name__ == "__main__":
    main(sys.argv[1:])
