"""evtrio._util: the conflict detector, OS-error translation, factory-only classes."""

from __future__ import annotations

import array
import errno

import pytest
import trio
import trio.testing

from evtrio._util import (
    ConflictDetector,
    NoPublicConstructor,
    byte_view,
    half_closeable_class,
    translate_os_errors,
)


def test_ConflictDetector_refuses_a_second_holder() -> None:
    detector = ConflictDetector("another task is sending")
    busy = pytest.raises(trio.BusyResourceError, match="another task is sending")
    with detector, busy, detector:
        pass
    with detector:  # released again, even though the inner use failed
        pass


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOTSOCK])
def test_translate_os_errors_own_close(code: int) -> None:
    with (
        pytest.raises(trio.ClosedResourceError, match="stream already closed"),
        translate_os_errors("stream"),
    ):
        raise OSError(code, "closed")


def test_translate_os_errors_broken() -> None:
    with (
        pytest.raises(trio.BrokenResourceError, match="connection broken") as info,
        translate_os_errors(),
    ):
        raise ConnectionResetError(errno.ECONNRESET, "reset by peer")
    assert isinstance(info.value.__cause__, ConnectionResetError)


def test_NoPublicConstructor() -> None:
    class Made(metaclass=NoPublicConstructor):
        def __init__(self, value: int) -> None:
            self.value = value

    with pytest.raises(TypeError, match="no public constructor"):
        Made(1)
    assert Made._create(2).value == 2


def test_NoPublicConstructor_combines_with_trio_abcs() -> None:
    class Factory(trio.abc.AsyncResource, metaclass=NoPublicConstructor):
        async def aclose(self) -> None:
            pass

    with pytest.raises(TypeError, match="no public constructor"):
        Factory()
    assert isinstance(Factory._create(), trio.abc.AsyncResource)


def test_byte_view_flattens_any_bytes_like() -> None:
    assert byte_view(array.array("H", [1, 2])).tobytes() == array.array("H", [1, 2]).tobytes()
    assert byte_view(memoryview(b"abcdef")[::2]).tobytes() == b"ace"  # copied: not contiguous
    data = bytearray(b"xyz")
    assert byte_view(data).obj is data  # contiguous bytes: no copy


def test_half_closeable_class() -> None:
    class Plain:
        pass

    class Half(Plain):
        pass

    half, _ = trio.testing.memory_stream_pair()
    assert half_closeable_class(Plain, Plain, Half, half) is Half
    assert half_closeable_class(Plain, Plain, Half, object()) is Plain
    assert half_closeable_class(Half, Plain, Half, half) is Half
    with pytest.raises(TypeError, match="not half-closeable: use Plain"):
        half_closeable_class(Half, Plain, Half, object())
