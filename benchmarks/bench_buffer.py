"""evtrio.Buffer against bytearray and asyncio.StreamReader, side by side in one run.

Workloads (the issue's acceptance list):
  (a) append fixed-size ``bytes`` chunks (4, 16 and 64 KiB) and drain them, keeping a
      queue a few chunks deep, as a socket buffer does;
  (b) read lines from 8 MiB of 80-byte lines (LF), all buffered, then fed 64 KiB at a
      time and read as they complete;
  (c) move 1 MiB (16 chunks of 64 KiB) from one buffer to another and drain it.

Numbers are the best of five runs; ratios above 1 mean evtrio is faster.
"""

from __future__ import annotations

import asyncio
import functools
import os

from evtrio import EOL, Buffer

from ._report import best_of, table

TOTAL = 64 * 1024 * 1024
DEPTH = 4


def _append_drain_buffer(chunk: bytes, rounds: int) -> None:
    buf = Buffer()
    size = len(chunk)
    for _ in range(DEPTH):
        buf.add(chunk)
    for _ in range(rounds):
        buf.add(chunk)
        buf.drain(size)


def _append_drain_bytearray(chunk: bytes, rounds: int) -> None:
    buf = bytearray()
    size = len(chunk)
    for _ in range(DEPTH):
        buf += chunk
    for _ in range(rounds):
        buf += chunk
        del buf[:size]


def _append_read_streamreader(chunk: bytes, rounds: int) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader(limit=1 << 30)
        size = len(chunk)
        for _ in range(DEPTH):
            reader.feed_data(chunk)
        for _ in range(rounds):
            reader.feed_data(chunk)
            await reader.readexactly(size)

    asyncio.run(run())


def bench_append_drain() -> None:
    for size in (4096, 16384, 65536):
        chunk = os.urandom(size)
        rounds = TOTAL // size
        rows = {
            name: TOTAL / best_of(functools.partial(run, chunk, rounds))
            for name, run in (
                ("evtrio.Buffer", _append_drain_buffer),
                ("bytearray", _append_drain_bytearray),
                ("StreamReader", _append_read_streamreader),
            )
        }
        table(f"(a) append + drain {size // 1024} KiB chunks", "B/s", rows, ours="evtrio.Buffer")


def _lines() -> tuple[bytes, int]:
    line = b"x" * 79 + b"\n"
    count = 8 * 1024 * 1024 // len(line)
    return line * count, count


def _pieces(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _readln_buffered(pieces: list[bytes], count: int, eol: EOL) -> None:
    buf = Buffer()
    for piece in pieces:
        buf.add(piece)
    readln = buf.readln
    for _ in range(count):
        readln(eol)


def _readln_streaming(pieces: list[bytes]) -> None:
    buf = Buffer()
    readln = buf.readln
    for piece in pieces:
        buf.add(piece)
        while readln(EOL.LF) is not None:
            pass


def _readline_bytearray(pieces: list[bytes]) -> None:
    buf = bytearray()
    for piece in pieces:
        buf += piece
        while (end := buf.find(b"\n")) >= 0:
            bytes(buf[:end])
            del buf[: end + 1]


def _readline_streamreader(pieces: list[bytes], count: int) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader(limit=1 << 16)
        for piece in pieces:
            reader.feed_data(piece)
        readline = reader.readline
        for _ in range(count):
            await readline()

    asyncio.run(run())


def bench_readln() -> None:
    data, count = _lines()
    pieces = _pieces(data)
    rows = {
        "evtrio.Buffer": count / best_of(lambda: _readln_buffered(pieces, count, EOL.LF)),
        "evtrio.Buffer (CRLF)": count / best_of(lambda: _readln_buffered(pieces, count, EOL.CRLF)),
        "bytearray.find": count / best_of(lambda: _readline_bytearray(pieces)),
        "StreamReader": count / best_of(lambda: _readline_streamreader(pieces, count)),
    }
    table(
        "(b) readln over 8 MiB of 80-byte lines, all buffered",
        "lines/s",
        rows,
        ours="evtrio.Buffer",
    )
    rows = {
        "evtrio.Buffer": count / best_of(lambda: _readln_streaming(pieces)),
        "bytearray.find": count / best_of(lambda: _readline_bytearray(pieces)),
    }
    table("(b') readln while 64 KiB pieces arrive", "lines/s", rows, ours="evtrio.Buffer")


def _move_buffer(pieces: list[bytes], rounds: int) -> None:
    src, dst = Buffer(), Buffer()
    for _ in range(rounds):
        for piece in pieces:
            src.add(piece)
        dst.add_buffer(src)
        dst.drain(len(dst))


def _move_bytearray(pieces: list[bytes], rounds: int) -> None:
    src, dst = bytearray(), bytearray()
    for _ in range(rounds):
        for piece in pieces:
            src += piece
        dst += src
        src.clear()
        dst.clear()


def bench_move() -> None:
    pieces = _pieces(os.urandom(1 << 20))
    rounds = 64
    rows = {
        "evtrio.Buffer": rounds / best_of(lambda: _move_buffer(pieces, rounds)),
        "bytearray": rounds / best_of(lambda: _move_bytearray(pieces, rounds)),
    }
    table("(c) add_buffer: move 1 MiB (16 x 64 KiB) and drain", "MiB/s", rows, ours="evtrio.Buffer")


def main() -> None:
    """Run every buffer benchmark and print the tables."""
    bench_append_drain()
    bench_readln()
    bench_move()


if __name__ == "__main__":
    main()
