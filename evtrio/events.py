"""The event base: libevent's ``event_base``, events and loop control, inside Trio.

An :class:`EventBase` owns an OS selector of its own (epoll, kqueue, poll or select:
:attr:`EventBase.method`) and waits for it inside Trio, with
:func:`trio.lowlevel.wait_readable` on the selector's descriptor (a worker thread for
poll and select) under a deadline set to the next timer. One *round* of the loop polls
the selector without blocking, fires the due timers, and then runs the callbacks of the
most urgent priority that has active events — and only those, as libevent does.

The base is an async context manager that owns a nursery (signal watchers run there);
leaving it deletes every event. Callbacks are called as ``callback(fd, what, *args)``;
an ``async def`` callback is awaited inline, so priority order still holds. Code that
prefers a loop to callbacks iterates :meth:`EventBase.active_events` instead.
"""

from __future__ import annotations

__all__ = (
    "EV",
    "EVENT_SELF",
    "MAX_PRIORITIES",
    "ActiveEvents",
    "Event",
    "EventBase",
    "EventBaseStatistics",
    "EventFeature",
    "HasFileno",
    "open_event_base",
    "supported_methods",
)

import contextlib
import enum
import heapq
import inspect
import itertools
import math
import signal
import socket
import sys
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import trio

from . import _event_backends as _backends
from ._util import NoPublicConstructor
from .errors import (
    EventBaseClosedError,
    EventMethodError,
    EventStateError,
    ForeignEventError,
    ReentrantLoopError,
    UnsupportedFdError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from contextlib import AbstractContextManager
    from typing import Self

    from ._event_backends import Backend


class EV(enum.IntFlag):
    """Event flags: what an event waits for, and what happened when it runs.

    The values are libevent's, so ``EV.READ | EV.PERSIST`` reads like
    ``EV_READ|EV_PERSIST``.
    """

    TIMEOUT = 0x01
    """The event's timeout expired (ignored when creating an event: pass a timeout
    to :meth:`Event.add` instead)."""
    READ = 0x02
    """The descriptor is ready for reading."""
    WRITE = 0x04
    """The descriptor is ready for writing."""
    SIGNAL = 0x08
    """A signal arrived (the event's "descriptor" is the signal number)."""
    PERSIST = 0x10
    """The event stays pending after it runs; its timeout restarts each time."""
    ET = 0x20
    """Edge-triggered: report a descriptor only when it *becomes* ready. Honoured where
    :attr:`EventFeature.ET` is in :attr:`EventBase.features` (epoll, kqueue), accepted
    and ignored (level-triggered) elsewhere."""
    CLOSED = 0x80
    """The peer closed its end (detected before the data is read). Needs
    :attr:`EventFeature.EARLY_CLOSE` (epoll)."""


class EventFeature(enum.IntFlag):
    """What a backend method can do (libevent's ``EV_FEATURE_*``)."""

    ET = _backends.FEATURE_ET
    """Edge-triggered events (:attr:`EV.ET`)."""
    O1 = _backends.FEATURE_O1
    """Adding, deleting and activating one event is O(1), whatever the number of events."""
    FDS = _backends.FEATURE_FDS
    """Any kind of descriptor (pipes, ttys, files), not only sockets."""
    EARLY_CLOSE = _backends.FEATURE_EARLY_CLOSE
    """Close detection without reading (:attr:`EV.CLOSED`)."""


MAX_PRIORITIES: Final = 256
"""The most priorities a base may have (libevent's ``EVENT_MAX_PRIORITIES``)."""

_MAX_NCALLS: Final = 65535
"""The most callback runs one manual activation may ask for (libevent's is a short)."""

_COMPACT_MIN: Final = 64
"""Cancelled timer entries tolerated in the heap before it may be rebuilt."""

_EV_TABLE: Final = tuple(EV(bits) for bits in range(256))
"""``EV(bits)`` for every flag combination, looked up instead of built on hot paths."""

_KNOWN: Final = EV.TIMEOUT | EV.READ | EV.WRITE | EV.SIGNAL | EV.PERSIST | EV.ET | EV.CLOSED
_PENDING_KINDS: Final = EV.TIMEOUT | EV.READ | EV.WRITE | EV.SIGNAL | EV.CLOSED
_FLAG_ORDER: Final = (EV.TIMEOUT, EV.READ, EV.WRITE, EV.SIGNAL, EV.CLOSED, EV.PERSIST, EV.ET)

# Plain ints for the hot paths (IntFlag arithmetic is slow on Python 3.11); the
# descriptor bits are the backends' own.
_TIMEOUT: Final = 0x01
_SIGNAL: Final = 0x08
_PERSIST: Final = 0x10
_ET: Final = _backends.ET
_CLOSED: Final = _backends.CLOSED
_IO_BITS: Final = _backends.READ | _backends.WRITE | _CLOSED


class _EventSelf:
    """The type of :data:`EVENT_SELF`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "evtrio.EVENT_SELF"


EVENT_SELF: Final = _EventSelf()
"""Pass as a callback argument to receive the event itself there (``event_self_cbarg()``)."""


class _Exit:
    """The heap target of a :meth:`EventBase.loopexit` timer."""

    __slots__ = ()


_EXIT: Final = _Exit()


class HasFileno(Protocol):
    """Anything with a ``fileno()`` method: sockets (stdlib or Trio), files, pipes."""

    def fileno(self) -> int: ...


_TimerEntry = list[Any]
"""A timer heap entry: ``[deadline, sequence, target]``; a ``None`` target is cancelled."""


def supported_methods() -> tuple[str, ...]:
    """The backend methods this platform offers, best first (``event_get_supported_methods``).

    Returns:
      Names among ``"epoll"``, ``"kqueue"``, ``"poll"`` and ``"select"``.
    """
    return _backends.supported_backends()


def _flag_names(bits: int) -> str:
    names = [flag.name for flag in _FLAG_ORDER if bits & flag and flag.name]
    return "|".join(names) or "0"


def _check_timeout(timeout: float) -> float:
    value = float(timeout)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"a timeout must be a finite number of seconds >= 0, not {timeout!r}")
    return value


@final
@dataclass(frozen=True, slots=True)
class EventBaseStatistics:
    """A snapshot of an event base (:meth:`EventBase.statistics`).

    Attributes:
      method: the backend method.
      priorities: the number of priorities.
      pending: events that are pending (added and not yet deleted or fired).
      active: events that are active (waiting for their callback to run).
      watched_fds: descriptors the selector watches.
      timers: events with a pending timeout.
      signals: signal numbers being watched.
      exit_timers: pending :meth:`~EventBase.loopexit` timers.
      running: whether the loop is running.
      rounds: loop rounds run since the base opened.
      callbacks: callbacks run (or activations yielded) since the base opened.
    """

    method: str
    priorities: int
    pending: int
    active: int
    watched_fds: int
    timers: int
    signals: int
    exit_timers: int
    running: bool
    rounds: int
    callbacks: int


@final
class Event(metaclass=NoPublicConstructor):
    """An event of an :class:`EventBase`: a descriptor, signal, timeout or manual trigger.

    Made by :meth:`EventBase.new_event`, :meth:`~EventBase.new_timer` and
    :meth:`~EventBase.new_signal`. A new event is *non-pending*; :meth:`add` makes it
    *pending*; when its condition occurs it becomes *active* and its callback runs. A
    non-persistent event stops being pending right before its callback runs; a
    persistent one (:attr:`EV.PERSIST`) stays pending until :meth:`delete`.
    """

    __slots__ = (
        "__weakref__",
        "_args",
        "_base",
        "_callback",
        "_events",
        "_fd",
        "_fileobj",
        "_id",
        "_inserted",
        "_ncalls",
        "_priority",
        "_queue",
        "_res",
        "_timeout",
        "_timer",
    )

    def __init__(
        self,
        base: EventBase,
        fileobj: int | HasFileno,
        fd: int,
        events: int,
        callback: Callable[..., object] | None,
        args: tuple[object, ...],
        event_id: int,
    ) -> None:
        self._base = base
        self._fileobj = fileobj
        self._fd = fd
        self._events = events
        self._callback = callback
        self._args = tuple(self if arg is EVENT_SELF else arg for arg in args)
        self._id = event_id
        self._priority = base._default_priority
        self._inserted = False
        """Watched by the selector (descriptor events) or a signal watcher."""
        self._timer: _TimerEntry | None = None
        """The live heap entry ``[deadline, seq, self]`` of the pending timeout."""
        self._timeout: float | None = None
        """The timeout interval last given to :meth:`add` (restarts persistent events)."""
        self._res = 0
        """What happened, while active; 0 when not active."""
        self._ncalls = 0
        self._queue: list[Event] | None = None
        """The active queue (or running batch) holding this event's entry, if any."""

    def __repr__(self) -> str:
        return f"<evtrio.Event {self._describe()}>"

    def _describe(self) -> str:
        base = self._base
        if self._events & _SIGNAL:
            try:
                where = f"signal={signal.Signals(self._fd).name}"
            except ValueError:
                where = f"signal={self._fd}"
        else:
            where = f"fd={self._fd}"
        parts = [f"#{self._id}", where, _flag_names(self._events), f"priority={self._priority}"]
        if self._timer is not None:
            parts.append(f"timeout={self._timeout}s deadline={self._timer[0]:.6f}")
        pending = self._pending_bits()
        parts.append(f"pending={_flag_names(pending)}" if pending else "not pending")
        if self._res:
            parts.append(f"active={_flag_names(self._res)}")
        callback = self._callback
        name = getattr(callback, "__qualname__", None) or repr(callback)
        parts.append(f"callback={name}")
        if base._closed:
            parts.append("(base closed)")
        return " ".join(parts)

    def _pending_bits(self) -> int:
        bits = self._events & (_IO_BITS | _SIGNAL) if self._inserted else 0
        if self._timer is not None:
            bits |= _TIMEOUT
        return bits

    @property
    def base(self) -> EventBase:
        """The base this event belongs to (``event_get_base``)."""
        return self._base

    @property
    def fd(self) -> int:
        """The descriptor watched; the signal number of a signal event; -1 for a timer."""
        return self._fd

    @property
    def events(self) -> EV:
        """The flags the event was made with (``event_get_events``)."""
        return _EV_TABLE[self._events]

    @property
    def callback(self) -> Callable[..., object] | None:
        """The callback (``event_get_callback``)."""
        return self._callback

    @property
    def args(self) -> tuple[object, ...]:
        """The extra callback arguments (``event_get_callback_arg``)."""
        return self._args

    @property
    def priority(self) -> int:
        """The priority: 0 is the most urgent, ``base.priorities - 1`` the least.

        New events get ``base.priorities // 2``, as in libevent.

        Raises:
          ValueError: (when set) the priority is out of range.
          EventStateError: (when set) the event is active.
        """
        return self._priority

    @priority.setter
    def priority(self, value: int) -> None:
        base = self._base
        base._check_touch(self)
        if not 0 <= value < base._npriorities:
            raise ValueError(f"priority {value} out of range 0..{base._npriorities - 1}")
        if self._res:
            raise EventStateError(f"cannot change the priority of active {self!r}")
        self._queue = None  # a stale entry left by delete() must not run it at the old level
        self._priority = value

    @property
    def deadline(self) -> float | None:
        """When the pending timeout fires, in :func:`trio.current_time` terms; else ``None``.

        The ``tv_out`` of libevent's ``event_pending``.
        """
        timer = self._timer
        return None if timer is None else float(timer[0])

    def add(self, timeout: float | None = None) -> None:
        """Make the event pending, with an optional timeout in seconds (``event_add``).

        On a pending event, a timeout reschedules it; ``None`` leaves its timeout as it
        was. A timeout-only event added without a timeout stays non-pending (activate it
        by hand instead).

        Args:
          timeout: seconds from now (from the round's start, inside a callback).

        Raises:
          EventBaseClosedError: the base is closed.
          UnsupportedFdError: the backend refuses the descriptor.
          EventStateError: edge-triggered and level-triggered events would share the fd.
          ValueError: the timeout is negative or not finite.
        """
        base = self._base
        if base._closed:
            raise base._closed_error(self)
        interval = None if timeout is None else _check_timeout(timeout)
        was_pending = self._inserted or self._timer is not None
        if not self._inserted:
            if self._events & _IO_BITS:
                base._insert_io(self)
            elif self._events & _SIGNAL:
                base._insert_signal(self)
        if interval is not None:
            self._timeout = interval
            base._schedule(self, base._time() + interval)
        elif not was_pending:
            self._timeout = None
        if not was_pending and (self._inserted or self._timer is not None):
            base._pending[self] = None

    def delete(self) -> None:
        """Make the event non-pending and non-active (``event_del``).

        An active event whose callback has not run yet will not run. Safe inside the
        event's own callback (remaining calls of a multi-call activation are skipped).
        No effect on an event that is neither pending nor active.

        Raises:
          EventBaseClosedError: (debug mode only) the base is closed.
        """
        base = self._base
        base._check_touch(self)
        base._unpend(self)
        self._res = 0
        if base._running_event is self:
            base._calls_left = 0

    def remove_timer(self) -> None:
        """Remove the pending timeout only, keeping the descriptor or signal part.

        On a timeout-only event this is :meth:`delete`. (``event_remove_timer``.)

        Raises:
          EventBaseClosedError: (debug mode only) the base is closed.
        """
        base = self._base
        base._check_touch(self)
        if self._timer is None:
            return
        if not self._inserted:
            self.delete()
            return
        base._cancel_timer(self)

    def pending(self, what: EV | int = _PENDING_KINDS) -> bool:
        """Whether the event is pending or active on any of *what* (``event_pending``).

        Args:
          what: any of :attr:`EV.READ`, :attr:`~EV.WRITE`, :attr:`~EV.CLOSED`,
            :attr:`~EV.SIGNAL` and :attr:`~EV.TIMEOUT` (default: all). When its timeout
            is pending, :attr:`deadline` says when it fires.

        Returns:
          ``True`` when pending or active on any of *what*.

        Raises:
          EventBaseClosedError: (debug mode only) the base is closed.
        """
        self._base._check_touch(self)
        return bool((self._pending_bits() | self._res) & what & _PENDING_KINDS)

    @property
    def active(self) -> bool:
        """Whether the event is active: its callback is due in a coming round."""
        return bool(self._res)

    def activate(self, what: EV | int, *, ncalls: int = 1) -> None:
        """Make the event active as if *what* had happened (``event_active``).

        The event need not be pending, and does not become pending. Activating an active
        event adds *what* to what it reports, once.

        Args:
          what: the flags the callback will see (TIMEOUT, READ, WRITE, SIGNAL, CLOSED).
          ncalls: how many times the callback runs for this activation (as libevent
            does for signals), 1 to 65535.

        Raises:
          EventBaseClosedError: the base is closed.
          ValueError: *what* is empty or has other flags, or *ncalls* is out of range.
        """
        base = self._base
        if base._closed:
            raise base._closed_error(self)
        bits = int(what)
        if not bits or bits & ~_PENDING_KINDS:
            raise ValueError(f"activate() takes TIMEOUT, READ, WRITE, SIGNAL, CLOSED: {what!r}")
        if not 1 <= ncalls <= _MAX_NCALLS:
            raise ValueError(f"ncalls must be between 1 and {_MAX_NCALLS}, not {ncalls}")
        base._activate(self, bits, ncalls)
        base._wake()


@final
class _FdWatch:
    """The events watching one descriptor, and the interest the kernel holds for it."""

    __slots__ = ("events", "kernel", "mask")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.mask = 0
        """The interest the events need (READ/WRITE/CLOSED bits, plus ET)."""
        self.kernel = 0
        """The interest registered with the backend (may lag behind removals)."""


@final
class _SignalWatch:
    """The events of one signal number and the Trio signal receiver feeding them."""

    __slots__ = ("closed", "events", "manager", "receiver", "scope")

    def __init__(
        self, manager: AbstractContextManager[AsyncIterator[int]], receiver: AsyncIterator[int]
    ) -> None:
        self.events: list[Event] = []
        self.manager = manager
        self.receiver = receiver
        self.scope = trio.CancelScope()
        self.closed = False


@final
class EventBase(metaclass=NoPublicConstructor):
    """A set of events and the loop that runs their callbacks (libevent's ``event_base``).

    Made by :func:`open_event_base`. Everything here is for the Trio thread the base
    was opened in; from another thread use :func:`trio.from_thread.run_sync`.
    """

    def __init__(
        self, nursery: trio.Nursery, backend: Backend, priorities: int, debug: bool
    ) -> None:
        self._nursery = nursery
        self._backend = backend
        self._selector_fd = backend.fileno()
        self._npriorities = priorities
        self._default_priority = priorities // 2
        self._debug = debug
        self._closed = False
        self._queues: list[list[Event]] = [[] for _ in range(priorities)]
        self._batch: list[Event] | None = None
        """The round's events being run or yielded (active ones still have it as queue)."""
        self._batch_pos = 0
        self._fds: dict[int, _FdWatch] = {}
        self._dirty: set[int] = set()
        """Descriptors whose kernel interest is wider than needed (narrowed before a poll)."""
        self._signals: dict[int, _SignalWatch] = {}
        self._timers: list[_TimerEntry] = []
        self._timer_seq = itertools.count()
        self._dead_timers = 0
        self._exit_timers = 0
        self._pending: dict[Event, None] = {}
        self._event_ids = itertools.count(1)
        self._runner: object = None
        """The running loop's token (a weak reference for an :class:`ActiveEvents`)."""
        self._wait_scope: trio.CancelScope | None = None
        self._round_time: float | None = None
        """When the current callback round started; ``None`` outside callbacks."""
        self._wall_offset = time.time() - trio.current_time()
        self._exit_requested = False
        self._break = False
        self._continue = False
        self._got_exit = False
        self._got_break = False
        self._running_event: Event | None = None
        self._calls_left = 0
        self._rounds = 0
        self._callbacks = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self.running else "idle"
        return f"<evtrio.EventBase {self.method} {state}, {len(self._pending)} pending>"

    # -- properties ------------------------------------------------------------------

    @property
    def method(self) -> str:
        """The backend method in use (``event_base_get_method``)."""
        return self._backend.name

    @property
    def features(self) -> EventFeature:
        """What the method can do (``event_base_get_features``)."""
        return EventFeature(self._backend.features)

    @property
    def priorities(self) -> int:
        """The number of priorities (``event_base_get_npriorities``)."""
        return self._npriorities

    @property
    def debug(self) -> bool:
        """Whether the base checks every use of its events (``open_event_base(debug=True)``)."""
        return self._debug

    @property
    def closed(self) -> bool:
        """Whether the base has closed (its ``async with`` block was left)."""
        return self._closed

    @property
    def running(self) -> bool:
        """Whether a loop (:meth:`loop`, :meth:`dispatch` or :meth:`active_events`) runs."""
        runner = self._runner
        if isinstance(runner, weakref.ref):
            return runner() is not None
        return runner is not None

    @property
    def running_event(self) -> Event | None:
        """The event whose callback is running (``event_base_get_running_event``)."""
        return self._running_event

    @property
    def got_exit(self) -> bool:
        """Whether the last run stopped because of :meth:`loopexit` (reset by the next run)."""
        return self._got_exit

    @property
    def got_break(self) -> bool:
        """Whether the last run stopped because of :meth:`loopbreak` (reset by the next run)."""
        return self._got_break

    # -- making events ---------------------------------------------------------------

    def new_event(
        self,
        fd_or_socket: int | HasFileno,
        what: EV | int,
        callback: Callable[..., object] | None,
        *args: object,
    ) -> Event:
        """Make a non-pending event (``event_new``).

        Args:
          fd_or_socket: the descriptor (or an object with ``fileno()``) for READ, WRITE
            and CLOSED events; the signal number for SIGNAL; -1 for neither.
          what: a combination of :class:`EV` flags.
          callback: called as ``callback(fd_or_socket, what_happened, *args)`` each time
            the event runs; may be an ``async def`` function, awaited inline. ``None``
            for events consumed with :meth:`active_events` only.
          args: extra arguments; :data:`EVENT_SELF` among them stands for the event.

        Returns:
          The new event, with the default priority.

        Raises:
          EventBaseClosedError: the base is closed.
          EventMethodError: :attr:`EV.CLOSED` on a method without early-close detection.
          ValueError: flags that do not go together, or a missing or closed descriptor.
        """
        if self._closed:
            raise self._closed_error(None)
        return self._make(fd_or_socket, int(what), callback, args)

    def new_timer(
        self, callback: Callable[..., object] | None, *args: object, persist: bool = False
    ) -> Event:
        """Make a timeout-only event (``evtimer_new``); give it a timeout with :meth:`Event.add`.

        Args:
          callback: called as ``callback(-1, EV.TIMEOUT, *args)``.
          args: extra arguments (:data:`EVENT_SELF` stands for the event).
          persist: make it :attr:`EV.PERSIST`: it fires every ``timeout`` seconds.

        Returns:
          The new, non-pending event.

        Raises:
          EventBaseClosedError: the base is closed.
        """
        return self.new_event(-1, _PERSIST if persist else 0, callback, *args)

    def new_signal(
        self, signum: int, callback: Callable[..., object] | None, *args: object
    ) -> Event:
        """Make a persistent signal event (``evsignal_new``).

        Signals are received through :func:`trio.open_signal_receiver`, one per signal
        number of the base, so they work only in the main thread, and repeated signals
        that arrive before the loop runs may be coalesced into one activation.

        Args:
          signum: the signal number.
          callback: called as ``callback(signum, EV.SIGNAL, *args)``.
          args: extra arguments (:data:`EVENT_SELF` stands for the event).

        Returns:
          The new, non-pending event; :meth:`Event.add` starts watching the signal.

        Raises:
          EventBaseClosedError: the base is closed.
          ValueError: *signum* is not a signal this platform knows.
        """
        return self.new_event(signum, _SIGNAL | _PERSIST, callback, *args)

    def assign(
        self,
        event: Event,
        fd_or_socket: int | HasFileno,
        what: EV | int,
        callback: Callable[..., object] | None,
        *args: object,
    ) -> None:
        """Re-make *event* in place with new settings (``event_assign``).

        The event keeps its identity; its priority becomes the default again. An event
        of another base moves to this one (``event_base_set``), except in debug mode.

        Raises:
          EventBaseClosedError: this base (or, in debug mode, the event's) is closed.
          ForeignEventError: (debug mode) the event belongs to another base.
          EventStateError: the event is pending or active.
          EventMethodError: as for :meth:`new_event`.
          ValueError: as for :meth:`new_event`.
        """
        if self._closed:
            raise self._closed_error(event)
        if event._base is not self:
            if self._debug:
                raise ForeignEventError(event, self)
            event._base._check_touch(event)
        if event._inserted or event._timer is not None or event._res:
            raise EventStateError(f"cannot assign {event!r}: it is pending or active")
        fresh = self._make(fd_or_socket, int(what), callback, args)
        event._base = self
        event._fileobj = fresh._fileobj
        event._fd = fresh._fd
        event._events = fresh._events
        event._callback = fresh._callback
        event._args = tuple(event if arg is fresh else arg for arg in fresh._args)
        event._priority = self._default_priority
        event._timeout = None
        event._queue = None

    def once(
        self,
        fd_or_socket: int | HasFileno,
        what: EV | int,
        callback: Callable[..., object] | None,
        *args: object,
        timeout: float | None = None,
    ) -> None:
        """Run *callback* once, when *what* happens or *timeout* expires (``event_base_once``).

        The event is made, added and freed by the base; it cannot be deleted or
        activated, and it runs at the default priority. ``what=EV.TIMEOUT`` with no
        timeout runs the callback in the next round.

        Args:
          fd_or_socket: as for :meth:`new_event` (-1 for a pure timeout).
          what: READ, WRITE, CLOSED and/or TIMEOUT; not SIGNAL or PERSIST.
          callback: called as ``callback(fd_or_socket, what_happened, *args)``.
          args: extra arguments.
          timeout: seconds to wait at most.

        Raises:
          EventBaseClosedError: the base is closed.
          UnsupportedFdError: the backend refuses the descriptor.
          ValueError: SIGNAL or PERSIST, nothing to wait for, or a bad timeout.
        """
        bits = int(what)
        if bits & (_SIGNAL | _PERSIST):
            raise ValueError("once() takes neither EV.SIGNAL nor EV.PERSIST")
        if not bits & (_IO_BITS | _TIMEOUT):
            raise ValueError("once() needs READ, WRITE, CLOSED or TIMEOUT")
        event = self.new_event(fd_or_socket, bits, callback, *args)
        if not bits & _IO_BITS and not timeout:
            event.activate(_TIMEOUT)
            return
        event.add(timeout)

    def _make(
        self,
        fd_or_socket: int | HasFileno,
        bits: int,
        callback: Callable[..., object] | None,
        args: tuple[object, ...],
    ) -> Event:
        if bits & ~_KNOWN:
            raise ValueError(f"unknown event flags in {bits:#x}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {callback!r}")
        fd = fd_or_socket if isinstance(fd_or_socket, int) else fd_or_socket.fileno()
        if bits & _SIGNAL:
            if bits & _IO_BITS:
                raise ValueError("a signal event cannot also wait for READ, WRITE or CLOSED")
            if fd not in signal.valid_signals():
                raise ValueError(f"{fd} is not a signal number on this platform")
        elif bits & _IO_BITS:
            if fd < 0:
                raise ValueError(f"READ, WRITE and CLOSED events need an open descriptor: {fd}")
            if bits & _CLOSED and not self._backend.features & _backends.FEATURE_EARLY_CLOSE:
                raise EventMethodError(
                    method=self.method,
                    missing=["EARLY_CLOSE"],
                    avoided=(),
                    supported=supported_methods(),
                )
        return Event._create(self, fd_or_socket, fd, bits, callback, args, next(self._event_ids))

    # -- loop control ----------------------------------------------------------------

    async def dispatch(self) -> bool:
        """Run the loop until no events are pending or active, or it is stopped.

        ``event_base_dispatch``: the same as :meth:`loop` with no options.

        Returns:
          ``True`` when it returned because no events were left.

        Raises:
          ReentrantLoopError: the loop is already running.
          EventBaseClosedError: the base is (or gets) closed.
          Exception: whatever a callback raised (the loop stops; events stay as they are).

        Cancellation: safe. Events that became active and have not run stay active for
        the next run; an ``async`` callback that was running sees the cancellation.
        """
        return await self.loop()

    async def loop(
        self, *, once: bool = False, nonblock: bool = False, no_exit_on_empty: bool = False
    ) -> bool:
        """Run the loop (``event_base_loop``).

        Each round polls the selector, fires due timers, and runs the callbacks of the
        most urgent priority with active events. The loop stops when no events are
        pending or active, after :meth:`loopexit` or :meth:`loopbreak`, or as the
        options say.

        Args:
          once: (``EVLOOP_ONCE``) wait until some events are active, run rounds until no
            event is active, then return.
          nonblock: (``EVLOOP_NONBLOCK``) never wait: look for events that are ready
            now, run rounds until no event is active, then return.
          no_exit_on_empty: (``EVLOOP_NO_EXIT_ON_EMPTY``) keep running when no events
            are pending (other tasks may add some); stop with loopexit or loopbreak.

        Returns:
          ``True`` when it returned because no events were left.

        Raises:
          ReentrantLoopError: the loop is already running (here or in another task).
          EventBaseClosedError: the base is (or gets) closed.
          Exception: whatever a callback raised (the loop stops; events stay as they are).

        Cancellation: safe. Events that became active and have not run stay active for
        the next run; an ``async`` callback that was running sees the cancellation.
        """
        token = object()
        self._start_run(token)
        try:
            return await self._run(once=once, nonblock=nonblock, keep=no_exit_on_empty)
        finally:
            if self._runner is token:
                self._end_run()

    def active_events(self) -> ActiveEvents:
        """Iterate over activations instead of running callbacks.

        ``async for event, what in base.active_events():`` runs the loop as
        :meth:`dispatch` does — same rounds, same priorities, same stopping rules — but
        yields each activation instead of calling the callback. Persistence and
        timeouts behave exactly as with callbacks. The loop counts as running until
        the iteration ends, :meth:`ActiveEvents.aclose` is awaited, or the iterator is
        dropped.

        Returns:
          An async iterator of ``(event, what_happened)`` pairs.
        """
        return ActiveEvents._create(self)

    def loopexit(self, delay: float | None = None) -> None:
        """Stop the loop after the current round of callbacks, or after *delay* seconds.

        ``event_base_loopexit``. The stop is a pending timer: called when the loop is
        not running, it makes the *next* run stop after its first round. Called from
        another task while the loop waits, the loop stops at once.

        Args:
          delay: seconds to wait first; ``None`` (or 0) for no delay.

        Raises:
          EventBaseClosedError: the base is closed.
          ValueError: the delay is negative or not finite.
        """
        if self._closed:
            raise self._closed_error(None)
        seconds = 0.0 if delay is None else _check_timeout(delay)
        if not seconds and self.running:
            self._exit_requested = True
            if self._round_time is None:
                self._wake()
            return
        deadline = self._time() + seconds
        heapq.heappush(self._timers, [deadline, next(self._timer_seq), _EXIT])
        self._exit_timers += 1
        self._shorten_wait(deadline)

    def loopbreak(self) -> None:
        """Stop the running loop right after the running callback (``event_base_loopbreak``).

        Active events that have not run stay active. No effect when the loop is not
        running.
        """
        if self.running:
            self._break = True
            self._wake()

    def loopcontinue(self) -> None:
        """End the current round after the running callback and poll again.

        ``event_base_loopcontinue``: active events that have not run stay active for
        the next round. No effect outside callbacks.
        """
        if self._round_time is not None:
            self._continue = True

    # -- time, inspection -------------------------------------------------------------

    def gettimeofday_cached(self) -> float:
        """Wall-clock time (seconds since the epoch) when the current round of callbacks
        started; the current time outside callbacks (``event_base_gettimeofday_cached``).

        It is the Trio clock's reading plus an offset measured when the base opened, so
        it moves with :func:`trio.current_time` (and with a ``MockClock`` in tests).
        """
        now = self._round_time if self._round_time is not None else trio.current_time()
        return now + self._wall_offset

    def update_cache_time(self) -> None:
        """Refresh the round's cached time now (``event_base_update_cache_time``).

        No effect outside callbacks.
        """
        if self._round_time is not None:
            self._round_time = trio.current_time()

    def foreach_event(self, fn: Callable[[Event], object]) -> object:
        """Call ``fn(event)`` for each pending or active event (``event_base_foreach_event``).

        Events are visited in creation order, from a snapshot taken when the call
        starts. A true value returned by *fn* stops the iteration.

        Returns:
          The first true value *fn* returned, else ``None``.
        """
        for event in self._known_events():
            result = fn(event)
            if result:
                return result
        return None

    def dump_events(self, file: _Writable | None = None) -> None:
        """Write a human-readable list of the events to *file* (``event_base_dump_events``).

        Each line shows one event: its number, descriptor or signal, flags, priority,
        timeout and deadline, what it is pending on, whether it is active, and its
        callback. The format is for people and may change.

        Args:
          file: where to write; standard output by default.
        """
        out = sys.stdout if file is None else file
        state = "closed" if self._closed else "running" if self.running else "not running"
        now = trio.current_time()
        lines = [
            f"Event base: method {self.method}, {self._npriorities} priorities, {state}, "
            f"time {now:.6f}",
            "Inserted events:",
        ]
        lines += [f"  {event._describe()}" for event in sorted(self._pending, key=_event_id)]
        lines.append("Active events:")
        lines += [f"  {event._describe()}" for event in self._active_list()]
        exits = sorted(float(entry[0]) for entry in self._timers if entry[2] is _EXIT)
        if exits:
            lines.append("Loop exits at: " + ", ".join(f"{when:.6f}" for when in exits))
        out.write("\n".join(lines) + "\n")

    def statistics(self) -> EventBaseStatistics:
        """A snapshot of the base's counts (libevent's ``event_base_get_num_events``)."""
        live_timers = len(self._timers) - self._dead_timers - self._exit_timers
        return EventBaseStatistics(
            method=self.method,
            priorities=self._npriorities,
            pending=len(self._pending),
            active=len(self._active_list()),
            watched_fds=sum(1 for watch in self._fds.values() if watch.events),
            timers=live_timers,
            signals=len(self._signals),
            exit_timers=self._exit_timers,
            running=self.running,
            rounds=self._rounds,
            callbacks=self._callbacks,
        )

    # -- internals: checks and bookkeeping ---------------------------------------------

    def _closed_error(self, event: Event | None) -> EventBaseClosedError:
        subject = f"{event!r}" if event is not None else "the event base"
        return EventBaseClosedError(f"{subject}: its event base is closed")

    def _check_touch(self, event: Event) -> None:
        """In debug mode, refuse any use of an event of a closed base."""
        if self._closed and self._debug:
            raise self._closed_error(event)

    def _time(self) -> float:
        """The time timeouts count from: the round's start inside callbacks, else now."""
        return self._round_time if self._round_time is not None else trio.current_time()

    def _known_events(self) -> list[Event]:
        known = dict(self._pending)
        known.update(dict.fromkeys(self._active_list()))
        return sorted(known, key=_event_id)

    def _active_list(self) -> list[Event]:
        lists = [*self._queues, self._batch] if self._batch is not None else self._queues
        return [event for queue in lists for event in queue if event._queue is queue and event._res]

    def _has_work(self) -> bool:
        return bool(self._pending or self._exit_timers or any(self._queues))

    def _wake(self) -> None:
        """Cut short the loop's wait (from another task), if it is waiting."""
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    def _shorten_wait(self, deadline: float) -> None:
        scope = self._wait_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def _activate(self, event: Event, bits: int, ncalls: int = 1) -> None:
        if event._res:
            event._res |= bits
            return
        event._res = bits
        event._ncalls = ncalls
        if event._queue is None:
            queue = self._queues[event._priority]
            queue.append(event)
            event._queue = queue

    def _unpend(self, event: Event) -> None:
        """Remove the descriptor, signal and timeout parts of a pending event."""
        if event._inserted:
            if event._events & _SIGNAL:
                self._remove_signal(event)
            else:
                self._remove_io(event)
        if event._timer is not None:
            self._cancel_timer(event)
        self._pending.pop(event, None)

    # -- internals: descriptors --------------------------------------------------------

    def _insert_io(self, event: Event) -> None:
        fd = event._fd
        et = event._events & _ET if self._backend.features & _backends.FEATURE_ET else 0
        watch = self._fds.get(fd)
        if watch is None:
            watch = self._fds[fd] = _FdWatch()
        if watch.events and (watch.mask ^ et) & _ET:
            raise EventStateError(
                f"fd {fd} cannot have edge-triggered and level-triggered events at once"
            )
        wanted = (watch.mask if watch.events else 0) | (event._events & _IO_BITS) | et
        kernel = watch.kernel
        if wanted & ~kernel or (wanted ^ kernel) & _ET:
            try:
                self._backend.set(fd, kernel, wanted)
            except OSError as exc:
                if not watch.events and not kernel:
                    del self._fds[fd]
                reason = exc.strerror or str(exc)
                raise UnsupportedFdError(fd, self.method, exc.errno, reason) from exc
            watch.kernel = wanted
        elif wanted != kernel:
            self._dirty.add(fd)
        watch.mask = wanted
        watch.events.append(event)
        event._inserted = True

    def _remove_io(self, event: Event) -> None:
        fd = event._fd
        watch = self._fds[fd]
        watch.events.remove(event)
        event._inserted = False
        mask = 0
        for other in watch.events:
            mask |= other._events & _IO_BITS
        if mask:
            mask |= watch.mask & _ET
        watch.mask = mask
        if mask != watch.kernel:
            self._dirty.add(fd)

    def _apply_changes(self) -> None:
        """Narrow the kernel's interest to what the events need, before a poll."""
        fds = self._fds
        for fd in self._dirty:
            watch = fds.get(fd)
            if watch is None:
                continue
            if watch.mask != watch.kernel:
                try:
                    self._backend.set(fd, watch.kernel, watch.mask)
                except OSError:  # closed under us: the kernel forgot it
                    watch.mask = 0
                watch.kernel = watch.mask
            if not watch.events:
                del fds[fd]
        self._dirty.clear()

    # -- internals: signals -------------------------------------------------------------

    def _insert_signal(self, event: Event) -> None:
        signum = event._fd
        watch = self._signals.get(signum)
        if watch is None:
            manager = trio.open_signal_receiver(signum)
            try:
                receiver = manager.__enter__()
            except OSError as exc:  # SIGKILL, SIGSTOP: the OS will not let us catch them
                raise ValueError(f"signal {signum} cannot be caught: {exc}") from exc
            watch = self._signals[signum] = _SignalWatch(manager, receiver)
            self._nursery.start_soon(self._pump_signals, watch)
        watch.events.append(event)
        event._inserted = True

    def _remove_signal(self, event: Event) -> None:
        signum = event._fd
        watch = self._signals[signum]
        watch.events.remove(event)
        event._inserted = False
        if not watch.events:
            del self._signals[signum]
            self._close_signal_watch(watch)

    @staticmethod
    def _close_signal_watch(watch: _SignalWatch) -> None:
        watch.closed = True
        watch.scope.cancel()
        watch.manager.__exit__(None, None, None)

    async def _pump_signals(self, watch: _SignalWatch) -> None:
        with watch.scope:
            while not watch.closed:
                await watch.receiver.__anext__()
                for event in list(watch.events):
                    self._activate(event, _SIGNAL)
                if watch.events:
                    self._wake()

    # -- internals: timers ----------------------------------------------------------------

    def _schedule(self, event: Event, deadline: float) -> None:
        old = event._timer
        if old is not None:
            old[2] = None
            self._dead_timers += 1
        entry: _TimerEntry = [deadline, next(self._timer_seq), event]
        heapq.heappush(self._timers, entry)
        event._timer = entry
        self._shorten_wait(deadline)
        if self._dead_timers > _COMPACT_MIN and self._dead_timers * 2 > len(self._timers):
            self._timers = [entry for entry in self._timers if entry[2] is not None]
            heapq.heapify(self._timers)
            self._dead_timers = 0

    def _cancel_timer(self, event: Event) -> None:
        timer = event._timer
        if timer is not None:
            timer[2] = None
            self._dead_timers += 1
            event._timer = None

    def _next_deadline(self) -> float:
        timers = self._timers
        while timers and timers[0][2] is None:
            heapq.heappop(timers)
            self._dead_timers -= 1
        return float(timers[0][0]) if timers else math.inf

    def _fire_timers(self, now: float) -> None:
        # Rescheduling may rebuild self._timers: read it afresh each time.
        while self._timers:
            entry = self._timers[0]
            deadline: float = entry[0]
            if deadline > now:
                break
            heapq.heappop(self._timers)
            target = entry[2]
            if target is None:
                self._dead_timers -= 1
            elif target is _EXIT:
                self._exit_timers -= 1
                self._exit_requested = True
            else:
                assert isinstance(target, Event)
                target._timer = None
                if target._events & _PERSIST:
                    # libevent's rule: the next run is one interval after this deadline,
                    # or after now when that is already past.
                    interval = target._timeout
                    assert interval is not None
                    after = deadline + interval
                    self._schedule(target, after if after > now else now + interval)
                elif not target._inserted:
                    self._pending.pop(target, None)
                self._activate(target, _TIMEOUT)

    # -- internals: running ---------------------------------------------------------------

    def _start_run(self, token: object) -> None:
        if self._closed:
            raise self._closed_error(None)
        if self.running:
            raise ReentrantLoopError("this event base's loop is already running")
        if self._runner is not None:  # a dropped active_events() iterator
            self._end_run()
        self._runner = token
        self._got_exit = self._got_break = False
        self._exit_requested = self._break = self._continue = False

    def _end_run(self) -> None:
        batch = self._batch
        if batch is not None:
            self._requeue(batch, self._batch_pos)
        self._batch = None
        self._runner = None
        self._round_time = None
        self._running_event = None

    def _dropped_iterator(self, ref: weakref.ref[ActiveEvents]) -> None:
        if self._runner is ref:
            self._end_run()

    def _requeue(self, batch: list[Event], start: int) -> None:
        """Put the active events of an unfinished batch back at the front of their queue."""
        kept = []
        for event in batch[start:]:
            if event._queue is batch:
                if event._res:
                    kept.append(event)
                else:
                    event._queue = None
        if kept:
            queue = self._queues[kept[0]._priority]
            queue[:0] = kept
            for event in kept:
                event._queue = queue

    def _stop_reason(self) -> bool:
        """Whether a loopbreak, loopexit or close ends the run now (recording which)."""
        if self._closed:
            raise self._closed_error(None)
        if self._break:
            self._got_break = True
            return True
        if self._exit_requested:
            self._got_exit = True
            return True
        return False

    async def _run(self, *, once: bool, nonblock: bool, keep: bool) -> bool:
        rounds = 0
        while True:
            if self._stop_reason():
                if not rounds:
                    await trio.lowlevel.checkpoint()
                return False
            if not keep and not self._has_work():
                if not rounds:
                    await trio.lowlevel.checkpoint()
                return True
            batch = await self._gather(block=not nonblock)
            rounds += 1
            ran = await self._run_batch(batch) if batch is not None else False
            if (nonblock or (once and ran)) and not any(self._queues):
                return False

    async def _gather(self, *, block: bool) -> list[Event] | None:
        """One round's collection: poll, maybe wait, fire timers; return the batch to run.

        The batch is the queue of the most urgent priority with active events (the
        queue is replaced by a fresh one), or ``None`` when nothing is active.
        """
        backend = self._backend
        if self._dirty:
            self._apply_changes()
        ready = backend.poll() if self._fds else []
        if not ready and block and not any(self._queues):
            deadline = self._next_deadline()
            if deadline > trio.current_time():
                await self._wait(deadline)
                if self._dirty:
                    self._apply_changes()
                ready = backend.poll() if self._fds else []
            else:
                await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint()
        now = self._round_time = trio.current_time()
        self._rounds += 1
        fds = self._fds
        queues = self._queues
        for fd, bits in ready:
            watch = fds.get(fd)
            if watch is None:
                continue
            for event in watch.events:
                hit = event._events & bits
                if hit:
                    if event._res:
                        event._res |= hit
                    else:
                        event._res = hit
                        event._ncalls = 1
                        if event._queue is None:
                            queue = queues[event._priority]
                            queue.append(event)
                            event._queue = queue
        if self._timers and self._timers[0][0] <= now:
            self._fire_timers(now)
        for priority, queue in enumerate(queues):
            if queue:
                queues[priority] = []
                self._batch = queue
                self._batch_pos = 0
                return queue
        self._round_time = None
        return None

    async def _wait(self, deadline: float) -> None:
        """Sleep until a watched descriptor is ready, *deadline* passes, or a wake-up."""
        with trio.CancelScope(deadline=deadline) as scope:
            self._wait_scope = scope
            try:
                if self._selector_fd is not None:
                    await trio.lowlevel.wait_readable(self._selector_fd)
                elif self._fds:
                    await self._wait_in_thread()
                else:
                    await trio.sleep_forever()
            except trio.ClosedResourceError:
                raise self._closed_error(None) from None
            finally:
                self._wait_scope = None

    async def _wait_in_thread(self) -> None:
        """Block in a worker thread on a snapshot of the watched set (poll, select)."""
        backend = self._backend
        assert isinstance(backend, _backends.ThreadWaitBackend)  # only these have no descriptor
        wake_in, wake_out = socket.socketpair()
        try:
            await trio.to_thread.run_sync(
                backend.wait_blocking, backend.snapshot(), wake_in, abandon_on_cancel=True
            )
        except BaseException:
            with contextlib.suppress(OSError):  # the abandoned thread still waits: free it
                wake_out.send(b"\0")
            raise
        finally:
            wake_out.close()

    def _take(self, event: Event) -> int:
        """Turn an active event into a running one; return what happened."""
        res = event._res
        event._res = 0
        if event._events & _PERSIST:
            interval = event._timeout
            if interval is not None and not res & _TIMEOUT and event._timer is not None:
                round_time = self._round_time
                assert round_time is not None
                self._schedule(event, round_time + interval)
        elif event._inserted or event._timer is not None:
            self._unpend(event)
        return res

    async def _run_batch(self, batch: list[Event]) -> bool:
        """Run the callbacks of one round; stop early on loopbreak or loopcontinue."""
        table = _EV_TABLE
        take = self._take
        index = 0
        count = len(batch)
        ran = 0
        try:
            while index < count:
                event = batch[index]
                index += 1
                if event._queue is not batch:
                    continue
                event._queue = None
                if not event._res:
                    continue
                ncalls = event._ncalls
                what = table[take(event)]
                callback = event._callback
                self._running_event = event
                self._calls_left = ncalls
                while callback is not None:
                    ran += 1
                    result = callback(event._fileobj, what, *event._args)
                    if result is not None and inspect.isawaitable(result):
                        await result
                    self._calls_left -= 1
                    if self._calls_left <= 0 or self._break:
                        break
                self._running_event = None
                if self._break or self._continue:
                    break
        finally:
            self._running_event = None
            self._callbacks += ran
            self._requeue(batch, index)
            self._batch = None
            self._round_time = None
            self._continue = False
        return ran > 0

    def _close(self) -> None:
        """Delete every event, stop the signal watchers and release the selector."""
        if self._closed:
            return
        self._closed = True
        for event in list(self._pending):
            self._unpend(event)
        for event in self._active_list():
            event._res = 0
        self._queues = [[] for _ in range(self._npriorities)]
        self._timers.clear()
        self._dead_timers = self._exit_timers = 0
        for watch in list(self._signals.values()):
            self._close_signal_watch(watch)
        self._signals.clear()
        self._fds.clear()
        self._dirty.clear()
        self._wake()
        if self._selector_fd is not None:
            trio.lowlevel.notify_closing(self._selector_fd)
        self._backend.close()


class _Writable(Protocol):
    def write(self, text: str, /) -> object: ...


def _event_id(event: Event) -> int:
    return event._id


@final
class ActiveEvents(metaclass=NoPublicConstructor):
    """The async iterator of :meth:`EventBase.active_events`: ``(event, what)`` pairs."""

    def __init__(self, base: EventBase) -> None:
        self._base = base
        self._started = False
        self._finished = False
        self._repeat: tuple[Event, EV] | None = None
        """The last activation, while it has calls left (``activate(ncalls=n)``)."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[Event, EV]:
        """The next activation, running loop rounds as needed.

        Raises:
          StopAsyncIteration: the loop stopped (no events, loopexit or loopbreak).
          ReentrantLoopError: another loop runs on the base.
          EventBaseClosedError: the base is (or gets) closed.

        Cancellation: safe; nothing is taken before the last point a cancel can land.
        """
        base = self._base
        if self._finished:
            raise StopAsyncIteration
        if not self._started:
            base._start_run(weakref.ref(self, base._dropped_iterator))
            self._started = True
        while True:
            if self._repeat is not None:
                found = await self._next_call()
            else:
                found = await self._next_in_batch()
            if found is not None:
                base._callbacks += 1
                return found
            try:
                stop = base._stop_reason() or not base._has_work()
            except EventBaseClosedError:
                self._end()
                raise
            if stop:
                self._end()
                await trio.lowlevel.checkpoint()
                raise StopAsyncIteration
            base._batch = await base._gather(block=True)

    async def _next_call(self) -> tuple[Event, EV] | None:
        """The next call of a multi-call activation, unless deleted or stopped."""
        base = self._base
        assert self._repeat is not None
        if base._calls_left > 0 and not base._break:
            await trio.lowlevel.checkpoint()
            if base._calls_left > 0 and not base._break:
                base._calls_left -= 1
                base._running_event = self._repeat[0]
                return self._repeat
        self._repeat = None
        return None

    async def _next_in_batch(self) -> tuple[Event, EV] | None:
        """The next active event of the round, or ``None`` when the round is over."""
        base = self._base
        base._running_event = None
        batch = base._batch
        if batch is None:
            return None
        while base._batch_pos < len(batch) and not (base._break or base._continue):
            event = batch[base._batch_pos]
            if event._queue is batch and event._res:
                await trio.lowlevel.checkpoint()  # may raise: nothing is taken yet
                if event._queue is not batch or not event._res or base._break:
                    continue
            base._batch_pos += 1
            if event._queue is not batch:
                continue
            event._queue = None
            if not event._res:
                continue
            ncalls = event._ncalls
            what = _EV_TABLE[base._take(event)]
            base._running_event = event
            base._calls_left = ncalls - 1
            if ncalls > 1:
                self._repeat = (event, what)
            return event, what
        base._requeue(batch, base._batch_pos)
        base._batch = None
        base._round_time = None
        base._continue = False
        return None

    def _end(self) -> None:
        self._finished = True
        base = self._base
        if isinstance(base._runner, weakref.ref) and base._runner() is self:
            base._end_run()

    async def aclose(self) -> None:
        """Stop iterating; the loop stops running. Idempotent.

        Cancellation: safe; the iterator is closed even when cancelled.
        """
        if not self._finished:
            self._end()
        await trio.lowlevel.checkpoint()


@contextlib.asynccontextmanager
async def open_event_base(
    *,
    priorities: int = 1,
    avoid_methods: Iterable[str] = (),
    require_features: EventFeature | int = 0,
    debug: bool = False,
) -> AsyncIterator[EventBase]:
    """Open an event base (``event_base_new_with_config``); leaving the block closes it.

    ``async with evtrio.open_event_base() as base:`` — the base owns a nursery for its
    signal watchers; leaving the block deletes every event and releases the selector.

    Args:
      priorities: the number of priorities, 1 to 256 (``event_base_priority_init``).
      avoid_methods: backend methods not to use (``event_config_avoid_method``).
      require_features: features the method must have
        (``event_config_require_features``).
      debug: check every use of the base's events: using an event after its base
        closed, or handing a base an event of another base, raises a typed error.

    Returns:
      An async context manager whose value is the open :class:`EventBase`.

    Raises:
      EventMethodError: no supported method is left, or none has the features.
      ValueError: a bad number of priorities, or an unknown method name.

    Cancellation: leaving the block closes the base even when it is cancelled.
    """
    if not 1 <= priorities <= MAX_PRIORITIES:
        raise ValueError(f"priorities must be between 1 and {MAX_PRIORITIES}, not {priorities}")
    avoided = frozenset(avoid_methods)
    unknown = avoided - set(_backends.KNOWN_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {_backends.KNOWN_METHODS}")
    required = int(require_features)
    supported = supported_methods()
    candidates = [
        name
        for name in supported
        if name not in avoided and _backends.BACKENDS[name].features & required == required
    ]
    if not candidates:
        missing = [feature.name or "" for feature in EventFeature if feature & required]
        raise EventMethodError(method=None, missing=missing, avoided=avoided, supported=supported)
    backend = _build_backend(candidates)
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            base = EventBase._create(nursery, backend, priorities, debug)
            try:
                yield base
            except BaseException as exc:  # re-raised below, outside the nursery's group
                body_error = exc
            finally:
                base._close()
                nursery.cancel_scope.cancel()
    finally:
        backend.close()
    if body_error is not None:
        raise body_error


def _build_backend(candidates: list[str]) -> Backend:
    """The first candidate that the OS lets us build (libevent tries them in turn)."""
    first_error: OSError | None = None
    for name in candidates:
        try:
            return _backends.BACKENDS[name]()
        except OSError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error
