"""The OS selectors behind :class:`evtrio.EventBase`: epoll, kqueue, poll and select.

Each backend keeps the kernel's view of which descriptors the base watches and answers
one question without blocking: which of them are ready now? Interest masks and answers
use the event flag bits of :mod:`evtrio.events` (``READ``, ``WRITE``, ``CLOSED``, ``ET``).

epoll and kqueue have a descriptor of their own that becomes readable when a watched
descriptor is ready, so the base waits for them with :func:`trio.lowlevel.wait_readable`.
poll and select have none: the base waits for them in a worker thread, on a snapshot of
the watched set plus a wake-up socket (see :meth:`Backend.wait_blocking`).
"""

from __future__ import annotations

__all__ = (
    "BACKENDS",
    "Backend",
    "CLOSED",
    "ET",
    "FEATURE_EARLY_CLOSE",
    "FEATURE_ET",
    "FEATURE_FDS",
    "FEATURE_O1",
    "KNOWN_METHODS",
    "READ",
    "ThreadWaitBackend",
    "WRITE",
    "supported_backends",
)

import abc
import contextlib
import errno
import os
import select
import sys
from typing import TYPE_CHECKING, ClassVar, Final

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

READ: Final = 0x02
WRITE: Final = 0x04
ET: Final = 0x20
CLOSED: Final = 0x80
_HANGUP: Final = READ | WRITE | CLOSED
"""What a hang-up or an error on a descriptor wakes: its readers, writers and closers."""

FEATURE_ET: Final = 0x01
FEATURE_O1: Final = 0x02
FEATURE_FDS: Final = 0x04
FEATURE_EARLY_CLOSE: Final = 0x08

_MAX_EVENTS: Final = 1024
"""The most ready descriptors one poll reports; the rest are reported by the next one."""

_SELECT_FD_LIMIT: Final = 1024
"""FD_SETSIZE on the platforms Python's ``select()`` is built for (512 on Windows)."""


class _Translation(dict[int, int]):
    """A cache from an OS readiness mask to event flag bits, filled on first sight."""

    def __init__(self, convert: Callable[[int], int]) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, mask: int) -> int:
        bits = self[mask] = self._convert(mask)
        return bits


def _check_open(fd: int) -> None:
    """Raise :exc:`OSError` (``EBADF``) when *fd* is not an open descriptor."""
    os.fstat(fd)


class Backend(abc.ABC):
    """One OS selector. Subclasses set :attr:`name` and :attr:`features`."""

    name: ClassVar[str]
    features: ClassVar[int]

    def fileno(self) -> int | None:
        """The descriptor that is readable when a watched one is ready, or ``None``."""
        return None

    @abc.abstractmethod
    def set(self, fd: int, old: int, new: int) -> None:
        """Change the interest in *fd* from mask *old* to mask *new* (``0``: none).

        Raises:
          OSError: the OS refused the descriptor (only when interest is added).
        """

    @abc.abstractmethod
    def poll(self) -> list[tuple[int, int]]:
        """The ready descriptors and what they are ready for, without blocking."""

    def close(self) -> None:  # noqa: B027 - most selectors hold an OS resource, not all
        """Release the OS resources. Idempotent."""


class ThreadWaitBackend(Backend):
    """A selector with no descriptor of its own (poll, select): the base waits for it
    in a worker thread, on a snapshot of the watched set."""

    @abc.abstractmethod
    def snapshot(self) -> object:
        """What :meth:`wait_blocking` needs, taken in the Trio thread."""

    @staticmethod
    @abc.abstractmethod
    def wait_blocking(snapshot: object, wake: socket.socket) -> None:
        """Block (in a worker thread) until a descriptor of *snapshot* or *wake* is ready.

        Closes *wake* before returning; errors only mean "go and look".
        """


if sys.platform == "linux":

    class _Epoll(Backend):
        name = "epoll"
        features = FEATURE_ET | FEATURE_O1 | FEATURE_EARLY_CLOSE

        def __init__(self) -> None:
            self._epoll = select.epoll()
            self._bits = _Translation(self._convert)

        @staticmethod
        def _convert(mask: int) -> int:
            if mask & (select.EPOLLERR | select.EPOLLHUP):
                return _HANGUP
            bits = 0
            if mask & (select.EPOLLIN | select.EPOLLPRI):
                bits |= READ
            if mask & select.EPOLLOUT:
                bits |= WRITE
            if mask & select.EPOLLRDHUP:
                bits |= CLOSED
            return bits

        @staticmethod
        def _mask(bits: int) -> int:
            mask = 0
            if bits & READ:
                mask |= select.EPOLLIN
            if bits & WRITE:
                mask |= select.EPOLLOUT
            if bits & CLOSED:
                mask |= select.EPOLLRDHUP
            if bits & ET:
                mask |= select.EPOLLET
            return mask

        def fileno(self) -> int:
            return self._epoll.fileno()

        def set(self, fd: int, old: int, new: int) -> None:
            if not new:
                with contextlib.suppress(OSError):  # closed by its owner: the kernel forgot it
                    self._epoll.unregister(fd)
                return
            mask = self._mask(new)
            if old:
                try:
                    self._epoll.modify(fd, mask)
                except FileNotFoundError:  # closed and reopened under the same number
                    self._epoll.register(fd, mask)
            else:
                try:
                    self._epoll.register(fd, mask)
                except FileExistsError:  # a deferred removal had not reached the kernel
                    self._epoll.modify(fd, mask)

        def poll(self) -> list[tuple[int, int]]:
            bits = self._bits
            return [(fd, bits[mask]) for fd, mask in self._epoll.poll(0, _MAX_EVENTS)]

        def close(self) -> None:
            self._epoll.close()


