"""What a backend implements: a few primitives, and the defaults built from them.

:class:`StorePrimitives` is the base of :class:`~artifactio.AsyncArtifactStore`.
A backend implements the abstract primitives (look up one entry, list one
directory, open a reader or a writer, delete a file, create or delete a
directory) and may override the optional ones (``_copy_file``, ``_move``,
``_rmtree``, ``_iter_tree``, ``_copy_from``, ``_copy_batch_from``,
``_write_whole``, ``_write_batch``, ``_read_batch``) where its service does
them better. The defaults here build those from the required primitives (or
decline: ``_copy_from`` and the batches), so a new
backend is complete as soon as the seven required methods work. A store that
keeps a whole-file checksum handed to its writer (S3: the MD5, in the object's
metadata) names its algorithm in ``_kept_checksum`` and overrides
``_open_writer_with_checksum``; a store whose reads are pinned to one version
of a file overrides ``_pinned_checksum``.

The public API (argument checks in ZenML's order, ``glob``, ``walk``...) is in
``_store.py``; nothing here is called by users directly.
"""

from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._concurrency import for_each, shielded
from ._exceptions import StoreClosedError, os_error
from ._files import AsyncWriteFile
from ._paths import join_key, parent_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

    from ._entries import DirEntry, EntryInfo
    from ._files import RawReader, RawWriter
    from ._paths import PathType, StoreRoot

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_PART_SIZE", "StorePrimitives"]

T = TypeVar("T")

DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_CONCURRENCY = 32


