"""What S3 and GCS have in common: a flat keyspace dressed up as a filesystem.

:class:`ObjectStore` implements every primitive of
:class:`~artifactio.AsyncArtifactStore` once, over a small service-neutral
:class:`ObjectClient` that each service implements (S3 with aiobotocore, GCS
with gcloud-aio-storage). The rules, from SEMANTICS.md:

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
- Writes buffer up to ``part_size``: a small file is one upload, a larger one a
  multipart (S3) or resumable (GCS) upload whose parts go up while the caller
  keeps writing. Closing completes it; an exception or a cancellation aborts it,
  leaving neither an object nor a pending upload.
- Reads are ranged GETs pinned to the version first read (S3 ``If-Match``, GCS
  ``generation``), with the next block fetched while the caller consumes the
  current one.

Clients are made lazily, one per event loop, so a store works across several
``asyncio.run()`` calls and from several loops; :meth:`ObjectStore.aclose` closes
them all, and a client whose loop shuts down first is closed with it.

Closing never pulls a connection from under a request: every request a client
makes is counted while it runs (:meth:`ObjectClient.request`). ``aclose()``
first refuses new requests (``StoreClosedError``, also for files opened
earlier), then waits for those in flight, at most the client's
:attr:`~ObjectClient.close_grace` (the configured ``read_timeout``: a stalled
request fails by then on its own), and only then closes the connections.
Response bodies are read with their own stall timeout (:func:`read_body`),
since aiohttp forgets a body's read timeout when its connection is closed.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from .._config import redact_url
from .._exceptions import InvalidPathError, StoreClosedError, os_error
from .._files import RawReader, RawWriter
from .._paths import StoreRoot, base_name
from .._store import AsyncArtifactStore, DirEntry, EntryInfo

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
        Iterator,
    )

__all__ = [
    "ListPage",
    "ObjectClient",
    "ObjectMeta",
    "ObjectRead",
    "ObjectStore",
    "Upload",
    "object_changed",
    "read_body",
    "redact_url",
]

logger = logging.getLogger("artifactio.objectstore")

LIST_PAGE = 1000
"""Keys asked for per listing request (the S3 maximum)."""

_PROBE = 16
"""Keys asked for when one listing tells whether a path is a file, a directory or neither."""

_PARTS_PER_STEP = 1000
"""Every this many parts, the writer's part size grows by ``part_size`` (S3 allows 10,000 parts)."""

_MAX_PARALLEL_READS = 8
"""Ranged GETs in flight for one large ``read``."""

_ABORT_GRACE = 30.0
"""Seconds an aborting writer waits for its parts in flight before cancelling them."""

_BODY_CHUNK = 1 << 20
"""Bytes asked for per read of a response body (:func:`read_body`)."""

_ROOT_INFO = EntryInfo("dir")

_DROPPED: set[asyncio.Task[None]] = set()
"""Aborts of uploads whose writer was dropped without being closed (kept until done)."""


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class ObjectMeta:
    """One object, as a listing or a metadata request describes it.

    Attributes:
        key: The object's full key in its bucket.
        size: Size in bytes.
        mtime: Last modification, seconds since the epoch, where known.
        etag: The entity tag, without quotes, where the service has one.
        version: The token that pins this content for :meth:`ObjectClient.get_range`
            (S3: the ETag; GCS: the generation).
        checksum: ``"md5:..."``/``"crc32c:..."`` where the service reports one.
    """

    key: str
    size: int
    mtime: float | None = None
    etag: str | None = None
    version: str | None = None
    checksum: str | None = None


@dataclass(frozen=True)
class ListPage:
    """One page of a listing.

    Attributes:
        objects: The objects of this page (with a delimiter: those directly below
            the prefix, a marker named exactly like the prefix included).
        prefixes: With a delimiter, the common prefixes (``"a/b/"``) of this page.
        next_token: Pass it back for the next page; ``None`` on the last page.
    """

    objects: list[ObjectMeta]
    prefixes: list[str]
    next_token: str | None = None


