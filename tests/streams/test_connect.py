"""evtrio.streams.open_tcp_stream: resolution, Happy Eyeballs, local_address, failures.

Two kinds of test. Real ones use loopback sockets only (127.0.0.1 and ::1) and the real
clock with generous ``fail_after`` bounds: a listening socket accepts, a bound socket
that does not listen refuses at once, and a listener with a full accept queue drops SYNs,
which leaves a connection attempt hanging like an unreachable address. Simulated ones
replace ``_connect_one`` (the function that opens and connects one socket) with a fake
network driven by Trio's ``MockClock``, to check the staggering to the millisecond.
"""

from __future__ import annotations

import errno
import math
import os
import socket
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from evtrio.errors import AddressParseError, ConnectError
from evtrio.streams import connect as connect_module
from evtrio.streams import open_tcp_stream
from evtrio.streams._socket import stdlib_socket
from evtrio.util import format_sockaddr

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from evtrio.streams.connect import AddrInfo

INET, INET6, STREAM = socket.AF_INET, socket.AF_INET6, socket.SOCK_STREAM
REAL_TIMEOUT = 10  # seconds; real-socket tests finish in well under one


def _ipv6_loopback_usable() -> bool:
    try:
        with socket.socket(INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# Facts about this machine: IPv6 loopback may be disabled, and 127.0.0.2 is a loopback
# address on Linux but not everywhere. Tests that would use them use 127.0.0.1 instead.
IPV6_LOOPBACK = "::1" if _ipv6_loopback_usable() else "127.0.0.1"


def _bindable(host: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((host, 0))
    except OSError:
        return False
    return True


SECOND_LOOPBACK = "127.0.0.2" if _bindable("127.0.0.2") else "127.0.0.1"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def family_of(host: str) -> socket.AddressFamily:
    return INET6 if ":" in host else INET


def info(sockaddr: tuple[Any, ...]) -> AddrInfo:
    """A getaddrinfo entry for *sockaddr*."""
    family = family_of(sockaddr[0])
    if family == INET6 and len(sockaddr) == 2:
        sockaddr = (*sockaddr, 0, 0)
    return (family, STREAM, 6, "", sockaddr)


class FakeResolver:
    """Returns fixed getaddrinfo entries and records what it was asked."""

    def __init__(self, *entries: AddrInfo, error: OSError | None = None) -> None:
        self.entries = list(entries)
        self.error = error
        self.calls: list[tuple[str, int, int]] = []

    async def getaddrinfo(self, host: str, port: int, *, type: int) -> Sequence[AddrInfo]:
        self.calls.append((host, port, type))
        await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        return self.entries


class NeverCalledResolver:
    async def getaddrinfo(self, host: str, port: int, *, type: int) -> Sequence[AddrInfo]:
        raise AssertionError(f"resolver asked for {host!r}")


# --- loopback endpoints ---------------------------------------------------------------


@contextmanager
def listening(host: str = "127.0.0.1") -> Iterator[trio.socket.SocketType]:
    """A Trio socket listening on *host*, any port."""
    sock = socket.socket(family_of(host))
    sock.bind((host, 0))
    sock.listen()
    with trio.socket.from_stdlib_socket(sock) as listener:
        yield listener


@contextmanager
def refusing(host: str = "127.0.0.1") -> Iterator[tuple[Any, ...]]:
    """The address of a bound socket that does not listen: connections are refused."""
    with socket.socket(family_of(host)) as sock:
        sock.bind((host, 0))
        yield sock.getsockname()


@contextmanager
def blackhole(host: str = "127.0.0.1") -> Iterator[tuple[Any, ...]]:
    """The address of a listener whose accept queue is full: SYNs are dropped, and a
    connection attempt hangs like one to an unreachable host (without leaving loopback).
    """
    family = family_of(host)
    with socket.socket(family) as listener, socket.socket(family) as filler:
        listener.bind((host, 0))
        listener.listen(0)
        filler.connect(listener.getsockname())  # takes the only place in the queue
        yield listener.getsockname()


async def check_connected(stream: trio.SocketStream, listener: trio.socket.SocketType) -> None:
    """*stream* is a working connection to *listener*, and evtrio's fast path knows it."""
    server, peer = await listener.accept()
    with server:
        assert peer == stream.socket.getsockname()
        await stream.send_all(b"ping")
        assert await server.recv(4) == b"ping"
        await server.send(b"pong")
        assert await stream.receive_some(4) == b"pong"
    assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raw = stdlib_socket(stream)
    assert raw is not None
    assert raw.fileno() == stream.socket.fileno()
    assert not raw.getblocking()


# --- real sockets: connecting -----------------------------------------------------------


async def test_open_tcp_stream_numeric_ipv4_skips_resolution() -> None:
    with listening() as listener, trio.fail_after(REAL_TIMEOUT):
        port = listener.getsockname()[1]
        stream = await open_tcp_stream("127.0.0.1", port, resolver=NeverCalledResolver())
        async with stream:
            assert isinstance(stream, trio.SocketStream)
            assert stream.socket.getpeername() == ("127.0.0.1", port)
            await check_connected(stream, listener)


async def test_open_tcp_stream_ipv6_loopback() -> None:
    with listening(IPV6_LOOPBACK) as listener, trio.fail_after(REAL_TIMEOUT):
        port = listener.getsockname()[1]
        stream = await open_tcp_stream(IPV6_LOOPBACK, port, resolver=NeverCalledResolver())
        async with stream:
            assert stream.socket.family == family_of(IPV6_LOOPBACK)
            assert stream.socket.getpeername()[:2] == (IPV6_LOOPBACK, port)
            await check_connected(stream, listener)


async def test_open_tcp_stream_uses_the_given_resolver() -> None:
    with listening() as listener, refusing() as refused, trio.fail_after(REAL_TIMEOUT):
        port = listener.getsockname()[1]
        resolver = FakeResolver(info(refused), info(("127.0.0.1", port)))
        async with await open_tcp_stream("service.test", port, resolver=resolver) as stream:
            assert resolver.calls == [("service.test", port, STREAM)]
            await check_connected(stream, listener)


class TrioHostnameResolver(trio.abc.HostnameResolver):
    """Installed with trio.socket.set_custom_hostname_resolver."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hosts: list[bytes | None] = []

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        self.hosts.append(host)
        return [info(("127.0.0.1", self.port))]

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        raise AssertionError("open_tcp_stream never asks a resolver for names")


async def test_open_tcp_stream_without_resolver_uses_trio_getaddrinfo() -> None:
    with listening() as listener, trio.fail_after(REAL_TIMEOUT):
        custom = TrioHostnameResolver(listener.getsockname()[1])
        trio.socket.set_custom_hostname_resolver(custom)
        async with await open_tcp_stream("service.test", 1) as stream:
            await check_connected(stream, listener)
        assert custom.hosts == [b"service.test"]


async def test_open_tcp_stream_refusal_starts_the_next_attempt_at_once() -> None:
    with (
        refusing() as first,
        refusing(IPV6_LOOPBACK) as second,
        listening() as listener,
        trio.fail_after(REAL_TIMEOUT),  # the delay below is a minute: never waited for
    ):
        resolver = FakeResolver(info(first), info(second), info(listener.getsockname()))
        stream = await open_tcp_stream(
            "service.test", 1, resolver=resolver, happy_eyeballs_delay=60
        )
        async with stream:
            await check_connected(stream, listener)


async def test_open_tcp_stream_staggers_past_an_unreachable_address() -> None:
    with blackhole() as unreachable, listening() as listener, trio.fail_after(REAL_TIMEOUT):
        resolver = FakeResolver(info(unreachable), info(listener.getsockname()))
        before = open_fds()
        start = trio.current_time()
        stream = await open_tcp_stream(
            "service.test", 1, resolver=resolver, happy_eyeballs_delay=0.1
        )
        assert trio.current_time() - start >= 0.1
        async with stream:
            assert stream.socket.getpeername() == listener.getsockname()
            await check_connected(stream, listener)
        assert open_fds() == before  # the hanging attempt was cancelled and closed


async def test_open_tcp_stream_reports_every_failure() -> None:
    with (
        refusing() as first,
        refusing(IPV6_LOOPBACK) as second,
        refusing(SECOND_LOOPBACK) as third,
        trio.fail_after(REAL_TIMEOUT),
    ):
        resolver = FakeResolver(info(first), info(second), info(third))
        before = open_fds()
        with pytest.raises(ConnectError) as caught:
            await open_tcp_stream("service.test", 80, resolver=resolver)
        assert open_fds() == before
    error = caught.value
    # interleaved by family when ::1 is usable: 127.0.0.1, ::1, 127.0.0.2
    names = [format_sockaddr(addr) for addr in (first, second, third)]
    assert [address for address, _ in error.attempts] == names
    assert all(isinstance(exc, ConnectionRefusedError) for _, exc in error.attempts)
    assert isinstance(error, OSError)
    assert error.errno == errno.ECONNREFUSED
    assert (error.host, error.port, error.untried) == ("service.test", 80, 0)
    for name in names:
        assert name in str(error)
    assert isinstance(error.__cause__, ExceptionGroup)
    assert [exc for _, exc in error.attempts] == list(error.__cause__.exceptions)


async def test_open_tcp_stream_numeric_host_refused() -> None:
    with refusing() as refused, pytest.raises(ConnectError) as caught:
        await open_tcp_stream("127.0.0.1", refused[1])
    assert [address for address, _ in caught.value.attempts] == [format_sockaddr(refused)]


async def test_open_tcp_stream_connect_timeout() -> None:
    with blackhole() as unreachable, trio.fail_after(REAL_TIMEOUT):
        before = open_fds()
        start = trio.current_time()
        with pytest.raises(ConnectError) as caught:
            await open_tcp_stream("127.0.0.1", unreachable[1], connect_timeout=0.2)
        assert trio.current_time() - start >= 0.2
        assert open_fds() == before
    ((address, exc),) = caught.value.attempts
    assert address == format_sockaddr(unreachable)
    assert isinstance(exc, TimeoutError)
    assert exc.errno == errno.ETIMEDOUT
    assert caught.value.errno == errno.ETIMEDOUT


async def test_open_tcp_stream_cancelled_closes_every_socket() -> None:
    with ExitStack() as stack, trio.fail_after(REAL_TIMEOUT):
        hosts = ["127.0.0.1", IPV6_LOOPBACK, SECOND_LOOPBACK, "127.0.0.1"]
        addrs = [stack.enter_context(blackhole(host)) for host in hosts]
        resolver = FakeResolver(*(info(addr) for addr in addrs))
        before = open_fds()
        with trio.move_on_after(0.5) as scope:
            await open_tcp_stream("service.test", 1, resolver=resolver, happy_eyeballs_delay=0.05)
        assert scope.cancelled_caught
        assert open_fds() == before


# --- real sockets: local_address ------------------------------------------------------


async def test_open_tcp_stream_local_address() -> None:
    with listening() as listener, trio.fail_after(REAL_TIMEOUT):
        port = listener.getsockname()[1]
        stream = await open_tcp_stream("127.0.0.1", port, local_address=SECOND_LOOPBACK)
        async with stream:
            assert stream.socket.getsockname()[0] == SECOND_LOOPBACK
            server, peer = await listener.accept()
            server.close()
            assert peer[0] == SECOND_LOOPBACK


async def test_open_tcp_stream_local_address_picks_its_family() -> None:
    with (
        refusing(IPV6_LOOPBACK) as other,
        listening() as listener,
        trio.fail_after(REAL_TIMEOUT),
    ):
        resolver = FakeResolver(info(other), info(listener.getsockname()))
        stream = await open_tcp_stream(
            "service.test", 1, resolver=resolver, local_address="0.0.0.0"
        )
        async with stream:
            await check_connected(stream, listener)


async def test_open_tcp_stream_local_address_of_the_wrong_family() -> None:
    resolver = FakeResolver(info(("::1", 80)), info(("::2", 80)))
    with pytest.raises(ConnectError) as caught:
        await open_tcp_stream("service.test", 80, resolver=resolver, local_address="127.0.0.1")
    assert [address for address, _ in caught.value.attempts] == ["[::1]:80", "[::2]:80"]
    for _, exc in caught.value.attempts:
        assert exc.errno == errno.EAFNOSUPPORT
        assert "not tried: local_address '127.0.0.1'" in str(exc)


async def test_open_tcp_stream_local_address_that_cannot_be_bound() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: bind fails, nothing is sent.
    with listening() as listener, pytest.raises(ConnectError) as caught:
        await open_tcp_stream("127.0.0.1", listener.getsockname()[1], local_address="192.0.2.1")
    ((_, exc),) = caught.value.attempts
    assert exc.errno == errno.EADDRNOTAVAIL


@pytest.mark.parametrize("local", ["localhost", "", "1.2.3", "[::1]"])
async def test_open_tcp_stream_local_address_must_be_numeric(local: str) -> None:
    with pytest.raises(AddressParseError):
        await open_tcp_stream("127.0.0.1", 80, local_address=local)


# --- resolution results and arguments ---------------------------------------------------


async def test_open_tcp_stream_resolver_errors_pass_through() -> None:
    failure = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(socket.gaierror) as caught:
        await open_tcp_stream("nowhere.test", 80, resolver=FakeResolver(error=failure))
    assert caught.value is failure


async def test_open_tcp_stream_no_usable_addresses() -> None:
    resolver = FakeResolver(
        (socket.AF_UNIX, STREAM, 0, "", ("/run/x",)),
        (INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", 80)),
    )
    with pytest.raises(ConnectError, match="no addresses to try") as caught:
        await open_tcp_stream("service.test", 80, resolver=resolver)
    assert caught.value.attempts == ()
    assert caught.value.errno is None
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("host", ["::zz", "1:2:3:4:5:6:7:8:9", "fe80::1%no-such-interface0"])
async def test_open_tcp_stream_bad_ipv6_literal(host: str) -> None:
    with pytest.raises(AddressParseError):
        await open_tcp_stream(host, 80, resolver=NeverCalledResolver())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"host": b"127.0.0.1"}, TypeError, "host must be a str"),
        ({"port": "80"}, TypeError, "port must be an int"),
        ({"port": True}, TypeError, "port must be an int"),
        ({"port": 0}, ValueError, "port must be between 1 and 65535"),
        ({"port": 65536}, ValueError, "port must be between 1 and 65535"),
        ({"happy_eyeballs_delay": -1}, ValueError, "happy_eyeballs_delay must be >= 0"),
        ({"happy_eyeballs_delay": math.nan}, ValueError, "happy_eyeballs_delay must be >= 0"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be > 0"),
        ({"connect_timeout": math.nan}, ValueError, "connect_timeout must be > 0"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be a positive int"),
        ({"max_attempts": 2.0}, ValueError, "max_attempts must be a positive int"),
    ],
)
async def test_open_tcp_stream_checks_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"host": "127.0.0.1", "port": 80, **kwargs}
    arguments["resolver"] = NeverCalledResolver()
    with pytest.raises(error, match=match):
        await open_tcp_stream(**arguments)


async def test_open_tcp_stream_is_a_checkpoint() -> None:
    resolver = FakeResolver()
    with trio.CancelScope() as scope:
        scope.cancel()
        with trio.testing.assert_checkpoints():
            await open_tcp_stream("service.test", 80, resolver=resolver)
    assert scope.cancelled_caught
    assert resolver.calls == []  # cancelled before resolving


async def test_open_tcp_stream_cancelled_while_resolving() -> None:
    class SlowResolver:
        async def getaddrinfo(self, host: str, port: int, *, type: int) -> Sequence[AddrInfo]:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

    before = open_fds()
    with trio.move_on_after(0.05) as scope:
        await open_tcp_stream("service.test", 80, resolver=SlowResolver())
    assert scope.cancelled_caught
    assert open_fds() == before


# --- simulated network (MockClock) ------------------------------------------------------


class FakeNetwork:
    """Stands in for ``_connect_one``: each address connects, refuses or hangs.

    A connection is one end of a socketpair, so the stream returned is real. Every
    socket handed out is remembered, to check that losers are closed.
    """

    def __init__(self) -> None:
        self.behaviour: dict[str, tuple[str, float]] = {}
        self.started: list[tuple[float, str]] = []
        self.cancelled: list[str] = []
        self.handed_out: dict[str, socket.socket] = {}
        self.locals: list[Any] = []
        self._peers: list[socket.socket] = []
        self.on_connect: Any = None
        self.gate = trio.Event()

    def add(self, sockaddr: tuple[Any, ...], outcome: str, after: float = 0.0) -> AddrInfo:
        """Give *sockaddr* an outcome after *after* s: "connect", "refuse", "hang", or
        "gate" (connect when :attr:`gate` is set: every gated attempt in the same tick).
        """
        self.behaviour[format_sockaddr(sockaddr)] = (outcome, after)
        return info(sockaddr)

    async def connect_one(self, target: tuple[Any, Any], local: Any) -> socket.socket:
        name = format_sockaddr(target[1])
        self.started.append((trio.current_time(), name))
        self.locals.append(local)
        outcome, after = self.behaviour[name]
        try:
            if outcome == "gate":
                await self.gate.wait()
            else:
                await trio.sleep(math.inf if outcome == "hang" else after)
        except trio.Cancelled:
            self.cancelled.append(name)
            raise
        if outcome == "refuse":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        ours, theirs = socket.socketpair()
        self._peers.append(theirs)
        self.handed_out[name] = ours
        if self.on_connect is not None:
            self.on_connect(name)
        return ours

    def close(self) -> None:
        for sock in [*self._peers, *self.handed_out.values()]:
            sock.close()

    def offsets(self) -> list[tuple[float, str]]:
        """Start times relative to the first start, rounded to the millisecond."""
        first = self.started[0][0]
        return [(round(when - first, 3), name) for when, name in self.started]


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNetwork]:
    fake = FakeNetwork()
    monkeypatch.setattr(connect_module, "_connect_one", fake.connect_one)
    yield fake
    fake.close()


async def test_happy_eyeballs_interleaves_families_and_staggers(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("2001:db8::1", 443), "hang"),
        network.add(("2001:db8::2", 443), "hang"),
        network.add(("2001:db8::3", 443), "hang"),
        network.add(("192.0.2.1", 443), "hang"),
        network.add(("192.0.2.2", 443), "connect", after=0.3),
    )
    start = trio.current_time()
    async with await open_tcp_stream("service.test", 443, resolver=resolver):
        assert trio.current_time() - start == pytest.approx(1.05)
    assert network.offsets() == [
        (0.0, "[2001:db8::1]:443"),
        (0.25, "192.0.2.1:443"),
        (0.5, "[2001:db8::2]:443"),
        (0.75, "192.0.2.2:443"),
        (1.0, "[2001:db8::3]:443"),
    ]
    # the winner came fourth; every other attempt was cancelled
    assert sorted(network.cancelled) == sorted(
        ["[2001:db8::1]:443", "192.0.2.1:443", "[2001:db8::2]:443", "[2001:db8::3]:443"]
    )


async def test_happy_eyeballs_failure_starts_the_next_attempt_at_once(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "refuse", after=0.1),
        network.add(("192.0.2.2", 80), "hang"),
        network.add(("192.0.2.3", 80), "refuse", after=0.01),
        network.add(("192.0.2.4", 80), "connect", after=0.5),
    )
    stream = await open_tcp_stream("service.test", 80, resolver=resolver)
    await stream.aclose()
    assert network.offsets() == [
        (0.0, "192.0.2.1:80"),
        (0.1, "192.0.2.2:80"),  # the first refused after 0.1 s: no waiting for 0.25
        (0.35, "192.0.2.3:80"),  # the second hangs: the full delay
        (0.36, "192.0.2.4:80"),  # the third refused after 0.01 s
    ]
    assert network.cancelled == ["192.0.2.2:80"]


async def test_happy_eyeballs_first_success_wins_and_losers_are_closed(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    # Both connect in the same tick: the first to report wins, the other is closed unused.
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "gate"),
        network.add(("192.0.2.2", 80), "gate"),
    )

    async def open_gate() -> None:
        await trio.sleep(0.3)
        network.gate.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(open_gate)
        stream = await open_tcp_stream("service.test", 80, resolver=resolver)
    async with stream:
        assert len(network.handed_out) == 2
        assert trio.current_time() == pytest.approx(0.3)
        winners = [
            name for name, sock in network.handed_out.items() if sock.fileno() == stream_fd(stream)
        ]
        assert len(winners) == 1
        losers = [sock for sock in network.handed_out.values() if sock.fileno() != -1]
        assert len(losers) == 1  # only the winner is still open
    assert network.cancelled == []


def stream_fd(stream: trio.SocketStream) -> int:
    return stream.socket.fileno()


async def test_happy_eyeballs_delay_zero_starts_everything_at_once(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        *(network.add((f"192.0.2.{i}", 80), "hang") for i in range(1, 4)),
        network.add(("192.0.2.9", 80), "connect", after=1),
    )
    async with await open_tcp_stream("service.test", 80, resolver=resolver, happy_eyeballs_delay=0):
        assert [when for when, _ in network.offsets()] == [0.0, 0.0, 0.0, 0.0]


async def test_happy_eyeballs_infinite_delay_is_one_at_a_time(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "hang"),
        network.add(("192.0.2.2", 80), "connect", after=0.1),
    )
    with trio.fail_after(60):  # virtual seconds: a lost wake-up fails instead of hanging
        stream = await open_tcp_stream(
            "service.test", 80, resolver=resolver, happy_eyeballs_delay=math.inf, connect_timeout=5
        )
    await stream.aclose()
    assert network.offsets() == [(0.0, "192.0.2.1:80"), (5.0, "192.0.2.2:80")]


async def test_happy_eyeballs_connect_timeout(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "hang"), network.add(("192.0.2.2", 80), "hang")
    )
    with trio.fail_after(60), pytest.raises(ConnectError) as caught:  # virtual seconds
        await open_tcp_stream("service.test", 80, resolver=resolver, connect_timeout=2)
    assert trio.current_time() == pytest.approx(2.25)
    assert [address for address, _ in caught.value.attempts] == ["192.0.2.1:80", "192.0.2.2:80"]
    assert all(exc.errno == errno.ETIMEDOUT for _, exc in caught.value.attempts)
    assert "timed out after 2 s" in str(caught.value)


async def test_happy_eyeballs_bounds_the_attempts(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(*(network.add((f"192.0.2.{i}", 80), "refuse") for i in range(1, 21)))
    with pytest.raises(ConnectError, match="4 more not tried") as caught:
        await open_tcp_stream("service.test", 80, resolver=resolver)
    assert len(network.started) == len(caught.value.attempts) == 16
    assert caught.value.untried == 4
    network.started.clear()
    with pytest.raises(ConnectError) as caught:
        await open_tcp_stream("service.test", 80, resolver=resolver, max_attempts=3)
    assert [name for _, name in network.started] == ["192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"]
    assert caught.value.untried == 17


async def test_happy_eyeballs_filters_and_deduplicates_resolver_results(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    v4 = network.add(("192.0.2.1", 80), "refuse")
    v6 = network.add(("2001:db8::1", 80), "connect", after=1)  # time for duplicates to show
    resolver = FakeResolver(
        v4,
        v4,
        (INET, socket.SOCK_DGRAM, 17, "", ("192.0.2.7", 80)),
        (socket.AF_UNIX, STREAM, 0, "", "/run/x"),  # type: ignore[arg-type]
        (INET, 0, 0, "", ("192.0.2.1", 80)),  # type 0 ("any") is usable, but a duplicate
        v6,
    )
    async with await open_tcp_stream("service.test", 80, resolver=resolver):
        assert [name for _, name in network.started] == ["192.0.2.1:80", "[2001:db8::1]:80"]


async def test_happy_eyeballs_local_address_is_passed_and_filters(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("2001:db8::1", 80), "connect"),
        network.add(("192.0.2.1", 80), "connect", after=1),
    )
    async with await open_tcp_stream(
        "service.test", 80, resolver=resolver, local_address="198.51.100.7"
    ):
        assert [name for _, name in network.started] == ["192.0.2.1:80"]
        assert network.locals == [(INET, ("198.51.100.7", 0))]


async def test_happy_eyeballs_cancel_after_a_connection_closes_it(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "hang"),
        network.add(("192.0.2.2", 80), "connect", after=0.1),
    )
    with trio.CancelScope() as scope:
        # The caller is cancelled in the very tick the connection is made.
        network.on_connect = lambda name: scope.cancel()
        await open_tcp_stream("service.test", 80, resolver=resolver)
    assert scope.cancelled_caught
    assert network.handed_out["192.0.2.2:80"].fileno() == -1
    assert network.cancelled == ["192.0.2.1:80"]


async def test_happy_eyeballs_unexpected_error_cancels_the_rest(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    resolver = FakeResolver(
        network.add(("192.0.2.1", 80), "hang"),
        network.add(("192.0.2.2", 80), "connect", after=0.1),
    )

    def explode(name: str) -> None:
        raise RuntimeError(f"bug while connecting to {name}")

    network.on_connect = explode
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="bug while connecting")):
        await open_tcp_stream("service.test", 80, resolver=resolver)
    assert network.cancelled == ["192.0.2.1:80"]


async def test_happy_eyeballs_documented_timeline(
    autojump_clock: trio.testing.MockClock, network: FakeNetwork
) -> None:
    """The timeline drawn in docs/connect.md, step by step."""
    resolver = FakeResolver(
        network.add(("2001:db8::a", 80), "hang"),
        network.add(("2001:db8::b", 80), "hang"),
        network.add(("2001:db8::c", 80), "hang"),
        network.add(("192.0.2.10", 80), "refuse", after=0.05),
        network.add(("192.0.2.11", 80), "connect", after=0.05),
    )
    async with await open_tcp_stream("service.test", 80, resolver=resolver):
        assert trio.current_time() == pytest.approx(0.6)
    assert network.offsets() == [
        (0.0, "[2001:db8::a]:80"),
        (0.25, "192.0.2.10:80"),
        (0.3, "[2001:db8::b]:80"),
        (0.55, "192.0.2.11:80"),
    ]
    assert sorted(network.cancelled) == ["[2001:db8::a]:80", "[2001:db8::b]:80"]
