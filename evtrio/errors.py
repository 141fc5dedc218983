"""evtrio's own exceptions.

Every error evtrio raises for a reason of its own (rather than Trio's stream errors,
which keep their Trio meaning) subclasses :class:`EvtrioError` and carries the values a
caller needs to act on it.
"""

from __future__ import annotations

__all__ = (
    "BufferFrozenError",
    "DelimiterNotFoundError",
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
    "ReadTimeoutError",
    "ReentrantLoopError",
    "ReservationError",
    "StreamTimeoutError",
    "UnsupportedFdError",
    "WriteBufferFullError",
    "WriteTimeoutError",
)

from typing import TYPE_CHECKING, Literal

import trio

if TYPE_CHECKING:
    from collections.abc import Iterable


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
