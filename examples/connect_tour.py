"""Connecting with evtrio: numeric addresses with evtrio.util, then open_tcp_stream.

Everything stays on the loopback interface. Run it: python examples/connect_tour.py
"""

from __future__ import annotations

import errno
import socket
from functools import cmp_to_key
from typing import Any

import trio

from evtrio.errors import AddressParseError, ConnectError
from evtrio.streams import open_tcp_stream
from evtrio.util import format_sockaddr, parse_sockaddr_port, sockaddr_cmp


class FixedResolver:
    """Answers every name with fixed addresses, as a test would. Any object with an
    async getaddrinfo like trio.socket.getaddrinfo can be passed as a resolver."""

    def __init__(self, *sockaddrs: tuple[str, int]) -> None:
        self.sockaddrs = sockaddrs

    async def getaddrinfo(self, host: str, port: int, *, type: int) -> list[Any]:
        return [(socket.AF_INET, type, 6, "", sockaddr) for sockaddr in self.sockaddrs]


async def echo_upper_once(listener: trio.socket.SocketType) -> None:
    conn, _ = await listener.accept()
    with conn:
        await conn.send((await conn.recv(100)).upper())


async def main() -> None:
    # evutil_parse_sockaddr_port: the numeric forms, canonicalised.
    for text in ("1.2.3.4:80", "1.2.3.4", "[::1]:8080", "[2001:DB8::0:1]", "fe80::1%1"):
        address = parse_sockaddr_port(text)
        print(f"{text:>16} -> {address.family.name} {address.sockaddr} = {address}")
    try:
        parse_sockaddr_port("localhost:80")
    except AddressParseError as exc:
        print("localhost:80 ->", exc.reason)

    # evutil_sockaddr_cmp: family, then address bytes, then port.
    addresses = [("::1", 80, 0, 0), ("10.0.0.1", 80), ("9.0.0.1", 443), ("9.0.0.1", 80)]
    in_order = sorted(addresses, key=cmp_to_key(sockaddr_cmp))
    print("sorted:", ", ".join(format_sockaddr(a) for a in in_order))

    # open_tcp_stream: the first address refuses, so the second is tried at once.
    with trio.socket.socket() as listener, socket.socket() as refusing, socket.socket() as other:
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        refusing.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        other.bind(("127.0.0.1", 0))
        resolver = FixedResolver(refusing.getsockname(), listener.getsockname())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_upper_once, listener)
            stream = await open_tcp_stream("service.example", 80, resolver=resolver)
            async with stream:
                print(
                    "connected to the listener:",
                    stream.socket.getpeername() == listener.getsockname(),
                )
                await stream.send_all(b"hello")
                print("echoed:", await stream.receive_some(100))

        # When every address fails, one error names them all.
        both_refuse = FixedResolver(refusing.getsockname(), other.getsockname())
        try:
            await open_tcp_stream("service.example", 80, resolver=both_refuse)
        except ConnectError as exc:
            code = errno.errorcode[exc.errno] if exc.errno is not None else None
            print(f"ConnectError: an OSError with errno {code}")
            names = {refusing.getsockname()[1]: "refusing", other.getsockname()[1]: "other"}
            for address, error in exc.attempts:  # in the order they were tried
                tried = parse_sockaddr_port(address)
                print(f"  {tried.host}, port of {names[tried.port]!r}: {type(error).__name__}")


if __name__ == "__main__":
    trio.run(main)
