"""evutil for Python: socket addresses, socket options and secure random bytes.

libevent's ``<event2/util.h>`` is mostly portability glue that Python already provides
(``socket.socketpair``, ``socket.inet_pton``, ``time``, ``str.casefold``...). What is
left is here:

- :func:`parse_sockaddr_port` (``evutil_parse_sockaddr_port``) turns ``"1.2.3.4:80"``,
  ``"[::1]:8080"`` and the other numeric forms into a :class:`SocketAddress`;
  :func:`format_sockaddr` is its inverse for the address objects Python's
  :mod:`socket` module uses; :func:`sockaddr_cmp` orders them
  (``evutil_sockaddr_cmp``).
- :func:`make_socket_reuseable`, :func:`make_socket_reuseable_port`,
  :func:`set_keepalive` and :func:`set_nodelay` set the socket options servers and
  clients usually want, on stdlib or Trio sockets.
- :func:`secure_random_bytes` (``evutil_secure_rng_get_bytes``).

Addresses here are always numeric: like libevent, nothing in this module resolves a
host name (use ``trio.socket.getaddrinfo`` or a resolver for that).
"""

from __future__ import annotations

__all__ = (
    "SECURE_RANDOM_MAX",
    "AnySocket",
    "SockAddr",
    "SocketAddress",
    "format_sockaddr",
    "make_socket_reuseable",
    "make_socket_reuseable_port",
    "parse_sockaddr_port",
    "secure_random_bytes",
    "set_keepalive",
    "set_nodelay",
    "sockaddr_cmp",
)

import errno
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias, final

from .errors import AddressParseError, UnsupportedSocketOptionError

if TYPE_CHECKING:
    import trio

SockAddr: TypeAlias = "tuple[str, int] | tuple[str, int, int, int] | str | bytes | SocketAddress"
"""What the address functions accept: an ``AF_INET`` ``(host, port)`` or ``AF_INET6``
``(host, port, flowinfo, scope_id)`` tuple as the :mod:`socket` module uses them (an
IPv6 host in a 2-tuple is accepted too), a Unix socket path (``str`` or ``bytes``; a
leading NUL byte names a Linux abstract socket), or a :class:`SocketAddress`."""

AnySocket: TypeAlias = "socket.socket | trio.socket.SocketType"
"""The socket option helpers accept stdlib sockets and Trio sockets alike."""

SECURE_RANDOM_MAX: Final = 1 << 20
"""The most bytes one :func:`secure_random_bytes` call returns (1 MiB)."""

_TEXT_MAX: Final = 128
"""Longest text :func:`parse_sockaddr_port` looks at (libevent's buffer is as large)."""

_SCOPE_MAX: Final = 0xFFFF_FFFF
_IFNAME_MAX: Final = 64
_PORT_DIGITS: Final = 5
_INT_MAX: Final = 0x7FFF_FFFF
_AF_UNIX: Final[int] = getattr(socket, "AF_UNIX", 1)
_NOT_SUPPORTED: Final = frozenset({errno.ENOPROTOOPT, errno.EOPNOTSUPP})
"""What ``setsockopt`` says when the kernel lacks an option (as opposed to a bad value)."""


