"""evtrio.streams.tls: TLS streams, the handshake bound, typed errors, dirty shutdowns,
listeners and serving.

Memory-stream tests use Trio's in-process pairs (MockClock where timing matters); the
rest run over real loopback sockets with the real clock, each bounded by a generous
``trio.fail_after`` (CI has two noisy cores). Certificates come from a trustme CA.
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
import struct
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
import trustme
from helpers import NotHalfCloseable

import evtrio
from evtrio import (
    CertificateVerifyError,
    DirtyShutdownError,
    EvtrioError,
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
)
from evtrio.streams import (
    TLSListener,
    TLSStream,
    open_tls_listeners,
    open_tls_stream,
    serve_tls,
    wrap_tls,
)
from evtrio.streams.buffered import BufferedStream, HalfCloseableBufferedStream
from evtrio.streams.flush import FlushMode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

TIMEOUT = 30.0
"""Upper bound for any single test's waiting; never reached when things work."""

CA = trustme.CA()
CERT = CA.issue_cert("localhost", "127.0.0.1", "::1")
VERSIONS = {"tls13": None, "tls12": ssl.TLSVersion.TLSv1_2}


def server_context() -> ssl.SSLContext:
    """A server context with the trustme certificate (reporting dirty shutdowns)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    CERT.configure_cert(context)
    return context


def client_context(
    *, trusted: bool = True, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA (unless *trusted* is off)."""
    context = ssl.create_default_context()
    context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    if trusted:
        CA.configure_trust(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def tls_pair(
    client_transport: trio.abc.Stream,
    server_transport: trio.abc.Stream,
    *,
    client: ssl.SSLContext | None = None,
    **options: Any,
) -> tuple[TLSStream[Any], TLSStream[Any]]:
    return (
        wrap_tls(
            client_transport,
            client or client_context(),
            server_hostname="localhost",
            **options,
        ),
        wrap_tls(server_transport, server_context(), server_side=True, **options),
    )


def memory_tls_pair(**options: Any) -> tuple[TLSStream[Any], TLSStream[Any]]:
    return tls_pair(*trio.testing.memory_stream_pair(), **options)


async def handshake(*streams: TLSStream[Any]) -> None:
    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(stream.do_handshake)


def loopback_pair(buffer_size: int | None = None) -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected (client, server) pair of TCP streams on 127.0.0.1.

    *buffer_size* sets both kernel buffers of both sockets before they connect, so the
    receive windows they advertise are small from the start.
    """
    with socket.socket() as listener:
        client = socket.socket()
        try:
            for sock in (listener, client):
                if buffer_size is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client.connect(listener.getsockname())
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    return (
        trio.SocketStream(trio.socket.from_stdlib_socket(client)),
        trio.SocketStream(trio.socket.from_stdlib_socket(server)),
    )


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some():
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------- conformance


@pytest.mark.parametrize("https_compatible", [False, True], ids=["strict", "https"])
@pytest.mark.parametrize("version", VERSIONS, ids=list(VERSIONS))
async def test_TLSStream_conforms_over_memory_streams(version: str, https_compatible: bool) -> None:
    context = client_context(max_version=VERSIONS[version])

    async def maker() -> tuple[TLSStream[Any], TLSStream[Any]]:
        return memory_tls_pair(client=context, https_compatible=https_compatible)

    async def clogged() -> tuple[TLSStream[Any], TLSStream[Any]]:
        # Lockstep transports hold no bytes at all. The handshake runs first: otherwise a
        # receive_some meant to unclog the peer would itself wait in the handshake.
        streams = tls_pair(*trio.testing.lockstep_stream_pair(), client=context)
        await handshake(*streams)
        return streams

    with trio.fail_after(TIMEOUT):
        await trio.testing.check_two_way_stream(maker, clogged)


SO_MEMINFO = 55
"""Linux's per-socket memory counters (``SK_MEMINFO_*`` in ``<linux/sock_diag.h>``)."""


def has_send_room(stream: TLSStream[trio.SocketStream]) -> bool:
    """Whether the kernel would take more bytes on *stream*'s socket without waiting.

    Linux queues a send while the queued memory is below the send buffer size; it
    reports the socket writable only while a third of the buffer is free, so polling for
    writability cannot tell when the buffer is truly full.
    """
    raw = stream.transport_stream.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 9 * 4)
    meminfo = struct.unpack("9I", raw)
    return meminfo[5] < meminfo[3]  # SK_MEMINFO_WMEM_QUEUED < SK_MEMINFO_SNDBUF


