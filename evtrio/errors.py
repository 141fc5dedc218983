"""evtrio's own exceptions.

Every error evtrio raises for a reason of its own (rather than Trio's stream errors,
which keep their Trio meaning) subclasses :class:`EvtrioError` and carries the values a
caller needs to act on it.
"""

from __future__ import annotations

__all__ = (
    "AddressParseError",
    "BufferFrozenError",
    "CertificateVerifyError",
    "ConnectError",
    "DelimiterNotFoundError",
    "DirtyShutdownError",
    "EventBaseClosedError",
    "EventMethodError",
    "EventStateError",
    "EvtrioError",
    "FileSegmentError",
    "FilterError",
    "FilterLimitError",
    "ForeignEventError",
    "IncompleteReadError",
    "LineTooLongError",
    "RateLimitGroupError",
    "ReadTimeoutError",
    "ReentrantLoopError",
    "ReservationError",
    "StreamTimeoutError",
    "TLSError",
    "TLSHandshakeError",
    "TLSHandshakeTimeoutError",
    "UnsupportedFdError",
    "UnsupportedSocketOptionError",
    "WriteBufferFullError",
    "WriteTimeoutError",
)

from typing import TYPE_CHECKING, Literal

import trio

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class EvtrioError(Exception):
    """Base class of every exception evtrio defines."""


class LineTooLongError(EvtrioError):
    """A line is longer than the limit, or no terminator came within it.

    The buffer the line was read from is left exactly as it was.

    Attributes:
      max_length: the limit that was exceeded.
      buffered: how many bytes were buffered when the limit was hit.
    """

    def __init__(self, max_length: int, buffered: int) -> None:
        super().__init__(
            f"no line terminator within {max_length} bytes ({buffered} bytes buffered)"
        )
        self.max_length = max_length
        self.buffered = buffered


class BufferFrozenError(EvtrioError):
    """An operation touched a frozen end of a :class:`~evtrio.Buffer`.

    Nothing was changed.

    Attributes:
      side: ``"front"`` or ``"back"``: the frozen end the operation needed.
      operation: the name of the refused operation.
    """

    def __init__(self, side: Literal["front", "back"], operation: str) -> None:
        super().__init__(f"{operation}: the {side} of the buffer is frozen")
        self.side: Literal["front", "back"] = side
        self.operation = operation


class ReservationError(EvtrioError):
    """:meth:`~evtrio.Buffer.commit` did not match a live reservation.

    Raised when nothing is reserved, when the reservation was invalidated by another
    mutation of the buffer, or when more bytes are committed than were reserved. The
    buffer is unchanged.
    """


class FileSegmentError(EvtrioError):
    """A file segment could not be read as promised (the file shrank or is unreadable).

    Attributes:
      offset: the file offset that was being read.
      expected: how many bytes the segment still promised from there.
    """

    def __init__(self, offset: int, expected: int, reason: str) -> None:
        super().__init__(f"file segment at offset {offset} ({expected} bytes): {reason}")
        self.offset = offset
        self.expected = expected


class IncompleteReadError(EvtrioError):
    """The stream ended before the requested number of bytes arrived.

    The bytes that did arrive stay buffered (``stream.input``).

    Attributes:
      expected: how many bytes were asked for.
      buffered: how many were buffered when the stream ended.
    """

    def __init__(self, expected: int, buffered: int) -> None:
        super().__init__(f"stream ended after {buffered} of {expected} bytes")
        self.expected = expected
        self.buffered = buffered


class DelimiterNotFoundError(EvtrioError):
    """No delimiter within the allowed number of bytes. Nothing was consumed.

    Attributes:
      delimiter: the delimiter searched for.
      max_bytes: the most bytes allowed before it.
    """

    def __init__(self, delimiter: bytes, max_bytes: int) -> None:
        super().__init__(f"no {delimiter!r} within {max_bytes} bytes")
        self.delimiter = delimiter
        self.max_bytes = max_bytes


