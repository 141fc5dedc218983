"""evtrio.listener: listeners, TCP/Unix serving, pause, caps, back-off and shutdown.

Everything runs over real loopback sockets with the real clock; each test bounds its
waiting with a generous ``trio.fail_after`` (CI has two noisy cores).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import stat
import subprocess
import sys
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

import evtrio
import evtrio.listener
from evtrio import Listener, Server, serve_listeners, serve_tcp, serve_unix
from evtrio.listener import _compute_backlog
from evtrio.streams._socket import _REGISTERED, stdlib_socket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

TIMEOUT = 30.0
"""Upper bound for any single test's waiting; never reached when things work."""

GREETING = b"hello\n"


def ipv6_loopback_usable() -> bool:
    """Whether this host can bind ::1 (some CI containers have IPv6 disabled)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def has_data(stream: trio.SocketStream) -> bool:
    """Whether bytes (or EOF) are waiting on *stream*, without consuming them."""
    sock = stdlib_socket(stream)
    assert sock is not None
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    return True


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll *predicate* until it holds (the test's fail_after bounds the wait).

    The server's counters are snapshots with no event to wait for: polling them is
    what a monitoring client does too.
    """
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.005)


async def settle() -> None:
    """Let every task run until all are blocked, I/O included."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)


async def greet_then_wait(stream: trio.SocketStream) -> None:
    """Send a greeting, then hold the connection until the client closes it."""
    await stream.send_all(GREETING)
    while await stream.receive_some():
        pass


def stuck_handler() -> tuple[Callable[[trio.SocketStream], Awaitable[None]], trio.Event]:
    """A handler that greets, then waits until cancelled, and the event it sets then."""
    cancelled = trio.Event()

    async def stuck(stream: trio.SocketStream) -> None:
        await stream.send_all(GREETING)
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    return stuck, cancelled


async def echo(stream: trio.SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def connect(port: int, host: str = "127.0.0.1") -> trio.SocketStream:
    return await trio.open_tcp_stream(host, port)


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


@asynccontextmanager
async def serving(
    handler: Callable[[trio.SocketStream], Awaitable[object]], **options: Any
) -> AsyncIterator[Server]:
    """Run serve_tcp on 127.0.0.1 for the body of the block, then cancel it."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_tcp, handler, 0, host="127.0.0.1", **options))
        yield server
        nursery.cancel_scope.cancel()


class ScriptedSocket(socket.socket):
    """A real listening socket whose first ``accept`` calls fail with scripted errnos."""

    def __init__(self, *codes: int) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.script = list(codes)

    def accept(self) -> tuple[socket.socket, Any]:
        if self.script:
            code = self.script.pop(0)
            raise OSError(code, os.strerror(code))
        return super().accept()


def scripted_listener(*codes: int) -> Listener:
    sock = ScriptedSocket(*codes)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return Listener.from_socket(sock)


# --- listeners -------------------------------------------------------------------------


async def test_Listener_accepts_a_registered_nodelay_stream() -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener:
            assert listener.family == socket.AF_INET
            assert listener.port == listener.address[1] > 0
            assert listener.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            assert not listener.socket.getblocking()
            async with await connect(listener.port) as client, await listener.accept() as server:
                assert server.socket in _REGISTERED  # evtrio's fast path knows it
                assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                await client.send_all(b"ping")
                assert await receive_exactly(server, 4) == b"ping"
                await server.send_all(b"pong")
                assert await receive_exactly(client, 4) == b"pong"
            assert listener.statistics() == evtrio.ListenerStatistics(
                accepted=1, accept_errors=0, paused=False, closed=False
            )
        assert listener.closed
        assert listener.socket.fileno() == -1
        assert "closed" in repr(listener)


async def test_open_tcp_listeners_dual_stack_shares_one_port() -> None:
    with trio.fail_after(TIMEOUT):
        listeners = await evtrio.open_tcp_listeners(0)
        try:
            families = sorted(listener.family for listener in listeners)
            if ipv6_loopback_usable():
                assert families == [socket.AF_INET, socket.AF_INET6]
            else:
                assert families == [socket.AF_INET]
            assert len({listener.port for listener in listeners}) == 1
            for listener in listeners:
                if listener.family == socket.AF_INET6:
                    v6only = listener.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                    assert v6only == 1
                loopback = "::1" if listener.family == socket.AF_INET6 else "127.0.0.1"
                port = listener.port
                assert port is not None
                async with await connect(port, loopback), await listener.accept() as accepted:
                    assert accepted.socket.family == listener.family
        finally:
            for listener in listeners:
                await listener.aclose()


