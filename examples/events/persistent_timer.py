"""A persistent timer that receives itself (the book's ``event_self_cbarg`` example).

``EVENT_SELF`` among the callback arguments stands for the event being made, so the
callback can delete its own event. A persistent timer keeps its rhythm: each run is
due one interval after the previous deadline, however long the callback took.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from evtrio import EV, EVENT_SELF, open_event_base

if TYPE_CHECKING:
    from evtrio import Event


async def main(calls: int = 5) -> None:
    async with open_event_base() as base:
        started = trio.current_time()
        count = 0

        def cb_func(fd: int, what: EV, me: Event) -> None:
            nonlocal count
            count += 1
            elapsed = trio.current_time() - started
            print(f"cb_func called {count} times so far ({elapsed:.1f}s, {what!r})")
            if count == calls:
                me.delete()

        event = base.new_event(-1, EV.PERSIST, cb_func, EVENT_SELF)
        event.add(1)  # every second
        await base.dispatch()


if __name__ == "__main__":
    trio.run(main)
