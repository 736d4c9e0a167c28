"""Planning: what a copy or a sync does with each path. Pure: no I/O here.

A :class:`TransferPlan` holds every choice of a transfer (copy or sync, the
comparison, the filters, the key range...). Execution (``_engine``) walks the
source one directory level at a time, lists the same level of the destination
once, and hands both listings to a :class:`LevelPlanner`, which turns them into
:class:`Action` s:

- ``transfer``: the file is copied (the reason says why: ``new``,
  ``overwrite``, ``size differs``, ``source newer``);
- ``skip``: the destination is up to date (``exists``, ``same size``,
  ``same size and mtime``...);
- ``check``: same size, ``compare="checksum"``: the checksums decide, at run time;
- ``conflict``: a file on one side, a directory on the other (a failure);
- ``descend``: a subdirectory to plan next;
- ``delete``: a destination entry absent from the source (``sync(delete=True)``;
  a whole directory when no filter or key range applies to it).

What ``sync`` compares (``compare=``):

- ``"size-mtime"`` (default): up to date when the sizes are equal and the
  destination is not older than the source. Modification times are compared
  with a one-second window (:data:`MTIME_WINDOW`; S3 reports whole seconds),
  and where either side has no time the sizes alone decide.
- ``"size"``: up to date when the sizes are equal.
- ``"checksum"``: different sizes mean a transfer; equal sizes are compared by
  checksum at run time, with the checksums the stores report when both report
  comparable ones (``StatResult.checksum``), else computed by reading (only the
  side without one when the other reports an algorithm we can compute).

A file larger than ``part_size`` goes in parts (:func:`split_parts`) where the
destination takes parts in any order (S3, local, memory).

``copy`` does not compare: with ``overwrite=True`` (default) every file is
transferred, with ``overwrite=False`` files that exist at the destination are
skipped.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._paths import join_key
from .._primitives import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
from ._filters import PathFilter
from ._shards import KeyRange

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .._entries import DirEntry

__all__ = [
    "Action",
    "ActionKind",
    "Compare",
    "LevelPlanner",
    "TransferPlan",
    "patterns",
    "split_parts",
]

Compare = Literal["size-mtime", "size", "checksum"]
"""How ``sync`` tells whether a destination file is up to date."""

COMPARE_MODES: tuple[str, ...] = ("size-mtime", "size", "checksum")

ActionKind = Literal["transfer", "skip", "check", "conflict", "descend", "delete"]
"""What happens to one path."""

MTIME_WINDOW = 1.0
"""Seconds a destination may seem older than its source and still count as up to date."""

MAX_PARTS = 10_000
"""The most parts a file is split into (S3's limit for one multipart upload)."""

MIN_PART_SIZE = 5 * 1024 * 1024
"""The smallest part but the last (S3's minimum)."""

PARTS_IN_FLIGHT = 8
"""The most parts of one file moving at once (free slots of the shared limit permitting).

More crowd the server rather than speed the file: one 256 MiB object copied to
and from SeaweedFS in 8 MiB parts (``benchmarks/bench_suite.py`` S3 setting, 2
cores) went up at 108/103/87/29 MB/s with 4/8/16/64 parts in flight and down at
279/311/245/243 MB/s. Other files still use the slots a big file leaves free.
"""

_PART_ROUNDING = 1024 * 1024


def split_parts(size: int, part_size: int) -> list[tuple[int, int]]:
    """The ``(offset, length)`` parts of a file of ``size`` bytes.

    Parts are ``part_size`` bytes (at least :data:`MIN_PART_SIZE`), the last one
    shorter; for a file that would need more than :data:`MAX_PARTS`, the part
    size grows, in whole MiB, until it does not.
    """
    part = max(part_size, MIN_PART_SIZE)
    if size > part * MAX_PARTS:
        part = -(-size // MAX_PARTS)
        part = -(-part // _PART_ROUNDING) * _PART_ROUNDING
    return [(offset, min(part, size - offset)) for offset in range(0, size, part)]


def patterns(value: Iterable[str] | str) -> tuple[str, ...]:
    """Filter patterns as a tuple; one pattern given as a string is one pattern."""
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class Action:
    """What to do with one path.

    Attributes:
        kind: See the module docstring.
        path: The path relative to the source (and to the destination).
        size: The source file's size (``transfer``, ``check``, ``skip``), or the
            destination file's (``delete``).
        reason: Why, in a few words.
        is_dir: ``delete``/``descend``: a directory.
        in_src: ``descend``: the directory exists in the source.
        in_dst: ``descend``: it exists at the destination; ``transfer``: a file
            there is replaced.
        mtime: The source file's modification time, where known.
    """

    kind: ActionKind
    path: str
    size: int = 0
    reason: str = ""
    is_dir: bool = False
    in_src: bool = True
    in_dst: bool = False
    mtime: float | None = None


@dataclass(frozen=True)
class TransferPlan:
    """Every choice of one transfer, independent of where it runs.

    Build one with :meth:`for_copy` or :meth:`for_sync` (what :func:`artifactio.copy`
    and :func:`artifactio.sync` do), cut it with :meth:`shard`, run the pieces with
    :func:`artifactio.transfer.execute`. A plan is small, immutable and picklable.

    Attributes:
        mode: ``"copy"`` or ``"sync"``.
        recursive: Whether a directory source is copied with everything below it
            (``sync`` always is).
        overwrite: ``copy``: replace files that exist at the destination.
        compare: ``sync``: how up-to-date files are recognised.
        delete: ``sync``: remove destination files absent from the source.
        include: Glob patterns of paths to take (all when empty).
        exclude: Glob patterns of paths to leave out.
        dry_run: Plan and report, write nothing.
        fail_fast: Stop at the first failure.
        concurrency: Items in flight at once, for the whole transfer.
        part_size: Bytes read and written at a time per file.
        retries: Attempts after the first for an item that failed transiently.
        key_range: The relative paths this plan (piece) covers.
    """

    mode: Literal["copy", "sync"] = "copy"
    recursive: bool = False
    overwrite: bool = True
    compare: Compare = "size-mtime"
    delete: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    fail_fast: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    part_size: int = DEFAULT_PART_SIZE
    retries: int = 3
    key_range: KeyRange = field(default_factory=KeyRange)

    def __post_init__(self) -> None:
        if self.mode not in ("copy", "sync"):
            raise ValueError(f"transfer: mode must be 'copy' or 'sync', not {self.mode!r}")
        if self.compare not in COMPARE_MODES:
            raise ValueError(
                f"sync: compare must be one of {', '.join(COMPARE_MODES)}, not {self.compare!r}"
            )
        if self.delete and self.mode != "sync":
            raise ValueError("transfer: delete applies to sync only")
        for name in ("concurrency", "part_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"transfer: {name} must be a positive int, not {value!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"transfer: retries must be an int >= 0, not {self.retries!r}")
        object.__setattr__(self, "include", patterns(self.include))
        object.__setattr__(self, "exclude", patterns(self.exclude))
        self.filter  # noqa: B018 - a bad pattern fails here, before anything is touched

    @classmethod
    def for_copy(
        cls,
        *,
        recursive: bool = False,
        overwrite: bool = True,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        dry_run: bool = False,
        fail_fast: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int = DEFAULT_PART_SIZE,
        retries: int = 3,
    ) -> TransferPlan:
        """The plan of :func:`artifactio.copy` (same arguments)."""
        return cls(
            "copy",
            recursive=recursive,
            overwrite=overwrite,
            include=patterns(include),
            exclude=patterns(exclude),
            dry_run=dry_run,
            fail_fast=fail_fast,
            concurrency=concurrency,
            part_size=part_size,
            retries=retries,
        )

    @classmethod
    def for_sync(
        cls,
        *,
        delete: bool = False,
        compare: Compare = "size-mtime",
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        dry_run: bool = False,
        fail_fast: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int = DEFAULT_PART_SIZE,
        retries: int = 3,
    ) -> TransferPlan:
        """The plan of :func:`artifactio.sync` (same arguments)."""
        return cls(
            "sync",
            recursive=True,
            delete=delete,
            compare=compare,
            include=patterns(include),
            exclude=patterns(exclude),
            dry_run=dry_run,
            fail_fast=fail_fast,
            concurrency=concurrency,
            part_size=part_size,
            retries=retries,
        )

    @functools.cached_property
    def filter(self) -> PathFilter:
        """The include/exclude filter."""
        return PathFilter(self.include, self.exclude)

    # ------------------------------------------------------------ sharding

    def restrict(self, key_range: KeyRange) -> TransferPlan:
        """This plan limited to ``key_range`` (within its own range).

        Raises:
            ValueError: The two ranges do not overlap.
        """
        mine = self.key_range
        starts = [s for s in (mine.start, key_range.start) if s is not None]
        stops = [s for s in (mine.stop, key_range.stop) if s is not None]
        merged = KeyRange(max(starts) if starts else None, min(stops) if stops else None)
        return dataclasses.replace(self, key_range=merged)

    def shard(self, boundaries: Iterable[str]) -> list[TransferPlan]:
        """Independent pieces of this plan, cut at ``boundaries`` (relative paths).

        Each piece transfers (and deletes, with ``sync(delete=True)``) only the
        paths of its key range, so the pieces may run anywhere, in any order or
        side by side; ``TransferReport.merge`` of their reports is the report of
        the whole. Use :func:`artifactio.transfer.split_points` to pick boundaries,
        or :meth:`KeyRange.prefix` with :meth:`restrict` for one directory.

        Note: with ``delete``, each piece deletes after its own transfers
        succeeded, not after those of every piece.
        """
        return [dataclasses.replace(self, key_range=r) for r in self.key_range.split(boundaries)]

    # ------------------------------------------------------------ decisions

    def wants_file(self, rel: str) -> bool:
        """Whether the file at relative path ``rel`` belongs to this plan."""
        return self.key_range.contains(rel) and self.filter.wants_file(rel)

    def may_descend(self, rel: str) -> bool:
        """Whether directory ``rel`` may hold files of this plan (else it is not listed)."""
        return self.key_range.may_hold_below(rel) and self.filter.may_descend(rel)

    def decide(self, rel: str, src: DirEntry, dst: DirEntry | None) -> Action:
        """What to do with source file ``src`` given what the destination holds there."""
        size, mtime = src.size, src.mtime
        if dst is None:
            return Action("transfer", rel, size, "new", mtime=mtime)
        if dst.is_dir:
            return Action(
                "conflict", rel, size, "a file in the source, a directory at the destination"
            )
        if self.mode == "copy":
            if self.overwrite:
                return Action("transfer", rel, size, "overwrite", in_dst=True, mtime=mtime)
            return Action("skip", rel, size, "exists")
        if dst.size != size:
            return Action("transfer", rel, size, "size differs", in_dst=True, mtime=mtime)
        if self.compare == "size":
            return Action("skip", rel, size, "same size")
        if self.compare == "checksum":
            return Action("check", rel, size, "same size", in_dst=True, mtime=mtime)
        if mtime is None or dst.mtime is None:
            return Action("skip", rel, size, "same size (no modification time)")
        if dst.mtime + MTIME_WINDOW < mtime:
            return Action("transfer", rel, size, "source newer", in_dst=True, mtime=mtime)
        return Action("skip", rel, size, "same size and mtime")


class LevelPlanner:
    """Plans one directory level from its source pages and its whole destination listing.

    Feed the source listing page by page to :meth:`source_page` (a name seen
    twice is planned once, so a listing retried from its start is harmless),
    then call :meth:`finish` for what only the destination holds.

    Args:
        plan: The plan.
        rel: The level's path relative to the source (``""`` for the top).
        destination: The destination's entries at this level, by name.
    """

    def __init__(self, plan: TransferPlan, rel: str, destination: Mapping[str, DirEntry]) -> None:
        self.plan = plan
        self.rel = rel
        self.destination = destination
        self._seen: set[str] = set()

    def source_page(self, entries: Iterable[DirEntry]) -> list[Action]:
        """The actions for one page of the source listing."""
        plan = self.plan
        out: list[Action] = []
        for entry in entries:
            if entry.name in self._seen:
                continue
            self._seen.add(entry.name)
            rel = join_key(self.rel, entry.name)
            other = self.destination.get(entry.name)
            if entry.is_dir:
                if entry.is_link or not plan.may_descend(rel):
                    continue  # links to directories are not followed, as walk()
                if other is not None and not other.is_dir:
                    reason = "a directory in the source, a file at the destination"
                    out.append(Action("conflict", rel, 0, reason, is_dir=True))
                    continue
                out.append(Action("descend", rel, is_dir=True, in_dst=other is not None))
            elif plan.wants_file(rel):
                out.append(plan.decide(rel, entry, other))
        return out

    def finish(self) -> list[Action]:
        """The actions for what only the destination holds (deletions, with ``delete``)."""
        plan = self.plan
        if not plan.delete:
            return []
        out: list[Action] = []
        for name in sorted(self.destination):
            if name in self._seen:
                continue
            entry = self.destination[name]
            rel = join_key(self.rel, name)
            if entry.is_dir and not entry.is_link:
                if not plan.may_descend(rel):
                    continue
                if plan.filter.active or not plan.key_range.holds_all_below(rel):
                    # Only some of it is ours: look inside, delete file by file.
                    out.append(Action("descend", rel, is_dir=True, in_src=False, in_dst=True))
                else:
                    out.append(Action("delete", rel, is_dir=True))
            elif not entry.is_dir and plan.wants_file(rel):
                out.append(Action("delete", rel, entry.size))
        return out
