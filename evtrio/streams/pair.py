"""Paired streams: two connected in-memory ends, libevent's ``bufferevent_pair_new``.

:func:`open_stream_pair` returns two :class:`PairedStream` ends: bytes sent on one are
received on the other, with no sockets and no background tasks. Each direction is one
:class:`~evtrio.Buffer` bounded by ``max_buffer`` bytes, which gives byte-level
backpressure: a sender waits while its partner's input already holds ``max_buffer``
bytes. That sits between Trio's :func:`trio.testing.memory_stream_pair` (unbounded) and
:func:`trio.testing.lockstep_stream_pair` (no buffer at all).
"""

from __future__ import annotations

__all__ = ("DEFAULT_MAX_BUFFER", "PairedStream", "PairedStreamStatistics", "open_stream_pair")

import operator
from dataclasses import dataclass
from typing import Final, final

import trio
from trio.lowlevel import (
    ParkingLot,
    cancel_shielded_checkpoint,
    checkpoint,
    checkpoint_if_cancelled,
)
from typing_extensions import override

from .._util import ConflictDetector, NoPublicConstructor
from ..buffer import Buffer
from .flush import FlushMode

DEFAULT_MAX_BUFFER: Final = 64 * 1024
"""The default ``max_buffer`` of :func:`open_stream_pair`: 64 KiB per direction."""

_REFERENCE_MIN: Final = 1024
"""Slices of ``bytes`` at least this long are referenced, not copied."""


@final
@dataclass(frozen=True, slots=True)
class PairedStreamStatistics:
    """A snapshot of one end of a pair (:meth:`PairedStream.statistics`).

    Attributes:
      max_buffer: the most bytes one direction holds.
      input_buffered: bytes the partner sent that this end has not received yet.
      output_buffered: bytes this end sent that the partner has not received yet.
      bytes_sent: bytes handed to the partner so far (including a cancelled
        ``send_all``'s part).
      bytes_received: bytes returned by :meth:`~PairedStream.receive_some` so far.
      eof_sent: this end called ``send_eof`` (or was closed).
      eof_received: the partner called ``send_eof`` (or was closed).
      closed: this end was closed.
      partner_closed: the partner was closed.
      send_waiting: a task is waiting for room to send.
      receive_waiting: a task is waiting for bytes to receive.
    """

    max_buffer: int
    input_buffered: int
    output_buffered: int
    bytes_sent: int
    bytes_received: int
    eof_sent: bool
    eof_received: bool
    closed: bool
    partner_closed: bool
    send_waiting: bool
    receive_waiting: bool


class _Direction:
    """One direction of a pair: a bounded buffer between a sending and a receiving end."""

    __slots__ = ("buffer", "eof", "readable", "receiver_closed", "writable")

    def __init__(self) -> None:
        self.buffer = Buffer()
        self.eof = False  # the sender finished (send_eof or close): EOF after the bytes
        self.receiver_closed = False  # the receiver is gone: sending is broken
        self.readable = ParkingLot()  # receivers wait here for bytes or EOF
        self.writable = ParkingLot()  # senders wait here for room


