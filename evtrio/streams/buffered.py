"""`BufferedStream`: libevent's bufferevent as a Trio stream.

A :class:`BufferedStream` wraps any Trio stream with an input and an output
:class:`~evtrio.Buffer`, watermarks, read/write timeouts, line and delimiter reads, and
(in background mode) libevent's read-ahead, write-behind and event notifications.

Two ways to run one:

* **Pull mode** — ``BufferedStream(transport, ...)``: no background tasks. Bytes are read
  from the transport when a receive method needs them; ``send_all`` writes through (it
  returns once the transport has taken everything), and bytes queued with ``write()``
  leave on the next ``drain()``, ``send_all()``, ``send_eof()`` or ``aclose()``.
* **Background mode** — ``async with open_buffered_stream(transport, ...)``, or
  :func:`start_buffered_stream` with your nursery: a reader task fills the input buffer
  up to the read high watermark and a writer task flushes the output continuously, so
  ``send_all`` may return as soon as its bytes are queued (write-behind, up to the write
  high watermark). The bufferevent events are delivered by :meth:`BufferedStream.events`
  and, for ported code, :meth:`BufferedStream.run_callbacks`.

When the transport is a :class:`trio.SocketStream`, the stream talks to the socket
directly (non-blocking ``recv``/``send``/``sendmsg``/``sendfile``, waiting with
``trio.lowlevel.wait_readable``/``wait_writable`` only when the kernel says "not now"),
taking one scheduler round trip per operation.
"""

from __future__ import annotations

__all__ = (
    "BEV",
    "BufferedStream",
    "BufferedStreamStatistics",
    "HalfCloseableBufferedStream",
    "StreamEvent",
    "Watermarks",
    "open_buffered_stream",
    "start_buffered_stream",
)

import enum
import inspect
import operator
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, final, overload

import trio
from trio.lowlevel import (
    ParkingLot,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
    wait_readable,
    wait_writable,
)
from typing_extensions import override

from .._util import ConflictDetector, byte_view, half_closeable_class, stream_error
from ..buffer import EOL, Buffer
from ..errors import (
    DelimiterNotFoundError,
    IncompleteReadError,
    ReadTimeoutError,
    WriteBufferFullError,
    WriteTimeoutError,
)
from ._socket import stdlib_socket
from .flush import FlushMode, SupportsFlush

if TYPE_CHECKING:
    import socket
    from collections.abc import AsyncIterator, Callable
    from typing import Self

    from typing_extensions import Buffer as BytesLike

    from ..buffer import BufferChange


DEFAULT_READ_HIGH: Final = 256 * 1024
"""The default read high watermark: the most the input buffer holds."""

DEFAULT_MAX_LINE: Final = 64 * 1024
"""The default limit for one line or delimited record (never above read high)."""

_RECV_SIZE: Final = 64 * 1024
"""The most bytes asked of the transport by one read."""

_SEND_SIZE: Final = 256 * 1024
"""The most bytes handed to a generic transport's ``send_all`` at once."""


class BEV(enum.Flag):
    """What happened, in a :class:`StreamEvent` (libevent's ``BEV_EVENT_*`` flags).

    ``READING``/``WRITING`` say which direction an ``EOF``, ``ERROR`` or ``TIMEOUT``
    concerns. ``READ`` and ``WRITE`` are the read and write callbacks of libevent.
    """

    READING = 0x01
    """The event concerns the reading direction."""
    WRITING = 0x02
    """The event concerns the writing direction."""
    EOF = 0x10
    """The peer finished sending."""
    ERROR = 0x20
    """The transport failed; :attr:`StreamEvent.error` says how."""
    TIMEOUT = 0x40
    """The read or write timeout expired; that direction is paused."""
    CONNECTED = 0x80
    """The stream is up: the first event of every background stream."""
    READ = 0x100
    """The input buffer reached the read low watermark (the read callback)."""
    WRITE = 0x200
    """The output buffer drained to the write low watermark (the write callback)."""


