"""evtrio.util: sockaddr parsing, formatting and ordering, socket options, secure random."""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from typing import TYPE_CHECKING

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from evtrio.errors import AddressParseError, UnsupportedSocketOptionError
from evtrio.util import (
    SECURE_RANDOM_MAX,
    SocketAddress,
    format_sockaddr,
    make_socket_reuseable,
    make_socket_reuseable_port,
    parse_sockaddr_port,
    secure_random_bytes,
    set_keepalive,
    set_nodelay,
    sockaddr_cmp,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

INET, INET6 = socket.AF_INET, socket.AF_INET6
AN_INTERFACE_INDEX, AN_INTERFACE_NAME = socket.if_nameindex()[0]


# --- parse_sockaddr_port ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the five forms the libevent book lists
        ("1.2.3.4", SocketAddress(INET, "1.2.3.4", 0)),
        ("1.2.3.4:80", SocketAddress(INET, "1.2.3.4", 80)),
        ("ffff::", SocketAddress(INET6, "ffff::", 0)),
        ("[ffff::]", SocketAddress(INET6, "ffff::", 0)),
        ("[ffff::]:80", SocketAddress(INET6, "ffff::", 80)),
        # canonical forms, edges of the port range
        ("[::1]:8080", SocketAddress(INET6, "::1", 8080)),
        ("[2001:DB8:0:0::1]:65535", SocketAddress(INET6, "2001:db8::1", 65535)),
        ("[::ffff:1.2.3.4]:1", SocketAddress(INET6, "::ffff:1.2.3.4", 1)),
        ("0.0.0.0:0", SocketAddress(INET, "0.0.0.0", 0)),
        ("1.2.3.4:00080", SocketAddress(INET, "1.2.3.4", 80)),
        # zones
        ("fe80::1%3", SocketAddress(INET6, "fe80::1", 0, scope_id=3)),
        ("[fe80::1%4294967295]:443", SocketAddress(INET6, "fe80::1", 443, scope_id=2**32 - 1)),
        # one colon is IPv4:port; more is an IPv6 address, whose last group is no port
        ("::1:80", SocketAddress(INET6, "::1:80", 0)),
    ],
)
def test_parse_sockaddr_port_forms(text: str, expected: SocketAddress) -> None:
    assert parse_sockaddr_port(text) == expected


def test_parse_sockaddr_port_interface_name_zone() -> None:
    parsed = parse_sockaddr_port(f"[fe80::1%{AN_INTERFACE_NAME}]:80")
    assert parsed == SocketAddress(INET6, "fe80::1", 80, scope_id=AN_INTERFACE_INDEX)
    assert str(parsed) == f"[fe80::1%{AN_INTERFACE_INDEX}]:80"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty address"),
        ("a" * 129, "longer than 128"),
        (":80", "empty address"),
        ("1.2.3.4:", "empty port"),
        ("1.2.3.4:http", "not a number"),
        ("1.2.3.4:-1", "not a number"),
        ("1.2.3.4: 80", "not a number"),
        ("1.2.3.4:\uff18\uff10", "not a number"),  # fullwidth digits
        ("1.2.3.4:65536", "out of range"),
        ("1.2.3.4:000080", "out of range"),
        ("[::1]:", "empty port"),
        ("[::1]:99999", "out of range"),
        ("[::1", "without a matching ']'"),
        ("::1]", "without a matching '['"),
        ("[::1]]:80", "only ':port' may follow"),
        ("[::1]80", "only ':port' may follow"),
        ("[]:80", "empty address"),
        ("[1.2.3.4]:80", "for IPv6 addresses only"),
        ("localhost", "host names are not parsed"),
        ("localhost:80", "host names are not parsed"),
        ("example.com:443", "host names are not parsed"),
        ("1.2.3", "not a valid IPv4"),
        ("1.2.3.256", "not a valid IPv4"),
        ("01.2.3.4", "not a valid IPv4"),
        (" 1.2.3.4", "not a valid IPv4"),
        ("1.2.3.4:80:90", "needs brackets"),
        ("2001:db8::1:99999", "needs brackets"),
        ("1:2:3:4:5:6:7:8:80", "needs brackets"),
        ("1.2.3.4%1", "for IPv6 addresses only"),
        ("fe80::1%", "empty zone"),
        ("fe80::1%4294967296", "out of range"),
        ("fe80::1%no-such-interface0", "no network interface"),
        ("fe80::1%a\x00b", "not an interface name"),
    ],
)
def test_parse_sockaddr_port_rejects(text: str, reason: str) -> None:
    with pytest.raises(AddressParseError, match=re.escape(reason)) as info:
        parse_sockaddr_port(text)
    assert info.value.text == text
    assert reason in info.value.reason
    assert isinstance(info.value, ValueError)