class WriteBufferFullError(EvtrioError):
    """A synchronous write would take the output buffer past its high watermark.

    Nothing was queued.

    Attributes:
      write_high: the output high watermark.
      buffered: bytes already queued.
      size: bytes that were to be added.
    """

    def __init__(self, write_high: int, buffered: int, size: int) -> None:
        hint = " (write_high 0 means write-through: use send_all)" if not write_high else ""
        super().__init__(
            f"{size} more bytes would exceed write_high={write_high}"
            f" ({buffered} already queued){hint}"
        )
        self.write_high = write_high
        self.buffered = buffered
        self.size = size


class StreamTimeoutError(EvtrioError):
    """A stream waited longer than its read or write timeout.

    Attributes:
      direction: ``"read"`` or ``"write"``.
      timeout: the timeout, in seconds.
    """

    def __init__(self, direction: Literal["read", "write"], timeout: float) -> None:
        super().__init__(f"no progress {direction}ing for {timeout} seconds")
        self.direction: Literal["read", "write"] = direction
        self.timeout = timeout


class ReadTimeoutError(StreamTimeoutError):
    """Nothing arrived for ``read_timeout`` seconds while waiting to read."""

    def __init__(self, timeout: float) -> None:
        super().__init__("read", timeout)


class WriteTimeoutError(StreamTimeoutError):
    """The transport took nothing for ``write_timeout`` seconds while writing."""

    def __init__(self, timeout: float) -> None:
        super().__init__("write", timeout)


class EventMethodError(EvtrioError):
    """No event-base backend method can do what was asked for.

    Raised by :func:`~evtrio.open_event_base` when every method is avoided or lacks a
    required feature, and by :meth:`~evtrio.EventBase.new_event` when the base's method
    lacks a feature the event needs (``EV.CLOSED`` without early-close detection).

    Attributes:
      method: the base's method, or ``None`` when no base was made yet.
      missing: names of the features that were required but not available.
      avoided: the method names the caller asked to avoid.
      supported: the methods this platform offers, in order of preference.
    """

    def __init__(
        self,
        *,
        method: str | None,
        missing: Iterable[str],
        avoided: Iterable[str],
        supported: Iterable[str],
    ) -> None:
        self.method = method
        self.missing = tuple(missing)
        self.avoided = frozenset(avoided)
        self.supported = tuple(supported)
        wanted = ", ".join(self.missing) or "nothing special"
        if method is not None:
            message = f"the {method!r} method cannot provide {wanted}"
        else:
            left = [name for name in self.supported if name not in self.avoided]
            message = (
                f"no event method fits: supported {list(self.supported)}, "
                f"avoided {sorted(self.avoided)}, left {left}, required {wanted}"
            )
        super().__init__(message)


class UnsupportedFdError(EvtrioError):
    """The base's backend refused to watch a file descriptor.

    Examples: a regular file under ``epoll`` (the kernel says ``EPERM``), a closed
    descriptor, or a descriptor too large for ``select``. The event stays non-pending.

    Attributes:
      fd: the refused descriptor.
      method: the backend method that refused it.
      errno: the OS error number, or ``None``.
    """

    def __init__(self, fd: int, method: str, errno: int | None, reason: str) -> None:
        super().__init__(f"the {method!r} backend cannot watch fd {fd}: {reason}")
        self.fd = fd
        self.method = method
        self.errno = errno


class EventBaseClosedError(EvtrioError, trio.ClosedResourceError):
    """An event base, or an event of it, was used after the base closed.

    Also a :exc:`trio.ClosedResourceError`, as for any Trio resource used after its
    close.
    """


class ForeignEventError(EvtrioError):
    """An event was handed to a base it does not belong to (debug mode).

    Attributes:
      event: the event.
      base: the base it was handed to.
    """

    def __init__(self, event: object, base: object) -> None:
        super().__init__(f"{event!r} belongs to another event base than {base!r}")
        self.event = event
        self.base = base


class ReentrantLoopError(EvtrioError, trio.BusyResourceError):
    """An event base's loop was started while it was already running.

    Raised for a ``loop()``, ``dispatch()`` or ``active_events()`` started from inside a
    callback of the same base or from another task while the loop runs. Also a
    :exc:`trio.BusyResourceError`.
    """


