"""``memory://name/...``: an in-process store, for tests and scratch work.

Stores opened with the same name share one filesystem within the process (as
fsspec's memory filesystem does); :func:`clear` empties one. It models a real
filesystem: directories are explicit, parents are created on write, and writing
below a file raises ``NotADirectoryError``. Safe to use from many threads.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._config import MemoryConfig
from .._exceptions import os_error
from .._files import BytesReader, RawReader, RawWriter
from .._paths import StoreRoot, join_key, parent_key
from .._store import AsyncArtifactStore, DirEntry, EntryInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["MemoryStore", "clear"]


@dataclass
class _File:
    data: bytes
    mtime: float


@dataclass
class _FileSystem:
    lock: threading.Lock = field(default_factory=threading.Lock)
    files: dict[str, _File] = field(default_factory=dict)
    # directory -> names directly below it; "" is the top and always exists
    children: dict[str, set[str]] = field(default_factory=lambda: {"": set()})
    mtimes: dict[str, float] = field(default_factory=dict)

    def ensure_dirs(self, key: str) -> str | None:
        """Create ``key`` and its parents; return the first ancestor that is a file."""
        parts = key.split("/") if key else []
        current = ""
        for part in parts:
            child = join_key(current, part)
            if child in self.files:
                return child
            if child not in self.children:
                self.children[child] = set()
                self.mtimes[child] = time.time()
                self.children[current].add(part)
            current = child
        return None


_FILESYSTEMS: dict[str, _FileSystem] = {}
_REGISTRY_LOCK = threading.Lock()


def _filesystem(name: str) -> _FileSystem:
    with _REGISTRY_LOCK:
        fs = _FILESYSTEMS.get(name)
        if fs is None:
            fs = _FILESYSTEMS[name] = _FileSystem()
        return fs


def _before_fork() -> None:
    """Hold every lock across ``fork``, so the child never inherits one held by a thread."""
    _REGISTRY_LOCK.acquire()
    for fs in list(_FILESYSTEMS.values()):
        fs.lock.acquire()


def _after_fork() -> None:
    for fs in list(_FILESYSTEMS.values()):
        fs.lock.release()
    _REGISTRY_LOCK.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
    )


def clear(name: str) -> None:
    """Forget everything stored under ``memory://name``."""
    with _REGISTRY_LOCK:
        _FILESYSTEMS.pop(name, None)


class _Writer(RawWriter):
    parallel_parts = True

    def __init__(self, store: MemoryStore, key: str, exclusive: bool) -> None:
        self._store = store
        self._key = key
        self._exclusive = exclusive
        self._chunks: list[bytes] = []
        self._parts: dict[int, bytes] = {}

    async def write(self, data: bytes) -> None:
        self._chunks.append(bytes(data))

    async def write_part(self, index: int, offset: int, data: bytes) -> None:
        self._parts[index] = bytes(data)

    async def commit(self) -> None:
        chunks = [self._parts[i] for i in sorted(self._parts)] if self._parts else self._chunks
        self._store._publish(self._key, b"".join(chunks), self._exclusive)
        self._chunks, self._parts = [], {}

    async def abort(self) -> None:
        self._chunks, self._parts = [], {}