def test_parse_sockaddr_port_error_message_is_bounded() -> None:
    with pytest.raises(AddressParseError) as info:
        parse_sockaddr_port("x" * 100_000)
    assert len(str(info.value)) < 200
    assert len(info.value.text) == 100_000


def test_parse_sockaddr_port_takes_str_only() -> None:
    with pytest.raises(TypeError, match="takes a str, not bytes"):
        parse_sockaddr_port(b"1.2.3.4:80")  # type: ignore[arg-type]


# --- SocketAddress ------------------------------------------------------------------


def test_SocketAddress_sockaddr_connects() -> None:
    with socket.socket() as listener, socket.socket() as client:
        listener.bind(parse_sockaddr_port("127.0.0.1").sockaddr)
        listener.listen()
        port = listener.getsockname()[1]
        client.connect(parse_sockaddr_port(f"127.0.0.1:{port}").sockaddr)
        assert client.getpeername() == ("127.0.0.1", port)


def test_SocketAddress_sockaddr_shapes() -> None:
    assert SocketAddress(INET, "1.2.3.4", 80).sockaddr == ("1.2.3.4", 80)
    assert SocketAddress(INET6, "fe80::1", 80, 7).sockaddr == ("fe80::1", 80, 0, 7)
    assert SocketAddress(2, "1.2.3.4", 80).family is INET  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((INET, "::1", 80), AddressParseError, "not an address of family"),
        ((INET6, "1.2.3.4", 80), AddressParseError, "not an address of family"),
        ((INET6, "::0001", 80), AddressParseError, r"canonical form \(that is '::1'\)"),
        ((INET6, "fe80::1%1", 80), AddressParseError, "give the zone as scope_id"),
        ((INET, "localhost", 80), AddressParseError, "host names"),
        ((INET, "1.2.3.4", 65536), AddressParseError, "port is out of range"),
        ((INET, "1.2.3.4", -1), AddressParseError, "port is out of range"),
        ((INET, "1.2.3.4", 80, 1), AddressParseError, "for IPv6 addresses only"),
        ((INET6, "::1", 80, -1), AddressParseError, "scope id is out of range"),
        ((INET, "1.2.3.4", "80"), TypeError, "port must be an int"),
        ((INET, "1.2.3.4", True), TypeError, "port must be an int"),
        ((INET, b"1.2.3.4", 80), TypeError, "host must be a str"),
    ],
)
def test_SocketAddress_checks_fields(
    args: tuple[object, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        SocketAddress(*args)  # type: ignore[arg-type]


# --- format_sockaddr ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        (("1.2.3.4", 80), "1.2.3.4:80"),
        (("::1", 80), "[::1]:80"),
        (("::1", 80, 0, 0), "[::1]:80"),
        (("::1", 80, 12345, 0), "[::1]:80"),  # the flow label has no text form
        (("fe80::1", 80, 0, 3), "[fe80::1%3]:80"),
        (("fe80::1%3", 80), "[fe80::1%3]:80"),
        (("2001:DB8:0::1", 0, 0, 0), "[2001:db8::1]:0"),
        (SocketAddress(INET6, "::1", 9), "[::1]:9"),
        ("/run/evtrio.sock", "/run/evtrio.sock"),
        (b"/run/evtrio.sock", "/run/evtrio.sock"),
        (b"\0evtrio-abstract", "@evtrio-abstract"),
        ("\0evtrio-abstract", "@evtrio-abstract"),
        (b"/tmp/\xff", "/tmp/\\xff"),
        ("", "<unnamed>"),
        (b"", "<unnamed>"),
    ],
)
def test_format_sockaddr(addr: object, text: str) -> None:
    assert format_sockaddr(addr) == text  # type: ignore[arg-type]


