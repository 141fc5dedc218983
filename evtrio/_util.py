"""Small private helpers shared across evtrio (Trio keeps its own versions private)."""

from __future__ import annotations

__all__ = (
    "ConflictDetector",
    "NoPublicConstructor",
    "byte_view",
    "half_closeable_class",
    "stream_error",
    "translate_os_errors",
)

import errno
from abc import ABCMeta
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import trio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from typing_extensions import Buffer as BytesLike

T = TypeVar("T")
S = TypeVar("S")

_CLOSED_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})
"""What a socket says when we closed it ourselves (another task may still be using it)."""


class NoPublicConstructor(ABCMeta):
    """A metaclass for classes that only evtrio's factories may build (``cls._create``).

    It derives from :class:`abc.ABCMeta`, so it combines with Trio's abstract base
    classes (``trio.abc.Listener``, ``trio.abc.Stream``).
    """

    def __call__(cls, *args: object, **kwargs: object) -> Any:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no public constructor")

    def _create(cls: type[T], *args: object, **kwargs: object) -> T:
        return super().__call__(*args, **kwargs)  # type: ignore[misc, no-any-return]


@final
class ConflictDetector:
    """Raise :exc:`trio.BusyResourceError` when two tasks use one direction at once.

    Use as ``with self._send_conflict:`` around the whole of an operation.
    """

    __slots__ = ("_held", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    @property
    def held(self) -> bool:
        """Whether a task is inside the guarded operation right now."""
        return self._held

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._held = False


def stream_error(exc: OSError, what: str = "connection") -> Exception:
    """The Trio stream error for an :exc:`OSError` from a socket call.

    ``EBADF``/``ENOTSOCK`` mean we closed the socket ourselves:
    :exc:`trio.ClosedResourceError`. Any other OS error is
    :exc:`trio.BrokenResourceError` (raise it ``from exc``). Hot paths call this from
    their own ``except OSError``; elsewhere use :func:`translate_os_errors`.
    """
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError(f"{what} already closed")
    return trio.BrokenResourceError(f"{what} broken: {exc}")


@contextmanager
def translate_os_errors(what: str = "connection") -> Iterator[None]:
    """Turn :exc:`OSError` into Trio's stream errors, at one boundary (see
    :func:`stream_error`). :exc:`BlockingIOError` passes through untouched: the caller
    waits and retries.
    """
    try:
        yield
    except BlockingIOError:
        raise
    except OSError as exc:
        error = stream_error(exc, what)
        raise error from (None if isinstance(error, trio.ClosedResourceError) else exc)


def byte_view(data: BytesLike) -> memoryview:
    """A flat, C-contiguous, unsigned-byte view of any bytes-like object (a copy only
    when the object is not contiguous)."""
    view = memoryview(data)
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    if view.format != "B" or view.ndim != 1:
        return view.cast("B")
    return view


def half_closeable_class(cls: type[S], plain: type[S], half: type[S], transport: object) -> type[S]:
    """The class a wrapper's ``__new__`` should build for *transport*.

    ``Wrapper(transport)`` gives the half-closeable subclass exactly when *transport*
    is a :class:`trio.abc.HalfCloseableStream`; naming the subclass directly over
    another transport is refused.

    Raises:
      TypeError: *cls* is the half-closeable class and *transport* is not half-closeable.
    """
    half_closeable = isinstance(transport, trio.abc.HalfCloseableStream)
    if cls is plain and half_closeable:
        return half
    if cls is half and not half_closeable:
        raise TypeError(f"{transport!r} is not half-closeable: use {plain.__name__}")
    return cls
