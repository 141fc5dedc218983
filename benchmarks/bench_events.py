"""The event base against asyncio and raw Trio, side by side in one run (libevent's bench.c).

1 000 socket pairs are watched for READ; 100 of them hold one byte at any time. Each
read callback takes its byte and writes one to the next pair, until WRITES bytes have
been written, so about 100 descriptors are ready in every round. We count callbacks per
second in the loop alone (setup is not timed), for:

  evtrio            ``EV.READ | EV.PERSIST`` events on the default method (epoll on Linux)
  evtrio (poll)     the same on the poll fallback
  asyncio           ``loop.add_reader`` callbacks (its selector event loop)
  trio tasks        one task per descriptor looping on ``trio.lowlevel.wait_readable``

Numbers are the best of five runs; ratios above 1 mean evtrio is faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from typing import TYPE_CHECKING

import trio
import trio.testing

from evtrio import EV, open_event_base

from ._report import table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PAIRS = 1000
ACTIVE = 100
WRITES = 20_000
REPEAT = 5

Pairs = list[tuple[socket.socket, socket.socket]]


class Chain:
    """bench.c's bookkeeping: bytes read, bytes written, writes left."""

    def __init__(self, pairs: Pairs) -> None:
        self.pairs = pairs
        self.count = 0
        self.fired = 0
        self.writes = WRITES

    def start(self) -> None:
        space = 2 * PAIRS // ACTIVE
        for i in range(ACTIVE):
            self.pairs[(i * space) % PAIRS][1].send(b"e")
            self.fired += 1

    def on_read(self, index: int) -> bool:
        """Take the byte of pair *index*, pass one on; return True when all is read."""
        self.count += len(self.pairs[index][0].recv(1))
        if self.writes:
            self.pairs[(index + 1) % PAIRS][1].send(b"e")
            self.writes -= 1
            self.fired += 1
        return self.count == self.fired


async def _evtrio(pairs: Pairs, avoid: tuple[str, ...]) -> float:
    chain = Chain(pairs)
    async with open_event_base(avoid_methods=avoid) as base:

        def read_cb(sock: socket.socket, what: EV, index: int) -> None:
            if chain.on_read(index):
                base.loopbreak()

        for index, (a, _) in enumerate(pairs):
            base.new_event(a, EV.READ | EV.PERSIST, read_cb, index).add()
        await base.loop(nonblock=True)
        chain.start()
        started = time.perf_counter()
        await base.dispatch()
        return time.perf_counter() - started


def _asyncio(pairs: Pairs) -> float:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        chain = Chain(pairs)
        done = loop.create_future()

        def read_cb(index: int) -> None:
            if chain.on_read(index):
                done.set_result(None)

        for index, (a, _) in enumerate(pairs):
            loop.add_reader(a.fileno(), read_cb, index)
        try:
            chain.start()
            started = time.perf_counter()
            await done
            return time.perf_counter() - started
        finally:
            for a, _ in pairs:
                loop.remove_reader(a.fileno())

    return asyncio.run(run())


async def _trio_tasks(pairs: Pairs) -> float:
    chain = Chain(pairs)
    done = trio.Event()

    async def reader(index: int) -> None:
        sock = pairs[index][0]
        while True:
            await trio.lowlevel.wait_readable(sock)
            if chain.on_read(index):
                done.set()

    async with trio.open_nursery() as nursery:
        for index in range(PAIRS):
            nursery.start_soon(reader, index)
        await trio.testing.wait_all_tasks_blocked()
        chain.start()
        started = time.perf_counter()
        await done.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return elapsed


def _best(run: Callable[[], float]) -> float:
    """The fastest of REPEAT runs, as callbacks per second."""
    return (WRITES + ACTIVE) / min(run() for _ in range(REPEAT))


@contextlib.contextmanager
def _socket_pairs() -> Iterator[Pairs]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 2 000 fds and then some
    pairs = [socket.socketpair() for _ in range(PAIRS)]
    try:
        for a, b in pairs:
            a.setblocking(False)
            b.setblocking(False)
        yield pairs
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def main() -> None:
    """Run the bench.c workload on each contender and print callbacks per second."""
    with _socket_pairs() as pairs:
        rows = {
            "evtrio": _best(lambda: trio.run(_evtrio, pairs, ("poll", "select"))),
            "evtrio (poll)": _best(lambda: trio.run(_evtrio, pairs, ("epoll", "kqueue"))),
            "asyncio add_reader": _best(lambda: _asyncio(pairs)),
            "trio tasks": _best(lambda: trio.run(_trio_tasks, pairs)),
        }
    table(
        f"{PAIRS} socket pairs, {ACTIVE} active, {WRITES} writes: read callbacks",
        "callbacks/s",
        rows,
        ours="evtrio",
    )


if __name__ == "__main__":
    main()
