"""Event priorities (the libevent book's ``event_priority_set`` example).

One socket, two persistent events: writing at priority 0, reading at priority 1. The
socket is readable and writable, so both are active in every round, yet each round
runs only the most urgent priority: the reader waits until the writer is deleted.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

from evtrio import EV, EVENT_SELF, open_event_base

if TYPE_CHECKING:
    from evtrio import Event


async def main() -> None:
    sock, peer = socket.socketpair()
    with sock, peer:
        async with open_event_base(priorities=2) as base:

            def write_cb(sock: socket.socket, what: EV, me: Event) -> None:
                rounds = base.statistics().rounds
                print(f"round {rounds}: write_cb (priority {me.priority})")
                if rounds == 3:
                    print(f"round {rounds}: write side done, deleting its event")
                    me.delete()

            def read_cb(sock: socket.socket, what: EV, me: Event) -> None:
                rounds = base.statistics().rounds
                print(f"round {rounds}: read_cb (priority {me.priority}) got {sock.recv(64)!r}")
                me.delete()

            important = base.new_event(sock, EV.WRITE | EV.PERSIST, write_cb, EVENT_SELF)
            unimportant = base.new_event(sock, EV.READ | EV.PERSIST, read_cb, EVENT_SELF)
            important.priority = 0
            unimportant.priority = 1
            important.add()
            unimportant.add()
            peer.send(b"hello")
            await base.dispatch()


if __name__ == "__main__":
    trio.run(main)
