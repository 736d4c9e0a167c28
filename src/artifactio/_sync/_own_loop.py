"""An event loop that the main thread runs itself, one blocking call at a time.

The blocking facade runs a network store's one-off calls made from the main
thread here, with ``loop.run_until_complete``, instead of handing them to its
loop thread (see :mod:`._runner` for when and why). The loop runs only while a
call runs; between calls it sits idle, whatever it holds (the store's client
and its connections) waiting for the next call.

:attr:`OwnLoop.lock` is held while the loop runs. The main thread holds it for
each call; another thread takes it to close the loop (the facade's ``close()``
or its finalizer), and so runs the loop for a while itself: an event loop has
no thread of its own, only one runner at a time, which the lock guarantees.

``Ctrl-C`` during a call cancels the call's task (a SIGINT handler swapped in
for the call, as ``asyncio.Runner`` does), waits until it has unwound, and
raises ``KeyboardInterrupt``; a second ``Ctrl-C`` stops that wait. So the
interrupt never lands inside the loop's own machinery or a connection's
callbacks, and the loop stays usable.

The loop is asyncio's own whatever ``ARTIFACTIO_EVENT_LOOP`` says (that is for
the loop threads; :mod:`._runner` says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, TypeVar

try:  # the C module: the ``signal`` wrappers convert to enums, 5 us per call
    _sig: Any = importlib.import_module("_signal")
except ImportError:  # pragma: no cover - every CPython has it
    _sig = signal

from .._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import FrameType

__all__ = ["OwnLoop"]

T = TypeVar("T")


class OwnLoop:
    """An event loop run by whichever thread holds :attr:`lock`, normally the main thread.

    Attributes:
        loop: The event loop (never set as any thread's current loop).
        lock: Held while the loop runs.
        pid: The process that made it: a forked child must not touch it.
        close_when_idle: Set by a ``close()`` made from inside a call running
            on this loop: the call closes the loop when it returns.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.close_when_idle = False
        self._closer_timeout: float | None = None
        self._current: asyncio.Task[Any] | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Take the lock, run ``coro`` to completion and return its result.

        Raises:
            StoreClosedError: The loop was closed (its facade was closed meanwhile).
        """
        try:
            self.lock.acquire()
        except BaseException:
            coro.close()
            raise
        try:
            return self.run_locked(coro)
        finally:
            try:
                if self.close_when_idle:
                    self.close_locked(self._closer_timeout)
            finally:
                self.lock.release()

    def run_locked(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion; the caller holds :attr:`lock` and runs no loop."""
        loop = self.loop
        if loop.is_closed():
            coro.close()
            raise StoreClosedError("the ArtifactStore is closed")
        task = loop.create_task(coro)  # in a copy of the caller's context
        self._current = task
        interrupted = False
        swapped = (
            threading.current_thread() is threading.main_thread()
            and _sig.getsignal(_sig.SIGINT) is _sig.default_int_handler
        )

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            nonlocal interrupted
            if interrupted or task.done():
                raise KeyboardInterrupt
            interrupted = True
            task.cancel()
            loop.call_soon_threadsafe(_nothing)  # wakes the loop from its select()

        if swapped:
            _sig.signal(_sig.SIGINT, on_sigint)
        try:
            try:
                result = loop.run_until_complete(task)
            except BaseException:
                if not task.done():  # KeyboardInterrupt raised by someone else's handler
                    task.cancel()
                    loop.run_until_complete(asyncio.wait({task}))
                if interrupted:
                    raise KeyboardInterrupt from None
                raise
            if interrupted:  # the task ignored the cancellation and finished
                raise KeyboardInterrupt
            return result
        finally:
            self._current = None
            if swapped:
                _sig.signal(_sig.SIGINT, _sig.default_int_handler)

    def cancel_call(self) -> None:
        """From another thread: cancel the call running on the loop now, if any."""
        task = self._current
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self.loop.call_soon_threadsafe(task.cancel)

    def close_later(self, timeout: float | None) -> None:
        """Have the call running on this loop (in this thread) close it when it returns."""
        self._closer_timeout = timeout
        self.close_when_idle = True

    def close(self, timeout: float | None = None) -> None:
        """Take the lock, then :meth:`close_locked`; the calling thread runs no loop."""
        with self.lock:
            self.close_locked(timeout)

    def close_locked(self, timeout: float | None = None) -> None:
        """Let the loop's tasks finish, then close it; the caller holds :attr:`lock`.

        Tasks still pending (closings another thread scheduled here, clean-ups a
        cancelled call left) run to their end, for at most ``timeout`` seconds
        (``None``: as long as they take); those left are cancelled. Then async
        generators are closed (a store client's guard closes the client with
        it), the default executor is shut down and the loop closed. Idempotent.
        """
        loop = self.loop
        self.close_when_idle = False
        if loop.is_closed():
            return
        try:
            loop.run_until_complete(_wind_down(timeout))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


async def _wind_down(timeout: float | None) -> None:
    """Wait (at most ``timeout``) for the loop's other tasks, then cancel those left."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    me = asyncio.current_task()
    await asyncio.sleep(0)  # callbacks scheduled from other threads start their tasks
    while True:
        pending = asyncio.all_tasks() - {me}
        if not pending:
            return
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        await asyncio.wait(pending, timeout=remaining)
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait(pending, timeout=timeout)


def _nothing() -> None:
    pass
