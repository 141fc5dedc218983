"""TLS streams: libevent's OpenSSL bufferevents as helpers over :class:`trio.SSLStream`.

* :func:`open_tls_stream` connects to a host over TCP and completes a TLS handshake,
  with certificate verification and SNI on by default (``bufferevent_openssl_socket_new``
  in the ``CONNECTING`` state).
* :func:`wrap_tls` runs TLS over any Trio stream, a TCP connection or another evtrio
  wrapper (``bufferevent_openssl_filter_new``).
* :class:`TLSListener`, :func:`open_tls_listeners` and :func:`serve_tls` accept TLS
  connections (the ``ACCEPTING`` state).

Each gives a :class:`TLSStream`: a :class:`trio.SSLStream` underneath, plus a bounded
handshake (:exc:`~evtrio.errors.TLSHandshakeTimeoutError`), typed errors
(:exc:`~evtrio.errors.TLSError` and its subclasses) and a distinct report of a *dirty
shutdown*, a peer that closes the connection without a TLS ``close_notify``
(``bufferevent_openssl_set_allow_dirty_shutdown``).

TLS streams are not half-closeable: up to TLS 1.2 a ``close_notify`` ends the whole
session, so a :class:`TLSStream` is a plain :class:`trio.abc.Stream` and every evtrio
wrapper over one is too.
"""

from __future__ import annotations

__all__ = (
    "TCPConnector",
    "TLSListener",
    "TLSStream",
    "TLSStreamStatistics",
    "open_tls_listeners",
    "open_tls_stream",
    "serve_tls",
    "wrap_tls",
)

import logging
import operator
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, cast, final, overload

import trio
from typing_extensions import override

# evtrio.listener imports this package (for its socket seam): refer to it as a module, so
# that whichever of the two is imported first, both finish initialising.
from .. import listener as _listener
from .._util import ConflictDetector, NoPublicConstructor
from ..errors import (
    CertificateVerifyError,
    DirtyShutdownError,
    TLSError,
    TLSHandshakeError,
    TLSHandshakeTimeoutError,
)
from .connect import open_tcp_stream
from .flush import FlushMode, SupportsFlush

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..listener import Listener, Server

T_Stream = TypeVar("T_Stream", bound=trio.abc.Stream)
_T_co = TypeVar("_T_co", bound=trio.abc.Stream, covariant=True)

logger: Final = logging.getLogger("evtrio.streams.tls")

DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a TLS handshake may take before :exc:`~evtrio.errors.TLSHandshakeTimeoutError`."""

DEFAULT_HAPPY_EYEBALLS_DELAY: Final = 0.25
"""Seconds :func:`open_tls_stream` waits on one address before also trying the next."""

_DEFAULT_BACKLOG: Final = 128
"""The listen backlog when none is given (as :func:`evtrio.open_tcp_listeners`)."""

_DEFAULT_MAX_BACKOFF: Final = 1.0
"""The longest accept back-off when descriptors are short (as :func:`evtrio.serve_tcp`)."""

_SSL_LOCATION: Final = re.compile(r"\s*\(_ssl\.c:\d+\)$")
"""The C source location CPython appends to OpenSSL's messages."""


class TCPConnector(Protocol[_T_co]):
    """How :func:`open_tls_stream` opens the TCP connection it runs TLS over.

    :func:`evtrio.streams.open_tcp_stream` (the default) and
    :func:`trio.open_tcp_stream` both fit. Bind any other options with
    :func:`functools.partial`; the function must close what it opened when it fails or
    is cancelled.
    """

    def __call__(self, host: str, port: int, /, *, happy_eyeballs_delay: float) -> Awaitable[_T_co]:
        """Connect to *host* on *port* and return the connected stream."""
        ...


_default_connect: Final[TCPConnector[trio.SocketStream]] = open_tcp_stream
"""The connector :func:`open_tls_stream` uses when the caller gives none."""


@final
@dataclass(frozen=True, slots=True)
class TLSStreamStatistics:
    """A snapshot of a :class:`TLSStream`, from :meth:`TLSStream.statistics`.

    Attributes:
      server_side: whether this end is the TLS server.
      handshake_complete: whether the handshake has succeeded.
      version: the negotiated protocol, such as ``"TLSv1.3"``; ``None`` before the
        handshake.
      cipher: the negotiated cipher suite's name; ``None`` before the handshake.
      alpn_protocol: the protocol chosen by ALPN, or ``None``.
      close_notify_received: whether the peer ended the session cleanly (its
        ``close_notify`` arrived, so ``receive_some`` returned ``b""``).
      dirty_shutdown: whether the peer closed the connection without a
        ``close_notify`` (see :attr:`TLSStream.dirty_shutdown`).
      closed: whether :meth:`TLSStream.aclose` has been called.
    """

    server_side: bool
    handshake_complete: bool
    version: str | None
    cipher: str | None
    alpn_protocol: str | None
    close_notify_received: bool
    dirty_shutdown: bool
    closed: bool


