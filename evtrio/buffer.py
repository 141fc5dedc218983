"""`Buffer`: a chain of byte chunks, libevent's evbuffer for Python.

A :class:`Buffer` is a byte queue built for network I/O: bytes are appended at the back
and removed at the front, moving data between buffers or adding a large payload does not
copy it, and sockets read straight into reserved space (``recv_into``) and write several
chunks with one ``sendmsg`` (or a file region with ``os.sendfile``).

Internally a buffer is a deque of chunks. Each chunk is a ``[start, end)`` window onto
one storage object: an immutable ``bytes`` object the buffer was handed, a ``bytearray``
the buffer owns (only the last one is ever written to, and only past ``end``), a
caller's memory added with :meth:`Buffer.add_reference`, or a region of a file. Storage
is never resized, so a memoryview handed out never makes a later mutation fail.
"""

from __future__ import annotations

__all__ = ("EOL", "Buffer", "BufferCallback", "BufferChange", "FileSegment", "SocketLike")

import enum
import errno
import mmap
import os
import re
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Final, Protocol, final

from ._util import byte_view
from .errors import BufferFrozenError, FileSegmentError, LineTooLongError, ReservationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from typing_extensions import Buffer as BytesLike


_CHUNK_SIZE: Final = 4096
"""Smallest chunk the buffer allocates; small writes are packed into it."""

_REFERENCE_MIN: Final = 1024
"""``bytes`` at least this long become a chunk of their own instead of being copied."""

_SPARE_MAX: Final = 256 * 1024
"""A drained chunk up to this size is kept for reuse by the next allocation."""

_FILE_BLOCK: Final = 64 * 1024
"""How much of a file segment is read into memory at a time."""


def _iov_max() -> int:
    try:
        return min(os.sysconf("SC_IOV_MAX"), 64)
    except (AttributeError, ValueError, OSError):
        return 16  # the POSIX minimum


_IOV_MAX: Final = _iov_max()
"""The most chunks handed to one ``sendmsg`` call."""

_NO_SENDFILE: Final = frozenset(
    {errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP, errno.ESPIPE}
)
"""``os.sendfile`` errors that mean "not for this pair of descriptors": fall back to send."""

_CR: Final = 13
_CRLF_RUN: Final = re.compile(rb"[\r\n]+")
_NOT_FOUND: Final = (-1, 0)


class EOL(enum.Enum):
    """Line-ending styles for :meth:`Buffer.readln` and :meth:`Buffer.search_eol`."""

    ANY = "any"
    """Any run of CR and LF characters ends the line; the whole run is consumed."""
    CRLF = "crlf"
    """LF, optionally preceded by one CR."""
    CRLF_STRICT = "crlf_strict"
    """Exactly CR LF."""
    LF = "lf"
    """A single LF."""
    NUL = "nul"
    """A single NUL byte."""


# Enum attribute access is slow (a descriptor call on Python 3.11); hot paths use these.
_ANY: Final = EOL.ANY
_CRLF: Final = EOL.CRLF
_CRLF_STRICT: Final = EOL.CRLF_STRICT
_LF: Final = EOL.LF
_NUL: Final = EOL.NUL


@final
@dataclass(frozen=True, slots=True)
class BufferChange:
    """What one mutation did to a buffer, as passed to its callbacks.

    Attributes:
      orig_size: the buffer's length before the change.
      n_added: bytes added by the change.
      n_deleted: bytes removed by the change.
    """

    orig_size: int
    n_added: int
    n_deleted: int


@final
class BufferCallback:
    """A handle for a callback registered with :meth:`Buffer.add_callback`.

    Set :attr:`enabled` to ``False`` to skip the callback without removing it
    (libevent's ``evbuffer_cb_clear_flags(..., EVBUFFER_CB_ENABLED)``).
    """

    __slots__ = ("enabled", "function")

    def __init__(self, function: Callable[[BufferChange], object]) -> None:
        self.function = function
        self.enabled = True

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<BufferCallback {self.function!r} {state}>"