@final
@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One notification from a background :class:`BufferedStream`.

    Attributes:
      what: the :class:`BEV` flags.
      error: the exception behind an ``ERROR`` or ``TIMEOUT`` event, else ``None``.
    """

    what: BEV
    error: BaseException | None = None


@final
@dataclass(frozen=True, slots=True)
class Watermarks:
    """The four watermarks of a :class:`BufferedStream`, in bytes.

    Attributes:
      read_low: input level that triggers ``READ`` events; the default target of
        :meth:`~BufferedStream.receive_at_least`.
      read_high: the most the input buffer holds; reading stops there.
      write_low: the level :meth:`~BufferedStream.drain` waits for, and below which
        ``WRITE`` events fire.
      write_high: how much may be queued in the output buffer before sending waits;
        0 means write-through.
    """

    read_low: int
    read_high: int
    write_low: int
    write_high: int


@final
@dataclass(frozen=True, slots=True)
class BufferedStreamStatistics:
    """A snapshot of a :class:`BufferedStream`.

    Attributes:
      bytes_read: bytes received from the transport so far.
      bytes_written: bytes the transport has taken so far.
      input_buffered: bytes waiting in the input buffer.
      output_buffered: bytes waiting in the output buffer.
      discarded: queued output dropped because the stream was closed forcefully or the
        connection broke.
      watermarks: the current watermarks.
      background: whether background tasks read and write.
      reading: whether reading is enabled (not paused).
      state: ``"open"``, ``"eof"`` (the peer finished), ``"broken"`` or ``"closed"``.
    """

    bytes_read: int
    bytes_written: int
    input_buffered: int
    output_buffered: int
    discarded: int
    watermarks: Watermarks
    background: bool
    reading: bool
    state: Literal["open", "eof", "broken", "closed"]


class _EventQueue:
    """A bounded queue of :class:`StreamEvent` that coalesces repeats; an async iterator.

    An event whose ``what`` is already waiting is dropped, so the queue never holds more
    than one event of each kind and a slow consumer costs neither memory nor the
    reader's progress (as libevent's deferred callbacks do).
    """

    __slots__ = ("_closed", "_lot", "_pending")

    def __init__(self) -> None:
        self._pending: deque[StreamEvent] = deque()
        self._lot = ParkingLot()
        self._closed = False

    def put(self, event: StreamEvent) -> None:
        if self._closed or any(pending.what == event.what for pending in self._pending):
            return
        self._pending.append(event)
        self._lot.unpark_all()

    def close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def __aiter__(self) -> _EventQueue:
        return self

    async def __anext__(self) -> StreamEvent:
        await checkpoint_if_cancelled()
        parked = False
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()
            parked = True
        if not parked:
            await cancel_shielded_checkpoint()
        return self._pending.popleft()


class BufferedStream(trio.abc.Stream):
    """A Trio stream with input and output buffers, watermarks and timeouts.

    ``BufferedStream(transport)`` returns a :class:`HalfCloseableBufferedStream`
    (which adds :meth:`~HalfCloseableBufferedStream.send_eof`) exactly when *transport*
    is a :class:`trio.abc.HalfCloseableStream`. TLS streams are not: a TLS close_notify
    closes both directions.

    Args:
      transport: the stream to wrap; the buffered stream owns it from now on.
      read_timeout: seconds without progress while waiting to read before
        :class:`~evtrio.errors.ReadTimeoutError`; ``None`` for no limit.
      write_timeout: the same for writing (:class:`~evtrio.errors.WriteTimeoutError`).
      read_low, read_high, write_low, write_high: the :class:`Watermarks`.

    Raises:
      ValueError: inconsistent watermarks or a negative timeout.

    A stream is used by one task per direction: a second task receiving (or sending)
    while one is busy gets :exc:`trio.BusyResourceError`. Every receive method keeps
    unconsumed bytes in :attr:`input` when it fails or is cancelled: no byte is ever
    lost or duplicated.
    """

    @overload
    def __new__(
        cls,
        transport: trio.abc.HalfCloseableStream,
        *,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        read_low: int = 0,
        read_high: int = DEFAULT_READ_HIGH,
        write_low: int = 0,
        write_high: int = 0,
    ) -> HalfCloseableBufferedStream: ...
    @overload
    def __new__(
        cls,
        transport: trio.abc.Stream,
        *,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        read_low: int = 0,
        read_high: int = DEFAULT_READ_HIGH,
        write_low: int = 0,
        write_high: int = 0,
    ) -> BufferedStream: ...
    def __new__(cls, transport: trio.abc.Stream, **options: Any) -> BufferedStream:
        cls = half_closeable_class(cls, BufferedStream, HalfCloseableBufferedStream, transport)
        self = super().__new__(cls)
        self._setup(transport, **options)
        return self

    # Construction happens in __new__ alone: with an __init__ as well, type checkers
    # would ignore the overloads above and type every stream as a plain BufferedStream.
    def _setup(
        self,
        transport: trio.abc.Stream,
        *,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        read_low: int = 0,
        read_high: int = DEFAULT_READ_HIGH,
        write_low: int = 0,
        write_high: int = 0,
    ) -> None:
        self.transport_stream = transport
        """The stream this one wraps."""
        self.input = Buffer()
        """Bytes received and not yet consumed (``bufferevent_get_input``)."""
        self.output = Buffer()
        """Bytes queued and not yet taken by the transport (``bufferevent_get_output``)."""
        self._read_timeout = _check_timeout(read_timeout)
        self._write_timeout = _check_timeout(write_timeout)
        self._sock = stdlib_socket(transport) if isinstance(transport, trio.SocketStream) else None
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")
        self._send_conflict = ConflictDetector("another task is sending on this stream")
        self._closed = False
        self._eof = False  # the transport said EOF; bytes may still be in input
        self._eof_sent = False
        self._read_error: BaseException | None = None  # sticky: the reader failed
        self._write_error: BaseException | None = None  # sticky: the writer failed
        self._read_timed_out: ReadTimeoutError | None = None
        self._paused = False
        self._bytes_read = 0
        self._bytes_written = 0
        self._discarded = 0
        # Background mode only.
        self._background = False
        self._task_scope: trio.CancelScope | None = None
        self._tasks_done = trio.Event()
        self._events = _EventQueue()
        self._input_lot = ParkingLot()  # receivers wait for input, EOF or errors
        self._output_lot = ParkingLot()  # senders wait for the output to drain
        self._writer_lot = ParkingLot()  # the writer waits for output or a flush request
        self._reader_lot = ParkingLot()  # the reader (and paused pull reads) wait for room
        self._eof_requested = False
        self._eof_done = False
        self._read_low = self._read_high = self._write_low = self._write_high = 0
        self.set_watermarks(
            read_low=read_low, read_high=read_high, write_low=write_low, write_high=write_high
        )

    def __repr__(self) -> str:
        mode = "background" if self._background else "pull"
        return (
            f"<{type(self).__name__} {mode} in={len(self.input)} out={len(self.output)}"
            f" over {self.transport_stream!r}>"
        )

    # ------------------------------------------------------------------ configuration

    @property
    def watermarks(self) -> Watermarks:
        """The current watermarks."""
        return Watermarks(self._read_low, self._read_high, self._write_low, self._write_high)

    def set_watermarks(
        self,
        *,
        read_low: int | None = None,
        read_high: int | None = None,
        write_low: int | None = None,
        write_high: int | None = None,
    ) -> None:
        """Change some watermarks (``bufferevent_setwatermark``); ``None`` keeps one.

        Raises:
          ValueError: a negative mark, ``read_high`` below 1, or a low mark above its
            high mark (``write_low`` may be anything when ``write_high`` is 0, which
            means write-through).
        """
        rl = self._read_low if read_low is None else read_low
        rh = self._read_high if read_high is None else read_high
        wl = self._write_low if write_low is None else write_low
        wh = self._write_high if write_high is None else write_high
        if min(rl, rh, wl, wh) < 0 or rh < 1:
            raise ValueError("watermarks must be >= 0 and read_high >= 1")
        if rl > rh:
            raise ValueError(f"read_low={rl} is above read_high={rh}")
        if wh and wl > wh:
            raise ValueError(f"write_low={wl} is above write_high={wh}")
        self._read_low, self._read_high, self._write_low, self._write_high = rl, rh, wl, wh
        self._reader_lot.unpark_all()  # more room, perhaps
        self._output_lot.unpark_all()

    @property
    def read_timeout(self) -> float | None:
        """Seconds of waiting to read before :class:`~evtrio.errors.ReadTimeoutError`."""
        return self._read_timeout

    @read_timeout.setter
    def read_timeout(self, value: float | None) -> None:
        self._read_timeout = _check_timeout(value)

    @property
    def write_timeout(self) -> float | None:
        """Seconds of waiting to write before :class:`~evtrio.errors.WriteTimeoutError`."""
        return self._write_timeout

    @write_timeout.setter
    def write_timeout(self, value: float | None) -> None:
        self._write_timeout = _check_timeout(value)

    @property
    def reading(self) -> bool:
        """Whether reading from the transport is enabled (see :meth:`pause_reading`)."""
        return not self._paused

    def pause_reading(self) -> None:
        """Stop reading from the transport (``bufferevent_disable(EV_READ)``).

        Buffered bytes can still be consumed; receive methods that need more wait until
        :meth:`resume_reading`. The peer feels backpressure once the kernel buffers fill.
        """
        self._paused = True

    def resume_reading(self) -> None:
        """Read from the transport again (``bufferevent_enable(EV_READ)``).

        Also clears a read timeout, which pauses reading as in libevent.
        """
        self._paused = False
        self._read_timed_out = None
        self._reader_lot.unpark_all()

    def statistics(self) -> BufferedStreamStatistics:
        """A snapshot of counters, buffer levels, watermarks and state."""
        state: Literal["open", "eof", "broken", "closed"]
        if self._closed:
            state = "closed"
        elif self._read_error is not None or self._write_error is not None:
            state = "broken"
        elif self._eof:
            state = "eof"
        else:
            state = "open"
        return BufferedStreamStatistics(
            bytes_read=self._bytes_read,
            bytes_written=self._bytes_written,
            input_buffered=len(self.input),
            output_buffered=len(self.output),
            discarded=self._discarded,
            watermarks=self.watermarks,
            background=self._background,
            reading=not self._paused,
            state=state,
        )

    # ------------------------------------------------------------------ receiving

    @override
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return between 1 and *max_bytes* bytes (default: up to read high), or ``b""``
        once the peer has finished and everything buffered was consumed.

        Returns as soon as any byte is available (Trio's contract); never more than
        the read high watermark.

        Raises:
          trio.BusyResourceError: another task is receiving.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError: the transport failed.
          ReadTimeoutError: nothing arrived for ``read_timeout`` seconds.
          ValueError: *max_bytes* is below 1.

        Cancellation: safe; unconsumed bytes stay buffered.
        """
        if max_bytes is None:
            limit = self._read_high
        else:
            limit = operator.index(max_bytes)
            if limit < 1:
                raise ValueError("max_bytes must be >= 1")
            limit = min(limit, self._read_high)
        with self._receive_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            data_input = self.input
            if data_input:
                await checkpoint_if_cancelled()
                data = data_input.remove(limit)
                await cancel_shielded_checkpoint()
                return data
            sock = self._sock
            if sock is not None and not (self._background or self._eof or self._paused):
                # The common case on sockets: straight from the kernel, no buffer copy.
                return await self._recv_direct(sock, min(limit, _RECV_SIZE))
            await checkpoint_if_cancelled()
            if not await self._more():
                return b""
            return data_input.remove(limit)

    async def receive_exactly(self, n: int) -> bytes:
        """Return exactly *n* bytes.

        Raises:
          IncompleteReadError: the stream ended first; the partial bytes stay in
            :attr:`input`.
          ValueError: *n* is negative or above the read high watermark.
          trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError,
            ReadTimeoutError: as for :meth:`receive_some`.

        Cancellation: safe; bytes received so far stay buffered.
        """
        if n < 0 or n > self._read_high:
            raise ValueError(f"n must be between 0 and read_high={self._read_high}")
        with self._receive_conflict:
            self._check_receivable()
            await checkpoint_if_cancelled()
            waited = False
            while len(self.input) < n:
                waited = True
                if not await self._more():
                    raise IncompleteReadError(n, len(self.input))
            data = self.input.remove(n)
            if not waited:
                await cancel_shielded_checkpoint()
            return data

    async def receive_at_least(self, n: int | None = None) -> bytes:
        """Wait until *n* bytes (default: the read low watermark, at least 1) are
        buffered, then return everything buffered.

        At end of stream, returns what is left (possibly ``b""``).

        Raises:
          ValueError: *n* is negative or above the read high watermark.
          trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError,
            ReadTimeoutError: as for :meth:`receive_some`.

        Cancellation: safe; bytes received so far stay buffered.
        """
        target = max(self._read_low, 1) if n is None else n
        if target < 0 or target > self._read_high:
            raise ValueError(f"n must be between 0 and read_high={self._read_high}")
        with self._receive_conflict:
            self._check_receivable()
            await checkpoint_if_cancelled()
            waited = False
            while len(self.input) < target:
                waited = True
                if not await self._more():
                    break
            data = self.input.remove(len(self.input))
            if not waited:
                await cancel_shielded_checkpoint()
            return data

    async def receive_until(self, delimiter: bytes, *, max_bytes: int | None = None) -> bytes:
        """Return the bytes before *delimiter*, consuming the delimiter.

        Args:
          delimiter: a non-empty byte string; it may arrive split across reads.
          max_bytes: the most bytes allowed before the delimiter (default 64 KiB, and
            never more than read high allows).

        Raises:
          DelimiterNotFoundError: *max_bytes* bytes arrived with no delimiter after
            them; nothing is consumed.
          IncompleteReadError: the stream ended first; the bytes stay buffered.
          ValueError: an empty delimiter, or *max_bytes* too large for read high.
          trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError,
            ReadTimeoutError: as for :meth:`receive_some`.

        Cancellation: safe; bytes received so far stay buffered.
        """
        delimiter = bytes(delimiter)
        if not delimiter:
            raise ValueError("the delimiter must not be empty")
        limit = self._record_limit(max_bytes, len(delimiter))
        with self._receive_conflict:
            self._check_receivable()
            await checkpoint_if_cancelled()
            waited = False
            start = 0
            window = limit + len(delimiter)
            while (index := self.input.search(delimiter, start, window)) < 0:
                if len(self.input) >= window:
                    raise DelimiterNotFoundError(delimiter, limit)
                # Resume the search where a delimiter split across reads could begin.
                start = max(len(self.input) - len(delimiter) + 1, 0)
                waited = True
                if not await self._more():
                    raise IncompleteReadError(window, len(self.input))
            data = self.input.remove(index)
            self.input.drain(len(delimiter))
            if not waited:
                await cancel_shielded_checkpoint()
            return data

    async def readln(self, eol: EOL = EOL.CRLF, *, max_length: int | None = None) -> bytes | None:
        """Return the next line without its terminator (``bufferevent`` + ``evbuffer_readln``).

        Returns:
          The line (``b""`` for an empty one); at end of stream, a final unterminated
          line, then ``None``.

        Raises:
          LineTooLongError: the line is longer than *max_length* (default 64 KiB, never
            more than read high allows); nothing is consumed.
          ValueError: *max_length* too large for read high.
          trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError,
            ReadTimeoutError: as for :meth:`receive_some`.

        Cancellation: safe; bytes received so far stay buffered.
        """
        limit = self._record_limit(max_length, 2)
        with self._receive_conflict:
            self._check_receivable()
            await checkpoint_if_cancelled()
            waited = False
            readln = self.input.readln
            while (line := readln(eol, max_length=limit)) is None:
                waited = True
                if not await self._more():
                    line = self.input.remove(len(self.input)) or None
                    break
            if not waited:
                await cancel_shielded_checkpoint()
            return line

    async def __anext__(self) -> bytes:
        data = await self.receive_some()
        if not data:
            raise StopAsyncIteration
        return data

    def __aiter__(self) -> Self:
        return self

    # ------------------------------------------------------------------ sending

    @override
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of *data*.

        In pull mode (and in background mode with write high 0), returns once the
        transport has taken every byte. In background mode with a write high
        watermark, returns as soon as the bytes are queued (copying mutable input),
        waiting only while the output buffer is at the mark.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed, or ``send_eof`` was called.
          trio.BrokenResourceError: the transport failed (now or, with write-behind,
            earlier: the failure is sticky).
          WriteTimeoutError: the transport took nothing for ``write_timeout`` seconds.

        Cancellation: as Trio's ``send_all``: some of *data* may have been sent. Bytes
        that were queued stay queued and keep their order.
        """
        with self._send_conflict:
            if self._closed or self._eof_sent or self._write_error is not None:
                self._check_sendable()
            await checkpoint_if_cancelled()
            if self._background:
                await self._queue_background(data)
                return
            sock = self._sock
            if sock is not None and not self.output:
                size = len(data) if type(data) is bytes else memoryview(data).nbytes
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    raise stream_error(exc) from exc
                self._bytes_written += sent
                if sent == size:
                    await cancel_shielded_checkpoint()
                    return
                self._queue_rest(data, sent)
                if not await self._flush_pull(0):
                    await cancel_shielded_checkpoint()
                return
            if not self.output:
                await self._send_through(data)
                return
            self.output.add(data)
            if not await self._flush_pull(0):
                await cancel_shielded_checkpoint()

    def write(self, data: BytesLike) -> None:
        """Queue *data* in the output buffer without waiting (copying mutable input).

        In background mode the writer sends it; in pull mode it leaves on the next
        :meth:`drain`, :meth:`send_all`, ``send_eof`` or :meth:`aclose`.

        Raises:
          WriteBufferFullError: the output would go past write high (nothing queued).
          trio.ClosedResourceError: this stream was closed, or ``send_eof`` was called.
          trio.BrokenResourceError: the writer failed earlier.
        """
        self._check_sendable()
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if len(self.output) + size > self._write_high:
            raise WriteBufferFullError(self._write_high, len(self.output), size)
        self.output.add(data)

    async def drain(self) -> None:
        """Wait until the output buffer is at or below the write low watermark.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError, trio.BrokenResourceError, WriteTimeoutError: as for
            :meth:`send_all`.

        Cancellation: safe; queued bytes stay queued.
        """
        with self._send_conflict:
            self._check_drainable()
            await checkpoint_if_cancelled()
            if not await self._flush_to(self._write_low):
                await cancel_shielded_checkpoint()

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """Push queued bytes toward the peer (``bufferevent_flush``).

        ``NORMAL`` waits as :meth:`drain` does; ``FLUSH`` waits until the output
        buffer is empty, then flushes the transport too when it supports
        ``flush(mode)``; ``FINISHED`` flushes and then ends the sending direction
        (``send_eof``, or the transport's own ``FINISHED`` flush).

        Raises:
          TypeError: ``FINISHED`` on a transport that can neither half-close nor flush.
          trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError,
            WriteTimeoutError: as for :meth:`drain`.

        Cancellation: safe; queued bytes stay queued.
        """
        if mode is FlushMode.NORMAL:
            await self.drain()
            return
        transport = self.transport_stream
        with self._send_conflict:
            self._check_drainable()
            await checkpoint_if_cancelled()
            await self._flush_to(0)
            if mode is FlushMode.FINISHED and isinstance(transport, trio.abc.HalfCloseableStream):
                await self._finish_sending()
            elif isinstance(transport, SupportsFlush):
                await transport.flush(mode)
            elif mode is FlushMode.FINISHED:
                raise TypeError(f"{transport!r} cannot half-close or flush(FINISHED)")
            else:
                await cancel_shielded_checkpoint()

    @override
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until a :meth:`send_all` might not block.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError, trio.BrokenResourceError: as for :meth:`send_all`.

        Cancellation: safe.
        """
        with self._send_conflict:
            self._check_sendable()
            await checkpoint_if_cancelled()
            if self._background:
                waited = False
                while self._output_full():
                    await self._output_lot.park()
                    waited = True
                    self._check_sendable()
                if not waited:
                    await cancel_shielded_checkpoint()
                return
            await self._flush_pull(0)
            if self._sock is not None:
                await self._wait_writable(self._sock)
            else:
                await self.transport_stream.wait_send_all_might_not_block()

    async def _finish_sending(self) -> None:
        """Send EOF after everything queued (the body of ``send_eof``)."""
        if self._eof_sent:
            await checkpoint()
            return
        self._eof_sent = True
        transport = self.transport_stream
        assert isinstance(transport, trio.abc.HalfCloseableStream)
        if self._background:
            self._eof_requested = True
            self._writer_lot.unpark_all()
            while not self._eof_done:
                self._raise_write_error()
                await self._output_lot.park()
            return
        await self._flush_pull(0)
        await transport.send_eof()

    # ------------------------------------------------------------------ closing

    @override
    async def aclose(self) -> None:
        """Flush queued output, then close the stream and its transport.

        Idempotent. Tasks blocked on this stream get :exc:`trio.ClosedResourceError`.
        If the peer is gone or the close is cancelled, the queued bytes are dropped
        (counted in ``statistics().discarded``) and the stream is still closed.

        Cancellation: the stream is closed anyway (forcefully); ``Cancelled``
        propagates.
        """
        if self._closed:
            await checkpoint()
            return
        graceful = self.output and self._write_error is None and not self._send_conflict.held
        try:
            if graceful:
                with self._send_conflict:
                    await self._flush_to(0)
        except (trio.BrokenResourceError, trio.ClosedResourceError, WriteTimeoutError):
            pass
        except BaseException:
            self._close_now()
            await trio.aclose_forcefully(self.transport_stream)
            raise
        self._close_now()
        await self.transport_stream.aclose()
        if self._background:
            with trio.CancelScope(shield=True):
                await self._tasks_done.wait()

    def _close_now(self) -> None:
        """Mark closed, drop what cannot be sent, stop background tasks, wake waiters."""
        self._closed = True
        self._discarded += len(self.output)
        self.output.clear()
        if self._task_scope is not None:
            self._task_scope.cancel()
        self._events.close()
        for lot in (self._input_lot, self._output_lot, self._writer_lot, self._reader_lot):
            lot.unpark_all()

    # ------------------------------------------------------------------ background mode

    def _start_background(self, nursery: trio.Nursery) -> None:
        if self._background:
            raise RuntimeError("this stream already runs in background mode")
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        self._background = True
        # Whoever changes the buffers (this stream, or code using `input`/`output`
        # directly, as libevent code does) wakes the task that waits for that change.
        self.input.add_callback(self._input_changed)
        self.output.add_callback(self._output_changed)
        self._task_scope = trio.CancelScope()
        nursery.start_soon(self._run_tasks, name=f"{self!r} reader/writer")
        self._events.put(StreamEvent(BEV.CONNECTED))

    def _input_changed(self, change: BufferChange) -> None:
        if change.n_deleted:
            self._reader_lot.unpark_all()

    def _output_changed(self, change: BufferChange) -> None:
        if change.n_added:
            self._writer_lot.unpark_all()
        if change.n_deleted:
            self._output_lot.unpark_all()

    async def _run_tasks(self) -> None:
        try:
            with self._task_scope:  # type: ignore[union-attr]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader)
                    nursery.start_soon(self._writer)
        finally:
            self._tasks_done.set()

    async def _reader(self) -> None:
        """Fill the input buffer up to read high, as bufferevents read ahead."""
        data_input = self.input
        try:
            while True:
                while self._paused or len(data_input) >= self._read_high:
                    await self._reader_lot.park()
                try:
                    data = await self._receive_from_transport(self._read_high - len(data_input))
                except ReadTimeoutError as exc:
                    self._paused = True  # as libevent disables reading on a timeout
                    self._read_timed_out = exc
                    self._events.put(StreamEvent(BEV.TIMEOUT | BEV.READING, exc))
                    self._input_lot.unpark_all()
                    continue
                self._input_lot.unpark_all()
                if not data:
                    self._events.put(StreamEvent(BEV.EOF | BEV.READING))
                    return
                if len(data_input) >= self._read_low:
                    self._events.put(StreamEvent(BEV.READ))
        except Exception as exc:  # any transport failure ends reading; receivers see it
            if not self._closed:
                self._read_error = exc
                self._events.put(StreamEvent(BEV.ERROR | BEV.READING, exc))
                self._input_lot.unpark_all()

    async def _writer(self) -> None:
        """Flush the output buffer continuously, then send EOF when asked."""
        output = self.output
        try:
            while True:
                while not output and not (self._eof_requested and not self._eof_done):
                    await self._writer_lot.park()
                if output:
                    await self._write_step()
                    if len(output) <= self._write_low:
                        self._events.put(StreamEvent(BEV.WRITE))
                else:
                    transport = self.transport_stream
                    assert isinstance(transport, trio.abc.HalfCloseableStream)
                    await transport.send_eof()
                    self._eof_done = True
                    self._output_lot.unpark_all()
        except Exception as exc:  # any transport failure ends writing; senders see it
            if not self._closed:
                self._write_error = exc
                what = BEV.TIMEOUT if isinstance(exc, WriteTimeoutError) else BEV.ERROR
                self._events.put(StreamEvent(what | BEV.WRITING, exc))
                self._discarded += len(output)
                output.clear()
                self._output_lot.unpark_all()

    def events(self) -> AsyncIterator[StreamEvent]:
        """Iterate over the stream's :class:`StreamEvent` notifications.

        ``CONNECTED`` comes first; ``READ`` whenever the input reaches read low,
        ``WRITE`` whenever the output drains to write low, then ``EOF``, ``ERROR`` or
        ``TIMEOUT`` as they happen. Repeats of an event not yet consumed are merged,
        so a slow consumer never holds up the stream. Iteration ends when the stream
        is closed.

        Raises:
          RuntimeError: the stream is not in background mode.

        Cancellation: safe; no event is lost.
        """
        if not self._background:
            raise RuntimeError("events() needs background mode (open_buffered_stream)")
        return self._events

    async def run_callbacks(
        self,
        *,
        on_read: Callable[[BufferedStream], object] | None = None,
        on_write: Callable[[BufferedStream], object] | None = None,
        on_event: Callable[[BufferedStream, StreamEvent], object] | None = None,
    ) -> None:
        """Drive libevent-style callbacks from :meth:`events` until the stream closes.

        ``on_read(stream)`` runs when the input reaches read low, ``on_write(stream)``
        when the output drains to write low, ``on_event(stream, event)`` for the rest
        (``bufferevent_setcb``). Each may be a plain or an async function; async ones
        are awaited before the next event. Run it in a nursery, or as the body of the
        ``async with open_buffered_stream(...)`` block.

        Raises:
          RuntimeError: the stream is not in background mode.
          Exception: whatever a callback raises.

        Cancellation: safe; stops calling back.
        """
        async for event in self.events():
            if event.what is BEV.READ:
                if on_read is not None:
                    await _maybe_await(on_read(self))
            elif event.what is BEV.WRITE:
                if on_write is not None:
                    await _maybe_await(on_write(self))
            elif on_event is not None:
                await _maybe_await(on_event(self, event))

    # ------------------------------------------------------------------ internals: reading

    def _check_receivable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")

    def _record_limit(self, requested: int | None, terminator: int) -> int:
        """The limit for one line or record, which must fit under read high with its end."""
        room = self._read_high - terminator
        if requested is None:
            return max(min(DEFAULT_MAX_LINE, room), 0)
        if requested < 0 or requested > room:
            raise ValueError(
                f"the limit must be between 0 and {room} (read_high={self._read_high})"
            )
        return requested

    def _got(self, data: bytes) -> None:
        """Account for *data* read from the transport (b"" is EOF)."""
        if data:
            self._bytes_read += len(data)
        else:
            self._eof = True

    async def _more(self) -> bool:
        """Wait until more input is buffered (True) or the peer finished (False).

        Always yields at least once. Raises the reading errors.
        """
        if self._background:
            return await self._wait_for_reader()
        if self._eof:
            await checkpoint()
            return False
        # At least one byte, even if read_high was lowered below what is buffered.
        data = await self._receive_from_transport(max(self._read_high - len(self.input), 1))
        if not data:
            return False
        self.input.add(data)
        return True

    async def _wait_for_reader(self) -> bool:
        size = len(self.input)
        while True:
            timed_out = self._read_timed_out
            if timed_out is not None:
                self._read_timed_out = None
                raise timed_out
            if self._read_error is not None:
                raise trio.BrokenResourceError("the transport failed earlier") from self._read_error
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if len(self.input) > size:
                return True
            if self._eof:
                await checkpoint()
                return False
            await self._input_lot.park()
            size = min(size, len(self.input))

    async def _receive_from_transport(self, room: int) -> bytes:
        """Read up to *room* bytes from the transport, waiting as needed; b"" is EOF.

        Always yields at least once. If cancelled after bytes arrived, they are in
        :attr:`input` (and are not returned); in background mode they are buffered
        here too, so a cancel never loses them.
        """
        await self._wait_while_paused()
        size = min(room, _RECV_SIZE)
        sock = self._sock
        if sock is None:
            timeout = self._read_timeout
            if timeout is None:
                data = await self.transport_stream.receive_some(size)
            else:
                with trio.move_on_after(timeout) as scope:
                    data = await self.transport_stream.receive_some(size)
                if scope.cancelled_caught:
                    raise ReadTimeoutError(timeout)
            data = bytes(data)
            self._got(data)
            if self._background and data:
                self.input.add(data)
            return data
        data = await self._recv_direct(sock, size)
        if self._background and data:
            self.input.add(data)
        return data

    async def _recv_direct(self, sock: socket.socket, size: int) -> bytes:
        """``recv`` up to *size* bytes, waiting for readability as needed.

        One full checkpoint either way: the wait, or a checkpoint after a ``recv`` that
        found bytes at once. If that checkpoint is cancelled, the bytes go to
        :attr:`input` first, where the next receive finds them: none is ever lost.
        """
        try:
            data = sock.recv(size)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise stream_error(exc) from exc
        else:
            if data:
                self._bytes_read += len(data)
            else:
                self._eof = True
            try:
                await checkpoint()
            except BaseException:
                if data:
                    self.input.add(data)
                raise
            return data
        while True:
            if self._read_timeout is None:
                await wait_readable(sock)  # a cancel here takes nothing
            else:
                await self._wait_readable(sock)
            try:
                data = sock.recv(size)
            except BlockingIOError:
                continue  # a spurious wake-up
            except OSError as exc:
                raise stream_error(exc) from exc
            self._got(data)
            return data

    async def _wait_while_paused(self) -> None:
        while self._paused and not self._closed:
            await self._reader_lot.park()
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")

    async def _wait_readable(self, sock: socket.socket) -> None:
        timeout = self._read_timeout
        if timeout is None:
            await wait_readable(sock)
            return
        with trio.move_on_after(timeout) as scope:
            await wait_readable(sock)
        if scope.cancelled_caught:
            raise ReadTimeoutError(timeout)

    # ------------------------------------------------------------------ internals: writing

    def _check_sendable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called: cannot send more")
        self._raise_write_error()

    def _check_drainable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        self._raise_write_error()

    def _raise_write_error(self) -> None:
        error = self._write_error
        if error is not None:
            if isinstance(error, WriteTimeoutError):
                raise error
            raise trio.BrokenResourceError("the transport failed earlier") from error

    def _output_full(self) -> bool:
        high = self._write_high
        return len(self.output) >= high if high else bool(self.output)

    def _queue_rest(self, data: BytesLike, sent: int) -> None:
        """Queue what a direct send did not take; immutable ``bytes`` are not copied."""
        if type(data) is bytes:
            self.output.add_reference(memoryview(data)[sent:])
        else:
            self.output.add(memoryview(data)[sent:])

    async def _send_through(self, data: bytes | bytearray | memoryview) -> None:
        """Hand *data* to a generic transport in one ``send_all`` (pull mode)."""
        size = memoryview(data).nbytes
        timeout = self._write_timeout
        try:
            if timeout is None:
                await self.transport_stream.send_all(data)
            else:
                with trio.move_on_after(timeout) as scope:
                    await self.transport_stream.send_all(data)
                if scope.cancelled_caught:
                    raise WriteTimeoutError(timeout)
        except WriteTimeoutError as exc:
            self._write_error = exc  # Trio: a cancelled send_all leaves the transport broken
            raise
        self._bytes_written += size

    async def _flush_to(self, level: int) -> bool:
        """Wait until the output holds at most *level* bytes; True if it yielded."""
        if self._background:
            waited = False
            while len(self.output) > level:
                self._raise_write_error()
                if self._closed:
                    raise trio.ClosedResourceError("the stream is closed")
                await self._output_lot.park()
                waited = True
            self._raise_write_error()
            return waited
        return await self._flush_pull(level)

    async def _flush_pull(self, level: int) -> bool:
        """Pull mode: write the output down to *level* bytes; True if it yielded."""
        waited = False
        output = self.output
        while len(output) > level:
            await self._write_step()
            waited = True
        return waited

    async def _write_step(self) -> None:
        """Move some of the output to the transport, waiting for it if need be. Yields."""
        output = self.output
        sock = self._sock
        if sock is None:
            views = output.peek(_SEND_SIZE)
            piece = views[0] if len(views) == 1 else b"".join(views)  # one call, not many
            await self._send_through(piece)
            output.drain(len(piece))
            return
        while True:
            try:
                sent = output.write_to(sock)
            except BlockingIOError:
                await self._wait_writable(sock)
                continue
            except OSError as exc:
                raise stream_error(exc) from exc
            self._bytes_written += sent
            await cancel_shielded_checkpoint()
            return

    async def _wait_writable(self, sock: socket.socket) -> None:
        timeout = self._write_timeout
        if timeout is None:
            await wait_writable(sock)
            return
        with trio.move_on_after(timeout) as scope:
            await wait_writable(sock)
        if scope.cancelled_caught:
            raise WriteTimeoutError(timeout)

    async def _queue_background(self, data: BytesLike) -> None:
        """Background mode: queue *data* within write high, then wait as the mode says."""
        output = self.output
        high = self._write_high
        waited = False
        if type(data) is bytes and (not high or len(output) + len(data) <= high):
            output.add(data)  # the common case: zero-copy for large bytes
        else:
            view = byte_view(data)
            while view:
                room = high - len(output) if high else len(view)
                if room <= 0:
                    await self._output_lot.park()
                    waited = True
                    self._check_sendable()
                    continue
                output.add(view[:room])
                view = view[room:]
        if not high:
            waited = await self._flush_to(0) or waited
        if not waited:
            await cancel_shielded_checkpoint()


@final
class HalfCloseableBufferedStream(BufferedStream, trio.abc.HalfCloseableStream):
    """A :class:`BufferedStream` over a half-closeable transport (TCP, pairs, ...).

    You never create one by name: ``BufferedStream(transport)`` returns this class when
    *transport* is a :class:`trio.abc.HalfCloseableStream`.
    """

    @override
    async def send_eof(self) -> None:
        """Send everything queued, then end the sending direction (the peer gets EOF).

        Receiving keeps working. Idempotent.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError, WriteTimeoutError: as for :meth:`send_all`.

        Cancellation: the EOF may or may not have been sent; queued bytes stay queued.
        """
        with self._send_conflict:
            self._check_drainable()
            await checkpoint_if_cancelled()
            await self._finish_sending()


def _check_timeout(value: float | None) -> float | None:
    if value is not None and not value >= 0:
        raise ValueError(f"a timeout must be >= 0 seconds or None, not {value!r}")
    return value


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


@overload
def start_buffered_stream(
    nursery: trio.Nursery, transport: trio.abc.HalfCloseableStream, **options: Any
) -> HalfCloseableBufferedStream: ...
@overload
def start_buffered_stream(
    nursery: trio.Nursery, transport: trio.abc.Stream, **options: Any
) -> BufferedStream: ...
def start_buffered_stream(
    nursery: trio.Nursery, transport: trio.abc.Stream, **options: Any
) -> BufferedStream:
    """Wrap *transport* in a background-mode :class:`BufferedStream` whose reader and
    writer run in *nursery* until the stream is closed.

    Args:
      nursery: where the background tasks run; close the stream before it exits.
      transport: the stream to wrap.
      options: as for :class:`BufferedStream`; ``read_high`` defaults to 256 KiB.

    Raises:
      ValueError: bad options.
    """
    stream = BufferedStream(transport, **options)
    stream._start_background(nursery)
    return stream


@asynccontextmanager
async def open_buffered_stream(
    transport: trio.abc.Stream, **options: Any
) -> AsyncIterator[BufferedStream]:
    """Run a background-mode :class:`BufferedStream` for the duration of the block.

    The block owns a nursery with the stream's reader (reading ahead up to read high)
    and writer (flushing continuously). Leaving the block flushes and closes the
    stream; if the block raises, the stream is closed at once.

    Args:
      transport: the stream to wrap.
      options: as for :class:`BufferedStream`.

    Raises:
      ValueError: bad options.

    Cancellation: leaving the block by cancellation closes the stream forcefully.
    """
    async with trio.open_nursery() as nursery:
        stream = start_buffered_stream(nursery, transport, **options)
        try:
            yield stream
        except BaseException:
            stream._close_now()
            await trio.aclose_forcefully(stream.transport_stream)
            raise
        await stream.aclose()
