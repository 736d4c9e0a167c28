"""An fsspec filesystem over an artifactio store, under fsspec's protocol name ``artifactio``.

:class:`ArtifactioFileSystem` is an ``fsspec.asyn.AsyncFileSystem``: pandas,
pyarrow, dask and anything else that speaks fsspec read and write a store
through it, with the store's behaviour. It registers ``artifactio`` (an entry
point), never ``s3``, ``gs`` or ``file``: s3fs and gcsfs stay what they are::

    fs = ArtifactioFileSystem("s3://bucket/prefix", endpoint_url="http://127.0.0.1:8333")
    df.to_parquet("runs/1/metrics.parquet", filesystem=fs)
    pd.read_csv("artifactio://runs/1/metrics.csv",
                storage_options={"store_or_uri": "s3://bucket/prefix", "endpoint_url": ...})

**Store**: a URI (opened with :func:`artifactio.open_store` and the options;
fsspec caches the filesystem, so the same URI and options give one filesystem
and one store) or a store object, which stays the caller's to close.
**Paths** are the store's, relative to its root or full, with or without
``artifactio://``; paths handed back are spelled as the path asked about.
**Files** (``fs.open``) keep the store's all-or-nothing writes: the content
appears when ``close()`` succeeds; an exception inside ``with``, ``discard()``
or a writer dropped unclosed publishes nothing (fsspec's own files publish).
**Errors** are the store's builtin exceptions; an outage is raised, never
taken for a missing path.

**Event loops**: the blocking methods (everything pandas and pyarrow call) run
on fsspec's IO loop, a daemon thread of its own, so they work from plain code,
threads and inside a running loop alike; with ``asynchronous=True`` the
coroutine methods and ``await fs.open_async(...)`` run on the caller's loop. A
store keeps one client per event loop, so one store may serve fsspec's loop
and the caller's loops at once; ``await store.aclose()`` on any loop closes
them all. A store the filesystem opened itself is closed by :meth:`close` (or
``await fs.aclose()``), when the filesystem is collected, or at exit.

**Pickling** (dask, multiprocessing): a filesystem made from a URI pickles as
the URI and its options (secrets included, as with s3fs); one made with a
built-in store as that store's root and options (its ``config``); other stores
refuse (``TypeError``). A ``memory://`` store lives in one process.

**Chained URLs** (fsspec >= 2025.10): ``artifactio::memory://name/x.csv``,
``artifactio::file:///data/x.csv``, and ``artifactio::s3://bucket/x.csv`` or
``artifactio::gs://...`` where s3fs or gcsfs is installed (fsspec parses the
inner URL with its class, and nothing more). The store is the URL's bucket;
its options come top level or under the inner protocol's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from fsspec.asyn import AsyncFileSystem, _run_coros_in_chunks, sync
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import make_instance
from fsspec.utils import stringify_path

from .._exceptions import directory_not_empty, os_error
from .._paths import has_magic, join_key, split_scheme
from .._registry import open_store
from .._store import AsyncArtifactStore
from ._fsspec_files import ArtifactioFile, ArtifactioStreamedFile, download, text_file, upload
from ._fsspec_listing import tree
from ._fsspec_store import (
    FS_OPTIONS,
    Chain,
    Spelling,
    StoreAwareCache,
    Target,
    close_store,
    entry_info,
    is_store_object,
    reopen_arguments,
    stat_info,
    write_mode,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._entries import DirEntry

__all__ = ["ArtifactioFileSystem"]

try:  # fsspec >= 2025.10: chained URLs hand the inner path to filesystems marked so
    from fsspec.implementations.chained import ChainedFileSystem as _ChainedBase
except ImportError:  # pragma: no cover - older fsspec: no chained URLs
    _ChainedBase = object


class ArtifactioFileSystem(AsyncFileSystem, _ChainedBase, metaclass=StoreAwareCache):  # type: ignore[misc]
    """An fsspec filesystem over an :class:`~artifactio.AsyncArtifactStore`.

    Args:
        store_or_uri: A URI or local path (``s3://bucket/prefix``,
            ``gs://bucket/prefix``, ``memory://name``, ``/data/artifacts``), opened
            with :func:`artifactio.open_store` and ``options``; or a store object
            (an ``AsyncArtifactStore``, or an ``ArtifactStore`` facade around one),
            which stays the caller's to close.
        **options: The store's options when opening by URI (``endpoint_url``,
            ``key``, ``secret``...), plus fsspec's own (``asynchronous``,
            ``loop``, ``batch_size``, ``skip_instance_cache``). ``fo``,
            ``target_protocol`` and ``target_options`` come from chained URLs.

    Raises:
        TypeError: Neither a store nor a URI was given, or store options came
            with a store object.
        ValueError: An option is unknown or invalid (``pydantic.ValidationError``),
            or a chained URL names a protocol artifactio does not serve.

    Attributes:
        store: The store behind the filesystem.
    """

    protocol: ClassVar[str] = "artifactio"
    root_marker: ClassVar[str] = ""

    def __init__(
        self,
        store_or_uri: Any = None,
        *,
        fo: str | None = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        fs_options = {name: options.pop(name) for name in list(options) if name in FS_OPTIONS}
        super().__init__(**fs_options)
        self._chain: Chain | None = None
        if store_or_uri is None and target_protocol is not None:
            self._chain = Chain.parse(target_protocol)
            store_or_uri = self._chain.root(fo or "")
            options = {**(target_options or {}), **options}
        if store_or_uri is None:
            raise TypeError(
                "ArtifactioFileSystem needs store_or_uri=: a store, or a URI such as "
                "s3://bucket/prefix (fsspec.filesystem('artifactio', store_or_uri=...))"
            )
        if is_store_object(store_or_uri):
            if options:
                raise TypeError(
                    "ArtifactioFileSystem(store) takes no store options "
                    f"({', '.join(sorted(options))}); they apply when opening by URI"
                )
            store = getattr(store_or_uri, "async_store", store_or_uri)
            if not isinstance(store, AsyncArtifactStore):
                raise TypeError(
                    "store_or_uri must be a URI, a path or an artifactio store, "
                    f"not {type(store_or_uri).__name__}"
                )
            self._owns_store = False
        else:
            store = open_store(store_or_uri, **options)
            self._owns_store = True
        self.store: AsyncArtifactStore = store
        self._dir_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._dir_locks_guard = threading.Lock()
        self._closer: weakref.finalize[Any, Any] | None = None
        if self._owns_store:
            self._closer = weakref.finalize(self, close_store, store, self._loop, os.getpid())

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store.root!r})"

    @property
    def fsid(self) -> str:
        """An identifier of the store: ``artifactio:`` and its root."""
        return f"artifactio:{self.store.root}"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._owns_store:
            return make_instance, (type(self), self.storage_args, self.storage_options)
        uri, options = reopen_arguments(self.store)
        kwargs = {k: v for k, v in self.storage_options.items() if k != "store_or_uri"}
        kwargs.update(options)
        kwargs["store_or_uri"] = uri
        return make_instance, (type(self), (), kwargs)

    def close(self) -> None:
        """Close the store this filesystem opened, and drop the filesystem from fsspec's cache.

        A store passed in is left open (it is the caller's). The filesystem
        cannot be used afterwards when it opened its store.
        """
        type(self)._cache.pop(self._fs_token, None)
        if self._closer is not None:
            self._closer()

    async def aclose(self) -> None:
        """:meth:`close` for asynchronous filesystems, awaited on the caller's loop."""
        type(self)._cache.pop(self._fs_token, None)
        if self._closer is not None and self._closer.detach() is not None:
            await self.store.aclose()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        if path is None:  # fsspec's URL parsing says the root so ("artifactio://")
            return cls.root_marker
        text = stringify_path(path)
        for prefix in ("artifactio://", "artifactio::"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        stripped = text.rstrip("/")
        return stripped or ("/" if text.startswith("/") else cls.root_marker)

    def _target(self, path: Any, op: str) -> Target:
        """Where ``path`` is in the store, checked against its rules (bounds, validity)."""
        text = self._strip_protocol(path)
        if self._chain is not None:
            spelling = Spelling.CHAINED
            text = self._chain.to_store(text)
        elif split_scheme(text)[0] or text.startswith("/"):
            spelling = Spelling.FULL
        else:
            spelling = Spelling.RELATIVE
        key = self.store._key(text or self.store.root, op)
        return Target(key, self.store._full(key), spelling)

    def _name(self, key: str, spelling: Spelling) -> str:
        """The path of ``key`` as handed back to a caller who spelled paths so."""
        if spelling is Spelling.RELATIVE:
            return key
        full = self.store._full(key)
        if spelling is Spelling.CHAINED:
            assert self._chain is not None
            return self._chain.from_store(full)
        return full

    # ---------------------------------------------------------------- metadata

    async def _info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        target = self._target(path, "info")
        st = await self.store.stat(target.full)
        return stat_info(self._name(target.key, target.spelling), st)

    async def _exists(self, path: Any, **kwargs: Any) -> bool:
        return await self.store.exists(self._target(path, "exists").full)

    async def _isdir(self, path: Any) -> bool:
        return await self.store.isdir(self._target(path, "isdir").full)

    async def _isfile(self, path: Any) -> bool:
        try:
            st = await self.store.stat(self._target(path, "isfile").full)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return st.is_file

    async def _ls(self, path: Any, detail: bool = True, **kwargs: Any) -> list[Any]:
        target = self._target(path, "ls")
        entries: list[DirEntry] = []
        try:
            async for page in self.store._scandir(target.key):
                entries.extend(page)
        except NotADirectoryError:  # fsspec lists a file as itself
            st = await self.store.stat(target.full)
            infos = [stat_info(self._name(target.key, target.spelling), st)]
        else:
            infos = [
                entry_info(self._name(join_key(target.key, e.name), target.spelling), e)
                for e in sorted(entries, key=lambda e: e.name)
            ]
        return infos if detail else [info["name"] for info in infos]

    async def _find(
        self, path: Any, maxdepth: int | None = None, withdirs: bool = False, **kwargs: Any
    ) -> Any:
        """Everything below ``path`` (files; directories too with ``withdirs``), sorted.

        Without ``maxdepth`` one listing of the whole tree (flat on object
        stores); with it, one listing per directory down to that depth.
        ``prefix`` (from ``glob``) keeps the entries whose first component below
        ``path`` starts with it.
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        detail = kwargs.pop("detail", False)
        prefix = kwargs.pop("prefix", "")
        target = self._target(path, "find")
        out: dict[str, dict[str, Any]] = {}
        try:
            st = await self.store.stat(target.full)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and not st.is_dir:
            name = self._name(target.key, target.spelling)
            out[name] = stat_info(name, st)
        elif st is not None:
            top = self._name(target.key, target.spelling)
            if withdirs and top:
                out[top] = stat_info(top, st)
            async for key, entry in tree(self.store, target.key, maxdepth, prefix):
                if withdirs or not entry.is_dir:
                    name = self._name(key, target.spelling)
                    out[name] = entry_info(name, entry)
        names = sorted(out)
        return {name: out[name] for name in names} if detail else names

    async def _du(
        self, path: Any, total: bool = True, maxdepth: int | None = None, **kwargs: Any
    ) -> Any:
        found = await self._find(path, maxdepth=maxdepth, detail=True, **kwargs)
        sizes = {name: info["size"] for name, info in found.items()}
        return sum(sizes.values()) if total else sizes

    def modified(self, path: Any) -> datetime.datetime:
        """When the file was last modified (UTC); directories of object stores say the epoch."""
        mtime = self.info(path).get("mtime") or 0.0
        return datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)

    # ----------------------------------------------------------------- content

    async def _cat_file(
        self, path: Any, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        target = self._target(path, "cat_file")
        if not start and end is None:
            return await self.store.read_bytes(target.full)
        async with self.store.open(target.full, "rb") as f:
            size = await f.seek(0, os.SEEK_END)
            first, stop, _ = slice(start, end).indices(size)
            if stop <= first:
                return b""
            await f.seek(first)
            data: bytes = await f.read(stop - first)
            return data

    async def _pipe_file(
        self, path: Any, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        target = self._target(path, "pipe_file")
        async with self.store.open(target.full, write_mode(mode)) as f:
            await f.write(bytes(value))

    async def _put_file(
        self,
        lpath: Any,
        rpath: Any,
        callback: Any = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        local = anyio.Path(os.fspath(lpath))
        if await local.is_dir():
            await self._makedirs(rpath, exist_ok=True)
            return
        target = self._target(rpath, "put_file")
        async with self.store.open(target.full, write_mode(mode)) as dst:
            await upload(local, dst, self._chunk, callback)

    async def _get_file(
        self, rpath: Any, lpath: Any, callback: Any = DEFAULT_CALLBACK, **kwargs: Any
    ) -> None:
        """Copy one file to local disk; the local file appears whole or not at all."""
        target = self._target(rpath, "get_file")
        local = anyio.Path(os.fspath(lpath))
        try:
            src = await self.store.open(target.full, "rb")
        except IsADirectoryError:
            await local.mkdir(parents=True, exist_ok=True)
            return
        async with src:
            await download(src, local, self._chunk, callback)

    @property
    def _chunk(self) -> int:
        """Bytes per read when copying between the store and local disk."""
        return max(self.store.part_size, 1 << 20)

    async def _cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        """Copy one file within the store; for a directory, make one at ``path2``."""
        src = self._target(path1, "cp_file")
        dst = self._target(path2, "cp_file")
        try:
            await self.store.copyfile(src.full, dst.full, overwrite=True)
        except IsADirectoryError:
            if not await self.store.isdir(src.full):
                raise
            async with self._making_dirs():
                await self.store.makedirs(dst.full)
                # fsspec copies a tree's files alongside: on an object store they
                # may have made the directory exist already, without the marker
                # that keeps it once they go. Mark it, as the copied directory is.
                with contextlib.suppress(FileExistsError):
                    await self.store._create_dir(dst.key, parents=False)

    # ------------------------------------------------------------- directories

    @contextlib.asynccontextmanager
    async def _making_dirs(self) -> AsyncIterator[None]:
        """Make directories one at a time per event loop.

        fsspec's put and copy make every directory of a tree at once. On an
        object store each directory writes the markers of its parents too, and
        concurrent writes of one object are what services handle worst (GCS
        allows one write of an object per second; SeaweedFS stalls them for a
        second), so the directories of a tree are made in turn; files still go
        in parallel.
        """
        loop = asyncio.get_running_loop()
        with self._dir_locks_guard:
            lock = self._dir_locks.get(loop)
            if lock is None:
                lock = self._dir_locks[loop] = asyncio.Lock()
        async with lock:
            yield

    async def _mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        target = self._target(path, "mkdir")
        async with self._making_dirs():
            if not create_parents:
                await self.store.mkdir(target.full)
                return
            if await self.store.isdir(target.full):
                raise os_error(FileExistsError, "mkdir", target.full)
            await self.store.makedirs(target.full)

    async def _makedirs(self, path: Any, exist_ok: bool = False) -> None:
        target = self._target(path, "makedirs")
        async with self._making_dirs():
            if not exist_ok and await self.store.isdir(target.full):
                raise os_error(FileExistsError, "makedirs", target.full)
            await self.store.makedirs(target.full)

    async def _rmdir(self, path: Any) -> None:
        target = self._target(path, "rmdir")
        if await self.store.listdir(target.full):
            raise directory_not_empty("rmdir", target.full)
        await self.store.rmtree(target.full)

    def rmdir(self, path: Any) -> None:
        """Remove an empty directory.

        Raises:
            OSError: It is not empty (``errno.ENOTEMPTY``).
            FileNotFoundError: It does not exist.
            NotADirectoryError: It is a file.
        """
        sync(self.loop, self._rmdir, path)

    async def _rm_file(self, path: Any, **kwargs: Any) -> None:
        await self.store.remove(self._target(path, "rm").full)

    async def _rm(
        self,
        path: Any,
        recursive: bool = False,
        batch_size: int | None = None,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Delete files, and with ``recursive`` directories with everything below them.

        Paths without wildcards are deleted as given (a directory in one call,
        ``rmtree``); globs and ``maxdepth`` are expanded first, and a directory
        holding more than ``maxdepth`` selected stays. Without ``recursive`` the
        files go and a directory among the paths raises ``IsADirectoryError``
        afterwards, as ``rm`` in a shell complains.
        """
        paths = path if isinstance(path, list) else [path]
        literal = maxdepth is None and not any(has_magic(self._strip_protocol(p)) for p in paths)
        if not literal:
            paths = await self._expand_path(path, recursive=recursive, maxdepth=maxdepth)
        dirs: list[str] = []

        async def remove(p: str) -> None:
            target = self._target(p, "rm")
            try:
                await self.store.remove(target.full)
            except IsADirectoryError:
                dirs.append(target.full)
            except FileNotFoundError:
                if literal:
                    raise

        await _run_coros_in_chunks(
            [remove(p) for p in paths], batch_size=batch_size or self.batch_size, nofiles=True
        )
        if dirs and not recursive:
            raise os_error(
                IsADirectoryError, "rm", min(dirs), "is a directory; pass recursive=True"
            )
        for full in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
            if maxdepth is not None and await self.store.listdir(full):
                continue  # holds what lies deeper than maxdepth
            with contextlib.suppress(FileNotFoundError):
                await self.store.rmtree(full)

    # ------------------------------------------------------------------- files

    def open(
        self,
        path: Any,
        mode: str = "rb",
        block_size: int | None = None,
        cache_options: dict[str, Any] | None = None,
        compression: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Open a file: binary modes ``rb wb ab xb``, text modes ``r w a x`` (UTF-8 by default).

        Writes are all or nothing: the content becomes the file's when ``close()``
        succeeds; an exception inside ``with`` publishes nothing.

        Raises:
            FileNotFoundError: Reading a missing file.
            IsADirectoryError: The path is a directory.
            FileExistsError: ``x`` modes on an existing file.
        """
        if "b" in mode:
            return super().open(
                path,
                mode,
                block_size=block_size,
                cache_options=cache_options,
                compression=compression,
                **kwargs,
            )
        text = {k: kwargs.pop(k, None) for k in ("encoding", "errors", "newline")}
        binary = self.open(
            path,
            mode.replace("t", "") + "b",
            block_size=block_size,
            cache_options=cache_options,
            compression=compression,
            **kwargs,
        )
        return text_file(binary, text["encoding"], text["errors"], text["newline"])

    def _open(
        self,
        path: Any,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ArtifactioFile:
        if self._loop is None:
            raise RuntimeError(
                "this ArtifactioFileSystem is asynchronous (asynchronous=True): "
                "use 'await fs.open_async(path, mode)'"
            )
        kwargs.pop("size", None)  # the store knows
        target = self._target(path, "open")
        afile, size = sync(self.loop, self._open_store_file, target, mode)
        return ArtifactioFile(
            self,
            self._name(target.key, target.spelling),
            mode,
            afile,
            size=size,
            block_size=block_size,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )

    async def open_async(
        self, path: Any, mode: str = "rb", **kwargs: Any
    ) -> ArtifactioStreamedFile:
        """Open a file on the running loop (``asynchronous=True`` filesystems): ``rb wb ab xb``.

        Use it with ``async with``; writes are published by ``await f.close()``.
        """
        if "b" not in mode or kwargs.get("compression"):
            raise ValueError("open_async opens binary modes only, without compression")
        kwargs.pop("size", None)
        target = self._target(path, "open")
        afile, size = await self._open_store_file(target, mode)
        return ArtifactioStreamedFile(
            self, self._name(target.key, target.spelling), mode, afile, size=size, **kwargs
        )

    async def _open_store_file(self, target: Target, mode: str) -> tuple[Any, int]:
        """The store's file at ``target``, and its size (readers) or position (writers)."""
        afile = await self.store.open(target.full, mode)
        if mode == "rb":
            size = await afile.seek(0, os.SEEK_END)
            await afile.seek(0)
        else:
            size = await afile.tell()
        return afile, size