class _Owner:
    """Runs *cleanup* once, when the last chunk sharing some memory or file is gone.

    ``pieces`` counts the chunks (in any buffer) that still point into the memory, plus
    one for a :class:`FileSegment` handle that is still open. If everything holding the
    owner is garbage-collected without draining, the cleanup runs then.
    """

    __slots__ = ("_cleanup", "pieces")

    def __init__(self, cleanup: Callable[[], object] | None) -> None:
        self._cleanup = cleanup
        self.pieces = 1

    def release(self) -> Callable[[], object] | None:
        """Drop one piece; return the cleanup to run if that was the last one."""
        self.pieces -= 1
        if self.pieces:
            return None
        cleanup, self._cleanup = self._cleanup, None
        return cleanup

    def __del__(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


class _FileOwner(_Owner):
    __slots__ = ("fd",)

    def __init__(self, fd: int, cleanup: Callable[[], object]) -> None:
        super().__init__(cleanup)
        self.fd = fd


class _Chunk:
    """A ``[start, end)`` window onto one storage object.

    ``data`` is ``bytes``, ``bytearray``, ``mmap`` or ``memoryview``, or ``None`` for a
    file region (then ``start``/``end`` are file offsets and ``owner`` is a
    ``_FileOwner``). ``view`` is a memoryview of ``data`` for the types whose slices
    are not ``bytes`` (bytearray and memoryview), else ``None``. Only a ``writable``
    chunk may be written, past ``end``: the buffer owns its storage outright.
    """

    __slots__ = ("data", "end", "owner", "start", "view", "writable")

    def __init__(
        self,
        data: bytes | bytearray | memoryview | mmap.mmap | None,
        view: memoryview | None,
        start: int,
        end: int,
        writable: bool,
        owner: _Owner | None,
    ) -> None:
        self.data = data
        self.view = view
        self.start = start
        self.end = end
        self.writable = writable
        self.owner = owner

    def split_front(self, n: int) -> _Chunk:
        """Detach the first *n* bytes as a new read-only chunk sharing the storage.

        Neither part may write into the storage afterwards: reusing it from the start
        (as a drained writable chunk is reused) would overwrite the detached part.
        """
        self.writable = False
        part = _Chunk(self.data, self.view, self.start, self.start + n, False, self.owner)
        if self.owner is not None:
            self.owner.pieces += 1
        self.start += n
        return part

    def alias(self) -> _Chunk:
        """A read-only chunk over the same bytes; neither may write into the storage now."""
        self.writable = False
        if self.owner is not None:
            self.owner.pieces += 1
        return _Chunk(self.data, self.view, self.start, self.end, False, self.owner)

    def memory(self) -> memoryview:
        """A read-only view of this (in-memory) chunk's bytes."""
        view = self.view if self.view is not None else memoryview(self.data)  # type: ignore[arg-type]
        return view[self.start : self.end].toreadonly()


class SocketLike(Protocol):
    """What :meth:`Buffer.read_from` and :meth:`Buffer.write_to` need from a socket."""

    def fileno(self) -> int: ...
    def recv_into(self, buffer: memoryview, nbytes: int = ..., /) -> int: ...
    def send(self, data: memoryview, /) -> int: ...
    def sendmsg(self, buffers: Iterable[memoryview], /) -> int: ...


def _raise_collected(errors: list[Exception]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup("several buffer callbacks or cleanups failed", errors)


@final
class FileSegment:
    """A region of an open file that buffers read lazily and send with ``os.sendfile``.

    This is libevent's ``evbuffer_file_segment``: add it to one or more buffers with
    :meth:`Buffer.add_file_segment` without reading the file. The segment owns the file:
    it is closed (and *cleanup*, if given, is called) once the segment has been closed
    with :meth:`close` **and** the last of its bytes has left every buffer. Use it as a
    context manager to close the handle.

    Args:
      file: an open binary file object (anything with ``fileno()`` and ``close()``) or a
        raw file descriptor.
      offset: where the region starts in the file.
      length: how many bytes; ``None`` means up to the current end of the file.
      cleanup: called once after the file is closed.

    Raises:
      ValueError: the region does not lie inside the file.
      OSError: the file cannot be examined (``fstat`` failed).
    """

    __slots__ = ("_closed", "_owner", "length", "offset")

    def __init__(
        self,
        file: IO[bytes] | int,
        offset: int = 0,
        length: int | None = None,
        *,
        cleanup: Callable[[], object] | None = None,
    ) -> None:
        fd = file if isinstance(file, int) else file.fileno()
        size = os.fstat(fd).st_size
        if offset < 0 or offset > size:
            raise ValueError(f"offset {offset} is outside the file (size {size})")
        if length is None:
            length = size - offset
        if length < 0 or offset + length > size:
            raise ValueError(f"{length} bytes at offset {offset} overrun the file (size {size})")

        def close_file() -> None:
            if isinstance(file, int):
                os.close(file)
            else:
                file.close()
            if cleanup is not None:
                cleanup()

        self._owner = _FileOwner(fd, close_file)
        self._closed = False
        self.offset = offset
        self.length = length

    def close(self) -> None:
        """Give up this handle; the file closes once no buffer holds its bytes. Idempotent."""
        if not self._closed:
            self._closed = True
            cleanup = self._owner.release()
            if cleanup is not None:
                cleanup()

    def __enter__(self) -> FileSegment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<FileSegment fd={self._owner.fd} offset={self.offset} length={self.length} {state}>"
        )


@final
class Buffer:
    """A byte queue of chunks: append at the back, consume at the front, copy rarely.

    Args:
      data: initial contents (any bytes-like object; ``bytes`` is not copied).

    Positions (``start``, ``end``) count from the front of the buffer. Methods that take
    a count accept more than is buffered and act on what there is, as evbuffer does.

    Memoryviews returned by :meth:`peek`, :meth:`pullup` and :meth:`reserve` stay valid
    until the next mutation of the buffer; a view that is still alive never makes a
    mutation fail. A buffer is not thread-safe.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_chunks",
        "_frozen_back",
        "_frozen_front",
        "_length",
        "_pending_change",
        "_reservation",
        "_reserved",
        "_spare",
        "_suspended",
    )

    def __init__(self, data: BytesLike = b"") -> None:
        self._chunks: deque[_Chunk] = deque()
        self._length = 0
        self._callbacks: list[BufferCallback] = []
        self._suspended = 0
        self._pending_change: list[int] | None = None
        self._frozen_front = False
        self._frozen_back = False
        self._reservation: _Chunk | None = None
        self._reserved = 0
        self._spare: _Chunk | None = None
        if data:
            self.add(data)

    # ------------------------------------------------------------------ inspection

    def __len__(self) -> int:
        return self._length

    def __bytes__(self) -> bytes:
        return self._copy(0, self._length)

    def __repr__(self) -> str:
        return f"<Buffer {self._length} bytes in {len(self._chunks)} chunks>"

    @property
    def contiguous_space(self) -> int:
        """How many bytes the first chunk holds (what :meth:`pullup` gets without copying)."""
        return self._chunks[0].end - self._chunks[0].start if self._chunks else 0

    @property
    def frozen_front(self) -> bool:
        """Whether removing from (or prepending to) the front is refused."""
        return self._frozen_front

    @property
    def frozen_back(self) -> bool:
        """Whether adding to the back is refused."""
        return self._frozen_back

    # ------------------------------------------------------------------ adding

    def add(self, data: BytesLike) -> None:
        """Append *data* at the back.

        ``bytes`` of 1 KiB or more become a chunk of their own without being copied;
        other input is copied (the caller may reuse or mutate it afterwards), packed into
        the last chunk when it fits.

        Raises:
          BufferFrozenError: the back is frozen.
        """
        if self._frozen_back:
            raise BufferFrozenError("back", "add")
        chunks = self._chunks
        if type(data) is bytes:
            n = len(data)
            if n >= _REFERENCE_MIN:
                chunks.append(_Chunk(data, None, 0, n, False, None))
                orig = self._length  # _grew(), inlined on this hot path
                self._length = orig + n
                self._reservation = None
                if self._callbacks:
                    self._run_callbacks_or_defer(orig, n, 0)
                return
        else:
            data = byte_view(data)
            n = data.nbytes
        if not n:
            return
        if chunks:
            tail = chunks[-1]
            end = tail.end
            if tail.writable and len(tail.data) - end >= n:  # type: ignore[arg-type]
                tail.view[end : end + n] = data  # type: ignore[index]
                tail.end = end + n
                self._grew(n)
                return
        chunk = self._take_spare(n)
        if chunk is None:
            storage = bytearray(data) if n >= _CHUNK_SIZE else bytearray(_CHUNK_SIZE)
            chunk = _Chunk(storage, memoryview(storage), 0, n, True, None)
            if n < _CHUNK_SIZE:
                chunk.view[:n] = data  # type: ignore[index]
        else:
            chunk.view[:n] = data  # type: ignore[index]
            chunk.end = n
        chunks.append(chunk)
        self._grew(n)

    def prepend(self, data: BytesLike) -> None:
        """Insert *data* at the front (copied unless it is ``bytes``).

        Raises:
          BufferFrozenError: the front is frozen.
        """
        if self._frozen_front:
            raise BufferFrozenError("front", "prepend")
        stored = data if type(data) is bytes else byte_view(data).tobytes()
        n = len(stored)
        if n:
            self._chunks.appendleft(_Chunk(stored, None, 0, n, False, None))
            self._grew(n)

    def add_reference(self, data: BytesLike, cleanup: Callable[[], object] | None = None) -> None:
        """Append *data* without copying it; call *cleanup* once it is no longer used.

        *cleanup()* runs exactly once, when the last byte of *data* has left every buffer
        (drained, removed, written, or copied by :meth:`pullup`), wherever
        :meth:`add_buffer` or :meth:`remove_buffer` moved it, and at the latest when the
        buffers holding it are garbage-collected. The caller must not change *data*
        until then. An exception from *cleanup* propagates from the operation that
        released the last byte, after the buffer is consistent.

        Raises:
          BufferFrozenError: the back is frozen.
          ValueError: *data* is not C-contiguous (it could not be used without a copy).
        """
        if self._frozen_back:
            raise BufferFrozenError("back", "add_reference")
        view: memoryview | None
        stored: bytes | bytearray | mmap.mmap | memoryview
        if isinstance(data, bytes | mmap.mmap):
            stored, view, n = data, None, len(data)
        elif isinstance(data, bytearray):
            stored = data
            view = memoryview(data)
            n = len(data)
        else:
            view = memoryview(data)
            if not view.c_contiguous:
                raise ValueError("add_reference needs a C-contiguous buffer")
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            stored, n = view, view.nbytes
        if not n:
            if cleanup is not None:
                cleanup()
            return
        owner = _Owner(cleanup) if cleanup is not None else None
        self._chunks.append(_Chunk(stored, view, 0, n, False, owner))
        self._grew(n)

    def add_file(self, file: IO[bytes] | int, offset: int = 0, length: int | None = None) -> None:
        """Append *length* bytes of *file* from *offset* without reading them now.

        The buffer takes ownership of *file* and closes it when the segment's last byte
        has left every buffer (as ``evbuffer_add_file`` does). Reading operations read
        the file lazily, 64 KiB at a time; :meth:`write_to` sends it with
        ``os.sendfile``. To share one file region between buffers, use
        :class:`FileSegment`.

        Raises:
          BufferFrozenError: the back is frozen (*file* is not taken in that case).
          ValueError: the region does not lie inside the file (*file* is not taken).
        """
        if self._frozen_back:
            raise BufferFrozenError("back", "add_file")
        with FileSegment(file, offset, length) as segment:
            self.add_file_segment(segment)

    def add_file_segment(
        self, segment: FileSegment, offset: int = 0, length: int | None = None
    ) -> None:
        """Append part of *segment* (from *offset* within it, *length* bytes or the rest).

        Raises:
          BufferFrozenError: the back is frozen.
          ValueError: the part lies outside the segment, or the segment is closed.
        """
        if self._frozen_back:
            raise BufferFrozenError("back", "add_file_segment")
        if segment._closed:
            raise ValueError("the file segment is closed")
        if length is None:
            length = segment.length - offset
        if offset < 0 or length < 0 or offset + length > segment.length:
            raise ValueError(
                f"{length} bytes at {offset} lie outside the {segment.length}-byte segment"
            )
        if not length:
            return
        owner = segment._owner
        owner.pieces += 1
        start = segment.offset + offset
        self._chunks.append(_Chunk(None, None, start, start + length, False, owner))
        self._grew(length)

    def add_buffer(self, other: Buffer) -> None:
        """Move all of *other* to the back of this buffer, without copying any bytes.

        Raises:
          BufferFrozenError: this buffer's back or *other*'s front is frozen.
          ValueError: *other* is this buffer.
        """
        if other is self:
            raise ValueError("cannot add a buffer to itself")
        if self._frozen_back:
            raise BufferFrozenError("back", "add_buffer")
        if other._frozen_front:
            raise BufferFrozenError("front", "add_buffer (source)")
        n = other._length
        if not n:
            return
        self._chunks.extend(other._chunks)
        other._chunks.clear()
        other._shrank(n, None)
        self._grew(n)

    def prepend_buffer(self, other: Buffer) -> None:
        """Move all of *other* to the front of this buffer, without copying any bytes.

        Raises:
          BufferFrozenError: this buffer's front or *other*'s front is frozen.
          ValueError: *other* is this buffer.
        """
        if other is self:
            raise ValueError("cannot prepend a buffer to itself")
        if self._frozen_front:
            raise BufferFrozenError("front", "prepend_buffer")
        if other._frozen_front:
            raise BufferFrozenError("front", "prepend_buffer (source)")
        n = other._length
        if not n:
            return
        moved = other._chunks
        other._chunks = deque()
        moved.extend(self._chunks)
        self._chunks = moved
        other._shrank(n, None)
        self._grew(n)

    def add_buffer_reference(self, other: Buffer) -> None:
        """Append the contents of *other* without copying and without removing them.

        Both buffers then share the memory; neither writes into it again. References
        and file segments count the new alias, so their cleanup waits for both.

        Raises:
          BufferFrozenError: this buffer's back is frozen.
          ValueError: *other* is this buffer.
        """
        if other is self:
            raise ValueError("cannot reference a buffer into itself")
        if self._frozen_back:
            raise BufferFrozenError("back", "add_buffer_reference")
        n = other._length
        if not n:
            return
        self._chunks.extend([chunk.alias() for chunk in other._chunks])
        other._reservation = None  # its tail is no longer writable
        self._grew(n)

    def expand(self, n: int) -> None:
        """Make sure *n* more bytes can be added to the last chunk without allocating.

        Raises:
          BufferFrozenError: the back is frozen.
          ValueError: *n* is negative.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._frozen_back:
            raise BufferFrozenError("back", "expand")
        chunks = self._chunks
        if chunks:
            tail = chunks[-1]
            if tail.writable and len(tail.data) - tail.end >= n:  # type: ignore[arg-type]
                return
        chunk = self._take_spare(n) or self._new_chunk(n)
        # An empty chunk is the one place a chunk may be empty: the writable tail.
        # Keep it aside instead, so the chain only ever holds bytes.
        self._spare = chunk
        self._reservation = None

    # ------------------------------------------------------------------ removing

    def drain(self, n: int) -> None:
        """Discard up to *n* bytes from the front.

        Raises:
          BufferFrozenError: the front is frozen.
          ValueError: *n* is negative.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._frozen_front:
            raise BufferFrozenError("front", "drain")
        orig = self._length
        if n > orig:
            n = orig
        if not n:
            return
        chunk = self._chunks[0]
        if chunk.end - chunk.start > n:  # within the first chunk: nothing is released
            chunk.start += n
            self._length = orig - n
            self._reservation = None
            if self._callbacks:
                self._run_callbacks_or_defer(orig, 0, n)
        else:
            self._shrank(n, self._discard(n))

    def clear(self) -> None:
        """Discard everything (``drain(len(buf))``).

        Raises:
          BufferFrozenError: the front is frozen.
        """
        self.drain(self._length)

    def remove(self, n: int) -> bytes:
        """Remove and return up to *n* bytes from the front.

        Raises:
          BufferFrozenError: the front is frozen.
          ValueError: *n* is negative.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._frozen_front:
            raise BufferFrozenError("front", "remove")
        if n > self._length:
            n = self._length
        if not n:
            return b""
        data, released = self._take(n)
        self._shrank(n, released)
        return data

    def remove_buffer(self, dst: Buffer, n: int) -> int:
        """Move up to *n* bytes from the front of this buffer to the back of *dst*.

        Whole chunks move without copying; a chunk cut by the boundary is shared by
        both buffers.

        Returns:
          How many bytes moved.

        Raises:
          BufferFrozenError: this buffer's front or *dst*'s back is frozen.
          ValueError: *dst* is this buffer, or *n* is negative.
        """
        if dst is self:
            raise ValueError("cannot move bytes within one buffer")
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._frozen_front:
            raise BufferFrozenError("front", "remove_buffer")
        if dst._frozen_back:
            raise BufferFrozenError("back", "remove_buffer (destination)")
        n = min(n, self._length)
        if not n:
            return 0
        chunks = self._chunks
        moved: list[_Chunk] = []
        left = n
        while left:
            chunk = chunks[0]
            size = chunk.end - chunk.start
            if size > left:
                moved.append(chunk.split_front(left))
                break
            moved.append(chunks.popleft())
            left -= size
        dst._chunks.extend(moved)
        self._shrank(n, None)
        dst._grew(n)
        return n

    def copyout(self, n: int, *, start: int = 0) -> bytes:
        """Return up to *n* bytes from position *start* without removing them.

        Raises:
          ValueError: *n* or *start* is negative.
        """
        if n < 0 or start < 0:
            raise ValueError("n and start must be >= 0")
        return self._copy(start, min(start + n, self._length))

    def pullup(self, n: int | None = None) -> memoryview:
        """Make the first *n* bytes contiguous and return a read-only view of them.

        Costs nothing when the first chunk already holds *n* bytes; otherwise those
        bytes are copied into one new chunk. ``None`` means the whole buffer. Like a
        mutation, a pullup of one byte or more invalidates a :meth:`reserve`.

        Raises:
          ValueError: *n* is negative or more than the buffer holds.
          FileSegmentError: a file segment could not be read.
        """
        if n is None:
            n = self._length
        if n < 0 or n > self._length:
            raise ValueError(f"cannot pull up {n} bytes from a buffer of {self._length}")
        if not n:
            return memoryview(b"")
        self._reservation = None
        chunks = self._chunks
        first = chunks[0]
        if first.data is not None and first.end - first.start >= n:
            return first.memory()[:n]
        joined = self._copy(0, n)
        released = self._discard(n)
        chunks.appendleft(_Chunk(joined, None, 0, n, False, None))
        if released:
            self._finish(0, 0, 0, released)
        return memoryview(joined)

    # ------------------------------------------------------------------ lines and search

    def readln(self, eol: EOL = EOL.CRLF, *, max_length: int | None = None) -> bytes | None:
        """Remove and return one line, without its terminator.

        Returns:
          The line (``b""`` for an empty line), or ``None`` when no complete line is
          buffered yet.

        Raises:
          LineTooLongError: the line is longer than *max_length*, or no terminator
            starts within the first *max_length* + 1 bytes. Nothing is removed.
          BufferFrozenError: the front is frozen.
          ValueError: *max_length* is negative.
        """
        if self._frozen_front:
            raise BufferFrozenError("front", "readln")
        if max_length is None:
            limit = None
        elif max_length >= 0:
            limit = max_length + 1  # the terminator must start before this position
        else:
            raise ValueError("max_length must be >= 0")
        length = self._length
        if not length:
            return None
        pos = -2  # not searched yet
        chunk = self._chunks[0]
        data = chunk.data
        if (eol is _CRLF or eol is _LF) and (type(data) is bytes or type(data) is bytearray):
            # Fast path: one find() in the first chunk. Kept lean: it is the per-line cost.
            start = chunk.start
            end = chunk.end
            stop = end if limit is None or start + limit + 1 >= end else start + limit + 1
            i = data.find(b"\n", start, stop)
            if i >= 0:
                if eol is _CRLF and i > start and data[i - 1] == _CR:
                    pos, term = i - 1 - start, 2
                else:
                    pos, term = i - start, 1
                if limit is not None and pos >= limit:
                    raise LineTooLongError(limit - 1, length)
                if i + 1 < end:
                    view = chunk.view
                    line = (
                        data[start : start + pos]
                        if view is None
                        else view[start : start + pos].tobytes()
                    )
                    chunk.start = i + 1
                    used = i + 1 - start
                    self._length = length - used
                    self._reservation = None
                    if self._callbacks:
                        self._run_callbacks_or_defer(length, 0, used)
                    return line  # type: ignore[return-value]
            elif end - start == length:
                pos = -1
        if pos == -2:
            pos, term = self._find_eol(eol, 0, limit)
        if pos < 0:
            if limit is not None and length >= limit:
                # Undecided only if the last byte is a CR that may begin a CRLF at max_length.
                pending = eol in (_CRLF, _CRLF_STRICT) and length == limit
                if not (pending and self._byte_at(length - 1) == _CR):
                    raise LineTooLongError(limit - 1, length)
            return None
        line, released = self._take(pos)
        more = self._discard(term)
        if more:
            released = (released or []) + more
        self._shrank(pos + term, released)
        return line

    def search(self, pattern: BytesLike, start: int = 0, end: int | None = None) -> int:
        """Return the position of the first *pattern* in ``[start, end)``, or -1.

        As :meth:`bytes.find`: the match must lie entirely within the range (it may end
        exactly at *end*), and may span any number of chunks.

        Raises:
          ValueError: *start* or *end* is negative.
          FileSegmentError: a file segment could not be read.
        """
        if start < 0 or (end is not None and end < 0):
            raise ValueError("start and end must be >= 0")
        pattern = bytes(pattern)
        stop = self._length if end is None else min(end, self._length)
        if not pattern:
            return start if start <= stop else -1
        return self._find(pattern, start, stop)

    def search_eol(self, eol: EOL = EOL.CRLF, *, start: int = 0) -> tuple[int, int]:
        """Find the first line terminator at or after *start*.

        Returns:
          ``(position, terminator_length)``, or ``(-1, 0)`` when there is none.

        Raises:
          ValueError: *start* is negative.
          FileSegmentError: a file segment could not be read.
        """
        if start < 0:
            raise ValueError("start must be >= 0")
        return self._find_eol(eol, start, None)

    # ------------------------------------------------------------------ zero-copy access

    def peek(self, n: int | None = None, *, start: int = 0) -> list[memoryview]:
        """Return read-only views of the chunks covering ``[start, start + n)``.

        Nothing is copied (file segments in that range are read into memory first).
        ``None`` means up to the end. The views are valid until the next mutation.

        Raises:
          ValueError: *n* or *start* is negative.
          FileSegmentError: a file segment could not be read.
        """
        if start < 0 or (n is not None and n < 0):
            raise ValueError("n and start must be >= 0")
        stop = self._length if n is None else min(start + n, self._length)
        views: list[memoryview] = []
        if start >= stop:
            return views
        chunks = self._chunks
        pos = 0
        index = 0
        while pos < stop:
            chunk = chunks[index]
            size = chunk.end - chunk.start
            if pos + size > start:
                if chunk.data is None:
                    chunk = self._materialize(index)
                    size = chunk.end - chunk.start
                view = chunk.memory()
                views.append(view[max(start - pos, 0) : min(stop - pos, size)])
            pos += size
            index += 1
        return views

    def reserve(self, n: int) -> memoryview:
        """Return a writable view of *n* bytes of free space at the back.

        Write into it (for example with ``sock.recv_into``), then :meth:`commit` how
        many bytes are valid. Until committed nothing is added. Another mutation of
        the buffer, or another :meth:`reserve`, invalidates the reservation.

        Raises:
          BufferFrozenError: the back is frozen.
          ValueError: *n* is negative.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        if self._frozen_back:
            raise BufferFrozenError("back", "reserve")
        chunk = self._writable_tail(n)
        self._reservation = chunk
        self._reserved = n
        return chunk.view[chunk.end : chunk.end + n]  # type: ignore[index]

    def commit(self, n: int) -> None:
        """Add the first *n* bytes written into the view from :meth:`reserve`.

        Raises:
          ReservationError: nothing is reserved, the reservation was invalidated by
            another mutation, or *n* is more than was reserved (or negative). The
            buffer is unchanged; in the last case the reservation stays live.
          BufferFrozenError: the back is frozen.
        """
        if self._frozen_back:
            raise BufferFrozenError("back", "commit")
        chunk = self._reservation
        if chunk is None:
            raise ReservationError("nothing is reserved (or another mutation invalidated it)")
        if not 0 <= n <= self._reserved:
            raise ReservationError(
                f"cannot commit {n} bytes of a {self._reserved}-byte reservation"
            )
        self._reservation = None
        if n:
            self._append_written(chunk, n)

    # ------------------------------------------------------------------ socket I/O

    def read_from(self, sock: SocketLike, n: int) -> int:
        """Receive up to *n* bytes from non-blocking *sock* straight into the buffer.

        Uses ``recv_into`` on free space at the back (evbuffer_read).

        Returns:
          How many bytes were read; 0 means end of file.

        Raises:
          BlockingIOError: nothing to read yet (nothing changed).
          OSError: from ``recv_into``.
          BufferFrozenError: the back is frozen.
          ValueError: *n* is not positive.
        """
        if n <= 0:
            raise ValueError("n must be > 0")
        if self._frozen_back:
            raise BufferFrozenError("back", "read_from")
        chunks = self._chunks
        tail = chunks[-1] if chunks else None
        # Read into the tail when it has a useful amount of room, else into a fresh chunk.
        if tail is not None and tail.writable and len(tail.data) - tail.end >= min(n, _CHUNK_SIZE):  # type: ignore[arg-type]
            chunk = tail
            room = min(n, len(tail.data) - tail.end)  # type: ignore[arg-type]
        else:
            chunk = self._writable_tail(n)
            room = n
        end = chunk.end
        got = sock.recv_into(chunk.view[end : end + room], room)  # type: ignore[index]
        if got:
            self._append_written(chunk, got)
        return got

    def write_to(self, sock: SocketLike, n: int | None = None) -> int:
        """Send up to *n* bytes (all if ``None``) from the front to non-blocking *sock*.

        Several chunks go out with one ``sendmsg`` (evbuffer_write_atmost); a file
        segment at the front goes out with ``os.sendfile`` where the platform allows.
        What was sent is drained.

        Returns:
          How many bytes were sent.

        Raises:
          BlockingIOError: the socket cannot take any bytes now (nothing changed).
          OSError: from the send call.
          BufferFrozenError: the front is frozen.
          FileSegmentError: a file segment could not be read for a plain send.
        """
        if self._frozen_front:
            raise BufferFrozenError("front", "write_to")
        limit = self._length if n is None else min(n, self._length)
        if limit <= 0:
            return 0
        chunks = self._chunks
        first = chunks[0]
        if first.data is None:
            count = min(first.end - first.start, limit)
            try:
                sent = os.sendfile(sock.fileno(), first.owner.fd, first.start, count)  # type: ignore[union-attr]
            except OSError as exc:
                if exc.errno not in _NO_SENDFILE:
                    raise
                first = self._materialize(0)
            else:
                if sent:
                    self._shrank(sent, self._discard(sent))
                return sent
        size = first.end - first.start
        if size >= limit or len(chunks) == 1:
            sent = sock.send(first.memory()[:limit])
        else:
            views: list[memoryview] = []
            total = 0
            for chunk in chunks:
                if chunk.data is None or len(views) == _IOV_MAX:
                    break
                view = chunk.memory()
                if total + len(view) >= limit:
                    views.append(view[: limit - total])
                    break
                views.append(view)
                total += len(view)
            sent = sock.sendmsg(views)
        if sent:
            self._shrank(sent, self._discard(sent))
        return sent

    # ------------------------------------------------------------------ callbacks, freezing

    def add_callback(self, function: Callable[[BufferChange], object]) -> BufferCallback:
        """Call *function* with a :class:`BufferChange` after every mutation.

        Callbacks run synchronously, in registration order, once the buffer is
        consistent; a callback may itself use the buffer. Exceptions are raised from
        the mutating call after every callback has run (several become an
        ``ExceptionGroup``).

        Returns:
          A handle for :meth:`remove_callback` and for disabling the callback.
        """
        handle = BufferCallback(function)
        self._callbacks.append(handle)
        return handle

    def remove_callback(self, handle: BufferCallback) -> None:
        """Unregister a callback.

        Raises:
          ValueError: *handle* is not registered with this buffer.
        """
        try:
            self._callbacks.remove(handle)
        except ValueError:
            raise ValueError(f"{handle!r} is not registered with this buffer") from None

    @contextmanager
    def callbacks_suspended(self) -> Iterator[None]:
        """Hold callbacks back inside the block; report the net change once on exit.

        The report's ``orig_size`` is the length before the first change in the block,
        and ``n_added``/``n_deleted`` are totals. Nothing is reported when nothing
        changed. Blocks nest; the outermost one reports.
        """
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1
            if not self._suspended and self._pending_change is not None:
                orig, added, deleted = self._pending_change
                self._pending_change = None
                self._run_callbacks(BufferChange(orig, added, deleted), [])

    def freeze(self, *, front: bool) -> None:
        """Refuse changes at one end (evbuffer_freeze).

        A frozen front refuses drain, remove, readln, prepend, write_to and being the
        source of add_buffer, prepend_buffer or remove_buffer; a frozen back refuses
        add, the other add_* methods, expand, reserve, commit and read_from. A refusal
        raises :class:`~evtrio.errors.BufferFrozenError` and changes nothing.
        """
        if front:
            self._frozen_front = True
        else:
            self._frozen_back = True

    def unfreeze(self, *, front: bool) -> None:
        """Allow changes at that end again."""
        if front:
            self._frozen_front = False
        else:
            self._frozen_back = False

    # ------------------------------------------------------------------ internals

    def _grew(self, n: int) -> None:
        orig = self._length
        self._length = orig + n
        self._reservation = None
        if self._callbacks:
            self._run_callbacks_or_defer(orig, n, 0)

    def _shrank(self, n: int, released: list[_Owner] | None) -> None:
        orig = self._length
        self._length = orig - n
        self._reservation = None
        if self._callbacks or released:
            self._finish(orig, 0, n, released)

    def _finish(self, orig: int, added: int, deleted: int, released: list[_Owner] | None) -> None:
        errors: list[Exception] = []
        for owner in released or ():
            cleanup = owner.release()
            if cleanup is not None:
                try:
                    cleanup()
                except Exception as exc:
                    errors.append(exc)
        if (added or deleted) and self._callbacks:
            if self._suspended:
                self._defer(orig, added, deleted)
            else:
                self._run_callbacks(BufferChange(orig, added, deleted), errors)
                return
        _raise_collected(errors)

    def _run_callbacks_or_defer(self, orig: int, added: int, deleted: int) -> None:
        if self._suspended:
            self._defer(orig, added, deleted)
        else:
            self._run_callbacks(BufferChange(orig, added, deleted), [])

    def _defer(self, orig: int, added: int, deleted: int) -> None:
        pending = self._pending_change
        if pending is None:
            self._pending_change = [orig, added, deleted]
        else:
            pending[1] += added
            pending[2] += deleted

    def _run_callbacks(self, change: BufferChange, errors: list[Exception]) -> None:
        for handle in tuple(self._callbacks):
            if handle.enabled:
                try:
                    handle.function(change)
                except Exception as exc:
                    errors.append(exc)
        _raise_collected(errors)

    def _new_chunk(self, n: int) -> _Chunk:
        storage = bytearray(max(n, _CHUNK_SIZE))
        return _Chunk(storage, memoryview(storage), 0, 0, True, None)

    def _take_spare(self, n: int) -> _Chunk | None:
        spare = self._spare
        if spare is not None and len(spare.data) >= n:  # type: ignore[arg-type]
            self._spare = None
            spare.start = spare.end = 0
            return spare
        return None

    def _writable_tail(self, n: int) -> _Chunk:
        """The chunk that will take *n* more bytes: the tail if it has room, else a
        fresh one that is appended only once bytes are committed to it."""
        chunks = self._chunks
        if chunks:
            tail = chunks[-1]
            if tail.writable and len(tail.data) - tail.end >= n:  # type: ignore[arg-type]
                return tail
        spare = self._spare
        if spare is not None and len(spare.data) >= n:  # type: ignore[arg-type]
            spare.start = spare.end = 0
            return spare
        chunk = self._new_chunk(n)
        self._spare = chunk
        return chunk

    def _append_written(self, chunk: _Chunk, n: int) -> None:
        """Account for *n* bytes written into *chunk* past its end."""
        if chunk is self._spare:
            self._spare = None
            self._chunks.append(chunk)
        chunk.end += n
        self._grew(n)

    def _discard(self, n: int) -> list[_Owner] | None:
        """Drop *n* (<= length) bytes from the front; return owners to release."""
        chunks = self._chunks
        released: list[_Owner] | None = None
        while n:
            chunk = chunks[0]
            size = chunk.end - chunk.start
            if size > n:
                chunk.start += n
                break
            chunks.popleft()
            n -= size
            if chunk.owner is not None:
                chunk.view = None  # let the owner's memory go before its cleanup runs
                if released is None:
                    released = [chunk.owner]
                else:
                    released.append(chunk.owner)
            elif chunk.writable and len(chunk.data) <= _SPARE_MAX:  # type: ignore[arg-type]
                self._spare = chunk
        return released

    def _take(self, n: int) -> tuple[bytes, list[_Owner] | None]:
        """Remove and return the first *n* (0 < n <= length) bytes."""
        chunk = self._chunks[0]
        start = chunk.start
        if chunk.data is not None and chunk.end - start >= n:
            view = chunk.view
            data = (
                chunk.data[start : start + n] if view is None else view[start : start + n].tobytes()
            )
            if chunk.end - start > n:
                chunk.start = start + n
                return data, None  # type: ignore[return-value]
            return data, self._discard(n)  # type: ignore[return-value]
        return self._copy(0, n), self._discard(n)

    def _copy(self, start: int, stop: int) -> bytes:
        if start >= stop:
            return b""
        parts = [memoryview(data)[a:b] for data, a, b, _ in self._segments(start, stop)]
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    def _segments(
        self, start: int, stop: int
    ) -> Iterator[tuple[bytes | bytearray | mmap.mmap, int, int, int]]:
        """Yield ``(data, a, b, pos)``: ``data[a:b]`` holds the buffer's bytes from
        position *pos*, covering ``[start, stop)`` in order. ``data`` has ``find``."""
        pos = 0
        for chunk in self._chunks:
            size = chunk.end - chunk.start
            if pos + size <= start:
                pos += size
                continue
            if pos >= stop:
                return
            a = chunk.start + max(start - pos, 0)
            b = chunk.start + min(stop - pos, size)
            where = pos + a - chunk.start
            data = chunk.data
            if data is None:
                yield from _read_file_blocks(chunk, a, b, where)
            elif type(data) is memoryview:
                yield data[a:b].tobytes(), 0, b - a, where
            else:
                yield data, a, b, where
            pos += size

    def _find(self, pattern: bytes, start: int, stop: int) -> int:
        """First *pattern* (non-empty) lying within ``[start, stop)``, or -1."""
        m = len(pattern)
        if stop - start < m:
            return -1
        chunk = self._chunks[0]
        data = chunk.data
        if data is not None and type(data) is not memoryview and chunk.end - chunk.start >= stop:
            i = data.find(pattern, chunk.start + start, chunk.start + stop)
            return i - chunk.start if i >= 0 else -1
        # Matches that cross from one segment into the next are found in `probe`: the
        # last m-1 bytes seen so far (`carry`) followed by the next m-1 bytes.
        carry = b""
        carry_pos = start
        for data, a, b, pos in self._segments(start, stop):
            if carry:
                i = (carry + data[a : min(b, a + m - 1)]).find(pattern)
                if i >= 0:
                    return carry_pos + i
            i = data.find(pattern, a, b)
            if i >= 0:
                return pos + i - a
            if m > 1:
                carry = (carry + data[max(a, b - m + 1) : b])[-(m - 1) :]
                carry_pos = pos + b - a - len(carry)
        return -1

    def _find_eol(self, eol: EOL, start: int, limit: int | None) -> tuple[int, int]:
        """First terminator starting in ``[start, limit)`` (or anywhere after *start*)."""
        length = self._length
        stop = length if limit is None else min(limit, length)
        if eol is _LF or eol is _NUL:
            i = self._find(b"\n" if eol is _LF else b"\0", start, stop)
            return (i, 1) if i >= 0 else _NOT_FOUND
        if eol is _CRLF_STRICT:
            i = self._find(b"\r\n", start, min(stop + 1, length))
            return (i, 2) if i >= 0 else _NOT_FOUND
        if eol is _CRLF:
            i = self._find(b"\n", start, min(stop + 1, length))
            if i < 0:
                return _NOT_FOUND
            if i > start and self._byte_at(i - 1) == _CR:
                return i - 1, 2
            return (i, 1) if i < stop else _NOT_FOUND
        i = self._find(b"\n", start, stop)
        j = self._find(b"\r", start, i if i >= 0 else stop)
        if j >= 0:
            i = j
        return (i, self._run_length(i)) if i >= 0 else _NOT_FOUND

    def _byte_at(self, pos: int) -> int:
        chunk = self._chunks[0]
        if chunk.data is not None and pos < chunk.end - chunk.start:
            return chunk.data[chunk.start + pos]
        return self._copy(pos, pos + 1)[0]

    def _run_length(self, pos: int) -> int:
        """How many CR/LF bytes follow one another from *pos* (which holds one)."""
        total = 0
        for data, a, b, _ in self._segments(pos, self._length):
            match = _CRLF_RUN.match(data, a, b)
            run = match.end() - a if match else 0
            total += run
            if a + run < b:
                break
        return total

    def _materialize(self, index: int) -> _Chunk:
        """Read the start of the file chunk at *index* into memory; return the new chunk."""
        chunks = self._chunks
        chunk = chunks[index]
        size = min(chunk.end - chunk.start, _FILE_BLOCK)
        data = _pread_exactly(chunk, chunk.start, chunk.start + size)
        loaded = _Chunk(data, None, 0, size, False, chunk.owner)
        chunks[index] = loaded
        if chunk.end - chunk.start > size:
            chunk.start += size
            chunk.owner.pieces += 1  # type: ignore[union-attr]
            chunks.insert(index + 1, chunk)
        return loaded


def _pread_exactly(chunk: _Chunk, a: int, b: int) -> bytes:
    fd = chunk.owner.fd  # type: ignore[union-attr]
    try:
        data = os.pread(fd, b - a, a)
    except OSError as exc:
        raise FileSegmentError(a, b - a, str(exc)) from exc
    if len(data) != b - a:
        raise FileSegmentError(a, b - a, f"the file ended after {len(data)} bytes")
    return data


def _read_file_blocks(
    chunk: _Chunk, a: int, b: int, pos: int
) -> Iterator[tuple[bytes, int, int, int]]:
    while a < b:
        block = _pread_exactly(chunk, a, min(b, a + _FILE_BLOCK))
        yield block, 0, len(block), pos
        pos += len(block)
        a += len(block)
