"""Wrappers compose in any order: TLS, zlib filters and rate limits over a pair.

Random data crosses a stack of wrappers in random-size writes while the writer's
drains and the reader's receives are cancelled at random; the reader must get exactly
the bytes sent. Cancellations hit the BufferedStream on top, where every operation is
cancellation-safe; the layers below run in its background tasks (a cancelled
``send_all`` on TLS or a filter would, by Trio's rule, leave that stream broken).
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

import pytest
import trio

from benchmarks.bench_wrappers import tls_contexts, wrapper_stack
from evtrio.streams import BufferedStream, FlushMode, start_buffered_stream

if TYPE_CHECKING:
    import ssl
    from collections.abc import Sequence

LAYERS = ("tls", "zlib", "ratelimit")


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts()


async def move_through(
    nursery: trio.Nursery,
    layers: Sequence[str],
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    size: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    inner_sender, inner_receiver = wrapper_stack(layers, contexts)
    sender = start_buffered_stream(nursery, inner_sender, write_high=65536)
    receiver = start_buffered_stream(nursery, inner_receiver, read_high=65536)

    async def send() -> None:
        view = memoryview(payload)
        while view:
            piece = view[: rng.randint(1, 40_000)]
            while len(sender.output) + len(piece) > sender.watermarks.write_high:
                with trio.move_on_after(rng.choice([0, 1e-5, 1e-4, 1e-3])):
                    await sender.drain()  # cancelled at random: queued bytes stay queued
            sender.write(piece)
            view = view[len(piece) :]
        await sender.flush(FlushMode.FLUSH)  # through every layer: zlib emits the rest

    nursery.start_soon(send)
    got = bytearray()
    with trio.fail_after(120):
        while len(got) < size:
            left = size - len(got)
            kind = rng.choice(("some", "exactly", "at_least"))
            with trio.move_on_after(rng.choice([0, 1e-5, 1e-4, 1e-3, 1e-2])):
                if kind == "some":
                    got += await receiver.receive_some(rng.randint(1, 50_000))
                elif kind == "exactly":
                    got += await receiver.receive_exactly(min(left, rng.randint(1, 50_000)))
                else:
                    got += await receiver.receive_at_least(min(left, rng.randint(1, 20_000)))
    assert bytes(got) == payload
    await sender.aclose()
    await receiver.aclose()


async def test_composition_tls_over_zlib_over_ratelimited_pair(
    nursery: trio.Nursery, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    await move_through(nursery, ("ratelimit", "zlib", "tls"), contexts, 8 << 20, seed=1)


@pytest.mark.parametrize(
    "layers",
    [order for order in itertools.permutations(LAYERS) if order != ("ratelimit", "zlib", "tls")],
    ids=lambda order: "-over-".join(reversed(order)),
)
async def test_composition_other_orders(
    nursery: trio.Nursery, layers: tuple[str, ...], contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    await move_through(nursery, layers, contexts, 1 << 20, seed=hash(layers) & 0xFFFF)


async def test_composition_keeps_half_close_only_without_tls(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    with_tls = wrapper_stack(("ratelimit", "zlib", "tls"), contexts)
    without = wrapper_stack(("zlib", "ratelimit"), contexts)
    assert not isinstance(BufferedStream(with_tls[0]), trio.abc.HalfCloseableStream)
    assert isinstance(BufferedStream(without[0]), trio.abc.HalfCloseableStream)
    for end in (*with_tls, *without):
        await end.aclose()
