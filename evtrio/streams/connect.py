"""`open_tcp_stream`: connect to a host by name, trying its addresses Happy-Eyeballs style.

This is libevent's ``bufferevent_socket_connect_hostname`` the Trio way: one ``await``
that resolves the host, races connection attempts to its addresses as RFC 8305
("Happy Eyeballs v2") describes, and returns the first connection that succeeds as a
:class:`trio.SocketStream`, ready to be wrapped (in a ``BufferedStream``, TLS, ...).

The race: addresses are interleaved by family (IPv6, IPv4, IPv6, ... when the resolver
put IPv6 first); the first attempt starts at once, and each further attempt starts
*happy_eyeballs_delay* seconds after the one before it, or at once when an attempt in
flight fails. The first attempt to connect wins; every other attempt is cancelled and
its socket closed. Each attempt owns its socket until it hands a connected one over, so
no path (failure, cancellation, a second winner) leaks a descriptor.
"""

from __future__ import annotations

__all__ = ("AddrInfo", "AddrInfoResolver", "open_tcp_stream")

import errno
import math
import os
import socket
from contextlib import suppress
from socket import SOCK_STREAM
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

import trio

from ..errors import AddressParseError, ConnectError
from ..util import _parse_host, format_sockaddr
from ._socket import wrap_socket

if TYPE_CHECKING:
    from collections.abc import Sequence

AddrInfo: TypeAlias = "tuple[int, int, int, str, tuple[Any, ...]]"
"""One ``getaddrinfo`` result: ``(family, type, proto, canonname, sockaddr)``."""

DEFAULT_DELAY: Final = 0.25
"""RFC 8305's recommended Connection Attempt Delay, in seconds."""

DEFAULT_MAX_ATTEMPTS: Final = 16
"""How many addresses :func:`open_tcp_stream` tries at most, by default."""

_Target: TypeAlias = "tuple[socket.AddressFamily, tuple[Any, ...]]"
"""An address to try: ``(family, sockaddr)``."""


class AddrInfoResolver(Protocol):
    """Anything with an async ``getaddrinfo`` shaped like :func:`trio.socket.getaddrinfo`.

    :func:`open_tcp_stream` calls ``await resolver.getaddrinfo(host, port,
    type=socket.SOCK_STREAM)`` and uses the ``AF_INET`` and ``AF_INET6`` entries of the
    result, in order. A resolver signals failure by raising :exc:`OSError` (usually
    :exc:`socket.gaierror`). evtrio's own DNS resolver fits, and so does a small class
    in a test that returns fixed addresses.
    """

    async def getaddrinfo(self, host: str, port: int, *, type: int) -> Sequence[AddrInfo]:
        """Resolve *host* and *port* to a list of address-info tuples."""
        ...