@final
@dataclass(frozen=True, slots=True)
class SocketAddress:
    """A numeric IPv4 or IPv6 address with a port, as :func:`parse_sockaddr_port` returns.

    ``str(address)`` formats it back (``"1.2.3.4:80"``, ``"[::1]:80"``,
    ``"[fe80::1%2]:80"``), and :attr:`sockaddr` is the tuple that ``socket.connect``,
    ``bind`` and ``sendto`` take for a socket of :attr:`family`.

    Attributes:
      family: ``socket.AF_INET`` or ``socket.AF_INET6``.
      host: the address in canonical text form (RFC 5952, as :mod:`ipaddress` writes
        it; IPv4-mapped addresses as ``"::ffff:1.2.3.4"``), without brackets or zone.
      port: 0 to 65535; 0 when the text named no port.
      scope_id: the IPv6 zone (interface index) from a ``%zone`` suffix, else 0.
    """

    family: socket.AddressFamily
    host: str
    port: int
    scope_id: int = 0

    def __post_init__(self) -> None:
        for name in ("port", "scope_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {value!r}")
        if not isinstance(self.host, str):
            raise TypeError(f"host must be a str, not {self.host!r}")
        if "%" in self.host:
            raise AddressParseError(self.host, "give the zone as scope_id, not in the host")
        family, host, _ = _parse_host(self.host, whole=self.host)
        if family != self.family:
            raise AddressParseError(self.host, f"not an address of family {self.family!r}")
        if host != self.host:
            raise AddressParseError(self.host, f"not in canonical form (that is {host!r})")
        if not 0 <= self.port <= 0xFFFF:
            raise AddressParseError(str(self.port), "port is out of range (0-65535)")
        if not 0 <= self.scope_id <= _SCOPE_MAX:
            raise AddressParseError(str(self.scope_id), "scope id is out of range")
        if self.scope_id and family != socket.AF_INET6:
            raise AddressParseError(self.host, "a scope id is for IPv6 addresses only")
        object.__setattr__(self, "family", family)

    @property
    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address as the :mod:`socket` module takes it for :attr:`family`."""
        if self.family == socket.AF_INET:
            return (self.host, self.port)
        return (self.host, self.port, 0, self.scope_id)

    def __str__(self) -> str:
        return format_sockaddr(self)


def parse_sockaddr_port(text: str) -> SocketAddress:
    """Parse a numeric socket address with an optional port (``evutil_parse_sockaddr_port``).

    The forms libevent accepts, and only numeric addresses (host names are refused,
    as libevent refuses them: resolve names with ``getaddrinfo``):

    ==================  ======================  ==================================
    form                example                 result
    ==================  ======================  ==================================
    IPv4                ``1.2.3.4``             port 0
    IPv4:port           ``1.2.3.4:80``
    IPv6                ``::1``                 port 0; a trailing ``:80`` is part
                                                of the address, never a port
    [IPv6]              ``[::1]``               port 0
    [IPv6]:port         ``[::1]:8080``
    ==================  ======================  ==================================

    An IPv6 address may carry a zone, ``fe80::1%2`` or ``fe80::1%eth0``: an interface
    name is turned into its index, as libevent does (an unknown name is an error).
    Departures from libevent, all stricter or clearer: the port must be 1 to 5 ASCII
    digits (libevent uses ``atoi``, which takes ``"80abc"``), nothing may follow the
    closing bracket but ``:port`` (libevent ignores the rest), and an explicit port 0
    is accepted (libevent refuses ``":0"``), so every formatted address parses back.

    Args:
      text: the address, at most 128 characters.

    Returns:
      The parsed address; ``str()`` of it gives the canonical text back.

    Raises:
      AddressParseError: *text* is empty, too long, not numeric, has unbalanced
        brackets, a bad or out-of-range port, a port after an unbracketed IPv6
        address that makes it invalid, or an unknown zone.
      TypeError: *text* is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_sockaddr_port() takes a str, not {type(text).__name__}")
    if not text:
        raise AddressParseError(text, "empty address")
    if len(text) > _TEXT_MAX:
        raise AddressParseError(text, f"longer than {_TEXT_MAX} characters")
    port = 0
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise AddressParseError(text, "'[' without a matching ']'")
        host_text, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise AddressParseError(text, "only ':port' may follow ']'")
            port = _parse_port(text, rest[1:])
        family, host, scope_id = _parse_host(host_text, whole=text)
        if family != socket.AF_INET6:
            raise AddressParseError(text, "brackets are for IPv6 addresses only")
        return SocketAddress(family, host, port, scope_id)
    if "]" in text:
        raise AddressParseError(text, "']' without a matching '['")
    colons = text.count(":")
    if colons == 1:  # IPv4:port (one colon can never be IPv6)
        host_text, port_text = text.split(":")
        port = _parse_port(text, port_text)
        family, host, scope_id = _parse_host(host_text, whole=text)
        if family != socket.AF_INET:
            raise AddressParseError(text, "not an IPv4 address")
        return SocketAddress(family, host, port, scope_id)
    family, host, scope_id = _parse_host(text, whole=text)
    return SocketAddress(family, host, port, scope_id)


