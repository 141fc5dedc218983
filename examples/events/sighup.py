"""A SIGHUP handler (the libevent book's ``evsignal_new`` example).

The callback runs in the loop, after the signal arrived, so it may do anything. For
the demo the program sends itself SIGHUP three times; try ``kill -HUP`` on a long-lived
program of your own. Deleting the last SIGHUP event restores the previous handler.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import trio

from evtrio import open_event_base

if TYPE_CHECKING:
    from evtrio import EV


async def main() -> None:
    async with open_event_base() as base:
        reloads = 0

        def on_hup(signum: int, what: EV) -> None:
            nonlocal reloads
            reloads += 1
            print(f"got {signal.Signals(signum).name} ({what!r}): reloading configuration")
            if reloads == 3:
                hup.delete()
                sender.delete()

        def send_hup(fd: int, what: EV) -> None:
            os.kill(os.getpid(), signal.SIGHUP)

        hup = base.new_signal(signal.SIGHUP, on_hup)
        hup.add()
        sender = base.new_timer(send_hup, persist=True)
        sender.add(0.1)

        await base.dispatch()  # returns once no events are left
        print(f"handler restored: {signal.getsignal(signal.SIGHUP) is signal.SIG_DFL}")


if __name__ == "__main__":
    trio.run(main)
