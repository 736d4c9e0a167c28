"""Running the async store's coroutines for the blocking facade.

Two strategies, chosen once per facade from the store's ``inline_capable`` flag:

* **inline** (memory, local disk): the coroutine is stepped to completion in the
  caller's own thread by :func:`artifactio._blocking.run_inline`. No event loop,
  no thread hop, nothing to start or stop; safe from any thread, from inside a
  running event loop and after ``fork``.
* **loop thread** (S3, GCS, anything that really waits on the network): the
  coroutine runs on an event loop in a daemon thread owned by the facade,
  started on first use. The calling thread blocks until the result is ready and
  gets back the original exception. Many threads may call at once; a call from
  the loop thread itself raises ``RuntimeError`` instead of deadlocking; a
  ``KeyboardInterrupt`` while waiting cancels the coroutine.

After ``os.fork`` the child's copy of a runner forgets the parent's loop and
thread (they do not exist in the child) and starts a fresh loop when first
used; the parent's loop objects are kept referenced, never closed or collected
in the child, because closing them there would touch state the parent owns.
Runners still open at interpreter exit are closed by an ``atexit`` hook.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import itertools
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from .._blocking import run_inline
from .._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["Runner"]

T = TypeVar("T")

_EXIT_TIMEOUT = 10.0
"""How long the ``atexit`` hook waits for one store's ``aclose()``."""

_LIVE: weakref.WeakSet[Runner] = weakref.WeakSet()
"""Every runner not yet closed, for the fork and exit hooks."""

_ABANDONED: list[object] = []
"""A forked child's copies of its parent's loops and threads, kept alive on purpose."""

_COUNTER = itertools.count(1)


