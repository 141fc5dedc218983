"""Filter streams: libevent's filtering bufferevents as a Trio stream wrapper.

A :class:`FilterStream` wraps any Trio stream and passes the bytes of each direction
through a *filter*: a callable ``(source, destination, limit, mode) -> FilterResult``
that moves bytes from one :class:`~evtrio.Buffer` to another, transforming them on the
way (``bufferevent_filter_cb``). The input filter turns what the transport delivers
into what :meth:`FilterStream.receive_some` returns; the output filter turns what
:meth:`FilterStream.send_all` is given into what the transport sends. A missing filter
passes bytes through untouched.

The contract is the libevent book's:

* move bytes from *source* to *destination*, adding at most *limit* bytes to it (the
  room below the destination's high watermark; always at least 1);
* return :attr:`FilterResult.OK` when it made progress, :attr:`FilterResult.NEED_MORE`
  when nothing more can be produced without more input or a stronger *mode*, and
  :attr:`FilterResult.ERROR` when the data cannot be filtered (the stream then raises
  :class:`~evtrio.errors.FilterError`);
* :attr:`FlushMode.NORMAL <evtrio.streams.flush.FlushMode.NORMAL>` lets the filter
  hold bytes back (a compressor's window, half a line ending),
  :attr:`~evtrio.streams.flush.FlushMode.FLUSH` asks it to emit everything it can, and
  :attr:`~evtrio.streams.flush.FlushMode.FINISHED` says no more input will come.

Built-in filters: :class:`DeflateFilter` and :class:`InflateFilter` (zlib, gzip or raw
deflate), and :class:`LFToCRLFFilter` and :class:`CRLFToLFFilter` (line endings).
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_FILTER_LIMIT",
    "DEFAULT_MAX_PENDING",
    "CRLFToLFFilter",
    "DeflateFilter",
    "Filter",
    "FilterResult",
    "FilterStream",
    "FilterStreamStatistics",
    "HalfCloseableFilterStream",
    "InflateFilter",
    "LFToCRLFFilter",
    "ZlibFormat",
)

import enum
import operator
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, final, overload

import trio
from trio.lowlevel import cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled
from typing_extensions import override

from .._util import ConflictDetector, half_closeable_class
from ..buffer import Buffer
from ..errors import FilterError, FilterLimitError
from .flush import FlushMode, SupportsFlush

if TYPE_CHECKING:
    from typing_extensions import Buffer as BytesLike


DEFAULT_FILTER_LIMIT: Final = 64 * 1024
"""The default ``input_limit`` and ``output_limit`` of a :class:`FilterStream`."""

DEFAULT_MAX_PENDING: Final = 256 * 1024
"""The default ``max_pending`` of a :class:`FilterStream`: unfiltered bytes held back."""

_RECV_SIZE: Final = 64 * 1024
"""The most bytes asked of the transport by one read for the input filter."""

_SEND_SIZE: Final = 256 * 1024
"""The most filtered bytes handed to the transport's ``send_all`` at once."""

_INFLATE_CHUNK: Final = 16 * 1024
"""The most compressed bytes :class:`InflateFilter` hands zlib at once."""

ZlibFormat = Literal["zlib", "gzip", "raw"]
"""The container around deflate data: zlib (RFC 1950), gzip (RFC 1952), or none."""

_WBITS: Final[dict[str, int]] = {
    "zlib": zlib.MAX_WBITS,
    "gzip": 16 + zlib.MAX_WBITS,
    "raw": -zlib.MAX_WBITS,
}


class FilterResult(enum.Enum):
    """What a filter call achieved (libevent's ``enum bufferevent_filter_result``)."""

    OK = 0
    """Bytes were consumed or produced (``BEV_OK``)."""
    NEED_MORE = 1
    """Nothing more without more input or a stronger flush mode (``BEV_NEED_MORE``)."""
    ERROR = 2
    """The bytes cannot be filtered; the stream's direction is broken (``BEV_ERROR``)."""


