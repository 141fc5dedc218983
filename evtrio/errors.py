"""evtrio's own exceptions.

Every error evtrio raises for a reason of its own (rather than Trio's stream errors,
which keep their Trio meaning) subclasses :class:`EvtrioError` and carries the values a
caller needs to act on it.
"""

from __future__ import annotations

__all__ = (
    "AddressParseError",
    "BufferFrozenError",
    "ConnectError",
    "EvtrioError",
    "FileSegmentError",
    "LineTooLongError",
    "ReservationError",
    "UnsupportedSocketOptionError",
)

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence


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
