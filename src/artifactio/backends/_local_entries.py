"""Pure helpers of the local backend: where a key lives, and describing what ``os`` lists.

Nothing here touches the disk but :func:`dir_entry` (one ``stat`` of a listed
entry) and the real path :class:`Lazy` resolves on first use.
"""

from __future__ import annotations

import itertools
import os
import stat as stat_module
from typing import TYPE_CHECKING, NamedTuple

from .._entries import DirEntry, EntryInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["Lazy", "Location", "dir_entry", "entry_info", "inside", "take"]


def inside(real: str, root_real: str) -> bool:
    """Whether real path ``real`` is ``root_real`` or below it, by components."""
    return root_real == "/" or real == root_real or real.startswith(root_real + "/")


def entry_info(st: os.stat_result) -> EntryInfo:
    """Describe a file or directory from its ``stat``."""
    if stat_module.S_ISDIR(st.st_mode):
        return EntryInfo("dir", 0, st.st_mtime)
    return EntryInfo("file", st.st_size, st.st_mtime)


def dir_entry(entry: os.DirEntry[str], root_real: Callable[[], str]) -> DirEntry | None:
    """Describe one listed entry; ``None`` when it vanished since the listing.

    A link leading out of the root (``root_real`` gives the root's real path) is
    listed, as the name lies inside, but what it points to is not described.
    """
    link = entry.is_symlink()
    if link and not inside(os.path.realpath(entry.path), root_real()):
        try:
            return DirEntry(entry.name, entry.is_dir(), is_link=True)
        except OSError:
            return DirEntry(entry.name, False, is_link=True)
    try:
        st = entry.stat()
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and not link:
            return None
        # a dangling or looping link: listed, as os does
        return DirEntry(entry.name, False, is_link=link)
    if stat_module.S_ISDIR(st.st_mode):
        return DirEntry(entry.name, True, 0, st.st_mtime, is_link=link)
    return DirEntry(entry.name, False, st.st_size, st.st_mtime, is_link=link)


def take(tree: Iterator[tuple[str, DirEntry]], n: int) -> list[tuple[str, DirEntry]]:
    """The next ``n`` items of ``tree`` (fewer at its end): one thread hop's worth."""
    return list(itertools.islice(tree, n))


class Lazy:
    """``func(arg)``, computed on the first call and remembered."""

    __slots__ = ("_arg", "_func", "_value")

    def __init__(self, func: Callable[[str], str], arg: str) -> None:
        self._func = func
        self._arg = arg
        self._value: str | None = None

    def __call__(self) -> str:
        if self._value is None:
            self._value = self._func(self._arg)
        return self._value


class Location(NamedTuple):
    """Where a key lives on disk, after the bounds check.

    Attributes:
        path: The path as spelled below the root.
        real: Where to write: the resolved path when a symlink is on the way.
        st: The entry's stat when the check already has it (no link on the way).
        missing: Known not to exist.
        parent_ok: The parent is known to be an existing directory.
        below_file: Known not to exist because an ancestor is not a directory
            (``os`` says ``ENOTDIR`` there).
    """

    path: str
    real: str
    st: os.stat_result | None = None
    missing: bool = False
    parent_ok: bool = False
    below_file: bool = False
