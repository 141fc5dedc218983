"""evtrio's streams: buffered streams, wrappers, and TCP connections.

Every stream here is a :class:`trio.abc.Stream` (half-closeable where its transport is)
that wraps any other, and exposes what it wraps as ``transport_stream``.
"""

from __future__ import annotations

from .connect import open_tcp_stream as open_tcp_stream
