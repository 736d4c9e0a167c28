"""Running blocking calls: off the event loop, or inline for the sync facade.

Backends that touch only the local machine (local disk, memory) route every
blocking call through :func:`run_blocking`. Inside async code it goes to a worker
thread of one pool per process, so the event loop never blocks. When the sync facade drives such a
backend it sets an *inline* flag instead and steps the coroutine to completion
in the caller's own thread (:func:`run_inline`): no event loop, no thread hop,
which makes ``exists`` on a local store cost about as much as ``os.path.exists``.

A facade call made from a thread that runs an event loop blocks that loop until
the call returns. The coroutine run for it learns which loops wait for it
(:func:`waiting_loops`), so it never waits for one of them: it would wait for
itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = [
    "InlineSuspendedError",
    "call_context",
    "in_inline_mode",
    "run_blocking",
    "run_inline",
    "waiting_loops",
]

T = TypeVar("T")

_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("artifactio_inline", default=False)

_WAITING: contextvars.ContextVar[frozenset[asyncio.AbstractEventLoop]] = contextvars.ContextVar(
    "artifactio_waiting_loops", default=frozenset()
)


class InlineSuspendedError(RuntimeError):
    """A coroutine driven inline tried to wait on the event loop (a backend bug)."""


def in_inline_mode() -> bool:
    """Whether the current call is being driven inline by the sync facade."""
    return _INLINE.get()


_THREADS = 40
"""Worker threads of the process's pool (anyio's default limit of worker threads)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="artifactio-blocking")
            pool = _pool
    return pool


def _forget_pool() -> None:  # a forked child has none of its parent's threads
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_pool)


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Call a blocking function without blocking the event loop.

    In async code the call runs in a worker thread of the process's pool (in a
    copy of the caller's context), as ``anyio.to_thread.run_sync`` would at about
    half its cost per call: a cancelled scope skips the call, and once started
    the call runs to its end and its result is the caller's (a cancellation
    arrives at the caller's next checkpoint), so what it did to files is never
    lost. On an event loop other than asyncio's (trio, through anyio) the call
    goes to anyio's worker threads. When driven inline by the sync facade it
    runs directly in the caller's thread.
    """
    if _INLINE.get():
        return func(*args)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another event loop, through anyio (trio): anyio's worker threads
        return await anyio.to_thread.run_sync(func, *args)
    await anyio.lowlevel.checkpoint_if_cancelled()
    future = loop.run_in_executor(_executor(), contextvars.copy_context().run, func, *args)
    with anyio.CancelScope(shield=True):
        result = await future
    return result  # noqa: RET504 (a return inside the scope: mypy takes the scope for one that can swallow)


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Drive ``coro`` to completion in this thread, without an event loop.

    Only for coroutines whose every await is a :func:`run_blocking` call or
    another coroutine of the same kind.

    Raises:
        InlineSuspendedError: The coroutine tried to suspend on an event loop.
    """
    token = _INLINE.set(True)
    try:
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        coro.close()
        raise InlineSuspendedError(
            f"{getattr(coro, '__qualname__', coro)!r} suspended while driven inline"
        )
    finally:
        _INLINE.reset(token)


def waiting_loops() -> frozenset[asyncio.AbstractEventLoop]:
    """The event loops whose threads wait, blocked, until the current call returns.

    A blocking facade call made from inside a running event loop (``close()`` in a
    coroutine, say) holds that loop until it returns: whatever runs for the call
    must not wait for something only that loop can do.
    """
    return _WAITING.get()


def call_context(*also: asyncio.AbstractEventLoop) -> contextvars.Context | None:
    """The context to run a blocking call's coroutine in, from the calling thread.

    Inside a running event loop it is a copy of the current context in which
    :func:`waiting_loops` includes that loop, and the loops ``also`` (loops the
    caller is about to wait for, or that will run nothing until it returns).
    ``None`` when there are none: a copy of the current context will do (what
    the loop's ``call_soon_threadsafe`` takes by default).
    """
    running = asyncio._get_running_loop()
    waiting = set(also) if running is None else {running, *also}
    if not waiting:
        return None
    context = contextvars.copy_context()
    context.run(_WAITING.set, _WAITING.get() | waiting)
    return context