class StorePrimitives(abc.ABC):
    """The backend side of a store: its primitives and the shared helpers above them.

    Attributes:
        concurrency: How many requests a bulk operation keeps in flight.
        part_size: Write buffer and multipart part size, in bytes.
    """

    scheme: ClassVar[str] = ""
    """The URI scheme this backend registers (``"s3"``, ``"file"``...)."""

    inline_capable: ClassVar[bool] = False
    """Whether every blocking call goes through ``run_blocking`` so the sync facade
    may drive this store inline in the caller's thread (local-only backends)."""

    checks_ancestors: ClassVar[bool] = True
    """Whether writing below a file raises ``NotADirectoryError`` (object stores: no)."""

    _kept_checksum: ClassVar[str | None] = None
    """The algorithm (``"md5"``) of the whole-file checksum that a writer of
    :meth:`_open_writer_with_checksum` keeps with the file it writes, and that
    :meth:`_checksum` then reports; ``None``: such a checksum is ignored (the
    default; GCS's own CRC-32C needs none)."""

    def __init__(
        self,
        root: StoreRoot,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        self._root = root
        self.concurrency = int(concurrency)
        self.part_size = int(part_size)
        self._closed = False

    # ------------------------------------------------------------------ helpers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._root.uri!r})"

    def _key(self, path: PathType, op: str) -> str:
        if self._closed:
            raise StoreClosedError(f"{op}: store {self._root.uri!r} is closed")
        return self._root.key(path, op)

    def _full(self, key: str) -> str:
        return self._root.full(key)

    def _err(self, cls: type[OSError], op: str, key: str, detail: str = "") -> OSError:
        return os_error(cls, op, self._full(key), detail)

    async def _require(self, key: str, op: str) -> EntryInfo:
        info = await self._info(key)
        if info is None:
            raise self._err(FileNotFoundError, op, key)
        return info

    async def _check_ancestors(self, key: str, op: str) -> None:
        """Raise ``NotADirectoryError`` when a file sits where a parent directory should be."""
        parent = parent_key(key)
        while parent:
            if await self._isdir(parent):
                return
            info = await self._info(parent)
            if info is not None:
                if info.kind == "dir":  # made meanwhile by a concurrent caller
                    return
                raise self._err(NotADirectoryError, op, key, f"{self._full(parent)!r} is a file")
            parent = parent_key(parent)

    async def _append_existing(self, key: str, writer: AsyncWriteFile) -> None:
        """Feed the current content of ``key`` into ``writer`` (``a`` modes)."""
        try:
            reader = await self._open_reader(key)
        except FileNotFoundError:
            return
        try:
            offset = 0
            while offset < reader.size:
                chunk = await reader.read_at(offset, min(self.part_size, reader.size - offset))
                if not chunk:
                    break
                await writer.write(chunk)
                offset += len(chunk)
        finally:
            await reader.aclose()

    # --------------------------------------------------------- primitives (must)

    @abc.abstractmethod
    async def _info(self, key: str) -> EntryInfo | None:
        """Describe ``key`` or return ``None`` when it does not exist.

        Where a file and a directory share a name, describe the file. The root
        (``""``) is always a directory. Failures other than "missing" raise.
        """

    async def _checksum(self, key: str) -> str | None:
        """The checksum the store keeps for file ``key`` (``"md5:..."``), if any.

        The default is what :meth:`_info` reports; a store that keeps checksums
        where its cheapest lookup does not show them (S3 object metadata) fetches
        them. ``sync(compare="checksum")`` asks; nothing else does.

        Raises:
            FileNotFoundError: No such file.
        """
        return (await self._require(key, "stat")).checksum

    async def _isdir(self, key: str) -> bool:
        """Whether ``key`` is a directory (where a file shares the name too: yes)."""
        info = await self._info(key)
        return info is not None and info.kind == "dir"

    @abc.abstractmethod
    def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        """Yield the entries directly below directory ``key``, a page at a time.

        Raises:
            FileNotFoundError: ``key`` does not exist.
            NotADirectoryError: ``key`` is a file.
        """

    @abc.abstractmethod
    async def _open_reader(self, key: str) -> RawReader:
        """Open file ``key`` for reading.

        Raises:
            FileNotFoundError: Missing.
            IsADirectoryError: A directory.
        """

    @abc.abstractmethod
    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        """Open a sink that replaces file ``key`` on commit.

        Parent directories are created as needed (local: ``NotADirectoryError``
        when an ancestor is a file). With ``exclusive``, commit raises
        ``FileExistsError`` if the file exists by then, atomically where possible.
        """

    async def _open_writer_with_checksum(
        self,
        key: str,
        *,
        exclusive: bool,
        checksum: str,
        part_crcs: Sequence[int] | None = None,
        pinned: bool = False,
    ) -> RawWriter:
        """:meth:`_open_writer`, told the whole file's checksum (``"md5:<hex>"``) up front.

        Where :attr:`_kept_checksum` names its algorithm, the store keeps the
        checksum with the file, so that a later ``sync(compare="checksum")``
        compares without reading the file (S3 takes an object's metadata only
        when an upload starts, before a multipart upload has seen its bytes).
        A checksum of another algorithm is ignored, and so is every checksum
        where :attr:`_kept_checksum` is ``None`` (the default: the plain writer).

        The kept checksum is never wrong; how the writer makes sure depends on
        what comes with it:

        - ``part_crcs``, the CRC-32 of each part the file will be written in
          (``write_part``'s index ``i`` is part ``i``; the last part may be the
          piece left for the commit): each part must have its CRC-32 (else that
          part's write raises :class:`~artifactio.IntegrityError`), and the
          commit publishes the file only when every declared part, and no other,
          was written. Parts may come in any order.
        - ``pinned``: the caller vouches that the bytes come from one version
          that the checksum is of and that cannot change while it is read (see
          :meth:`_pinned_checksum`); nothing is checked.
        - neither: the writer hashes what it is given and its commit raises
          ``IntegrityError`` when the two differ. It hashes parts given with
          ``write_part`` in the order of their numbers: a part's call returns
          only once every part before it was handed over (several at once, by
          other tasks); one task giving the parts last first would wait forever.

        Whatever fails, the caller aborts the writer: nothing is published.

        Raises:
            ValueError: A checksum of the kept algorithm whose value is malformed.
        """
        return await self._open_writer(key, exclusive=exclusive)

    async def _pinned_checksum(self, key: str, reader: RawReader) -> str | None:
        """The checksum the store keeps of the very bytes ``reader`` (of ``key``) reads.

        Only a store whose reads are pinned to one version of the file (S3's
        ``If-Match``, GCS's generation: a file replaced meanwhile fails the read)
        can vouch for that; the checksum must then be that version's. The
        default says nothing (``None``): a file may change under its reader.

        Raises:
            FileNotFoundError: No such file.
        """
        return None

    @abc.abstractmethod
    async def _remove_file(self, key: str) -> None:
        """Delete file ``key`` (already known to be a file)."""

    @abc.abstractmethod
    async def _create_dir(self, key: str, *, parents: bool) -> None:
        """Create directory ``key`` (checks were done; missing parents too if ``parents``)."""

    @abc.abstractmethod
    async def _remove_dir(self, key: str) -> None:
        """Delete directory ``key``, which holds no files any more (rmtree fallback)."""

    # ------------------------------------------------------ primitives (optional)

    async def _iter_tree(self, key: str) -> AsyncIterator[tuple[str, DirEntry]]:
        """Yield ``(key, entry)`` for everything below directory ``key``, in any order.

        The default walks directory by directory; object stores list flat.
        """
        stack = [key]
        while stack:
            current = stack.pop()
            async for page in self._scandir(current):
                for entry in page:
                    child = join_key(current, entry.name)
                    yield child, entry
                    if entry.is_dir:
                        stack.append(child)

    async def _copy_from(
        self, source: StorePrimitives, src: str, dst: str, *, exclusive: bool
    ) -> int | None:
        """Copy file ``src`` of another store onto ``dst`` here, without streaming it, if possible.

        Bulk transfers ask before streaming a file between two stores. A backend
        that can have the bytes copied outside this process (two local disks: the
        kernel copies) does it, all or nothing, and returns the size copied;
        ``exclusive`` makes it raise ``FileExistsError`` when ``dst`` exists by
        then. The default returns ``None``: the caller streams the file. Whether
        it copies must depend on the two stores only, not on the file: a
        transfer that got ``None`` once streams its other files without asking.

        Raises:
            FileNotFoundError: ``src`` is missing.
        """
        return None

    def _copy_batch_limit(self, source: StorePrimitives) -> int:
        """The largest file :meth:`_copy_batch_from` takes from ``source``; 0: none (default).

        Bulk transfers group the small files they would hand to :meth:`_copy_from`
        one by one into batches for a backend that answers more than 0 here.
        """
        return 0

    async def _copy_batch_from(
        self, source: StorePrimitives, pairs: Sequence[tuple[str, str]], *, exclusive: bool
    ) -> list[int | Exception]:
        """Copy files of ``source`` (each ``(src, dst)`` of ``pairs``) here, in one go.

        Only called where :meth:`_copy_batch_limit` allowed it. Each file is
        copied as :meth:`_copy_from` copies one, all or nothing, one after the
        other; a file that fails does not stop the others.

        Returns:
            For each pair, in order, the size copied or the exception that file
            failed with (``FileNotFoundError`` for a missing ``src``,
            ``FileExistsError`` when ``exclusive`` and ``dst`` exists...).
        """
        raise NotImplementedError(f"{type(self).__name__} copies no batches")

    async def _write_whole(self, key: str, data: bytes, *, exclusive: bool) -> bool:
        """Write ``data`` as file ``key``, all or nothing, as a writer of :meth:`_open_writer` does.

        Bulk transfers write each file they hold whole (up to ``part_size``) with
        it. The default opens a writer, writes, commits (and aborts on any
        failure); a backend may do all of it in one step (local: one
        worker-thread call). Errors are the writer's, raised from this call.

        Returns:
            Whether what was stored was checked against ``data`` (the writer's
            :attr:`~artifactio.RawWriter.verified`).
        """
        writer = await self._open_writer(key, exclusive=exclusive)
        try:
            if data:
                await writer.write(data)
            await writer.commit()
        except BaseException:
            with shielded():
                await writer.abort()
            raise
        return writer.verified

    def _write_batch_limit(self) -> int:
        """How many files :meth:`_write_batch` takes at a time; 0: none (default).

        Bulk transfers onto a store that answers more than 0 write the small
        files that are ready at about the same time in batches.
        """
        return 0

    async def _write_batch(
        self, files: Sequence[tuple[str, bytes]], *, exclusive: bool
    ) -> list[bool | Exception]:
        """Write each ``(key, data)`` of ``files`` as :meth:`_write_whole` does, in one go.

        Only called where :meth:`_write_batch_limit` allows. A file that fails
        does not stop the others.

        Returns:
            For each file, in order: what :meth:`_write_whole` returns, or the
            exception it would have raised.
        """
        raise NotImplementedError(f"{type(self).__name__} writes no batches")

    def _read_batch_limit(self) -> int:
        """The largest file :meth:`_read_batch` reads; 0: none (default).

        Bulk transfers from a store that answers more than 0 read the small files
        they send elsewhere many at a time (see ``transfer._batches``).
        """
        return 0

    async def _read_batch(self, keys: Sequence[str]) -> list[bytes | Exception | None]:
        """Read files ``keys`` whole, in one go (only where :meth:`_read_batch_limit` allows).

        A file that fails does not stop the others.

        Returns:
            For each key, in order: its bytes; ``None`` when it has grown past
            :meth:`_read_batch_limit` (open a reader instead); or the exception
            :meth:`_open_reader` would have raised for it.
        """
        raise NotImplementedError(f"{type(self).__name__} reads no batches")

    async def _copy_file(self, src: str, dst: str) -> None:
        """Copy file ``src`` onto ``dst`` (checks were done). Default: stream it."""
        reader = await self._open_reader(src)
        try:
            writer = await self._open_writer(dst, exclusive=False)
            out = AsyncWriteFile(self._full(dst), "wb", writer, self.part_size)
            async with out:
                offset = 0
                block = max(reader.block_size, self.part_size)
                while offset < reader.size:
                    chunk = await reader.read_at(offset, min(block, reader.size - offset))
                    if not chunk:
                        break
                    await out.write(chunk)
                    offset += len(chunk)
        finally:
            await reader.aclose()

    async def _move(self, src: str, dst: str, *, is_dir: bool) -> None:
        """Move ``src`` to ``dst`` (checks were done; ``dst`` is free). Default: copy + delete."""
        if not is_dir:
            await self._copy_file(src, dst)
            await self._remove_file(src)
            return
        dirs: list[str] = []
        files: list[str] = []
        async for child, entry in self._iter_tree(src):
            (dirs if entry.is_dir else files).append(child)
        try:
            await self._create_dir(dst, parents=True)
            for child in sorted(dirs):
                await self._create_dir(dst + child[len(src) :], parents=True)
            await self._for_each(
                files, lambda child: self._copy_file(child, dst + child[len(src) :])
            )
        except BaseException:
            # Nothing of src was deleted yet: take the partial copy back, so the
            # failed move changed nothing and can be retried.
            await self._discard_partial(dst)
            raise
        await self._rmtree(src)

    async def _discard_partial(self, key: str) -> None:
        """Delete what a failed copy made at ``key``; best effort, even when cancelled."""
        with shielded(), contextlib.suppress(Exception):  # the original failure matters more
            if await self._info(key) is not None:
                await self._rmtree(key)

    async def _rmtree(self, key: str) -> None:
        """Delete directory ``key`` and everything below it. Default: files, then dirs."""
        dirs: list[str] = []
        files: list[str] = []
        async for child, entry in self._iter_tree(key):
            (dirs if entry.is_dir else files).append(child)
        await self._for_each(files, self._remove_file)
        for child in sorted(dirs, key=lambda k: k.count("/"), reverse=True):
            await self._remove_dir(child)
        await self._remove_dir(key)

    async def _aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the backend's connections and sessions."""

    async def _for_each(
        self,
        items: Iterable[T] | AsyncIterator[T],
        func: Callable[[T], Awaitable[Any]],
        *,
        limit: int | None = None,
    ) -> None:
        """:func:`~artifactio._concurrency.for_each` with the store's ``concurrency`` by default."""
        await for_each(items, func, limit=limit or self.concurrency)
