"""Token-bucket rate limits for any Trio stream, per stream and per group.

libevent's rate-limited bufferevents recast as a stream wrapper:

* :class:`TokenBucketConfig` is ``ev_token_bucket_cfg``: a rate and a burst for each
  direction, in bytes per tick, and the tick length in seconds.
* :class:`RateLimitedStream` wraps a stream and never lets more bytes through than its
  buckets (and its group) allow: a receive asks the transport for no more than the
  tokens allow, and a send is split into pieces that each fit the tokens, waiting for
  refills in between.
* :class:`RateLimitGroup` is a shared capacity limiter over many streams (a
  ``bufferevent_rate_limit_group``), handing out grants of
  ``max(bucket / members, min_share)`` bytes in a fair order.

The token accounting is sans-IO: :class:`_TokenBucket` and :class:`_GroupCore` take the
clock as a number and never await, so they are tested with exact figures. The streams
read the clock with :func:`trio.current_time`, so a :class:`trio.testing.MockClock`
makes every test deterministic.

Like libevent, buckets are refilled by whole ticks counted from the clock's zero (tick
``k`` covers ``[k * tick, (k + 1) * tick)``), start with one tick of tokens, and may go
negative when more was taken than they held (a decrement, or a group overdrawn by its
last grant); nothing moves until a refill brings them above zero again.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_MIN_SHARE",
    "MIN_TICK",
    "RATE_LIMIT_MAX",
    "HalfCloseableRateLimitedStream",
    "RateLimitGroup",
    "RateLimitGroupStatistics",
    "RateLimitedStream",
    "RateLimitedStreamStatistics",
    "TokenBucketConfig",
)

import math
import operator
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final, overload

import trio
from trio.lowlevel import (
    ParkingLot,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    wait_writable,
)
from typing_extensions import override

from .._util import ConflictDetector, half_closeable_class, stream_error
from ..errors import RateLimitGroupError
from ._socket import stdlib_socket
from .flush import FlushMode, SupportsFlush

if TYPE_CHECKING:
    import random
    import socket
    from collections.abc import Hashable

RATE_LIMIT_MAX: Final = sys.maxsize
"""The largest rate, burst, share or decrement accepted (libevent's ``EV_RATE_LIMIT_MAX``);
also what :attr:`RateLimitedStream.read_limit` reports for a stream without a limit."""

DEFAULT_MIN_SHARE: Final = 64
"""The default smallest grant a group hands one member (libevent's default)."""

MIN_TICK: Final = 0.001
"""The shortest tick, in seconds."""

_RECEIVE_SIZE: Final = 64 * 1024
"""The most bytes asked of the transport by one limited ``receive_some()``."""

_READ: Final = 0
_WRITE: Final = 1
_DIRECTIONS: Final = (_READ, _WRITE)
_NAMES: Final = ("read", "write")

M = TypeVar("M", bound="Hashable")


def _check_amount(name: str, value: object, *, low: int, high: int = RATE_LIMIT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


@final
@dataclass(frozen=True, slots=True)
class TokenBucketConfig:
    """Rates and bursts for a rate limit (libevent's ``ev_token_bucket_cfg``).

    Each direction has a bucket that starts with one tick of tokens (*rate* bytes),
    gains *rate* tokens at the start of every tick and never holds more than *burst*.

    Attributes:
      read_rate: bytes that may be read per tick, on average.
      read_burst: the most bytes that may be read in one tick (the bucket's size).
      write_rate: bytes that may be written per tick, on average.
      write_burst: the most bytes that may be written in one tick.
      tick: the tick length in seconds (fractions allowed, at least 1 ms).

    Raises:
      TypeError: a rate or burst that is not an ``int``, or a tick that is not a number.
      ValueError: a rate below 1, a burst below its rate, a value above
        :data:`RATE_LIMIT_MAX`, or a tick shorter than 1 ms or not finite.
    """

    read_rate: int
    read_burst: int
    write_rate: int
    write_burst: int
    tick: float = 1.0

    def __post_init__(self) -> None:
        for direction in _NAMES:
            rate = _check_amount(f"{direction}_rate", getattr(self, f"{direction}_rate"), low=1)
            _check_amount(f"{direction}_burst", getattr(self, f"{direction}_burst"), low=rate)
        tick = self.tick
        if isinstance(tick, bool) or not isinstance(tick, int | float):
            raise TypeError(f"tick must be a number of seconds, not {type(tick).__name__}")
        if not (math.isfinite(tick) and tick >= MIN_TICK):
            raise ValueError(f"tick must be a finite number of seconds >= {MIN_TICK}, not {tick}")

    def _rate(self, direction: int) -> int:
        return self.write_rate if direction else self.read_rate

    def _burst(self, direction: int) -> int:
        return self.write_burst if direction else self.read_burst


# ---------------------------------------------------------------------- sans-IO accounting


def _tick_index(now: float, tick: float) -> int:
    """The number of the tick that clock value *now* falls in."""
    return math.floor(now / tick)


def _tick_start(index: int, tick: float) -> float:
    """A clock value that lies in tick *index* (its start, up to float rounding)."""
    start = index * tick
    while _tick_index(start, tick) < index:
        start = math.nextafter(start, math.inf)
    return start


class _Bucket:
    """One direction's token bucket: *tokens*, gaining *rate* a tick, capped at *burst*."""

    __slots__ = ("burst", "rate", "tokens")

    def __init__(self, rate: int, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = rate  # one tick of tokens to start with, as libevent does


class _TokenBucket:
    """The read and write buckets of one config, driven by clock values (no I/O).

    ``tokens(d, now)`` refills and reports; ``consume(d, n)`` takes *n* (a negative
    *n* gives tokens back); ``reconfigure`` only ever clips the buckets down.
    """

    __slots__ = ("buckets", "config", "last_tick")

    def __init__(self, config: TokenBucketConfig, now: float) -> None:
        self.config = config
        self.buckets = tuple(_Bucket(config._rate(d), config._burst(d)) for d in _DIRECTIONS)
        self.last_tick = _tick_index(now, config.tick)

    def update(self, now: float) -> bool:
        """Refill both buckets by whole ticks up to *now*; True if a tick boundary passed.

        A clock that goes back adds nothing (as in libevent).
        """
        index = math.floor(now / self.config.tick)
        elapsed = index - self.last_tick
        if elapsed <= 0:
            return False
        for bucket in self.buckets:
            bucket.tokens = min(bucket.tokens + elapsed * bucket.rate, bucket.burst)
        self.last_tick = index
        return True

    def tokens(self, direction: int, now: float) -> int:
        self.update(now)
        return self.buckets[direction].tokens

    def consume(self, direction: int, amount: int) -> None:
        self.buckets[direction].tokens -= amount

    def reconfigure(self, config: TokenBucketConfig, now: float) -> None:
        """Switch to *config* at *now*: refill under the old one, then clip to the new bursts."""
        self.update(now)
        for direction, bucket in enumerate(self.buckets):
            bucket.rate = config._rate(direction)
            bucket.burst = config._burst(direction)
            bucket.tokens = min(bucket.tokens, bucket.burst)
        self.last_tick = _tick_index(now, config.tick)
        self.config = config

    def next_refill(self, now: float) -> float:
        """The clock value at which the next tick after *now* starts."""
        tick = self.config.tick
        return _tick_start(_tick_index(now, tick) + 1, tick)


class _Side(Generic[M]):
    """One direction of a group: its grants, waiters and round-robin position."""

    __slots__ = (
        "cursor",
        "granted",
        "newly_granted",
        "reserved",
        "reserved_by",
        "suspended",
        "total",
        "waiting",
    )

    def __init__(self) -> None:
        self.granted: dict[M, int] = {}  # grants handed out and not yet used
        self.reserved_by: dict[M, int] = {}  # those of them handed out this tick
        self.reserved = 0  # the sum of reserved_by
        self.waiting: set[M] = set()  # members that asked while the group was suspended
        self.newly_granted: list[M] = []  # waiters granted since the shell last looked
        self.suspended = False
        self.cursor = 0  # round-robin: the member index the next round starts from
        self.total = 0  # bytes moved through the group


class _GroupCore(Generic[M]):
    """The token accounting of a rate-limit group, driven by clock values (no I/O).

    The rules, after libevent's ``bufferevent_ratelim.c``:

    * The group has one bucket per direction (:class:`_TokenBucket`). What is
      *available* is the bucket less the grants handed out and not yet used.
    * A member asks with :meth:`acquire` and gets a grant of
      ``max(ceil(available / members), min_share)`` bytes, or 0 and a place among the
      waiters while the group is *suspended*. The share is rounded up, so that one
      grant to every member spends the whole bucket; the last grant may overdraw it.
    * The group is suspended once nothing is available; a refill resumes it when at
      least ``min_share`` is available (a decrement, as soon as anything is).
    * A resumed group serves its waiters in rounds: one share each, in member order
      starting after the member served last (round-robin), or at a member drawn from
      *rng* (libevent's random start), until the bucket is spent.
    * :meth:`release` charges the bytes a grant really moved (the unused rest returns).
    * A grant is set aside (reserved) only until the next refill. A member still busy
      then (an idle connection blocked in a read, a write stuck on a full socket
      buffer) keeps its grant as an upper bound but no longer holds the others back;
      what it moves later is charged then, and may overdraw the bucket.

    ``min_share`` is clipped to the direction's rate, so that a refill can always
    resume the group, and 0 disables it.
    """

    __slots__ = ("bucket", "members", "min_share", "positions", "rng", "sides")

    def __init__(
        self,
        config: TokenBucketConfig,
        now: float,
        *,
        min_share: int = DEFAULT_MIN_SHARE,
        rng: random.Random | None = None,
    ) -> None:
        self.bucket = _TokenBucket(config, now)
        self.members: list[M] = []  # in the order they were added
        self.positions: dict[M, int] = {}  # member -> its index in members
        self.min_share = min_share
        self.rng = rng
        self.sides: tuple[_Side[M], _Side[M]] = (_Side(), _Side())

    # -- state

    def available(self, direction: int) -> int:
        return self.bucket.buckets[direction].tokens - self.sides[direction].reserved

    def effective_min_share(self, direction: int) -> int:
        return min(self.min_share, self.bucket.buckets[direction].rate)

    def share(self, direction: int, now: float) -> int:
        """What a member asking now would be granted (0 while suspended)."""
        self.update(now)
        if self.sides[direction].suspended or not self.members:
            return 0
        return self._share(direction)

    def next_refill(self, now: float) -> float:
        return self.bucket.next_refill(now)

    def take_granted(self, direction: int) -> list[M]:
        """The waiters granted since the last call (the shell wakes them)."""
        side = self.sides[direction]
        granted, side.newly_granted = side.newly_granted, []
        return granted

    # -- changes

    def update(self, now: float) -> None:
        if self.bucket.update(now):
            for direction, side in enumerate(self.sides):
                side.reserved_by.clear()  # reservations last until the next refill
                side.reserved = 0
                self._settle(direction, self._resume_level(direction))

    def acquire(self, direction: int, member: M, now: float) -> int:
        """A grant for *member* (an earlier one if it has one), or 0: it waits."""
        self.update(now)
        side = self.sides[direction]
        grant = side.granted.get(member)
        if grant is not None:
            return grant
        if side.suspended:
            side.waiting.add(member)
            return 0
        side.cursor = self.positions[member] + 1  # the next round starts after it
        self._grant(direction, member, self._share(direction))
        return side.granted[member]

    def release(self, direction: int, member: M, used: int) -> None:
        """*member* moved *used* bytes under its grant (if any): charge them."""
        side = self.sides[direction]
        side.granted.pop(member, None)
        side.reserved -= side.reserved_by.pop(member, 0)
        self.bucket.consume(direction, used)
        side.total += used
        if side.suspended or self.available(direction) <= 0:  # else: nobody waits
            self._settle(direction, self._resume_level(direction))

    def withdraw(self, direction: int, member: M) -> None:
        """*member* no longer wants to move bytes: forget its wait, return its grant."""
        side = self.sides[direction]
        side.waiting.discard(member)
        if member in side.granted:
            self.release(direction, member, 0)

    def decrement(self, direction: int, amount: int) -> None:
        self.bucket.consume(direction, amount)
        self._settle(direction, 1)

    def set_config(self, config: TokenBucketConfig, now: float) -> None:
        self.bucket.reconfigure(config, now)
        for direction in _DIRECTIONS:
            self._settle(direction, self._resume_level(direction))

    def set_min_share(self, min_share: int) -> None:
        self.min_share = min_share
        for direction in _DIRECTIONS:
            self._settle(direction, self._resume_level(direction))

    def add(self, member: M) -> None:
        self.positions[member] = len(self.members)
        self.members.append(member)

    def remove(self, member: M) -> None:
        for direction in _DIRECTIONS:
            self.withdraw(direction, member)
        index = self.positions.pop(member)
        del self.members[index]
        for position, other in enumerate(self.members[index:], index):
            self.positions[other] = position
        for side in self.sides:
            if index < side.cursor:
                side.cursor -= 1
            side.newly_granted = [m for m in side.newly_granted if m != member]

    # -- internals

    def _resume_level(self, direction: int) -> int:
        return max(self.effective_min_share(direction), 1)

    def _share(self, direction: int) -> int:
        ceiling = -(-self.available(direction) // len(self.members))
        return max(ceiling, self.effective_min_share(direction), 1)

    def _grant(self, direction: int, member: M, amount: int) -> None:
        side = self.sides[direction]
        side.granted[member] = amount
        side.reserved_by[member] = amount
        side.reserved += amount
        if self.available(direction) <= 0:
            side.suspended = True

    def _settle(self, direction: int, resume_at: int) -> None:
        side = self.sides[direction]
        available = self.available(direction)
        if available <= 0:
            side.suspended = True
        elif side.suspended and available >= resume_at:
            side.suspended = False
        if not side.suspended and side.waiting:
            self._dispatch(direction)

    def _dispatch(self, direction: int) -> None:
        """Serve the waiters one share each, fairly, until the bucket is spent."""
        side = self.sides[direction]
        members = self.members
        count = len(members)
        share = self._share(direction)
        start = self.rng.randrange(count) if self.rng is not None else side.cursor % count
        for step in range(count):
            index = (start + step) % count
            member = members[index]
            if member not in side.waiting:
                continue
            side.waiting.discard(member)
            side.newly_granted.append(member)
            side.cursor = index + 1
            self._grant(direction, member, share)
            if side.suspended:
                return


# ---------------------------------------------------------------------- the Trio side


@final
@dataclass(frozen=True, slots=True)
class RateLimitedStreamStatistics:
    """A snapshot of a :class:`RateLimitedStream`, from its ``statistics()``.

    Attributes:
      bytes_read: bytes received through the stream.
      bytes_written: bytes sent through the stream (charged: see ``send_all``).
      read_limit: the stream's own read bucket (:data:`RATE_LIMIT_MAX` without a limit).
      write_limit: the stream's own write bucket.
      max_to_read: what the next read may take, counting the group's share.
      max_to_write: what the next write may take.
      config: the stream's own limit, or ``None``.
      in_group: whether the stream is in a :class:`RateLimitGroup`.
      read_waits: how many receives had to wait for tokens.
      write_waits: how many sends (or pieces of one) had to wait for tokens.
    """

    bytes_read: int
    bytes_written: int
    read_limit: int
    write_limit: int
    max_to_read: int
    max_to_write: int
    config: TokenBucketConfig | None
    in_group: bool
    read_waits: int
    write_waits: int


class RateLimitedStream(trio.abc.Stream):
    """A Trio stream that moves no more bytes than its token buckets allow.

    ``RateLimitedStream(transport, config)`` returns a
    :class:`HalfCloseableRateLimitedStream` (which adds ``send_eof``) exactly when
    *transport* is a :class:`trio.abc.HalfCloseableStream`.

    A receive asks the transport for at most what the limits allow right now, waiting
    for a refill when that is nothing; a send goes out in pieces that each fit the
    tokens. When the stream is in a :class:`RateLimitGroup`, the group's grant limits it
    too: the smaller of the two applies. Bytes are charged when they have moved, so a
    cancelled wait costs nothing.

    Args:
      transport: the stream to wrap; the rate-limited stream owns it from now on.
      config: the stream's own limit, or ``None`` for none (a group can still limit it).

    Must be created inside a Trio run: the buckets start at :func:`trio.current_time`.
    """

    transport_stream: trio.abc.Stream
    """The stream this one wraps."""

    # The constructor is __new__ alone (no __init__), so that type checkers see which
    # class it returns.
    @overload
    def __new__(
        cls, transport: trio.abc.HalfCloseableStream, config: TokenBucketConfig | None = None
    ) -> HalfCloseableRateLimitedStream: ...
    @overload
    def __new__(
        cls, transport: trio.abc.Stream, config: TokenBucketConfig | None = None
    ) -> RateLimitedStream: ...
    def __new__(
        cls, transport: trio.abc.Stream, config: TokenBucketConfig | None = None
    ) -> RateLimitedStream:
        cls = half_closeable_class(
            cls, RateLimitedStream, HalfCloseableRateLimitedStream, transport
        )
        self = super().__new__(cls)
        self._setup(transport, config)
        return self

    def _setup(self, transport: trio.abc.Stream, config: TokenBucketConfig | None) -> None:
        self.transport_stream = transport
        self._bucket = None if config is None else _TokenBucket(config, trio.current_time())
        self._group: RateLimitGroup | None = None
        self._lots = (ParkingLot(), ParkingLot())  # tasks waiting for tokens, per direction
        self._moved = [0, 0]
        self._waits = [0, 0]
        self._sock = stdlib_socket(transport) if isinstance(transport, trio.SocketStream) else None
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")
        self._send_conflict = ConflictDetector("another task is sending on this stream")
        self._closed = False
        self._eof_sent = False

    def __repr__(self) -> str:
        config = self._bucket.config if self._bucket is not None else None
        group = " grouped" if self._group is not None else ""
        return f"<{type(self).__name__} {config}{group} over {self.transport_stream!r}>"

    # ------------------------------------------------------------------ limits

    @property
    def config(self) -> TokenBucketConfig | None:
        """The stream's own limit, or ``None``."""
        return None if self._bucket is None else self._bucket.config

    @property
    def group(self) -> RateLimitGroup | None:
        """The :class:`RateLimitGroup` the stream is in, or ``None``."""
        return self._group

    def set_config(self, config: TokenBucketConfig | None) -> None:
        """Set, change or (with ``None``) remove the stream's own limit
        (``bufferevent_set_rate_limit``).

        A new limit starts with one tick of tokens. Changing a limit keeps the buckets,
        only clipping them down to the new bursts: the bytes of this tick stay spent.
        Waiting tasks look again at once.
        """
        if config is None:
            self._bucket = None
        elif self._bucket is None:
            self._bucket = _TokenBucket(config, trio.current_time())
        else:
            self._bucket.reconfigure(config, trio.current_time())
        self._wake_all()

    @property
    def read_limit(self) -> int:
        """The tokens in the stream's own read bucket now (``bufferevent_get_read_limit``).

        Negative after taking more than it held (see :meth:`decrement_read`);
        :data:`RATE_LIMIT_MAX` when the stream has no limit of its own.
        """
        return self._own_limit(_READ)

    @property
    def write_limit(self) -> int:
        """The tokens in the stream's own write bucket now (``bufferevent_get_write_limit``)."""
        return self._own_limit(_WRITE)

    @property
    def max_to_read(self) -> int:
        """How many bytes a receive could take now (``bufferevent_get_max_to_read``).

        The smaller of the stream's tokens and its group's share; 0 when either is
        exhausted; :data:`RATE_LIMIT_MAX` when nothing limits the stream.
        """
        return self._max_to(_READ)

    @property
    def max_to_write(self) -> int:
        """How many bytes a send could take now (``bufferevent_get_max_to_write``)."""
        return self._max_to(_WRITE)

    def decrement_read(self, amount: int) -> None:
        """Take *amount* tokens from the read bucket (``bufferevent_decrement_read_limit``).

        A negative *amount* adds tokens. The bucket may go negative: reading then waits
        until refills bring it above zero.

        Raises:
          RuntimeError: the stream has no limit of its own.
          TypeError, ValueError: *amount* is not an ``int`` within
            ±:data:`RATE_LIMIT_MAX`.
        """
        self._decrement(_READ, amount)

    def decrement_write(self, amount: int) -> None:
        """Take *amount* tokens from the write bucket (``bufferevent_decrement_write_limit``).

        The same rules as :meth:`decrement_read`.
        """
        self._decrement(_WRITE, amount)

    def statistics(self) -> RateLimitedStreamStatistics:
        """A snapshot of the stream's counters and limits."""
        return RateLimitedStreamStatistics(
            bytes_read=self._moved[_READ],
            bytes_written=self._moved[_WRITE],
            read_limit=self.read_limit,
            write_limit=self.write_limit,
            max_to_read=self.max_to_read,
            max_to_write=self.max_to_write,
            config=self.config,
            in_group=self._group is not None,
            read_waits=self._waits[_READ],
            write_waits=self._waits[_WRITE],
        )

    # ------------------------------------------------------------------ receiving

    @override
    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """Receive at most *max_bytes* bytes, and no more than the limits allow now.

        Waits for a refill while the limits allow nothing. With no limit at all, the
        call goes straight to the transport.

        Raises:
          trio.BusyResourceError: another task is receiving.
          trio.ClosedResourceError: this stream was closed (also while waiting).
          trio.BrokenResourceError: the transport failed.
          TypeError, ValueError: *max_bytes* is not an integer >= 1.

        Cancellation: safe. Bytes are charged only when the transport returned them, so
        a cancelled receive costs no tokens and loses no data.
        """
        with self._receive_conflict:
            if max_bytes is not None:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError("max_bytes must be >= 1")
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if self._bucket is None and self._group is None:
                data = await self.transport_stream.receive_some(max_bytes)
                self._moved[_READ] += len(data)
                return data
            limit, _ = await self._acquire(_READ)
            data = b""
            try:
                data = await self.transport_stream.receive_some(
                    min(limit, max_bytes or _RECEIVE_SIZE)
                )
            finally:
                self._charge(_READ, len(data))
            return data

    # ------------------------------------------------------------------ sending

    @override
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of *data*, in pieces that each fit the limits, waiting for refills.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed, or ``send_eof`` was called.
          trio.BrokenResourceError: the transport failed.

        Cancellation: as Trio's ``send_all``: some of *data* may have been sent. Waiting
        for tokens costs nothing when cancelled. Over a :class:`trio.SocketStream` the
        stream writes to the socket itself and charges exactly the bytes the kernel
        took; over another transport, a piece whose ``send_all`` was interrupted is
        charged in full, since it may have left.
        """
        with self._send_conflict:
            self._check_sendable()
            if self._bucket is None and self._group is None:
                await self.transport_stream.send_all(data)
                self._moved[_WRITE] += len(data) if type(data) is bytes else _nbytes(data)
                return
            view = memoryview(data).cast("B")
            if not view:
                await checkpoint()
            elif self._sock is None:
                await self._send_through(view)
            else:
                await self._send_socket(self._sock, view)

    @override
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the limits allow some bytes and the transport might take them.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed, or ``send_eof`` was called.
          trio.BrokenResourceError: the transport failed.

        Cancellation: safe.
        """
        with self._send_conflict:
            self._check_sendable()
            while self._max_to(_WRITE) <= 0:
                self._check_sendable()
                await self._park(_WRITE, self._next_refill())
            await self.transport_stream.wait_send_all_might_not_block()

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """Pass a flush down to the transport (the stream holds no bytes of its own).

        A transport with ``flush(mode)`` gets the same call; otherwise ``FINISHED``
        ends the sending direction (``send_eof``) and the other modes only checkpoint.
        Bytes a transport's flush emits were charged when they passed this stream.

        Raises:
          TypeError: ``FINISHED`` on a transport that can neither half-close nor flush.
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed.

        Cancellation: as the transport's flush or ``send_eof``.
        """
        transport = self.transport_stream
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if isinstance(transport, SupportsFlush):
                if mode is FlushMode.FINISHED:
                    self._eof_sent = True
                await transport.flush(mode)
            elif mode is not FlushMode.FINISHED:
                await checkpoint()
            elif isinstance(transport, trio.abc.HalfCloseableStream):
                self._eof_sent = True
                await transport.send_eof()
            else:
                raise TypeError(f"{transport!r} cannot half-close or flush(FINISHED)")

    @override
    async def aclose(self) -> None:
        """Close the stream and its transport, and leave its group.

        Tasks waiting for tokens wake with :exc:`trio.ClosedResourceError`. Idempotent.

        Cancellation: the stream is closed anyway (the transport's close decides
        whether it was graceful).
        """
        if self._closed:
            await checkpoint()
            return
        self._closed = True
        if self._group is not None:
            self._group.remove(self)
        self._wake_all()
        await self.transport_stream.aclose()

    # ------------------------------------------------------------------ internals

    def _own_limit(self, direction: int) -> int:
        if self._bucket is None:
            return RATE_LIMIT_MAX
        return self._bucket.tokens(direction, trio.current_time())

    def _max_to(self, direction: int) -> int:
        limit = max(self._own_limit(direction), 0)
        if self._group is not None:
            limit = min(limit, self._group._share(direction))
        return limit

    def _next_refill(self) -> float:
        """The next refill of any limit on the stream (when to look again)."""
        now = trio.current_time()
        refills = [] if self._bucket is None else [self._bucket.next_refill(now)]
        if self._group is not None:
            refills.append(self._group._core.next_refill(now))
        return min(refills, default=now)

    def _decrement(self, direction: int, amount: int) -> None:
        amount = _check_amount("amount", amount, low=-RATE_LIMIT_MAX)
        if self._bucket is None:
            raise RuntimeError("the stream has no rate limit of its own: set_config() first")
        self._bucket.update(trio.current_time())
        self._bucket.consume(direction, amount)
        self._lots[direction].unpark_all()

    def _wake_all(self) -> None:
        for lot in self._lots:
            lot.unpark_all()

    def _check_sendable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called: cannot send more")

    async def _park(self, direction: int, deadline: float) -> None:
        """Wait until woken or *deadline* (a refill), then check the stream is open."""
        with trio.move_on_at(deadline):
            await self._lots[direction].park()
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")

    async def _acquire(self, direction: int) -> tuple[int, bool]:
        """Wait until the limits let bytes through; return how many, and whether it waited.

        On return the stream may hold a group grant, which :meth:`_charge` gives back.
        """
        waited = False
        try:
            while True:
                now = trio.current_time()
                bucket, group = self._bucket, self._group
                own = RATE_LIMIT_MAX if bucket is None else bucket.tokens(direction, now)
                if own <= 0:
                    assert bucket is not None
                    if group is not None:
                        group._withdraw(direction, self)
                    deadline = bucket.next_refill(now)
                elif group is None:
                    return own, waited
                elif grant := group._acquire(direction, self, now):
                    return min(own, grant), waited
                else:
                    deadline = group._core.next_refill(now)
                if not waited:
                    self._waits[direction] += 1
                    waited = True
                await self._park(direction, deadline)
        except BaseException:
            if self._group is not None:
                self._group._withdraw(direction, self)
            raise

    def _charge(self, direction: int, used: int) -> None:
        """Account for *used* bytes moved, and give back any group grant."""
        self._moved[direction] += used
        if self._bucket is not None:
            self._bucket.consume(direction, used)
        if self._group is not None:
            self._group._release(direction, self, used)

    async def _send_through(self, view: memoryview) -> None:
        transport = self.transport_stream
        while view:
            limit, _ = await self._acquire(_WRITE)
            piece = view[:limit]
            try:
                await transport.send_all(piece)
            finally:  # sent, or interrupted after perhaps sending some: charge it all
                self._charge(_WRITE, len(piece))
            view = view[len(piece) :]

    async def _send_socket(self, sock: socket.socket, view: memoryview) -> None:
        """Write to the socket directly, so that exactly the bytes sent are charged."""
        await checkpoint_if_cancelled()
        yielded = False
        while view:
            limit, waited = await self._acquire(_WRITE)
            yielded = yielded or waited
            piece = view[:limit]
            sent = 0
            try:
                while sent < len(piece):
                    try:
                        sent += sock.send(piece[sent:])
                    except BlockingIOError:
                        await wait_writable(sock)
                        yielded = True
                    except OSError as exc:
                        raise stream_error(exc) from exc
            finally:
                self._charge(_WRITE, sent)
            view = view[sent:]
        if not yielded:
            await cancel_shielded_checkpoint()


@final
class HalfCloseableRateLimitedStream(RateLimitedStream, trio.abc.HalfCloseableStream):
    """A :class:`RateLimitedStream` over a half-closeable transport (TCP, pairs, ...).

    You never create one by name: ``RateLimitedStream(transport, config)`` returns this
    class when *transport* is a :class:`trio.abc.HalfCloseableStream`.
    """

    @override
    async def send_eof(self) -> None:
        """End the sending direction (the transport's ``send_eof``); idempotent.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError: the transport failed.

        Cancellation: as the transport's ``send_eof``.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            self._eof_sent = True
            transport = self.transport_stream
            assert isinstance(transport, trio.abc.HalfCloseableStream)
            await transport.send_eof()


def _nbytes(data: bytes | bytearray | memoryview) -> int:
    return memoryview(data).nbytes


# ---------------------------------------------------------------------- groups


@final
@dataclass(frozen=True, slots=True)
class RateLimitGroupStatistics:
    """A snapshot of a :class:`RateLimitGroup`, from its ``statistics()``.

    Attributes:
      members: how many streams are in the group.
      read_limit: the group's read bucket (negative when overdrawn).
      write_limit: the group's write bucket.
      borrowed_read_tokens: read grants handed out this tick and not yet used.
      borrowed_write_tokens: write grants handed out this tick and not yet used.
      tasks_waiting_to_read: members waiting for a read grant.
      tasks_waiting_to_write: members waiting for a write grant.
      total_read: bytes read through the group since the last ``reset_totals()``.
      total_written: bytes written through the group since then.
      min_share: the smallest grant, as configured.
      config: the group's limit.
    """

    members: int
    read_limit: int
    write_limit: int
    borrowed_read_tokens: int
    borrowed_write_tokens: int
    tasks_waiting_to_read: int
    tasks_waiting_to_write: int
    total_read: int
    total_written: int
    min_share: int
    config: TokenBucketConfig


@final
class RateLimitGroup:
    """A limit shared by many :class:`RateLimitedStream` s, like a
    :class:`trio.CapacityLimiter` for bytes per tick (``bufferevent_rate_limit_group``).

    Each time a member reads or writes it is granted
    ``max(ceil(bucket / members), min_share)`` bytes (less if its own limit is
    smaller); the group's bucket may go negative through the last grant of a tick, and
    then members wait for the next refill. Waiting members are served in a fair order:
    round-robin over the members in the order they were added, or, with *rng*, from
    a member drawn at random each round (libevent's way).

    Args:
      config: the group's rates and bursts.
      min_share: the smallest grant, so that a tight group sends fewer, larger
        pieces (``bufferevent_rate_limit_group_set_min_share``); 0 disables it.
      rng: a :class:`random.Random` to draw each round's first member from; ``None``
        for round-robin.

    Raises:
      TypeError, ValueError: *min_share* is not an ``int`` from 0 to
        :data:`RATE_LIMIT_MAX`.

    Must be created inside a Trio run: the buckets start at :func:`trio.current_time`.
    """

    def __init__(
        self,
        config: TokenBucketConfig,
        *,
        min_share: int = DEFAULT_MIN_SHARE,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(config, TokenBucketConfig):
            raise TypeError(f"config must be a TokenBucketConfig, not {type(config).__name__}")
        self._core: _GroupCore[RateLimitedStream] = _GroupCore(
            config,
            trio.current_time(),
            min_share=_check_amount("min_share", min_share, low=0),
            rng=rng,
        )

    def __repr__(self) -> str:
        return f"<RateLimitGroup {self.config} members={len(self._core.members)}>"

    @property
    def config(self) -> TokenBucketConfig:
        """The group's limit."""
        return self._core.bucket.config

    @property
    def min_share(self) -> int:
        """The smallest grant, as configured (a grant never exceeds one tick's rate)."""
        return self._core.min_share

    @property
    def members(self) -> tuple[RateLimitedStream, ...]:
        """The streams in the group, in the order they were added."""
        return tuple(self._core.members)

    def add(self, stream: RateLimitedStream) -> None:
        """Put *stream* in the group (``bufferevent_add_to_rate_limit_group``).

        The stream's own limit, if any, still applies: the smaller of the two wins. It
        stays a member (and counts in every share) until removed or closed.

        Raises:
          RateLimitGroupError: *stream* is already in a group (this one or another).
          TypeError: *stream* is not a :class:`RateLimitedStream`.
          trio.ClosedResourceError: *stream* is closed.
        """
        if not isinstance(stream, RateLimitedStream):
            raise TypeError(f"only a RateLimitedStream can join a group, not {stream!r}")
        if stream._group is not None:
            where = "this group" if stream._group is self else "another group"
            raise RateLimitGroupError(
                f"{stream!r} is already in {where}", stream=stream, group=stream._group
            )
        if stream._closed:
            raise trio.ClosedResourceError("a closed stream cannot join a group")
        self._core.add(stream)
        stream._group = self
        stream._wake_all()

    def remove(self, stream: RateLimitedStream) -> None:
        """Take *stream* out of the group (``bufferevent_remove_from_rate_limit_group``).

        A grant it holds goes back to the group; its waiting tasks look again at once.

        Raises:
          RateLimitGroupError: *stream* is not in this group.
        """
        if stream._group is not self:
            raise RateLimitGroupError(
                f"{stream!r} is not in this group", stream=stream, group=stream._group
            )
        self._core.remove(stream)
        stream._group = None
        self._wake()
        stream._wake_all()

    def set_config(self, config: TokenBucketConfig) -> None:
        """Change the group's limit (``bufferevent_rate_limit_group_set_cfg``).

        The buckets are only ever clipped down to the new bursts: the bytes already
        moved this tick stay spent.
        """
        if not isinstance(config, TokenBucketConfig):
            raise TypeError(f"config must be a TokenBucketConfig, not {type(config).__name__}")
        self._core.set_config(config, trio.current_time())
        self._wake()

    def set_min_share(self, min_share: int) -> None:
        """Change the smallest grant (``bufferevent_rate_limit_group_set_min_share``).

        Raises:
          TypeError, ValueError: *min_share* is not an ``int`` from 0 to
            :data:`RATE_LIMIT_MAX`.
        """
        self._core.set_min_share(_check_amount("min_share", min_share, low=0))
        self._wake()

    @property
    def read_limit(self) -> int:
        """The group's read bucket now (``bufferevent_rate_limit_group_get_read_limit``)."""
        return self._limit(_READ)

    @property
    def write_limit(self) -> int:
        """The group's write bucket now (``..._group_get_write_limit``)."""
        return self._limit(_WRITE)

    def decrement_read(self, amount: int) -> None:
        """Take *amount* tokens from the group's read bucket; negative adds
        (``bufferevent_rate_limit_group_decrement_read``).

        Raises:
          TypeError, ValueError: *amount* is not an ``int`` within ±:data:`RATE_LIMIT_MAX`.
        """
        self._decrement(_READ, amount)

    def decrement_write(self, amount: int) -> None:
        """Take *amount* tokens from the group's write bucket; negative adds
        (``bufferevent_rate_limit_group_decrement_write``).

        Raises:
          TypeError, ValueError: *amount* is not an ``int`` within ±:data:`RATE_LIMIT_MAX`.
        """
        self._decrement(_WRITE, amount)

    def totals(self) -> tuple[int, int]:
        """Bytes ``(read, written)`` through the group since it was made or last reset
        (``bufferevent_rate_limit_group_get_totals``)."""
        read, write = self._core.sides
        return read.total, write.total

    def reset_totals(self) -> None:
        """Start :meth:`totals` from zero (``bufferevent_rate_limit_group_reset_totals``)."""
        for side in self._core.sides:
            side.total = 0

    def statistics(self) -> RateLimitGroupStatistics:
        """A snapshot of the group's buckets, grants, waiters and totals."""
        core = self._core
        core.update(trio.current_time())
        self._wake()
        read, write = core.sides
        return RateLimitGroupStatistics(
            members=len(core.members),
            read_limit=core.bucket.buckets[_READ].tokens,
            write_limit=core.bucket.buckets[_WRITE].tokens,
            borrowed_read_tokens=read.reserved,
            borrowed_write_tokens=write.reserved,
            tasks_waiting_to_read=len(read.waiting),
            tasks_waiting_to_write=len(write.waiting),
            total_read=read.total,
            total_written=write.total,
            min_share=core.min_share,
            config=core.bucket.config,
        )

    # -- for the members

    def _limit(self, direction: int) -> int:
        self._core.update(trio.current_time())
        self._wake()
        return self._core.bucket.buckets[direction].tokens

    def _decrement(self, direction: int, amount: int) -> None:
        amount = _check_amount("amount", amount, low=-RATE_LIMIT_MAX)
        self._core.update(trio.current_time())
        self._core.decrement(direction, amount)
        self._wake()

    def _share(self, direction: int) -> int:
        share = self._core.share(direction, trio.current_time())
        self._wake()
        return share

    def _acquire(self, direction: int, member: RateLimitedStream, now: float) -> int:
        grant = self._core.acquire(direction, member, now)
        self._wake()
        return grant

    def _release(self, direction: int, member: RateLimitedStream, used: int) -> None:
        self._core.release(direction, member, used)
        self._wake()

    def _withdraw(self, direction: int, member: RateLimitedStream) -> None:
        self._core.withdraw(direction, member)
        self._wake()

    def _wake(self) -> None:
        """Wake the members the last change granted tokens to."""
        for direction, side in enumerate(self._core.sides):
            if side.newly_granted:
                for member in self._core.take_granted(direction):
                    member._lots[direction].unpark_all()