async def clog(*streams: TLSStream[trio.SocketStream]) -> None:
    """Send through each stream until its socket's send buffer is full, for good.

    Each small record goes into one segment, which the kernel queues whole while there
    is room, so no ``send_all`` here waits (a cancelled one would break the TLS
    stream). Loopback delivery to the peer lags a little and frees room again: done
    only when no socket has room after a pause.
    """
    while True:
        for stream in streams:
            while has_send_room(stream):
                await stream.send_all(b"c" * 512)
        await trio.sleep(0.05)
        if not any(has_send_room(stream) for stream in streams):
            return


@pytest.mark.parametrize("version", VERSIONS, ids=list(VERSIONS))
async def test_TLSStream_conforms_over_loopback_sockets(version: str) -> None:
    context = client_context(max_version=VERSIONS[version])

    async def maker() -> tuple[TLSStream[trio.SocketStream], TLSStream[trio.SocketStream]]:
        return tls_pair(*loopback_pair(), client=context)

    async def clogged() -> tuple[TLSStream[trio.SocketStream], TLSStream[trio.SocketStream]]:
        streams = tls_pair(*loopback_pair(8192), client=context)
        await handshake(*streams)
        await clog(*streams)
        return streams

    with trio.fail_after(TIMEOUT):
        # Filling a socket exactly needs Linux's SO_MEMINFO; elsewhere, no clogged pair.
        linux = sys.platform == "linux"
        await trio.testing.check_two_way_stream(maker, clogged if linux else None)


async def test_TLSStream_is_a_plain_stream() -> None:
    client, server = memory_tls_pair()
    assert isinstance(client, trio.abc.Stream)
    assert not isinstance(client, trio.abc.HalfCloseableStream)
    assert not hasattr(client, "send_eof")
    await trio.aclose_forcefully(client)
    await trio.aclose_forcefully(server)


async def test_BufferedStream_over_TLS_is_plain_and_reads_lines() -> None:
    client, server = memory_tls_pair()
    buffered_client, buffered_server = BufferedStream(client), BufferedStream(server)
    assert not isinstance(buffered_client, HalfCloseableBufferedStream)
    assert not hasattr(buffered_client, "send_eof")
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(buffered_client.send_all, b"first line\r\nsecond")
            assert await buffered_server.readln(evtrio.EOL.CRLF) == b"first line"
        await buffered_client.send_all(b" half\r\n")
        assert await buffered_server.readln(evtrio.EOL.CRLF) == b"second half"
        # FINISHED would half-close: TLS cannot, so BufferedStream refuses.
        with pytest.raises(TypeError, match="cannot half-close"):
            await buffered_client.flush(FlushMode.FINISHED)
        await buffered_client.aclose()
        assert await buffered_server.readln(evtrio.EOL.CRLF) is None
        assert server.statistics().close_notify_received
        await buffered_server.aclose()


async def test_BufferedStream_over_TLS_conforms() -> None:
    async def maker() -> tuple[BufferedStream, BufferedStream]:
        client, server = memory_tls_pair()
        return BufferedStream(client), BufferedStream(server)

    with trio.fail_after(TIMEOUT):
        await trio.testing.check_two_way_stream(maker, None)


async def test_TLSStream_over_TLSStream() -> None:
    # TLS inside TLS, as through a TLS proxy: the inner session rides on the outer one.
    outer_client, outer_server = memory_tls_pair()
    inner_client, inner_server = tls_pair(outer_client, outer_server)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(inner_client.send_all, b"nested")
            assert await inner_server.receive_some() == b"nested"
        assert inner_client.transport_stream is outer_client
        await inner_client.aclose()
        assert await inner_server.receive_some() == b""
        await inner_server.aclose()
    assert outer_client.statistics().closed
    assert outer_server.statistics().closed


# ---------------------------------------------------------------- handshake and errors


async def test_TLSStream_statistics_and_peer_certificate() -> None:
    client_ctx, server_ctx = client_context(), server_context()
    client_ctx.set_alpn_protocols(["evtrio/1", "other/1"])
    server_ctx.set_alpn_protocols(["evtrio/1"])
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_ctx, server_hostname="localhost")
    server = wrap_tls(b, server_ctx, server_side=True)
    before = client.statistics()
    assert not before.handshake_complete
    assert before.version is None
    assert before.cipher is None
    assert "new" in repr(client)
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
    stats = client.statistics()
    assert stats.handshake_complete
    assert not stats.server_side
    assert stats.version in {"TLSv1.2", "TLSv1.3"}
    assert stats.cipher
    assert stats.alpn_protocol == "evtrio/1"
    assert server.statistics().server_side
    assert server.statistics().alpn_protocol == "evtrio/1"
    assert client.handshake_complete
    assert client.server_hostname == "localhost"
    assert server.server_hostname is None
    peer = client.ssl_stream.getpeercert()
    assert ("DNS", "localhost") in peer["subjectAltName"]
    assert "client for 'localhost'" in repr(client)
    assert stats.version is not None
    assert stats.version in repr(client)
    await client.aclose()
    await server.aclose()
    assert "closed" in repr(client)
    assert client.statistics().closed


