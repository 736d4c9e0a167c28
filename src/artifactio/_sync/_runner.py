"""Running the async store's coroutines for the blocking facade.

Three strategies. Inline or not is chosen once per facade from the store's
``inline_capable`` flag; for the others, per call:

* **inline** (memory, local disk): the coroutine is stepped to completion in the
  caller's own thread by :func:`artifactio._blocking.run_inline`. No event loop,
  no thread hop, nothing to start or stop; safe from any thread, from inside a
  running event loop and after ``fork``.
* **the main thread's own loop** (:meth:`Runner.call`: the facade's one-off
  calls, ``exists``, ``read_bytes``... of S3, GCS, any store that really waits):
  called from the main thread when it runs no event loop, the coroutine runs
  there, on an event loop the runner made for it (:class:`._own_loop.OwnLoop`),
  with ``loop.run_until_complete``. Made on first use, kept across calls (with
  the store's client and its warm connections), closed with the runner.
* **loop thread** (everything else): the coroutine runs on an event loop in a
  daemon thread owned by the runner, started on first use. The calling thread
  blocks until the result is ready and gets back the original exception. Many
  threads may call at once; a call from the loop thread itself raises
  ``RuntimeError`` instead of deadlocking; a ``KeyboardInterrupt`` while
  waiting cancels the coroutine.

Why the own loop: one hop to a loop thread and back costs 105-145 us of wakeups
on a shared 2-core VM (CPython 3.11), ``run_until_complete`` on a loop of the
calling thread 14-16 us. One 1 KiB S3 GET against SeaweedFS (7 interleaved
rounds of 300, process CPU per call, medians; three runs): awaited on a loop
430-547 us, the facade from the main thread 471-594 us, the facade through the
hop 674-844 us. Wall times on that box are too noisy to quote per run.

Why only the main thread, one-off calls only:

* Every event loop gets its own client of the store (its connections belong to
  the loop). Making one took 40-330 ms here (botocore's client and session): a
  loop per thread would make a thread pool, or a thread per request, pay that
  for every thread, and keep a connection pool per thread. The main thread is
  one more client in all, and it ends with the interpreter (the ``atexit`` hook
  closes its loop), so no loop is ever left behind by a thread that ended.
* The loop runs only while a call runs. Files (``open``) and iterators
  (``walk``) span many calls: a reader's read-ahead tasks would stall between
  reads, and a file or iterator handed to another thread would need the loop
  its tasks belong to. They stay on the loop thread, which runs all the time;
  so do ``walk`` callbacks (a facade call from one raises ``RuntimeError``
  rather than deadlocking, as before).
* Called from inside a running event loop, the main thread cannot run another
  one: the call hops (and the coroutine learns that the calling loop waits).

Closing with a main-thread loop: the store's ``aclose()`` runs on that loop when
it is idle (so the caller, whatever its thread, runs the loop for a while: the
loop's lock makes that safe), else on the loop thread, telling the store that
the main thread's loop will not run until then; either way the store refuses
new requests at once, a main-thread call in flight is cancelled (it gets
:class:`StoreClosedError`), and the loop then finishes its tasks (the client's
closing among them), closes its async generators and is closed. A ``close()``
from inside a running loop leaves that last step to a helper thread; a facade
garbage-collected unclosed leaves it to a thread of its own (a finalizer must
not wait). ``Ctrl-C`` during a main-thread call cancels the call and raises
``KeyboardInterrupt`` once it has unwound; the loop stays usable.

The loop thread is ``anyio.run`` on a loop made here (its ``loop_factory``
option), waiting for a stop event: anyio's runner cancels what is left at the
stop, shuts down async generators and the default executor and closes the loop.
Each call is one hop: :meth:`Runner._start` is scheduled with
``call_soon_threadsafe`` and copies the task's outcome into a
``concurrent.futures.Future`` the caller waits on. Two ready-made hops were
measured and not taken:

* anyio's ``BlockingPortal.call`` (``start_blocking_portal``) hops twice per
  call (``from_thread.run_sync`` waits until the task is spawned in the portal's
  task group, then the caller waits for the result) and opens a cancel scope per
  call. ``benchmarks/bench_facade_overhead.py`` times ``exists`` on a memory
  store that suspends, through this runner and through the portal, in the same
  run (7 interleaved rounds, medians; CPython 3.11, a shared 2-core Linux box):
  the portal was slower in every run, 67-72 us per call against 32-37 us here
  when the machine was quiet, 90 against 59 us (median of 5 runs) under load.
  The portal's life is also bound to a ``with`` block, while a facade dropped
  without ``close()`` must stop its loop from a finalizer, without blocking.
* ``asyncio.run_coroutine_threadsafe`` costs the same as this runner, but it
  hands the caller a new ``TimeoutError`` in place of the one the coroutine
  raised (it converts the exceptions the two kinds of future share).

The loop threads' event loops (the facade's, and that of :mod:`artifactio.blocking`)
are uvloop's when it is installed (the ``uvloop`` extra), else asyncio's; the
environment variable ``ARTIFACTIO_EVENT_LOOP`` (``uvloop`` | ``asyncio``) forces
either (:func:`new_event_loop`). On uvloop a 1 KiB S3 GET through the loop thread
took 3-13 % less process CPU. The main thread's own loop stays asyncio's: uvloop
makes a socket pair for its signal wake-up at every ``run_until_complete`` in the
main thread (about 20 system calls), and calls there took 8-15 % more CPU.

After ``os.fork`` the child's copy of a runner forgets the parent's loops and
thread (the thread does not exist in the child; the loops' selectors and sockets
are shared with the parent) and makes fresh ones when first used; the parent's
loop objects are kept referenced, never closed or collected in the child,
because closing them there would touch state the parent owns. Runners still open
at interpreter exit are closed by an ``atexit`` hook.
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
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio

from .._blocking import call_context, run_inline
from .._exceptions import StoreClosedError
from ._own_loop import OwnLoop

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["LOOP_ENV", "Runner", "new_event_loop"]

T = TypeVar("T")

_EXIT_TIMEOUT = 10.0
"""How long the ``atexit`` hook waits for one store's ``aclose()``."""

