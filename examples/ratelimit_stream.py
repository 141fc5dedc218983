"""One rate-limited stream: 100 bytes per tick, a burst of 300, a decrement that takes the
bucket negative, and a new limit set mid-transfer. Runs on Trio's MockClock, so the
output is exact; with the real clock the same program takes 11 s.

Run it: python examples/ratelimit_stream.py
"""

from __future__ import annotations

from collections import Counter

import trio
import trio.testing

from evtrio.streams import RateLimitedStream, TokenBucketConfig


async def main() -> None:
    sender, receiver = trio.testing.memory_stream_pair()
    # 100 bytes per 1-second tick, at most 300 in one tick, in each direction.
    stream = RateLimitedStream(sender, TokenBucketConfig(100, 300, 100, 300, tick=1.0))
    print("write_limit at start:", stream.write_limit)  # one tick of tokens
    arrived: Counter[float] = Counter()  # bytes received, by time

    async def receive() -> None:
        while chunk := await receiver.receive_some():
            arrived[trio.current_time()] += len(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)

        await trio.sleep(3.5)  # idle ticks fill the bucket up to the burst
        print("write_limit after 3.5 idle seconds:", stream.write_limit)
        await stream.send_all(b"x" * 500)  # 300 at once, then 100 a tick

        stream.decrement_write(250)  # e.g. bytes that left by another way
        print(f"t={trio.current_time()}: decrement_write(250) -> {stream.write_limit}")
        await stream.send_all(b"y" * 100)  # waits until refills bring it above zero

        stream.set_config(TokenBucketConfig(400, 400, 400, 400, tick=0.5))
        print(f"t={trio.current_time()}: new limit, 400 bytes per 0.5 s")
        await stream.send_all(b"z" * 1000)
        await stream.send_eof()

    for when, size in sorted(arrived.items()):
        print(f"t={when:4.1f}  received {size:3d} bytes")
    stats = stream.statistics()
    print(f"sent {stats.bytes_written} bytes, waited for tokens {stats.write_waits} times")


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
