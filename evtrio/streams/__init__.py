"""evtrio's streams: buffered streams, wrappers, and TCP connections.

Every stream here is a :class:`trio.abc.Stream` (half-closeable where its transport is)
that wraps any other, and exposes what it wraps as ``transport_stream``.
"""

from __future__ import annotations

from .buffered import BEV as BEV
from .buffered import BufferedStream as BufferedStream
from .buffered import BufferedStreamStatistics as BufferedStreamStatistics
from .buffered import HalfCloseableBufferedStream as HalfCloseableBufferedStream
from .buffered import StreamEvent as StreamEvent
from .buffered import Watermarks as Watermarks
from .buffered import open_buffered_stream as open_buffered_stream
from .buffered import start_buffered_stream as start_buffered_stream
from .connect import open_tcp_stream as open_tcp_stream
from .filter import CRLFToLFFilter as CRLFToLFFilter
from .filter import DeflateFilter as DeflateFilter
from .filter import Filter as Filter
from .filter import FilterResult as FilterResult
from .filter import FilterStream as FilterStream
from .filter import FilterStreamStatistics as FilterStreamStatistics
from .filter import HalfCloseableFilterStream as HalfCloseableFilterStream
from .filter import InflateFilter as InflateFilter
from .filter import LFToCRLFFilter as LFToCRLFFilter
from .flush import FlushMode as FlushMode
from .flush import SupportsFlush as SupportsFlush
from .pair import PairedStream as PairedStream
from .pair import PairedStreamStatistics as PairedStreamStatistics
from .pair import open_stream_pair as open_stream_pair
from .ratelimit import DEFAULT_MIN_SHARE as DEFAULT_MIN_SHARE
from .ratelimit import RATE_LIMIT_MAX as RATE_LIMIT_MAX
from .ratelimit import HalfCloseableRateLimitedStream as HalfCloseableRateLimitedStream
from .ratelimit import RateLimitedStream as RateLimitedStream
from .ratelimit import RateLimitedStreamStatistics as RateLimitedStreamStatistics
from .ratelimit import RateLimitGroup as RateLimitGroup
from .ratelimit import RateLimitGroupStatistics as RateLimitGroupStatistics
from .ratelimit import TokenBucketConfig as TokenBucketConfig
from .tls import TCPConnector as TCPConnector
from .tls import TLSListener as TLSListener
from .tls import TLSStream as TLSStream
from .tls import TLSStreamStatistics as TLSStreamStatistics
from .tls import open_tls_listeners as open_tls_listeners
from .tls import open_tls_stream as open_tls_stream
from .tls import serve_tls as serve_tls
from .tls import wrap_tls as wrap_tls
