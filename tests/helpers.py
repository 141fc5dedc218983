"""Helpers shared by the test modules (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import random

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def documented_output(chapter: str, example: str) -> str:
    """The ```text block that follows the literalinclude of *example* in *chapter*."""
    text = (ROOT / "docs" / chapter).read_text()
    include = r"literalinclude\W+\.\./examples/" + re.escape(example)
    match = re.search(include + r".*?```text\n(.*?)```", text, re.S)
    assert match, f"{chapter} shows no output for {example}"
    return match.group(1)


class NotHalfCloseable(trio.abc.Stream):
    """A plain Stream (like trio.SSLStream): no send_eof."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def send_in_pieces(
    stream: trio.abc.SendStream, data: bytes, rng: random.Random, max_piece: int
) -> None:
    """Send *data* in pieces of random sizes, 1 to *max_piece* bytes each."""
    view = memoryview(data)
    while view:
        size = rng.randint(1, max_piece)
        await stream.send_all(view[:size])
        view = view[size:]