async def test_open_tcp_listeners_ipv6_loopback() -> None:
    with trio.fail_after(TIMEOUT):
        if not ipv6_loopback_usable():
            with pytest.raises(OSError, match=r"cannot listen on \[::1\]"):
                await evtrio.open_tcp_listeners(0, host="::1")
            return
        (listener,) = await evtrio.open_tcp_listeners(0, host="::1")
        async with listener:
            assert listener.address[0] == "::1"
            assert repr(listener) == f"<evtrio.Listener [::1]:{listener.port}>"
            assert listener.port is not None
            async with await connect(listener.port, "::1"), await listener.accept():
                pass


async def test_open_tcp_listeners_port_in_use_names_the_address() -> None:
    with trio.fail_after(TIMEOUT):
        (first,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        async with first:
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}") as info:
                await evtrio.open_tcp_listeners(first.port or 0, host="127.0.0.1")
            assert info.value.errno == errno.EADDRINUSE


async def test_open_tcp_listeners_reuse_port_shares_the_port() -> None:
    with trio.fail_after(TIMEOUT):
        (first,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1", reuse_port=True)
        port = first.port
        assert port is not None
        (second,) = await evtrio.open_tcp_listeners(port, host="127.0.0.1", reuse_port=True)
        async with first, second:
            assert second.port == port
            assert second.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
            clients = [await connect(port) for _ in range(8)]
            accepted: list[trio.SocketStream] = []
            for listener in (first, second):
                while True:
                    try:
                        stream, _ = listener._accept_nowait(None)
                    except trio.WouldBlock:
                        break
                    accepted.append(stream)
            # The kernel spread them over both sockets; every connection arrived once.
            assert len(accepted) == 8
            total = first.statistics().accepted + second.statistics().accepted
            assert total == 8
            for stream in accepted + clients:
                await stream.aclose()


async def test_open_tcp_listeners_reuse_port_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(OSError, match="SO_REUSEPORT is not available") as info:
        await evtrio.open_tcp_listeners(0, host="127.0.0.1", reuse_port=True)
    assert info.value.errno == errno.ENOPROTOOPT


async def test_open_tcp_listeners_retries_when_port_0_is_taken_in_another_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bind = evtrio.listener._bind_tcp
    ports: list[int] = []

    def taken_once(
        addresses: list[tuple[int, int, int, Any]], port: int, backlog: int, reuse_port: bool
    ) -> list[socket.socket]:
        ports.append(port)
        if len(ports) == 1:  # as if the first family's port were in use in the second
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return bind(addresses, port, backlog, reuse_port)

    monkeypatch.setattr(evtrio.listener, "_bind_tcp", taken_once)
    with trio.fail_after(TIMEOUT):
        listeners = await evtrio.open_tcp_listeners(0)  # the wildcard: two addresses
        for listener in listeners:
            await listener.aclose()
        assert ports == [0, 0]
        ports.clear()
        with pytest.raises(OSError, match="Address already in use"):
            await evtrio.open_tcp_listeners(listeners[0].port or 0)  # a given port: no retry
        assert len(ports) == 1


async def test_open_tcp_listeners_checks_arguments() -> None:
    with pytest.raises(TypeError, match="port must be an int"):
        await evtrio.open_tcp_listeners("80", host="127.0.0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port must be between"):
        await evtrio.open_tcp_listeners(70000, host="127.0.0.1")
    with pytest.raises(ValueError, match="backlog must be at least 1"):
        await evtrio.open_tcp_listeners(0, host="127.0.0.1", backlog=0)
    with pytest.raises(TypeError, match="backlog must be an int"):
        await evtrio.open_tcp_listeners(0, host="127.0.0.1", backlog=1.5)  # type: ignore[arg-type]


def test_backlog_is_capped_at_somaxconn() -> None:
    assert _compute_backlog(5) == 5
    assert _compute_backlog(10**9) == socket.SOMAXCONN


async def test_Listener_accept_is_a_checkpoint_on_the_fast_path() -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener, await connect(listener.port or 0):
            await settle()  # the connection is queued: accept() will not wait
            with trio.testing.assert_checkpoints():
                stream = await listener.accept()
            await stream.aclose()


async def test_Listener_cancelled_accept_leaves_the_connection_queued() -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener, await connect(listener.port or 0) as client:
            await client.send_all(b"first")
            await settle()
            with trio.CancelScope() as scope:
                scope.cancel()
                await listener.accept()
            assert scope.cancelled_caught
            assert listener.statistics().accepted == 0
            async with await listener.accept() as stream:
                assert await receive_exactly(stream, 5) == b"first"


async def test_Listener_pause_keeps_connections_in_the_backlog() -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        accepted: list[trio.SocketStream] = []

        async def accept_one() -> None:
            accepted.append(await listener.accept())

        async with listener, await connect(listener.port or 0):
            listener.pause()
            listener.pause()  # twice is harmless
            assert listener.paused
            assert "paused" in repr(listener)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(accept_one)
                await settle()
                assert accepted == []
                assert listener.statistics().accepted == 0
                listener.resume()
            assert len(accepted) == 1
            assert not listener.paused
            await accepted[0].aclose()


@pytest.mark.parametrize("paused", [False, True])
async def test_Listener_aclose_wakes_a_waiting_accept(paused: bool) -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        if paused:
            listener.pause()
        errors: list[BaseException] = []

        async def accept_and_fail() -> None:
            with pytest.raises(trio.ClosedResourceError) as info:
                await listener.accept()
            errors.append(info.value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and_fail)
            await settle()
            await listener.aclose()
        assert len(errors) == 1
        await listener.aclose()  # twice is harmless
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()
        assert listener.statistics().closed


async def test_Listener_second_accepting_task_is_busy() -> None:
    with trio.fail_after(TIMEOUT):
        (listener,) = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener, trio.open_nursery() as nursery:
            nursery.start_soon(listener.accept)
            await settle()
            with pytest.raises(trio.BusyResourceError, match="already accepting"):
                await listener.accept()
            nursery.cancel_scope.cancel()


async def test_Listener_retries_transient_accept_errors() -> None:
    with trio.fail_after(TIMEOUT):
        listener = scripted_listener(errno.ECONNABORTED, errno.EPROTO)
        async with listener, await connect(listener.port or 0), await listener.accept():
            assert listener.statistics().accept_errors == 2
            assert listener.statistics().accepted == 1


async def test_Listener_accept_raises_lasting_errors() -> None:
    with trio.fail_after(TIMEOUT):
        listener = scripted_listener(errno.EMFILE)
        async with listener, await connect(listener.port or 0):
            with pytest.raises(OSError, match="Too many open files"):
                await listener.accept()
            async with await listener.accept():  # the connection stayed queued
                pass


def test_Listener_from_socket_checks_the_socket() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ValueError, match="SOCK_STREAM"),
    ):
        Listener.from_socket(udp)
    with socket.socket() as idle:
        idle.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="not listening"):
            Listener.from_socket(idle)