@final
class TLSStream(trio.abc.Stream, Generic[T_Stream], metaclass=NoPublicConstructor):
    """A TLS connection over another stream: a :class:`trio.SSLStream` with evtrio's
    handshake timeout, typed errors and dirty-shutdown handling.

    Build one with :func:`wrap_tls`, :func:`open_tls_stream`, or accept one from a
    :class:`TLSListener` or :func:`serve_tls`. The stream owns its transport: closing
    it closes the transport.

    The handshake runs on :meth:`do_handshake`, or on the first ``send_all`` or
    ``receive_some``, and is bounded by ``handshake_timeout``. A failure raises
    :exc:`~evtrio.errors.TLSHandshakeError` (a
    :exc:`~evtrio.errors.CertificateVerifyError` when the peer's certificate is at
    fault, a :exc:`~evtrio.errors.TLSHandshakeTimeoutError` when it took too long), and
    every later call on the stream raises :exc:`trio.BrokenResourceError`.

    **End of stream.** ``receive_some`` returns ``b""`` when the peer's ``close_notify``
    arrives (a clean end: :attr:`TLSStreamStatistics.close_notify_received`). When the
    peer closes the connection *without* one, that is a dirty shutdown:
    :attr:`dirty_shutdown` becomes ``True`` and ``receive_some`` raises
    :exc:`~evtrio.errors.DirtyShutdownError`, or returns ``b""`` when
    :attr:`tolerate_dirty_shutdown` is set. OpenSSL can only tell the two apart when the
    context does not set :data:`ssl.OP_IGNORE_UNEXPECTED_EOF`; with that option a
    dirty shutdown reads as a clean one.

    **No half-close.** This is a :class:`trio.abc.Stream`, not a
    :class:`trio.abc.HalfCloseableStream`. Up to TLS 1.2, a ``close_notify`` ends both
    directions (its receiver must answer with its own and discard pending writes). TLS
    1.3 would allow ending one direction, but the version is negotiated, many peers
    still treat a ``close_notify`` as the end of the connection, and
    :class:`trio.SSLStream` offers no way to keep receiving after sending one.

    **Cancellation.** Once the handshake is done, a cancelled ``receive_some`` loses no
    data. As with :class:`trio.SSLStream`, cancelling ``send_all`` or a handshake in
    progress breaks the stream (part of a TLS record may have been sent): later calls
    raise :exc:`trio.BrokenResourceError`. A call cancelled before it starts leaves the
    stream as it was.

    Attributes:
      transport_stream: the stream that carries the encrypted bytes.
    """

    __slots__ = (
        "_close_notify_received",
        "_closed",
        "_dirty_shutdown",
        "_eof",
        "_handshake_done",
        "_handshake_failure",
        "_handshake_over",
        "_handshake_timeout",
        "_https_compatible",
        "_receive_conflict",
        "_send_conflict",
        "_server_hostname",
        "_server_side",
        "_ssl",
        "_tolerate_dirty_shutdown",
        "transport_stream",
    )

    def __init__(
        self,
        transport_stream: T_Stream,
        ssl_context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | bytes | None,
        https_compatible: bool,
        tolerate_dirty_shutdown: bool,
        handshake_timeout: float,
    ) -> None:
        self.transport_stream: T_Stream = transport_stream
        # The inner stream always reports a missing close_notify as an error; this class
        # decides what it means (https_compatible included).
        self._ssl = trio.SSLStream(
            transport_stream,
            ssl_context,
            server_side=server_side,
            server_hostname=server_hostname,
            https_compatible=False,
        )
        self._server_side = server_side
        self._server_hostname = (
            server_hostname.decode("ascii", "backslashreplace")
            if isinstance(server_hostname, bytes)
            else server_hostname
        )
        self._https_compatible = https_compatible
        self._tolerate_dirty_shutdown = tolerate_dirty_shutdown
        self._handshake_timeout = handshake_timeout
        self._receive_conflict = ConflictDetector("another task is receiving on this TLS stream")
        self._send_conflict = ConflictDetector("another task is sending on this TLS stream")
        self._handshake_over: trio.Event | None = None  # set once the handshake ended
        self._handshake_done = False
        self._handshake_failure: BaseException | None = None
        self._closed = False
        self._eof = False  # a tolerated dirty shutdown: receive_some returns b"" from now on
        self._close_notify_received = False
        self._dirty_shutdown = False

    # ------------------------------------------------------------------ properties

    @property
    def ssl_stream(self) -> trio.SSLStream[T_Stream]:
        """The :class:`trio.SSLStream` underneath (``bufferevent_openssl_get_ssl``).

        It forwards the :class:`ssl.SSLObject`'s methods: ``getpeercert()``,
        ``cipher()``, ``version()``, ``selected_alpn_protocol()``, ``session`` and so
        on. Read from it; sending or receiving on it directly bypasses this stream's
        bookkeeping.
        """
        return self._ssl

    @property
    def server_side(self) -> bool:
        """Whether this end is the TLS server."""
        return self._server_side

    @property
    def server_hostname(self) -> str | None:
        """The name a client sends in SNI and verifies the certificate against."""
        return self._server_hostname

    @property
    def https_compatible(self) -> bool:
        """Whether :meth:`aclose` skips the ``close_notify`` (see :func:`wrap_tls`)."""
        return self._https_compatible

    @property
    def handshake_timeout(self) -> float:
        """Seconds the handshake may take."""
        return self._handshake_timeout

    @property
    def handshake_complete(self) -> bool:
        """Whether the handshake has succeeded."""
        return self._handshake_done

    @property
    def dirty_shutdown(self) -> bool:
        """Whether the peer closed the connection without a ``close_notify``.

        Set when ``receive_some`` met the end of the transport with no ``close_notify``
        before it, whether that was tolerated (``b""``) or raised
        :exc:`~evtrio.errors.DirtyShutdownError`.
        """
        return self._dirty_shutdown

    @property
    def tolerate_dirty_shutdown(self) -> bool:
        """Whether a dirty shutdown reads as end-of-stream instead of an error.

        Settable at any time (``bufferevent_openssl_set_allow_dirty_shutdown``). Always
        ``True`` on an ``https_compatible`` stream.
        """
        return self._tolerate_dirty_shutdown or self._https_compatible

    @tolerate_dirty_shutdown.setter
    def tolerate_dirty_shutdown(self, value: bool) -> None:
        self._tolerate_dirty_shutdown = bool(value)

    def statistics(self) -> TLSStreamStatistics:
        """A snapshot of the session's parameters and state."""
        version: str | None = None
        cipher: str | None = None
        alpn: str | None = None
        if self._handshake_done:
            version = self._ssl.version()
            suite = self._ssl.cipher()
            cipher = None if suite is None else suite[0]
            alpn = self._ssl.selected_alpn_protocol()
        return TLSStreamStatistics(
            server_side=self._server_side,
            handshake_complete=self._handshake_done,
            version=version,
            cipher=cipher,
            alpn_protocol=alpn,
            close_notify_received=self._close_notify_received,
            dirty_shutdown=self._dirty_shutdown,
            closed=self._closed,
        )

    def __repr__(self) -> str:
        side = "server" if self._server_side else f"client for {self._server_hostname!r}"
        if self._closed:
            state = "closed"
        elif self._handshake_done:
            state = str(self._ssl.version())
        else:
            state = "handshaking" if self._handshake_over is not None else "new"
        return f"<evtrio TLSStream {side} {state}>"

    # ------------------------------------------------------------------ handshake

    async def do_handshake(self) -> None:
        """Complete the TLS handshake now, if it has not been done yet.

        You rarely need this: the first ``send_all`` or ``receive_some`` does it. Call
        it to see the peer's certificate or the negotiated protocol before talking. If
        another task is already handshaking, this waits for that handshake.

        Raises:
          CertificateVerifyError: the peer's certificate did not verify.
          TLSHandshakeTimeoutError: the handshake took longer than ``handshake_timeout``.
          TLSHandshakeError: the handshake failed otherwise (the peer refused our
            certificate or versions, closed the connection, or does not speak TLS).
          trio.BrokenResourceError: the transport failed, or the handshake already
            failed or was cut off earlier.
          trio.ClosedResourceError: the stream is closed.

        Cancellation: a call cancelled before the handshake starts changes nothing;
            cancelled while handshaking, the stream is broken.
        """
        if self._closed:
            raise trio.ClosedResourceError("this TLS stream is closed")
        if self._handshake_done:
            await trio.lowlevel.checkpoint()
            return
        await self._handshake()

    async def _handshake(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        with trio.move_on_after(self._handshake_timeout) as scope:
            if self._handshake_over is None:
                await self._drive_handshake(scope)
            else:
                await self._handshake_over.wait()
                if not self._handshake_done:
                    raise trio.BrokenResourceError(
                        "the TLS handshake of this stream failed"
                    ) from self._handshake_failure
        if scope.cancelled_caught:
            raise self._timeout_error() from None

    async def _drive_handshake(self, scope: trio.CancelScope) -> None:
        self._handshake_over = over = trio.Event()
        try:
            await self._ssl.do_handshake()
        except trio.BrokenResourceError as exc:
            error = self._tls_error(exc, handshake=True)
            self._handshake_failure = exc if error is None else error
            if error is None:
                raise
            raise error from exc.__cause__
        except BaseException:
            self._handshake_failure = (
                self._timeout_error()
                if scope.cancel_called
                else trio.BrokenResourceError("the TLS handshake was cancelled")
            )
            raise
        else:
            self._handshake_done = True
        finally:
            over.set()

    def _timeout_error(self) -> TLSHandshakeTimeoutError:
        return TLSHandshakeTimeoutError(
            self._handshake_timeout, server_hostname=self._server_hostname
        )

    def _tls_error(self, exc: trio.BrokenResourceError, *, handshake: bool) -> TLSError | None:
        """The typed error for a failure of the inner SSLStream, or ``None`` when the
        failure is the transport's (it then propagates unchanged)."""
        cause = exc.__cause__
        if not isinstance(cause, ssl.SSLError):
            return None
        reason: str | None = getattr(cause, "reason", None)
        library: str | None = getattr(cause, "library", None)
        if isinstance(cause, ssl.SSLCertVerificationError):
            return CertificateVerifyError(
                verify_code=getattr(cause, "verify_code", 0) or 0,
                verify_message=getattr(cause, "verify_message", None) or _describe(cause),
                server_hostname=self._server_hostname,
                reason=reason,
                library=library,
            )
        if not handshake:
            return TLSError(f"TLS failed: {_describe(cause)}", reason=reason, library=library)
        if _is_eof(cause) or isinstance(cause, ssl.SSLSyscallError):
            what = "the peer closed the connection during the TLS handshake"
        else:
            what = f"the TLS handshake failed: {_describe(cause)}"
        if self._server_hostname is not None:
            what += f" (server name {self._server_hostname!r})"
        return TLSHandshakeError(
            what, reason=reason, library=library, server_hostname=self._server_hostname
        )

    # ------------------------------------------------------------------ the stream

    @override
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive and decrypt some data; ``b""`` at the end of the session.

        Args:
          max_bytes: the most bytes to return; ``None`` lets the stream choose.

        Returns:
          At least one byte, or ``b""`` once the peer has ended the session: with a
          ``close_notify``, or (when tolerated) without one.

        Raises:
          DirtyShutdownError: the peer closed the connection without a
            ``close_notify`` and :attr:`tolerate_dirty_shutdown` is off.
          TLSHandshakeError: the handshake this call ran failed (see
            :meth:`do_handshake`).
          TLSError: OpenSSL failed (a corrupt record, a fatal alert from the peer).
          trio.BrokenResourceError: the transport failed, or the stream broke earlier.
          trio.ClosedResourceError: the stream is closed, or was closed meanwhile.
          trio.BusyResourceError: another task is receiving.
          ValueError: *max_bytes* is less than 1.

        Cancellation: safe once the handshake is done: no data is lost. During the
            handshake it breaks the stream.
        """
        with self._receive_conflict:
            if max_bytes is not None:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError("max_bytes must be at least 1")
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream is closed")
            if self._eof:
                await trio.lowlevel.checkpoint()
                return b""
            if not self._handshake_done:
                await self._handshake()
            try:
                data = await self._ssl.receive_some(max_bytes)
            except trio.BrokenResourceError as exc:
                cause = exc.__cause__
                if _is_eof(cause):
                    self._dirty_shutdown = True
                    if self.tolerate_dirty_shutdown:
                        self._eof = True
                        return b""
                    raise DirtyShutdownError(
                        reason=getattr(cause, "reason", None),
                        library=getattr(cause, "library", None),
                    ) from cause
                error = self._tls_error(exc, handshake=False)
                if error is None:
                    raise
                raise error from cause
            if not data:
                self._close_notify_received = True
            return data

    @override
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt *data* and send all of it.

        Raises:
          TLSHandshakeError: the handshake this call ran failed (see
            :meth:`do_handshake`).
          TLSError: OpenSSL failed.
          trio.BrokenResourceError: the transport failed (the peer is gone), or the
            stream broke earlier.
          trio.ClosedResourceError: the stream is closed, or was closed meanwhile.
          trio.BusyResourceError: another task is sending.

        Cancellation: breaks the stream (an unknown part of a TLS record may have been
            sent), unless cancelled before it starts.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream is closed")
            if not self._handshake_done:
                await self._handshake()
            try:
                await self._ssl.send_all(data)
            except trio.BrokenResourceError as exc:
                error = self._tls_error(exc, handshake=False)
                if error is None:
                    raise
                raise error from exc.__cause__

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """Pass a flush down to the transport under the encryption.

        TLS holds nothing back for a flush to push: every ``send_all`` encrypts and
        hands whole records to the transport. So ``NORMAL`` and ``FLUSH`` flush the
        transport when it supports ``flush(mode)`` (a compressing filter under TLS then
        emits what it holds) and otherwise only checkpoint.

        Raises:
          TypeError: ``FINISHED``: TLS cannot end one direction; close the stream
            with :meth:`aclose` (which sends ``close_notify``).
          trio.ClosedResourceError: the stream is closed.
          trio.BusyResourceError: another task is sending.

        Cancellation: as the transport's flush.
        """
        if mode is FlushMode.FINISHED:
            raise TypeError("TLS cannot half-close: use aclose() to end the stream")
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream is closed")
            transport: trio.abc.Stream = (
                self.transport_stream
            )  # not the TypeVar: mypy narrows it badly
            if isinstance(transport, SupportsFlush):
                await transport.flush(mode)
            else:
                await trio.lowlevel.checkpoint()

    @override
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until ``send_all`` might not block (the transport can take bytes).

        Raises:
          trio.BrokenResourceError, trio.ClosedResourceError: as for :meth:`send_all`.
          trio.BusyResourceError: another task is sending.

        Cancellation: safe.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream is closed")
            await self._ssl.wait_send_all_might_not_block()

    @override
    async def aclose(self) -> None:
        """Send a ``close_notify``, then close the transport.

        The ``close_notify`` is sent only when the handshake has completed and the
        stream is not ``https_compatible``; the peer's answering ``close_notify`` is
        not waited for (TLS allows that). A peer that has already gone is fine. Closing
        twice is harmless. Tasks blocked on the stream get
        :exc:`trio.ClosedResourceError`.

        Cancellation: the stream and its transport are closed anyway (without a
            ``close_notify``), and ``Cancelled`` propagates.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._https_compatible or not self._handshake_done:
            # No session to end politely (or the peer expects none): the inner stream
            # would otherwise run a handshake just to send the close_notify.
            await trio.aclose_forcefully(self._ssl)
        else:
            await self._ssl.aclose()


def _is_eof(exc: BaseException | None) -> bool:
    """Whether OpenSSL failed because the transport ended with no ``close_notify``."""
    if isinstance(exc, ssl.SSLEOFError):
        return True
    # Some Python builds report it as a plain SSLError; its text still says so.
    return isinstance(exc, ssl.SSLError) and "UNEXPECTED_EOF_WHILE_READING" in (exc.strerror or "")


def _describe(exc: ssl.SSLError) -> str:
    return _SSL_LOCATION.sub("", str(exc.strerror or exc))


def _check_handshake_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"handshake_timeout must be a number of seconds, not {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"handshake_timeout must be positive (math.inf: no limit), not {timeout}")
    return float(timeout)


def _check_context(ssl_context: ssl.SSLContext, *, server_side: bool) -> None:
    if not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {ssl_context!r}")
    if server_side and ssl_context.protocol == ssl.PROTOCOL_TLS_CLIENT:
        raise ValueError(
            "a client-side SSLContext cannot accept connections: use "
            "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) and load_cert_chain()"
        )
    if not server_side and ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise ValueError(
            "a server-side SSLContext cannot connect: use ssl.create_default_context()"
        )


def _default_client_context() -> ssl.SSLContext:
    """``ssl.create_default_context()``, reporting dirty shutdowns (see :class:`TLSStream`)."""
    context = ssl.create_default_context()
    context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return context


def wrap_tls(
    stream: T_Stream,
    ssl_context: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | bytes | None = None,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSStream[T_Stream]:
    """Run TLS over *stream* (``bufferevent_openssl_filter_new``).

    *stream* may be any Trio stream: a TCP connection, a :class:`TLSStream` (TLS inside
    TLS, as through a proxy), or another evtrio wrapper. The handshake happens on the
    first I/O, or on :meth:`TLSStream.do_handshake`; nothing is sent before.

    Args:
      stream: the transport; the TLS stream owns it from now on.
      ssl_context: the :class:`ssl.SSLContext` to use. For a client, usually
        ``ssl.create_default_context()``; for a server,
        ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` with
        ``load_cert_chain(...)``.
      server_side: whether this end is the TLS server.
      server_hostname: for a client, the name sent in SNI and checked against the
        server's certificate. Required when the context has ``check_hostname`` set.
      https_compatible: do not send a ``close_notify`` when closing, and tolerate a
        peer that sends none (as :class:`trio.SSLStream` does): what HTTPS peers
        expect (RFC 2818), where the HTTP framing tells complete from truncated.
      tolerate_dirty_shutdown: treat a peer that closes the connection without a
        ``close_notify`` as end-of-stream (``b""``, with
        :attr:`TLSStream.dirty_shutdown` set) instead of raising
        :exc:`~evtrio.errors.DirtyShutdownError`.
      handshake_timeout: seconds the handshake may take (``math.inf`` for no limit).

    Returns:
      The TLS stream, handshake not yet done.

    Raises:
      ValueError: a client without *server_hostname* whose context checks hostnames, a
        *server_hostname* on the server side, a context made for the other side, or a
        *handshake_timeout* that is not positive.
      TypeError: *ssl_context* is not an :class:`ssl.SSLContext`.
    """
    _check_context(ssl_context, server_side=server_side)
    timeout = _check_handshake_timeout(handshake_timeout)
    if server_side and server_hostname is not None:
        raise ValueError("server_hostname is for the client side only")
    if not server_side and server_hostname is None and ssl_context.check_hostname:
        raise ValueError(
            "this context checks the server's name (check_hostname): give server_hostname"
        )
    tls = TLSStream._create(
        stream,
        ssl_context,
        server_side=server_side,
        server_hostname=server_hostname,
        https_compatible=https_compatible,
        tolerate_dirty_shutdown=tolerate_dirty_shutdown,
        handshake_timeout=timeout,
    )
    return cast("TLSStream[T_Stream]", tls)


@overload
async def open_tls_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    happy_eyeballs_delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    connect: None = None,
) -> TLSStream[trio.SocketStream]: ...
@overload
async def open_tls_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    happy_eyeballs_delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    connect: TCPConnector[T_Stream],
) -> TLSStream[T_Stream]: ...
async def open_tls_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    happy_eyeballs_delay: float = DEFAULT_HAPPY_EYEBALLS_DELAY,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    connect: TCPConnector[trio.abc.Stream] | None = None,
) -> TLSStream[Any]:
    """Connect to *host* on *port* and complete a TLS handshake
    (``bufferevent_openssl_socket_new`` with ``BUFFEREVENT_SSL_CONNECTING``).

    The server's certificate is verified against the system's trusted CAs and *host*
    (or *server_hostname*), which is also sent in SNI, unless *ssl_context* says
    otherwise. When this returns, the handshake is done.

    Args:
      host: the name or address to connect to.
      port: the TCP port.
      ssl_context: the client context; ``None`` for ``ssl.create_default_context()``
        (with :data:`ssl.OP_IGNORE_UNEXPECTED_EOF` cleared, so that dirty shutdowns are
        reported).
      server_hostname: the name to send in SNI and verify, when it is not *host* (for
        instance when *host* is an address).
      happy_eyeballs_delay: seconds to wait on one address before also trying the next.
      https_compatible, tolerate_dirty_shutdown: as for :func:`wrap_tls`.
      handshake_timeout: seconds the handshake may take, after the connection is up.
      connect: opens the TCP connection (a :class:`TCPConnector`);
        :func:`evtrio.streams.open_tcp_stream` by default.

    Returns:
      The TLS stream, handshake done.

    Raises:
      CertificateVerifyError: the server's certificate did not verify (untrusted CA,
        wrong name, expired).
      TLSHandshakeTimeoutError: the handshake took longer than *handshake_timeout*.
      TLSHandshakeError: the handshake failed otherwise.
      OSError: the connection could not be made (as the connector raises it).
      trio.BrokenResourceError: the connection broke during the handshake.
      ValueError, TypeError: an option is out of range, or *ssl_context* is a server
        context.

    Cancellation: safe: nothing stays open when the call is cancelled or fails.
    """
    timeout = _check_handshake_timeout(handshake_timeout)
    if ssl_context is None:
        ssl_context = _default_client_context()
    _check_context(ssl_context, server_side=False)
    opener: TCPConnector[trio.abc.Stream] = _default_connect if connect is None else connect
    transport = await opener(host, port, happy_eyeballs_delay=happy_eyeballs_delay)
    try:
        stream = wrap_tls(
            transport,
            ssl_context,
            server_hostname=host if server_hostname is None else server_hostname,
            https_compatible=https_compatible,
            tolerate_dirty_shutdown=tolerate_dirty_shutdown,
            handshake_timeout=timeout,
        )
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(transport)
        raise
    return stream