@dataclass(frozen=True)
class ObjectRead:
    """The answer of a ranged read.

    Attributes:
        data: The bytes of the requested range (fewer only at end of object).
        size: The whole object's size.
        version: The token pinning this content (see :attr:`ObjectMeta.version`).
        etag: The entity tag, without quotes.
        mtime: Last modification, where known.
    """

    data: bytes
    size: int
    version: str | None = None
    etag: str | None = None
    mtime: float | None = None


class Upload(abc.ABC):
    """An upload in parts (S3 multipart upload, GCS resumable session).

    Parts are numbered from 1 and handed over in order; all but the final piece
    are at least the service's minimum size (S3: 5 MiB; GCS: a multiple of 256 KiB).

    Attributes:
        max_in_flight: How many :meth:`add_part` calls may run at once (S3 takes
            parts in any order; a GCS session needs them one after the other: 1).
    """

    max_in_flight: int = 1

    @abc.abstractmethod
    async def add_part(self, number: int, data: bytes) -> None:
        """Upload part ``number``."""

    @abc.abstractmethod
    async def complete(self, final: bytes) -> None:
        """Upload ``final`` (possibly empty) as the last piece and publish the object.

        Raises:
            FileExistsError: An exclusive upload found the object already there.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard the upload and every part sent; nothing stays behind. Idempotent."""


