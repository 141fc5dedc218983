"""The seam between Trio's socket streams and evtrio's socket fast path.

evtrio's stream layers read and write a connected socket with non-blocking stdlib calls
(``recv_into``, ``sendmsg``, ``os.sendfile``) and wait with
``trio.lowlevel.wait_readable``/``wait_writable`` only when the kernel says "not now".
For that they need the stdlib socket behind a :class:`trio.SocketStream`. Sockets that
evtrio creates (its listeners, :func:`~evtrio.streams.open_tcp_stream`) are registered
here when they are wrapped; for any other :class:`trio.SocketStream`, the stdlib socket
Trio wraps is used when it can be found.
"""

from __future__ import annotations

__all__ = ("stdlib_socket", "wrap_socket")

import socket
import weakref
from typing import Final

import trio

_REGISTERED: Final[weakref.WeakKeyDictionary[trio.socket.SocketType, socket.socket]] = (
    weakref.WeakKeyDictionary()
)


def wrap_socket(sock: socket.socket) -> trio.SocketStream:
    """Wrap a connected stdlib socket in a :class:`trio.SocketStream` that evtrio's
    fast path recognises. The stream owns *sock* from now on (closing it closes *sock*).
    """
    trio_sock = trio.socket.from_stdlib_socket(sock)
    _REGISTERED[trio_sock] = sock
    return trio.SocketStream(trio_sock)


def stdlib_socket(stream: trio.SocketStream) -> socket.socket | None:
    """The stdlib socket behind *stream*, or ``None`` when it cannot be found."""
    trio_sock = stream.socket
    sock = _REGISTERED.get(trio_sock)
    if sock is None:
        # Trio's socket wrapper keeps the stdlib socket in `_sock` (all versions so far);
        # if that ever changes, foreign streams simply take the generic path.
        sock = getattr(trio_sock, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