def test_factory_built_classes_have_no_public_constructor() -> None:
    with socket.socket() as sock, pytest.raises(TypeError, match="no public constructor"):
        Listener(sock)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no public constructor"):
        Server()


# --- Unix listeners --------------------------------------------------------------------


async def test_open_unix_listener_accepts_and_unlinks(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with trio.fail_after(TIMEOUT):
        listener = await evtrio.open_unix_listener(path, mode=0o600)
        async with listener:
            assert stat.S_ISSOCK(path.lstat().st_mode)
            assert stat.S_IMODE(path.lstat().st_mode) == 0o600
            assert listener.port is None
            assert listener.address == str(path)
            assert repr(listener) == f"<evtrio.Listener unix:{path}>"
            async with (
                await trio.open_unix_socket(str(path)) as client,
                await listener.accept() as stream,
            ):
                assert stream.socket in _REGISTERED
                await client.send_all(b"over unix")
                assert await receive_exactly(stream, 9) == b"over unix"
        assert not path.exists()


async def test_open_unix_listener_replaces_a_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # a server that died without removing its socket file
    assert stat.S_ISSOCK(path.lstat().st_mode)
    with trio.fail_after(TIMEOUT):
        async with (
            await evtrio.open_unix_listener(path) as listener,
            await trio.open_unix_socket(str(path)),
            await listener.accept(),
        ):
            pass


async def test_open_unix_listener_refuses_a_live_socket(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with trio.fail_after(TIMEOUT):
        async with await evtrio.open_unix_listener(path) as first:
            with pytest.raises(OSError, match="in use by another listener") as info:
                await evtrio.open_unix_listener(path)
            assert info.value.errno == errno.EADDRINUSE
            # The first listener keeps its file and its socket; the probe's connection
            # arrives there and is closed at once.
            async with await first.accept() as probe:
                assert await probe.receive_some() == b""
            async with await trio.open_unix_socket(str(path)), await first.accept():
                pass


async def test_open_unix_listener_leaves_other_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with pytest.raises(OSError, match="not a socket") as info:
        await evtrio.open_unix_listener(path)
    assert info.value.errno == errno.EADDRINUSE
    assert path.read_text() == "precious"


async def test_open_unix_listener_keeps_a_file_that_replaced_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    listener = await evtrio.open_unix_listener(path)
    path.unlink()
    path.write_text("someone else's")
    await listener.aclose()
    assert path.read_text() == "someone else's"


async def test_open_unix_listener_abstract_namespace() -> None:
    name = f"\0evtrio-test-{os.getpid()}"
    with pytest.raises(ValueError, match="no file"):
        await evtrio.open_unix_listener(name, mode=0o600)
    if not sys.platform.startswith("linux"):
        return  # only Linux has the abstract namespace
    with trio.fail_after(TIMEOUT):
        async with (
            await evtrio.open_unix_listener(name) as listener,
            await trio.open_unix_socket(name),
            await listener.accept(),
        ):
            pass


# --- serving ---------------------------------------------------------------------------


async def test_serve_tcp_serves_and_counts() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(echo) as server:
            assert server.port is not None
            assert server.addresses == (("127.0.0.1", server.port),)
            assert [listener.port for listener in server.listeners] == [server.port]
            for n in range(3):
                async with await connect(server.port) as client:
                    await client.send_all(b"round %d" % n)
                    assert await receive_exactly(client, 7) == b"round %d" % n
                    assert server.connections == 1
                    assert repr(server) == (
                        f"<evtrio.Server on 127.0.0.1:{server.port}: 1 connections>"
                    )
            await eventually(lambda: server.connections == 0)
            assert server.statistics() == evtrio.ServerStatistics(
                accepted=3,
                active=0,
                max_connections=None,
                waiting_for_capacity=0,
                handler_errors=0,
                accept_errors=0,
                capacity_errors=0,
                paused=False,
                shutting_down=False,
            )


async def test_serve_tcp_closes_the_stream_when_the_handler_returns() -> None:
    async def say_and_leave(stream: trio.SocketStream) -> None:
        await stream.send_all(b"bye")

    with trio.fail_after(TIMEOUT):
        async with serving(say_and_leave) as server, await connect(server.port or 0) as client:
            assert await receive_exactly(client, 3) == b"bye"
            assert await client.receive_some() == b""


async def test_serve_tcp_handler_errors_are_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[Exception] = []

    async def fail_first(stream: trio.SocketStream) -> None:
        if not reported:
            raise ValueError("boom")
        await stream.send_all(b"fine")

    caplog.set_level(logging.ERROR, logger="evtrio.listener")
    with trio.fail_after(TIMEOUT):
        async with serving(fail_first, on_error=reported.append) as server:
            async with await connect(server.port or 0) as client:
                assert await client.receive_some() == b""  # closed after the failure
            assert [str(exc) for exc in reported] == ["boom"]
            async with await connect(server.port or 0) as client:  # still serving
                assert await receive_exactly(client, 4) == b"fine"
            assert server.statistics().handler_errors == 1
    (record,) = caplog.records
    assert record.name == "evtrio.listener"
    assert record.levelno == logging.ERROR
    assert "ValueError('boom')" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[1] is reported[0]


async def test_serve_tcp_failing_on_error_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def fail(stream: trio.SocketStream) -> None:
        raise KeyError("handler")

    def broken_hook(exc: Exception) -> None:
        raise RuntimeError("hook")

    caplog.set_level(logging.ERROR, logger="evtrio.listener")
    with trio.fail_after(TIMEOUT):
        async with serving(fail, on_error=broken_hook) as server:
            for _ in range(2):
                async with await connect(server.port or 0) as client:
                    assert await client.receive_some() == b""
            await eventually(lambda: server.statistics().handler_errors == 2)
    hook_records = [r for r in caplog.records if "on_error hook" in r.getMessage()]
    assert len(hook_records) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in hook_records)


async def test_serve_tcp_reports_what_a_cancelled_handler_raised() -> None:
    # A handler whose nursery fails while the server cancels it: the server's scope
    # takes out its own Cancelled, and the rest is reported like any handler error.
    reported: list[Exception] = []

    async def handler(stream: trio.SocketStream) -> None:
        async def cleanup_fails() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise ValueError("cleanup failed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cleanup_fails)
            await stream.send_all(GREETING)
            await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with (
            serving(handler, on_error=reported.append) as server,
            await connect(server.port or 0) as client,
        ):
            assert await receive_exactly(client, len(GREETING)) == GREETING
            await server.shutdown(grace=0)
            assert await client.receive_some() == b""
    (group,) = reported
    assert isinstance(group, ExceptionGroup)
    assert [str(exc) for exc in group.exceptions] == ["cleanup failed"]
    assert server.statistics().handler_errors == 1


async def check_paused_then_resumed(server: Server) -> None:
    """A paused greeting server leaves a client waiting until it is resumed."""
    async with await connect(server.port or 0) as client:
        await settle()
        assert server.statistics().accepted == 0
        assert not has_data(client)
        server.resume()
        assert not server.paused
        assert await receive_exactly(client, len(GREETING)) == GREETING
        assert server.statistics().accepted == 1


async def test_serve_tcp_pause_and_resume() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(greet_then_wait) as server:
            server.pause()
            assert server.paused
            assert server.statistics().paused
            await check_paused_then_resumed(server)


async def test_serve_listeners_starts_paused_when_its_listeners_are() -> None:
    with trio.fail_after(TIMEOUT):
        listeners = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
        for listener in listeners:
            listener.pause()  # libevent's LEV_OPT_DISABLED
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_listeners, greet_then_wait, listeners)
            await check_paused_then_resumed(server)
            nursery.cancel_scope.cancel()
        assert all(listener.closed for listener in listeners)


async def test_serve_tcp_max_connections_leaves_the_excess_in_the_backlog() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(greet_then_wait, max_connections=2) as server:
            port = server.port or 0
            first, second = await connect(port), await connect(port)
            for client in (first, second):
                assert await receive_exactly(client, len(GREETING)) == GREETING
            third = await connect(port)  # the kernel completes the handshake...
            await eventually(lambda: server.statistics().waiting_for_capacity == 1)
            await settle()
            stats = server.statistics()
            assert (stats.accepted, stats.active, stats.max_connections) == (2, 2, 2)
            assert server.connections == 2
            assert not has_data(third)  # ...but the server has not accepted it
            await first.aclose()
            assert await receive_exactly(third, len(GREETING)) == GREETING
            stats = server.statistics()
            assert (stats.accepted, stats.active, stats.waiting_for_capacity) == (3, 2, 0)
            await second.aclose()
            await third.aclose()
            await eventually(lambda: server.connections == 0)


async def test_serve_listeners_max_connections_moves_between_listeners() -> None:
    # Capacity goes to whichever listener has a connection waiting: an idle listener
    # never sits on it.
    with trio.fail_after(TIMEOUT):
        listeners = [
            *await evtrio.open_tcp_listeners(0, host="127.0.0.1"),
            *await evtrio.open_tcp_listeners(0, host="127.0.0.1"),
        ]
        ports = [listener.port or 0 for listener in listeners]
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_listeners, greet_then_wait, listeners, max_connections=1)
            )
            current = await connect(ports[0])
            assert await receive_exactly(current, len(GREETING)) == GREETING
            for port in (ports[1], ports[0], ports[1]):
                waiting = await connect(port)
                await eventually(lambda: server.statistics().waiting_for_capacity == 1)
                await settle()
                assert not has_data(waiting)
                await current.aclose()
                assert await receive_exactly(waiting, len(GREETING)) == GREETING
                current = waiting
            await current.aclose()
            assert server.statistics().accepted == 4
            nursery.cancel_scope.cancel()