class Runner:
    """Runs coroutines of one async store for blocking callers.

    Args:
        inline: Drive coroutines in the caller's thread (the store is
            ``inline_capable``) instead of on a loop thread.
        closer: Makes the coroutine that releases the store (its ``aclose``);
            run by :meth:`close` and at interpreter exit.
        label: Names the loop thread, for debugging.
    """

    def __init__(
        self,
        inline: bool,
        closer: Callable[[], Coroutine[Any, Any, None]],
        label: str = "",
    ) -> None:
        self.inline = bool(inline)
        self._closer = closer
        self._name = f"artifactio-sync-{next(_COUNTER)}" + (f" {label}" if label else "")
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._loop_ident: int | None = None
        self._pid = os.getpid()
        self._closing = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        _LIVE.add(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`release`) has run."""
        return self._closed

    def _closed_error(self) -> StoreClosedError:
        return StoreClosedError("the ArtifactStore is closed")

    # ----------------------------------------------------------------- running

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion and return its result (or raise its exception).

        Raises:
            StoreClosedError: The runner was closed.
            RuntimeError: Called from the runner's own loop thread (it would deadlock).
        """
        if self._closed:
            coro.close()
            raise self._closed_error()
        if self.inline:
            return run_inline(coro)
        return self._run_on_loop(coro)

    def _run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        handed_over = False
        try:
            with self._lock:
                loop = self._ensure_loop()
                # From here on the coroutine belongs to _start (on the loop thread),
                # even if a KeyboardInterrupt lands inside call_soon_threadsafe.
                handed_over = True
                loop.call_soon_threadsafe(self._start, coro, future)
            return future.result()
        except concurrent.futures.CancelledError:
            if self._closed:
                raise self._closed_error() from None
            raise
        except BaseException:
            if handed_over:
                # KeyboardInterrupt (or anything else) while waiting: cancel the
                # coroutine; a no-op when it finished already.
                future.cancel()
            else:
                coro.close()
            raise

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        """The loop to submit to, started on first use (call with the lock held)."""
        if self._pid != os.getpid():
            self._forget_parent()
        if self._closed:
            raise self._closed_error()
        if self._loop_ident is not None and threading.get_ident() == self._loop_ident:
            raise RuntimeError(
                "the blocking ArtifactStore was called from its own event loop thread "
                "(e.g. from a walk() onerror callback); this would deadlock. "
                "Use the AsyncArtifactStore (store.async_store) with await there."
            )
        if self._loop is None:
            loop = asyncio.new_event_loop()
            stop = asyncio.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, stop), name=self._name, daemon=True
            )
            thread.start()
            self._loop, self._stop, self._thread = loop, stop, thread
            self._loop_ident = thread.ident
        return self._loop

    def _start(self, coro: Coroutine[Any, Any, T], future: concurrent.futures.Future[T]) -> None:
        """On the loop: run ``coro`` as a task whose outcome is copied into ``future``."""
        if future.cancelled():
            coro.close()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro)

        def task_done(task: asyncio.Task[T]) -> None:
            if future.cancelled():
                return
            if task.cancelled():
                future.cancel()
                return
            if not future.set_running_or_notify_cancel():
                return
            exc = task.exception()
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result())

        def future_done(future: concurrent.futures.Future[T]) -> None:
            if future.cancelled() and not task.done():
                with contextlib.suppress(RuntimeError):  # the loop is closed already
                    loop.call_soon_threadsafe(task.cancel)

        task.add_done_callback(task_done)
        future.add_done_callback(future_done)

    def run_cleanup(self, coro: Coroutine[Any, Any, None]) -> None:
        """Best-effort run for finalizers (``__del__``): never raises, never deadlocks.

        Inline runners run it even after :meth:`close`, so a temporary file is
        never left behind. On the loop thread itself it is scheduled, not awaited.
        """
        try:
            if self.inline:
                run_inline(coro)
                return
            if self._closed or self._pid != os.getpid() or self._loop is None:
                coro.close()
                return
            if threading.get_ident() == self._loop_ident:
                task = self._loop.create_task(coro)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
            self.run(coro)
        except Exception:  # a finalizer has nobody to report to
            coro.close()

    # ----------------------------------------------------------------- closing

    def close(self, *, timeout: float | None = None) -> None:
        """Release the store (its ``aclose()``), then stop the loop thread and close the loop.

        Idempotent. In-flight calls of other threads may finish or get
        :class:`StoreClosedError`.

        Args:
            timeout: Give up waiting for ``aclose()`` after this many seconds
                (the ``atexit`` hook uses it; ``None`` waits as long as it takes).

        Raises:
            RuntimeError: Called from the loop thread itself.
        """
        if (
            not self.inline
            and self._pid == os.getpid()
            and threading.get_ident() == self._loop_ident
        ):
            raise RuntimeError(
                "close() of a blocking ArtifactStore was called from its own event loop thread"
            )
        with self._lock:
            if self._closing or self._closed:
                return
            self._closing = True
        try:
            if self.inline or timeout is None:
                self.run(self._closer())
            else:
                self._run_with_timeout(self._closer(), timeout)
        finally:
            self._shut_down(join=True, timeout=timeout)

    def _run_with_timeout(self, coro: Coroutine[Any, Any, None], timeout: float) -> None:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            loop = self._ensure_loop()
            loop.call_soon_threadsafe(self._start, coro, future)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            future.result(timeout)

    def _shut_down(self, *, join: bool, timeout: float | None = None) -> None:
        with self._lock:
            self._closed = True
            loop, stop, thread = self._loop, self._stop, self._thread
            self._loop = self._stop = self._thread = None
            if self._pid != os.getpid():
                loop = stop = thread = None  # the parent's: not ours to stop
            if loop is not None and stop is not None:
                # Under the lock: every call submitted before this runs before the stop.
                loop.call_soon_threadsafe(stop.set)
        _LIVE.discard(self)
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def release(self, *, close_store: bool) -> None:
        """Stop without waiting: for a facade that was garbage-collected unclosed.

        Runs ``aclose()`` (when ``close_store``) and stops the loop from the loop
        thread itself; safe to call from any thread, a finalizer included.
        """
        if self._pid != os.getpid():
            return
        with self._lock:
            if self._closing or self._closed:
                return
            self._closing = True
            loop, stop = self._loop, self._stop
            if self.inline or loop is None or stop is None:
                self._closed = True
                _LIVE.discard(self)
                if close_store and self.inline:
                    self.run_cleanup(self._closer())
                return
            self._closed = True
            self._loop = self._stop = self._thread = None
            closer = self._closer if close_store else None
            loop.call_soon_threadsafe(_final_task, loop, stop, closer)
        _LIVE.discard(self)

    def _forget_parent(self) -> None:
        """In a forked child: drop the parent's loop and thread, keeping them referenced."""
        if self._loop is not None or self._thread is not None:
            _ABANDONED.append((self._loop, self._stop, self._thread, self._tasks))
        self._loop = None
        self._stop = None
        self._thread = None
        self._loop_ident = None
        self._tasks = set()
        self._lock = threading.RLock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        kind = "inline" if self.inline else "loop-thread"
        state = "closed" if self._closed else "open"
        return f"<Runner {self._name} {kind} {state}>"


def _serve(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """The loop thread: run until ``stop`` is set, then cancel leftovers and close the loop."""
    asyncio.set_event_loop(loop)
    try:
        # run_until_complete rather than run_forever: anyio takes the task it runs
        # for its root task, so its worker threads live across calls instead of
        # being started and stopped for every call.
        loop.run_until_complete(stop.wait())
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _final_task(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    closer: Callable[[], Coroutine[Any, Any, None]] | None,
) -> None:
    """On the loop: close the store (if asked), then stop the loop."""

    async def finish() -> None:
        try:
            if closer is not None:
                await closer()
        except Exception:  # nobody left to report to
            pass
        finally:
            stop.set()

    task = loop.create_task(finish())
    _PENDING_FINAL.add(task)
    task.add_done_callback(_PENDING_FINAL.discard)


_PENDING_FINAL: set[asyncio.Task[None]] = set()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still running on ``loop`` and let it unwind (as ``asyncio.run`` does)."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception while closing a blocking ArtifactStore",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def _after_fork_in_child() -> None:
    for runner in list(_LIVE):
        runner._forget_parent()


def _close_all_at_exit() -> None:
    for runner in list(_LIVE):
        with contextlib.suppress(Exception):
            if runner.inline or runner._loop is not None:
                runner.close(timeout=_EXIT_TIMEOUT)
            else:  # nothing ever ran on a loop: no reason to start one now
                runner.release(close_store=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