if sys.platform != "linux" and sys.platform != "win32":

    class _Kqueue(Backend):
        name = "kqueue"
        features = FEATURE_ET | FEATURE_O1 | FEATURE_FDS

        def __init__(self) -> None:
            self._kqueue = select.kqueue()

        def fileno(self) -> int:
            return self._kqueue.fileno()

        def set(self, fd: int, old: int, new: int) -> None:
            adds: list[select.kevent] = []
            removes: list[select.kevent] = []
            clear = select.KQ_EV_CLEAR if new & ET else 0
            rearm = (old ^ new) & ET
            for bit, kfilter in ((READ, select.KQ_FILTER_READ), (WRITE, select.KQ_FILTER_WRITE)):
                # A change of edge-triggering re-adds the filter rather than trusting
                # EV_ADD to drop EV_CLEAR from an existing one.
                if old & bit and (rearm or not new & bit):
                    removes.append(select.kevent(fd, kfilter, select.KQ_EV_DELETE))
                if new & bit and (rearm or not old & bit):
                    adds.append(select.kevent(fd, kfilter, select.KQ_EV_ADD | clear))
            if removes:
                with contextlib.suppress(OSError):  # closed by its owner: the kernel forgot it
                    self._kqueue.control(removes, 0, 0)
            if adds:
                self._kqueue.control(adds, 0, 0)

        def poll(self) -> list[tuple[int, int]]:
            ready: dict[int, int] = {}
            for kev in self._kqueue.control(None, _MAX_EVENTS, 0):
                if kev.flags & select.KQ_EV_ERROR:
                    bits = _HANGUP
                elif kev.filter == select.KQ_FILTER_READ:
                    bits = READ
                else:
                    bits = WRITE
                ready[kev.ident] = ready.get(kev.ident, 0) | bits
            return list(ready.items())

        def close(self) -> None:
            self._kqueue.close()


class _Poll(ThreadWaitBackend):
    name = "poll"
    features = FEATURE_FDS

    def __init__(self) -> None:
        self._poll = select.poll()
        self._masks: dict[int, int] = {}
        self._bits = _Translation(self._convert)

    @staticmethod
    def _convert(mask: int) -> int:
        if mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return _HANGUP
        bits = 0
        if mask & (select.POLLIN | select.POLLPRI):
            bits |= READ
        if mask & select.POLLOUT:
            bits |= WRITE
        return bits

    def set(self, fd: int, old: int, new: int) -> None:
        if not new:
            self._masks.pop(fd, None)
            with contextlib.suppress(KeyError):
                self._poll.unregister(fd)
            return
        if not old:
            _check_open(fd)
        mask = (select.POLLIN if new & READ else 0) | (select.POLLOUT if new & WRITE else 0)
        self._poll.register(fd, mask)
        self._masks[fd] = mask

    def poll(self) -> list[tuple[int, int]]:
        bits = self._bits
        return [(fd, bits[mask]) for fd, mask in self._poll.poll(0)]

    def snapshot(self) -> list[tuple[int, int]]:
        return list(self._masks.items())

    @staticmethod
    def wait_blocking(snapshot: object, wake: socket.socket) -> None:
        assert isinstance(snapshot, list)
        try:
            waiter = select.poll()
            for fd, mask in snapshot:
                waiter.register(fd, mask)
            waiter.register(wake.fileno(), select.POLLIN)
            waiter.poll()
        finally:
            wake.close()


class _Select(ThreadWaitBackend):
    name = "select"
    features = FEATURE_FDS if sys.platform != "win32" else 0

    def __init__(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def set(self, fd: int, old: int, new: int) -> None:
        if new and not old:
            if fd >= _SELECT_FD_LIMIT:
                raise OSError(
                    errno.EINVAL, f"select() only watches descriptors below {_SELECT_FD_LIMIT}"
                )
            _check_open(fd)
        for bit, watched in ((READ, self._readers), (WRITE, self._writers)):
            if new & bit:
                watched.add(fd)
            else:
                watched.discard(fd)

    def poll(self) -> list[tuple[int, int]]:
        if not (self._readers or self._writers):
            return []
        try:
            readable, writable, _ = select.select(self._readers, self._writers, (), 0)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            return self._closed_descriptors()
        ready = dict.fromkeys(readable, READ)
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | WRITE
        return list(ready.items())

    def _closed_descriptors(self) -> list[tuple[int, int]]:
        """The watched descriptors that were closed under us, reported as hung up."""
        closed = []
        for fd in self._readers | self._writers:
            try:
                os.fstat(fd)
            except OSError:
                closed.append((fd, _HANGUP))
        return closed

    def snapshot(self) -> tuple[list[int], list[int]]:
        return list(self._readers), list(self._writers)

    @staticmethod
    def wait_blocking(snapshot: object, wake: socket.socket) -> None:
        assert isinstance(snapshot, tuple)
        readers, writers = snapshot
        try:
            select.select([*readers, wake.fileno()], writers, ())
        except (OSError, ValueError):  # a watched descriptor was closed: go and look
            pass
        finally:
            wake.close()


KNOWN_METHODS: Final = ("epoll", "kqueue", "poll", "select")
"""Every method evtrio knows, in order of preference."""

BACKENDS: Final[dict[str, type[Backend]]] = {}
"""The backend classes of this platform, by method name, in order of preference."""
if sys.platform == "linux":
    BACKENDS["epoll"] = _Epoll
if sys.platform != "linux" and sys.platform != "win32":
    BACKENDS["kqueue"] = _Kqueue
BACKENDS["poll"] = _Poll
BACKENDS["select"] = _Select


def supported_backends() -> tuple[str, ...]:
    """The methods this platform offers, in order of preference."""
    return tuple(name for name in BACKENDS if hasattr(select, name))