def format_sockaddr(addr: SockAddr) -> str:
    """Format a socket address as text; the inverse of :func:`parse_sockaddr_port`.

    ``("1.2.3.4", 80)`` gives ``"1.2.3.4:80"``; ``("::1", 80, 0, 0)`` gives
    ``"[::1]:80"``; a non-zero scope id is written as a zone, ``"[fe80::1%2]:80"`` (the
    flow label has no text form and is left out). Hosts are written in canonical form.
    Unix socket paths are returned as they are; a Linux abstract name (a leading NUL)
    is written ``"@name"`` as ``ss`` writes it, and an unnamed socket (``""``) as
    ``"<unnamed>"``.

    Args:
      addr: a sockaddr tuple, a Unix socket path, or a :class:`SocketAddress`.

    Returns:
      The text; for IP addresses, text that :func:`parse_sockaddr_port` parses back.

    Raises:
      AddressParseError: the host is not a numeric IP address (host names are not
        formatted, since they cannot be parsed back), or the port is out of range.
      TypeError: *addr* has none of the shapes above.
    """
    if isinstance(addr, str | bytes):
        return _format_unix(addr)
    family, host, port, scope_id = _inet_parts(addr)
    if family == socket.AF_INET:
        return f"{host}:{port}"
    zone = f"%{scope_id}" if scope_id else ""
    return f"[{host}{zone}]:{port}"


def sockaddr_cmp(a: SockAddr, b: SockAddr, *, include_port: bool = True) -> int:
    """Order two socket addresses (``evutil_sockaddr_cmp``).

    Addresses are ordered by family (its number, as libevent does), then by address
    bytes in network order, then by IPv6 scope id, then (when *include_port*) by port.
    Unix socket paths compare by their bytes. The flow label is ignored, as libevent
    ignores it.

    Args:
      a: the first address (any form :func:`format_sockaddr` takes).
      b: the second address.
      include_port: compare ports too; when false, addresses differing only in
        their port are equal.

    Returns:
      -1 when *a* sorts first, 0 when they are equal, 1 when *b* sorts first.

    Raises:
      AddressParseError: a host is not a numeric IP address, or a port is out of range.
      TypeError: an address has none of the accepted shapes.
    """
    key_a = _cmp_key(a, include_port=include_port)
    key_b = _cmp_key(b, include_port=include_port)
    return (key_a > key_b) - (key_a < key_b)


def make_socket_reuseable(sock: AnySocket) -> None:
    """Let a listening socket bind a recently used address (``SO_REUSEADDR``).

    This is ``evutil_make_listen_socket_reuseable``. Like libevent it does nothing on
    Windows, where ``SO_REUSEADDR`` means something else (sharing a port that another
    socket is actively using).

    Args:
      sock: a stdlib or Trio socket, before ``bind``.

    Raises:
      OSError: the kernel refused the option.
    """
    if sys.platform == "win32":
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def make_socket_reuseable_port(sock: AnySocket) -> None:
    """Let several sockets listen on the same address and port (``SO_REUSEPORT``).

    This is ``evutil_make_listen_socket_reuseable_port``: the kernel spreads incoming
    connections across every socket bound with the option (on Linux).

    Args:
      sock: a stdlib or Trio socket, before ``bind``.

    Raises:
      UnsupportedSocketOptionError: the platform has no ``SO_REUSEPORT``, or the
        kernel does not support it for this socket.
      OSError: the kernel refused the option for another reason.
    """
    option = _option("SO_REUSEPORT")
    _setsockopt(sock, socket.SOL_SOCKET, option, "SO_REUSEPORT", 1)


