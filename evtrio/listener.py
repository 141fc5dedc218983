"""Listeners and TCP/Unix serving: libevent's evconnlistener the Trio way.

A :class:`Listener` owns one listening stdlib socket and hands out each accepted
connection as a :class:`trio.SocketStream` (wrapped so that evtrio's socket fast path
recognises it). :func:`open_tcp_listeners` binds one listener per address family,
:func:`open_unix_listener` binds a Unix-domain socket path.

:func:`serve_tcp`, :func:`serve_unix` and :func:`serve_listeners` run a handler task per
connection until cancelled or shut down. Unlike :func:`trio.serve_tcp`, they keep
serving when a handler fails (the error is logged and passed to ``on_error``), can cap
the number of connections (the excess waits in the kernel's backlog, never accepted and
dropped), back off on ``EMFILE``/``ENFILE`` instead of crashing, and shut down with a
grace period through the :class:`Server` object they hand to ``task_status.started``.

Accepting follows Trio's socket code: the non-blocking ``accept`` is tried first and
:func:`trio.lowlevel.wait_readable` is awaited only when the kernel has nothing queued.
"""

from __future__ import annotations

__all__ = (
    "Listener",
    "ListenerStatistics",
    "Server",
    "ServerStatistics",
    "open_tcp_listeners",
    "open_unix_listener",
    "serve_listeners",
    "serve_tcp",
    "serve_unix",
)

import errno
import logging
import math
import os
import socket
import stat
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

import trio
from typing_extensions import override

from ._util import ConflictDetector, NoPublicConstructor
from .streams._socket import wrap_socket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from socket import AddressFamily

logger: Final = logging.getLogger("evtrio.listener")

_DEFAULT_BACKLOG: Final = 128
"""The listen backlog when none is given; never above ``socket.SOMAXCONN``."""

_DEFAULT_GRACE: Final = 10.0
"""Seconds :meth:`Server.shutdown` lets handlers run before cancelling them."""

_MIN_BACKOFF: Final = 0.01
"""First delay after an accept failed for lack of descriptors or memory; it doubles."""

_DEFAULT_MAX_BACKOFF: Final = 1.0
"""The longest delay between two accept attempts while descriptors or memory are short."""

_PORT_ATTEMPTS: Final = 8
"""How often :func:`open_tcp_listeners` retries finding one free port for every family."""


def _errnos(*names: str) -> frozenset[int]:
    return frozenset(getattr(errno, name) for name in names if hasattr(errno, name))


_CLOSED_ERRNOS: Final = _errnos("EBADF", "ENOTSOCK")
"""What ``accept`` says about a socket we closed ourselves."""