class ObjectClient(abc.ABC):
    """The few calls :class:`ObjectStore` needs from a service; one per event loop.

    Every method raises builtin ``OSError`` subclasses (mapped once, at the
    service's boundary, with the operation and the ``scheme://bucket/key`` path in
    the message): ``FileNotFoundError`` for a missing bucket (naming it) or
    object, ``PermissionError`` for refused credentials,
    ``artifactio.StoreConnectionError`` when the endpoint cannot be reached.

    Attributes:
        delete_batch: The most keys :meth:`delete_many` takes at once.
        prune_empty_dirs: Whether ``rmtree`` also deletes the markers of the
            directories its keys imply, deepest first, and every removal then
            deletes the entries of parents it emptied. Services that keep real
            directory entries (SeaweedFS's filer) need it to forget emptied
            directories at once; on S3 the extra keys cost nothing (they ride in
            the batch deletes), on GCS every missing key would cost a request.
    """

    delete_batch: int = 1000
    prune_empty_dirs: bool = False

    def __init__(self, *, store: str, close_grace: float) -> None:
        """Set up the request count.

        Args:
            store: The store's root, for the messages of refused requests.
            close_grace: Seconds :meth:`drain` waits for requests in flight.
        """
        self.store = store
        self.close_grace = close_grace
        self._requests = 0
        self._idle: asyncio.Event | None = None
        self._refused = False  # the store is closing: only clean-up requests may start
        self._shut = False  # the connections are (being) closed: nothing may start

    @contextlib.contextmanager
    def request(self, op: str, *, cleanup: bool = False) -> Iterator[None]:
        """Count one request (with its response body) while it runs.

        Every request a client makes runs inside this, so that closing waits for it.

        Args:
            op: The operation, for the message.
            cleanup: An abort of something begun earlier: still allowed while the
                store closes, until the connections are closed.

        Raises:
            artifactio.StoreClosedError: The store was closed.
        """
        if self._shut or (self._refused and not cleanup):
            raise StoreClosedError(f"{op}: store {self.store!r} is closed")
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1
            if not self._requests and self._idle is not None:
                self._idle.set()

    def refuse(self) -> None:
        """Refuse new requests from now on (clean-ups excepted); thread-safe."""
        self._refused = True

    async def drain(self) -> None:
        """Refuse new requests, then wait for those in flight, at most :attr:`close_grace`.

        Called on the client's own loop before :meth:`aclose`; afterwards every
        request is refused.
        """
        self._refused = True
        with anyio.move_on_after(self.close_grace):
            while self._requests:
                self._idle = asyncio.Event()
                await self._idle.wait()
        self._idle = None
        self._shut = True

    @abc.abstractmethod
    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        """Describe one object, or ``None`` when it does not exist."""

    @abc.abstractmethod
    async def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None,
        limit: int = LIST_PAGE,
        token: str | None = None,
    ) -> ListPage:
        """List one page of the keys starting with ``prefix``.

        Raises:
            FileNotFoundError: The bucket does not exist.
        """

    @abc.abstractmethod
    async def get_range(
        self, bucket: str, key: str, start: int, end: int, *, version: str | None = None
    ) -> ObjectRead:
        """Read bytes ``[start, end)`` (fewer at the end of the object).

        A zero-size object reads as ``b""`` for ``start == 0``.

        Args:
            bucket: The bucket.
            key: The object's key.
            start: First byte.
            end: One past the last byte wanted.
            version: Fail unless the object still is this version.

        Raises:
            FileNotFoundError: No such object.
            OSError: ``errno.ESTALE`` (see :func:`object_changed`) when ``version``
                no longer matches.
        """

    @abc.abstractmethod
    async def put(self, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        """Create or replace an object in one request.

        Raises:
            FileExistsError: ``exclusive`` and the object exists.
        """

    @abc.abstractmethod
    async def copy(self, bucket: str, src: str, dst: str, *, size: int | None = None) -> None:
        """Copy an object server-side (``size`` is a hint where the service needs one).

        Raises:
            FileNotFoundError: ``src`` does not exist.
        """

    @abc.abstractmethod
    async def delete(self, bucket: str, key: str) -> None:
        """Delete one object; a missing object is not an error."""

    @abc.abstractmethod
    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        """Delete up to :attr:`delete_batch` objects; missing ones are not an error."""

    @abc.abstractmethod
    async def upload(self, bucket: str, key: str, *, exclusive: bool) -> Upload:
        """Start an upload in parts (``exclusive``: completing fails if the object exists)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the client's connections."""


def object_changed(op: str, path: str) -> OSError:
    """The error a read raises when the object was replaced after it was opened."""
    return os_error(
        OSError, op, path, "the file was replaced while it was being read", code=errno.ESTALE
    )


async def read_body(read: Callable[[int], Awaitable[bytes]], idle: float) -> bytes:
    """Read a response body to its end, failing when no byte arrives for ``idle`` seconds.

    aiohttp's own read timeout is not enough: when the connection is closed under
    a body still arriving, aiohttp drops the body's timeout and never wakes the
    read. This bound is ours.

    Args:
        read: Reads up to ``n`` bytes, ``b""`` at the end (``StreamReader.read``).
        idle: The longest wait for the next bytes.

    Returns:
        The whole body.

    Raises:
        TimeoutError: The body stalled for ``idle`` seconds.
    """
    chunks: list[bytes] = []
    try:
        with anyio.fail_after(idle) as scope:
            while True:
                chunk = await read(_BODY_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                scope.deadline = anyio.current_time() + idle
    except TimeoutError:
        raise TimeoutError(f"no data from the server for {idle:g} s") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# ------------------------------------------------------- one client per loop

_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_INHERITED: list[object] = []
"""Clients a forked child inherited: their sockets belong to the parent, so they are
neither used nor closed here, only kept from the garbage collector (which would
complain that they were never closed)."""


class _Slot:
    """The client of one event loop."""

    __slots__ = ("building", "client", "guard")

    def __init__(self) -> None:
        self.client: ObjectClient | None = None
        self.building: asyncio.Task[ObjectClient] | None = None
        self.guard: AsyncGenerator[None, None] | None = None


class _ClientPool:
    """Makes one client per event loop on first use and closes them all.

    A client is tied to the loop it was made in (its connection pool is). Each
    client comes with a guard: a suspended async generator registered with its
    loop, which ``asyncio.run`` closes at shutdown, closing the client with it.
    """

    def __init__(self, factory: Callable[[], Awaitable[ObjectClient]], label: str) -> None:
        self._factory = factory
        self._label = label
        self._slots: dict[asyncio.AbstractEventLoop, _Slot] = {}
        self._lock = threading.Lock()
        self._generation = _fork_generation
        self._closed = False

    async def get(self) -> ObjectClient:
        """The running loop's client, made on first use."""
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is not None and slot.client is not None and self._generation == _fork_generation:
            return slot.client
        return await self._slow_get(loop)

    async def _slow_get(self, loop: asyncio.AbstractEventLoop) -> ObjectClient:
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self._label!r} is closed")
            if self._generation != _fork_generation:
                _INHERITED.append(self._slots)
                self._slots = {}
                self._generation = _fork_generation
            slot = self._slots.get(loop)
            if slot is None:
                slot = self._slots[loop] = _Slot()
        if slot.client is not None:
            return slot.client
        if slot.building is None:
            slot.building = loop.create_task(self._build(loop, slot))
        return await asyncio.shield(slot.building)

    async def _build(self, loop: asyncio.AbstractEventLoop, slot: _Slot) -> ObjectClient:
        try:
            client = await self._factory()
        except BaseException:
            slot.building = None
            raise
        slot.client = client
        slot.building = None
        slot.guard = self._guard(loop, slot)
        await slot.guard.asend(None)
        if self._closed:  # aclose() ran while the client was being made
            await slot.guard.aclose()
            raise StoreClosedError(f"store {self._label!r} is closed")
        return client

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, slot: _Slot
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._slots.get(loop) is slot:
                    del self._slots[loop]
            client, slot.client = slot.client, None
            if client is not None:
                try:
                    await client.drain()
                    await client.aclose()
                except Exception:  # pragma: no cover - closing is best effort
                    logger.debug("closing a client of %s failed", self._label, exc_info=True)

    async def aclose(self) -> None:
        """Close every client: this loop's at once, those of loops running elsewhere there.

        New requests are refused at once, on every loop; each client then waits
        (bounded) for its requests in flight before closing its connections.
        """
        with self._lock:
            self._closed = True
            slots = list(self._slots.items())
            self._slots.clear()
        for _, slot in slots:
            if slot.client is not None:
                slot.client.refuse()
        current = asyncio.get_running_loop()
        for loop, slot in slots:
            guard = slot.guard
            if guard is None:
                continue
            if loop is current:
                await guard.aclose()
            elif loop.is_running() and not loop.is_closed():
                grace = slot.client.close_grace if slot.client is not None else 0.0
                future = asyncio.run_coroutine_threadsafe(guard.aclose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), grace + 30)
            # A loop that is not running closes the client itself when it shuts down.