async def test_TLSStream_handshake_is_done_once_and_is_a_checkpoint() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        with trio.testing.assert_checkpoints():
            await client.do_handshake()
    await client.aclose()
    await server.aclose()


async def test_TLSStream_untrusted_certificate_is_a_typed_error() -> None:
    client, server = memory_tls_pair(client=client_context(trusted=False))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def server_side() -> None:
                with pytest.raises(TLSHandshakeError, match="closed the connection during"):
                    await server.do_handshake()

            nursery.start_soon(server_side)
            with pytest.raises(CertificateVerifyError) as failed:
                await client.do_handshake()
            # Trio's SSLStream does not send the fatal alert OpenSSL prepared: the
            # server sees the connection end mid-handshake when the client closes.
            await client.aclose()
    error = failed.value
    assert isinstance(error, TLSHandshakeError)
    assert isinstance(error, TLSError)
    assert isinstance(error, EvtrioError)
    assert isinstance(error, trio.BrokenResourceError)
    assert error.verify_code == 20
    assert error.verify_message == "unable to get local issuer certificate"
    assert error.server_hostname == "localhost"
    assert error.reason == "CERTIFICATE_VERIFY_FAILED"
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert "the certificate of 'localhost' did not verify" in str(error)
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")
    await server.aclose()


async def test_TLSStream_wrong_hostname_is_a_typed_error() -> None:
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="example.org")
    server = wrap_tls(b, server_context(), server_side=True)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_expect_handshake_failure, server)
            with pytest.raises(CertificateVerifyError) as failed:
                await client.do_handshake()
            await client.aclose()
    assert failed.value.verify_code == 62
    assert "Hostname mismatch" in failed.value.verify_message
    assert failed.value.server_hostname == "example.org"
    await client.aclose()
    await server.aclose()


async def _expect_handshake_failure(stream: TLSStream[Any]) -> None:
    with pytest.raises(TLSHandshakeError):
        await stream.do_handshake()


async def test_TLSStream_peer_that_does_not_speak_TLS() -> None:
    a, b = trio.testing.memory_stream_pair()
    server = wrap_tls(b, server_context(), server_side=True)
    with trio.fail_after(TIMEOUT):
        await a.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with pytest.raises(TLSHandshakeError) as failed:
            await server.receive_some()
    assert failed.value.reason == "HTTP_REQUEST"
    assert "the TLS handshake failed" in str(failed.value)
    assert "_ssl.c" not in str(failed.value)
    await server.aclose()
    await a.aclose()


async def test_TLSStream_peer_closing_mid_handshake_is_a_handshake_error() -> None:
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost")

    async def hang_up() -> None:
        await b.receive_some()  # the ClientHello
        await b.aclose()

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hang_up)
            with pytest.raises(TLSHandshakeError, match="closed the connection during"):
                await client.do_handshake()
    await client.aclose()


async def test_TLSStream_handshake_timeout(autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost", handshake_timeout=5)
    start = trio.current_time()
    with pytest.raises(TLSHandshakeTimeoutError) as failed:
        await client.receive_some()  # the peer never answers the ClientHello
    assert trio.current_time() - start == pytest.approx(5)
    assert failed.value.timeout == 5
    assert failed.value.server_hostname == "localhost"
    assert isinstance(failed.value, TLSHandshakeError)
    assert "did not finish within 5.0 seconds" in str(failed.value)
    with pytest.raises(trio.BrokenResourceError):
        await client.send_all(b"late")
    await client.aclose()
    await b.aclose()


async def test_TLSStream_handshake_timeout_unlimited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost", handshake_timeout=math.inf)
    with trio.move_on_after(3600) as scope:
        await client.do_handshake()
    assert scope.cancelled_caught  # still waiting after an hour: no timeout of its own
    await client.aclose()
    await b.aclose()


async def test_TLSStream_failed_handshake_reaches_every_waiting_task() -> None:
    # Two tasks start on a fresh stream; the one that runs the handshake gets the typed
    # error, the other one gets it as the cause at once, not after the timeout.
    client, server = memory_tls_pair(client=client_context(trusted=False))
    errors: list[BaseException] = []

    async def use(operation: Callable[[], Awaitable[object]]) -> None:
        try:
            await operation()
        except trio.BrokenResourceError as exc:
            errors.append(exc)

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_expect_handshake_failure, server)
            async with trio.open_nursery() as users:
                users.start_soon(use, partial(client.send_all, b"request"))
                users.start_soon(use, client.receive_some)
            await client.aclose()  # lets the server's handshake end too
    driver, waiter = errors
    assert isinstance(driver, CertificateVerifyError)
    assert type(waiter) is trio.BrokenResourceError
    assert waiter.__cause__ is driver
    await client.aclose()
    await server.aclose()


