"""evtrio's streams: buffered streams, wrappers, and TCP connections.

Every stream here is a :class:`trio.abc.Stream` (half-closeable where its transport is)
that wraps any other, and exposes what it wraps as ``transport_stream``.
"""

from __future__ import annotations

from .ratelimit import DEFAULT_MIN_SHARE as DEFAULT_MIN_SHARE
from .ratelimit import RATE_LIMIT_MAX as RATE_LIMIT_MAX
from .ratelimit import HalfCloseableRateLimitedStream as HalfCloseableRateLimitedStream
from .ratelimit import RateLimitedStream as RateLimitedStream
from .ratelimit import RateLimitedStreamStatistics as RateLimitedStreamStatistics
from .ratelimit import RateLimitGroup as RateLimitGroup
from .ratelimit import RateLimitGroupStatistics as RateLimitGroupStatistics
from .ratelimit import TokenBucketConfig as TokenBucketConfig
