"""Unit tests for evtrio.Buffer: one group per concept, with exact numbers."""

from __future__ import annotations

import array
import contextlib
import errno
import gc
import os
import socket
import tempfile
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from evtrio import (
    EOL,
    Buffer,
    BufferChange,
    BufferFrozenError,
    FileSegment,
    FileSegmentError,
    LineTooLongError,
    ReservationError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def chunked(*parts: bytes) -> Buffer:
    """A buffer holding each part in a chunk of its own (references are never merged)."""
    buf = Buffer()
    for part in parts:
        buf.add_reference(part)
    return buf


class Counter:
    """A cleanup callable that records how often it ran."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


def make_file(tmp_path: Path, data: bytes, name: str = "data.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------- basics


def test_Buffer_starts_with_data() -> None:
    buf = Buffer(b"hello")
    assert len(buf) == 5
    assert bytes(buf) == b"hello"
    assert buf.contiguous_space == 5
    assert repr(buf) == "<Buffer 5 bytes in 1 chunks>"
    assert not Buffer()
    assert Buffer().contiguous_space == 0


def test_Buffer_add_small_writes_are_packed() -> None:
    buf = Buffer()
    for piece in (b"ab", bytearray(b"cd"), memoryview(b"ef")):
        buf.add(piece)
    assert bytes(buf) == b"abcdef"
    assert buf.contiguous_space == 6


def test_Buffer_add_large_bytes_is_not_copied() -> None:
    payload = b"x" * 100_000
    buf = Buffer()
    buf.add(b"head")
    buf.add(payload)
    views = buf.peek()
    assert [len(v) for v in views] == [4, 100_000]
    assert views[1].obj is payload


def test_Buffer_add_copies_mutable_input() -> None:
    source = bytearray(b"a" * 5000)
    buf = Buffer(source)
    source[:] = b"b" * 5000
    assert bytes(buf) == b"a" * 5000


def test_Buffer_add_accepts_any_bytes_like() -> None:
    numbers = array.array("i", [1, 2, 3])
    buf = Buffer(numbers)
    assert bytes(buf) == numbers.tobytes()
    strided = memoryview(b"abcdef")[::2]
    buf.add(strided)
    assert bytes(buf).endswith(b"ace")
    buf.add(b"")
    assert len(buf) == 12 + 3


def test_Buffer_prepend() -> None:
    buf = Buffer(b"world")
    buf.prepend(b"hello ")
    buf.prepend(bytearray(b">"))
    assert bytes(buf) == b">hello world"


def test_Buffer_expand_then_add_uses_one_chunk() -> None:
    buf = Buffer()
    buf.expand(10_000)
    buf.add(bytearray(b"a" * 3000))
    buf.add(bytearray(b"b" * 3000))
    buf.add(bytearray(b"c" * 3000))
    assert buf.contiguous_space == 9000
    assert len(buf.peek()) == 1
    with pytest.raises(ValueError, match=">= 0"):
        buf.expand(-1)


# ---------------------------------------------------------------------- moving between buffers


def test_Buffer_add_buffer_moves_chunks() -> None:
    payload = b"p" * 2048
    src = Buffer(payload)
    src.add(b"tail")
    dst = Buffer(b"head")
    dst.add_buffer(src)
    assert bytes(dst) == b"head" + payload + b"tail"
    assert len(src) == 0
    assert any(view.obj is payload for view in dst.peek())
    with pytest.raises(ValueError, match="itself"):
        dst.add_buffer(dst)


def test_Buffer_prepend_buffer() -> None:
    src = chunked(b"one ", b"two ")
    dst = Buffer(b"three")
    dst.prepend_buffer(src)
    assert bytes(dst) == b"one two three"
    assert len(src) == 0
    dst.add(b"!")
    assert bytes(dst) == b"one two three!"
    with pytest.raises(ValueError, match="itself"):
        dst.prepend_buffer(dst)


def test_Buffer_remove_buffer_splits_a_chunk() -> None:
    src = chunked(b"abc", b"defgh", b"ij")
    dst = Buffer(b">")
    assert src.remove_buffer(dst, 5) == 5
    assert bytes(dst) == b">abcde"
    assert bytes(src) == b"fghij"
    assert src.remove_buffer(dst, 100) == 5
    assert bytes(dst) == b">abcdefghij"
    assert src.remove_buffer(dst, 1) == 0
    with pytest.raises(ValueError, match="within one buffer"):
        src.remove_buffer(src, 1)
    with pytest.raises(ValueError, match=">= 0"):
        dst.remove_buffer(src, -1)


def test_Buffer_remove_buffer_then_write_both_sides() -> None:
    src = Buffer()
    src.add(b"0123456789")
    dst = Buffer()
    src.remove_buffer(dst, 4)
    dst.add(b"XY")
    src.add(b"AB")
    assert bytes(dst) == b"0123XY"
    assert bytes(src) == b"456789AB"


def test_Buffer_add_buffer_reference_shares_without_removing() -> None:
    cleanup = Counter()
    src = Buffer(b"small")
    src.add_reference(b"R" * 10, cleanup)
    dst = Buffer(b"<")
    dst.add_buffer_reference(src)
    assert bytes(dst) == b"<small" + b"R" * 10
    assert bytes(src) == b"small" + b"R" * 10
    src.add(b"!")  # must not land in memory that dst shares
    assert bytes(dst) == b"<small" + b"R" * 10
    src.clear()
    assert cleanup.calls == 0
    dst.clear()
    assert cleanup.calls == 1
    with pytest.raises(ValueError, match="itself"):
        dst.add_buffer_reference(dst)


# ---------------------------------------------------------------------- removing


def test_Buffer_drain_remove_copyout() -> None:
    buf = chunked(b"abc", b"def", b"ghi")
    assert buf.copyout(4) == b"abcd"
    assert buf.copyout(4, start=7) == b"hi"
    assert buf.copyout(4, start=20) == b""
    buf.drain(2)
    assert buf.remove(3) == b"cde"
    assert buf.remove(100) == b"fghi"
    assert buf.remove(1) == b""
    buf.drain(5)
    assert len(buf) == 0
    for bad in (lambda: buf.drain(-1), lambda: buf.remove(-1), lambda: buf.copyout(-1)):
        with pytest.raises(ValueError, match=">= 0"):
            bad()


def test_Buffer_remove_whole_bytes_chunk_is_not_copied() -> None:
    payload = b"z" * 5000
    buf = Buffer(payload)
    assert buf.remove(5000) is payload


def test_Buffer_pullup() -> None:
    buf = chunked(b"ab", b"cd", b"ef")
    first = buf.pullup(2)
    assert bytes(first) == b"ab"
    assert first.readonly
    assert bytes(buf.pullup(5)) == b"abcde"
    assert buf.contiguous_space == 5
    assert bytes(buf) == b"abcdef"
    assert bytes(buf.pullup()) == b"abcdef"
    assert buf.contiguous_space == 6
    assert bytes(buf.pullup(0)) == b""
    with pytest.raises(ValueError, match="cannot pull up 7"):
        buf.pullup(7)


# ---------------------------------------------------------------------- lines


LINE_CASES = [
    # eol, buffered parts, expected lines, expected leftover
    (EOL.LF, [b"a\nb", b"\n"], [b"a", b"b"], b""),
    (EOL.LF, [b"a\r\n"], [b"a\r"], b""),
    (EOL.NUL, [b"a\0", b"\0b"], [b"a", b""], b"b"),
    (EOL.CRLF, [b"a\r", b"\nb\n"], [b"a", b"b"], b""),
    (EOL.CRLF, [b"a\r\r\n"], [b"a\r"], b""),
    (EOL.CRLF, [b"\n", b"\r\n"], [b"", b""], b""),
    (EOL.CRLF_STRICT, [b"a\nb\r", b"\nc"], [b"a\nb"], b"c"),
    (EOL.CRLF_STRICT, [b"a\r", b"\r", b"\n"], [b"a\r"], b""),
    (EOL.ANY, [b"a\r", b"\n\r", b"\nb\n"], [b"a", b"b"], b""),
    (EOL.ANY, [b"a", b"\r", b"\r", b"b"], [b"a"], b"b"),
    (EOL.ANY, [b"\n\nx"], [b""], b"x"),
]


@pytest.mark.parametrize(("eol", "parts", "lines", "leftover"), LINE_CASES)
def test_Buffer_readln_terminators_split_across_chunks(
    eol: EOL, parts: list[bytes], lines: list[bytes], leftover: bytes
) -> None:
    for buf in (chunked(*parts), Buffer(b"".join(parts))):
        got = []
        while (line := buf.readln(eol)) is not None:
            got.append(line)
        assert got == lines
        assert bytes(buf) == leftover


def test_Buffer_readln_incomplete_line_returns_none() -> None:
    buf = chunked(b"abc", b"de\r")
    assert buf.readln(EOL.CRLF_STRICT) is None
    assert buf.readln(EOL.CRLF) is None
    assert buf.readln(EOL.LF) is None
    assert bytes(buf) == b"abcde\r"
    assert Buffer().readln() is None


@pytest.mark.parametrize("eol", list(EOL))
def test_Buffer_readln_max_length_boundary(eol: EOL) -> None:
    term = {
        EOL.LF: b"\n",
        EOL.NUL: b"\0",
        EOL.CRLF: b"\r\n",
        EOL.CRLF_STRICT: b"\r\n",
        EOL.ANY: b"\n",
    }[eol]
    for split in (None, 3):
        ok = b"x" * 8 + term
        parts = [ok] if split is None else [ok[:split], ok[split:]]
        assert chunked(*parts).readln(eol, max_length=8) == b"x" * 8
        long_line = b"x" * 9 + term
        buf = chunked(long_line[:split], long_line[split:]) if split else Buffer(long_line)
        with pytest.raises(LineTooLongError) as info:
            buf.readln(eol, max_length=8)
        assert info.value.max_length == 8
        assert bytes(buf) == long_line  # untouched


def test_Buffer_readln_max_length_without_terminator() -> None:
    buf = Buffer(b"x" * 8)
    assert buf.readln(max_length=8) is None  # could still be an 8-byte line
    buf.add(b"\r")
    assert buf.readln(max_length=8) is None  # the CR may begin CRLF
    assert buf.readln(EOL.CRLF_STRICT, max_length=8) is None
    with pytest.raises(LineTooLongError):
        buf.readln(EOL.LF, max_length=8)
    buf.add(b"y")
    with pytest.raises(LineTooLongError) as info:
        buf.readln(max_length=8)
    assert info.value.buffered == 10
    assert bytes(buf) == b"x" * 8 + b"\ry"
    with pytest.raises(ValueError, match=">= 0"):
        buf.readln(max_length=-1)


def test_Buffer_readln_max_length_does_not_scan_everything() -> None:
    buf = Buffer(b"x" * 1_000_000 + b"\n")
    with pytest.raises(LineTooLongError):
        buf.readln(EOL.LF, max_length=100)
    assert buf.readln(EOL.LF) == b"x" * 1_000_000


def test_Buffer_readln_from_bytearray_chunks() -> None:
    buf = Buffer()
    buf.add(bytearray(b"one\r\ntwo\r\nthr"))
    assert buf.readln() == b"one"
    assert buf.readln() == b"two"
    buf.add(bytearray(b"ee\r\n"))
    line = buf.readln()
    assert line == b"three"
    assert type(line) is bytes


# ---------------------------------------------------------------------- search


def test_Buffer_search_spans_chunks() -> None:
    buf = chunked(b"ab", b"c", b"d", b"efab", b"cdx")
    assert buf.search(b"abcd") == 0
    assert buf.search(b"abcd", 1) == 6
    assert buf.search(b"bcde") == 1
    assert buf.search(b"fabc") == 5
    assert buf.search(b"cdx") == 8
    assert buf.search(b"zz") == -1
    assert buf.search(b"d") == 3


def test_Buffer_search_range() -> None:
    buf = chunked(b"xxab", b"cdxx")
    assert buf.search(b"abcd", 0, 6) == 2  # ends exactly at end
    assert buf.search(b"abcd", 0, 5) == -1
    assert buf.search(b"abcd", 3) == -1
    assert buf.search(b"", 3) == 3
    assert buf.search(b"", 8) == 8
    assert buf.search(b"", 9) == -1
    assert buf.search(bytearray(b"cd")) == 4
    with pytest.raises(ValueError, match=">= 0"):
        buf.search(b"a", -1)


def test_Buffer_search_long_pattern_over_tiny_chunks() -> None:
    data = b"the quick brown fox jumps over the lazy dog"
    buf = chunked(*(data[i : i + 1] for i in range(len(data))))
    for pattern in (b"brown fox", b"lazy dog", b"the", b"dog", b"o"):
        assert buf.search(pattern) == data.find(pattern)
        assert buf.search(pattern, 5) == data.find(pattern, 5)
    assert buf.search(b"cat") == -1


def test_Buffer_search_eol() -> None:
    buf = chunked(b"ab\r", b"\ncd\r\r\n\n")
    assert buf.search_eol(EOL.CRLF) == (2, 2)
    assert buf.search_eol(EOL.CRLF, start=3) == (3, 1)
    assert buf.search_eol(EOL.CRLF, start=4) == (7, 2)
    assert buf.search_eol(EOL.CRLF_STRICT, start=4) == (7, 2)
    assert buf.search_eol(EOL.LF) == (3, 1)
    assert buf.search_eol(EOL.ANY) == (2, 2)
    assert buf.search_eol(EOL.ANY, start=4) == (6, 4)
    assert buf.search_eol(EOL.NUL) == (-1, 0)
    with pytest.raises(ValueError, match=">= 0"):
        buf.search_eol(start=-2)


# ---------------------------------------------------------------------- zero-copy access


def test_Buffer_peek_returns_views() -> None:
    a, b, c = b"aaaa", b"bbbb", b"cccc"
    buf = chunked(a, b, c)
    views = buf.peek()
    assert [v.obj for v in views] == [a, b, c]
    assert all(v.readonly for v in views)
    assert [bytes(v) for v in buf.peek(6, start=2)] == [b"aa", b"bbbb"]
    assert [bytes(v) for v in buf.peek(2, start=5)] == [b"bb"]
    assert buf.peek(0) == []
    assert buf.peek(start=12) == []
    assert len(buf) == 12
    with pytest.raises(ValueError, match=">= 0"):
        buf.peek(-1)


def test_Buffer_views_survive_mutations() -> None:
    buf = Buffer()
    buf.add(b"abc")
    view = buf.peek()[0]
    for _ in range(100):  # would resize a bytearray that has an exported view
        buf.add(b"0123456789")
    buf.drain(50)
    buf.prepend(b"x")
    assert bytes(view) == b"abc"
    pulled = buf.pullup()
    buf.add(b"more")
    assert len(pulled) == 1 + 1003 - 50


def test_Buffer_reserve_commit() -> None:
    buf = Buffer(b"<")
    space = buf.reserve(10)
    assert len(space) == 10
    assert not space.readonly
    space[:3] = b"abc"
    assert len(buf) == 1  # nothing added before commit
    buf.commit(3)
    assert bytes(buf) == b"<abc"
    space = buf.reserve(5000)
    space[:2] = b"de"
    buf.commit(2)
    assert bytes(buf) == b"<abcde"


def test_Buffer_commit_misuse() -> None:
    buf = Buffer()
    with pytest.raises(ReservationError, match="nothing is reserved"):
        buf.commit(1)
    buf.reserve(4)[:4] = b"abcd"
    with pytest.raises(ReservationError, match="cannot commit 5"):
        buf.commit(5)
    with pytest.raises(ReservationError, match="cannot commit -1"):
        buf.commit(-1)
    buf.commit(4)  # still live after a refused commit
    with pytest.raises(ReservationError):
        buf.commit(1)  # a reservation commits once
    buf.reserve(4)
    buf.add(b"x")  # any other mutation invalidates it
    with pytest.raises(ReservationError):
        buf.commit(1)
    buf.reserve(4)
    buf.drain(1)
    with pytest.raises(ReservationError):
        buf.commit(1)
    assert bytes(buf) == b"bcdx"


def test_Buffer_uncommitted_reservation_adds_nothing() -> None:
    buf = Buffer()
    buf.reserve(100)[:5] = b"hello"
    buf.reserve(100)
    assert len(buf) == 0
    assert bytes(buf) == b""
    buf.commit(0)
    assert len(buf) == 0
    with pytest.raises(ValueError, match=">= 0"):
        buf.reserve(-1)


# ---------------------------------------------------------------------- socket I/O


def test_Buffer_read_from_socket(sockets: tuple[socket.socket, socket.socket]) -> None:
    a, b = sockets
    buf = Buffer()
    with pytest.raises(BlockingIOError):
        buf.read_from(b, 1024)
    assert len(buf) == 0
    a.sendall(b"hello world")
    assert buf.read_from(b, 5) == 5
    assert buf.read_from(b, 1024) == 6
    assert bytes(buf) == b"hello world"
    a.close()
    assert buf.read_from(b, 1024) == 0
    with pytest.raises(ValueError, match="> 0"):
        buf.read_from(b, 0)


def test_Buffer_write_to_socket_gathers_chunks(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, b = sockets
    buf = chunked(b"one ", b"two ", b"three")
    assert buf.write_to(a, 6) == 6
    assert bytes(buf) == b"o three"
    assert buf.write_to(a) == 7
    assert len(buf) == 0
    assert buf.write_to(a) == 0
    assert b.recv(100) == b"one two three"


def test_Buffer_write_to_full_socket_raises_blocking(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = sockets
    buf = Buffer(b"x" * 10_000_000)
    with pytest.raises(BlockingIOError):  # noqa: PT012 - fill the socket, then one more
        while True:
            buf.write_to(a)
    assert 0 < len(buf) < 10_000_000


def test_Buffer_write_to_sends_file_segment(
    sockets: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    a, b = sockets
    payload = os.urandom(100_000)
    path = make_file(tmp_path, payload)
    handle = path.open("rb")
    buf = Buffer(b"<")
    buf.add_file(handle, 10, 50_000)
    buf.add(b">")
    received = bytearray()
    while buf:
        with contextlib.suppress(BlockingIOError):
            buf.write_to(a)
        received += b.recv(1 << 20)
    while len(received) < 50_002:
        received += b.recv(1 << 20)
    assert bytes(received) == b"<" + payload[10:50_010] + b">"
    assert handle.closed


def test_Buffer_write_to_falls_back_without_sendfile(
    sockets: tuple[socket.socket, socket.socket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = sockets

    def no_sendfile(*args: object) -> int:
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(os, "sendfile", no_sendfile)
    buf = Buffer()
    buf.add_file(make_file(tmp_path, b"file contents").open("rb"))
    assert buf.write_to(a) == 13
    assert b.recv(100) == b"file contents"


# ---------------------------------------------------------------------- references


def test_Buffer_reference_cleanup_after_partial_drains() -> None:
    cleanup = Counter()
    buf = Buffer()
    buf.add_reference(b"0123456789", cleanup)
    buf.drain(3)
    assert buf.remove(3) == b"345"
    assert cleanup.calls == 0
    assert buf.readln(EOL.LF) is None
    buf.drain(4)
    assert cleanup.calls == 1
    buf.add(b"more")
    buf.clear()
    assert cleanup.calls == 1


def test_Buffer_reference_cleanup_follows_moves() -> None:
    cleanup = Counter()
    first = Buffer()
    first.add_reference(bytearray(b"abcdefgh"), cleanup)
    second, third = Buffer(), Buffer()
    first.remove_buffer(second, 3)  # the chunk is now split over two buffers
    third.add_buffer(first)
    second.drain(3)
    assert cleanup.calls == 0
    assert bytes(third) == b"defgh"
    third.drain(5)
    assert cleanup.calls == 1


def test_Buffer_reference_cleanup_after_pullup_and_write(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    a, b = sockets
    one, two = Counter(), Counter()
    buf = Buffer()
    buf.add_reference(b"ab", one)
    buf.add_reference(b"cd", two)
    buf.pullup(3)
    assert (one.calls, two.calls) == (1, 0)
    assert buf.write_to(a) == 4
    assert b.recv(10) == b"abcd"
    assert (one.calls, two.calls) == (1, 1)


def test_Buffer_reference_cleanup_on_garbage_collection() -> None:
    cleanup = Counter()
    buf = Buffer()
    buf.add_reference(b"abc", cleanup)
    del buf
    gc.collect()
    assert cleanup.calls == 1


def test_Buffer_reference_cleanup_error_after_consistency() -> None:
    def failing() -> None:
        raise RuntimeError("cleanup failed")

    buf = Buffer()
    buf.add_reference(b"abc", failing)
    buf.add(b"def")
    with pytest.raises(RuntimeError, match="cleanup failed"):
        buf.drain(4)
    assert bytes(buf) == b"ef"


def test_Buffer_reference_of_other_buffer_types() -> None:
    numbers = array.array("H", [0x4142, 0x4344])
    cleanup = Counter()
    buf = Buffer()
    buf.add_reference(numbers, cleanup)
    assert len(buf) == 4
    assert buf.search(numbers.tobytes()[1:3]) == 1
    assert buf.readln(EOL.LF) is None
    buf.add_reference(b"", cleanup)
    assert cleanup.calls == 1  # an empty reference is released at once
    with pytest.raises(ValueError, match="C-contiguous"):
        buf.add_reference(memoryview(b"abcd")[::2])
    assert buf.remove(4) == numbers.tobytes()
    assert cleanup.calls == 2


# ---------------------------------------------------------------------- file segments


def test_Buffer_add_file_reads_lazily(tmp_path: Path) -> None:
    lines = b"".join(b"line %d\n" % i for i in range(20_000))
    handle = make_file(tmp_path, lines).open("rb")
    buf = Buffer()
    buf.add_file(handle)
    assert len(buf) == len(lines)
    assert buf.search(b"line 19999\n") == lines.find(b"line 19999\n")
    assert buf.copyout(7, start=7) == lines[7:14]
    assert buf.readln(EOL.LF) == b"line 0"
    assert [bytes(v) for v in buf.peek(5)] == [b"line "]
    buf.drain(len(buf) - 11)
    assert not handle.closed
    assert buf.remove(100) == b"line 19999\n"
    assert bytes(buf) == b""
    assert handle.closed


def test_Buffer_add_file_region_and_fd(tmp_path: Path) -> None:
    path = make_file(tmp_path, b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    buf = Buffer()
    buf.add_file(fd, 2, 5)
    assert bytes(buf) == b"23456"
    buf.clear()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    for offset, length in ((11, None), (5, 6), (-1, 1)):
        handle = path.open("rb")
        with pytest.raises(ValueError, match="file"):
            buf.add_file(handle, offset, length)
        assert not handle.closed  # not taken when refused
        handle.close()


def test_FileSegment_shared_between_buffers(tmp_path: Path) -> None:
    cleanup = Counter()
    handle = make_file(tmp_path, b"abcdefghij").open("rb")
    with FileSegment(handle, 1, 8, cleanup=cleanup) as segment:
        one, two = Buffer(), Buffer()
        one.add_file_segment(segment)
        two.add_file_segment(segment, 2, 3)
        assert repr(segment).endswith("open>")
    assert bytes(one) == b"bcdefghi"
    assert bytes(two) == b"def"
    one.clear()
    assert not handle.closed
    two.clear()
    assert handle.closed
    assert cleanup.calls == 1
    with pytest.raises(ValueError, match="closed"):
        one.add_file_segment(segment)


def test_FileSegment_region_checks(tmp_path: Path) -> None:
    with FileSegment(make_file(tmp_path, b"abc").open("rb")) as segment:
        with pytest.raises(ValueError, match="outside"):
            Buffer().add_file_segment(segment, 2, 2)
        buf = Buffer()
        buf.add_file_segment(segment, 3)
        assert len(buf) == 0


def test_Buffer_file_that_shrank(tmp_path: Path) -> None:
    path = make_file(tmp_path, b"x" * 100)
    handle = path.open("rb")
    buf = Buffer()
    buf.add_file(handle)
    path.write_bytes(b"x" * 10)
    with pytest.raises(FileSegmentError, match="ended after 10 bytes") as info:
        bytes(buf)
    assert info.value.expected == 100
    assert len(buf) == 100
    buf.clear()  # draining needs no reading
    assert handle.closed


# ---------------------------------------------------------------------- callbacks


def test_Buffer_callbacks_report_each_change() -> None:
    seen: list[BufferChange] = []
    src = Buffer(b"src")
    buf = Buffer()
    handle = buf.add_callback(seen.append)
    buf.add(b"abcdef")
    buf.drain(1)
    buf.remove(2)
    buf.prepend(b"xy")
    buf.add_buffer(src)
    assert buf.readln(EOL.LF) is None
    buf.add(b"\n")
    buf.readln(EOL.LF)
    buf.reserve(4)[:2] = b"zz"
    buf.commit(2)
    buf.drain(0)
    buf.pullup()  # contents unchanged: no report
    assert seen == [
        BufferChange(0, 6, 0),
        BufferChange(6, 0, 1),
        BufferChange(5, 0, 2),
        BufferChange(3, 2, 0),
        BufferChange(5, 3, 0),
        BufferChange(8, 1, 0),
        BufferChange(9, 0, 9),
        BufferChange(0, 2, 0),
    ]
    handle.enabled = False
    buf.add(b"quiet")
    assert len(seen) == 8
    buf.remove_callback(handle)
    with pytest.raises(ValueError, match="not registered"):
        buf.remove_callback(handle)
    assert "disabled" in repr(handle)


def test_Buffer_callbacks_see_both_sides_of_a_move() -> None:
    seen: list[tuple[str, BufferChange]] = []
    src, dst = Buffer(b"abcdef"), Buffer(b"xy")
    src.add_callback(lambda change: seen.append(("src", change)))
    dst.add_callback(lambda change: seen.append(("dst", change)))
    src.remove_buffer(dst, 4)
    assert seen == [("src", BufferChange(6, 0, 4)), ("dst", BufferChange(2, 4, 0))]


def test_Buffer_callback_error_after_consistency() -> None:
    calls: list[int] = []
    buf = Buffer()

    def failing(change: BufferChange) -> None:
        raise RuntimeError("boom")

    buf.add_callback(failing)
    buf.add_callback(lambda change: calls.append(change.n_added))
    with pytest.raises(RuntimeError, match="boom"):
        buf.add(b"abc")
    assert bytes(buf) == b"abc"
    assert calls == [3]  # later callbacks still ran
    buf.add_callback(failing)
    with pytest.raises(ExceptionGroup) as info:
        buf.add(b"d")
    assert len(info.value.exceptions) == 2


def test_Buffer_callbacks_may_use_the_buffer() -> None:
    buf = Buffer()
    lines: list[bytes] = []

    def on_change(change: BufferChange) -> None:
        if change.n_added:
            while (line := buf.readln(EOL.LF)) is not None:
                lines.append(line)

    buf.add_callback(on_change)
    buf.add(b"a\nb")
    buf.add(b"\nc\n")
    assert lines == [b"a", b"b", b"c"]


def test_Buffer_callbacks_suspended_report_net_change() -> None:
    seen: list[BufferChange] = []
    buf = Buffer(b"0123")
    buf.add_callback(seen.append)
    with buf.callbacks_suspended():
        buf.add(b"abc")
        with buf.callbacks_suspended():
            buf.drain(5)
        buf.add(b"d")
        assert seen == []
    assert seen == [BufferChange(4, 4, 5)]
    with buf.callbacks_suspended():
        pass
    assert len(seen) == 1


# ---------------------------------------------------------------------- freezing


def test_Buffer_frozen_front_refuses_and_changes_nothing(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    buf = Buffer(b"abc\n")
    other = Buffer(b"x")
    buf.freeze(front=True)
    assert buf.frozen_front
    refused = [
        lambda: buf.drain(1),
        lambda: buf.remove(1),
        lambda: buf.readln(EOL.LF),
        lambda: buf.prepend(b"x"),
        lambda: buf.remove_buffer(other, 1),
        lambda: other.add_buffer(buf),
        lambda: other.prepend_buffer(buf),
        lambda: buf.prepend_buffer(other),
        lambda: buf.write_to(sockets[0]),
    ]
    for operation in refused:
        with pytest.raises(BufferFrozenError) as info:
            operation()
        assert info.value.side == "front"
    assert bytes(buf) == b"abc\n"
    assert bytes(other) == b"x"
    buf.add(b"more")  # the back is open
    assert buf.copyout(2) == b"ab"
    assert buf.search(b"more") == 4
    buf.unfreeze(front=True)
    assert buf.remove(4) == b"abc\n"


def test_Buffer_frozen_back_refuses_and_changes_nothing(
    sockets: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    buf = Buffer(b"abc")
    space = buf.reserve(2)
    space[:2] = b"zz"
    buf.freeze(front=False)
    assert buf.frozen_back
    other = Buffer(b"x")
    handle = make_file(tmp_path, b"file").open("rb")
    refused = [
        lambda: buf.add(b"x"),
        lambda: buf.add_reference(b"x"),
        lambda: buf.add_file(handle),
        lambda: buf.add_buffer(other),
        lambda: buf.add_buffer_reference(other),
        lambda: other.remove_buffer(buf, 1),
        lambda: buf.expand(10),
        lambda: buf.reserve(1),
        lambda: buf.commit(2),
        lambda: buf.read_from(sockets[1], 10),
    ]
    for operation in refused:
        with pytest.raises(BufferFrozenError) as info:
            operation()
        assert info.value.side == "back"
    assert bytes(buf) == b"abc"
    assert bytes(other) == b"x"
    assert not handle.closed  # not taken when refused
    handle.close()
    assert buf.remove(1) == b"a"  # the front is open
    buf.unfreeze(front=False)
    buf.add(b"d")
    assert bytes(buf) == b"bcd"


# ---------------------------------------------------------------------- model-based


def model_find_eol(data: bytes, eol: EOL, start: int = 0) -> tuple[int, int]:
    """The reference answer, written the obvious way."""
    if eol in (EOL.LF, EOL.NUL):
        i = data.find(b"\n" if eol is EOL.LF else b"\0", start)
        return (i, 1) if i >= 0 else (-1, 0)
    if eol is EOL.CRLF_STRICT:
        i = data.find(b"\r\n", start)
        return (i, 2) if i >= 0 else (-1, 0)
    if eol is EOL.CRLF:
        i = data.find(b"\n", start)
        if i < 0:
            return -1, 0
        return (i - 1, 2) if i > start and data[i - 1] == 13 else (i, 1)
    hits = [i for i in (data.find(b"\r", start), data.find(b"\n", start)) if i >= 0]
    if not hits:
        return -1, 0
    i = j = min(hits)
    while j < len(data) and data[j] in b"\r\n":
        j += 1
    return i, j - i


def model_readln(
    data: bytearray, eol: EOL, max_length: int | None
) -> bytes | type[LineTooLongError] | None:
    pos, term = model_find_eol(bytes(data), eol)
    if max_length is not None:
        if pos > max_length:
            return LineTooLongError
        if pos < 0 and len(data) > max_length:
            pending = eol in (EOL.CRLF, EOL.CRLF_STRICT) and len(data) == max_length + 1
            if not (pending and data[-1] == 13):
                return LineTooLongError
    if pos < 0:
        return None
    line = bytes(data[:pos])
    del data[: pos + term]
    return line


# Line-heavy data makes readln and search_eol interesting.
PIECES = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"a", b"b", b"\r", b"\n", b"\0", b"ab"]), max_size=20).map(b"".join),
    st.binary(min_size=1000, max_size=3000),
)


class BufferMachine(RuleBasedStateMachine):
    """Random sequences of every operation, checked against bytearray models."""

    def __init__(self) -> None:
        super().__init__()
        self.buf = Buffer()
        self.model = bytearray()
        self.other = Buffer()
        self.other_model = bytearray()
        self.cleanups: list[Counter] = []
        self.files: list[object] = []
        self.tmpdir = tempfile.TemporaryDirectory()
        self.tracked = 0
        self.buf.add_callback(self.on_change)
        self.reserved: tuple[memoryview, int] | None = None

    def changed(self, n: int) -> None:
        """A mutation of *n* bytes invalidates the live reservation (none at all does not)."""
        if n:
            self.reserved = None

    def on_change(self, change: BufferChange) -> None:
        assert change.orig_size == self.tracked
        self.tracked += change.n_added - change.n_deleted

    # adding
    @rule(data=PIECES, kind=st.sampled_from(["bytes", "bytearray", "memoryview"]))
    def add(self, data: bytes, kind: str) -> None:
        self.buf.add({"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](data))
        self.model += data
        self.changed(len(data))

    @rule(data=PIECES)
    def prepend(self, data: bytes) -> None:
        self.buf.prepend(data)
        self.model[:0] = data
        self.changed(len(data))

    @rule(data=PIECES)
    def add_reference(self, data: bytes) -> None:
        counter = Counter()
        self.cleanups.append(counter)
        self.buf.add_reference(bytearray(data), counter)
        self.model += data
        self.changed(len(data))

    @rule(parts=st.lists(st.binary(min_size=1, max_size=3), min_size=1, max_size=12))
    def add_tiny_chunks(self, parts: list[bytes]) -> None:
        for part in parts:  # references are never merged: one chunk each
            self.buf.add_reference(part)
            self.model += part
        self.reserved = None

    @rule(data=PIECES, offset=st.integers(0, 10))
    def add_file(self, data: bytes, offset: int) -> None:
        path = os.path.join(self.tmpdir.name, f"f{len(self.files)}")
        with open(path, "wb") as out:
            out.write(b"-" * offset + data)
        handle = open(path, "rb")  # noqa: SIM115 - the buffer owns and closes it
        self.files.append(handle)
        self.buf.add_file(handle, offset)
        self.model += data
        self.changed(len(data))

    @rule(data=PIECES)
    def add_to_other(self, data: bytes) -> None:
        self.other.add(data)
        self.other_model += data

    @rule()
    def add_buffer(self) -> None:
        self.buf.add_buffer(self.other)
        self.model += self.other_model
        self.changed(len(self.other_model))
        self.other_model.clear()

    @rule()
    def prepend_buffer(self) -> None:
        self.buf.prepend_buffer(self.other)
        self.model[:0] = self.other_model
        self.changed(len(self.other_model))
        self.other_model.clear()

    @rule()
    def add_buffer_reference(self) -> None:
        self.buf.add_buffer_reference(self.other)
        self.model += self.other_model
        self.changed(len(self.other_model))

    @rule(n=st.integers(0, 5000))
    def remove_buffer(self, n: int) -> None:
        moved = self.buf.remove_buffer(self.other, n)
        assert moved == min(n, len(self.model))
        self.other_model += self.model[:moved]
        del self.model[:moved]
        self.changed(moved)

    @rule(n=st.integers(0, 5000))
    def drain_other(self, n: int) -> None:
        self.other.drain(n)
        del self.other_model[:n]

    @rule(n=st.integers(0, 5000), data=st.data())
    def reserve(self, n: int, data: st.DataObject) -> None:
        space = self.buf.reserve(n)
        assert len(space) == n
        filler = data.draw(st.binary(min_size=n, max_size=n))
        space[:] = filler
        self.reserved = (space, n)

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        if self.reserved is None:
            with pytest.raises(ReservationError):
                self.buf.commit(0)
            return
        space, n = self.reserved
        k = data.draw(st.integers(0, n))
        self.buf.commit(k)
        self.model += space[:k]
        self.reserved = None

    # removing and reading
    @rule(n=st.integers(0, 5000))
    def drain(self, n: int) -> None:
        self.buf.drain(n)
        self.changed(len(self.model[:n]))
        del self.model[:n]

    @rule(n=st.integers(0, 5000))
    def remove(self, n: int) -> None:
        assert self.buf.remove(n) == self.model[:n]
        self.changed(len(self.model[:n]))
        del self.model[:n]

    @rule(n=st.integers(0, 5000), start=st.integers(0, 5000))
    def copyout(self, n: int, start: int) -> None:
        assert self.buf.copyout(n, start=start) == self.model[start : start + n]

    @rule(data=st.data())
    def pullup(self, data: st.DataObject) -> None:
        n = data.draw(st.none() | st.integers(0, len(self.model)))
        view = self.buf.pullup(n)
        assert view == self.model[: len(self.model) if n is None else n]
        self.changed(len(view))

    @rule(n=st.none() | st.integers(0, 5000), start=st.integers(0, 5000))
    def peek(self, n: int | None, start: int) -> None:
        views = self.buf.peek(n, start=start)
        expected = self.model[start:] if n is None else self.model[start : start + n]
        assert b"".join(views) == expected
        assert all(views)

    @rule(eol=st.sampled_from(EOL), max_length=st.none() | st.integers(0, 50))
    def readln(self, eol: EOL, max_length: int | None) -> None:
        expected = model_readln(self.model, eol, max_length)
        if expected is LineTooLongError:
            with pytest.raises(LineTooLongError):
                self.buf.readln(eol, max_length=max_length)
        else:
            assert self.buf.readln(eol, max_length=max_length) == expected
            if expected is not None:
                self.changed(1)

    @rule(data=st.data())
    def search(self, data: st.DataObject) -> None:
        size = len(self.model)
        start = data.draw(st.integers(0, size + 2))
        end = data.draw(st.none() | st.integers(0, size + 2))
        a = data.draw(
            st.integers(max(0, size - 48), size) | st.integers(0, size)
        )  # tiny chunks sit at the end
        from_model = st.integers(0, 16).map(lambda k: bytes(self.model[a : a + k]))
        pattern = data.draw(from_model | st.binary(max_size=4))
        expected = bytes(self.model).find(pattern, start, size if end is None else end)
        assert self.buf.search(pattern, start, end) == expected

    @rule(eol=st.sampled_from(EOL), start=st.integers(0, 100))
    def search_eol(self, eol: EOL, start: int) -> None:
        assert self.buf.search_eol(eol, start=start) == model_find_eol(
            bytes(self.model), eol, start
        )

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.buf) == len(self.model) == self.tracked
        assert bytes(self.buf) == self.model
        assert len(self.other) == len(self.other_model)
        assert 0 <= self.buf.contiguous_space <= len(self.model)

    def teardown(self) -> None:
        self.buf.clear()
        self.other.clear()
        assert all(counter.calls == 1 for counter in self.cleanups)
        assert all(handle.closed for handle in self.files)  # type: ignore[attr-defined]
        self.tmpdir.cleanup()


TestBufferMachine = BufferMachine.TestCase
TestBufferMachine.settings = settings(stateful_step_count=40)


def test_Buffer_split_chunk_storage_is_never_reused() -> None:
    # Found by the state machine: a drained remainder of a split chunk was reused for
    # new bytes while the split-off part, still buffered, shared its storage.
    buf, other = Buffer(), Buffer()
    buf.add(b"\x01\x00")
    buf.remove_buffer(other, 1)
    buf.add_buffer(other)
    buf.drain(1)
    buf.reserve(1)[:1] = b"\xff"
    assert bytes(buf) == b"\x01"
