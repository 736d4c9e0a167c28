"""The two concurrency shapes every bulk step and every clean-up uses, written once.

- :func:`for_each`: run an async function on every item of a (possibly async)
  iterable with a bounded number in flight; the first failure cancels the rest
  and is raised as itself, never wrapped in an ``ExceptionGroup``. Directory
  copies and moves, rmtree batches, marker writes, parallel ranged reads and
  server-side part copies all go through it.
- :class:`SharedLimit` and :func:`for_each_borrowing`: one limit shared by a
  bulk step's items and the parts those items split into. An item holds one
  slot while it runs; its parts run one at a time in that slot, and in parallel
  only in slots that are free at that moment (borrowed, never waited for), so
  items and parts together never exceed the limit, and no item waits on
  another's parts.
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

__all__ = ["SharedLimit", "for_each", "for_each_borrowing", "shielded"]

T = TypeVar("T")


def shielded() -> contextlib.AbstractContextManager[Any]:
    """A scope that an outer cancellation does not interrupt (a no-op when inline).

    Use it around clean-up that must finish: ``with shielded(): await upload.abort()``.
    """
    return contextlib.nullcontext() if in_inline_mode() else anyio.CancelScope(shield=True)


class SharedLimit:
    """A number of slots shared by the items of a bulk step and the parts they run.

    Args:
        slots: How many (at least 1).
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(int(slots), 1)
        self._semaphore = anyio.Semaphore(self.slots)

    async def acquire(self) -> None:
        """Wait for a slot (waiters are served before :meth:`try_acquire` callers)."""
        await self._semaphore.acquire()

    def try_acquire(self) -> bool:
        """Take a slot if one is free now."""
        try:
            self._semaphore.acquire_nowait()
        except anyio.WouldBlock:
            return False
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._semaphore.release()


async def for_each(
    items: Iterable[T] | AsyncIterator[T],
    func: Callable[[T], Awaitable[Any]],
    *,
    limit: int | SharedLimit,
) -> None:
    """Await ``func(item)`` for every item, with at most ``limit`` in flight.

    ``items`` may be an async iterator (e.g. batches made from listing pages as
    they arrive): a task is started only when a slot is free, so a long or endless
    feed costs no more than ``limit`` tasks at a time, and an async feed is closed
    however the loop ends. The first failure cancels the tasks still running and
    is raised as itself. A :class:`SharedLimit` lets the items' own parts
    (:func:`for_each_borrowing`) draw on the same slots.
    """
    if in_inline_mode():  # driven by the sync facade without an event loop: one by one
        async with contextlib.aclosing(_each(items)) as feed:
            async for item in feed:
                await func(item)
        return
    slots = limit if isinstance(limit, SharedLimit) else SharedLimit(limit)
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


async def for_each_borrowing(
    items: Iterable[T],
    func: Callable[[T], Awaitable[Any]],
    *,
    shared: SharedLimit,
    most: int | None = None,
) -> None:
    """Await ``func(item)`` for every item, in the caller's slot plus free slots of ``shared``.

    The caller is an item of a :func:`for_each` over ``shared`` and holds one of
    its slots: items run one after the other in that slot, and more of them run
    at once only while other slots are free (each taken with
    :meth:`SharedLimit.try_acquire` and given back when its item ends), never
    more than ``most`` at once. The caller never waits for a slot it does not
    hold, so no two callers can wait on each other. The first failure cancels
    the rest and is raised as itself.
    """
    if in_inline_mode():
        for item in items:
            await func(item)
        return
    own_free = True
    running = 0
    changed = anyio.Event()
    failures: list[BaseException] = []

    async def one(item: T, borrowed: bool) -> None:
        nonlocal own_free, running
        try:
            await func(item)
        except Exception as exc:
            failures.append(exc)
            tg.cancel_scope.cancel()
        finally:
            running -= 1
            if borrowed:
                shared.release()
            else:
                own_free = True
            changed.set()

    async with anyio.create_task_group() as tg:
        for item in items:
            while True:
                if most is None or running < most:
                    if own_free:
                        own_free, borrowed = False, False
                        break
                    if shared.try_acquire():
                        borrowed = True
                        break
                changed = anyio.Event()
                await changed.wait()
            running += 1
            tg.start_soon(one, item, borrowed)
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
