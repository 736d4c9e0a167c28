"""The records that backends and users exchange: entries of a listing, and ``stat`` results."""

from __future__ import annotations

import stat as stat_module
from dataclasses import dataclass
from typing import Literal

__all__ = ["DirEntry", "EntryInfo", "StatResult", "WalkEntry"]

WalkEntry = tuple[str, list[str], list[str]]
"""One step of :meth:`AsyncArtifactStore.walk`: ``(dirpath, dirnames, filenames)``."""


@dataclass(frozen=True)
class EntryInfo:
    """What a backend knows about one entry (the ``_info`` primitive's answer)."""

    kind: Literal["file", "dir"]
    size: int = 0
    mtime: float | None = None
    etag: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class DirEntry:
    """One entry of a directory listing (the ``_scandir`` primitive's answer).

    ``is_link`` marks a symbolic link (local disks): ``walk`` lists a link to a
    directory among the directories but does not descend into it, as ``os.walk``.
    """

    name: str
    is_dir: bool
    size: int = 0
    mtime: float | None = None
    is_link: bool = False


@dataclass(frozen=True)
class StatResult:
    """The result of :meth:`AsyncArtifactStore.stat`.

    Works where an ``os.stat_result`` is expected for the common fields:
    ``st_size``, ``st_mtime`` and ``st_mode`` (so ``stat.S_ISDIR(st.st_mode)``).

    Attributes:
        path: The full path.
        size: Size in bytes (0 for directories).
        mtime: Last modification, seconds since the epoch (0.0 where unknown).
        is_dir: Whether it is a directory.
        etag: The backend's entity tag, where it has one.
        checksum: A content checksum (``"md5:..."``, ``"crc32c:..."``), where known.
    """

    path: str
    size: int
    mtime: float
    is_dir: bool
    etag: str | None = None
    checksum: str | None = None

    @property
    def is_file(self) -> bool:
        """Whether it is a regular file."""
        return not self.is_dir

    @property
    def st_size(self) -> int:
        """``os.stat_result``-style size."""
        return self.size

    @property
    def st_mtime(self) -> float:
        """``os.stat_result``-style modification time."""
        return self.mtime

    @property
    def st_mode(self) -> int:
        """``os.stat_result``-style mode: ``S_IFDIR | 0o755`` or ``S_IFREG | 0o644``."""
        return (stat_module.S_IFDIR | 0o755) if self.is_dir else (stat_module.S_IFREG | 0o644)