_CAPACITY_ERRNOS: Final = _errnos("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
"""Accept failed for lack of descriptors or kernel memory: the connection stays queued."""

_TRANSIENT_ERRNOS: Final = _errnos(
    "ECONNABORTED",  # the peer gave up before we accepted (BSDs report it)
    "EPROTO",
    "EPERM",  # Linux: refused by a firewall rule
    "ENETDOWN",
    "ENOPROTOOPT",
    "EHOSTDOWN",
    "ENONET",
    "EHOSTUNREACH",
    "EOPNOTSUPP",
    "ENETUNREACH",
)
"""Accept failed for this one connection only (Linux passes on its pending network
errors): retry at once."""


def _format_address(family: int, address: Any) -> str:
    """A readable form of a socket address: ``host:port``, ``[v6]:port`` or ``unix:path``."""
    if family == socket.AF_INET6 and isinstance(address, tuple):
        return f"[{address[0]}]:{address[1]}"
    if family == socket.AF_INET and isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    if isinstance(address, bytes):
        address = address.decode("utf-8", "backslashreplace")
    return f"unix:{address}" if address else "unix:(unnamed)"


@final
@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """A snapshot of one :class:`Listener`, from :meth:`Listener.statistics`.

    Attributes:
      accepted: connections accepted since the listener was opened.
      accept_errors: ``accept`` failures that concerned one connection only
        (``ECONNABORTED``, ``EPROTO``, ...) and were retried at once.
      paused: whether accepting is paused.
      closed: whether the listener is closed.
    """

    accepted: int
    accept_errors: int
    paused: bool
    closed: bool


@final
class Listener(trio.abc.Listener[trio.SocketStream], metaclass=NoPublicConstructor):
    """A listening socket that accepts connections as :class:`trio.SocketStream`.

    Build one with :func:`open_tcp_listeners`, :func:`open_unix_listener` or
    :meth:`from_socket`. The listener owns its socket: :meth:`aclose` closes it (and,
    for a Unix socket it created, removes the socket file).

    Accepted streams are non-blocking, close-on-exec, and have ``TCP_NODELAY`` set when
    they are TCP (as every :class:`trio.SocketStream` does). While the listener is
    paused (:meth:`pause`), :meth:`accept` waits and new connections stay in the
    kernel's backlog, where the peer sees a completed connect whose data is not read
    yet.
    """

    __slots__ = (
        "_accept_conflict",
        "_accept_errors",
        "_accepted",
        "_address",
        "_closed",
        "_paused",
        "_resumed",
        "_sock",
        "_unix_identity",
        "_unix_path",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        unix_path: str | bytes | None = None,
        unix_identity: tuple[int, int] | None = None,
    ) -> None:
        self._sock = sock
        self._address: Any = sock.getsockname()
        self._unix_path = unix_path
        self._unix_identity = unix_identity
        self._accept_conflict = ConflictDetector(
            "another task is already accepting on this listener"
        )
        self._closed = False
        self._paused = False
        self._resumed = trio.Event()
        self._resumed.set()
        self._accepted = 0
        self._accept_errors = 0

    @classmethod
    def from_socket(cls, sock: socket.socket) -> Listener:
        """Wrap a bound, listening stdlib socket (libevent's ``evconnlistener_new``).

        The listener takes ownership of *sock*: it makes it non-blocking and closes it
        on :meth:`aclose`. A Unix socket file is left in place, since the listener did
        not create it.

        Args:
          sock: a ``SOCK_STREAM`` socket on which ``listen()`` has been called.

        Returns:
          The new listener.

        Raises:
          ValueError: *sock* is not a stream socket, or is not listening.
        """
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"a listener needs a SOCK_STREAM socket, not {sock.type!r}")
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:  # SO_ACCEPTCONN is not readable everywhere (macOS): trust the caller
            listening = 1
        if not listening:
            raise ValueError("the socket is not listening: call listen() on it first")
        sock.setblocking(False)
        return cls._create(sock)

    @property
    def socket(self) -> socket.socket:
        """The listening stdlib socket (``socket.fileno()`` is ``evconnlistener_get_fd``)."""
        return self._sock

    @property
    def family(self) -> AddressFamily:
        """The socket's address family (``AF_INET``, ``AF_INET6`` or ``AF_UNIX``)."""
        return self._sock.family

    @property
    def address(self) -> Any:
        """The bound address, as ``getsockname()`` returned it when the listener was built.

        A ``(host, port)`` tuple for IPv4, ``(host, port, flowinfo, scope_id)`` for IPv6
        and the path for a Unix socket.
        """
        return self._address

    @property
    def port(self) -> int | None:
        """The bound TCP port, or ``None`` for a Unix socket."""
        if self._sock.family in (socket.AF_INET, socket.AF_INET6):
            port: int = self._address[1]
            return port
        return None

    @property
    def paused(self) -> bool:
        """Whether accepting is paused (see :meth:`pause`)."""
        return self._paused

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    def pause(self) -> None:
        """Stop accepting (``evconnlistener_disable``); :meth:`resume` starts again.

        New connections wait in the kernel's backlog while the listener is paused; once
        the backlog is full, the kernel makes further peers wait or refuses them. A
        task in :meth:`accept` keeps waiting. Pausing twice is harmless.
        """
        if not self._paused:
            self._paused = True
            self._resumed = trio.Event()

    def resume(self) -> None:
        """Accept again after :meth:`pause` (``evconnlistener_enable``)."""
        self._paused = False
        self._resumed.set()

    def statistics(self) -> ListenerStatistics:
        """A snapshot of this listener's counters and state."""
        return ListenerStatistics(
            accepted=self._accepted,
            accept_errors=self._accept_errors,
            paused=self._paused,
            closed=self._closed,
        )

    @override
    async def accept(self) -> trio.SocketStream:
        """Accept the next connection, waiting while the listener is paused.

        Errors that concern one connection only (``ECONNABORTED``, ``EPROTO``, ...) are
        counted and retried at once.

        Returns:
          The connection, as a :class:`trio.SocketStream`.

        Raises:
          OSError: ``accept`` failed in a way that may last, such as ``EMFILE`` or
            ``ENFILE`` (out of file descriptors): the connection stays queued, so wait
            before calling again. The ``serve_*`` functions do that for you.
          trio.ClosedResourceError: the listener is closed, or was closed meanwhile.
          trio.BusyResourceError: another task is accepting on this listener.

        Cancellation: safe. A cancelled call takes no connection from the backlog.
        """
        with self._accept_conflict:
            await trio.lowlevel.checkpoint_if_cancelled()
            yielded = False
            while True:
                if self._paused:
                    await self._wait_resumed()
                    yielded = True
                    continue
                try:
                    stream, _ = self._accept_nowait(None)
                except trio.WouldBlock:
                    await self._wait_readable()
                    yielded = True
                    continue
                if not yielded:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return stream

    @override
    async def aclose(self) -> None:
        """Close the listening socket; remove the socket file of a Unix listener.

        Connections still in the backlog are reset by the kernel. A task blocked in
        :meth:`accept` gets :exc:`trio.ClosedResourceError`. Closing twice is harmless.
        The socket file is removed only if it is still the one this listener bound.

        Cancellation: the listener is closed even when the call is cancelled.
        """
        self._close()
        await trio.lowlevel.checkpoint()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
        self._resumed.set()
        if self._unix_path is not None and self._unix_identity is not None:
            _unlink_if_same(self._unix_path, self._unix_identity)

    async def _wait_resumed(self) -> None:
        while self._paused and not self._closed:
            await self._resumed.wait()
        if self._closed:
            raise trio.ClosedResourceError("the listener was closed")

    async def _wait_readable(self) -> None:
        """Wait until a connection is queued (a checkpoint; nothing is taken)."""
        if self._closed:
            raise trio.ClosedResourceError("the listener was closed")
        await trio.lowlevel.wait_readable(self._sock)

    def _accept_nowait(
        self, on_transient: Callable[[OSError], None] | None
    ) -> tuple[trio.SocketStream, Any]:
        """Accept one queued connection without waiting; return it and the peer address.

        Raises trio.WouldBlock when none is queued, ClosedResourceError when closed, and
        OSError for a lasting failure; transient failures go to *on_transient* and are
        retried at once (each one has used up a queued connection, so this ends).
        """
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the listener was closed")
            try:
                conn, peer = self._sock.accept()
            except BlockingIOError:
                raise trio.WouldBlock from None
            except OSError as exc:
                if exc.errno in _CLOSED_ERRNOS:
                    raise trio.ClosedResourceError("the listener was closed") from None
                if exc.errno not in _TRANSIENT_ERRNOS:
                    raise
                self._accept_errors += 1
                logger.debug("accept on %r failed, retrying: %s", self, exc)
                if on_transient is not None:
                    on_transient(exc)
                continue
            try:
                stream = wrap_socket(conn)
            except BaseException:
                conn.close()
                raise
            self._accepted += 1
            return stream, peer

    def __repr__(self) -> str:
        state = " closed" if self._closed else " paused" if self._paused else ""
        return f"<evtrio.Listener {_format_address(self._sock.family, self._address)}{state}>"


