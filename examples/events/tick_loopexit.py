"""The libevent book's "run an event loop for 10 seconds, then exit", three times over.

Two persistent timers do the work; ``loopexit(10)`` schedules an exit ten seconds
ahead, so each ``dispatch()`` returns after ten seconds and the program prints "Tick".
(The book notes a persistent timer is the better way to tick: see persistent_timer.py.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from evtrio import open_event_base

if TYPE_CHECKING:
    from evtrio import EV


async def main(ticks: int = 3) -> None:
    async with open_event_base() as base:
        started = trio.current_time()

        def work(fd: int, what: EV, name: str) -> None:
            print(f"{trio.current_time() - started:4.1f}s  {name}")

        ev1 = base.new_timer(work, "ev1 (every 4 s)", persist=True)
        ev2 = base.new_timer(work, "ev2 (every 7 s)", persist=True)
        ev1.add(4)
        ev2.add(7)
        for _ in range(ticks):
            base.loopexit(10)  # this schedules an exit ten seconds from now
            await base.dispatch()
            print(f"{trio.current_time() - started:4.1f}s  Tick (got_exit={base.got_exit})")


if __name__ == "__main__":
    trio.run(main)