async def test_Server_shutdown_lets_handlers_finish_then_cancels_the_rest() -> None:
    events: list[str] = []
    grace = 2.0

    async def handler(stream: trio.SocketStream) -> None:
        request = await stream.receive_some()
        if request == b"quick":
            await stream.send_all(b"done")
            events.append("quick finished")
            return
        try:
            await trio.sleep_forever()
        finally:
            events.append("stuck cancelled")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def run_server(task_status: trio.TaskStatus[Server]) -> None:
                await serve_tcp(handler, 0, host="127.0.0.1", task_status=task_status)
                events.append("serve_tcp returned")

            server = await nursery.start(run_server)
            port = server.port or 0
            quick, stuck = await connect(port), await connect(port)
            await stuck.send_all(b"stuck")
            await eventually(lambda: server.connections == 2)
            started = trio.current_time()

            async def shut_down() -> None:
                await server.shutdown(grace=grace)
                events.append("shutdown returned")

            nursery.start_soon(shut_down)
            await eventually(lambda: server.statistics().shutting_down)
            await eventually(lambda: all(listener.closed for listener in server.listeners))
            with pytest.raises(OSError, match="all attempts to connect"):
                await connect(port)  # no longer listening
            await quick.send_all(b"quick")
            assert await receive_exactly(quick, 4) == b"done"
            await eventually(lambda: "shutdown returned" in events)
            elapsed = trio.current_time() - started
            for client in (quick, stuck):
                await client.aclose()
        assert events == [
            "quick finished",
            "stuck cancelled",
            "serve_tcp returned",
            "shutdown returned",
        ]
        assert elapsed >= grace * 0.9
        assert server.connections == 0


