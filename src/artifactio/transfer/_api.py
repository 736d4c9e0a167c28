"""``copy`` and ``sync``: the bulk transfer API (``artifactio.copy``, ``artifactio.sync``).

Both are coroutines that return a :class:`~artifactio.TransferReport`. Their
blocking twins (``artifactio.blocking.copy``/``sync``) are generated from
these functions by ``artifactio._codegen``, so they stay plain ``async def``
functions with complete signatures and docstrings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._primitives import DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE
from ._engine import execute
from ._plan import TransferPlan

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._endpoints import Location
    from ._plan import Compare
    from ._progress import ProgressCallback
    from ._report import TransferReport

__all__ = ["copy", "sync"]


async def copy(
    src: Location,
    dst: Location,
    *,
    recursive: bool = False,
    overwrite: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: int = DEFAULT_PART_SIZE,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    retries: int = 3,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Copy a file, or a directory tree with ``recursive=True``, between any two stores.

    A file copied onto an existing directory (or a path ending in ``/``) lands
    inside it. A tree's files land below ``dst`` at the same relative paths;
    empty directories are not copied, and links to directories are not followed.
    Both ends on the same store object (or URIs of one bucket) copy server-side.

    Args:
        src: A URI or local path (opened, then closed at the end), or a
            ``(store, path)`` pair that reuses an open store.
        dst: Likewise.
        recursive: Copy a directory with everything below it.
        overwrite: Replace destination files that exist; with ``False`` they are
            skipped (and one that appears meanwhile is not replaced).
        concurrency: Files, and parts of large files, in flight at once: one
            limit for the whole transfer, so about ``concurrency * part_size``
            bytes are in flight at most.
        part_size: Bytes read and written at a time per file. A larger file goes
            in parts of this size (at least 5 MiB; larger for a file that would
            need more than 10 000), in parallel where the destination takes
            them in any order (S3, local disks, memory).
        include: Glob patterns (relative to ``src``) of the paths to take; all when empty.
        exclude: Glob patterns of paths to leave out.
        dry_run: Plan and report what would be copied; write nothing.
        fail_fast: Stop at the first failure (in-flight files are abandoned
            without leaving anything partial).
        retries: Attempts after the first for a file that failed transiently
            (connection, timeout, checksum); all files share one retry budget.
        progress: Called with a :class:`~artifactio.TransferProgress` snapshot,
            at most every 0.1 s and once at the end.

    Returns:
        A :class:`~artifactio.TransferReport`; failed files are listed in it.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        IsADirectoryError: ``src`` is a directory and ``recursive`` is false.
        NotADirectoryError: ``src`` is a directory and ``dst`` a file.
        OSError: ``dst`` lies inside ``src`` (EINVAL).
        ValueError: An invalid argument or filter pattern.
    """
    plan = TransferPlan.for_copy(
        recursive=recursive,
        overwrite=overwrite,
        include=include,
        exclude=exclude,
        dry_run=dry_run,
        fail_fast=fail_fast,
        concurrency=concurrency,
        part_size=part_size,
        retries=retries,
    )
    return await execute(plan, src, dst, progress=progress)


async def sync(
    src: Location,
    dst: Location,
    *,
    delete: bool = False,
    compare: Compare = "size-mtime",
    concurrency: int = DEFAULT_CONCURRENCY,
    part_size: int = DEFAULT_PART_SIZE,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    dry_run: bool = False,
    fail_fast: bool = False,
    retries: int = 3,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Make ``dst`` hold what ``src`` holds, transferring only the files that differ.

    Running it again after an interruption finishes the rest; a run after a
    complete one transfers nothing.

    Args:
        src: A URI or local path (a directory or one file), or a ``(store, path)`` pair.
        dst: Likewise.
        delete: Remove destination files absent from the source (those the
            filters and the key range cover), only after every transfer succeeded.
        compare: ``"size-mtime"`` (default): a file is up to date when the sizes
            are equal and the destination is not older (within one second);
            ``"size"``: when the sizes are equal; ``"checksum"``: when the sizes and
            the checksums are equal (the stores' own where comparable, else
            computed by reading).
        concurrency: Files, and parts of large files, in flight at once: one
            limit for the whole transfer, so about ``concurrency * part_size``
            bytes are in flight at most.
        part_size: Bytes read and written at a time per file. A larger file goes
            in parts of this size (at least 5 MiB; larger for a file that would
            need more than 10 000), in parallel where the destination takes
            them in any order (S3, local disks, memory).
        include: Glob patterns (relative to ``src``) of the paths to take; all when empty.
        exclude: Glob patterns of paths to leave out.
        dry_run: Plan and report what would be transferred and deleted; write nothing.
        fail_fast: Stop at the first failure.
        retries: Attempts after the first for a file that failed transiently.
        progress: Called with a :class:`~artifactio.TransferProgress` snapshot.

    Returns:
        A :class:`~artifactio.TransferReport`; failed files are listed in it.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        NotADirectoryError: ``src`` is a directory and ``dst`` a file.
        OSError: ``dst`` lies inside ``src`` (EINVAL).
        ValueError: An invalid argument or filter pattern.
    """
    plan = TransferPlan.for_sync(
        delete=delete,
        compare=compare,
        include=include,
        exclude=exclude,
        dry_run=dry_run,
        fail_fast=fail_fast,
        concurrency=concurrency,
        part_size=part_size,
        retries=retries,
    )
    return await execute(plan, src, dst, progress=progress)
