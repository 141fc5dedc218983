"""`FlushMode`: how hard a flush pushes bytes through a stack of streams.

The three modes of libevent's ``bufferevent_flush``, shared by every evtrio stream that
buffers or transforms: :class:`~evtrio.streams.BufferedStream`, filter streams, pairs.
A stream's ``flush(mode)`` does its own part and then flushes its transport with the
same mode when the transport supports it (:class:`SupportsFlush`).
"""

from __future__ import annotations

__all__ = ("FlushMode", "SupportsFlush")

import enum
from typing import Protocol, runtime_checkable


class FlushMode(enum.Enum):
    """How far a flush goes (libevent's ``BEV_NORMAL``, ``BEV_FLUSH``, ``BEV_FINISHED``)."""

    NORMAL = "normal"
    """Write what is queued as the stream normally would: down to its low watermark."""
    FLUSH = "flush"
    """Write everything queued, and make transforms emit everything they hold."""
    FINISHED = "finished"
    """FLUSH, then end the stream's sending direction (EOF)."""


@runtime_checkable
class SupportsFlush(Protocol):
    """A stream with an evtrio-style ``flush(mode)``."""

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """Push queued bytes toward the peer as far as *mode* says."""
