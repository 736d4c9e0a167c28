"""The two concurrency shapes every bulk step and every clean-up uses, written once.

- :func:`for_each`: run an async function on every item of a (possibly async)
  iterable with a bounded number in flight; the first failure cancels the rest
  and is raised as itself, never wrapped in an ``ExceptionGroup``. Directory
  copies and moves, rmtree batches, marker writes, parallel ranged reads and
  server-side part copies all go through it.
- :func:`shielded`: a scope in which clean-up (abort an upload, delete a partial
  copy, close a file) runs to completion even when the caller is being
  cancelled.

Both know about the sync facade's *inline* mode (:mod:`artifactio._blocking`):
there is no event loop then, so nothing can be cancelled and items run one by
one in the caller's thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._blocking import in_inline_mode

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

__all__ = ["for_each", "shielded"]

T = TypeVar("T")


def shielded() -> contextlib.AbstractContextManager[Any]:
    """A scope that an outer cancellation does not interrupt (a no-op when inline).

    Use it around clean-up that must finish: ``with shielded(): await upload.abort()``.
    """
    return contextlib.nullcontext() if in_inline_mode() else anyio.CancelScope(shield=True)


async def for_each(
    items: Iterable[T] | AsyncIterator[T],
    func: Callable[[T], Awaitable[Any]],
    *,
    limit: int,
) -> None:
    """Await ``func(item)`` for every item, with at most ``limit`` in flight.

    ``items`` may be an async iterator (e.g. batches made from listing pages as
    they arrive): a task is started only when a slot is free, so a long or endless
    feed costs no more than ``limit`` tasks at a time, and an async feed is closed
    however the loop ends. The first failure cancels the tasks still running and
    is raised as itself.
    """
    if in_inline_mode():  # driven by the sync facade without an event loop: one by one
        async with contextlib.aclosing(_each(items)) as feed:
            async for item in feed:
                await func(item)
        return
    slots = anyio.Semaphore(max(limit, 1))
    failures: list[BaseException] = []

    async def one(item: T) -> None:
        try:
            await func(item)
        except Exception as exc:
            failures.append(exc)
            tg.cancel_scope.cancel()
        finally:
            slots.release()

    async with contextlib.aclosing(_each(items)) as feed, anyio.create_task_group() as tg:
        async for item in feed:
            await slots.acquire()
            tg.start_soon(one, item)
    if failures:
        raise failures[0]


async def _each(items: Iterable[T] | AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Iterate a plain or an async iterator; an async one is closed however the loop ends."""
    if not isinstance(items, AsyncIterator):
        for item in items:
            yield item
        return
    try:
        async for item in items:
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            with shielded():
                await aclose()
