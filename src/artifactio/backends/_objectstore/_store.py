"""ObjectStore: every primitive of the store API, once, over an ObjectClient.

A flat keyspace dressed up as a filesystem. The rules, from docs/semantics.md:

- A directory is a key prefix. It exists when some object lies below it or a
  zero-byte marker object ``dir/`` exists. ``makedirs``/``mkdir`` write the
  marker; listings never show markers; removing the last file of a directory
  made by ``makedirs`` leaves the directory (its marker stays). A directory that
  only existed because of its files vanishes with them.
- A file and a directory of the same name may coexist (other tools make them):
  ``open``/``stat``/``remove`` see the file, ``isdir``/``listdir``/``walk``/
  ``rmtree`` see the directory. Ancestors are never checked.
- The store's root is always a directory.
- ``rmtree`` lists flat and deletes in batches, several batches in flight;
  ``rename`` is a server-side copy followed by a delete, for files and whole
  directories alike, so it is not atomic.

Reading and writing are in :mod:`._reader` and :mod:`._writer`; the clients,
one per event loop, come from :mod:`._pool`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import inspect
import sys
from typing import TYPE_CHECKING, Any, ClassVar, Concatenate, ParamSpec, TypeVar

from ..._entries import DirEntry, EntryInfo
from ..._exceptions import InvalidPathError, renamed
from ..._paths import StoreRoot, base_name
from ..._store import AsyncArtifactStore
from ._pool import ClientPool
from ._reader import ObjectReader
from ._writer import Declared, ObjectWriter, declared_md5

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Awaitable,
        Callable,
        Coroutine,
        Iterable,
        Iterator,
        Sequence,
    )
    from types import FrameType

    from ..._files import RawReader, RawWriter
    from ._client import ListPage, ObjectClient, ObjectMeta, Upload

__all__ = ["ObjectStore"]

_PROBE = 16
"""Keys asked for when one listing tells whether a path is a file, a directory or neither."""

_ROOT_INFO = EntryInfo("dir")

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="ObjectStore")

# ----------------------------------------------- errors name the user's operation

_OPERATIONS: dict[Any, str] = {
    func.__code__: name.lstrip("_")
    for name, func in vars(AsyncArtifactStore).items()
    if inspect.isfunction(func) and (not name.startswith("_") or name == "_open")
}
"""The code of each public method (and of ``_open``, ``open``'s body) -> the operation's name."""


def _user_operation(store: ObjectStore) -> str | None:
    """The public operation of ``store`` that the running code serves, if any.

    A coroutine or async generator runs with the frame that awaits it as its
    previous frame, so the stack leads from a request back to the method the user
    called (its innermost one: ``read_bytes`` works through ``open``).
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        op = _OPERATIONS.get(frame.f_code)
        if op is not None and frame.f_locals.get("self") is store:
            return op
        frame = frame.f_back
    return None


def _named(
    method: Callable[Concatenate[S, str, P], Awaitable[T]],
) -> Callable[Concatenate[S, str, P], Coroutine[Any, Any, T]]:
    """Make a primitive's errors name the user's operation and the full path of its key."""

    @functools.wraps(method)
    async def primitive(self: S, key: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._naming(key):
            return await method(self, key, *args, **kwargs)

    return primitive


def _named_pages(
    method: Callable[Concatenate[S, str, P], AsyncGenerator[T, None]],
) -> Callable[Concatenate[S, str, P], AsyncIterator[T]]:
    """:func:`_named` for a primitive that yields (a listing)."""

    @functools.wraps(method)
    async def primitive(
        self: S, key: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[T]:
        async with contextlib.aclosing(method(self, key, *args, **kwargs)) as pages:
            with self._naming(key):
                async for page in pages:
                    yield page

    return primitive


def _marked(marking: dict[str, asyncio.Task[None]], obj: str, task: asyncio.Task[None]) -> None:
    """A marker write ended: forget it, and mark its outcome seen (its callers may be gone)."""
    if marking.get(obj) is task:
        del marking[obj]
    if not task.cancelled():
        task.exception()


class ObjectStore(AsyncArtifactStore):
    """Base of the object-store backends: every primitive, once, over an :class:`ObjectClient`.

    A subclass provides :meth:`_new_client`; the root is ``scheme://bucket/prefix``.

    Attributes:
        bucket: The bucket.
        block_size: Bytes fetched per ranged GET while reading (default ``part_size``).
    """

    checks_ancestors: ClassVar[bool] = False

    def __init__(
        self,
        root: StoreRoot,
        *,
        concurrency: int,
        part_size: int,
        block_size: int | None = None,
    ) -> None:
        super().__init__(root, concurrency=concurrency, part_size=part_size)
        if not root.parts:
            raise InvalidPathError(f"{root.scheme}:// store root needs a bucket: {root.uri!r}")
        self.bucket = root.parts[0]
        self.block_size = int(block_size or part_size)
        self._base = "/".join(root.parts[1:])
        self._pool = ClientPool(self._new_client, self.root)

    @abc.abstractmethod
    async def _new_client(self) -> ObjectClient:
        """Make a client for the running event loop."""

    async def _client(self) -> ObjectClient:
        return await self._pool.get()

    async def _start_upload(
        self, client: ObjectClient, obj: str, *, exclusive: bool, declared: Declared
    ) -> Upload:
        """Start the upload in parts of object ``obj``, told what ``declared`` says of it.

        The default ignores ``declared`` (a store whose :attr:`_kept_checksum` is
        ``"md5"`` overrides this to keep the MD5 with the object, and has the
        upload check the declared parts' CRC-32s: see
        ``StorePrimitives._open_writer_with_checksum``).
        """
        return await client.upload(self.bucket, obj, exclusive=exclusive)

    async def _aclose(self) -> None:
        await self._pool.aclose()

    @contextlib.contextmanager
    def _naming(self, key: str) -> Iterator[None]:
        """Raise the errors of the requests inside as errors of the user's operation on ``key``.

        A request names its own step and object (``list`` of ``'dir/'``); what leaves
        a primitive names the public operation running (``open``, ``exists``...) and
        the full path of ``key``, whatever requests it took, or of the entry below it
        that failed (one file of an ``rmtree``). The cause stays the same.
        """
        try:
            yield
        except OSError as exc:
            op = _user_operation(self)
            better = exc if op is None else renamed(exc, op, self._failed_path(exc, key))
            if better is exc:
                raise
            raise better.with_traceback(exc.__traceback__) from exc.__cause__

    def _failed_path(self, exc: OSError, key: str) -> str:
        """The path an error from working on ``key`` names: ``key``, or the entry below it."""
        full = self._full(key)
        named = exc.filename.rstrip("/") if isinstance(exc.filename, str) else ""
        return named if named.startswith(full.rstrip("/") + "/") else full

    # ------------------------------------------------------------- key helpers

    def _obj(self, key: str) -> str:
        """The object key of store key ``key``."""
        if not self._base:
            return key
        return f"{self._base}/{key}" if key else self._base

    def _prefix(self, key: str) -> str:
        """The key prefix of directory ``key`` (``""`` for a bucket's top)."""
        obj = self._obj(key)
        return obj + "/" if obj else ""

    def _store_key(self, obj: str) -> str:
        """The store key of object key ``obj`` (which lies below the root)."""
        return obj[len(self._base) + 1 :] if self._base else obj

    async def _pages(
        self, client: ObjectClient, prefix: str, delimiter: str | None
    ) -> AsyncIterator[ListPage]:
        token: str | None = None
        while True:
            page = await client.list_page(self.bucket, prefix, delimiter=delimiter, token=token)
            yield page
            token = page.next_token
            if token is None:
                return

    # -------------------------------------------------------------- primitives

    @_named
    async def _info(self, key: str) -> EntryInfo | None:
        if not key:
            return _ROOT_INFO
        client = await self._client()
        obj = self._obj(key)
        # One listing answers both questions: the file sorts first among the keys
        # starting with its name, and a directory shows as keys below "name/".
        # (Flat, not by delimiter: a server with real directory entries, such as
        # SeaweedFS, lists emptied directories as common prefixes for a while.)
        page = await client.list_page(self.bucket, obj, delimiter=None, limit=_PROBE)
        below = obj + "/"
        is_dir = False
        for meta in page.objects:
            if meta.key == obj:
                return EntryInfo("file", meta.size, meta.mtime, meta.etag, meta.checksum)
            is_dir = is_dir or meta.key.startswith(below)
        if is_dir or (page.next_token is not None and await self._isdir(key)):
            return EntryInfo("dir")
        return None

    @_named
    async def _checksum(self, key: str) -> str | None:
        # A listing shows no object metadata, where S3 keeps the checksum of what we wrote.
        client = await self._client()
        meta = await client.head(self.bucket, self._obj(key))
        if meta is None:
            raise self._err(FileNotFoundError, "stat", key)
        return meta.checksum

    @_named
    async def _isdir(self, key: str) -> bool:
        if not key:
            return True
        client = await self._client()
        page = await client.list_page(self.bucket, self._prefix(key), delimiter=None, limit=1)
        return bool(page.objects)

    @_named_pages
    async def _scandir(self, key: str) -> AsyncGenerator[list[DirEntry], None]:
        client = await self._client()
        prefix = self._prefix(key)
        cut = len(prefix)
        found = not key
        # Files held back because a directory of the same name may still be listed
        # (it would hide them: listings see the directory).
        held: dict[str, DirEntry] = {}
        # Directories already yielded: a service may repeat a common prefix on
        # later pages (fake-gcs-server does), and each name counts once.
        dirs: set[str] = set()
        async for page in self._pages(client, prefix, "/"):
            out: list[DirEntry] = []
            for common in page.prefixes:
                found = True
                name = common[cut:-1]
                if name and name not in dirs:
                    dirs.add(name)
                    held.pop(name, None)
                    out.append(DirEntry(name, True))
            for meta in page.objects:
                found = True
                name = meta.key[cut:]
                if name and "/" not in name and name not in dirs:
                    held[name] = DirEntry(name, False, meta.size, meta.mtime)
            if page.next_token is None:
                out.extend(held.values())
                held.clear()
            elif held:
                # Keys come in byte order (S3) or per directory (SeaweedFS); either
                # way "name/" cannot follow a page that went past it.
                last = max([m.key for m in page.objects] + page.prefixes)
                for name in [n for n in held if prefix + n + "/" <= last]:
                    out.append(held.pop(name))
            if out:
                yield out
        if not found:
            obj = self._obj(key)
            if await client.head(self.bucket, obj) is not None:
                raise self._err(NotADirectoryError, "listdir", key)
            raise self._err(FileNotFoundError, "listdir", key)

    @_named_pages
    async def _iter_tree(self, key: str) -> AsyncGenerator[tuple[str, DirEntry], None]:
        client = await self._client()
        prefix = self._prefix(key)
        seen_dirs: set[str] = {prefix}
        # Files that a directory of the same name may still follow: that directory is
        # then not reported again (a path appears once; its file is what counts).
        pending: set[str] = set()
        async for page in self._pages(client, prefix, None):
            for meta in page.objects:
                obj = meta.key
                if pending:
                    for done in [f for f in pending if obj >= f + "/"]:
                        if not obj.startswith(done + "/"):
                            pending.discard(done)
                start = len(prefix)
                while True:
                    slash = obj.find("/", start)
                    if slash < 0:
                        break
                    directory = obj[: slash + 1]
                    start = slash + 1
                    if directory in seen_dirs:
                        continue
                    seen_dirs.add(directory)
                    if directory[:-1] in pending:
                        continue
                    dkey = self._store_key(directory[:-1])
                    yield dkey, DirEntry(base_name(dkey), True, 0, meta.mtime)
                if not obj.endswith("/"):
                    pending.add(obj)
                    fkey = self._store_key(obj)
                    yield fkey, DirEntry(base_name(fkey), False, meta.size, meta.mtime)

    @_named
    async def _open_reader(self, key: str) -> RawReader:
        if not key:
            raise self._err(IsADirectoryError, "open", key)
        client = await self._client()
        obj = self._obj(key)
        try:
            first = await client.get_range(self.bucket, obj, 0, self.block_size)
        except FileNotFoundError as exc:
            if await self._isdir(key):
                raise self._err(IsADirectoryError, "open", key) from exc
            raise self._err(FileNotFoundError, "open", key) from exc
        return ObjectReader(self, obj, self._full(key), first)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        return await self._object_writer(key, exclusive, Declared())

    async def _open_writer_with_checksum(
        self,
        key: str,
        *,
        exclusive: bool,
        checksum: str,
        part_crcs: Sequence[int] | None = None,
        pinned: bool = False,
    ) -> RawWriter:
        md5 = declared_md5(checksum) if self._kept_checksum == "md5" else None
        declared = Declared(md5, tuple(part_crcs) if part_crcs is not None else None, pinned)
        return await self._object_writer(key, exclusive, declared)

    async def _object_writer(self, key: str, exclusive: bool, declared: Declared) -> ObjectWriter:
        writer = ObjectWriter(self, self._obj(key), exclusive, declared)
        writer.parallel_parts = (await self._client()).parts_in_any_order
        return writer

    @_named
    async def _pinned_checksum(self, key: str, reader: RawReader) -> str | None:
        # Reads are pinned to the version the reader's first GET saw: the checksum
        # in that version's metadata is of the bytes it reads (one HEAD to learn it).
        client = await self._client()
        meta = await client.head(self.bucket, self._obj(key))
        if meta is None:
            raise self._err(FileNotFoundError, "stat", key)
        if not isinstance(reader, ObjectReader) or meta.version is None:
            return None
        return meta.checksum if meta.version == reader._version else None

    @_named
    async def _remove_file(self, key: str) -> None:
        client = await self._client()
        await client.delete(self.bucket, self._obj(key))
        await self._forget_empty_parents(client, key)

    @_named
    async def _create_dir(self, key: str, *, parents: bool) -> None:
        client = await self._client()
        if not parents:
            await client.put(self.bucket, self._prefix(key), b"", exclusive=False)
            return
        # Every directory makedirs makes outlives its children, as on a disk: so
        # the missing parents get a marker too (rewriting the marker of a parent
        # that already exists changes nothing). The deepest marker goes first and
        # its ancestors' after it, together: services with real directory entries
        # (SeaweedFS) create the parents of a key as plain directories, and one
        # created that way at the same moment as its own marker can win and drop
        # the marker. Concurrent makedirs share the write of a marker in flight:
        # servers slow down (SeaweedFS) or refuse (GCS: one write per object per
        # second) writes to one key at once.
        levels = [key]
        while "/" in levels[-1]:
            levels.append(levels[-1].rpartition("/")[0])

        async def mark(level: str) -> None:
            obj = self._prefix(level)
            task = client.marking.get(obj)
            if task is None:
                task = asyncio.ensure_future(client.put(self.bucket, obj, b"", exclusive=False))
                client.marking[obj] = task
                task.add_done_callback(functools.partial(_marked, client.marking, obj))
            await asyncio.shield(task)  # one caller cancelled: the others still get it

        await mark(levels[0])
        await self._for_each(levels[1:], mark)

    @_named
    async def _remove_dir(self, key: str) -> None:
        client = await self._client()
        await client.delete(self.bucket, self._prefix(key))

    @_named
    async def _copy_file(self, src: str, dst: str) -> None:
        client = await self._client()
        await client.copy(self.bucket, self._obj(src), self._obj(dst))

    @_named
    async def _move(self, src: str, dst: str, *, is_dir: bool) -> None:
        client = await self._client()
        if not is_dir:
            await client.copy(self.bucket, self._obj(src), self._obj(dst))
            await client.delete(self.bucket, self._obj(src))
            await self._forget_empty_parents(client, src)
            return
        src_prefix, dst_prefix = self._prefix(src), self._prefix(dst)
        listed: list[ObjectMeta] = []
        async for page in self._pages(client, src_prefix, None):
            listed.extend(page.objects)

        failures: list[Exception] = []

        async def one(meta: ObjectMeta) -> None:
            # After a failure no copy starts, and those under way end (not cancelled: a
            # request cut midway may still be carried out by the server, after the
            # clean-up below had looked), so the clean-up sees every copy made.
            if failures:
                return
            target = dst_prefix + meta.key[len(src_prefix) :]
            try:
                if meta.key.endswith("/"):  # a marker: write a new one (some servers cannot copy)
                    await client.put(self.bucket, target, b"", exclusive=False)
                else:
                    await client.copy(self.bucket, meta.key, target, size=meta.size)
            except Exception as exc:
                failures.append(exc)

        # Files first, then the markers level by level, deepest first: a marker
        # written while a key below it creates its directory can be lost (see
        # _create_dir).
        markers: dict[int, list[ObjectMeta]] = {}
        for meta in listed:
            if meta.key.endswith("/"):
                markers.setdefault(meta.key.count("/"), []).append(meta)
        try:
            await self._for_each([m for m in listed if not m.key.endswith("/")], one)
            for depth in sorted(markers, reverse=True):
                await self._for_each(markers[depth], one)
            if failures:
                raise failures[0]
        except BaseException:
            # Nothing of src was deleted yet: take the partial copy back, so the
            # failed move changed nothing and can be retried.
            await self._discard_partial(dst)
            raise
        await self._delete_keys(client, src_prefix, (meta.key for meta in listed))
        await self._forget_empty_parents(client, src)

    @_named
    async def _rmtree(self, key: str) -> None:
        client = await self._client()
        prefix = self._prefix(key)
        batch = max(1, client.delete_batch)
        dirs: set[str] = {prefix}

        async def batches() -> AsyncIterator[list[str]]:
            # Deleting starts with the first page; later pages are listed meanwhile.
            async for page in self._pages(client, prefix, None):
                files = self._sort_keys(client, prefix, (m.key for m in page.objects), dirs)
                for i in range(0, len(files), batch):
                    yield files[i : i + batch]

        async def delete(keys: list[str]) -> None:
            await client.delete_many(self.bucket, keys)

        await self._for_each(batches(), delete, limit=min(self.concurrency, 16))
        await self._delete_dirs(client, dirs)
        await self._forget_empty_parents(client, key)

    # ------------------------------------------------------------ bulk helpers

    @staticmethod
    def _sort_keys(
        client: ObjectClient, prefix: str, keys: Iterable[str], dirs: set[str]
    ) -> list[str]:
        """Split keys into files (returned) and directory markers (added to ``dirs``)."""
        files: list[str] = []
        for obj in keys:
            if obj.endswith("/"):
                dirs.add(obj)
                continue
            files.append(obj)
            if client.prune_empty_dirs:
                slash = obj.find("/", len(prefix))
                while slash >= 0:
                    dirs.add(obj[: slash + 1])
                    slash = obj.find("/", slash + 1)
        return files

    async def _forget_empty_parents(self, client: ObjectClient, key: str) -> None:
        """After ``key`` was removed, drop the directory entries of emptied parents.

        Only for services with real directory entries (:attr:`ObjectClient.prune_empty_dirs`,
        e.g. SeaweedFS): they keep listing a parent whose last object went away as
        a common prefix, although no key lies below it any more. A parent with a
        marker or another object below it is kept, and so are its ancestors (such
        services ignore a delete of a non-empty directory, so a racing writer
        loses nothing). The store's root is never touched.
        """
        if not client.prune_empty_dirs:
            return
        while "/" in key:
            key = key.rpartition("/")[0]
            prefix = self._prefix(key)
            page = await client.list_page(self.bucket, prefix, delimiter=None, limit=1)
            if page.objects:
                return
            await client.delete(self.bucket, prefix)

    async def _delete_dirs(self, client: ObjectClient, dirs: set[str]) -> None:
        """Delete directory markers, deepest first, one batch after the other."""
        ordered = sorted(dirs, key=lambda d: (-d.count("/"), d))
        batch = max(1, client.delete_batch)
        for i in range(0, len(ordered), batch):
            await client.delete_many(self.bucket, ordered[i : i + batch])

    async def _delete_keys(self, client: ObjectClient, prefix: str, keys: Iterable[str]) -> None:
        """Delete known keys below ``prefix``: files in concurrent batches, then directories."""
        dirs: set[str] = {prefix}
        files = self._sort_keys(client, prefix, keys, dirs)
        batch = max(1, client.delete_batch)
        chunks = [files[i : i + batch] for i in range(0, len(files), batch)]

        async def delete(keys: list[str]) -> None:
            await client.delete_many(self.bucket, keys)

        await self._for_each(chunks, delete)
        await self._delete_dirs(client, dirs)
