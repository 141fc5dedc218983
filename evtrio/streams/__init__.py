"""evtrio's streams: buffered streams, wrappers, and TCP connections.

Every stream here is a :class:`trio.abc.Stream` (half-closeable where its transport is)
that wraps any other, and exposes what it wraps as ``transport_stream``.
"""

from __future__ import annotations

from .tls import TCPConnector as TCPConnector
from .tls import TLSListener as TLSListener
from .tls import TLSStream as TLSStream
from .tls import TLSStreamStatistics as TLSStreamStatistics
from .tls import open_tls_listeners as open_tls_listeners
from .tls import open_tls_stream as open_tls_stream
from .tls import serve_tls as serve_tls
from .tls import wrap_tls as wrap_tls
