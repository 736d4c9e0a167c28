"""Small files in batches: many copies between two local disks in one call.

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
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ._items import StopTransfer
from ._progress import ItemProgress

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from ._items import ItemRunner
    from ._plan import Action

__all__ = ["BATCH_BYTES", "BATCH_FILES", "BatchRunner", "batched"]

BATCH_FILES = 32
"""The most files in one batch."""

BATCH_BYTES = 8 * 1024 * 1024
"""A batch is closed once its files add up to this many bytes."""


async def batched(
    actions: AsyncGenerator[Action, None], limit: int
) -> AsyncIterator[Action | list[Action]]:
    """``actions``, with the transfers of files up to ``limit`` bytes grouped in batches.

    A batch is handed on when it is full or when the actions run out.
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
            if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch


class BatchRunner:
    """Carries out actions and batches of actions (see :func:`batched`).

    Args:
        runner: The runner of single actions; a batch uses its ends, tally and retries.
    """

    def __init__(self, runner: ItemRunner) -> None:
        self.runner = runner

    async def __call__(self, work: Action | list[Action]) -> None:
        """Carry out one action, or one batch.

        Raises:
            StopTransfer: A file failed and the plan is ``fail_fast``.
        """
        if isinstance(work, list):
            await self.run(work)
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
        pairs: list[tuple[str, str]] = []
        refused: dict[int, Exception] = {}  # paths a store refuses: those files fail alone
        for i, action in enumerate(batch):
            try:
                pairs.append(
                    (src.store_key(action.path, "copyfile"), dst.store_key(action.path, "copyfile"))
                )
            except Exception as exc:
                refused[i] = exc
        copied = iter(
            await dst.store._copy_batch_from(src.store, pairs, exclusive=exclusive) if pairs else []
        )
        outcomes = [refused[i] if i in refused else next(copied) for i in range(len(batch))]
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