def set_keepalive(
    sock: AnySocket,
    *,
    enabled: bool = True,
    idle: int | None = None,
    interval: int | None = None,
    count: int | None = None,
) -> None:
    """Turn TCP keep-alive probes on or off, optionally with their timing.

    Options the caller leaves as ``None`` keep the system's defaults. Every value is
    checked, and every option looked up, before anything is set, so a
    :exc:`ValueError` or :exc:`~evtrio.errors.UnsupportedSocketOptionError` leaves the
    socket unchanged.

    Args:
      sock: a stdlib or Trio TCP socket.
      enabled: ``SO_KEEPALIVE``; when false, *idle*, *interval* and *count* must be
        ``None``.
      idle: seconds of silence before the first probe (``TCP_KEEPIDLE``; on macOS
        ``TCP_KEEPALIVE``).
      interval: seconds between probes (``TCP_KEEPINTVL``).
      count: unanswered probes before the connection is dropped (``TCP_KEEPCNT``).

    Raises:
      ValueError: a value is not a positive integer, or one is given with
        ``enabled=False``.
      UnsupportedSocketOptionError: the platform lacks an option that was asked for.
      OSError: the kernel refused a value (Linux allows at most 32767 seconds and 127
        probes).
    """
    settings: list[tuple[int, str, int]] = []
    for name, value in (("idle", idle), ("interval", interval), ("count", count)):
        if value is None:
            continue
        if not enabled:
            raise ValueError(f"set_keepalive(enabled=False) takes no {name}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, not {value!r}")
        if not 1 <= value <= _INT_MAX:
            raise ValueError(f"{name} must be between 1 and {_INT_MAX}, not {value}")
        option_name = _KEEPALIVE_OPTIONS[name]
        settings.append((_option(option_name), option_name, value))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))
    for option, option_name, value in settings:
        _setsockopt(sock, socket.IPPROTO_TCP, option, option_name, value)


def set_nodelay(sock: AnySocket, enabled: bool = True) -> None:
    """Turn Nagle's algorithm off (``TCP_NODELAY``), or back on with ``enabled=False``.

    :class:`trio.SocketStream`, and so every stream evtrio opens, already sets it.

    Args:
      sock: a stdlib or Trio TCP socket.
      enabled: true sends small writes at once; false lets the kernel coalesce them.

    Raises:
      OSError: the socket is not a TCP socket, or the kernel refused the option.
    """
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))