class Filter(Protocol):
    """A filter: any callable with this signature (``bufferevent_filter_cb``).

    A filter moves bytes from *source* to *destination*, transforming them, and adds
    at most *limit* bytes (at least 1) to *destination*. It consumes from the front of
    *source* only what it has dealt with; what it leaves there is offered again, with
    any new bytes after it, on the next call. State between calls lives in the filter
    object. A filter object may have an ``error`` attribute (a string) that explains
    its last :attr:`FilterResult.ERROR`; :class:`~evtrio.errors.FilterError` quotes it.
    """

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode, /
    ) -> FilterResult:
        """Filter bytes from *source* into *destination* as *mode* allows."""


@final
@dataclass(frozen=True, slots=True)
class FilterStreamStatistics:
    """A snapshot of a :class:`FilterStream`.

    Attributes:
      bytes_read: bytes received from the transport (before the input filter).
      bytes_received: bytes returned by ``receive_some`` (after the input filter).
      bytes_sent: bytes handed to ``send_all`` (before the output filter).
      bytes_written: bytes the transport took (after the output filter).
      input_pending: bytes read from the transport that the input filter has not
        consumed yet.
      input_buffered: filtered bytes waiting to be received.
      output_pending: bytes sent that the output filter has not consumed yet.
      eof_received: the transport reported end of stream.
      eof_sent: the sending direction was finished (``send_eof`` or
        ``flush(FINISHED)``).
      state: ``"open"``, ``"broken"`` (a filter failed or a cancelled write cut the
        output) or ``"closed"``.
    """

    bytes_read: int
    bytes_received: int
    bytes_sent: int
    bytes_written: int
    input_pending: int
    input_buffered: int
    output_pending: int
    eof_received: bool
    eof_sent: bool
    state: Literal["open", "broken", "closed"]


