"""Small files in batches: many local copies, or many reads of a local disk, in one call.

Between two stores that copy files without streaming them and take many at a
time (two local disks: ``StorePrimitives._copy_batch_from``), a small file
costs the engine (a task, a worker-thread hop, a retry wrapper) about as much
as it costs the kernel to copy it. So where the destination store accepts
batches from the source (``_copy_batch_limit`` above 0), :func:`batched`
groups the walk's ``transfer`` actions of files up to that size into batches
of at most :data:`BATCH_FILES` files and :data:`BATCH_BYTES` bytes, in the
walk's order; every other action passes through alone.

A batch holds one slot of the transfer's concurrency limit and its files are
copied one after the other in one call, so files in flight never exceed
``concurrency``. Each file still ends on its own, as it would alone: it counts
as transferred, as skipped (``copy(overwrite=False)`` and it appeared
meanwhile) or as failed, with its own progress. A file that failed transiently
is retried alone, with the retries it has left; one failure never loses the
other files of its batch. With ``fail_fast``, a failure stops the transfer
once every file of its batch is counted.

From a store that reads many small files in one call (a local disk:
``StorePrimitives._read_batch``) to any other store, :func:`read_ahead` reads
the walk's small ``transfer`` files a batch at a time (at most
:data:`BATCH_FILES` files and :data:`READ_BYTES` bytes) just before the engine
starts them, and hands each on alone, with its bytes (:class:`Prefetched`):
each file is then written, counted, retried (reading it again) and failed on
its own, as if it had been read alone. The bytes held ahead of the files in
flight stay within one batch.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from ._items import StopTransfer
from ._progress import ItemProgress

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

    from ._endpoints import Endpoint
    from ._items import ItemRunner
    from ._plan import Action

__all__ = [
    "BATCH_BYTES",
    "BATCH_FILES",
    "READ_BYTES",
    "BatchRunner",
    "Prefetched",
    "batched",
    "read_ahead",
]

K = TypeVar("K")
R = TypeVar("R")

BATCH_FILES = 32
"""The most files in one batch."""

BATCH_BYTES = 8 * 1024 * 1024
"""A batch is closed once its files add up to this many bytes."""


async def batched(
    actions: AsyncGenerator[Action, None], limit: int, *, batch_bytes: int = BATCH_BYTES
) -> AsyncGenerator[Action | list[Action], None]:
    """``actions``, with the transfers of files up to ``limit`` bytes grouped in batches.

    A batch is handed on when it holds :data:`BATCH_FILES` files or
    ``batch_bytes`` bytes, or when the actions run out.
    """
    async with contextlib.aclosing(actions):
        batch: list[Action] = []
        size = 0
        async for action in actions:
            if action.kind != "transfer" or action.size > limit:
                yield action
                continue
            batch.append(action)
            size += action.size
            if len(batch) >= BATCH_FILES or size >= batch_bytes:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch


READ_BYTES = 1024 * 1024
"""A batch read ahead is closed once its files add up to this many bytes."""


class Prefetched(NamedTuple):
    """A ``transfer`` action whose source file was read ahead.

    Attributes:
        action: The action.
        data: The file's bytes; ``None`` when it has to be read as usual (it grew).
        error: What reading it raised (its first attempt failed with it).
    """

    action: Action
    data: bytes | None = None
    error: Exception | None = None


async def read_ahead(
    actions: AsyncGenerator[Action, None], src: Endpoint, limit: int
) -> AsyncIterator[Action | Prefetched]:
    """``actions``, with the source files of transfers up to ``limit`` bytes read a batch at a time.

    Every other action passes through as it comes; a batch is read when it is
    full or when the actions run out.
    """
    async with contextlib.aclosing(batched(actions, limit, batch_bytes=READ_BYTES)) as groups:
        async for group in groups:
            if isinstance(group, list):
                for ready in await _read(src, group):
                    yield ready
            else:
                yield group


async def _in_one_call(
    batch: list[Action],
    key_of: Callable[[Action], K],
    call: Callable[[list[K]], Awaitable[Sequence[R | Exception]]],
) -> list[R | Exception]:
    """``call`` on the keys of ``batch``'s files; each file's outcome, in order.

    A file whose path a store refuses (``key_of`` raises) fails alone, with that error.
    """
    keys: list[K] = []
    refused: dict[int, Exception] = {}
    for i, action in enumerate(batch):
        try:
            keys.append(key_of(action))
        except Exception as exc:
            refused[i] = exc
    done = iter(await call(keys) if keys else [])
    return [refused[i] if i in refused else next(done) for i in range(len(batch))]


async def _read(src: Endpoint, batch: list[Action]) -> list[Prefetched]:
    """The files of ``batch``, read in one call."""
    outcomes = await _in_one_call(
        batch, lambda action: src.store_key(action.path, "open"), src.store._read_batch
    )
    return [
        Prefetched(action, error=outcome)
        if isinstance(outcome, Exception)
        else Prefetched(action, outcome)
        for action, outcome in zip(batch, outcomes, strict=True)
    ]


class BatchRunner:
    """Carries out actions and batches of actions (see :func:`batched`).

    Args:
        runner: The runner of single actions; a batch uses its ends, tally and retries.
    """

    def __init__(self, runner: ItemRunner) -> None:
        self.runner = runner

    async def __call__(self, work: Action | list[Action] | Prefetched) -> None:
        """Carry out one action, one batch, or one action read ahead.

        Raises:
            StopTransfer: A file failed and the plan is ``fail_fast``.
        """
        if isinstance(work, list):
            await self.run(work)
        elif isinstance(work, Prefetched):
            await self.runner.run(work.action, failed=work.error, data=work.data)
        else:
            await self.runner.run(work)

    async def run(self, batch: list[Action]) -> None:
        """Copy the files of ``batch`` in one call; count each file as it ended.

        Raises:
            StopTransfer: A file failed and the plan is ``fail_fast`` (after every
                file of the batch was counted).
        """
        runner = self.runner
        src, dst, tally = runner.src, runner.dst, runner.tally
        exclusive = runner.exclusive
        tally.start(src.full(batch[0].path))

        def pair(action: Action) -> tuple[str, str]:
            return src.store_key(action.path, "copyfile"), dst.store_key(action.path, "copyfile")

        async def copy(pairs: list[tuple[str, str]]) -> list[int | Exception]:
            return await dst.store._copy_batch_from(src.store, pairs, exclusive=exclusive)

        outcomes = await _in_one_call(batch, pair, copy)
        stop = False
        for action, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, int):
                item = ItemProgress(tally, action.size)
                item.advance(outcome)
                item.done()
                runner.retrying.succeeded()
                tally.transferred_file(outcome)
            elif isinstance(outcome, FileExistsError) and exclusive:
                ItemProgress(tally, action.size).done()
                tally.skipped_file()  # copy(overwrite=False): it appeared meanwhile
            elif stop:
                ItemProgress(tally, action.size).done()
                tally.failure(src.full(action.path), outcome)
            else:
                try:
                    await runner.run(action, failed=outcome)
                except StopTransfer:
                    stop = True
        if stop:
            raise StopTransfer