class EventStateError(EvtrioError):
    """An event is not in a state that allows the operation; nothing was changed.

    Examples: changing the priority of an active event, re-assigning a pending event,
    or mixing edge-triggered and level-triggered events on one descriptor.
    """


class AddressParseError(EvtrioError, ValueError):
    """Text is not a numeric socket address that :mod:`evtrio.util` accepts.

    Also a :exc:`ValueError`, so code that catches ``ValueError`` keeps working.

    Attributes:
      text: the offending text (the whole input, or the part of a sockaddr tuple that
        was rejected).
      reason: what is wrong with it, in a few words.
    """

    def __init__(self, text: str, reason: str) -> None:
        shown = text if len(text) <= 80 else text[:80] + "..."
        super().__init__(f"{shown!r}: {reason}")
        self.text = text
        self.reason = reason


class UnsupportedSocketOptionError(EvtrioError):
    """The platform (or this socket) does not support a socket option evtrio was asked to set.

    Nothing was changed on the socket.

    Attributes:
      option: the option's name, e.g. ``"SO_REUSEPORT"``.
      reason: why it cannot be set here.
    """

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option} is not supported: {reason}")
        self.option = option
        self.reason = reason


class ConnectError(EvtrioError, OSError):
    """No address of a host could be connected to.

    Raised by :func:`evtrio.streams.open_tcp_stream` after every attempt failed; it is
    also an :exc:`OSError` (as Trio's ``open_tcp_stream`` raises), whose ``errno`` is
    set when every attempt failed with the same error number and is ``None`` otherwise.
    The message names every address and why it failed.

    Attributes:
      host: the host that was asked for.
      port: the port that was asked for.
      attempts: ``(address, error)`` for each address, in the order they were tried,
        with the address formatted as ``"1.2.3.4:80"`` or ``"[::1]:80"``.
      untried: how many further addresses were not tried because of the attempt limit.
    """

    def __init__(
        self,
        host: str,
        port: int,
        attempts: Sequence[tuple[str, OSError]],
        *,
        untried: int = 0,
    ) -> None:
        if attempts:
            tried = "; ".join(f"{address}: {error}" for address, error in attempts)
            message = f"could not connect to {host!r} port {port}: {tried}"
        else:
            message = f"could not connect to {host!r} port {port}: no addresses to try"
        if untried:
            message += f" ({untried} more not tried: attempt limit reached)"
        codes = {error.errno for _, error in attempts}
        code = codes.pop() if len(codes) == 1 else None
        if code is None:
            super().__init__(message)
        else:
            super().__init__(code, message)
        self.host = host
        self.port = port
        self.attempts = tuple(attempts)
        self.untried = untried


