"""evtrio: libevent's networking toolkit recast for Trio.

Buffered byte streams with watermarks and timeouts, a rich byte buffer, stream wrappers,
listeners, an event base for ported callback code, DNS and HTTP/1.1 — written the Trio
way: nurseries instead of hidden loops, ``await`` instead of callbacks.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .buffer import EOL as EOL
from .buffer import Buffer as Buffer
from .buffer import BufferCallback as BufferCallback
from .buffer import BufferChange as BufferChange
from .buffer import FileSegment as FileSegment
from .errors import AddressParseError as AddressParseError
from .errors import BufferFrozenError as BufferFrozenError
from .errors import CertificateVerifyError as CertificateVerifyError
from .errors import ConnectError as ConnectError
from .errors import DelimiterNotFoundError as DelimiterNotFoundError
from .errors import DirtyShutdownError as DirtyShutdownError
from .errors import EventBaseClosedError as EventBaseClosedError
from .errors import EventMethodError as EventMethodError
from .errors import EventStateError as EventStateError
from .errors import EvtrioError as EvtrioError
from .errors import FileSegmentError as FileSegmentError
from .errors import FilterError as FilterError
from .errors import FilterLimitError as FilterLimitError
from .errors import ForeignEventError as ForeignEventError
from .errors import IncompleteReadError as IncompleteReadError
from .errors import LineTooLongError as LineTooLongError
from .errors import RateLimitGroupError as RateLimitGroupError
from .errors import ReadTimeoutError as ReadTimeoutError
from .errors import ReentrantLoopError as ReentrantLoopError
from .errors import ReservationError as ReservationError
from .errors import StreamTimeoutError as StreamTimeoutError
from .errors import TLSError as TLSError
from .errors import TLSHandshakeError as TLSHandshakeError
from .errors import TLSHandshakeTimeoutError as TLSHandshakeTimeoutError
from .errors import UnsupportedFdError as UnsupportedFdError
from .errors import UnsupportedSocketOptionError as UnsupportedSocketOptionError
from .errors import WriteBufferFullError as WriteBufferFullError
from .errors import WriteTimeoutError as WriteTimeoutError
from .events import EV as EV
from .events import EVENT_SELF as EVENT_SELF
from .events import MAX_PRIORITIES as MAX_PRIORITIES
from .events import ActiveEvents as ActiveEvents
from .events import Event as Event
from .events import EventBase as EventBase
from .events import EventBaseStatistics as EventBaseStatistics
from .events import EventFeature as EventFeature
from .events import open_event_base as open_event_base
from .events import supported_methods as supported_methods
from .listener import Listener as Listener
from .listener import ListenerStatistics as ListenerStatistics
from .listener import Server as Server
from .listener import ServerStatistics as ServerStatistics
from .listener import open_tcp_listeners as open_tcp_listeners
from .listener import open_unix_listener as open_unix_listener
from .listener import serve_listeners as serve_listeners
from .listener import serve_tcp as serve_tcp
from .listener import serve_unix as serve_unix
