"""Cutting a transfer's source into shards while it is being listed (the driver's side).

:func:`split` walks the source one directory level at a time, with the same
delimiter listings (``_scandir``) the transfer engine uses, depth first in key
order, and yields a :class:`Shard` — a :class:`~artifactio.transfer.KeyRange` of
relative paths — each time about ``max_files`` files or ``max_bytes`` bytes
went by. The driver submits each shard at once, so workers start on the first
one while the listing goes on. Only the pages of the directories on the current
path are held (one page per level of depth; a local or in-memory level is one
page), never the whole listing.

The ranges tile the key space by construction: the first starts open, each
next one starts where the previous one stopped, the last stops open, and every
boundary is greater than the one before. So every path — also one the listing
did not show, or one created meanwhile — belongs to exactly one shard, whose
worker lists it again and deals with it. The counts only decide where the cuts
fall; a listing that fails here (after retries) costs balance, not correctness:
the rest of that directory stays in the current shard.

Where the cuts fall: a boundary is the key of the next entry after a full shard
— a file's relative path, or ``"dir/"`` for a subdirectory about to be entered,
so that a whole subdirectory starts the next shard when it can. A file that
would take a shard past ``max_bytes`` starts the next one, so a big file is a
shard of its own.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._paths import join_key
from ..transfer import KeyRange

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from .._entries import DirEntry
    from ..transfer import TransferPlan
    from ..transfer._endpoints import Endpoint
    from ..transfer._progress import Tally
    from ..transfer._retry import Retrying

__all__ = ["Shard", "split"]

logger = logging.getLogger("artifactio.integrations.dask")


@dataclass(frozen=True)
class Shard:
    """One piece of a transfer, as the driver saw it when it cut it.

    Attributes:
        index: Its place in key order (0 for the first).
        key_range: The relative paths it covers.
        files: Files the driver listed in it (the filters applied).
        bytes: Their bytes.
    """

    index: int
    key_range: KeyRange
    files: int = 0
    bytes: int = 0

    def describe(self) -> str:
        """Its range in words, for logs and failure messages."""
        start, stop = self.key_range.start, self.key_range.stop
        if start is None and stop is None:
            return "every path"
        if start is None:
            return f"paths before {stop!r}"
        if stop is None:
            return f"paths from {start!r} on"
        return f"paths from {start!r} up to {stop!r}"


def _order(entry: DirEntry) -> str:
    """An entry's place in key order: a directory ``d`` sorts as its keys ``d/...`` do."""
    return entry.name + "/" if entry.is_dir else entry.name


async def _events(
    plan: TransferPlan, source: Endpoint, rel: str, retrying: Retrying
) -> AsyncGenerator[tuple[str, int | None], None]:
    """``(key, size)`` for every file of the plan below ``rel``, in key order, and
    ``("dir/", None)`` before the files of each subdirectory.

    A failed listing is retried from its first page (entries already yielded are
    passed over); one that still fails is logged and ends this directory.
    """
    last: str | None = None
    tries = 0
    while True:
        tries += 1
        try:
            async for page in source.store._scandir(source.key_of(rel)):
                for entry in sorted(page, key=_order):
                    order = _order(entry)
                    if last is not None and order <= last:
                        continue
                    last = order
                    path = join_key(rel, entry.name)
                    if entry.is_dir:
                        if entry.is_link or not plan.may_descend(path):
                            continue
                        yield path + "/", None
                        async with aclosing(_events(plan, source, path, retrying)) as below:
                            async for event in below:
                                yield event
                    elif plan.wants_file(path):
                        yield path, entry.size
        except Exception as exc:
            if await retrying.pause(exc, tries):
                continue
            logger.warning(
                "%s: could not list %s to cut it into shards (%s: %s); the shard that "
                "holds it lists it again",
                plan.mode,
                source.full(rel),
                type(exc).__name__,
                exc,
            )
            return
        retrying.succeeded()
        return


async def split(
    plan: TransferPlan,
    source: Endpoint,
    *,
    max_files: int,
    max_bytes: int,
    retrying: Retrying,
    tally: Tally | None = None,
) -> AsyncGenerator[Shard, None]:
    """The shards of a directory source, each as soon as its end is known.

    Args:
        plan: The transfer's plan (its filters and key range decide what is listed
            and counted; the shards lie within its key range).
        source: The source directory.
        max_files: Files after which a shard is cut.
        max_bytes: Bytes after which a shard is cut (a file that would go beyond
            them starts the next shard).
        retrying: Retries for the listings.
        tally: Counts each file listed (``found``), for the progress totals.

    Yields:
        Shards in key order whose ranges cover ``plan.key_range`` exactly.
    """
    start = plan.key_range.start
    index = files = size = 0
    async for key, length in _events(plan, source, "", retrying):
        full = files >= max_files or size >= max_bytes
        if length and files and size + length > max_bytes:
            full = True
        if full and (start is None or key > start) and plan.key_range.contains(key):
            yield Shard(index, KeyRange(start, key), files, size)
            index += 1
            start = key
            files = size = 0
        if length is not None:
            files += 1
            size += length
            if tally is not None:
                tally.found(length)
    yield Shard(index, KeyRange(start, plan.key_range.stop), files, size)