def secure_random_bytes(n: int) -> bytes:
    """Return *n* bytes from the operating system's secure random source.

    This is ``evutil_secure_rng_get_bytes`` (``os.urandom`` underneath: there is no
    generator to seed or initialise, so ``evutil_secure_rng_init`` and
    ``evutil_secure_rng_add_bytes`` have no counterpart).

    Args:
      n: how many bytes, 0 to :data:`SECURE_RANDOM_MAX`.

    Returns:
      *n* random bytes.

    Raises:
      ValueError: *n* is negative or above :data:`SECURE_RANDOM_MAX`.
      TypeError: *n* is not an int.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"secure_random_bytes() takes an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"cannot return a negative number of bytes ({n})")
    if n > SECURE_RANDOM_MAX:
        raise ValueError(f"at most {SECURE_RANDOM_MAX} bytes per call, not {n}")
    return os.urandom(n)


# --- private helpers (evtrio.streams.connect uses _parse_host) ---------------------

_KEEPALIVE_OPTIONS: Final = {
    "idle": "TCP_KEEPALIVE" if sys.platform == "darwin" else "TCP_KEEPIDLE",
    "interval": "TCP_KEEPINTVL",
    "count": "TCP_KEEPCNT",
}


def _option(name: str) -> int:
    value = getattr(socket, name, None)
    if not isinstance(value, int):
        raise UnsupportedSocketOptionError(name, f"the socket module has no {name} here")
    return value


def _setsockopt(sock: AnySocket, level: int, option: int, name: str, value: int) -> None:
    try:
        sock.setsockopt(level, option, value)
    except OSError as exc:
        if exc.errno in _NOT_SUPPORTED:
            raise UnsupportedSocketOptionError(name, str(exc)) from exc
        raise


def _parse_port(whole: str, port_text: str) -> int:
    if not port_text:
        raise AddressParseError(whole, "empty port")
    if not (port_text.isascii() and port_text.isdigit()):
        raise AddressParseError(whole, f"port {port_text!r} is not a number")
    if len(port_text) > _PORT_DIGITS or int(port_text) > 0xFFFF:
        raise AddressParseError(whole, f"port {port_text} is out of range (0-65535)")
    return int(port_text)


def _parse_host(text: str, *, whole: str) -> tuple[socket.AddressFamily, str, int]:
    """``(family, canonical host, scope id)`` of a numeric host, with an optional zone."""
    address, percent, zone = text.partition("%")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        if not address:
            raise AddressParseError(whole, "empty address") from None
        raise AddressParseError(whole, _not_numeric_reason(address)) from None
    if parsed.version == 4:
        if percent:
            raise AddressParseError(whole, "a zone ('%...') is for IPv6 addresses only")
        return socket.AF_INET, str(parsed), 0
    scope_id = _parse_zone(whole, zone) if percent else 0
    # RFC 5952 form. IPv4-mapped addresses keep the dotted quad, as getpeername reports
    # them and ipaddress writes them from Python 3.13 on (before: "::ffff:102:304").
    mapped = parsed.ipv4_mapped
    canonical = str(parsed) if mapped is None else f"::ffff:{mapped}"
    return socket.AF_INET6, canonical, scope_id


def _not_numeric_reason(address: str) -> str:
    if address.count(":") >= 2:
        return "not a valid IPv6 address (with a port, IPv6 needs brackets: [addr]:port)"
    if any(c.isalpha() for c in address):
        return "not a numeric address (host names are not parsed: resolve them first)"
    return "not a valid IPv4 address"


def _parse_zone(whole: str, zone: str) -> int:
    if not zone:
        raise AddressParseError(whole, "empty zone after '%'")
    if zone.isascii() and zone.isdigit():
        if len(zone) > len(str(_SCOPE_MAX)) or int(zone) > _SCOPE_MAX:
            raise AddressParseError(whole, f"zone {zone} is out of range")
        return int(zone)
    if len(zone) > _IFNAME_MAX or not zone.isprintable() or not zone.isascii():
        raise AddressParseError(whole, f"zone {zone!r} is not an interface name")
    try:
        return socket.if_nametoindex(zone)
    except (OSError, ValueError):
        raise AddressParseError(whole, f"no network interface named {zone!r}") from None


def _inet_parts(addr: object) -> tuple[socket.AddressFamily, str, int, int]:
    """``(family, canonical host, port, scope id)`` of an IP sockaddr or SocketAddress."""
    if isinstance(addr, SocketAddress):
        return addr.family, addr.host, addr.port, addr.scope_id
    if not isinstance(addr, tuple) or len(addr) not in (2, 4):
        raise TypeError(
            "expected a (host, port) or (host, port, flowinfo, scope_id) tuple, "
            f"a Unix socket path or a SocketAddress, not {addr!r}"
        )
    host, port = addr[0], addr[1]
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"expected a str host and an int port, not {addr!r}")
    if not 0 <= port <= 0xFFFF:
        raise AddressParseError(str(port), "port is out of range (0-65535)")
    family, canonical, scope_id = _parse_host(host, whole=host)
    if len(addr) == 4:
        tuple_scope = addr[3]
        if family != socket.AF_INET6:
            raise AddressParseError(host, "a 4-tuple sockaddr needs an IPv6 address")
        if isinstance(tuple_scope, bool) or not isinstance(tuple_scope, int):
            raise TypeError(f"expected an int scope id, not {addr!r}")
        if not 0 <= tuple_scope <= _SCOPE_MAX:
            raise AddressParseError(str(tuple_scope), "scope id is out of range")
        scope_id = tuple_scope or scope_id
    return family, canonical, port, scope_id


def _format_unix(path: str | bytes) -> str:
    if not path:
        return "<unnamed>"
    if isinstance(path, bytes):
        if path.startswith(b"\0"):
            return "@" + path[1:].decode(errors="backslashreplace")
        return path.decode(errors="backslashreplace")
    if path.startswith("\0"):
        return "@" + path[1:]
    return path


def _cmp_key(addr: SockAddr, *, include_port: bool) -> tuple[int, bytes, int, int]:
    if isinstance(addr, str | bytes):
        return (_AF_UNIX, os.fsencode(addr), 0, 0)
    family, host, port, scope_id = _inet_parts(addr)
    packed = ipaddress.ip_address(host).packed
    return (int(family), packed, scope_id, port if include_port else 0)
