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
from .errors import ConnectError as ConnectError
from .errors import EvtrioError as EvtrioError
from .errors import FileSegmentError as FileSegmentError
from .errors import LineTooLongError as LineTooLongError
from .errors import ReservationError as ReservationError
from .errors import UnsupportedSocketOptionError as UnsupportedSocketOptionError