async def test_Server_shutdown_returns_as_soon_as_handlers_finish() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(greet_then_wait) as server:
            client = await connect(server.port or 0)
            assert await receive_exactly(client, len(GREETING)) == GREETING
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(server.shutdown, grace=math.inf))
                await eventually(lambda: server.statistics().shutting_down)
                await client.aclose()
            assert trio.current_time() - started < TIMEOUT / 2
            assert server.statistics().active == 0
            await server.shutdown()  # again, once stopped: returns at once


async def test_Server_second_shutdown_shortens_the_grace() -> None:
    with trio.fail_after(TIMEOUT):
        async with serving(greet_then_wait) as server:
            client = await connect(server.port or 0)
            assert await receive_exactly(client, len(GREETING)) == GREETING
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(server.shutdown, grace=3600))
                await eventually(lambda: server.statistics().shutting_down)
                await server.shutdown(grace=0)
                assert server.connections == 0
            assert await client.receive_some() == b""  # the server closed it
            await client.aclose()
            with pytest.raises(ValueError, match="grace"):
                await server.shutdown(grace=-1)


async def test_Server_shutdown_cancels_handlers_in_a_given_nursery() -> None:
    stuck, cancelled = stuck_handler()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as handlers, trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_tcp, stuck, 0, host="127.0.0.1", handler_nursery=handlers)
            )
            async with await connect(server.port or 0) as client:
                assert await receive_exactly(client, len(GREETING)) == GREETING
                await server.shutdown(grace=0.1)
                assert cancelled.is_set()
                assert await client.receive_some() == b""
        assert not handlers.cancel_scope.cancel_called