class MemoryStore(AsyncArtifactStore):
    """An artifact store held in this process's memory.

    Args:
        root: ``memory://name`` or ``memory://name/prefix``.
        **options: ``concurrency`` and ``part_size``, as for every store.
    """

    scheme = "memory"
    inline_capable = True

    def __init__(self, root: str = "memory://default", **options: Any) -> None:
        self.config = MemoryConfig(path=root, **options)
        parsed = StoreRoot.parse(self.config.path)
        super().__init__(
            parsed, concurrency=self.config.concurrency, part_size=self.config.part_size
        )
        name, *prefix = parsed.parts or ("default",)
        self._fs = _filesystem(name)
        self._base = "/".join(prefix)
        with self._fs.lock:
            self._fs.ensure_dirs(self._base)

    def _abs(self, key: str) -> str:
        return join_key(self._base, key) if key else self._base

    # The memory store never suspends: every primitive completes synchronously,
    # so the sync facade can drive it inline.

    async def _info(self, key: str) -> EntryInfo | None:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            f = fs.files.get(path)
            if f is not None:
                return EntryInfo("file", len(f.data), f.mtime)
            if path in fs.children:
                return EntryInfo("dir", 0, fs.mtimes.get(path))
        return None

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            names = fs.children.get(path)
            if names is None:
                cls = NotADirectoryError if path in fs.files else FileNotFoundError
                raise self._err(cls, "listdir", key)
            page: list[DirEntry] = []
            for name in names:
                child = join_key(path, name)
                f = fs.files.get(child)
                if f is not None:
                    page.append(DirEntry(name, False, len(f.data), f.mtime))
                else:
                    page.append(DirEntry(name, True, 0, fs.mtimes.get(child)))
        yield page

    async def _open_reader(self, key: str) -> RawReader:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            f = fs.files.get(path)
            if f is None:
                cls = IsADirectoryError if path in fs.children else FileNotFoundError
                raise self._err(cls, "open", key)
            return BytesReader(f.data)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            self._check_parents(key, path)
        return _Writer(self, key, exclusive)

    def _check_parents(self, key: str, path: str) -> None:
        parent = parent_key(path)
        while parent:
            if parent in self._fs.files:
                raise self._err(
                    NotADirectoryError, "open", key, f"{self._full(parent)!r} is a file"
                )
            if parent in self._fs.children:
                return
            parent = parent_key(parent)

    def _publish(self, key: str, data: bytes, exclusive: bool) -> None:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            if path in fs.children:
                raise self._err(IsADirectoryError, "close", key)
            if exclusive and path in fs.files:
                raise self._err(FileExistsError, "close", key)
            bad = fs.ensure_dirs(parent_key(path))
            if bad is not None:
                raise self._err(NotADirectoryError, "close", key, f"{bad!r} is a file")
            fs.files[path] = _File(data, time.time())
            fs.children[parent_key(path)].add(path.rpartition("/")[2])

    async def _remove_file(self, key: str) -> None:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            if fs.files.pop(path, None) is None:
                raise self._err(FileNotFoundError, "remove", key)
            fs.children[parent_key(path)].discard(path.rpartition("/")[2])

    async def _create_dir(self, key: str, *, parents: bool) -> None:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            if not parents and parent_key(path) not in fs.children:
                raise self._err(FileNotFoundError, "mkdir", key)
            bad = fs.ensure_dirs(path)
            if bad is not None:
                raise os_error(NotADirectoryError, "makedirs", self._full(key))

    async def _remove_dir(self, key: str) -> None:
        path = self._abs(key)
        fs = self._fs
        with fs.lock:
            if fs.children.get(path):
                raise self._err(OSError, "rmdir", key, "directory not empty")
            fs.children.pop(path, None)
            fs.mtimes.pop(path, None)
            fs.children[parent_key(path)].discard(path.rpartition("/")[2])

    async def _rmtree(self, key: str) -> None:
        path = self._abs(key)
        fs = self._fs
        prefix = path + "/"
        with fs.lock:
            for name in [k for k in fs.files if k.startswith(prefix)]:
                del fs.files[name]
            for name in [k for k in fs.children if k == path or k.startswith(prefix)]:
                del fs.children[name]
                fs.mtimes.pop(name, None)
            fs.children[parent_key(path)].discard(path.rpartition("/")[2])

    async def _copy_file(self, src: str, dst: str) -> None:
        with self._fs.lock:
            f = self._fs.files.get(self._abs(src))
            if f is None:
                raise self._err(FileNotFoundError, "copyfile", src)
            data = f.data
        self._publish(dst, data, exclusive=False)
