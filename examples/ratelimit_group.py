"""Rate-limit groups: three streams share 300 bytes per tick fairly; among 100 streams,
min_share decides between many tiny grants and fewer useful ones. Runs on Trio's
MockClock, so the output is exact.

Run it: python examples/ratelimit_group.py
"""

from __future__ import annotations

import math

import trio
import trio.testing

from evtrio.streams import RateLimitedStream, RateLimitGroup, TokenBucketConfig

SHARED = TokenBucketConfig(300, 600, 300, 600, tick=1.0)  # 300 B per tick, both ways


async def run_group(members: int, ticks: int, **options: int) -> tuple[RateLimitGroup, list[int]]:
    """*members* streams in a new group send without end; count what each receiver gets
    in *ticks* ticks, from the third (the first tick's burst may overdraw the bucket,
    and the second pays that back)."""
    await trio.sleep_until(math.floor(trio.current_time()) + 1)  # start on a tick
    group = RateLimitGroup(SHARED, **options)
    received = [0] * members
    start = trio.current_time() + 2

    async with trio.open_nursery() as nursery:
        for index in range(members):
            sender, receiver = trio.testing.memory_stream_pair()
            stream = RateLimitedStream(sender)  # no limit of its own: the group's applies
            group.add(stream)

            async def send(stream: RateLimitedStream = stream) -> None:
                while True:
                    await stream.send_all(b"g" * 4096)

            async def receive(receiver: trio.abc.ReceiveStream, index: int) -> None:
                while chunk := await receiver.receive_some():
                    if trio.current_time() >= start:
                        received[index] += len(chunk)

            nursery.start_soon(send)
            nursery.start_soon(receive, receiver, index)
        await trio.sleep(2 + ticks - 0.5)
        nursery.cancel_scope.cancel()
    for stream in group.members:
        await stream.aclose()  # closing a stream also takes it out of its group
    return group, received


def spread(received: list[int]) -> str:
    sizes = sorted(set(received))
    return ", ".join(f"{received.count(size)} got {size} B" for size in sizes)


async def main() -> None:
    group, received = await run_group(3, 10)
    print("3 members, 300 B/tick, 10 ticks:", received)
    print("  the group's totals (read, written) over 12 ticks:", group.totals())

    _, received = await run_group(100, 4, min_share=0)
    print("100 members, min_share=0, 4 ticks:", spread(received))

    _, received = await run_group(100, 4, min_share=64)
    print("100 members, min_share=64, 4 ticks:", spread(received))


if __name__ == "__main__":
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