# --------------------------------------------------------------------- store


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
        self._pool = _ClientPool(self._new_client, self.root)

    @abc.abstractmethod
    async def _new_client(self) -> ObjectClient:
        """Make a client for the running event loop."""

    async def _client(self) -> ObjectClient:
        return await self._pool.get()

    async def _aclose(self) -> None:
        await self._pool.aclose()

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

    async def _isdir(self, key: str) -> bool:
        if not key:
            return True
        client = await self._client()
        page = await client.list_page(self.bucket, self._prefix(key), delimiter=None, limit=1)
        return bool(page.objects)

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
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

    async def _iter_tree(self, key: str) -> AsyncIterator[tuple[str, DirEntry]]:
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
        return _ObjectReader(self, obj, self._full(key), first)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        return _ObjectWriter(self, self._obj(key), exclusive)

    async def _remove_file(self, key: str) -> None:
        client = await self._client()
        await client.delete(self.bucket, self._obj(key))
        await self._forget_empty_parents(client, key)

    async def _create_dir(self, key: str, *, parents: bool) -> None:
        client = await self._client()
        if not parents:
            await client.put(self.bucket, self._prefix(key), b"", exclusive=False)
            return
        # Every directory makedirs makes outlives its children, as on a disk: so
        # the missing parents get a marker too (all at once; rewriting the marker
        # of a parent that already exists changes nothing).
        levels = [key]
        while "/" in levels[-1]:
            levels.append(levels[-1].rpartition("/")[0])

        async def mark(level: str) -> None:
            await client.put(self.bucket, self._prefix(level), b"", exclusive=False)

        await self._for_each(levels, mark)

    async def _remove_dir(self, key: str) -> None:
        client = await self._client()
        await client.delete(self.bucket, self._prefix(key))

    async def _copy_file(self, src: str, dst: str) -> None:
        client = await self._client()
        await client.copy(self.bucket, self._obj(src), self._obj(dst))

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

        async def one(meta: ObjectMeta) -> None:
            target = dst_prefix + meta.key[len(src_prefix) :]
            if meta.key.endswith("/"):  # a marker: write a new one (some servers cannot copy them)
                await client.put(self.bucket, target, b"", exclusive=False)
            else:
                await client.copy(self.bucket, meta.key, target, size=meta.size)

        try:
            await self._for_each(listed, one)
        except BaseException:
            # Nothing of src was deleted yet: take the partial copy back, so the
            # failed move changed nothing and can be retried.
            await self._discard_partial(dst)
            raise
        await self._delete_keys(client, src_prefix, (meta.key for meta in listed))
        await self._forget_empty_parents(client, src)

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