def test_format_sockaddr_interface_name_in_host() -> None:
    # getaddrinfo reports ("fe80::1", port, 0, index); a host spelled with a named zone
    # and a scope id of 0 takes the zone's index.
    assert format_sockaddr((f"fe80::1%{AN_INTERFACE_NAME}", 80, 0, 0)) == (
        f"[fe80::1%{AN_INTERFACE_INDEX}]:80"
    )


def test_format_sockaddr_of_real_sockets() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert format_sockaddr(listener.getsockname()) == f"127.0.0.1:{port}"
    a, b = socket.socketpair()
    with a, b:
        assert format_sockaddr(a.getsockname()) == "<unnamed>"


@pytest.mark.parametrize(
    ("addr", "error", "match"),
    [
        (("localhost", 80), AddressParseError, "host names are not parsed"),
        (("1.2.3.4", 65536), AddressParseError, "port is out of range"),
        (("1.2.3.4", -1), AddressParseError, "port is out of range"),
        (("1.2.3.4", 80, 0, 0), AddressParseError, "4-tuple sockaddr needs an IPv6"),
        (("::1", 80, 0, 2**32), AddressParseError, "scope id is out of range"),
        (("::1", 80, 0, "1"), TypeError, "int scope id"),
        (("1.2.3.4", "80"), TypeError, "str host and an int port"),
        (("1.2.3.4",), TypeError, "expected a"),
        (("1.2.3.4", 80, 0), TypeError, "expected a"),
        (80, TypeError, "expected a"),
        (None, TypeError, "expected a"),
    ],
)
def test_format_sockaddr_rejects(addr: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        format_sockaddr(addr)  # type: ignore[arg-type]


# --- round trips and garbage (Hypothesis) -------------------------------------------

ports = st.integers(0, 65535)
scopes = st.integers(0, 2**32 - 1)


@given(st.ip_addresses(v=4), ports)
def test_format_parse_round_trip_ipv4(address: ipaddress.IPv4Address, port: int) -> None:
    text = format_sockaddr((str(address), port))
    parsed = parse_sockaddr_port(text)
    assert parsed == SocketAddress(INET, str(address), port)
    assert str(parsed) == text
    assert parse_sockaddr_port(str(address)).port == 0


@given(st.ip_addresses(v=6), ports, scopes)
@example(ipaddress.IPv6Address("::ffff:1.2.3.4"), 80, 0)
@example(ipaddress.IPv6Address("::"), 0, 0)
def test_format_parse_round_trip_ipv6(
    address: ipaddress.IPv6Address, port: int, scope: int
) -> None:
    text = format_sockaddr((address.exploded, port, 0, scope))
    parsed = parse_sockaddr_port(text)
    assert ipaddress.IPv6Address(parsed.host) == address
    assert (parsed.family, parsed.port, parsed.scope_id) == (INET6, port, scope)
    assert format_sockaddr(parsed.sockaddr) == text
    assert parse_sockaddr_port(text.partition("]")[0] + "]") == SocketAddress(
        INET6, parsed.host, 0, scope
    )
    if not scope:
        assert parse_sockaddr_port(address.compressed) == SocketAddress(INET6, parsed.host, 0)


ADDRESS_ALPHABET = "0123456789abcdefABCDEFxyz:.[]%- \x00é"


@given(st.one_of(st.text(), st.text(alphabet=ADDRESS_ALPHABET, max_size=60)))
@example("[")
@example("]")
@example("%")
@example("[%]:1")
@example(":::")
@example("1" * 5000)
@example("1.2.3.4:" + "9" * 5000)
@example("[::1]:" + "9" * 5000)
@example("::1%" + "9" * 5000)
def test_parse_sockaddr_port_garbage_raises_only_the_typed_error(text: str) -> None:
    try:
        parsed: SocketAddress | AddressParseError = parse_sockaddr_port(text)
    except AddressParseError as exc:
        parsed = exc
    if isinstance(parsed, AddressParseError):
        assert parsed.text == text
    else:  # whatever parses formats back to text that parses to the same address
        assert parse_sockaddr_port(str(parsed)) == parsed


# --- sockaddr_cmp -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("1.2.3.4", 80), ("1.2.3.4", 80), 0),
        (("1.2.3.4", 80), ("1.2.3.4", 81), -1),
        (("1.2.3.4", 81), ("1.2.3.4", 80), 1),
        (("9.0.0.0", 99), ("10.0.0.0", 1), -1),  # bytes, not text: 9 < 10
        (("::1", 80), ("::1", 80, 0, 0), 0),
        (("::1", 80, 5, 0), ("::1", 80, 6, 0), 0),  # the flow label is ignored
        (("fe80::1", 80, 0, 1), ("fe80::1", 80, 0, 2), -1),
        (("::2", 1), ("::10", 1), -1),
        (("255.255.255.255", 65535), ("::", 0), -1),  # AF_INET < AF_INET6
        ("/tmp/a", ("0.0.0.0", 0), -1),  # AF_UNIX < AF_INET
        ("/tmp/a", b"/tmp/b", -1),
        (b"/tmp/a", "/tmp/a", 0),
        (SocketAddress(INET, "1.2.3.4", 80), ("1.2.3.4", 80), 0),
    ],
)
def test_sockaddr_cmp(a: object, b: object, expected: int) -> None:
    assert sockaddr_cmp(a, b) == expected  # type: ignore[arg-type]
    assert sockaddr_cmp(b, a) == -expected  # type: ignore[arg-type]