async def test_serve_tcp_cancelled_closes_listeners_and_handlers() -> None:
    stuck, cancelled = stuck_handler()
    with trio.fail_after(TIMEOUT):
        async with serving(stuck) as server:
            client = await connect(server.port or 0)
            assert await receive_exactly(client, len(GREETING)) == GREETING
        assert cancelled.is_set()
        assert all(listener.closed for listener in server.listeners)
        assert await client.receive_some() == b""
        await client.aclose()
        await server.shutdown()  # nothing left to stop


async def test_serve_tcp_reports_transient_accept_errors() -> None:
    reported: list[Exception] = []
    with trio.fail_after(TIMEOUT):
        listener = scripted_listener(errno.ECONNABORTED)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(serve_listeners, greet_then_wait, [listener], on_error=reported.append)
            )
            async with await connect(server.port or 0) as client:
                assert await receive_exactly(client, len(GREETING)) == GREETING
            assert [getattr(exc, "errno", None) for exc in reported] == [errno.ECONNABORTED]
            assert server.statistics().accept_errors == 1
            assert server.statistics().capacity_errors == 0
            nursery.cancel_scope.cancel()


async def test_serve_tcp_backs_off_when_out_of_resources(caplog: pytest.LogCaptureFixture) -> None:
    reported: list[Exception] = []
    caplog.set_level(logging.WARNING, logger="evtrio.listener")
    with trio.fail_after(TIMEOUT):
        listener = scripted_listener(errno.ENOBUFS, errno.ENFILE, errno.EMFILE, errno.EMFILE)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve_listeners,
                    greet_then_wait,
                    [listener],
                    on_error=reported.append,
                    max_backoff=0.03,
                )
            )
            async with await connect(server.port or 0) as client:
                assert await receive_exactly(client, len(GREETING)) == GREETING
            assert server.statistics().capacity_errors == 4
            nursery.cancel_scope.cancel()
    codes = [getattr(exc, "errno", None) for exc in reported]
    assert codes == [errno.ENOBUFS, errno.ENFILE, errno.EMFILE, errno.EMFILE]
    messages = [record.getMessage() for record in caplog.records]
    address = f"127.0.0.1:{listener.port}"
    assert messages == [
        f"accept on {address} failed with {name} ({os.strerror(code)}); retrying in {delay} s"
        for name, code, delay in [
            ("ENOBUFS", errno.ENOBUFS, "0.01"),  # doubling from 10 ms...
            ("ENFILE", errno.ENFILE, "0.02"),
            ("EMFILE", errno.EMFILE, "0.03"),  # ...up to max_backoff
            ("EMFILE", errno.EMFILE, "0.03"),
        ]
    ]
    assert all(record.levelno == logging.WARNING for record in caplog.records)


