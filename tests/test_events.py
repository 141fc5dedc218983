"""evtrio.events: the event base, its events, loop control, priorities and debug mode.

Timing semantics run on Trio's MockClock (``autojump_clock``) and on every method this
platform supports; tests with real descriptors use the real clock and generous bounds.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import tempfile
import time
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

import evtrio
from evtrio import (
    EV,
    EVENT_SELF,
    Event,
    EventBase,
    EventBaseClosedError,
    EventFeature,
    EventMethodError,
    EventStateError,
    ForeignEventError,
    ReentrantLoopError,
    UnsupportedFdError,
    open_event_base,
    supported_methods,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

ALL_METHODS = ("epoll", "kqueue", "poll", "select")
METHODS = supported_methods()
FD_METHODS = tuple(name for name in METHODS if name != "select")
"""Methods that watch descriptors above FD_SETSIZE (select cannot)."""
EXPECTED_FEATURES = {
    "epoll": EventFeature.ET | EventFeature.O1 | EventFeature.EARLY_CLOSE,
    "kqueue": EventFeature.ET | EventFeature.O1 | EventFeature.FDS,
    "poll": EventFeature.FDS,
    "select": EventFeature.FDS,
}


def only(method: str) -> set[str]:
    """The avoid_methods that leave exactly *method*."""
    return set(ALL_METHODS) - {method}


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@contextlib.asynccontextmanager
async def base_for(method: str, **options: bool | int) -> AsyncIterator[EventBase]:
    async with open_event_base(avoid_methods=only(method), **options) as base:
        yield base


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


class Recorder:
    """A callback that records ``(name, what, time)`` for each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, EV, float]] = []

    def __call__(self, fd: object, what: EV, name: str) -> None:
        self.calls.append((name, what, trio.current_time()))

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    @property
    def times(self) -> list[float]:
        return [at for _, _, at in self.calls]


def active_timers(
    base: EventBase, first: Callable[[int, EV], object], record: Recorder, *names: str
) -> list[Event]:
    """Timers activated in order: one running *first*, then one recording each name."""
    events = [base.new_timer(first)] + [base.new_timer(record, name) for name in names]
    for event in events:
        event.activate(EV.TIMEOUT)
    return events


# -- methods, features, configuration -------------------------------------------------


def test_supported_methods_prefers_the_os_selector() -> None:
    methods = supported_methods()
    assert methods[-2:] == ("poll", "select")
    if sys.platform == "linux":
        assert methods[0] == "epoll"
    elif sys.platform == "darwin":
        assert methods[0] == "kqueue"


async def test_open_event_base_method_and_features(method: str) -> None:
    async with base_for(method) as base:
        assert base.method == method
        assert base.features == EXPECTED_FEATURES[method]
        assert base.priorities == 1
        assert not base.running
        assert not base.closed
        assert method in repr(base)


async def test_open_event_base_default_is_the_best_method() -> None:
    async with open_event_base() as base:
        assert base.method == supported_methods()[0]


async def test_open_event_base_nothing_left() -> None:
    with pytest.raises(EventMethodError, match="no event method fits") as info:
        async with open_event_base(avoid_methods=ALL_METHODS):
            pass
    assert info.value.method is None
    assert info.value.avoided == frozenset(ALL_METHODS)
    assert info.value.supported == supported_methods()


async def test_open_event_base_required_feature_missing() -> None:
    wanted = EventFeature.EARLY_CLOSE | EventFeature.FDS  # no method has both
    with pytest.raises(EventMethodError, match="required FDS, EARLY_CLOSE") as info:
        async with open_event_base(require_features=wanted):
            pass
    assert info.value.missing == ("FDS", "EARLY_CLOSE")


async def test_open_event_base_required_feature_picks_a_method() -> None:
    async with open_event_base(require_features=EventFeature.FDS) as base:
        assert EventFeature.FDS in base.features
        assert base.method in ("kqueue", "poll")


async def test_open_event_base_bad_arguments() -> None:
    for priorities in (0, evtrio.MAX_PRIORITIES + 1):
        with pytest.raises(ValueError, match="priorities must be between 1 and 256"):
            async with open_event_base(priorities=priorities):
                pass
    with pytest.raises(ValueError, match="unknown methods \\['devpoll'\\]"):
        async with open_event_base(avoid_methods=["devpoll"]):
            pass


async def test_open_event_base_body_error_is_not_grouped() -> None:
    with pytest.raises(KeyError, match="from the body"):
        async with open_event_base():
            raise KeyError("from the body")


async def test_EventBase_no_public_constructor() -> None:
    with pytest.raises(TypeError, match="no public constructor"):
        EventBase()
    with pytest.raises(TypeError, match="no public constructor"):
        Event()


# -- lifecycle: pending, active, persistent ----------------------------------------------


