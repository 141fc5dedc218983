"""evtrio's own exceptions.

Every error evtrio raises for a reason of its own (rather than Trio's stream errors,
which keep their Trio meaning) subclasses :class:`EvtrioError` and carries the values a
caller needs to act on it.
"""

from __future__ import annotations

__all__ = (
    "BufferFrozenError",
    "EvtrioError",
    "FileSegmentError",
    "LineTooLongError",
    "ReservationError",
)

from typing import Literal


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