@final
class PairedStream(trio.abc.HalfCloseableStream, metaclass=NoPublicConstructor):
    """One end of an in-memory stream pair (libevent's paired bufferevent).

    Made by :func:`open_stream_pair`. What one end sends, the other receives, in order.

    * ``send_all`` returns once every byte is in the partner's input; it waits while
      that input holds ``max_buffer`` bytes (byte-level backpressure).
    * ``send_eof()`` (or ``flush(FlushMode.FINISHED)``) gives the partner ``b""`` after
      the bytes already sent; receiving keeps working.
    * Closing an end gives the partner the bytes already sent, then ``b""`` on receive,
      and :exc:`trio.BrokenResourceError` on send. Bytes sent *to* the closed end are
      dropped.

    Each end is used by one task per direction (:exc:`trio.BusyResourceError`
    otherwise). There is no ``transport_stream``: the ends are the transport; the
    other end is :attr:`partner`.
    """

    def __init__(self, incoming: _Direction, outgoing: _Direction, max_buffer: int) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._max_buffer = max_buffer
        self._partner: PairedStream | None = None
        self._closed = False
        self._bytes_sent = 0
        self._bytes_received = 0
        self._send_conflict = ConflictDetector("another task is sending on this stream")
        self._receive_conflict = ConflictDetector("another task is receiving on this stream")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<PairedStream {state} in={len(self._incoming.buffer)}"
            f" out={len(self._outgoing.buffer)} max_buffer={self._max_buffer}>"
        )

    @property
    def partner(self) -> PairedStream | None:
        """The other end (``bufferevent_pair_get_partner``), or ``None`` once either end
        is closed: the pair is no longer connected then."""
        partner = self._partner
        if partner is None or partner._closed or self._closed:
            return None
        return partner

    @property
    def max_buffer(self) -> int:
        """The most bytes one direction of the pair holds."""
        return self._max_buffer

    def statistics(self) -> PairedStreamStatistics:
        """A snapshot of buffer levels, counters and state."""
        incoming, outgoing = self._incoming, self._outgoing
        return PairedStreamStatistics(
            max_buffer=self._max_buffer,
            input_buffered=len(incoming.buffer),
            output_buffered=len(outgoing.buffer),
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            eof_sent=outgoing.eof,
            eof_received=incoming.eof,
            closed=self._closed,
            partner_closed=outgoing.receiver_closed,
            send_waiting=bool(outgoing.writable.statistics().tasks_waiting),
            receive_waiting=bool(incoming.readable.statistics().tasks_waiting),
        )

    # ------------------------------------------------------------------ receiving

    @override
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Return between 1 and *max_bytes* bytes (default: all that is buffered), or
        ``b""`` once the partner has finished sending and every byte was received.

        Raises:
          trio.BusyResourceError: another task is receiving on this end.
          trio.ClosedResourceError: this end was closed (also while waiting).
          ValueError: *max_bytes* is below 1.
          TypeError: *max_bytes* is not an integer.

        Cancellation: safe; nothing is taken from the buffer by a cancelled call.
        """
        limit = None if max_bytes is None else operator.index(max_bytes)
        if limit is not None and limit < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receive_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this end of the pair is closed")
            incoming = self._incoming
            await checkpoint_if_cancelled()
            waited = False
            while not incoming.buffer and not incoming.eof:
                await incoming.readable.park()  # a cancel here takes nothing
                waited = True
                if self._closed:
                    raise trio.ClosedResourceError("this end of the pair was closed")
            buffer = incoming.buffer
            data = buffer.remove(len(buffer) if limit is None else limit)
            if data:
                self._bytes_received += len(data)
                incoming.writable.unpark_all()
            if not waited:
                await cancel_shielded_checkpoint()
            return data

    # ------------------------------------------------------------------ sending

    def _check_sendable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this end of the pair is closed")
        if self._outgoing.eof:
            raise trio.ClosedResourceError("send_eof() was called: cannot send more")
        if self._outgoing.receiver_closed:
            raise trio.BrokenResourceError("the partner was closed")

    @override
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Hand all of *data* to the partner, waiting for room as needed.

        ``bytes`` are not copied; other bytes-like objects are copied as they go in.

        Raises:
          trio.BusyResourceError: another task is sending on this end.
          trio.ClosedResourceError: this end was closed, or ``send_eof`` was called.
          trio.BrokenResourceError: the partner was closed.

        Cancellation: the bytes that were already in the partner's input stay there
        (``statistics().bytes_sent`` says how many); the rest is not sent.
        """
        with self._send_conflict:
            self._check_sendable()
            await checkpoint_if_cancelled()
            outgoing = self._outgoing
            buffer = outgoing.buffer
            view = memoryview(data)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            immutable = type(data) is bytes
            waited = False
            while view:
                room = self._max_buffer - len(buffer)
                if room <= 0:
                    await outgoing.writable.park()
                    waited = True
                    self._check_sendable()
                    continue
                piece = view[:room] if room < len(view) else view
                if immutable and len(piece) == len(data):
                    buffer.add(data)  # all of it at once: large bytes are kept, not copied
                elif immutable and len(piece) >= _REFERENCE_MIN:
                    buffer.add_reference(piece)  # bytes never change: no copy
                else:
                    buffer.add(piece)
                self._bytes_sent += len(piece)
                outgoing.readable.unpark_all()
                view = view[len(piece) :]
            if not waited:
                await cancel_shielded_checkpoint()

    @override
    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the partner's input has room (or the partner is gone).

        Raises:
          trio.BusyResourceError: another task is sending on this end.
          trio.ClosedResourceError: this end was closed, or ``send_eof`` was called.

        Cancellation: safe.
        """
        with self._send_conflict:
            if self._closed or self._outgoing.eof:
                self._check_sendable()
            await checkpoint_if_cancelled()
            outgoing = self._outgoing
            waited = False
            while len(outgoing.buffer) >= self._max_buffer and not outgoing.receiver_closed:
                await outgoing.writable.park()
                waited = True
                if self._closed:
                    raise trio.ClosedResourceError("this end of the pair was closed")
            if not waited:
                await cancel_shielded_checkpoint()

    @override
    async def send_eof(self) -> None:
        """Finish sending: the partner receives ``b""`` after the bytes already sent.

        Receiving keeps working. Idempotent.

        Raises:
          trio.BusyResourceError: another task is sending on this end.
          trio.ClosedResourceError: this end was closed.

        Cancellation: safe; if cancelled, no EOF was sent.
        """
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this end of the pair is closed")
            await checkpoint_if_cancelled()
            self._finish_sending()
            await cancel_shielded_checkpoint()

    async def flush(self, mode: FlushMode = FlushMode.FLUSH) -> None:
        """``bufferevent_flush`` on a pair: ``NORMAL`` and ``FLUSH`` have nothing to do
        (sent bytes are already in the partner's input); ``FINISHED`` is
        :meth:`send_eof`.

        Raises:
          trio.BusyResourceError: another task is sending on this end.
          trio.ClosedResourceError: this end was closed.

        Cancellation: safe.
        """
        if mode is FlushMode.FINISHED:
            await self.send_eof()
            return
        with self._send_conflict:
            if self._closed:
                raise trio.ClosedResourceError("this end of the pair is closed")
            await checkpoint()

    def _finish_sending(self) -> None:
        outgoing = self._outgoing
        if not outgoing.eof:
            outgoing.eof = True
            outgoing.readable.unpark_all()

    # ------------------------------------------------------------------ closing

    @override
    async def aclose(self) -> None:
        """Close this end: the partner gets EOF (after the bytes already sent) and
        :exc:`trio.BrokenResourceError` on send; bytes not yet received here are dropped.

        Idempotent. Tasks blocked on this end get :exc:`trio.ClosedResourceError`.

        Cancellation: the end is closed anyway; ``Cancelled`` propagates.
        """
        if not self._closed:
            self._closed = True
            self._finish_sending()
            self._outgoing.writable.unpark_all()  # our own blocked sender
            incoming = self._incoming
            incoming.receiver_closed = True
            incoming.buffer.clear()
            incoming.readable.unpark_all()  # our own blocked receiver
            incoming.writable.unpark_all()  # the partner's blocked sender: broken
        await checkpoint()


def open_stream_pair(*, max_buffer: int = DEFAULT_MAX_BUFFER) -> tuple[PairedStream, PairedStream]:
    """Make two connected in-memory stream ends (``bufferevent_pair_new``).

    Args:
      max_buffer: the most bytes each direction holds before a sender waits for its
        partner to receive (default 64 KiB).

    Returns:
      ``(a, b)``: what ``a`` sends, ``b`` receives, and the other way round.

    Raises:
      ValueError: *max_buffer* is below 1.
      TypeError: *max_buffer* is not an integer.
    """
    max_buffer = operator.index(max_buffer)
    if max_buffer < 1:
        raise ValueError(f"max_buffer must be >= 1, not {max_buffer}")
    forward, backward = _Direction(), _Direction()
    a = PairedStream._create(backward, forward, max_buffer)
    b = PairedStream._create(forward, backward, max_buffer)
    a._partner, b._partner = b, a
    return a, b