async def test_serve_tcp_unexpected_accept_error_ends_serving() -> None:
    with trio.fail_after(TIMEOUT):
        listener = scripted_listener(errno.EINVAL)
        with pytest.RaisesGroup(
            pytest.RaisesExc(OSError, check=lambda exc: exc.errno == errno.EINVAL),
            flatten_subgroups=True,
        ):
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_listeners, echo, [listener])
                await trio.sleep_forever()
        assert listener.closed


async def test_serve_listeners_checks_options() -> None:
    with pytest.raises(ValueError, match="at least one listener"):
        await serve_listeners(echo, [])
    listeners = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        await serve_listeners(echo, listeners, max_connections=0)
    assert all(listener.closed for listener in listeners)  # handed over, so closed
    with pytest.raises(TypeError, match="max_connections must be an int"):
        await serve_tcp(echo, 0, max_connections=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_backoff"):
        await serve_tcp(echo, 0, max_backoff=0)


async def test_serve_unix_serves_and_removes_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve_unix, echo, path, max_connections=4))
            assert server.port is None
            assert server.addresses == (str(path),)
            async with await trio.open_unix_socket(str(path)) as client:
                await client.send_all(b"unix echo")
                assert await receive_exactly(client, 9) == b"unix echo"
            await server.shutdown(grace=5)
        assert not path.exists()
        assert server.statistics().accepted == 1


def test_serve_tcp_survives_emfile_in_a_subprocess() -> None:
    script = Path(__file__).with_name("listener_emfile.py")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "accepted while out of descriptors: 0",
        "backed off at least 3 times: True",
        "on_error saw: EMFILE",
        "greeting once descriptors were freed: b'hello\\n'",
        "accepted after recovery: 2",
    ]
    warnings = [line for line in result.stderr.splitlines() if "failed with EMFILE" in line]
    assert len(warnings) >= 3
    assert warnings[0].startswith("WARNING evtrio.listener: accept on 127.0.0.1:")
    assert warnings[0].endswith("retrying in 0.01 s")
    assert warnings[1].endswith("retrying in 0.02 s")
