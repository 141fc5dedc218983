"""The libevent book's "shut down immediately": a watchdog socket calls ``loopbreak()``.

When the watchdog socket becomes readable, its callback stops the loop at once: the
other events that became active in the same round do not run. They stay active, and
the next run of the loop runs them.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

from evtrio import EV, open_event_base

if TYPE_CHECKING:
    from evtrio import EventBase


async def main() -> None:
    watchdog, alarm = socket.socketpair()
    with watchdog, alarm:
        async with open_event_base() as base:

            def on_watchdog(sock: socket.socket, what: EV, base: EventBase) -> None:
                print(f"watchdog: {sock.recv(16)!r} arrived, calling loopbreak()")
                base.loopbreak()

            def report(fd: int, what: EV, name: str) -> None:
                print(f"{name} ran")

            base.new_event(watchdog, EV.READ, on_watchdog, base).add()
            reports = [base.new_timer(report, f"report {n}") for n in (1, 2)]
            for event in reports:
                event.add(0)  # due in the same round as the watchdog
            alarm.send(b"stop!")

            await base.dispatch()
            print(f"dispatch returned: got_break={base.got_break}")
            print("still active:", [event.args[0] for event in reports if event.active])

            await base.dispatch()
            print(f"dispatch returned: got_break={base.got_break}, nothing left")


if __name__ == "__main__":
    trio.run(main)
