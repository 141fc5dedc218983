"""evtrio._util: the conflict detector, OS-error translation, factory-only classes."""

from __future__ import annotations

import errno

import pytest
import trio

from evtrio._util import ConflictDetector, NoPublicConstructor, translate_os_errors


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
