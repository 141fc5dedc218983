"""evtrio's streams: buffered streams, wrappers, and TCP connections.

Every stream here is a :class:`trio.abc.Stream` (half-closeable where its transport is)
that wraps any other, and exposes what it wraps as ``transport_stream``.
"""

from __future__ import annotations

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
from .pair import PairedStream as PairedStream
from .pair import PairedStreamStatistics as PairedStreamStatistics
from .pair import open_stream_pair as open_stream_pair
