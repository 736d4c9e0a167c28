"""Listing both ends a directory level at a time and planning each level as it comes.

The source is listed page by page and planned as the pages arrive, so transfers
start while the listing still streams in; only the current level's names are
remembered. The destination is listed once per level (one listing of that
directory, all its pages), never probed per file. Subdirectories are visited
depth first in name order, which is also key order, so a key range prunes
whole directories.

A listing that fails transiently is retried (the source from its first page:
names already planned are not planned twice). One that still fails is recorded
as a failure of that directory and the walk goes on with the next one.

This module and :mod:`._endpoints` are the only parts of the transfer package
that use the stores' primitives: ``_info`` and ``_scandir`` here (entries with
sizes and times, a page at a time, which the public ``walk`` does not give),
``_open_writer`` there (a writer opened without probing a path these listings
already showed is no directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._entries import DirEntry
from .._exceptions import invalid_argument, os_error
from .._paths import base_name, is_below
from ._plan import Action, LevelPlanner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._entries import EntryInfo
    from ._endpoints import Endpoint
    from ._plan import TransferPlan
    from ._progress import Tally
    from ._retry import Retrying

__all__ = ["Start", "Walker", "resolve"]


@dataclass(frozen=True)
class Start:
    """Where a transfer starts, once both ends were looked at.

    Attributes:
        src: The source end.
        dst: The destination end (for one file copied into a directory: the file's
            path inside it).
        single: For a one-file source: ``(source entry, destination entry or None)``.
        dst_exists: For a directory source: whether the destination directory exists.
    """

    src: Endpoint
    dst: Endpoint
    single: tuple[DirEntry, DirEntry | None] | None = None
    dst_exists: bool = False


def _entry(name: str, info: EntryInfo) -> DirEntry:
    return DirEntry(name, info.kind == "dir", info.size, info.mtime)


def _plain(path: str) -> str:
    return path.removeprefix("file://")


async def resolve(plan: TransferPlan, src: Endpoint, dst: Endpoint, retrying: Retrying) -> Start:
    """Look at both ends: a file or a tree, and where it goes.

    Raises:
        FileNotFoundError: The source does not exist.
        IsADirectoryError: ``copy`` of a directory without ``recursive``.
        NotADirectoryError: A directory source onto a destination file.
        OSError: ``EINVAL``, the destination lies inside the source.
    """
    op = plan.mode
    sinfo = await retrying.call(lambda: src.store._info(src.key))
    if sinfo is None:
        raise os_error(FileNotFoundError, op, src.full())
    dinfo = await retrying.call(lambda: dst.store._info(dst.key))
    if sinfo.kind == "file":
        name = base_name(src.key)
        if dst.as_dir or (dinfo is not None and dinfo.kind == "dir"):
            dst = dst.child(name)
            dinfo = await retrying.call(lambda: dst.store._info(dst.key))
        other = None if dinfo is None else _entry(base_name(dst.key), dinfo)
        return Start(src, dst, single=(_entry(name, sinfo), other))
    if op == "copy" and not plan.recursive:
        raise os_error(
            IsADirectoryError, op, src.full(), "is a directory (pass recursive=True to copy a tree)"
        )
    if dinfo is not None and dinfo.kind == "file":
        raise os_error(NotADirectoryError, op, dst.full(), "the destination is a file")
    inside = (
        is_below(dst.key, src.key)
        if src.store is dst.store
        else is_below(_plain(dst.full()), _plain(src.full()))
    )
    if inside:
        raise invalid_argument(op, dst.full(), f"cannot {op} {src.full()!r} into itself")
    return Start(src, dst, dst_exists=dinfo is not None)


class Walker:
    """Yields the actions of a transfer, level by level, as the listings arrive.

    Args:
        plan: The plan.
        start: Both ends, as :func:`resolve` found them.
        retrying: Retries for listings.
        tally: Where failed listings are recorded.

    Attributes:
        stopped: A listing failed and the plan is ``fail_fast``.
    """

    def __init__(self, plan: TransferPlan, start: Start, retrying: Retrying, tally: Tally) -> None:
        self.plan = plan
        self.start = start
        self.retrying = retrying
        self.tally = tally
        self.stopped = False

    async def actions(self) -> AsyncIterator[Action]:
        """Every action of the transfer (``descend`` actions are followed, not yielded)."""
        start = self.start
        if start.single is not None:
            entry, other = start.single
            if self.plan.key_range.contains("") and self.plan.filter.wants_file(entry.name):
                yield self.plan.decide("", entry, other)
            return
        stack = [Action("descend", "", is_dir=True, in_dst=start.dst_exists)]
        while stack and not self.stopped:
            level = stack.pop()
            subdirs: list[Action] = []
            async for action in self._level(level):
                if action.kind == "descend":
                    subdirs.append(action)
                else:
                    yield action
            subdirs.sort(key=lambda a: a.path, reverse=True)  # popped in name order
            stack.extend(subdirs)

    def _failed(self, path: str, exc: BaseException) -> None:
        self.tally.failure(path, exc)
        if self.plan.fail_fast:
            self.stopped = True

    async def _destination(self, rel: str) -> dict[str, DirEntry] | None:
        """The destination's entries at ``rel`` by name; ``None`` after a recorded failure."""
        dst = self.start.dst

        async def listing() -> dict[str, DirEntry]:
            found: dict[str, DirEntry] = {}
            async for page in dst.store._scandir(dst.key_of(rel)):
                for entry in page:
                    found.setdefault(entry.name, entry)
            return found

        try:
            return await self.retrying.call(listing)
        except FileNotFoundError:
            return {}  # gone meanwhile: nothing there
        except Exception as exc:
            self._failed(dst.full(rel), exc)
            return None

    async def _level(self, level: Action) -> AsyncIterator[Action]:
        """The actions of one directory level."""
        destination: dict[str, DirEntry] = {}
        if level.in_dst:
            listed = await self._destination(level.path)
            if listed is None:
                return
            destination = listed
        planner = LevelPlanner(self.plan, level.path, destination)
        if level.in_src:
            src = self.start.src
            tries = 0
            while True:
                tries += 1
                try:
                    async for page in src.store._scandir(src.key_of(level.path)):
                        for action in planner.source_page(page):
                            yield action
                except Exception as exc:
                    if await self.retrying.pause(exc, tries):
                        continue
                    # What was not listed cannot be compared: nothing is deleted here.
                    self._failed(src.full(level.path), exc)
                    return
                self.retrying.succeeded()
                break
        for action in planner.finish():
            yield action