def test_sockaddr_cmp_without_port() -> None:
    assert sockaddr_cmp(("1.2.3.4", 80), ("1.2.3.4", 81), include_port=False) == 0
    assert sockaddr_cmp(("1.2.3.4", 80), ("1.2.3.5", 79), include_port=False) == -1
    assert sockaddr_cmp(("::1", 1), ("::1", 2, 0, 0), include_port=False) == 0


def test_sockaddr_cmp_rejects_host_names() -> None:
    with pytest.raises(AddressParseError, match="host names"):
        sockaddr_cmp(("localhost", 80), ("127.0.0.1", 80))


inet_sockaddrs = st.one_of(
    st.tuples(st.ip_addresses(v=4).map(str), ports),
    st.tuples(st.ip_addresses(v=6).map(str), ports, st.just(0), st.integers(0, 3)),
)


@given(st.lists(inet_sockaddrs, min_size=3, max_size=3), st.booleans())
def test_sockaddr_cmp_is_a_total_order(addrs: list[tuple[str, int]], port: bool) -> None:
    a, b, c = addrs
    assert sockaddr_cmp(a, a, include_port=port) == 0
    assert sockaddr_cmp(a, b, include_port=port) == -sockaddr_cmp(b, a, include_port=port)
    if sockaddr_cmp(a, b, include_port=port) <= 0 and sockaddr_cmp(b, c, include_port=port) <= 0:
        assert sockaddr_cmp(a, c, include_port=port) <= 0
    same = parse_sockaddr_port(format_sockaddr(a)) == parse_sockaddr_port(format_sockaddr(b))
    assert (sockaddr_cmp(a, b) == 0) == same


# --- socket options -----------------------------------------------------------------