async def open_tcp_stream(
    host: str,
    port: int,
    *,
    resolver: AddrInfoResolver | None = None,
    happy_eyeballs_delay: float = DEFAULT_DELAY,
    local_address: str | None = None,
    connect_timeout: float | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> trio.SocketStream:
    """Connect to *host* on *port* over TCP (``bufferevent_socket_connect_hostname``).

    A numeric *host* (``"127.0.0.1"``, ``"::1"``, ``"fe80::1%eth0"``) is connected to
    directly, without asking any resolver. Otherwise *host* is resolved with
    ``resolver.getaddrinfo(host, port, type=SOCK_STREAM)`` when a *resolver* is given,
    and with :func:`trio.socket.getaddrinfo` (the system resolver, or the one installed
    with :func:`trio.socket.set_custom_hostname_resolver`) when not; evtrio never
    installs a resolver of its own implicitly.

    The addresses are then raced Happy-Eyeballs style (RFC 8305, see the module
    documentation): staggered attempts, *happy_eyeballs_delay* apart, a failed attempt
    starting the next one at once, the first connection winning and every other
    attempt cancelled and closed. The returned stream has ``TCP_NODELAY`` set, and
    evtrio's socket fast path recognises it.

    Args:
      host: a host name, or a numeric IPv4 or IPv6 address.
      port: the port, 1 to 65535.
      resolver: where host names are resolved (see :class:`AddrInfoResolver`).
      happy_eyeballs_delay: seconds to wait for an attempt before starting the next one
        in parallel (RFC 8305 recommends 0.25, the default). 0 starts every attempt at
        once; ``math.inf`` tries one address at a time.
      local_address: a numeric IP address to connect from (bound before connecting,
        the port left to the kernel). Only addresses of its family are tried: pass
        ``"0.0.0.0"`` or ``"::"`` to force IPv4 or IPv6 without choosing an address.
      connect_timeout: seconds each attempt may take before it counts as failed (with
        :exc:`TimeoutError`); ``None`` leaves it to the kernel. To bound the whole call,
        wrap it in :func:`trio.fail_after` or :func:`trio.move_on_after`.
      max_attempts: how many addresses are tried at most (in the interleaved order).

    Returns:
      A connected :class:`trio.SocketStream`; the caller owns it.

    Raises:
      ConnectError: no attempt succeeded (or the resolver returned no usable address).
        It is an :exc:`OSError` and names every address with its error.
      OSError: the resolver failed (e.g. :exc:`socket.gaierror` for an unknown host);
        raised as the resolver raised it.
      AddressParseError: *local_address* is not a numeric IP address, or *host* has a
        colon (so it can only be an IPv6 literal) but is not a valid IPv6 address or
        names an unknown zone.
      ValueError: *port*, *happy_eyeballs_delay*, *connect_timeout* or *max_attempts*
        is out of range.
      TypeError: *host* is not a ``str`` or *port* not an ``int``.

    Cancellation: safe. Every socket opened so far is closed, including one that had
    already connected; nothing is left open.
    """
    _check_arguments(host, port, happy_eyeballs_delay, connect_timeout, max_attempts)
    local = None if local_address is None else _numeric_target(local_address, 0, strict=True)
    await trio.lowlevel.checkpoint()

    numeric = _numeric_target(host, port)
    if numeric is not None:
        resolved = [numeric]
    elif resolver is None:
        resolved = _usable_targets(await trio.socket.getaddrinfo(host, port, type=SOCK_STREAM))
    else:
        resolved = _usable_targets(await resolver.getaddrinfo(host, port, type=SOCK_STREAM))

    skipped: list[tuple[str, OSError]] = []
    if local is not None:
        compatible = []
        for target in resolved:
            if target[0] == local[0]:
                compatible.append(target)
            else:
                skipped.append((_describe(target), _family_mismatch(local_address, target)))
        resolved = compatible

    ordered = _interleave_families(resolved)
    targets, untried = ordered[:max_attempts], max(len(ordered) - max_attempts, 0)
    if targets:
        winner, failures = await _race(
            targets,
            delay=happy_eyeballs_delay,
            connect_timeout=connect_timeout,
            local=local,
        )
        if winner is not None:
            try:
                return wrap_socket(winner)
            except BaseException:
                winner.close()
                raise
    else:
        failures = []
    attempts = failures + skipped
    error = ConnectError(host, port, attempts, untried=untried)
    if attempts:
        raise error from ExceptionGroup("connection attempts", [exc for _, exc in attempts])
    raise error


async def _race(
    targets: Sequence[_Target],
    *,
    delay: float,
    connect_timeout: float | None,
    local: _Target | None,
) -> tuple[socket.socket | None, list[tuple[str, OSError]]]:
    """Race connection attempts to *targets*; ``(winner or None, failures in order)``."""
    winner: socket.socket | None = None
    failures: dict[int, tuple[str, OSError]] = {}
    wake = trio.Event()  # set when an attempt fails: start the next one now

    async def attempt(index: int, target: _Target) -> None:
        nonlocal winner
        try:
            sock = await _attempt_with_timeout(target, connect_timeout, local)
        except OSError as exc:
            failures[index] = (_describe(target), exc)
            wake.set()
            return
        if winner is not None:  # another attempt connected first, in the same tick
            sock.close()
            return
        winner = sock
        nursery.cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            for index, target in enumerate(targets):
                wake = trio.Event()
                nursery.start_soon(attempt, index, target)
                with trio.move_on_after(delay):
                    await wake.wait()
    except BaseException:
        if winner is not None:  # connected, but the caller is gone: close it too
            winner.close()
        raise
    return winner, [failures[index] for index in sorted(failures)]


async def _attempt_with_timeout(
    target: _Target, connect_timeout: float | None, local: _Target | None
) -> socket.socket:
    if connect_timeout is None:
        return await _connect_one(target, local)
    sock = None
    with trio.move_on_after(connect_timeout):
        sock = await _connect_one(target, local)
    if sock is None:
        raise TimeoutError(
            errno.ETIMEDOUT, f"connection attempt timed out after {connect_timeout} s"
        )
    return sock


async def _connect_one(target: _Target, local: _Target | None) -> socket.socket:
    """Open a socket, bind it to *local* if given, and connect it to *target*.

    The socket is closed on every path except the return. Tests replace this function
    to simulate slow or unreachable addresses.
    """
    family, sockaddr = target
    sock = socket.socket(family, SOCK_STREAM)
    try:
        sock.setblocking(False)
        if local is not None:
            # Bind only the address and let connect() pick the port, which it can share
            # between connections to different peers (Linux; elsewhere bind picks it).
            with suppress(AttributeError, OSError):
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind(local[1])
        try:
            sock.connect(sockaddr)
        except BlockingIOError:  # EINPROGRESS: wait for the handshake
            await trio.lowlevel.wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, os.strerror(code)) from None
        else:
            await trio.lowlevel.checkpoint()
    except BaseException:
        sock.close()
        raise
    return sock


