"""What the generated blocking functions of :mod:`artifactio.blocking` call.

Each generated function hands its async twin and its arguments to :func:`run`,
which runs the coroutine to completion and returns its result (or raises its
exception, the original object).

The transfer engine sleeps between retries and runs task groups, so it cannot
be stepped inline as the facade steps local stores: it runs on the event loop of
one :class:`~artifactio._sync._runner.Runner`, a loop in a daemon thread that
every blocking transfer of the process shares, started on first use. So a
blocking transfer works from any thread (several at once), from inside a running
event loop (that loop stays blocked until the transfer returns, and nothing run
for the transfer waits for it), and in a child process after ``fork`` (the child
starts a loop of its own). The loop is stopped at interpreter exit.

A ``KeyboardInterrupt`` while waiting cancels the transfer and waits until it has
cleaned up (no partial file, no pending upload) before it reaches the caller; a
second one stops that wait.

``(store, path)`` pairs may hold an :class:`~artifactio.ArtifactStore` facade in
place of an async store: the transfer uses the facade's async store (an async
store works on any event loop). Stores in pairs are not closed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._paths import PathType
from .._store import AsyncArtifactStore
from ._base import FacadeBase
from ._runner import Runner
from ._store import ArtifactStore

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["Location", "run"]

T = TypeVar("T")

Location = PathType | tuple[AsyncArtifactStore | ArtifactStore, PathType]
"""An end of a blocking transfer: a URI or local path, or a ``(store, path)`` pair
whose store is an async store or a blocking facade."""

_lock = threading.Lock()
_runner: Runner | None = None


def run(function: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
    """Run ``function(*args, **kwargs)`` (a coroutine) on the shared loop thread.

    Facades in ``(store, path)`` pairs among ``args`` are replaced by their async stores.

    Raises:
        RuntimeError: Called from the shared loop thread itself (a progress
            callback, say): it would deadlock.
    """
    call = _Call(function, tuple(_as_async(arg) for arg in args), kwargs)
    try:
        return _shared_runner().run(call.main())
    except KeyboardInterrupt:
        call.wait_after_interrupt()
        raise


def _as_async(location: object) -> object:
    """``location``, with a facade in a ``(store, path)`` pair replaced by its async store."""
    if isinstance(location, tuple) and len(location) == 2 and isinstance(location[0], FacadeBase):
        return (location[0].async_store, location[1])
    return location


def _shared_runner() -> Runner:
    """The runner of every blocking transfer, made again once closed (at exit, say)."""
    global _runner
    with _lock:
        if _runner is None or _runner.closed:
            _runner = Runner(False, _nothing_to_close, "transfers")
        return _runner


async def _nothing_to_close() -> None:
    """The shared runner owns no store: stores are the transfer's own, or the caller's."""


class _Call(Generic[T]):
    """One blocking call: its coroutine is made on the loop, and its end can be waited for."""

    def __init__(
        self,
        function: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._function = function
        self._args = args
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._started = False
        self._abandoned = False
        self._finished = threading.Event()

    async def main(self) -> T:
        # The coroutine is made here, so one that never starts is never left unawaited.
        with self._lock:
            if self._abandoned:
                raise asyncio.CancelledError
            self._started = True
        try:
            return await self._function(*self._args, **self._kwargs)
        finally:
            self._finished.set()

    def wait_after_interrupt(self) -> None:
        """After a ``KeyboardInterrupt`` (the runner cancelled the task): wait for its end."""
        with self._lock:
            self._abandoned = True
            started = self._started
        if started:
            self._finished.wait()


def _reset_lock() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock)
