"""How :class:`~artifactio.integrations.fsspec.ArtifactioFileSystem` lists a tree for ``find``.

``find`` (and so ``glob``, ``du``, ``walk`` and fsspec's recursive copies) asks
for everything below a directory, to a depth or all the way down. Without a
depth that is one listing of the whole tree (the store's ``_iter_tree``: flat on
object stores); with one, the directories of each level are listed at once, a
level at a time.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from fsspec.asyn import _run_coros_in_chunks

from .._paths import join_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._entries import DirEntry
    from .._store import AsyncArtifactStore

__all__ = ["tree"]


async def tree(
    store: AsyncArtifactStore, key: str, maxdepth: int | None, prefix: str
) -> AsyncIterator[tuple[str, DirEntry]]:
    """``(key, entry)`` of everything below directory ``key``, down to ``maxdepth`` levels.

    Only the entries whose first component below ``key`` starts with ``prefix``
    (``glob`` passes the literal start of its pattern) are listed and given.
    Level by level (``maxdepth``), a symbolic link to a directory is given, not descended into.
    """
    cut = len(key) + 1 if key else 0
    if maxdepth is None:
        async for child, entry in store._iter_tree(key):
            if child[cut:].partition("/")[0].startswith(prefix):
                yield child, entry
        return
    level = [key]
    for depth in range(maxdepth):
        listings = await _run_coros_in_chunks(
            [_listing(store, k) for k in level], batch_size=store.concurrency, nofiles=True
        )
        level = []
        for parent, entries in listings:
            for entry in entries:
                if depth == 0 and not entry.name.startswith(prefix):
                    continue
                child = join_key(parent, entry.name)
                yield child, entry
                if entry.is_dir and not entry.is_link:
                    level.append(child)
        if not level:
            return


async def _listing(store: AsyncArtifactStore, key: str) -> tuple[str, list[DirEntry]]:
    """The entries of directory ``key`` (none when it went away meanwhile)."""
    entries: list[DirEntry] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        async for page in store._scandir(key):
            entries.extend(page)
    return key, entries