class FilterStream(trio.abc.Stream):
    """A Trio stream whose bytes pass through filters (``bufferevent_filter_new``).

    ``FilterStream(transport)`` returns a :class:`HalfCloseableFilterStream` (which adds
    ``send_eof``) exactly when *transport* is a :class:`trio.abc.HalfCloseableStream`.

    Args:
      transport: the stream to wrap; the filter stream owns it from now on.
      input_filter: filters what the transport delivers; ``None`` passes it through.
      output_filter: filters what ``send_all`` is given; ``None`` passes it through.
      input_limit: the input's high watermark: the most filtered bytes buffered for
        ``receive_some``, and the *limit* the input filter gets (default 64 KiB).
      output_limit: the output's high watermark: the most filtered bytes buffered
        before they are written to the transport (default 64 KiB).
      max_pending: the most unfiltered bytes a filter may leave in its source
        (waiting for the rest of a record, say) before the stream fails with
        :class:`~evtrio.errors.FilterLimitError` (default 256 KiB).
      send_mode: the mode the output filter runs with after each ``send_all``:
        ``NORMAL`` lets it hold bytes back until :meth:`flush`; ``FLUSH`` makes every
        ``send_all`` decodable by the peer at once (at some cost in compression).

    Raises:
      ValueError: a limit below 1, or ``send_mode`` ``FINISHED``.
      TypeError: a limit that is not an integer.

    Receiving is cancellation-safe: bytes read from the transport are in the input
    filter's source before any point where ``Cancelled`` can be raised. At end of
    stream the input filter runs with ``FINISHED``; bytes it cannot use then are an
    error (a truncated compressed stream, for example).
    """

    @overload
    def __new__(
        cls,
        transport: trio.abc.HalfCloseableStream,
        *,
        input_filter: Filter | None = None,
        output_filter: Filter | None = None,
        input_limit: int = DEFAULT_FILTER_LIMIT,
        output_limit: int = DEFAULT_FILTER_LIMIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        send_mode: FlushMode = FlushMode.NORMAL,
    ) -> HalfCloseableFilterStream: ...
    @overload
    def __new__(
        cls,
        transport: trio.abc.Stream,
        *,
        input_filter: Filter | None = None,
        output_filter: Filter | None = None,
        input_limit: int = DEFAULT_FILTER_LIMIT,
        output_limit: int = DEFAULT_FILTER_LIMIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        send_mode: FlushMode = FlushMode.NORMAL,
    ) -> FilterStream: ...
    def __new__(cls, transport: trio.abc.Stream, **options: Any) -> FilterStream:
        # The set-up happens here, not in __init__: with both defined, type checkers
        # would ignore the overloads above and never infer the half-closeable class.
        cls = half_closeable_class(cls, FilterStream, HalfCloseableFilterStream, transport)
        self = super().__new__(cls)
        self._setup(transport, **options)
        return self

    transport_stream: trio.abc.Stream
    """The stream this one wraps."""

    def _setup(
        self,
        transport: trio.abc.Stream,
        *,
        input_filter: Filter | None = None,
        output_filter: Filter | None = None,
        input_limit: int = DEFAULT_FILTER_LIMIT,
        output_limit: int = DEFAULT_FILTER_LIMIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        send_mode: FlushMode = FlushMode.NORMAL,
    ) -> None:
        if send_mode is FlushMode.FINISHED:
            raise ValueError("send_mode FINISHED would end the stream after the first send")
        self.transport_stream = transport
        self._input_filter = input_filter
        self._output_filter = output_filter
        self._input_limit = _check_limit("input_limit", input_limit)
        self._output_limit = _check_limit("output_limit", output_limit)
        self._max_pending = _check_limit("max_pending", max_pending)
        self._send_mode = send_mode
        self._source_in = Buffer()  # read from the transport, not yet through the filter
        self._input = Buffer()  # filtered, waiting for receive_some
        self._source_out = Buffer()  # handed to send_all, not yet through the filter
        self._output = Buffer()  # filtered, waiting for the transport
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")
        self._send_conflict = ConflictDetector("another task is sending on this stream")
        self._closed = False
        self._eof_received = False  # the transport said b""
        self._input_done = False  # ... and the input filter has finished
        self._eof_sent = False
        self._input_error: BaseException | None = None
        self._input_error_raised = False
        self._output_error: BaseException | None = None
        self._bytes_read = self._bytes_received = self._bytes_sent = self._bytes_written = 0

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} in={self._input_filter!r} out={self._output_filter!r}"
            f" over {self.transport_stream!r}>"
        )

    @property
    def input_filter(self) -> Filter | None:
        """The input filter, or ``None`` (bytes pass through)."""
        return self._input_filter

    @property
    def output_filter(self) -> Filter | None:
        """The output filter, or ``None`` (bytes pass through)."""
        return self._output_filter

    def statistics(self) -> FilterStreamStatistics:
        """A snapshot of counters, buffer levels and state."""
        state: Literal["open", "broken", "closed"]
        if self._closed:
            state = "closed"
        elif self._input_error is not None or self._output_error is not None:
            state = "broken"
        else:
            state = "open"
        # Without a filter, the bytes read are the bytes received (and sent, written).
        filtering_in = self._input_filter is not None
        filtering_out = self._output_filter is not None
        return FilterStreamStatistics(
            bytes_read=self._bytes_read,
            bytes_received=self._bytes_received if filtering_in else self._bytes_read,
            bytes_sent=self._bytes_sent if filtering_out else self._bytes_written,
            bytes_written=self._bytes_written,
            input_pending=len(self._source_in),
            input_buffered=len(self._input),
            output_pending=len(self._source_out),
            eof_received=self._eof_received,
            eof_sent=self._eof_sent,
            state=state,
        )

    # ------------------------------------------------------------------ receiving

    @override
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return between 1 and *max_bytes* filtered bytes (default: up to the input
        limit), or ``b""`` at end of stream.

        Raises:
          trio.BusyResourceError: another task is receiving.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError: the transport failed.
          FilterError: the input filter failed (the bytes it produced before that are
            received first); later calls raise :exc:`trio.BrokenResourceError`.
          FilterLimitError: the input filter held back more than ``max_pending`` bytes.
          ValueError: *max_bytes* is below 1.

        Cancellation: safe; no byte read from the transport is lost.
        """
        limit = self._input_limit
        if max_bytes is not None and max_bytes < limit:
            limit = operator.index(max_bytes)
            if limit < 1:
                raise ValueError("max_bytes must be >= 1")
        with self._receive_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if self._input_filter is None:  # passing through: the transport's own call
                try:
                    raw = await self.transport_stream.receive_some(limit)
                except trio.BrokenResourceError:
                    self._raise_if_closed()
                    raise
                if not raw:
                    self._eof_received = True
                    return b""
                self._bytes_read += len(raw)  # statistics() reports it received too
                return raw if type(raw) is bytes else bytes(raw)
            filtered = self._input
            if filtered:
                await checkpoint_if_cancelled()
                data = filtered.remove(limit)
                self._bytes_received += len(data)
                await cancel_shielded_checkpoint()
                return data
            await checkpoint_if_cancelled()
            waited = await self._fill_input()
            data = filtered.remove(limit)
            self._bytes_received += len(data)
            if not waited:
                await cancel_shielded_checkpoint()
            return data

    async def _fill_input(self) -> bool:
        """Run the input filter, reading from the transport as it needs, until some
        filtered bytes are buffered or the stream has ended. True if it yielded."""
        source, filtered = self._source_in, self._input
        waited = False
        while True:
            error = self._input_error
            if error is not None:
                if self._input_error_raised:
                    raise trio.BrokenResourceError("the input filter failed earlier") from error
                self._input_error_raised = True
                raise error
            if self._input_done:
                return waited
            mode = FlushMode.FINISHED if self._eof_received else FlushMode.NORMAL
            try:
                self._run_filter("input", source, filtered, self._input_limit, mode)
                if filtered:
                    return waited
                if self._eof_received:
                    if source:
                        raise FilterError(
                            "input",
                            self._input_filter,
                            f"{len(source)} bytes left unfiltered at the end of the stream",
                        )
                    self._input_done = True
                    return waited
                if len(source) >= self._max_pending:
                    raise FilterLimitError("input", self._input_filter, self._max_pending)
            except FilterError as exc:
                self._input_error = exc
                if filtered:
                    return waited  # deliver what came before the failure first
                continue
            size = min(_RECV_SIZE, self._max_pending - len(source))
            try:
                data = await self.transport_stream.receive_some(size)
            except trio.BrokenResourceError:
                self._raise_if_closed()
                raise
            waited = True
            if data:
                source.add(data)  # before any checkpoint: a cancel cannot lose it
                self._bytes_read += len(data)
            else:
                self._eof_received = True

    def _run_filter(
        self,
        direction: Literal["input", "output"],
        source: Buffer,
        destination: Buffer,
        limit: int,
        mode: FlushMode,
    ) -> bool:
        """Call the filter until it can do no more or *destination* holds *limit*
        bytes. True when it may do more once *destination* is emptied: it is full, or
        the filter stopped while it had less than *limit* of room (it may need more
        room than that, for a header say)."""
        flt = self._input_filter if direction == "input" else self._output_filter
        assert flt is not None
        while True:
            room = limit - len(destination)
            if room <= 0:
                return True
            before = (len(source), len(destination))
            try:
                result = flt(source, destination, room, mode)
            except Exception as exc:
                raise FilterError(direction, flt, f"the filter raised {exc!r}") from exc
            if result is FilterResult.ERROR:
                reason = getattr(flt, "error", None)
                raise FilterError(direction, flt, reason if isinstance(reason, str) else None)
            if result is not FilterResult.OK:
                if result is not FilterResult.NEED_MORE:
                    raise FilterError(direction, flt, f"returned {result!r}, not a FilterResult")
                return room < limit
            if (len(source), len(destination)) == before:
                return room < limit  # OK without progress counts as NEED_MORE, or it would spin

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed") from None

    # ------------------------------------------------------------------ sending

    def _check_sendable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("the sending direction was finished (send_eof)")
        self._raise_output_error()

    def _raise_output_error(self) -> None:
        error = self._output_error
        if error is not None:
            raise trio.BrokenResourceError("the output failed earlier") from error

    @override
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Filter *data* and send the result.

        With ``send_mode`` ``NORMAL`` the output filter may hold some bytes back (a
        compressor does) until :meth:`flush`, ``send_eof`` or :meth:`aclose`.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed, or its sending direction
            was finished.
          trio.BrokenResourceError: the transport failed, now or earlier.
          FilterError: the output filter failed; later sends raise
            :exc:`trio.BrokenResourceError`.

        Cancellation: as Trio's ``send_all``, part of *data* may have been sent. With
        an output filter, a cancel that lands while the transport is writing breaks
        the sending direction (the peer may have got part of a filtered block); a
        cancel before that leaves the stream as it was.
        """
        with self._send_conflict:
            if self._closed or self._eof_sent or self._output_error is not None:
                self._check_sendable()
            if self._output_filter is None:  # passing through: the transport's own call
                try:
                    await self.transport_stream.send_all(data)
                except trio.BrokenResourceError:
                    self._raise_if_closed()
                    raise
                # statistics() reports this as sent too
                self._bytes_written += len(data) if type(data) is bytes else memoryview(data).nbytes
                return
            await checkpoint_if_cancelled()
            self._queue(data)
            if not await self._flush_output(self._send_mode):
                await cancel_shielded_checkpoint()

    def _queue(self, data: BytesLike) -> None:
        """Put *data* in the output filter's source; ``bytes`` are not copied."""
        source = self._source_out
        if type(data) is bytes:
            source.add(data)
            size = len(data)
        else:
            view = memoryview(data)
            size = view.nbytes
            source.add(view)
        self._bytes_sent += size

    async def _flush_output(self, mode: FlushMode) -> bool:
        """Run the output filter with *mode* and write what it produces; True if it
        yielded. With ``FINISHED``, the filter must consume all of its source."""
        source, filtered = self._source_out, self._output
        waited = False
        try:
            while True:
                full = self._run_filter("output", source, filtered, self._output_limit, mode)
                if filtered:
                    await self._write_output()
                    waited = True
                if not full:
                    break
            if mode is FlushMode.FINISHED and source:
                raise FilterError(
                    "output",
                    self._output_filter,
                    f"{len(source)} bytes left unfiltered at the end of the stream",
                )
            if len(source) > self._max_pending:
                raise FilterLimitError("output", self._output_filter, self._max_pending)
        except FilterError as exc:
            self._output_error = exc
            raise
        return waited

    async def _write_output(self) -> None:
        """Hand every filtered byte to the transport."""
        filtered = self._output
        transport = self.transport_stream
        while filtered:
            views = filtered.peek(_SEND_SIZE)
            piece = views[0] if len(views) == 1 else b"".join(views)
            try:
                await transport.send_all(piece)
            except trio.BrokenResourceError as exc:
                self._output_error = exc
                self._raise_if_closed()
                raise
            except BaseException:
                # Cancelled (or anything else) mid-write: the transport may have taken
                # part of the piece, and the filtered stream cannot be resumed.
                self._output_error = trio.BrokenResourceError(
                    "a send was interrupted while the transport was writing filtered bytes"
                )
                raise
            filtered.drain(len(piece))
            self._bytes_written += len(piece)

    @override
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until a ``send_all`` might not block (the transport's readiness).

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError, trio.BrokenResourceError: as for :meth:`send_all`.

        Cancellation: safe.
        """
        with self._send_conflict:
            self._check_sendable()
            try:
                await self.transport_stream.wait_send_all_might_not_block()
            except trio.BrokenResourceError:
                self._raise_if_closed()
                raise

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """Push bytes through the output filter (``bufferevent_flush`` on a filter).

        ``NORMAL`` runs the output filter as a send does; ``FLUSH`` makes it emit
        everything it holds (a zlib sync flush: the peer can decode every byte sent so
        far); ``FINISHED`` ends its stream (a zlib trailer) and then sends EOF on the
        transport (``send_eof``, or the transport's own ``flush(FINISHED)``). The
        transport is flushed with the same mode when it supports ``flush``. After
        ``FINISHED`` every flush does nothing.

        Raises:
          TypeError: ``FINISHED`` on a transport that can neither half-close nor
            flush (nothing was changed).
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError, FilterError: as for :meth:`send_all`.

        Cancellation: as for :meth:`send_all`.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if self._eof_sent:
                await checkpoint()
                return
            transport = self.transport_stream
            if mode is FlushMode.FINISHED:
                if isinstance(transport, trio.abc.HalfCloseableStream):
                    await self._finish_sending()
                    return
                if not isinstance(transport, SupportsFlush):
                    raise TypeError(f"{transport!r} cannot half-close or flush(FINISHED)")
            self._raise_output_error()
            await checkpoint_if_cancelled()
            waited = False
            if self._output_filter is not None:
                waited = await self._flush_output(mode)
            if mode is FlushMode.FINISHED:
                self._eof_sent = True
            if isinstance(transport, SupportsFlush):
                await transport.flush(mode)
            elif not waited:
                await cancel_shielded_checkpoint()

    async def _finish_sending(self) -> None:
        """Finish the output filter, then send EOF on the transport (``send_eof``)."""
        if self._eof_sent:
            await checkpoint()
            return
        self._raise_output_error()
        await checkpoint_if_cancelled()
        if self._output_filter is not None:
            await self._flush_output(FlushMode.FINISHED)
        self._eof_sent = True
        transport = self.transport_stream
        assert isinstance(transport, trio.abc.HalfCloseableStream)
        await transport.send_eof()

    # ------------------------------------------------------------------ closing

    @override
    async def aclose(self) -> None:
        """Finish the output filter (as ``flush(FINISHED)`` would, without the EOF),
        then close the stream and its transport.

        Idempotent. The graceful part is skipped when the sending direction is
        finished, broken, or in use by another task; if the transport is gone, the
        filter's last bytes are dropped and the stream is still closed. It may wait
        for the transport to take those bytes: cancel it to close at once.

        Cancellation: the stream is closed anyway (forcefully); ``Cancelled``
        propagates.
        """
        if self._closed:
            await checkpoint()
            return
        graceful = (
            self._output_filter is not None
            and not self._eof_sent
            and self._output_error is None
            and not self._send_conflict.held
        )
        self._closed = True
        try:
            if graceful:
                with self._send_conflict:
                    await self._flush_output(FlushMode.FINISHED)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer is gone (or the filter failed): close anyway
        except BaseException:
            await trio.aclose_forcefully(self.transport_stream)
            raise
        await self.transport_stream.aclose()


@final
class HalfCloseableFilterStream(FilterStream, trio.abc.HalfCloseableStream):
    """A :class:`FilterStream` over a half-closeable transport (TCP, pairs, ...).

    You never create one by name: ``FilterStream(transport)`` returns this class when
    *transport* is a :class:`trio.abc.HalfCloseableStream`.
    """

    @override
    async def send_eof(self) -> None:
        """Finish the output filter, send what it produces, then end the sending
        direction of the transport (the peer gets EOF). Receiving keeps working.
        Idempotent.

        Raises:
          trio.BusyResourceError: another task is sending.
          trio.ClosedResourceError: this stream was closed.
          trio.BrokenResourceError, FilterError: as for :meth:`send_all`.

        Cancellation: as for :meth:`send_all`; if cancelled, the EOF may or may not
        have been sent.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            await self._finish_sending()


def _check_limit(name: str, value: int) -> int:
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, not {value}")
    return value


# ---------------------------------------------------------------------- zlib


def _wbits(format: str, *, allowed: tuple[str, ...]) -> int:
    if format not in allowed:
        raise ValueError(f"format must be one of {', '.join(allowed)}, not {format!r}")
    return 32 + zlib.MAX_WBITS if format == "auto" else _WBITS[format]


@final
class DeflateFilter:
    """An output filter that compresses with zlib (deflate).

    ``NORMAL`` compresses as bytes arrive (zlib holds some back to compress better);
    ``FLUSH`` is ``Z_SYNC_FLUSH``: the peer can decode everything sent so far, and the
    stream goes on; ``FINISHED`` is ``Z_FINISH``: the compressed stream ends. Feed its
    output to an :class:`InflateFilter`, or to ``zlib.decompressobj()`` anywhere.

    Args:
      level: 0 (store) to 9 (smallest), or -1 for zlib's default (6).
      format: ``"zlib"`` (RFC 1950, zlib's default), ``"gzip"`` (RFC 1952) or
        ``"raw"`` (bare deflate).

    Raises:
      ValueError: a level outside -1..9, or an unknown format.

    It consumes at most *limit* bytes of input per call, so on average it adds no more
    than *limit* bytes, but one call may add more: zlib emits a finished block at once
    (at most its internal buffer, about 64 KiB at the default memory level), and
    Python's zlib cannot bound compression output. The bound that matters against
    hostile input is on the inflating side (:class:`InflateFilter`). One filter object
    serves one stream.
    """

    __slots__ = ("_compressor", "_dirty", "_finished", "error", "format", "level")

    def __init__(self, *, level: int = -1, format: ZlibFormat = "zlib") -> None:
        if not -1 <= level <= 9:
            raise ValueError(f"level must be between -1 and 9, not {level}")
        wbits = _wbits(format, allowed=("zlib", "gzip", "raw"))
        self.level = level
        """The compression level."""
        self.format: ZlibFormat = format
        """The container format."""
        self.error: str | None = None
        """Why the last call returned :attr:`FilterResult.ERROR`, or ``None``."""
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, wbits)
        self._dirty = False  # bytes went in since the last flush
        self._finished = False

    def __repr__(self) -> str:
        return f"DeflateFilter(level={self.level}, format={self.format!r})"

    @property
    def finished(self) -> bool:
        """Whether the compressed stream was ended (``FINISHED``)."""
        return self._finished

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        """Compress up to *limit* bytes of *source* into *destination*."""
        if self._finished:
            if source:
                self.error = f"{len(source)} bytes to compress after the end of the stream"
                return FilterResult.ERROR
            return FilterResult.NEED_MORE
        compressor = self._compressor
        consumed = 0
        if source:
            for view in source.peek(limit):
                out = compressor.compress(view)
                consumed += len(view)
                if out:
                    destination.add(out)
            source.drain(consumed)
            self._dirty = True
            if source:
                return FilterResult.OK  # more input: the caller calls again
        if mode is FlushMode.NORMAL or (mode is FlushMode.FLUSH and not self._dirty):
            return FilterResult.OK if consumed else FilterResult.NEED_MORE
        if mode is FlushMode.FLUSH:
            out = compressor.flush(zlib.Z_SYNC_FLUSH)
        else:
            out = compressor.flush(zlib.Z_FINISH)
            self._finished = True
        self._dirty = False
        destination.add(out)
        return FilterResult.OK


@final
class InflateFilter:
    """An input filter that decompresses zlib (inflate), bounded against bombs.

    Each call adds at most *limit* bytes to the destination, whatever the compression
    ratio: zlib is asked for at most *limit* bytes (``decompress(data, max_length)``),
    and input it did not get to stays in the source. A stream that inflates 1 KiB into
    1 GiB never costs more than one *limit* of memory at a time.

    Args:
      format: ``"zlib"``, ``"gzip"``, ``"raw"``, or ``"auto"`` (zlib or gzip, from the
        header).

    Raises:
      ValueError: an unknown format.

    It returns :attr:`FilterResult.ERROR` for corrupt data, for bytes after the end of
    the compressed stream (they stay in the source), and, with ``FINISHED``, for a
    compressed stream that was cut short. An input that ends before its first byte is
    an empty stream, not an error.
    """

    __slots__ = ("_decompressor", "_pending", "_started", "error", "format")

    def __init__(self, *, format: ZlibFormat | Literal["auto"] = "zlib") -> None:
        wbits = _wbits(format, allowed=("zlib", "gzip", "raw", "auto"))
        self.format: ZlibFormat | Literal["auto"] = format
        """The container format."""
        self.error: str | None = None
        """Why the last call returned :attr:`FilterResult.ERROR`, or ``None``."""
        self._decompressor = zlib.decompressobj(wbits)
        self._started = False  # some input arrived
        self._pending = False  # zlib stopped at max_length: it may hold more output

    def __repr__(self) -> str:
        return f"InflateFilter(format={self.format!r})"

    @property
    def finished(self) -> bool:
        """Whether the end of the compressed stream was reached."""
        return self._decompressor.eof

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        """Decompress from *source* into *destination*, adding at most *limit* bytes."""
        decompressor = self._decompressor
        if self.finished:
            if source:
                self.error = f"{len(source)} bytes after the end of the compressed stream"
                return FilterResult.ERROR
            return FilterResult.NEED_MORE
        progress = False
        while limit > 0 and (source or self._pending):
            view: memoryview | bytes = source.peek(_INFLATE_CHUNK)[0] if source else b""
            try:
                out = decompressor.decompress(view, limit)
            except zlib.error as exc:
                self.error = f"corrupt compressed data: {exc}"
                return FilterResult.ERROR
            consumed = len(view) - len(decompressor.unconsumed_tail)
            consumed -= len(decompressor.unused_data)
            del view  # release the buffer's memory before changing it
            if consumed:
                source.drain(consumed)
                self._started = progress = True
            self._pending = len(out) >= limit
            if out:
                destination.add(out)
                limit -= len(out)
                progress = True
            elif not consumed or decompressor.eof:
                break
            if decompressor.eof:
                break
        if progress:
            return FilterResult.OK
        if mode is FlushMode.FINISHED and self._started and not decompressor.eof:
            self.error = "the compressed stream was cut short"
            return FilterResult.ERROR
        return FilterResult.NEED_MORE


# ---------------------------------------------------------------------- line endings


@final
class LFToCRLFFilter:
    """An output filter that writes every LF as CRLF (``"\\n"`` → ``"\\r\\n"``).

    Every LF becomes CRLF, even one that already follows a CR (as Python's text files
    do with ``newline="\\r\\n"``), so :class:`CRLFToLFFilter` restores the exact bytes.
    It never adds more than *limit* bytes: with a limit of 1 and an LF next, it writes
    the CR now and the LF on the next call.
    """

    __slots__ = ("_cr_written",)

    def __init__(self) -> None:
        self._cr_written = False  # the CR of the LF at the front of the source went out

    def __repr__(self) -> str:
        return "LFToCRLFFilter()"

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        """Copy up to *limit* bytes' worth of *source* to *destination*, LF as CRLF."""
        if not source:
            return FilterResult.NEED_MORE
        if self._cr_written:
            source.drain(1)
            destination.add(b"\n")
            self._cr_written = False
            limit -= 1
            if not (limit and source):
                return FilterResult.OK
        size = min(len(source), limit)
        piece = source.copyout(size)
        lfs = piece.count(b"\n")
        if size + lfs > limit:  # shrink so the CRs fit: fewer bytes hold no more LFs
            size = limit - lfs
            if size <= 0:  # then the first *limit* bytes are all LFs
                size = limit // 2
                if not size:  # room for the CR alone
                    destination.add(b"\r")
                    self._cr_written = True
                    return FilterResult.OK
            piece = piece[:size]
        destination.add(piece.replace(b"\n", b"\r\n"))
        source.drain(size)
        return FilterResult.OK


@final
class CRLFToLFFilter:
    """An input filter that turns CRLF into LF (``"\\r\\n"`` → ``"\\n"``).

    A lone CR or LF passes unchanged. A CR that is the last byte of the source is held
    back until the next byte shows whether an LF follows, and is let through at
    ``FINISHED`` (``FLUSH`` cannot know either, so it holds it too).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "CRLFToLFFilter()"

    def __call__(
        self, source: Buffer, destination: Buffer, limit: int, mode: FlushMode
    ) -> FilterResult:
        """Copy up to *limit* bytes of *source* to *destination*, CRLF as LF."""
        size = min(len(source), limit)
        piece = source.copyout(size)
        if piece.endswith(b"\r"):
            if len(source) > size:
                if source.copyout(1, start=size) == b"\n":
                    piece += b"\n"  # the pair becomes one LF: still within limit
                    size += 1
            elif mode is not FlushMode.FINISHED:
                piece = piece[:-1]  # wait to see what follows this CR
                size -= 1
        if not size:
            return FilterResult.NEED_MORE
        destination.add(piece.replace(b"\r\n", b"\n"))
        source.drain(size)
        return FilterResult.OK
