"""Running a plan: one bounded pool of items fed by the streaming walk.

:func:`execute` opens both ends, looks at them (:func:`._walk.resolve`), then
runs every action of the walk through one :func:`~artifactio._concurrency.for_each`
with the plan's ``concurrency`` (small files between two local disks in
batches, one slot each; small files of a local disk read a batch at a time
for another store: :mod:`._batches`): an item starts only when a slot is free, so
items start while the source listing still streams in, and memory stays flat in
the number of files. Skips and conflicts are counted as the walk yields them;
deletions (``sync(delete=True)``) are kept aside and carried out — with the
same limit — only once every transfer succeeded.

One failed item does not stop the others; with ``fail_fast`` the first failure
cancels the items in flight (their writes leave nothing behind) and the walk
stops. Either way the result is a :class:`~artifactio.TransferReport`; only
problems with the ends themselves (a missing source, a directory onto a file,
an unknown scheme...) raise. A cancellation of the whole transfer propagates,
after aborting every write in flight and closing the stores the transfer opened.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from .._concurrency import SharedLimit, for_each
from ._batches import BatchRunner, batched, read_ahead
from ._endpoints import open_endpoints
from ._items import WHOLE_FILE, ItemRunner, StopTransfer
from ._progress import Tally
from ._retry import Retrying, RetryPolicy
from ._walk import Walker, resolve

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._endpoints import Location
    from ._plan import Action, TransferPlan
    from ._progress import ProgressCallback
    from ._report import TransferReport

__all__ = ["execute"]

logger = logging.getLogger("artifactio.transfer")


async def execute(
    plan: TransferPlan,
    src: Location,
    dst: Location,
    *,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Run ``plan`` (or one piece of a sharded plan) from ``src`` to ``dst``.

    Args:
        plan: What to do (:meth:`TransferPlan.for_copy`, :meth:`TransferPlan.for_sync`,
            a piece of :meth:`TransferPlan.shard`).
        src: A URI or local path, or a ``(store, path)`` pair.
        dst: Likewise.
        progress: Called with a :class:`~artifactio.TransferProgress` snapshot.

    Returns:
        The report. Failed items are listed in it; they do not raise.

    Raises:
        FileNotFoundError: The source does not exist.
        IsADirectoryError: ``copy`` of a directory without ``recursive``.
        NotADirectoryError: A directory onto a file.
        OSError: The destination lies inside the source (EINVAL).
        Exception: Whatever the progress callback raised (after the transfer).
    """
    tally = Tally(progress, dry_run=plan.dry_run)
    retrying = Retrying(RetryPolicy(plan.retries))
    async with open_endpoints(src, dst, concurrency=plan.concurrency) as (source, target):
        start = await resolve(plan, source, target, retrying)
        walker = Walker(plan, start, retrying, tally)
        shared = SharedLimit(plan.concurrency)  # items, and the parts of large files
        runner = ItemRunner(plan, start.src, start.dst, tally, retrying, shared)
        deletions: list[Action] = []

        async def items() -> AsyncGenerator[Action, None]:
            async for action in walker.actions():
                kind = action.kind
                if kind == "delete":
                    deletions.append(action)
                    continue
                tally.found(action.size if kind in ("transfer", "check") else None)
                if kind == "skip":
                    tally.skipped_file()
                elif kind == "conflict":
                    tally.failure(start.src.full(action.path), f"conflict: {action.reason}")
                    if plan.fail_fast:
                        walker.stopped = True
                        return
                else:
                    yield action
            if not walker.stopped:
                tally.finish_listing()

        # Small files between two local disks go in batches, and small files of a
        # local disk are read in batches for another store (see _batches).
        batch_limit = read_limit = 0
        if not plan.dry_run:
            batch_limit = start.dst.store._copy_batch_limit(start.src.store)
            if not batch_limit and not runner.server_side:
                read_limit = min(start.src.store._read_batch_limit(), WHOLE_FILE, plan.part_size)
        stopped = False
        try:
            if batch_limit:
                await for_each(batched(items(), batch_limit), BatchRunner(runner), limit=shared)
            elif read_limit:
                feed = read_ahead(items(), start.src, read_limit)
                await for_each(feed, BatchRunner(runner), limit=shared)
            else:
                await for_each(items(), runner.run, limit=shared)
        except StopTransfer:
            stopped = True
        stopped = stopped or walker.stopped
        if deletions and not stopped:
            if tally.failed:
                logger.warning(
                    "%s: %d failures; the %d deletions at %s are not done",
                    plan.mode,
                    tally.failed,
                    len(deletions),
                    start.dst.full(),
                )
            else:
                with contextlib.suppress(StopTransfer):
                    await for_each(deletions, runner.delete, limit=plan.concurrency)
    tally.final()
    if tally.callback_error is not None:
        raise tally.callback_error
    return tally.report()