@pytest.fixture(params=["stdlib", "trio"])
def tcp_socket(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    """An unconnected TCP socket, as a stdlib socket or as a Trio socket."""
    if request.param == "stdlib":
        with socket.socket() as sock:
            yield sock
    else:
        with trio.socket.from_stdlib_socket(socket.socket()) as trio_sock:
            yield trio_sock  # type: ignore[misc]  # same option methods


def option(sock: socket.socket, level: int, name: int) -> int:
    return sock.getsockopt(level, name)


def test_make_socket_reuseable(tcp_socket: socket.socket) -> None:
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    make_socket_reuseable(tcp_socket)
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0


def test_make_socket_reuseable_port(tcp_socket: socket.socket) -> None:
    make_socket_reuseable_port(tcp_socket)
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0


def test_make_socket_reuseable_port_lets_two_sockets_listen() -> None:
    with socket.socket() as first, socket.socket() as second:
        make_socket_reuseable_port(first)
        make_socket_reuseable_port(second)
        first.bind(("127.0.0.1", 0))
        first.listen()
        second.bind(first.getsockname())
        second.listen()


def test_make_socket_reuseable_port_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with socket.socket() as sock, pytest.raises(UnsupportedSocketOptionError) as info:
        make_socket_reuseable_port(sock)
    assert info.value.option == "SO_REUSEPORT"
    assert "no SO_REUSEPORT" in str(info.value)


class RefusingSocket:
    """A socket whose kernel knows no option: setsockopt fails with *code*."""

    def __init__(self, code: int) -> None:
        self.code = code

    def setsockopt(self, level: int, name: int, value: int) -> None:
        raise OSError(self.code, "refused")


def test_make_socket_reuseable_port_kernel_without_it() -> None:
    with pytest.raises(UnsupportedSocketOptionError, match="SO_REUSEPORT") as info:
        make_socket_reuseable_port(RefusingSocket(errno.ENOPROTOOPT))  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, OSError)


def test_make_socket_reuseable_port_other_kernel_errors_pass_through() -> None:
    with pytest.raises(OSError, match="refused") as info:
        make_socket_reuseable_port(RefusingSocket(errno.EBADF))  # type: ignore[arg-type]
    assert not isinstance(info.value, UnsupportedSocketOptionError)


def test_set_keepalive_timing(tcp_socket: socket.socket) -> None:
    set_keepalive(tcp_socket, idle=30, interval=5, count=4)
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    set_keepalive(tcp_socket, enabled=False)
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30


def test_set_keepalive_keeps_system_defaults(tcp_socket: socket.socket) -> None:
    default_idle = option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    set_keepalive(tcp_socket, count=3)
    assert option(tcp_socket, socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == default_idle
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"idle": 0}, "idle must be between 1 and"),
        ({"interval": -5}, "interval must be between 1 and"),
        ({"count": 2**31}, "count must be between 1 and"),
        ({"idle": 1.5}, "idle must be an int"),
        ({"count": True}, "count must be an int"),
        ({"enabled": False, "idle": 10}, "takes no idle"),
        ({"idle": 10, "count": 0}, "count must be between"),  # nothing set before the check
    ],
)
def test_set_keepalive_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with socket.socket() as sock:
        with pytest.raises(ValueError, match=match):
            set_keepalive(sock, **kwargs)  # type: ignore[arg-type]
        assert option(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


def test_set_keepalive_unsupported_option_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(socket, "TCP_KEEPCNT")
    with socket.socket() as sock:
        with pytest.raises(UnsupportedSocketOptionError) as info:
            set_keepalive(sock, idle=10, count=3)
        assert info.value.option == "TCP_KEEPCNT"
        assert option(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        set_keepalive(sock)  # without the missing option it still works
        assert option(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0


def test_set_nodelay(tcp_socket: socket.socket) -> None:
    set_nodelay(tcp_socket)
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    set_nodelay(tcp_socket, enabled=False)
    assert option(tcp_socket, socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


def test_set_nodelay_on_a_unix_socket_is_an_os_error() -> None:
    a, b = socket.socketpair()
    with a, b, pytest.raises(OSError):  # noqa: PT011 - the errno varies by platform
        set_nodelay(a)


# --- secure_random_bytes ------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 32, SECURE_RANDOM_MAX])
def test_secure_random_bytes_length(n: int) -> None:
    data = secure_random_bytes(n)
    assert isinstance(data, bytes)
    assert len(data) == n


def test_secure_random_bytes_differ() -> None:
    assert secure_random_bytes(32) != secure_random_bytes(32)  # fails with p = 2**-256


@pytest.mark.parametrize(
    ("n", "error", "match"),
    [
        (-1, ValueError, "negative"),
        (SECURE_RANDOM_MAX + 1, ValueError, "at most"),
        (1.0, TypeError, "takes an int"),
        (True, TypeError, "takes an int"),
        ("8", TypeError, "takes an int"),
    ],
)
def test_secure_random_bytes_rejects(n: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        secure_random_bytes(n)  # type: ignore[arg-type]