_LIVE: weakref.WeakSet[Runner] = weakref.WeakSet()
"""Every runner not yet closed, for the fork and exit hooks."""

_ABANDONED: list[object] = []
"""A forked child's copies of its parent's loops and threads, kept alive on purpose."""

_DETACHED: set[asyncio.Task[Any]] = set()
"""Tasks nobody waits for (clean-up on a loop thread), referenced until they finish."""

_RELEASING: set[threading.Thread] = set()
"""Threads closing the main-thread loops of facades that were garbage-collected unclosed."""

_COUNTER = itertools.count(1)

LOOP_ENV = "ARTIFACTIO_EVENT_LOOP"
"""The environment variable that chooses the kind of the loop threads' event loops."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for a loop thread, of the kind ``ARTIFACTIO_EVENT_LOOP`` says.

    Raises:
        ImportError: ``uvloop`` was asked for and is not installed.
        ValueError: The variable names neither ``uvloop`` nor ``asyncio``.
    """
    choice = os.environ.get(LOOP_ENV, "").strip().lower()
    if choice == "asyncio":
        return asyncio.new_event_loop()
    if choice not in ("", "uvloop"):
        raise ValueError(f"{LOOP_ENV}={choice!r}: expected 'uvloop' or 'asyncio' (or unset)")
    try:
        import uvloop
    except ImportError as exc:
        if not choice:
            return asyncio.new_event_loop()
        raise ImportError(
            f"{LOOP_ENV}=uvloop but uvloop is not installed (pip install 'artifactio[uvloop]')"
        ) from exc
    return uvloop.new_event_loop()