def _check_arguments(
    host: object,
    port: object,
    delay: float,
    connect_timeout: float | None,
    max_attempts: int,
) -> None:
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    if math.isnan(delay) or delay < 0:
        raise ValueError(f"happy_eyeballs_delay must be >= 0, not {delay}")
    if connect_timeout is not None and (math.isnan(connect_timeout) or connect_timeout <= 0):
        raise ValueError(f"connect_timeout must be > 0 or None, not {connect_timeout}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a positive int, not {max_attempts!r}")


def _numeric_target(host: str, port: int, *, strict: bool = False) -> _Target | None:
    """The target for a numeric *host*, or ``None`` when *host* needs resolving.

    Anything with a colon must be an IPv6 literal (no host name has one), so a bad one
    raises :exc:`AddressParseError`, as does any non-numeric host when *strict*.
    """
    if not strict and ":" not in host and not host.replace(".", "").isdigit():
        return None
    try:
        family, canonical, scope_id = _parse_host(host, whole=host)
    except AddressParseError:
        if strict or ":" in host:
            raise
        return None  # e.g. "1.2.3": the system resolver has its own ideas about those
    if family == socket.AF_INET:
        return family, (canonical, port)
    return family, (canonical, port, 0, scope_id)


def _usable_targets(infos: Sequence[AddrInfo]) -> list[_Target]:
    """The TCP-capable IPv4/IPv6 entries of a getaddrinfo result, in order, deduplicated."""
    targets: list[_Target] = []
    seen: set[tuple[int, tuple[Any, ...]]] = set()
    for family, kind, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if kind not in (0, SOCK_STREAM):
            continue
        if (family, sockaddr) in seen:
            continue
        seen.add((family, sockaddr))
        targets.append((socket.AddressFamily(family), tuple(sockaddr)))
    return targets


def _interleave_families(targets: Sequence[_Target]) -> list[_Target]:
    """RFC 8305 section 4: alternate families, starting with the first one listed."""
    if not targets:
        return []
    first = targets[0][0]
    preferred = [t for t in targets if t[0] == first]
    others = [t for t in targets if t[0] != first]
    ordered: list[_Target] = []
    for index in range(max(len(preferred), len(others))):
        ordered.extend(group[index] for group in (preferred, others) if index < len(group))
    return ordered


def _describe(target: _Target) -> str:
    try:
        return format_sockaddr(target[1])
    except (AddressParseError, TypeError):  # an odd resolver answer: show it raw
        return repr(target[1])


def _family_mismatch(local_address: str | None, target: _Target) -> OSError:
    return OSError(
        errno.EAFNOSUPPORT,
        f"not tried: local_address {local_address!r} cannot reach an {target[0].name} address",
    )