async def test_TLSStream_call_cancelled_before_it_starts_leaves_the_stream_intact() -> None:
    client, server = memory_tls_pair()
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.receive_some()
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.send_all(b"never")
    assert not client.handshake_complete
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, b"after all")
            assert await server.receive_some() == b"after all"
    await client.aclose()
    await server.aclose()


async def test_TLSStream_cancelled_receive_loses_nothing() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        with trio.move_on_after(0.05):
            await client.receive_some()
        await server.send_all(b"kept")
        assert await client.receive_some() == b"kept"
        await server.aclose()
        assert await client.receive_some() == b""
    await client.aclose()


async def test_TLSStream_busy_in_each_direction() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await client.receive_some()
            await server.send_all(b"x")
    await client.aclose()
    await server.aclose()


async def test_TLSStream_closing_before_the_handshake_sends_nothing() -> None:
    # aclose() on a fresh stream closes the transport: it does not run a handshake just
    # to send a close_notify (the silent peer would hold it up).
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost")
    with trio.fail_after(TIMEOUT):
        await client.aclose()
        assert await b.receive_some() == b""
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some()
        with pytest.raises(trio.ClosedResourceError):
            await client.do_handshake()
        await client.aclose()  # again: harmless
    await b.aclose()


def test_wrap_tls_checks_its_arguments() -> None:
    a, _ = trio.testing.memory_stream_pair()
    with pytest.raises(ValueError, match="give server_hostname"):
        wrap_tls(a, client_context())
    with pytest.raises(ValueError, match="client side only"):
        wrap_tls(a, server_context(), server_side=True, server_hostname="localhost")
    with pytest.raises(ValueError, match="client-side SSLContext cannot accept"):
        wrap_tls(a, client_context(), server_side=True)
    with pytest.raises(ValueError, match="server-side SSLContext cannot connect"):
        wrap_tls(a, server_context(), server_hostname="localhost")
    for bad in (0, -1.0, math.nan):
        with pytest.raises(ValueError, match="handshake_timeout"):
            wrap_tls(a, client_context(), server_hostname="x", handshake_timeout=bad)
    with pytest.raises(TypeError, match="handshake_timeout"):
        wrap_tls(a, client_context(), server_hostname="x", handshake_timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ssl\.SSLContext"):
        wrap_tls(a, "context", server_hostname="x")  # type: ignore[arg-type]
    # A client that does not check names needs none.
    unchecked = client_context()
    unchecked.check_hostname = False
    assert wrap_tls(a, unchecked).server_hostname is None


def test_TLSStream_has_no_public_constructor() -> None:
    a, _ = trio.testing.memory_stream_pair()
    with pytest.raises(TypeError, match="no public constructor"):
        TLSStream(a, client_context())


# ---------------------------------------------------------------- shutdown


async def test_TLSStream_clean_close_is_end_of_stream() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        await server.send_all(b"all of it")
        await server.aclose()
        assert await read_to_eof(client) == b"all of it"
        assert await client.receive_some() == b""  # and again
    stats = client.statistics()
    assert stats.close_notify_received
    assert not stats.dirty_shutdown
    assert not client.dirty_shutdown
    await client.aclose()


async def test_TLSStream_dirty_shutdown_raises_by_default() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        await server.send_all(b"partial")
        # A peer that drops the connection without a close_notify.
        await trio.aclose_forcefully(server)
        assert await client.receive_some() == b"partial"  # what came is delivered
        with pytest.raises(DirtyShutdownError) as failed:
            await client.receive_some()
    error = failed.value
    assert isinstance(error, TLSError)
    assert isinstance(error, trio.BrokenResourceError)
    assert isinstance(error.__cause__, ssl.SSLError)
    assert "without a TLS close_notify" in str(error)
    assert client.dirty_shutdown
    assert client.statistics().dirty_shutdown
    assert not client.statistics().close_notify_received
    await client.aclose()


async def test_TLSStream_tolerated_dirty_shutdown_is_end_of_stream() -> None:
    client, server = memory_tls_pair()
    client.tolerate_dirty_shutdown = True
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        await server.send_all(b"partial")
        await trio.aclose_forcefully(server)
        assert await read_to_eof(client) == b"partial"
        with trio.testing.assert_checkpoints():
            assert await client.receive_some(10) == b""  # and again
        with pytest.raises(ValueError, match="at least 1"):
            await client.receive_some(0)
    assert client.dirty_shutdown
    stats = client.statistics()
    assert stats.dirty_shutdown
    assert not stats.close_notify_received
    await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some()


async def test_TLSStream_tolerate_dirty_shutdown_option() -> None:
    client, server = memory_tls_pair(tolerate_dirty_shutdown=True)
    assert client.tolerate_dirty_shutdown
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        await trio.aclose_forcefully(client)
        assert await server.receive_some() == b""
    assert server.dirty_shutdown
    await server.aclose()


async def test_TLSStream_https_compatible_sends_and_expects_no_close_notify() -> None:
    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost", https_compatible=True)
    server = wrap_tls(b, server_context(), server_side=True)
    assert client.https_compatible
    assert client.tolerate_dirty_shutdown  # implied
    client.tolerate_dirty_shutdown = False
    assert client.tolerate_dirty_shutdown  # still implied
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        await client.aclose()  # no close_notify: the strict server sees a dirty shutdown
        with pytest.raises(DirtyShutdownError):
            await server.receive_some()
    await server.aclose()

    a, b = trio.testing.memory_stream_pair()
    client = wrap_tls(a, client_context(), server_hostname="localhost")
    https_server = wrap_tls(b, server_context(), server_side=True, https_compatible=True)
    with trio.fail_after(TIMEOUT):
        await handshake(client, https_server)
        await trio.aclose_forcefully(client)
        assert await https_server.receive_some() == b""
    assert https_server.dirty_shutdown
    await https_server.aclose()


async def test_TLSStream_cancelled_aclose_still_closes_without_close_notify() -> None:
    client, server = memory_tls_pair()
    with trio.fail_after(TIMEOUT):
        await handshake(client, server)
        with trio.CancelScope() as scope:
            scope.cancel()
            await client.aclose()
        assert client.statistics().closed
        with pytest.raises(DirtyShutdownError):
            await server.receive_some()
    await server.aclose()


# ---------------------------------------------------------------- open_tls_stream


async def test_open_tls_stream_verifies_and_sends_SNI(nursery: trio.Nursery) -> None:
    names: list[str | None] = []
    context = server_context()
    context.sni_callback = lambda _obj, name, _ctx: names.append(name)

    async def greet(stream: TLSStream[trio.SocketStream]) -> None:
        await stream.send_all(b"hello " + str(stream.statistics().version).encode())

    server = await nursery.start(partial(serve_tls, greet, 0, context, host="127.0.0.1"))
    with trio.fail_after(TIMEOUT):
        # A name: sent in SNI and verified. The server listens on 127.0.0.1 only, and
        # "localhost" may resolve to ::1 first: happy eyeballs moves on.
        stream = await open_tls_stream("localhost", server.port, ssl_context=client_context())
        assert stream.handshake_complete
        assert isinstance(stream.transport_stream, trio.SocketStream)
        assert (await read_to_eof(stream)).startswith(b"hello TLSv1.")
        assert stream.statistics().close_notify_received
        await stream.aclose()
        # An address: verified against the certificate's IP entries, no SNI (RFC 6066).
        stream = await open_tls_stream("127.0.0.1", server.port, ssl_context=client_context())
        await read_to_eof(stream)
        await stream.aclose()
        # An address, with the name to verify and send given separately.
        stream = await open_tls_stream(
            "127.0.0.1", server.port, ssl_context=client_context(), server_hostname="localhost"
        )
        assert stream.server_hostname == "localhost"
        await read_to_eof(stream)
        await stream.aclose()
    assert names == ["localhost", None, "localhost"]


async def test_open_tls_stream_default_context_refuses_an_unknown_CA(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[Exception] = []
    server = await nursery.start(
        partial(
            serve_tls,
            trio.sleep_forever,
            0,
            server_context(),
            host="127.0.0.1",
            on_error=failures.append,
        )
    )
    caplog.set_level(logging.INFO, logger="evtrio.streams.tls")
    with trio.fail_after(TIMEOUT):
        # The default context trusts the system's CAs, not the test CA.
        with pytest.raises(CertificateVerifyError) as failed:
            await open_tls_stream("127.0.0.1", server.port)
        assert failed.value.verify_code == 20
        assert failed.value.server_hostname == "127.0.0.1"
        # The server logged the refusal and reported it; it never called the handler.
        while not failures:  # noqa: ASYNC110 - the server reports from its own task
            await trio.sleep(0.01)
    [failure] = failures
    assert isinstance(failure, TLSHandshakeError)
    assert "closed the connection during the TLS handshake" in str(failure)
    assert any("TLS handshake with 127.0.0.1:" in r.getMessage() for r in caplog.records)
    assert server.statistics().handler_errors == 0


async def test_open_tls_stream_wrong_name(nursery: trio.Nursery) -> None:
    server = await nursery.start(
        partial(serve_tls, trio.sleep_forever, 0, server_context(), host="127.0.0.1")
    )
    with trio.fail_after(TIMEOUT), pytest.raises(CertificateVerifyError) as failed:
        await open_tls_stream(
            "127.0.0.1",
            server.port,
            ssl_context=client_context(),
            server_hostname="www.example.org",
        )
    assert failed.value.verify_code == 62
    assert failed.value.server_hostname == "www.example.org"


async def test_open_tls_stream_handshake_timeout_closes_the_socket() -> None:
    # A TCP server that accepts and never answers the ClientHello.
    [listener] = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
    with trio.fail_after(TIMEOUT):
        async with listener, trio.open_nursery() as nursery:

            async def silent_server() -> None:
                stream = await listener.accept()
                async with stream:
                    hello = await read_to_eof(stream)
                assert hello[:1] == b"\x16"  # a TLS handshake record, then the close

            nursery.start_soon(silent_server)
            start = trio.current_time()
            with pytest.raises(TLSHandshakeTimeoutError) as failed:
                await open_tls_stream(
                    "127.0.0.1",
                    listener.port or 0,
                    ssl_context=client_context(),
                    handshake_timeout=0.3,
                )
            assert trio.current_time() - start >= 0.3
            assert failed.value.timeout == 0.3


class RecordingConnector:
    """A TCPConnector handing out one end of a memory stream pair."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, float]] = []
        self.client, self.peer = trio.testing.memory_stream_pair()

    async def __call__(
        self, host: str, port: int, /, *, happy_eyeballs_delay: float
    ) -> trio.abc.Stream:
        self.calls.append((host, port, happy_eyeballs_delay))
        await trio.lowlevel.checkpoint()
        return self.client


async def test_open_tls_stream_over_a_custom_connector() -> None:
    connector = RecordingConnector()
    server = wrap_tls(connector.peer, server_context(), server_side=True)

    async def answer() -> None:
        assert await server.receive_some() == b"ping"
        await server.send_all(b"pong")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            stream = await open_tls_stream(
                "localhost",
                8443,
                ssl_context=client_context(),
                happy_eyeballs_delay=0.1,
                connect=connector,
            )
            await stream.send_all(b"ping")
            assert await stream.receive_some() == b"pong"
    assert connector.calls == [("localhost", 8443, 0.1)]
    assert stream.transport_stream is connector.client
    await stream.aclose()
    await server.aclose()


async def test_open_tls_stream_closes_the_transport_when_cancelled() -> None:
    connector = RecordingConnector()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:

            async def connect() -> None:
                await open_tls_stream(
                    "localhost", 443, ssl_context=client_context(), connect=connector
                )

            nursery.start_soon(connect)
            assert (await connector.peer.receive_some())[:1] == b"\x16"  # ClientHello
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        # The half-done handshake was abandoned and the transport closed.
        assert await connector.peer.receive_some() == b""
    await connector.peer.aclose()


async def test_open_tls_stream_closes_the_transport_when_the_handshake_fails() -> None:
    connector = RecordingConnector()

    async def not_tls() -> None:
        await connector.peer.receive_some()
        await connector.peer.send_all(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(not_tls)
            with pytest.raises(TLSHandshakeError) as failed:
                await open_tls_stream(
                    "localhost", 443, ssl_context=client_context(), connect=connector
                )
        assert failed.value.reason == "WRONG_VERSION_NUMBER"
        assert await read_to_eof(connector.peer) == b""
    await connector.peer.aclose()


async def test_open_tls_stream_checks_options_before_connecting() -> None:
    connector = RecordingConnector()
    with pytest.raises(ValueError, match="server-side SSLContext"):
        await open_tls_stream("localhost", 443, ssl_context=server_context(), connect=connector)
    with pytest.raises(ValueError, match="handshake_timeout"):
        await open_tls_stream("localhost", 443, handshake_timeout=-1, connect=connector)
    assert connector.calls == []
    await connector.client.aclose()
    await connector.peer.aclose()


# ---------------------------------------------------------------- listeners


async def test_TLSListener_accepts_without_waiting_for_handshakes() -> None:
    [listener] = await open_tls_listeners(
        0, server_context(), host="127.0.0.1", handshake_timeout=1.5
    )
    assert isinstance(listener, TLSListener)
    assert listener.port == listener.transport_listener.port
    assert listener.address[0] == "127.0.0.1"
    assert "TLSListener" in repr(listener)
    with trio.fail_after(TIMEOUT):
        async with listener:
            # A silent client first: accepting it must not hold up the next one.
            silent = await trio.open_tcp_stream("127.0.0.1", listener.port or 0)
            first = await listener.accept()
            assert first.server_side
            assert not first.handshake_complete
            async with trio.open_nursery() as nursery:

                async def client() -> None:
                    stream = await open_tls_stream(
                        "localhost", listener.port or 0, ssl_context=client_context()
                    )
                    async with stream:
                        assert await stream.receive_some() == b"welcome"

                nursery.start_soon(client)
                second = await listener.accept()
                await second.send_all(b"welcome")
                await second.aclose()
            # The silent client's handshake times out in the task that waits for it.
            with pytest.raises(TLSHandshakeTimeoutError):
                await first.receive_some()
            await first.aclose()
            assert await read_to_eof(silent) == b""
            await silent.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await listener.accept()


async def test_TLSListener_over_a_Unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "tls.sock")
    listener = TLSListener(await evtrio.open_unix_listener(path), server_context())
    assert listener.port is None
    assert listener.ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER
    with trio.fail_after(TIMEOUT):
        async with listener, trio.open_nursery() as nursery:

            async def client() -> None:
                transport = await trio.open_unix_socket(path)
                stream = wrap_tls(transport, client_context(), server_hostname="localhost")
                async with stream:
                    await stream.send_all(b"over unix")

            nursery.start_soon(client)
            stream = await listener.accept()
            async with stream:
                assert await read_to_eof(stream) == b"over unix"


async def test_TLS_listeners_refuse_client_contexts() -> None:
    with pytest.raises(ValueError, match="client-side SSLContext"):
        await open_tls_listeners(0, client_context(), host="127.0.0.1")
    [plain] = await evtrio.open_tcp_listeners(0, host="127.0.0.1")
    async with plain:
        with pytest.raises(ValueError, match="client-side SSLContext"):
            TLSListener(plain, client_context())
        with pytest.raises(ValueError, match="handshake_timeout"):
            TLSListener(plain, server_context(), handshake_timeout=0)
    with pytest.raises(ValueError, match="client-side SSLContext"):
        await serve_tls(trio.sleep_forever, 0, client_context(), host="127.0.0.1")


# ---------------------------------------------------------------- serve_tls


async def test_serve_tls_line_echo_over_BufferedStream(nursery: trio.Nursery) -> None:
    async def echo(stream: TLSStream[trio.SocketStream]) -> None:
        buffered = BufferedStream(stream)
        while (line := await buffered.readln(evtrio.EOL.CRLF)) is not None:
            await buffered.send_all(line.upper() + b"\r\n")

    server = await nursery.start(partial(serve_tls, echo, 0, server_context(), host="127.0.0.1"))
    with trio.fail_after(TIMEOUT):
        stream = BufferedStream(
            await open_tls_stream("127.0.0.1", server.port, ssl_context=client_context())
        )
        await stream.send_all(b"hello\r\nworld\r\n")
        assert await stream.readln(evtrio.EOL.CRLF) == b"HELLO"
        assert await stream.readln(evtrio.EOL.CRLF) == b"WORLD"
        await stream.aclose()
        await server.shutdown()


async def test_serve_tls_survives_failed_handshakes(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evtrio.streams.tls")
    failures: list[Exception] = []
    handled = 0

    async def handler(stream: TLSStream[trio.SocketStream]) -> None:
        nonlocal handled
        handled += 1
        await stream.send_all(b"served")

    server = await nursery.start(
        partial(
            serve_tls,
            handler,
            0,
            server_context(),
            host="127.0.0.1",
            on_error=failures.append,
            handshake_timeout=1.0,
        )
    )
    with trio.fail_after(TIMEOUT):
        # Plain HTTP to a TLS port.
        plain = await trio.open_tcp_stream("127.0.0.1", server.port)
        await plain.send_all(b"GET / HTTP/1.0\r\n\r\n")
        assert await read_to_eof(plain) == b""
        await plain.aclose()
        # A client that never says anything.
        silent = await trio.open_tcp_stream("127.0.0.1", server.port)
        assert await read_to_eof(silent) == b""  # closed after the handshake timeout
        await silent.aclose()
        # The server still serves.
        stream = await open_tls_stream("127.0.0.1", server.port, ssl_context=client_context())
        assert await read_to_eof(stream) == b"served"
        await stream.aclose()
    wrong_protocol, timed_out = failures
    assert isinstance(wrong_protocol, TLSHandshakeError)
    assert wrong_protocol.reason == "HTTP_REQUEST"
    assert isinstance(timed_out, TLSHandshakeTimeoutError)
    assert timed_out.timeout == 1.0
    assert handled == 1
    logged = [r for r in caplog.records if r.name == "evtrio.streams.tls"]
    assert len(logged) == 2
    assert all(r.levelno == logging.INFO for r in logged)
    assert server.statistics().handler_errors == 0


async def test_serve_tls_closes_cleanly_after_the_handler_and_dirtily_after_a_crash(
    nursery: trio.Nursery,
) -> None:
    errors: list[Exception] = []

    async def handler(stream: TLSStream[trio.SocketStream]) -> None:
        request = await stream.receive_some()
        await stream.send_all(b"partial answer")
        if request == b"crash":
            raise RuntimeError("handler crashed")

    server = await nursery.start(
        partial(serve_tls, handler, 0, server_context(), host="127.0.0.1", on_error=errors.append)
    )
    with trio.fail_after(TIMEOUT):
        stream = await open_tls_stream("127.0.0.1", server.port, ssl_context=client_context())
        await stream.send_all(b"fine")
        assert await read_to_eof(stream) == b"partial answer"
        assert stream.statistics().close_notify_received
        await stream.aclose()

        stream = await open_tls_stream("127.0.0.1", server.port, ssl_context=client_context())
        await stream.send_all(b"crash")
        assert await stream.receive_some() == b"partial answer"
        with pytest.raises(DirtyShutdownError):
            await stream.receive_some()  # the client can tell the answer is cut short
        await stream.aclose()
        while not errors:  # noqa: ASYNC110 - the server reports from its own task
            await trio.sleep(0.01)
    [error] = errors
    assert isinstance(error, RuntimeError)
    assert server.statistics().handler_errors == 1


async def test_serve_tls_on_error_hook_failures_are_logged(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(exc: Exception) -> None:
        raise ValueError("hook bug")

    server = await nursery.start(
        partial(
            serve_tls,
            trio.sleep_forever,
            0,
            server_context(),
            host="127.0.0.1",
            on_error=broken_hook,
        )
    )
    with trio.fail_after(TIMEOUT):
        plain = await trio.open_tcp_stream("127.0.0.1", server.port)
        await plain.send_all(b"not TLS\r\n\r\n")
        assert await read_to_eof(plain) == b""
        await plain.aclose()
        while not any("on_error hook" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await trio.sleep(0.01)


# ---------------------------------------------------------------- errors


def test_TLS_error_types_and_fields() -> None:
    error = CertificateVerifyError(verify_code=10, verify_message="certificate has expired")
    assert error.server_hostname is None
    assert str(error) == "the certificate did not verify: certificate has expired (code 10)"
    assert error.reason == "CERTIFICATE_VERIFY_FAILED"
    assert error.library == "SSL"
    timeout = TLSHandshakeTimeoutError(2.5)
    assert str(timeout) == "the TLS handshake did not finish within 2.5 seconds"
    assert timeout.reason is None
    dirty = DirtyShutdownError(reason="UNEXPECTED_EOF_WHILE_READING", library="SSL")
    assert dirty.reason == "UNEXPECTED_EOF_WHILE_READING"
    for exc in (error, timeout, dirty, TLSError("x")):
        assert isinstance(exc, EvtrioError)
        assert isinstance(exc, trio.BrokenResourceError)


class FlushRecorder(NotHalfCloseable):
    """A transport with an evtrio-style flush that records the modes it was given."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner)
        self.flushes: list[FlushMode] = []

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        self.flushes.append(mode)
        await trio.lowlevel.checkpoint()


async def test_TLSStream_passes_flush_down() -> None:
    a, b = trio.testing.memory_stream_pair()
    recorder = FlushRecorder(a)
    client, _ = tls_pair(recorder, b)
    await client.flush()
    await client.flush(FlushMode.NORMAL)
    assert recorder.flushes == [FlushMode.FLUSH, FlushMode.NORMAL]
    with pytest.raises(TypeError, match="cannot half-close"):
        await client.flush(FlushMode.FINISHED)
    plain_client, _ = memory_tls_pair()
    await plain_client.flush()  # a transport without flush: only a checkpoint
    await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.flush()