class TLSError(EvtrioError, trio.BrokenResourceError):
    """A TLS stream failed for a reason of TLS's own (OpenSSL reported an error).

    Also a :exc:`trio.BrokenResourceError`: the stream cannot be used any more, only
    closed. Raised ``from`` the :exc:`ssl.SSLError` behind it. Failures of the transport
    underneath (a reset connection) stay plain :exc:`trio.BrokenResourceError`.

    Attributes:
      reason: OpenSSL's reason code, such as ``"CERTIFICATE_VERIFY_FAILED"``,
        ``"TLSV1_ALERT_UNKNOWN_CA"`` or ``"WRONG_VERSION_NUMBER"``, or ``None``.
      library: the OpenSSL library that reported it (usually ``"SSL"``), or ``None``.
    """

    def __init__(
        self, message: str, *, reason: str | None = None, library: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.library = library


class TLSHandshakeError(TLSError):
    """The TLS handshake failed; no application data was exchanged.

    The peer may have refused our certificate or our protocol versions, spoken
    something that is not TLS, or closed the connection mid-handshake.

    Attributes:
      server_hostname: the name the client asked for and verified the certificate
        against, or ``None`` (on the server side, or when no name was given).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        library: str | None = None,
        server_hostname: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason, library=library)
        self.server_hostname = server_hostname


class CertificateVerifyError(TLSHandshakeError):
    """The peer's certificate did not verify: untrusted issuer, wrong name, expired...

    Attributes:
      verify_code: OpenSSL's ``X509_V_ERR_*`` code, e.g. 20 (unable to get local
        issuer certificate: the CA is not trusted), 62 (hostname mismatch) or 10
        (certificate has expired).
      verify_message: OpenSSL's text for *verify_code*.
    """

    def __init__(
        self,
        *,
        verify_code: int,
        verify_message: str,
        server_hostname: str | None = None,
        reason: str | None = "CERTIFICATE_VERIFY_FAILED",
        library: str | None = "SSL",
    ) -> None:
        whose = f" of {server_hostname!r}" if server_hostname is not None else ""
        super().__init__(
            f"the certificate{whose} did not verify: {verify_message} (code {verify_code})",
            reason=reason,
            library=library,
            server_hostname=server_hostname,
        )
        self.verify_code = verify_code
        self.verify_message = verify_message


class TLSHandshakeTimeoutError(TLSHandshakeError):
    """The TLS handshake did not finish within ``handshake_timeout`` seconds.

    The stream is broken (a cut-off handshake cannot be resumed); close it.

    Attributes:
      timeout: the handshake timeout, in seconds.
    """

    def __init__(self, timeout: float, *, server_hostname: str | None = None) -> None:
        with_whom = f" with {server_hostname!r}" if server_hostname is not None else ""
        super().__init__(
            f"the TLS handshake{with_whom} did not finish within {timeout} seconds",
            server_hostname=server_hostname,
        )
        self.timeout = timeout


class DirtyShutdownError(TLSError):
    """The peer closed the connection without a TLS ``close_notify`` (a dirty shutdown).

    The data received so far is intact, but the peer never confirmed it was complete:
    an attacker who can cut TCP connections could have truncated it. Raised by
    ``receive_some`` unless the stream tolerates dirty shutdowns, in which case the
    stream reports end-of-stream (``b""``) and sets its ``dirty_shutdown`` flag. Either
    way ``dirty_shutdown`` is ``True`` afterwards.
    """

    def __init__(self, *, reason: str | None = None, library: str | None = None) -> None:
        super().__init__(
            "the peer closed the connection without a TLS close_notify (dirty shutdown):"
            " what was received may be truncated",
            reason=reason,
            library=library,
        )


class RateLimitGroupError(EvtrioError):
    """A rate-limited stream joined a group while in one, or left a group it is not in.

    A stream belongs to at most one :class:`~evtrio.streams.RateLimitGroup` at a time;
    to move it, remove it from its group first. Nothing was changed.

    Attributes:
      stream: the stream.
      group: the group the stream is in now, or ``None``.
    """

    def __init__(self, message: str, *, stream: object, group: object | None) -> None:
        super().__init__(message)
        self.stream = stream
        self.group = group


class FilterError(EvtrioError, trio.BrokenResourceError):
    """A filter stream's filter failed; that direction of the stream is broken.

    Raised when a filter returns ``FilterResult.ERROR`` or raises (the exception is the
    ``__cause__``), and when bytes are left unfiltered at the end of a stream. Also a
    :exc:`trio.BrokenResourceError`: later operations in that direction raise that.

    Attributes:
      direction: ``"input"`` (receiving) or ``"output"`` (sending).
      filter: the filter that failed.
      reason: what went wrong, when known (a filter's ``error`` attribute).
    """

    def __init__(
        self, direction: Literal["input", "output"], filter: object, reason: str | None
    ) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"the {direction} filter {filter!r} failed{detail}")
        self.direction: Literal["input", "output"] = direction
        self.filter = filter
        self.reason = reason


class FilterLimitError(FilterError):
    """A filter left more than ``max_pending`` unfiltered bytes in its source.

    A filter that needs more input before it can produce anything (the rest of a
    frame, say) may hold bytes back, but only so many.

    Attributes:
      max_pending: the limit that was exceeded.
    """

    def __init__(
        self, direction: Literal["input", "output"], filter: object, max_pending: int
    ) -> None:
        super().__init__(direction, filter, f"more than max_pending={max_pending} bytes held back")
        self.max_pending = max_pending