async def test_Event_timeout_fires_once_and_becomes_non_pending(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    seen: list[tuple[int, EV, bool, float]] = []

    def on_timeout(fd: int, what: EV, event: Event) -> None:
        seen.append((fd, what, event.pending(), trio.current_time()))

    async with base_for(method) as base:
        timer = base.new_timer(on_timeout, EVENT_SELF)
        assert not timer.pending()
        timer.add(5)
        assert timer.pending(EV.TIMEOUT)
        assert not timer.pending(EV.READ)
        assert timer.deadline == 5.0
        assert await base.dispatch() is True  # no events left
        assert seen == [(-1, EV.TIMEOUT, False, 5.0)]
        assert timer.deadline is None


async def test_Event_timer_added_without_timeout_stays_non_pending(method: str) -> None:
    async with base_for(method) as base:
        timer = base.new_timer(Recorder(), "t")
        timer.add()
        assert not timer.pending()
        assert await base.dispatch() is True


async def test_Event_persistent_timer_keeps_its_rhythm(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[float] = []

    async def slow(fd: int, what: EV, event: Event) -> None:
        calls.append(trio.current_time())
        assert event.pending(EV.TIMEOUT)  # persistent: still pending in its callback
        await trio.sleep(0.25)  # a slow callback must not shift the schedule
        if len(calls) == 4:
            event.delete()

    async with base_for(method) as base:
        tick = base.new_timer(slow, EVENT_SELF, persist=True)
        tick.add(1)
        await base.dispatch()
    assert calls == [1.0, 2.0, 3.0, 4.0]


async def test_Event_persistent_timer_skips_missed_runs(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[float] = []

    async def late(fd: int, what: EV, event: Event) -> None:
        calls.append(trio.current_time())
        if len(calls) == 1:
            await trio.sleep(3.5)  # misses the runs at 2, 3 and 4
        if len(calls) == 3:
            event.delete()

    async with base_for(method) as base:
        base.new_timer(late, EVENT_SELF, persist=True).add(1)
        await base.dispatch()
    assert calls == [1.0, 4.5, 5.5]  # rescheduled from "now", as libevent does


async def test_Event_persistent_timeout_restarts_on_activation(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base:
        event = base.new_timer(record, "event", persist=True)
        event.add(5)
        poke = base.new_timer(lambda fd, what: event.activate(EV.READ))
        poke.add(3)
        stop = base.new_timer(lambda fd, what: event.delete())
        stop.add(12)
        await base.dispatch()
    assert record.calls == [
        ("event", EV.READ, 3.0),  # activated by hand at 3 ...
        ("event", EV.TIMEOUT, 8.0),  # ... so the 5 s timeout restarts from there
    ]


async def test_Event_add_on_pending_event_resets_the_timeout(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base:
        event = base.new_timer(record, "event")
        event.add(5)

        def readd(fd: int, what: EV) -> None:
            event.add(5)  # at t=2: now due at 7
            event.add()  # re-adding without a timeout changes nothing
            assert event.deadline == 7.0

        base.new_timer(readd).add(2)
        await base.dispatch()
    assert record.calls == [("event", EV.TIMEOUT, 7.0)]


async def test_Event_delete_inside_own_callback(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[float] = []

    def once_then_delete(fd: int, what: EV, event: Event) -> None:
        calls.append(trio.current_time())
        event.delete()
        event.delete()  # twice is harmless
        assert not event.pending()

    async with base_for(method) as base:
        base.new_timer(once_then_delete, EVENT_SELF, persist=True).add(1)
        assert await base.dispatch() is True
    assert calls == [1.0]


async def test_Event_deleted_while_active_does_not_run(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:
        second = base.new_timer(record, "second")

        def first_cb(fd: int, what: EV) -> None:
            record(fd, what, "first")
            second.delete()

        first = base.new_timer(first_cb)
        first.activate(EV.TIMEOUT)
        second.activate(EV.TIMEOUT)
        assert second.active
        assert second.pending(EV.TIMEOUT)
        await base.dispatch()
        assert record.names == ["first"]
        assert not second.active
        # a stale queue entry must not resurrect it later
        second.activate(EV.WRITE)
        await base.dispatch()
        assert record.names == ["first", "second"]


async def test_Event_activate_rules(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:
        event = base.new_timer(record, "event")
        event.activate(EV.READ)
        event.activate(EV.WRITE)  # merges into the pending activation
        assert not event.pending(EV.TIMEOUT)  # activation does not make it pending
        await base.dispatch()
        assert record.calls[0][:2] == ("event", EV.READ | EV.WRITE)
        for bad in (0, EV.PERSIST, EV.ET):
            with pytest.raises(ValueError, match="activate\\(\\) takes"):
                event.activate(bad)
        for ncalls in (0, 65536):
            with pytest.raises(ValueError, match="ncalls must be between"):
                event.activate(EV.READ, ncalls=ncalls)


async def test_Event_activate_ncalls(method: str) -> None:
    calls: list[EV] = []

    def cb(fd: int, what: EV, event: Event) -> None:
        calls.append(what)
        if len(calls) == 5:
            event.delete()  # stops the remaining calls of the activation

    async with base_for(method) as base:
        event = base.new_event(-1, EV.PERSIST, cb, EVENT_SELF)
        event.activate(EV.SIGNAL, ncalls=3)
        await base.dispatch()
        assert calls == [EV.SIGNAL] * 3
        event.activate(EV.TIMEOUT, ncalls=4)
        await base.dispatch()
        assert len(calls) == 5


async def test_Event_self_argument_and_running_event(method: str) -> None:
    seen: list[object] = []
    async with base_for(method) as base:

        def cb(fd: int, what: EV, me: Event, other: str) -> None:
            seen.extend([me, other, base.running_event])

        event = base.new_timer(cb, EVENT_SELF, "x")
        assert event.args == (event, "x")
        assert event.callback is cb
        assert event.base is base
        assert event.fd == -1
        assert event.events == EV(0)
        event.activate(EV.TIMEOUT)
        await base.dispatch()
        assert seen == [event, "x", event]
        assert base.running_event is None
        assert repr(evtrio.EVENT_SELF) == "evtrio.EVENT_SELF"


async def test_Event_read_and_write_on_one_fd(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    record = Recorder()
    async with base_for(method) as base:

        def on_read(sock: socket.socket, what: EV, name: str) -> None:
            record(sock, what, name)
            assert sock.recv(100) == b"ping"

        reader = base.new_event(a, EV.READ, on_read, "read")
        writer = base.new_event(a, EV.WRITE, record, "write")
        reader.add()
        writer.add()
        assert base.statistics().watched_fds == 1
        b.send(b"ping")
        with trio.fail_after(10):
            await base.loop(nonblock=True)
        assert sorted(record.names) == ["read", "write"]
        assert dict((name, what) for name, what, _ in record.calls) == {
            "read": EV.READ,
            "write": EV.WRITE,
        }
        # non-persistent: both are done; re-add only the writer, the reader stays quiet
        assert not reader.pending()
        assert not writer.pending()
        writer.add()
        b.send(b"more")
        with trio.fail_after(10):
            await base.loop(nonblock=True)
        assert record.names[2:] == ["write"]
        assert a.recv(100) == b"more"


async def test_Event_async_callback_is_awaited_inline(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    order: list[str] = []
    async with base_for(method, priorities=2) as base:

        async def urgent(fd: int, what: EV) -> None:
            order.append("urgent start")
            await trio.sleep(1)
            order.append("urgent end")

        def lazy(fd: int, what: EV) -> None:
            order.append(f"lazy at {trio.current_time()}")

        first = base.new_timer(urgent)
        first.priority = 0
        second = base.new_timer(lazy)
        second.priority = 1
        second.activate(EV.TIMEOUT)
        first.activate(EV.TIMEOUT)
        await base.dispatch()
    assert order == ["urgent start", "urgent end", "lazy at 1.0"]


async def test_Event_priority_rules(method: str) -> None:
    async with base_for(method, priorities=5) as base:
        event = base.new_timer(Recorder(), "e")
        assert event.priority == 2  # libevent's default: priorities // 2
        event.priority = 4
        assert event.priority == 4
        for bad in (-1, 5):
            with pytest.raises(ValueError, match=r"out of range 0\.\.4"):
                event.priority = bad
        event.activate(EV.TIMEOUT)
        with pytest.raises(EventStateError, match="priority of active"):
            event.priority = 0
        event.delete()
        event.priority = 0  # fine once inactive: the stale queue entry is dropped
        event.activate(EV.TIMEOUT)
        await base.dispatch()
        assert base.statistics().callbacks == 1


async def test_Event_remove_timer(method: str, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    async with base_for(method) as base:
        event = base.new_event(a, EV.READ, Recorder(), "r")
        event.add(10)
        assert event.pending(EV.TIMEOUT)
        assert event.pending(EV.READ)
        event.remove_timer()
        assert not event.pending(EV.TIMEOUT)
        assert event.pending(EV.READ)
        event.remove_timer()  # no timeout: no effect
        timer = base.new_timer(Recorder(), "t")
        timer.add(1)
        timer.remove_timer()  # timeout only: the same as delete()
        assert not timer.pending()
        assert base.statistics().pending == 1


async def test_EventBase_once(method: str, autojump_clock: trio.testing.MockClock) -> None:
    record = Recorder()
    async with base_for(method) as base:
        base.once(-1, EV.TIMEOUT, record, "later", timeout=3)
        base.once(-1, EV.TIMEOUT, record, "now")
        assert base.statistics().pending == 1
        assert await base.dispatch() is True
        assert record.calls == [("now", EV.TIMEOUT, 0.0), ("later", EV.TIMEOUT, 3.0)]
        assert base.statistics().pending == 0
        with pytest.raises(ValueError, match=r"neither EV\.SIGNAL nor EV\.PERSIST"):
            base.once(-1, EV.TIMEOUT | EV.PERSIST, record, "x", timeout=1)
        with pytest.raises(ValueError, match="needs READ, WRITE, CLOSED or TIMEOUT"):
            base.once(-1, 0, record, "x")


async def test_EventBase_once_on_a_descriptor(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    record = Recorder()
    async with base_for(method) as base:
        base.once(a, EV.READ, record, "read", timeout=60)
        b.send(b"x")
        with trio.fail_after(10):
            assert await base.dispatch() is True
    assert [(name, what) for name, what, _ in record.calls] == [("read", EV.READ)]


async def test_EventBase_new_event_validation(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    async with base_for(method) as base:
        with pytest.raises(ValueError, match="unknown event flags"):
            base.new_event(a, 0x40, Recorder())
        with pytest.raises(ValueError, match="signal event cannot also"):
            base.new_event(signal.SIGUSR1, EV.SIGNAL | EV.READ, Recorder())
        with pytest.raises(ValueError, match="need an open descriptor"):
            base.new_event(-1, EV.READ, Recorder())
        with pytest.raises(ValueError, match="not a signal number"):
            base.new_signal(100_000, Recorder())
        with pytest.raises(TypeError, match="must be callable"):
            base.new_event(a, EV.READ, "not callable")  # type: ignore[arg-type]
        closed = socket.socket()
        closed.close()
        with pytest.raises(ValueError, match="need an open descriptor: -1"):
            base.new_event(closed, EV.READ, Recorder())
        for bad in (-1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="finite number of seconds"):
                base.new_timer(Recorder()).add(bad)
        if EventFeature.EARLY_CLOSE not in base.features:
            with pytest.raises(EventMethodError, match="cannot provide EARLY_CLOSE") as info:
                base.new_event(a, EV.CLOSED, Recorder())
            assert info.value.method == method


async def test_EventBase_assign(method: str, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    record = Recorder()
    async with base_for(method, priorities=3) as base:
        event = base.new_timer(record, "timer")
        event.priority = 0
        base.assign(event, a, EV.READ, record, "read")
        assert event.fd == a.fileno()
        assert event.priority == 1
        event.add()
        with pytest.raises(EventStateError, match="pending or active"):
            base.assign(event, a, EV.WRITE, record, "write")
        b.send(b"!")
        with trio.fail_after(10):
            await base.dispatch()
        assert record.names == ["read"]


# -- loop control -------------------------------------------------------------------------


async def test_EventBase_loopexit_finishes_the_round(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:

        def first(fd: int, what: EV) -> None:
            record(fd, what, "first")
            base.loopexit()

        active_timers(base, first, record, "e0", "e1", "e2")
        later = base.new_timer(record, "next round")
        base.new_timer(lambda fd, what: later.activate(EV.TIMEOUT)).activate(EV.TIMEOUT)
        assert await base.dispatch() is False
        assert record.names == ["first", "e0", "e1", "e2"]  # the whole round ran
        assert base.got_exit
        assert not base.got_break
        assert later.active  # activated during the round: runs in the next run
        assert await base.dispatch() is True
        assert not base.got_exit  # reset by the new run
        assert record.names[-1] == "next round"


async def test_EventBase_loopbreak_stops_after_the_running_callback(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:

        def first(fd: int, what: EV) -> None:
            record(fd, what, "first")
            base.loopbreak()

        events = active_timers(base, first, record, "e0", "e1", "e2")
        assert await base.dispatch() is False
        assert record.names == ["first"]
        assert base.got_break
        assert not base.got_exit
        assert all(event.active for event in events[1:])  # still active, not lost
        assert base.statistics().active == 3
        assert await base.dispatch() is True
        assert record.names == ["first", "e0", "e1", "e2"]
        assert not base.got_break


async def test_EventBase_loopexit_before_running_stops_the_next_run_after_one_round(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base:
        ticker = base.new_timer(record, "tick", persist=True)
        ticker.add(1)
        ready = base.new_timer(record, "ready")
        ready.activate(EV.TIMEOUT)
        base.loopexit()  # not running: a pending exit timer, not a flag
        assert base.statistics().exit_timers == 1
        assert await base.dispatch() is False
        assert base.got_exit
        assert record.calls == [("ready", EV.TIMEOUT, 0.0)]  # one round, then stop
        assert trio.current_time() == 0.0
        # the timer is spent: the next run goes on until stopped otherwise
        base.loopexit(2.5)
        assert await base.dispatch() is False
        assert base.got_exit
        assert record.names == ["ready", "tick", "tick"]
        assert trio.current_time() == 2.5


async def test_EventBase_loopbreak_when_not_running_has_no_effect(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base:
        base.new_timer(record, "t").add(1)
        base.loopbreak()
        assert await base.dispatch() is True
        assert not base.got_break
        assert record.names == ["t"]


async def test_EventBase_loopexit_delay_counts_as_an_event(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with base_for(method) as base:
        base.loopexit(10)
        assert await base.dispatch() is False
        assert base.got_exit
        assert trio.current_time() == 10.0
        with pytest.raises(ValueError, match="finite number of seconds"):
            base.loopexit(-1)


async def test_EventBase_loop_once_and_nonblock(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method, priorities=2) as base:
        timer = base.new_timer(record, "t", persist=True)
        timer.add(4)
        assert await base.loop(nonblock=True) is False  # nothing ready: returns at once
        assert trio.current_time() == 0.0
        assert record.calls == []
        assert await base.loop(once=True) is False  # waits for the timer, runs it
        assert record.calls == [("t", EV.TIMEOUT, 4.0)]
        urgent = base.new_timer(record, "urgent")
        urgent.priority = 0
        urgent.activate(EV.TIMEOUT)
        lazy = base.new_timer(record, "lazy")
        lazy.priority = 1
        lazy.activate(EV.TIMEOUT)
        rounds = base.statistics().rounds
        assert await base.loop(once=True) is False  # runs every active event, no waiting
        assert record.names[1:] == ["urgent", "lazy"]
        assert base.statistics().rounds == rounds + 2
        assert trio.current_time() == 4.0


async def test_EventBase_no_exit_on_empty(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base, trio.open_nursery() as nursery:
        done = trio.Event()

        async def run() -> None:
            assert await base.loop(no_exit_on_empty=True) is False
            done.set()

        nursery.start_soon(run)
        await trio.sleep(5)
        assert base.running
        base.new_timer(record, "late").add(1)
        await trio.sleep(2)
        assert record.calls == [("late", EV.TIMEOUT, 6.0)]
        base.loopexit()
        await done.wait()
        assert base.got_exit
        assert trio.current_time() == 7.0


async def test_EventBase_loopcontinue(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:
        base.loopcontinue()  # outside callbacks: no effect

        def first(fd: int, what: EV) -> None:
            record(fd, what, "first")
            base.loopcontinue()

        active_timers(base, first, record, "second")
        rounds = base.statistics().rounds
        await base.dispatch()
        assert record.names == ["first", "second"]
        assert base.statistics().rounds == rounds + 2


async def test_EventBase_reentrant_loop_is_refused(method: str) -> None:
    errors: list[BaseException] = []
    async with base_for(method) as base:

        async def reenter(fd: int, what: EV) -> None:
            with pytest.raises(ReentrantLoopError, match="already running") as info:
                await base.loop()
            errors.append(info.value)
            with pytest.raises(ReentrantLoopError):
                await base.active_events().__anext__()

        base.new_timer(reenter).activate(EV.TIMEOUT)
        await base.dispatch()
    assert isinstance(errors[0], trio.BusyResourceError)


async def test_EventBase_second_task_cannot_run_the_loop(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with base_for(method) as base, trio.open_nursery() as nursery:
        base.loopexit(10)
        nursery.start_soon(base.dispatch)
        await trio.sleep(1)
        with pytest.raises(ReentrantLoopError):
            await base.dispatch()


async def test_EventBase_other_tasks_wake_the_waiting_loop(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    record = Recorder()
    async with base_for(method) as base, trio.open_nursery() as nursery:
        far = base.new_timer(record, "far")
        far.add(100)
        user = base.new_event(-1, EV.PERSIST, record, "user")

        async def poke() -> None:
            await trio.sleep(1)
            user.activate(EV.READ)  # wakes the loop at once
            await trio.sleep(1)
            base.new_timer(record, "sooner").add(1)  # shortens the wait: due at 3
            await trio.sleep(2)
            base.loopbreak()  # stops the waiting loop

        nursery.start_soon(poke)
        assert await base.dispatch() is False
    assert record.calls == [("user", EV.READ, 1.0), ("sooner", EV.TIMEOUT, 3.0)]
    assert base.got_break
    assert trio.current_time() == 4.0


async def test_EventBase_loopexit_from_another_task(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with base_for(method) as base, trio.open_nursery() as nursery:
        base.new_timer(Recorder(), "far").add(100)

        async def stop() -> None:
            await trio.sleep(2)
            base.loopexit()

        nursery.start_soon(stop)
        await base.dispatch()
        assert base.got_exit
        assert trio.current_time() == 2.0


async def test_EventBase_cancelled_loop_keeps_activations(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:

        async def blocking(fd: int, what: EV) -> None:
            record(fd, what, "blocking")
            await trio.sleep_forever()

        events = active_timers(base, blocking, record, "e0", "e1")
        with trio.move_on_after(0.01) as scope:
            await base.dispatch()
        assert scope.cancelled_caught
        assert not base.running
        assert [event.active for event in events] == [False, True, True]
        events[0].delete()
        await base.dispatch()
        assert record.names == ["blocking", "e0", "e1"]


async def test_EventBase_callback_error_stops_the_loop(method: str) -> None:
    record = Recorder()
    async with base_for(method) as base:

        def broken(fd: int, what: EV) -> None:
            raise RuntimeError("callback failed")

        events = active_timers(base, broken, record, "after")
        with pytest.raises(RuntimeError, match="callback failed"):
            await base.dispatch()
        assert not base.running
        assert events[1].active
        await base.dispatch()
        assert record.names == ["after"]


async def test_EventBase_loop_is_a_checkpoint(method: str) -> None:
    async with base_for(method) as base:
        with trio.CancelScope() as scope:
            scope.cancel()
            await base.dispatch()  # nothing to do, yet it checkpoints
        assert scope.cancelled_caught


async def test_EventBase_waits_for_descriptors_and_timers(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    """Real waits (a worker thread for poll and select): readiness, deadlines, wake-ups."""
    a, b = pair
    record = Recorder()
    async with base_for(method) as base, trio.open_nursery() as nursery:

        def on_read(sock: socket.socket, what: EV, name: str) -> None:
            record(sock, what, name)
            sock.recv(100)

        reader = base.new_event(a, EV.READ | EV.PERSIST, on_read, "read")
        reader.add()
        base.new_timer(record, "timer").add(0.05)  # fires while the fd stays quiet

        async def later() -> None:
            await trio.sleep(0.3)
            b.send(b"data")
            await trio.sleep(0.3)
            base.loopbreak()  # wakes the wait on the quiet fd

        nursery.start_soon(later)
        with trio.fail_after(30):
            assert await base.dispatch() is False
        assert record.names == ["timer", "read"]
        assert base.got_break
        # a cancelled wait leaves nothing behind: the next run still sees readiness
        with trio.move_on_after(0.05):
            await base.dispatch()
        b.send(b"again")
        base.new_timer(lambda fd, what: base.loopexit()).add(5)
        with trio.fail_after(30):
            await base.loop(once=True)
        assert record.names == ["timer", "read", "read"]


# -- priorities ---------------------------------------------------------------------------


async def test_EventBase_priorities_starve_lower_ones(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    """The book's example: a busy priority-0 writer starves a priority-1 reader."""
    a, b = pair
    order: list[str] = []
    async with base_for(method, priorities=2) as base:

        def write_cb(sock: socket.socket, what: EV, me: Event) -> None:
            order.append("write")
            if order.count("write") == 3:
                me.delete()

        def read_cb(sock: socket.socket, what: EV, me: Event) -> None:
            order.append("read")
            sock.recv(10)
            me.delete()

        important = base.new_event(a, EV.WRITE | EV.PERSIST, write_cb, EVENT_SELF)
        unimportant = base.new_event(a, EV.READ | EV.PERSIST, read_cb, EVENT_SELF)
        important.priority = 0
        unimportant.priority = 1
        important.add()
        unimportant.add()
        b.send(b"x")  # readable and writable from now on
        with trio.fail_after(10):
            await base.dispatch()
    assert order == ["write", "write", "write", "read"]


async def test_EventBase_each_round_runs_only_the_most_urgent_priority(method: str) -> None:
    async with base_for(method, priorities=3) as base:
        rounds: list[tuple[int, int]] = []

        def cb(fd: int, what: EV, priority: int) -> None:
            rounds.append((priority, base.statistics().rounds))

        for priority in (2, 1, 0, 2):
            event = base.new_timer(cb, priority)
            event.priority = priority
            event.activate(EV.TIMEOUT)
        start = base.statistics().rounds
        await base.dispatch()
    assert rounds == [(0, start + 1), (1, start + 2), (2, start + 3), (2, start + 3)]


# -- active_events() ------------------------------------------------------------------------


async def test_EventBase_active_events_follow_priorities(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with base_for(method, priorities=2) as base:
        tick = base.new_timer(None, persist=True)
        tick.priority = 1
        tick.add(2)
        urgent = base.new_timer(None)
        urgent.priority = 0
        lazy = base.new_timer(None)
        lazy.priority = 1
        lazy.activate(EV.READ)
        urgent.activate(EV.WRITE)
        seen: list[tuple[Event, EV, float]] = []
        async for event, what in base.active_events():
            seen.append((event, what, trio.current_time()))
            assert base.running
            assert base.running_event is event
            if len(seen) == 4:
                tick.delete()
        assert not base.running
        assert seen == [
            (urgent, EV.WRITE, 0.0),
            (lazy, EV.READ, 0.0),
            (tick, EV.TIMEOUT, 2.0),
            (tick, EV.TIMEOUT, 4.0),
        ]
        assert base.statistics().callbacks == 4


async def test_EventBase_active_events_stop_like_the_loop(method: str) -> None:
    async with base_for(method) as base:
        events = [base.new_timer(None) for _ in range(3)]
        for event in events:
            event.activate(EV.TIMEOUT)
        async for event, _ in base.active_events():
            assert event is events[0]
            base.loopbreak()
        assert base.got_break
        assert [event.active for event in events] == [False, True, True]
        # leaving the loop early gives the rest back, and the base is free again
        async for event, _ in base.active_events():
            assert event is events[1]
            break
        assert not base.running
        assert events[2].active
        event = base.new_event(-1, 0, None)
        event.activate(EV.READ, ncalls=3)
        got = [what async for _, what in base.active_events()]
        assert got == [EV.TIMEOUT, EV.READ, EV.READ, EV.READ]


async def test_ActiveEvents_aclose(method: str) -> None:
    async with base_for(method) as base:
        event = base.new_timer(None)
        event.activate(EV.TIMEOUT)
        second = base.new_timer(None)
        second.activate(EV.TIMEOUT)
        activations = base.active_events()
        assert await activations.__anext__() == (event, EV.TIMEOUT)
        assert base.running
        await activations.aclose()
        await activations.aclose()
        assert not base.running
        assert second.active
        with pytest.raises(StopAsyncIteration):
            await activations.__anext__()


# -- time cache, dump, foreach, statistics ---------------------------------------------------


async def test_EventBase_gettimeofday_cached(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    samples: list[float] = []
    async with base_for(method) as base:
        outside = base.gettimeofday_cached()
        assert abs(outside - time.time()) < 60

        async def cb(fd: int, what: EV) -> None:
            samples.append(base.gettimeofday_cached())
            await trio.sleep(3)
            samples.append(base.gettimeofday_cached())  # same round: same cached time
            base.update_cache_time()
            samples.append(base.gettimeofday_cached())

        base.new_timer(cb).add(2)
        await base.dispatch()
        base.update_cache_time()  # outside callbacks: no effect
    assert samples[0] == samples[1] == pytest.approx(outside + 2)
    assert samples[2] == pytest.approx(outside + 5)


async def test_EventBase_dump_events_shows_each_event(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    async with base_for(method, priorities=2) as base:

        def on_read(fd: int, what: EV) -> None:
            pass

        reader = base.new_event(a, EV.READ | EV.PERSIST, on_read)
        reader.add(30)
        hup = base.new_signal(signal.SIGUSR2, Recorder(), "hup")
        hup.add()
        user = base.new_timer(Recorder(), "user")
        user.activate(EV.WRITE)
        base.loopexit(5)
        out = io.StringIO()
        base.dump_events(out)
        text = out.getvalue()
        hup.delete()
    assert f"method {method}, 2 priorities, not running" in text
    inserted, active = text.split("Active events:")
    assert f"#1 fd={a.fileno()} READ|PERSIST priority=1 timeout=30.0s" in inserted
    assert "pending=TIMEOUT|READ" in inserted
    assert "callback=test_EventBase_dump_events_shows_each_event.<locals>.on_read" in inserted
    assert "#2 signal=SIGUSR2 SIGNAL|PERSIST priority=1 pending=SIGNAL" in inserted
    assert "#3 fd=-1 0 priority=1 not pending active=WRITE" in active
    assert "Loop exits at:" in active


async def test_EventBase_inspection_inside_a_round(method: str) -> None:
    """During a callback, the round's events that have not run yet are still active."""
    seen: list[str] = []
    async with base_for(method) as base:

        def first(fd: int, what: EV) -> None:
            out = io.StringIO()
            base.dump_events(out)
            seen.append(out.getvalue())
            assert base.foreach_event(lambda event: event.args == ("later",)) is True
            assert base.statistics().running

        active_timers(base, first, Recorder(), "later")
        await base.dispatch()
    assert "priorities, running, time" in seen[0]
    assert "#2 fd=-1 0 priority=0 not pending active=TIMEOUT" in seen[0].split("Active events:")[1]


async def test_EventBase_dump_events_to_stdout(
    method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with base_for(method) as base:
        base.new_timer(Recorder(), "t").add(1)
        base.dump_events()
    assert "#1 fd=-1 0 priority=0 timeout=1.0s" in capsys.readouterr().out


async def test_EventBase_foreach_event(method: str) -> None:
    async with base_for(method) as base:
        events = [base.new_timer(Recorder(), str(i)) for i in range(4)]
        events[0].add(5)
        events[2].activate(EV.TIMEOUT)
        events[3].add(1)
        visited: list[Event] = []

        def visit(event: Event) -> None:
            visited.append(event)

        assert base.foreach_event(visit) is None
        assert visited == [events[0], events[2], events[3]]
        assert base.foreach_event(lambda event: event.fd == -1 and "stop") == "stop"


async def test_EventBase_statistics(method: str, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    async with base_for(method, priorities=3) as base:
        base.new_event(a, EV.READ, Recorder()).add(3)
        base.new_event(a, EV.WRITE, Recorder()).add()
        base.new_timer(Recorder(), "t").activate(EV.TIMEOUT)
        base.loopexit(9)
        stats = base.statistics()
    assert stats == evtrio.EventBaseStatistics(
        method=method,
        priorities=3,
        pending=2,
        active=1,
        watched_fds=1,
        timers=1,
        signals=0,
        exit_timers=1,
        running=False,
        rounds=0,
        callbacks=0,
    )


# -- closing and debug mode -------------------------------------------------------------------


async def test_EventBase_close_stops_every_event(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    original = signal.getsignal(signal.SIGUSR1)
    async with base_for(method) as base:
        reader = base.new_event(a, EV.READ | EV.PERSIST, Recorder())
        reader.add(5)
        user = base.new_timer(Recorder(), "u")
        user.activate(EV.TIMEOUT)
        hup = base.new_signal(signal.SIGUSR1, Recorder())
        hup.add()
    assert base.closed
    assert "closed" in repr(base)
    assert not reader.pending()
    assert not user.active
    assert not hup.pending()
    assert signal.getsignal(signal.SIGUSR1) is original
    reader.delete()  # harmless in normal mode
    assert base.statistics().pending == 0
    for use in (
        lambda: reader.add(),
        lambda: reader.activate(EV.READ),
        lambda: base.new_timer(Recorder()),
        lambda: base.loopexit(),
        lambda: base.assign(user, -1, 0, Recorder()),
    ):
        with pytest.raises(EventBaseClosedError, match="event base is closed"):
            use()
    with pytest.raises(trio.ClosedResourceError):
        await base.dispatch()
    base.loopbreak()  # not running: no effect, closed or not


async def test_EventBase_close_stops_a_loop_in_another_task(
    method: str, autojump_clock: trio.testing.MockClock
) -> None:
    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery, base_for(method) as base:
        base.new_timer(Recorder(), "far").add(100)

        async def run() -> None:
            with pytest.raises(EventBaseClosedError) as info:
                await base.dispatch()
            errors.append(info.value)

        nursery.start_soon(run)
        await trio.sleep(1)
    assert len(errors) == 1
    assert not base.running


async def test_EventBase_debug_refuses_events_after_close(method: str) -> None:
    async with base_for(method, debug=True) as base:
        assert base.debug
        event = base.new_timer(Recorder())
        event.add(1)
    for use in (
        event.delete,
        event.pending,
        event.remove_timer,
        lambda: setattr(event, "priority", 0),
    ):
        with pytest.raises(EventBaseClosedError, match="its event base is closed"):
            use()
    assert "(base closed)" in repr(event)


async def test_EventBase_debug_refuses_foreign_events(method: str) -> None:
    async with base_for(method, debug=True) as strict, base_for(method) as lenient:
        theirs = lenient.new_timer(Recorder())
        with pytest.raises(ForeignEventError, match="belongs to another event base") as info:
            strict.assign(theirs, -1, 0, Recorder())
        assert info.value.event is theirs
        assert info.value.base is strict
        # without debug mode an event moves to another base, as event_assign allows
        mine = strict.new_timer(Recorder())
        lenient.assign(mine, -1, EV.PERSIST, Recorder())
        assert mine.base is lenient


@pytest.mark.parametrize("debug", [False, True])
async def test_EventBase_regular_file(method: str, debug: bool) -> None:
    """Refused (in both modes) unless the method handles any descriptor: epoll refuses."""
    async with base_for(method, debug=debug) as base, _regular_file() as fd:
        record = Recorder()
        event = base.new_event(fd, EV.READ, record, "file")
        if EventFeature.FDS in base.features:
            event.add()
            await base.dispatch()  # a regular file is always readable
            assert record.names == ["file"]
        else:
            with pytest.raises(UnsupportedFdError, match=f"the '{method}' backend cannot") as info:
                event.add()
            assert (info.value.fd, info.value.method) == (fd, method)
            assert info.value.errno is not None
            assert not event.pending()
            assert base.statistics().watched_fds == 0


async def test_EventBase_closed_descriptor_is_refused(method: str) -> None:
    async with base_for(method) as base:
        a, b = socket.socketpair()
        event = base.new_event(a.fileno(), EV.READ, Recorder())
        a.close()
        b.close()
        with pytest.raises(UnsupportedFdError):
            event.add()


async def test_EventBase_select_refuses_descriptors_over_fd_setsize(
    raised_fd_limit: int,
) -> None:
    async with base_for("select") as base:
        a, b = socket.socketpair()
        with a, b:
            high = os.dup2(a.fileno(), 1500)
            try:
                event = base.new_event(high, EV.READ, Recorder())
                with pytest.raises(UnsupportedFdError, match="below 1024"):
                    event.add()
            finally:
                os.close(high)


@contextlib.asynccontextmanager
async def _regular_file() -> AsyncIterator[int]:
    with tempfile.TemporaryFile() as file:
        file.write(b"data")
        file.flush()
        yield file.fileno()


# -- edge-triggered, early close --------------------------------------------------------------


async def test_Event_edge_triggered_where_the_method_can(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    edge, level = Recorder(), Recorder()
    has_et = EventFeature.ET in EXPECTED_FEATURES[method]
    async with base_for(method) as base:
        base.new_event(a, EV.READ | EV.PERSIST | EV.ET, edge, "edge").add()
        other_a, other_b = socket.socketpair()
        with other_a, other_b:
            base.new_event(other_a, EV.READ | EV.PERSIST, level, "level").add()
            b.send(b"x")
            other_b.send(b"x")
            with trio.fail_after(10):
                for _ in range(3):  # nobody reads: level-triggered fires every time
                    await base.loop(nonblock=True)
                assert len(level.calls) == 3
                assert len(edge.calls) == (1 if has_et else 3)
                b.send(b"y")  # a new edge
                await base.loop(nonblock=True)
                assert len(edge.calls) == (2 if has_et else 4)
            if has_et:
                with pytest.raises(EventStateError, match="edge-triggered and level-triggered"):
                    base.new_event(a, EV.WRITE, Recorder()).add()
            else:  # ET is ignored, so nothing conflicts
                base.new_event(a, EV.WRITE, Recorder()).add()


async def test_Event_closed_detects_the_peer_closing(
    method: str, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    record = Recorder()
    async with base_for(method) as base:
        if EventFeature.EARLY_CLOSE not in base.features:
            with pytest.raises(EventMethodError, match="cannot provide EARLY_CLOSE"):
                base.new_event(a, EV.CLOSED, record, "closed")
            return
        base.new_event(a, EV.CLOSED, record, "closed").add()
        b.send(b"unread data")
        with trio.fail_after(10):
            await base.loop(nonblock=True)
            assert record.calls == []  # readable, but not closed
            b.shutdown(socket.SHUT_WR)
            await base.loop(once=True)
        assert [(n, what) for n, what, _ in record.calls] == [("closed", EV.CLOSED)]


# -- signals -----------------------------------------------------------------------------------


async def test_EventBase_signal_events(method: str) -> None:
    record = Recorder()
    original = signal.getsignal(signal.SIGUSR1)
    async with base_for(method) as base:
        first = base.new_signal(signal.SIGUSR1, record, "first")
        second = base.new_signal(signal.SIGUSR1, record, "second")
        first.add()
        second.add()
        assert first.pending(EV.SIGNAL)
        assert first.fd == signal.SIGUSR1
        assert base.statistics().signals == 1
        assert signal.getsignal(signal.SIGUSR1) is not original
        # three signals before the loop runs coalesce into one activation
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGUSR1)
        with trio.fail_after(10):
            await base.loop(once=True)
        assert sorted(record.names) == ["first", "second"]
        assert {what for _, what, _ in record.calls} == {EV.SIGNAL}
        first.delete()
        assert signal.getsignal(signal.SIGUSR1) is not original  # second still watches
        second.delete()
        assert signal.getsignal(signal.SIGUSR1) is original  # handler restored
        assert base.statistics().signals == 0


async def test_EventBase_signal_receiver_needs_the_main_thread() -> None:
    errors: list[BaseException] = []

    async def in_thread() -> None:
        async with open_event_base() as base:
            with pytest.raises(RuntimeError, match="main thread"):
                base.new_signal(signal.SIGUSR1, Recorder()).add()
            errors.append(RuntimeError("checked"))

    await trio.to_thread.run_sync(trio.run, in_thread)
    assert len(errors) == 1


async def test_EventBase_uncatchable_signal() -> None:
    async with open_event_base() as base:
        event = base.new_signal(signal.SIGKILL, Recorder())
        with pytest.raises(ValueError, match="cannot be caught"):
            event.add()
        assert not event.pending()


# -- many real descriptors ---------------------------------------------------------------------


@pytest.fixture
def raised_fd_limit() -> Iterator[int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit for one test, then restore it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("name", FD_METHODS)
async def test_EventBase_thousand_socket_pairs_fire_once_per_readiness(
    name: str, raised_fd_limit: int
) -> None:
    """1 000 pairs watched for READ, 100 made readable per round: each fires exactly once."""
    pairs = [socket.socketpair() for _ in range(1000)]
    try:
        for a, b in pairs:
            a.setblocking(False)
            b.setblocking(False)
        fired: list[int] = []

        def on_read(sock: socket.socket, what: EV, index: int) -> None:
            assert what == EV.READ
            assert sock.recv(16) == b"!"
            fired.append(index)

        with trio.fail_after(60):
            async with base_for(name) as base:
                for index, (a, _) in enumerate(pairs):
                    base.new_event(a, EV.READ | EV.PERSIST, on_read, index).add()
                assert base.statistics().watched_fds == 1000
                for round_number in range(12):
                    chosen = [(round_number * 37 + step * 10) % 1000 for step in range(100)]
                    for index in chosen:
                        pairs[index][1].send(b"!")
                    fired.clear()
                    await base.loop(nonblock=True)
                    assert sorted(fired) == sorted(chosen)
                fired.clear()
                await base.loop(nonblock=True)  # nothing was made readable
                assert fired == []
    finally:
        for a, b in pairs:
            a.close()
            b.close()