class _LoopThread(NamedTuple):
    """An event loop running in its own daemon thread until ``stop`` is set."""

    loop: asyncio.AbstractEventLoop
    stop: asyncio.Event
    thread: threading.Thread

    @classmethod
    def start(cls, name: str) -> _LoopThread:
        loop = new_event_loop()
        stop = asyncio.Event()
        # anyio.run (not loop.run_forever): anyio takes the task it runs for its
        # root task, so its worker threads live across calls instead of being
        # started and stopped for every call.
        thread = threading.Thread(
            target=anyio.run,
            args=(stop.wait,),
            kwargs={"backend_options": {"loop_factory": lambda: loop}},
            name=name,
            daemon=True,
        )
        thread.start()
        return cls(loop, stop, thread)


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
        self._loop_thread: _LoopThread | None = None
        self._loop_ident: int | None = None
        self._own: OwnLoop | None = None
        self._pid = os.getpid()
        self._closing = False
        self._closed = False
        _LIVE.add(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`release`) has run."""
        return self._closed

    # ----------------------------------------------------------------- running

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion and return its result (or raise its exception).

        Raises:
            StoreClosedError: The runner was closed.
            RuntimeError: Called from the runner's own loop thread (it would deadlock).
        """
        if self._closed:
            coro.close()
            raise _closed_error()
        if self.inline:
            return run_inline(coro)
        return self._run_on_loop(coro)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Like :meth:`run`, but in the main thread on its own loop when it runs none.

        For one-off calls only: nothing the coroutine starts may need the loop
        to run after it returns (files and iterators go through :meth:`run`).

        Raises:
            StoreClosedError: The runner was closed.
            RuntimeError: Called from the runner's own loop thread (it would deadlock).
        """
        if (
            not self._closed
            and not self.inline
            and asyncio._get_running_loop() is None
            and threading.get_ident() == _main_ident()
        ):
            own = self._own
            if own is None or own.pid != os.getpid():
                own = self._make_own()
            try:
                return own.run(coro)
            except asyncio.CancelledError:
                if self._closed:  # close() from another thread cancelled the call
                    raise _closed_error() from None
                raise
        return self.run(coro)

    def _make_own(self) -> OwnLoop:
        """The main thread's loop, made on first use."""
        with self._lock:
            if self._pid != os.getpid():
                self._forget_parent()
            if self._closed:
                raise _closed_error()
            if self._own is None:
                self._own = OwnLoop()
            return self._own

    def _run_on_loop(
        self,
        coro: Coroutine[Any, Any, T],
        timeout: float | None = None,
        waiting: tuple[asyncio.AbstractEventLoop, ...] = (),
    ) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        # Called from inside a running loop, this thread holds that loop while it
        # waits: the coroutine learns it (waiting_loops), so it never waits for it.
        # The same for ``waiting``: loops that run nothing until this returns.
        context = call_context(*waiting)
        handed_over = False
        try:
            with self._lock:
                loop = self._ensure_loop()
                # From here on the coroutine belongs to _start (on the loop thread),
                # even if a KeyboardInterrupt lands inside call_soon_threadsafe.
                handed_over = True
                loop.call_soon_threadsafe(self._start, coro, future, context=context)
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            if self._closed:
                raise _closed_error() from None
            raise
        except BaseException:
            if handed_over:
                # KeyboardInterrupt (or a timeout) while waiting: cancel the
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
            raise _closed_error()
        if self._loop_ident is not None and threading.get_ident() == self._loop_ident:
            raise RuntimeError(
                "the blocking ArtifactStore was called from its own event loop thread "
                "(e.g. from a walk() onerror callback); this would deadlock. "
                "Use the AsyncArtifactStore (store.async_store) with await there."
            )
        if self._loop_thread is None:
            self._loop_thread = _LoopThread.start(self._name)
            self._loop_ident = self._loop_thread.thread.ident
        return self._loop_thread.loop

    def _start(self, coro: Coroutine[Any, Any, T], future: concurrent.futures.Future[T]) -> None:
        """On the loop: run ``coro`` as a task whose outcome is copied into ``future``."""
        if future.cancelled():
            coro.close()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(coro)  # in a copy of the caller's context

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
                future.set_exception(exc)  # the original object, as raised
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
            elif self._closed or self._pid != os.getpid() or self._loop_thread is None:
                coro.close()
            elif threading.get_ident() == self._loop_ident:
                _spawn(coro)
            else:
                self.run(coro)
        except Exception:  # a finalizer has nobody to report to
            coro.close()

    # ----------------------------------------------------------------- closing

    def close(self, *, timeout: float | None = None) -> None:
        """Release the store (its ``aclose()``), then stop and close the runner's loops.

        Idempotent. In-flight calls of other threads may finish or get
        :class:`StoreClosedError`. The main thread's loop is closed by the
        calling thread (after the main thread's call in flight, if any, has
        returned), or by a helper thread when the caller runs an event loop.

        Args:
            timeout: Give up waiting for ``aclose()`` after this many seconds,
                and for the loops' last tasks and the loop thread after as many
                again (the ``atexit`` hook uses it; ``None`` waits as long as it takes).

        Raises:
            RuntimeError: Called from the loop thread itself.
            concurrent.futures.TimeoutError: ``aclose()`` took longer than
                ``timeout`` (it is cancelled); the loops are closed all the same.
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
            own = self._own if self._pid == os.getpid() else None
        loop_thread = None
        try:
            if self.inline:
                run_inline(self._closer())
            elif (
                own is not None
                and asyncio._get_running_loop() is None
                and own.lock.acquire(blocking=False)
            ):
                # The main thread's loop is idle: close the store there (its client
                # at once; the loop thread's, running, on that loop), then the loop.
                try:
                    own.run_locked(_bounded(self._closer(), timeout))
                finally:
                    with self._lock:
                        loop_thread, _ = self._detach()
                    own.close_locked(timeout)
                    own.lock.release()
                own = None
            else:
                # The main thread's loop is busy (or this thread cannot run it): the
                # store closes on the loop thread; its client on the main thread's
                # loop is refused at once and closes there, before that loop closes.
                waiting = () if own is None else (own.loop,)
                self._run_on_loop(self._closer(), timeout, waiting)
        finally:
            with self._lock:
                detached, _ = self._detach()
                loop_thread = loop_thread or detached
                if loop_thread is not None:
                    # Under the lock: every call submitted before this runs before the stop.
                    loop_thread.loop.call_soon_threadsafe(loop_thread.stop.set)
            if loop_thread is not None and loop_thread.thread is not threading.current_thread():
                loop_thread.thread.join(timeout)
            if own is not None:
                own.cancel_call()  # a main-thread call in flight gets StoreClosedError
                _close_own(own, timeout)

    def release(self, *, close_store: bool) -> None:
        """Stop without waiting: for a facade that was garbage-collected unclosed.

        Runs ``aclose()`` (when ``close_store``) and stops the loop from the loop
        thread itself; the main thread's loop, if any, is closed by a new thread
        (it may have to wait for the main thread's call in flight). Safe to call
        from any thread, a finalizer included.
        """
        if self._pid != os.getpid():
            return
        with self._lock:
            if self._closing or self._closed:
                return
            loop_thread, own = self._detach()
            closer = self._closer if close_store else None
            if own is not None:
                thread = threading.Thread(
                    target=_release_own,
                    args=(own, closer, loop_thread),
                    name=f"{self._name} release",
                    daemon=True,
                )
                _RELEASING.add(thread)
                thread.start()
            elif loop_thread is not None:
                stop = loop_thread.stop
                loop_thread.loop.call_soon_threadsafe(
                    lambda: _spawn(_close_then_stop(closer, stop))
                )
        if loop_thread is None and own is None and close_store and self.inline:
            self.run_cleanup(self._closer())

    def _detach(self) -> tuple[_LoopThread | None, OwnLoop | None]:
        """Mark the runner closed and hand over its loops, those it has of its own.

        Call with the lock held. In a forked child the loops are the parent's: not ours to stop.
        """
        self._closed = True
        _LIVE.discard(self)
        loop_thread, self._loop_thread = self._loop_thread, None
        own, self._own = self._own, None
        if self._pid != os.getpid():
            return None, None
        return loop_thread, (own if own is not None and own.pid == self._pid else None)

    def _forget_parent(self) -> None:
        """In a forked child: drop the parent's loops and thread, keeping them referenced."""
        if self._loop_thread is not None:
            _ABANDONED.append(self._loop_thread)
        if self._own is not None:
            _ABANDONED.append(self._own)
        self._loop_thread = None
        self._loop_ident = None
        self._own = None
        self._lock = threading.RLock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        kind = "inline" if self.inline else "loop-thread"
        state = "closed" if self._closed else "open"
        return f"<Runner {self._name} {kind} {state}>"


def _main_ident() -> int | None:
    return threading.main_thread().ident


async def _bounded(coro: Coroutine[Any, Any, None], limit: float | None) -> None:
    """``await coro``, cancelled after ``limit`` seconds (``None``: never)."""
    if limit is None:
        await coro
        return
    try:
        await asyncio.wait_for(coro, limit)
    except asyncio.TimeoutError:
        raise concurrent.futures.TimeoutError(f"aclose() took more than {limit:g} s") from None


def _close_own(own: OwnLoop, timeout: float | None) -> None:
    """Close the main thread's loop of a closed runner, from wherever ``close()`` was called."""
    running = asyncio._get_running_loop()
    if running is None:
        own.close(timeout)
    elif running is own.loop:  # close() from inside a call on it: the call closes it
        own.close_later(timeout)
    else:  # this thread cannot run another loop: a helper can
        helper = threading.Thread(target=own.close, args=(timeout,), daemon=True)
        helper.start()
        helper.join()


def _release_own(
    own: OwnLoop,
    closer: Callable[[], Coroutine[Any, Any, None]] | None,
    loop_thread: _LoopThread | None,
) -> None:
    """In a thread of its own: what :meth:`Runner.release` cannot do without waiting."""
    try:
        with own.lock:
            try:
                if closer is not None and not own.loop.is_closed():
                    own.run_locked(_bounded(closer(), _EXIT_TIMEOUT))
            except Exception:  # nobody left to report to
                pass
            finally:
                if loop_thread is not None:
                    loop_thread.loop.call_soon_threadsafe(loop_thread.stop.set)
                own.close_locked(_EXIT_TIMEOUT)
    except Exception:  # pragma: no cover - nobody left to report to
        pass
    finally:
        _RELEASING.discard(threading.current_thread())


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    """On a loop: run ``coro`` as a task nobody waits for."""
    task = asyncio.get_running_loop().create_task(coro)
    _DETACHED.add(task)
    task.add_done_callback(_DETACHED.discard)


def _closed_error() -> StoreClosedError:
    return StoreClosedError("the ArtifactStore is closed")


async def _close_then_stop(
    closer: Callable[[], Coroutine[Any, Any, None]] | None, stop: asyncio.Event
) -> None:
    """On the loop of a released runner: close the store (if asked), then stop the loop."""
    try:
        if closer is not None:
            await closer()
    except Exception:  # nobody left to report to
        pass
    finally:
        stop.set()


def _after_fork_in_child() -> None:
    for runner in list(_LIVE):
        runner._forget_parent()


def _close_all_at_exit() -> None:
    for runner in list(_LIVE):
        with contextlib.suppress(Exception):
            if runner.inline or runner._loop_thread is not None or runner._own is not None:
                runner.close(timeout=_EXIT_TIMEOUT)
            else:  # nothing ever ran on a loop: no reason to start one now
                runner.release(close_store=False)
    for thread in list(_RELEASING):
        thread.join(2 * _EXIT_TIMEOUT)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