@final
class TLSListener(trio.abc.Listener[TLSStream[trio.SocketStream]]):
    """A listener whose connections are TLS server streams.

    :meth:`accept` wraps each connection of *transport_listener* in a
    :class:`TLSStream` and returns at once; the handshake runs in the task that uses
    the stream (on its first I/O, or :meth:`TLSStream.do_handshake`), bounded by
    *handshake_timeout*, so a slow or silent client never holds up the next
    ``accept``. :func:`serve_tls` completes the handshake before calling its handler.

    Args:
      transport_listener: the :class:`evtrio.Listener` to accept from (TCP or Unix);
        this listener owns it from now on.
      ssl_context: the server context, with its certificate chain loaded.
      https_compatible, tolerate_dirty_shutdown, handshake_timeout: passed to each
        stream, as for :func:`wrap_tls`.

    Raises:
      ValueError: *ssl_context* is a client context, or *handshake_timeout* is not
        positive.

    Attributes:
      transport_listener: the listener of the underlying connections.
    """

    __slots__ = (
        "_handshake_timeout",
        "_https_compatible",
        "_ssl_context",
        "_tolerate_dirty_shutdown",
        "transport_listener",
    )

    def __init__(
        self,
        transport_listener: Listener,
        ssl_context: ssl.SSLContext,
        *,
        https_compatible: bool = False,
        tolerate_dirty_shutdown: bool = False,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        _check_context(ssl_context, server_side=True)
        self._handshake_timeout = _check_handshake_timeout(handshake_timeout)
        self.transport_listener = transport_listener
        self._ssl_context = ssl_context
        self._https_compatible = https_compatible
        self._tolerate_dirty_shutdown = tolerate_dirty_shutdown

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The server context given to every accepted stream."""
        return self._ssl_context

    @property
    def port(self) -> int | None:
        """The TCP port listened on, or ``None`` for a Unix socket."""
        return self.transport_listener.port

    @property
    def address(self) -> Any:
        """The bound address (see :attr:`evtrio.Listener.address`)."""
        return self.transport_listener.address

    @override
    async def accept(self) -> TLSStream[trio.SocketStream]:
        """Accept the next connection as a TLS server stream (handshake not yet done).

        Returns:
          The stream; its first I/O (or :meth:`TLSStream.do_handshake`) runs the
          handshake.

        Raises:
          trio.ClosedResourceError, trio.BusyResourceError, OSError: as
            :meth:`evtrio.Listener.accept` raises them.

        Cancellation: safe; a cancelled call takes no connection.
        """
        stream = await self.transport_listener.accept()
        try:
            return wrap_tls(
                stream,
                self._ssl_context,
                server_side=True,
                https_compatible=self._https_compatible,
                tolerate_dirty_shutdown=self._tolerate_dirty_shutdown,
                handshake_timeout=self._handshake_timeout,
            )
        except BaseException:
            stream.socket.close()
            raise

    @override
    async def aclose(self) -> None:
        """Close the underlying listener. Idempotent.

        Cancellation: the listener is closed even when the call is cancelled.
        """
        await self.transport_listener.aclose()

    def __repr__(self) -> str:
        return f"<evtrio TLSListener over {self.transport_listener!r}>"


async def open_tls_listeners(
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    host: str | bytes | None = None,
    backlog: int = _DEFAULT_BACKLOG,
    reuse_port: bool = False,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> list[TLSListener]:
    """Bind TCP listeners on *port* whose connections are TLS server streams.

    :func:`evtrio.open_tcp_listeners`, each listener wrapped in a :class:`TLSListener`.

    Args:
      port: the TCP port; 0 lets the kernel choose one (the same for every listener).
      ssl_context: the server context, with its certificate chain loaded.
      host: the local address or name to bind; ``None`` for every interface.
      backlog: the listen backlog, capped at ``socket.SOMAXCONN``.
      reuse_port: set ``SO_REUSEPORT``.
      https_compatible, tolerate_dirty_shutdown, handshake_timeout: as for
        :func:`wrap_tls`.

    Returns:
      One listener per address *host* resolves to.

    Raises:
      ValueError: *ssl_context* is a client context, or an option is out of range.
      OSError: resolving or binding failed.

    Cancellation: safe; nothing stays open when the call is cancelled.
    """
    _check_context(ssl_context, server_side=True)
    _check_handshake_timeout(handshake_timeout)
    listeners = await _listener.open_tcp_listeners(
        port, host=host, backlog=backlog, reuse_port=reuse_port
    )
    return [
        TLSListener(
            listener,
            ssl_context,
            https_compatible=https_compatible,
            tolerate_dirty_shutdown=tolerate_dirty_shutdown,
            handshake_timeout=handshake_timeout,
        )
        for listener in listeners
    ]


async def serve_tls(
    handler: Callable[[TLSStream[trio.SocketStream]], Awaitable[object]],
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    host: str | bytes | None = None,
    backlog: int = _DEFAULT_BACKLOG,
    reuse_port: bool = False,
    max_connections: int | None = None,
    handler_nursery: trio.Nursery | None = None,
    on_error: Callable[[Exception], object] | None = None,
    max_backoff: float = _DEFAULT_MAX_BACKOFF,
    https_compatible: bool = False,
    tolerate_dirty_shutdown: bool = False,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on TCP *port* and run ``handler(stream)`` for each TLS connection.

    :func:`evtrio.serve_tcp` with a TLS handshake before the handler: each connection's
    task completes the handshake (bounded by *handshake_timeout*), then calls
    *handler* with the :class:`TLSStream`. A failed handshake is logged (logger
    ``evtrio.streams.tls``, level INFO: scanners and impatient clients are routine),
    passed to *on_error*, and the connection closed; the handler is not called and the
    server keeps serving. When the handler returns, the stream is closed with a
    ``close_notify``; when it raises, the stream is closed without one (so the client
    sees a dirty shutdown) and the error is handled as :func:`evtrio.serve_listeners`
    does. Use it as ``server = await nursery.start(serve_tls, handler, 0, context,
    host="127.0.0.1")`` and read the port from ``server.port``.

    Args:
      handler: an async function taking the TLS stream.
      port: the TCP port; 0 lets the kernel choose one.
      ssl_context: the server context, with its certificate chain loaded.
      host: the local address or name to bind; ``None`` for every interface.
      backlog: the listen backlog, capped at ``socket.SOMAXCONN``.
      reuse_port: set ``SO_REUSEPORT``.
      max_connections: the most connections handled at once, handshakes included, or
        ``None`` for no cap.
      handler_nursery: run handlers in this nursery instead of one the server owns.
      on_error: called with each handler exception, each failed handshake and each
        survived ``accept`` error. Its own exceptions are logged and ignored.
      max_backoff: the longest pause between accept attempts while descriptors are short.
      https_compatible, tolerate_dirty_shutdown, handshake_timeout: as for
        :func:`wrap_tls`.
      task_status: given by ``nursery.start``, which returns the :class:`evtrio.Server`.

    Raises:
      ValueError: *ssl_context* is a client context, or an option is out of range.
      OSError: binding failed, or an ``accept`` error the server cannot survive.

    Cancellation: cancelling stops serving at once (see :func:`evtrio.serve_listeners`).
    """
    _check_context(ssl_context, server_side=True)
    timeout = _check_handshake_timeout(handshake_timeout)

    async def serve_connection(stream: trio.SocketStream) -> None:
        tls = wrap_tls(
            stream,
            ssl_context,
            server_side=True,
            https_compatible=https_compatible,
            tolerate_dirty_shutdown=tolerate_dirty_shutdown,
            handshake_timeout=timeout,
        )
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            _handshake_failed(stream, exc, on_error)
            await trio.aclose_forcefully(tls)
            return
        try:
            await handler(tls)
        except BaseException:
            await trio.aclose_forcefully(tls)
            raise
        await tls.aclose()

    await _listener.serve_tcp(
        serve_connection,
        port,
        host=host,
        backlog=backlog,
        reuse_port=reuse_port,
        max_connections=max_connections,
        handler_nursery=handler_nursery,
        on_error=on_error,
        max_backoff=max_backoff,
        task_status=task_status,
    )


def _handshake_failed(
    stream: trio.SocketStream,
    exc: trio.BrokenResourceError,
    on_error: Callable[[Exception], object] | None,
) -> None:
    try:
        peer = _listener._format_address(stream.socket.family, stream.socket.getpeername())
    except OSError:
        peer = "a peer that has gone"
    logger.info("TLS handshake with %s failed: %s", peer, exc)
    if on_error is None:
        return
    try:
        on_error(exc)
    except Exception:
        logger.exception("the on_error hook %r raised", on_error)