# ------------------------------------------------------------------- reading


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's outcome as seen (it was discarded on purpose)."""
    if not task.cancelled():
        task.exception()


def _discard(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    if task.done():
        _retrieve(task)
    else:
        task.cancel()
        task.add_done_callback(_retrieve)


class _ObjectReader(RawReader):
    """Ranged reads of one object version, with one block of read-ahead.

    Memory stays within two blocks: the block being consumed and the next one,
    fetched in the background once reading goes sequentially.
    """

    def __init__(self, store: ObjectStore, obj: str, path: str, first: ObjectRead) -> None:
        self._store = store
        self._obj = obj
        self._path = path
        self.size = first.size
        self.block_size = store.block_size
        self._version = first.version
        self._block_start = 0
        self._block = first.data
        self._ahead: asyncio.Task[bytes] | None = None
        self._ahead_start = -1
        self._last_end = 0

    async def _get(self, start: int, end: int) -> bytes:
        client = await self._store._client()
        try:
            got = await client.get_range(
                self._store.bucket, self._obj, start, end, version=self._version
            )
        except FileNotFoundError as exc:  # deleted since it was opened
            raise object_changed("read", self._path) from exc
        if len(got.data) != end - start:
            raise os_error(
                OSError,
                "read",
                self._path,
                f"short read: asked for bytes {start}-{end - 1}, got {len(got.data)} bytes",
                code=errno.EIO,
            )
        return got.data

    async def _fetch(self, start: int, end: int) -> bytes:
        """Fetch ``[start, end)``; large spans as several ranged GETs in parallel."""
        block = self.block_size
        if end - start <= 2 * block:
            return await self._get(start, end)
        spans = [(s, min(s + block, end)) for s in range(start, end, block)]
        pieces: list[bytes] = [b""] * len(spans)
        limit = anyio.Semaphore(max(1, min(self._store.concurrency, _MAX_PARALLEL_READS)))
        failures: list[Exception] = []

        async def one(i: int) -> None:
            async with limit:
                try:
                    pieces[i] = await self._get(*spans[i])
                except Exception as exc:  # raised as itself below, not in an ExceptionGroup
                    failures.append(exc)
                    tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            for i in range(len(spans)):
                tg.start_soon(one, i)
        if failures:
            raise failures[0]
        return b"".join(pieces)

    async def read_at(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.size)
        if offset >= end:
            return b""
        pieces: list[bytes] = []
        pos = offset
        while pos < end:
            rel = pos - self._block_start
            if 0 <= rel < len(self._block):
                piece = self._block[rel : rel + (end - pos)]
                pieces.append(piece)
                pos += len(piece)
                continue
            ahead = self._ahead
            if ahead is not None and self._ahead_start == pos:
                self._ahead = None
                self._block, self._block_start = await ahead, pos
                continue
            _discard(ahead)
            self._ahead = None
            pieces.append(await self._fetch(pos, end))
            pos = end
        sequential = offset == self._last_end
        self._last_end = end
        if sequential:
            self._read_ahead(end)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_ahead(self, end: int) -> None:
        """After a sequential read that stopped at ``end``, fetch the block that follows."""
        if end >= self.size or self._ahead is not None:
            return
        if self._block_start <= end < self._block_start + len(self._block):
            return  # still inside the current block
        stop = min(end + self.block_size, self.size)
        self._ahead_start = end
        self._ahead = asyncio.get_running_loop().create_task(self._get(end, stop))

    async def aclose(self) -> None:
        ahead, self._ahead = self._ahead, None
        self._block = b""
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead


# ------------------------------------------------------------------- writing


class _ObjectWriter(RawWriter):
    """Buffers a file; one upload when small, a multipart upload when large.

    Parts go up in the background (as many at once as the upload allows) while the
    caller keeps writing. Part sizes grow by ``part_size`` every 1,000 parts so
    a file never needs more than S3's 10,000 parts; every part size is a multiple
    of ``part_size``, as GCS's 256 KiB rule needs.
    """

    def __init__(self, store: ObjectStore, obj: str, exclusive: bool) -> None:
        self._store = store
        self._obj = obj
        self._exclusive = exclusive
        self._buf = bytearray()
        self._upload: Upload | None = None
        self._starting: asyncio.Task[Upload] | None = None
        self._parts = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __del__(self) -> None:
        # Dropped without commit() or abort(): the upload would stay pending on the
        # server (S3 keeps, and bills, its parts). Abort it on its loop, and say so.
        if self._upload is None and self._starting is None:
            return
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(
                    _abort_dropped, self._upload, self._starting, self._in_flight, self._obj
                )
        warnings.warn(
            f"the writer of {self._obj!r} was dropped without being closed; "
            "its upload is aborted and nothing was written",
            ResourceWarning,
            stacklevel=1,
        )

    def _target(self) -> int:
        return self._store.part_size * (1 + self._parts // _PARTS_PER_STEP)

    async def write(self, data: bytes) -> None:
        self._buf += data
        target = self._target()
        # Keep at least one byte back: the last piece goes with complete().
        while len(self._buf) > target:
            part = bytes(self._buf[:target])
            del self._buf[:target]
            await self._send(part)
            target = self._target()

    async def _send(self, part: bytes) -> None:
        if self._upload is None:
            if self._starting is None:
                client = await self._store._client()
                self._loop = asyncio.get_running_loop()
                self._starting = self._loop.create_task(
                    client.upload(self._store.bucket, self._obj, exclusive=self._exclusive)
                )
            # Shielded: once the server may have made the upload, abort() must learn
            # its id to discard it, whatever cancels this task meanwhile.
            self._upload = await asyncio.shield(self._starting)
        upload = self._upload
        while len(self._in_flight) >= max(1, upload.max_in_flight):
            await self._wait_one()
        self._parts += 1
        task = asyncio.get_running_loop().create_task(upload.add_part(self._parts, part))
        self._in_flight.add(task)

    async def _wait_one(self) -> None:
        done, _ = await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        self._in_flight -= done
        for task in done:
            task.result()  # raises the part's failure

    async def commit(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        if self._upload is None:
            client = await self._store._client()
            await client.put(self._store.bucket, self._obj, data, exclusive=self._exclusive)
            return
        while self._in_flight:
            await self._wait_one()
        await self._upload.complete(data)
        self._upload = self._starting = None

    async def abort(self) -> None:
        self._buf.clear()
        tasks, self._in_flight = self._in_flight, set()
        upload, self._upload = self._upload, None
        starting, self._starting = self._starting, None
        await _abort_upload(upload, starting, tasks, self._obj)


async def _abort_upload(
    upload: Upload | None,
    starting: asyncio.Task[Upload] | None,
    tasks: set[asyncio.Task[None]],
    obj: str,
) -> None:
    """Discard an upload: let its parts in flight land (bounded), then abort it."""
    if tasks:
        # Let parts already on the wire land first: one that a server finished
        # after the abort could bring the upload back. Cancel what lingers.
        _, late = await asyncio.wait(tasks, timeout=_ABORT_GRACE)
        for task in late:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    if upload is None and starting is not None:
        try:
            upload = await starting
        except BaseException:  # the upload was never made
            upload = None
    if upload is not None:
        try:
            await upload.abort()
        except Exception:
            logger.warning("could not abort the upload of %r", obj, exc_info=True)


def _abort_dropped(
    upload: Upload | None,
    starting: asyncio.Task[Upload] | None,
    tasks: set[asyncio.Task[None]],
    obj: str,
) -> None:
    """Start aborting the upload of a writer that was garbage-collected unclosed."""
    task = asyncio.get_running_loop().create_task(_abort_upload(upload, starting, tasks, obj))
    _DROPPED.add(task)
    task.add_done_callback(_DROPPED.discard)