def _compute_backlog(backlog: int) -> int:
    if isinstance(backlog, bool) or not isinstance(backlog, int):
        raise TypeError(f"backlog must be an int, not {backlog!r}")
    if backlog < 1:
        raise ValueError(f"backlog must be at least 1, not {backlog}")
    return min(backlog, socket.SOMAXCONN)


def _reuse_port_option() -> int:
    option: int | None = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        raise OSError(
            errno.ENOPROTOOPT, f"reuse_port: SO_REUSEPORT is not available on {sys.platform}"
        )
    return option


def _bind_tcp(
    addresses: Sequence[tuple[int, int, int, Any]], port: int, backlog: int, reuse_port: bool
) -> list[socket.socket]:
    """Bind and listen one socket per address, all on one port (the first one's when
    *port* is 0). Everything is closed again if any step fails."""
    socks: list[socket.socket] = []
    unsupported: list[OSError] = []
    try:
        for family, type_, proto, sockaddr in addresses:
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:
                # getaddrinfo offers IPv6 on hosts whose kernel has it disabled (and vice
                # versa): skip a family the system cannot create sockets for.
                if exc.errno == errno.EAFNOSUPPORT:
                    unsupported.append(exc)
                    continue
                raise
            socks.append(sock)
            if sys.platform != "win32":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if reuse_port:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, _reuse_port_option(), 1)
                except OSError as exc:
                    raise OSError(
                        exc.errno, f"reuse_port: SO_REUSEPORT is not supported here: {exc}"
                    ) from exc
            if port == 0 and len(socks) > 1:
                sockaddr = (sockaddr[0], socks[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                where = _format_address(family, sockaddr)
                raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from exc
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    if not socks:
        message = "this system supports none of the address families the host resolved to"
        raise OSError(errno.EAFNOSUPPORT, message) from ExceptionGroup(message, unsupported)
    return socks


async def open_tcp_listeners(
    port: int,
    *,
    host: str | bytes | None = None,
    backlog: int = _DEFAULT_BACKLOG,
    reuse_port: bool = False,
) -> list[Listener]:
    """Bind TCP listeners on *port*, one per address *host* resolves to.

    Like :func:`trio.open_tcp_listeners` (libevent's ``evconnlistener_new_bind``):
    *host* is resolved with ``AI_PASSIVE``, so ``None`` means the wildcard addresses of
    both IPv4 and IPv6, each on a listener of its own (the IPv6 one has
    ``IPV6_V6ONLY`` set). A family the system cannot create sockets for is skipped.
    ``SO_REUSEADDR`` is always set (except on Windows, where it means something
    else). Unlike Trio, port 0 gives every listener the *same* kernel-chosen port, so
    clients reach it under any of the host's addresses.

    Args:
      port: the TCP port; 0 lets the kernel choose one.
      host: the local address or name to bind; ``None`` for every interface.
      backlog: how many completed connections the kernel queues before accepting;
        capped at ``socket.SOMAXCONN``.
      reuse_port: set ``SO_REUSEPORT``, so that several sockets (in this or other
        processes) can bind the same port and the kernel spreads connections over them.

    Returns:
      The listeners, in the order the resolver returned their addresses.

    Raises:
      TypeError: *port* or *backlog* is not an int.
      ValueError: *port* is out of range, or *backlog* is below 1.
      OSError: resolving or binding failed (the message names the address), or
        *reuse_port* was asked for where the system has no ``SO_REUSEPORT``
        (``errno.ENOPROTOOPT``).

    Cancellation: safe; nothing stays open when the call is cancelled.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port must be between 0 and 65535, not {port}")
    computed_backlog = _compute_backlog(backlog)
    if reuse_port:
        _reuse_port_option()
    infos = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    addresses: list[tuple[int, int, int, Any]] = []
    for family, type_, proto, _, sockaddr in infos:
        if (family, type_, proto, sockaddr) not in addresses:
            addresses.append((family, type_, proto, sockaddr))
    attempts = _PORT_ATTEMPTS if port == 0 and len(addresses) > 1 else 1
    for attempt in range(attempts):
        try:
            socks = _bind_tcp(addresses, port, computed_backlog, reuse_port)
        except OSError as exc:
            # With port 0, the port the kernel chose for the first family may be taken
            # in another: start again with a new one.
            if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
        else:
            return [Listener._create(sock) for sock in socks]
    raise AssertionError("unreachable: the last attempt returns or raises")


def _is_abstract(path: str | bytes) -> bool:
    return path[:1] in ("\0", b"\0")


def _identity(path: str | bytes) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def _unlink_if_same(path: str | bytes, identity: tuple[int, int]) -> None:
    """Remove *path* if it is still the file *identity* names."""
    try:
        if _identity(path) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove the socket file %r: %s", path, exc)


def _remove_stale_socket(path: str | bytes) -> None:
    """Remove a socket file nobody listens on any more; refuse anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EADDRINUSE, f"{path!r} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # a socket file with no listener behind it: stale
        except FileNotFoundError:
            return
        except BlockingIOError:  # a listener whose backlog is full: very much alive
            raise OSError(errno.EADDRINUSE, f"{path!r} is in use by another listener") from None
        else:
            raise OSError(errno.EADDRINUSE, f"{path!r} is in use by another listener")
    finally:
        probe.close()
    _unlink_if_same(path, (st.st_dev, st.st_ino))


async def open_unix_listener(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    backlog: int = _DEFAULT_BACKLOG,
    mode: int | None = None,
) -> Listener:
    """Bind a listener on the Unix-domain socket *path*.

    A socket file left behind by a process that died is removed first: the file is
    removed only when it is a socket and connecting to it is refused. A socket someone
    still listens on, and any file that is not a socket, make this fail instead. Closing
    the listener removes the socket file again, if it is still the one bound here.
    Paths starting with a NUL byte are Linux's abstract namespace: there is no file.

    Args:
      path: the socket's path.
      backlog: how many connections the kernel queues before accepting; capped at
        ``socket.SOMAXCONN``.
      mode: permission bits for the socket file (e.g. ``0o600``), applied before the
        socket starts listening, so no connection is possible with wider permissions.

    Returns:
      The listener.

    Raises:
      OSError: ``EADDRINUSE`` when another listener owns *path* or it is not a socket;
        any other error from binding.
      ValueError: *backlog* is below 1, or *mode* was given for an abstract address.

    Cancellation: a checkpoint; nothing stays open when the call is cancelled.
    """
    computed_backlog = _compute_backlog(backlog)
    fspath = os.fspath(path)
    abstract = _is_abstract(fspath)
    if abstract and mode is not None:
        raise ValueError("an abstract Unix socket has no file to set a mode on")
    await trio.lowlevel.checkpoint()
    if not abstract:
        _remove_stale_socket(fspath)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    identity: tuple[int, int] | None = None
    try:
        sock.bind(fspath)
        if not abstract:
            identity = _identity(fspath)
            if mode is not None:
                os.chmod(fspath, mode)
        sock.listen(computed_backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        if identity is not None:
            _unlink_if_same(fspath, identity)
        raise
    return Listener._create(sock, unix_path=None if abstract else fspath, unix_identity=identity)


@final
@dataclass(frozen=True, slots=True)
class ServerStatistics:
    """A snapshot of a :class:`Server`, from :meth:`Server.statistics`.

    No connection is ever refused by the server itself: over ``max_connections`` they
    wait in the kernel's backlog, which is what ``waiting_for_capacity`` shows.

    Attributes:
      accepted: connections accepted since serving started.
      active: handlers running now (:attr:`Server.connections`).
      max_connections: the cap on *active*, or ``None``.
      waiting_for_capacity: listeners that have a connection queued and wait for a
        handler to finish before accepting it.
      handler_errors: handlers that raised an exception.
      accept_errors: ``accept`` failures concerning one connection, retried at once.
      capacity_errors: ``accept`` failures for lack of descriptors or memory
        (``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM``), each followed by a back-off.
      paused: whether every listener is paused.
      shutting_down: whether :meth:`Server.shutdown` has begun.
    """

    accepted: int
    active: int
    max_connections: int | None
    waiting_for_capacity: int
    handler_errors: int
    accept_errors: int
    capacity_errors: int
    paused: bool
    shutting_down: bool


@final
class Server(metaclass=NoPublicConstructor):
    """A running server, as handed to ``task_status.started()`` by the ``serve_*`` functions.

    It pauses and resumes accepting, counts connections, and shuts down gracefully.
    """

    __slots__ = (
        "_accept_errors",
        "_accept_scopes",
        "_accepted",
        "_active",
        "_capacity_errors",
        "_grace_deadline",
        "_grace_scope",
        "_handler",
        "_handler_errors",
        "_handler_nursery",
        "_handler_scopes",
        "_idle",
        "_limiter",
        "_listeners",
        "_max_backoff",
        "_max_connections",
        "_on_error",
        "_shutdown_requested",
        "_stopped",
        "_waiting_for_capacity",
    )

    def __init__(
        self,
        handler: Callable[[trio.SocketStream], Awaitable[object]],
        listeners: Sequence[Listener],
        *,
        max_connections: int | None,
        on_error: Callable[[Exception], object] | None,
        max_backoff: float,
    ) -> None:
        self._handler = handler
        self._listeners = tuple(listeners)
        self._max_connections = max_connections
        self._limiter = None if max_connections is None else trio.CapacityLimiter(max_connections)
        self._on_error = on_error
        self._max_backoff = max_backoff
        self._handler_nursery: trio.Nursery | None = None
        self._accept_scopes: list[trio.CancelScope] = []
        self._handler_scopes: set[trio.CancelScope] = set()
        self._grace_deadline = math.inf
        self._grace_scope: trio.CancelScope | None = None
        self._shutdown_requested = trio.Event()
        self._stopped = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._active = 0
        self._accepted = 0
        self._waiting_for_capacity = 0
        self._handler_errors = 0
        self._accept_errors = 0
        self._capacity_errors = 0

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The listeners being served."""
        return self._listeners

    @property
    def addresses(self) -> tuple[Any, ...]:
        """The bound address of each listener (see :attr:`Listener.address`)."""
        return tuple(listener.address for listener in self._listeners)

    @property
    def port(self) -> int | None:
        """The TCP port of the first TCP listener (:func:`open_tcp_listeners` binds all of
        them to one port), or ``None`` when serving Unix sockets only."""
        for listener in self._listeners:
            if listener.port is not None:
                return listener.port
        return None

    @property
    def connections(self) -> int:
        """How many connections are being handled now."""
        return self._active

    @property
    def paused(self) -> bool:
        """Whether every listener is paused."""
        return all(listener.paused for listener in self._listeners)

    def pause(self) -> None:
        """Stop accepting on every listener; new connections wait in the backlog.

        Running handlers are not affected. See :meth:`Listener.pause`.
        """
        for listener in self._listeners:
            listener.pause()

    def resume(self) -> None:
        """Accept again on every listener after :meth:`pause`."""
        for listener in self._listeners:
            listener.resume()

    def statistics(self) -> ServerStatistics:
        """A snapshot of the server's counters and state."""
        return ServerStatistics(
            accepted=self._accepted,
            active=self._active,
            max_connections=self._max_connections,
            waiting_for_capacity=self._waiting_for_capacity,
            handler_errors=self._handler_errors,
            accept_errors=self._accept_errors,
            capacity_errors=self._capacity_errors,
            paused=self.paused,
            shutting_down=self._shutdown_requested.is_set(),
        )

    async def shutdown(self, grace: float = _DEFAULT_GRACE) -> None:
        """Stop accepting, let handlers finish for *grace* seconds, then cancel them.

        The listeners are closed at once, so new connections are refused. Handlers that
        are still running *grace* seconds later are cancelled, and this returns when
        every handler has ended and the ``serve_*`` call has returned. A second call
        may shorten the grace period, never lengthen it.

        Args:
          grace: how long running handlers may take to finish, in seconds (``math.inf``
            waits for them however long they take).

        Raises:
          ValueError: *grace* is negative or NaN.

        Called from one of this server's own handlers, it waits for that handler too,
        so the handler is cancelled when the grace period ends; start it in another task
        instead (``some_nursery.start_soon(server.shutdown)``).

        Cancellation: cancelling this call stops only the waiting: the shutdown goes
        on in the serving task.
        """
        if not grace >= 0:
            raise ValueError(f"grace must be zero or more seconds, not {grace}")
        deadline = trio.current_time() + grace
        if deadline < self._grace_deadline:
            self._grace_deadline = deadline
            if self._grace_scope is not None:
                self._grace_scope.deadline = deadline
        self._shutdown_requested.set()
        await self._stopped.wait()

    def __repr__(self) -> str:
        where = ", ".join(
            _format_address(listener.family, listener.address) for listener in self._listeners
        )
        return f"<evtrio.Server on {where}: {self._active} connections>"

    async def _serve(
        self,
        handler_nursery: trio.Nursery | None,
        task_status: trio.TaskStatus[Server],
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._handler_nursery = nursery if handler_nursery is None else handler_nursery
                for listener in self._listeners:
                    scope = trio.CancelScope()
                    self._accept_scopes.append(scope)
                    nursery.start_soon(self._accept_loop, listener, scope, name=repr(listener))
                task_status.started(self)
                await self._shutdown_requested.wait()
                await self._drain()
        finally:
            for listener in self._listeners:
                listener._close()
            self._stopped.set()

    async def _drain(self) -> None:
        for scope in self._accept_scopes:
            scope.cancel()
        for listener in self._listeners:
            listener._close()
        logger.info("shutting down: %d connections still open", self._active)
        with trio.move_on_at(self._grace_deadline) as self._grace_scope:
            await self._wait_idle()
        self._grace_scope = None
        if self._active:
            logger.info("grace period over: cancelling %d handlers", self._active)
            for scope in self._handler_scopes:
                scope.cancel()
            await self._wait_idle()

    async def _wait_idle(self) -> None:
        while self._active:
            await self._idle.wait()

    async def _accept_loop(self, listener: Listener, scope: trio.CancelScope) -> None:
        limiter = self._limiter
        delay = 0.0
        with scope, listener._accept_conflict:
            try:
                while True:
                    if listener._paused:
                        await listener._wait_resumed()
                    token: object | None = None
                    if limiter is not None:
                        token = object()
                        try:
                            limiter.acquire_on_behalf_of_nowait(token)
                        except trio.WouldBlock:
                            # Full: wait for a connection without taking it, then for room.
                            # Holding no token while idle keeps capacity for the listeners
                            # that do have a connection queued.
                            await listener._wait_readable()
                            self._waiting_for_capacity += 1
                            try:
                                await limiter.acquire_on_behalf_of(token)
                            finally:
                                self._waiting_for_capacity -= 1
                            if listener._paused:
                                limiter.release_on_behalf_of(token)
                                continue
                    try:
                        stream, peer = listener._accept_nowait(self._accept_failed)
                    except trio.WouldBlock:
                        self._release(token)
                        await listener._wait_readable()
                        continue
                    except OSError as exc:
                        self._release(token)
                        if exc.errno not in _CAPACITY_ERRNOS:
                            raise
                        delay = min(max(delay * 2, _MIN_BACKOFF), self._max_backoff)
                        await self._back_off(listener, exc, delay)
                        continue
                    except BaseException:
                        self._release(token)
                        raise
                    delay = 0.0
                    self._start_handler(stream, peer, listener.family, token)
                    await trio.lowlevel.checkpoint()
            except trio.ClosedResourceError:
                return

    def _release(self, token: object | None) -> None:
        if token is not None and self._limiter is not None:
            self._limiter.release_on_behalf_of(token)

    def _accept_failed(self, exc: OSError) -> None:
        self._accept_errors += 1
        self._report(exc)

    async def _back_off(self, listener: Listener, exc: OSError, delay: float) -> None:
        self._capacity_errors += 1
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        logger.warning(
            "accept on %s failed with %s (%s); retrying in %.3g s",
            _format_address(listener.family, listener.address),
            code,
            exc.strerror,
            delay,
        )
        self._report(exc)
        await trio.sleep(delay)

    def _report(self, exc: Exception) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(exc)
        except Exception:
            logger.exception("the on_error hook %r raised", self._on_error)

    def _start_handler(
        self, stream: trio.SocketStream, peer: Any, family: int, token: object | None
    ) -> None:
        assert self._handler_nursery is not None
        self._accepted += 1
        if self._active == 0:
            self._idle = trio.Event()
        self._active += 1
        scope = trio.CancelScope()
        self._handler_scopes.add(scope)
        name = _format_address(family, peer)
        logger.debug("accepted a connection from %s", name)
        try:
            self._handler_nursery.start_soon(
                self._run_handler, stream, scope, token, name, name=f"evtrio handler {name}"
            )
        except BaseException:
            self._handler_scopes.discard(scope)
            stream.socket.close()
            self._release(token)
            self._handler_done()
            raise

    async def _run_handler(
        self, stream: trio.SocketStream, scope: trio.CancelScope, token: object | None, peer: str
    ) -> None:
        try:
            # Outside the scope, so that what is left of an exception group once the scope
            # has taken out its own Cancelled is caught too.
            with scope:
                await self._handler(stream)
        except Exception as exc:
            self._handler_errors += 1
            logger.error("the handler for %s raised %r", peer, exc, exc_info=exc)
            self._report(exc)
        finally:
            self._handler_scopes.discard(scope)
            await trio.aclose_forcefully(stream)
            self._release(token)
            self._handler_done()

    def _handler_done(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()


def _check_serving_options(max_connections: int | None, max_backoff: float) -> None:
    if max_connections is not None and (
        isinstance(max_connections, bool) or not isinstance(max_connections, int)
    ):
        raise TypeError(f"max_connections must be an int or None, not {max_connections!r}")
    if max_connections is not None and max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    if not 0 < max_backoff < math.inf:
        raise ValueError(f"max_backoff must be a positive number of seconds, not {max_backoff}")


async def serve_listeners(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    listeners: Iterable[Listener],
    *,
    max_connections: int | None = None,
    handler_nursery: trio.Nursery | None = None,
    on_error: Callable[[Exception], object] | None = None,
    max_backoff: float = _DEFAULT_MAX_BACKOFF,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on *listeners* and run ``handler(stream)`` for each one.

    Runs until cancelled, or until :meth:`Server.shutdown` has finished. The listeners
    are closed when it returns. Each handler gets a :class:`trio.SocketStream`, which
    the server closes when the handler returns or fails. Call it with
    ``await nursery.start(serve_listeners, ...)`` to get the :class:`Server`.

    Error handling departs from :func:`trio.serve_listeners`, which lets a handler's
    exception crash the whole server. Here:

    - a handler that raises an :exc:`Exception` is logged (logger ``evtrio.listener``,
      level ERROR, with the traceback), passed to *on_error*, and the server keeps
      serving;
    - ``accept`` failures that concern one connection (``ECONNABORTED``, ``EPROTO``,
      ...) go to *on_error* and are retried at once;
    - ``EMFILE``, ``ENFILE``, ``ENOBUFS`` and ``ENOMEM`` (out of descriptors or kernel
      memory) are logged as a WARNING, passed to *on_error*, and accepting is retried
      after a pause that doubles from 10 ms up to *max_backoff* (the connection waits
      in the backlog meanwhile);
    - any other ``accept`` error ends serving and propagates.

    Args:
      handler: an async function taking the connection's stream.
      listeners: the listeners to serve; this call takes ownership of them. Pausing
        them before the call makes the server start paused (``LEV_OPT_DISABLED``).
      max_connections: the most handlers running at once, or ``None`` for no cap.
        Further connections are not accepted until a handler finishes: they wait in
        the kernel's backlog.
      handler_nursery: run handlers in this nursery instead of one the server owns.
        :meth:`Server.shutdown` still cancels them, but if serving is cancelled they go
        on running there.
      on_error: called (synchronously) with each handler exception and each ``accept``
        error the server survives. Its own exceptions are logged and ignored.
      max_backoff: the longest pause, in seconds, between accept attempts while
        descriptors or memory are short.
      task_status: given by ``nursery.start``, which returns the :class:`Server`.

    Raises:
      ValueError: no listeners, or an option out of range.
      TypeError: *max_connections* is not an int.
      OSError: an ``accept`` error the server cannot survive (inside an
        :exc:`ExceptionGroup`, as errors leave nurseries).

    Cancellation: cancelling stops serving at once: the listeners are closed and the
        handlers in the server's own nursery are cancelled.
    """
    listeners = tuple(listeners)
    if not listeners:
        raise ValueError("serve_listeners needs at least one listener")
    try:
        _check_serving_options(max_connections, max_backoff)
        server = Server._create(
            handler,
            listeners,
            max_connections=max_connections,
            on_error=on_error,
            max_backoff=max_backoff,
        )
    except BaseException:
        for listener in listeners:
            listener._close()
        raise
    await server._serve(handler_nursery, task_status)


async def serve_tcp(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    port: int,
    *,
    host: str | bytes | None = None,
    backlog: int = _DEFAULT_BACKLOG,
    reuse_port: bool = False,
    max_connections: int | None = None,
    handler_nursery: trio.Nursery | None = None,
    on_error: Callable[[Exception], object] | None = None,
    max_backoff: float = _DEFAULT_MAX_BACKOFF,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on TCP *port* and run ``handler(stream)`` for each connection.

    :func:`open_tcp_listeners` followed by :func:`serve_listeners`; see them for the
    details. Use it as ``server = await nursery.start(serve_tcp, handler, 0,
    host="127.0.0.1")`` and read the port from ``server.port``.

    Args:
      handler: an async function taking the connection's stream.
      port: the TCP port; 0 lets the kernel choose one.
      host: the local address or name to bind; ``None`` for every interface.
      backlog: the listen backlog, capped at ``socket.SOMAXCONN``.
      reuse_port: set ``SO_REUSEPORT``.
      max_connections: the most handlers running at once, or ``None`` for no cap.
      handler_nursery: run handlers in this nursery instead of one the server owns.
      on_error: called with each handler exception and survived ``accept`` error.
      max_backoff: the longest pause between accept attempts while descriptors are short.
      task_status: given by ``nursery.start``, which returns the :class:`Server`.

    Raises:
      OSError: binding failed, or an ``accept`` error the server cannot survive.
      ValueError: an option out of range.

    Cancellation: cancelling stops serving at once (see :func:`serve_listeners`).
    """
    _check_serving_options(max_connections, max_backoff)
    listeners = await open_tcp_listeners(port, host=host, backlog=backlog, reuse_port=reuse_port)
    await serve_listeners(
        handler,
        listeners,
        max_connections=max_connections,
        handler_nursery=handler_nursery,
        on_error=on_error,
        max_backoff=max_backoff,
        task_status=task_status,
    )


async def serve_unix(
    handler: Callable[[trio.SocketStream], Awaitable[object]],
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    *,
    backlog: int = _DEFAULT_BACKLOG,
    mode: int | None = None,
    max_connections: int | None = None,
    handler_nursery: trio.Nursery | None = None,
    on_error: Callable[[Exception], object] | None = None,
    max_backoff: float = _DEFAULT_MAX_BACKOFF,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on the Unix-domain socket *path* and run ``handler(stream)`` for each connection.

    :func:`open_unix_listener` followed by :func:`serve_listeners`; see them for the
    details. The socket file is removed when serving ends.

    Args:
      handler: an async function taking the connection's stream.
      path: the socket's path (a stale socket file there is replaced).
      backlog: the listen backlog, capped at ``socket.SOMAXCONN``.
      mode: permission bits for the socket file.
      max_connections: the most handlers running at once, or ``None`` for no cap.
      handler_nursery: run handlers in this nursery instead of one the server owns.
      on_error: called with each handler exception and survived ``accept`` error.
      max_backoff: the longest pause between accept attempts while descriptors are short.
      task_status: given by ``nursery.start``, which returns the :class:`Server`.

    Raises:
      OSError: binding failed (``EADDRINUSE`` when someone listens on *path*), or an
        ``accept`` error the server cannot survive.
      ValueError: an option out of range.

    Cancellation: cancelling stops serving at once (see :func:`serve_listeners`).
    """
    _check_serving_options(max_connections, max_backoff)
    listener = await open_unix_listener(path, backlog=backlog, mode=mode)
    await serve_listeners(
        handler,
        [listener],
        max_connections=max_connections,
        handler_nursery=handler_nursery,
        on_error=on_error,
        max_backoff=max_backoff,
        task_status=task_status,
    )
