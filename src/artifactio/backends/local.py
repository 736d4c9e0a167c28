"""Local disk: absolute paths and ``file://`` URIs.

Every blocking call (``os.lstat``, ``os.scandir``, ``open``, reads, writes,
``os.replace``...) goes through :func:`~artifactio._blocking.run_blocking`, and
each primitive groups its system calls into one synchronous helper, so a
primitive costs one thread hop in async code and no hop at all when the sync
facade drives the store inline; a bulk transfer from another local store
copies small files a batch per hop (``_copy_batch_from``); one to or from
another store reads small files a batch per hop (``_read_batch``) and writes
each file it holds whole in one hop (``_write_whole``). The file handles, and
the hidden temporary files that make writes atomic, are in
:mod:`._local_files`; listings never show those temporary files.

Bounds: a path whose symlinks resolve outside the root's real path is outside
the store (``PathOutsideStoreError``, a ``PermissionError``), whatever the
operation. The check walks the components below the root with ``os.lstat`` and
resolves the path only when one of them is a symlink, so paths without links
cost one ``lstat`` per component. It is a check, not a sandbox: a link swapped
in between the check and the operation is not caught.

Links are not followed by tree listings: ``walk`` lists a link to a directory
among the directories but does not enter it (``os.walk``'s default), and
``size`` and ``glob("**")`` do not descend into one either; a link given as the
path itself is followed. Links leading out are listed by name but never entered
or described. ``rmtree`` removes links below it, never what they point to, and
refuses a path that is itself a link (``OSError``).

Below a file: a path whose ancestor is a file gets the error ``os`` gives
there, ``NotADirectoryError``, from every operation that needs it to exist or
to be made (``exists`` and ``isdir`` answer ``False``), where a backend without
a directory tree would say ``FileNotFoundError``.

Moves use ``os.rename``, which is atomic. Across filesystems (``EXDEV``) the
move copies then deletes; a copy that fails removes what it made, so the source
is whole and nothing is left at the destination.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat as stat_module
from contextlib import contextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, TypeVar

from .._blocking import run_blocking
from .._concurrency import shielded
from .._config import LocalConfig
from .._exceptions import ArtifactioError, PathOutsideStoreError, os_error
from .._files import BytesReader
from .._paths import PathType, StoreRoot, join_key, parent_key
from .._store import AsyncArtifactStore, DirEntry, EntryInfo
from ._local_entries import Lazy, Location, dir_entry, entry_info, inside, take
from ._local_files import (
    BATCH_FILE,
    BATCH_WRITES,
    NEW_FILE_FLAGS,
    SMALL_FILE,
    LocalReader,
    LocalWriter,
    cleanup,
    commit,
    copy_file,
    is_temp,
    move_across,
    temp_name,
    unlink_quietly,
    write_whole,
)

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Callable,
        Generator,
        Iterable,
        Iterator,
        Sequence,
    )

    from .._files import RawReader, RawWriter
    from .._primitives import StorePrimitives

__all__ = ["LocalStore"]

_TREE_BATCH = 1000  # entries handed over per thread hop by _iter_tree

_ROOT_INFO = EntryInfo("dir")

T = TypeVar("T")
R = TypeVar("R")


def _each(items: Iterable[T], func: Callable[[T], R]) -> list[R | Exception]:
    """``func`` on each item, in order: its result, or what it raised (the others go on)."""
    out: list[R | Exception] = []
    for item in items:
        try:
            out.append(func(item))
        except Exception as exc:
            out.append(exc)
    return out


class LocalStore(AsyncArtifactStore):
    """An artifact store in a local directory.

    The root need not exist: it is an empty directory until something is
    written, and writes and ``makedirs`` create it.

    Args:
        root: An absolute path (``/data/artifacts``) or a ``file://`` URI; paths
            handed back are spelled the same way, and paths are accepted in both.
        **options: ``concurrency`` and ``part_size`` (see :class:`~artifactio.LocalConfig`).
    """

    scheme = "file"
    inline_capable = True

    def __init__(self, root: str | os.PathLike[str], **options: Any) -> None:
        self.config = LocalConfig(path=os.fspath(root), **options)
        parsed = StoreRoot.parse(self.config.path)
        super().__init__(
            parsed, concurrency=self.config.concurrency, part_size=self.config.part_size
        )
        self._base = parsed.os_path("")

    # --------------------------------------------------------- sync helpers

    def _os(self, key: str) -> str:
        return self._root.os_path(key)

    def _outside(self, key: str, op: str) -> PathOutsideStoreError:
        return PathOutsideStoreError(self._full(key), self.root, op)

    def _root_real(self) -> Callable[[], str]:
        """The root's real path, resolved on first use (listings without links never ask)."""
        return Lazy(os.path.realpath, self._base)

    def _locate(self, key: str, op: str) -> Location:
        """Check that ``key``'s symlinks stay inside the root; say what was learnt.

        Raises:
            PathOutsideStoreError: A symlink on the way resolves outside the root.
        """
        path = self._os(key)
        if not key:
            return Location(path, path)
        parts = key.split("/")
        current = self._base.rstrip("/")
        st: os.stat_result | None = None
        for depth, part in enumerate(parts, 1):
            current = f"{current}/{part}"
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError) as exc:
                # Nothing below exists, so no link below can lead out. ENOENT on the
                # last component means its parent is a directory (the root excepted:
                # it was never looked at).
                last = depth == len(parts)
                below_file = isinstance(exc, NotADirectoryError)
                parent_ok = last and depth > 1 and not below_file
                return Location(path, path, None, True, parent_ok, below_file)
            except OSError as exc:
                raise self._translate(exc, op, key) from exc
            if stat_module.S_ISLNK(st.st_mode):
                real = os.path.realpath(path)
                if not inside(real, self._root_real()()):
                    raise self._outside(key, op)
                return Location(path, real)
        return Location(path, path, st, False, True)

    def _translate(self, exc: OSError, op: str, key: str) -> OSError:
        """Restate an ``OSError`` with the operation and the path in the store's spelling."""
        if exc.errno is None or isinstance(exc, ArtifactioError):
            return exc
        full = self._full(key)
        name = exc.filename
        if isinstance(name, str) and not is_temp(os.path.basename(name)):
            with suppress(ValueError, PermissionError):
                full = self._full(self._root.key(name))
        return OSError(exc.errno, f"{op}: {exc.strerror or os.strerror(exc.errno)}", full)

    @contextmanager
    def _translated(self, op: str, key: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            mapped = self._translate(exc, op, key)
            if mapped is exc:
                raise
            raise mapped from exc

    def _file_ancestor(self, dir_key: str) -> str | None:
        """The first of ``dir_key`` and its ancestors that exists and is not a directory."""
        parts = dir_key.split("/") if dir_key else []
        for depth in range(len(parts) + 1):
            key = "/".join(parts[:depth])
            try:
                st = os.stat(self._os(key))
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat_module.S_ISDIR(st.st_mode):
                return key
        return None

    def _ensure_dir(self, directory: str, dir_key: str, op: str, key: str) -> None:
        """Create ``directory`` and its parents.

        Raises:
            NotADirectoryError: A file sits where one of them should be.
        """
        if os.path.isdir(directory):
            return
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            bad = self._file_ancestor(dir_key)
            if bad is None:
                raise self._translate(exc, op, key) from exc
            raise os_error(
                NotADirectoryError, op, self._full(key), f"{self._full(bad)!r} is a file"
            ) from exc
        except OSError as exc:
            raise self._translate(exc, op, key) from exc

    def _lookup_sync(self, key: str, op: str) -> tuple[EntryInfo | None, type[OSError]]:
        """Describe ``key``; when it does not exist, also say which error ``os`` gives.

        Returns:
            The entry (``None`` when missing), and ``NotADirectoryError`` when it
            is missing because an ancestor is a file, else ``FileNotFoundError``.
        """
        loc = self._locate(key, op)
        if loc.missing:
            return None, NotADirectoryError if loc.below_file else FileNotFoundError
        st = loc.st
        if st is None:
            try:
                st = os.stat(loc.path)
            except (FileNotFoundError, NotADirectoryError) as exc:
                return (None if key else _ROOT_INFO), type(exc)
            except OSError as exc:
                raise self._translate(exc, op, key) from exc
        return entry_info(st), FileNotFoundError

    def _info_sync(self, key: str) -> EntryInfo | None:
        return self._lookup_sync(key, "stat")[0]

    def _require_sync(self, key: str, op: str) -> EntryInfo:
        info, missing = self._lookup_sync(key, op)
        if info is None:
            raise self._err(missing, op, key)
        return info

    def _below_file_sync(self, key: str) -> bool:
        """Whether ``key`` is missing because one of its ancestors is a file."""
        info, missing = self._lookup_sync(key, "stat")
        return info is None and missing is NotADirectoryError

    def _scandir_sync(self, key: str) -> list[DirEntry]:
        loc = self._locate(key, "listdir")
        root_real = self._root_real()
        page: list[DirEntry] = []
        with self._translated("listdir", key):
            try:
                it = os.scandir(loc.path)
            except FileNotFoundError:
                if not key:  # the root is an empty directory until written to
                    return page
                raise
            with it:
                for entry in it:
                    if is_temp(entry.name):
                        continue
                    described = dir_entry(entry, root_real)
                    if described is not None:
                        page.append(described)
        return page

    def _tree_sync(self, key: str) -> Generator[tuple[str, DirEntry], None, None]:
        """Everything below directory ``key``, depth first, without following links."""
        loc = self._locate(key, "walk")
        root_real = self._root_real()
        pending = [(loc.path, key)]
        top = True
        while pending:
            directory, dkey = pending.pop()
            try:
                it = os.scandir(directory)
            except (FileNotFoundError, NotADirectoryError) as exc:
                if top and key:
                    raise self._translate(exc, "walk", dkey) from exc
                top = False
                continue  # the root before any write, or removed meanwhile
            except OSError as exc:
                raise self._translate(exc, "walk", dkey) from exc
            top = False
            with it:
                for entry in it:
                    if is_temp(entry.name):
                        continue
                    described = dir_entry(entry, root_real)
                    if described is None:
                        continue
                    child = join_key(dkey, entry.name)
                    yield child, described
                    if described.is_dir and not entry.is_symlink():
                        pending.append((entry.path, child))

    def _open_sync(self, key: str, whole: int) -> BinaryIO | bytes:
        """Open file ``key`` for reading; one up to ``whole`` bytes is read at once and closed."""
        loc = self._locate(key, "open")
        if not key:
            raise self._err(IsADirectoryError, "open", key)
        with self._translated("open", key):
            file = open(loc.path, "rb")  # noqa: SIM115 - closed by the reader
            try:
                if os.fstat(file.fileno()).st_size <= whole:
                    with file:
                        return file.read()
            except BaseException:
                file.close()
                raise
        return file

    def _open_reader_sync(self, key: str) -> RawReader:
        # A small file is read at once: no more trips to a worker thread.
        opened = self._open_sync(key, SMALL_FILE)
        if isinstance(opened, bytes):
            return BytesReader(opened)
        return LocalReader(opened, os.fstat(opened.fileno()).st_size)

    def _read_whole_sync(self, key: str) -> bytes | None:
        """File ``key``'s bytes; ``None`` when it is larger than a small file."""
        opened = self._open_sync(key, SMALL_FILE)
        if isinstance(opened, bytes):
            return opened
        opened.close()  # grown past the limit: read it through a reader
        return None

    def _open_writer_sync(self, key: str) -> tuple[BinaryIO, str, str]:
        loc = self._locate(key, "open")
        directory, name = os.path.split(loc.real)
        if not loc.parent_ok:
            self._ensure_dir(directory, parent_key(key), "open", key)
        tmp = os.path.join(directory, temp_name(name))
        with self._translated("open", key):
            fd = os.open(tmp, NEW_FILE_FLAGS, 0o666)
        try:
            file = open(fd, "wb")  # noqa: SIM115 - closed by the writer
        except BaseException:
            os.close(fd)
            unlink_quietly(tmp)
            raise
        return file, tmp, loc.real

    def _commit_sync(
        self, file: BinaryIO, tmp: str, target: str, exclusive: bool, key: str
    ) -> None:
        with self._translated("close", key):
            commit(file, tmp, target, exclusive)

    def _write_whole_sync(self, key: str, data: bytes, exclusive: bool) -> bool:
        file, tmp, target = self._open_writer_sync(key)
        with self._translated("close", key):
            return write_whole(file, tmp, target, data, exclusive)

    def _remove_file_sync(self, key: str) -> None:
        loc = self._locate(key, "remove")
        with self._translated("remove", key):
            os.unlink(loc.path)

    def _create_dir_sync(self, key: str, parents: bool) -> None:
        if parents:
            loc = self._locate(key, "makedirs")
            self._ensure_dir(loc.real, key, "makedirs", key)
            return
        loc = self._locate(key, "mkdir")
        with self._translated("mkdir", key):
            try:
                os.mkdir(loc.path)
            except FileNotFoundError:
                if parent_key(key):
                    raise
                os.makedirs(self._base, exist_ok=True)  # the root, made on first use
                os.mkdir(loc.path)

    def _remove_dir_sync(self, key: str) -> None:
        loc = self._locate(key, "rmdir")
        with self._translated("rmdir", key):
            os.rmdir(loc.path)

    def _rmtree_sync(self, key: str) -> None:
        loc = self._locate(key, "rmtree")
        with self._translated("rmtree", key):
            shutil.rmtree(loc.path)

    def _move_sync(self, src: str, dst: str) -> None:
        source = self._locate(src, "rename")
        target = self._locate(dst, "rename")
        if not target.parent_ok:
            self._ensure_dir(os.path.dirname(target.path), parent_key(dst), "rename", dst)
        with self._translated("rename", dst):
            try:
                os.rename(source.path, target.path)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                move_across(source.path, target.path)

    def _checked(self, key: str, op: str, dirs: set[str]) -> Location:
        """:meth:`_locate`, but one ``lstat`` for a key in a directory of ``dirs``.

        ``dirs``: os paths of directories found inside the root with no link on the way.
        """
        path = self._os(key)
        directory = path.rpartition("/")[0]
        if directory in dirs:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return Location(path, path, None, True, True)
            except OSError:
                st = None
            if st is not None and not stat_module.S_ISLNK(st.st_mode):
                return Location(path, path, st, False, True)
        loc = self._locate(key, op)
        if loc.parent_ok:
            dirs.add(directory)
        return loc

    def _copy_sync(
        self,
        source: LocalStore,
        src: str,
        dst: str,
        exclusive: bool,
        dirs: tuple[set[str], set[str]],
    ) -> int:
        """Copy file ``src`` of ``source`` onto ``dst``; its size (``dirs``: :meth:`_checked`)."""
        src_dirs, dst_dirs = dirs
        path = source._checked(src, "copyfile", src_dirs).path
        target = self._checked(dst, "copyfile", dst_dirs)
        replaced = target.st
        if not target.missing and replaced is None:  # a link on the way: what it leads to
            with suppress(OSError):
                replaced = os.stat(target.real)
        directory = os.path.dirname(target.real)
        if not target.parent_ok:
            self._ensure_dir(directory, parent_key(dst), "copyfile", dst)
            if target.real == target.path:
                dst_dirs.add(directory)
        with self._translated("copyfile", dst):
            return copy_file(path, target.real, replaced, exclusive)

    # ----------------------------------------------------------- primitives

    async def _info(self, key: str) -> EntryInfo | None:
        return await run_blocking(self._info_sync, key)

    async def _require(self, key: str, op: str) -> EntryInfo:
        # One lookup that also tells "missing" (ENOENT) from "below a file" (ENOTDIR).
        return await run_blocking(self._require_sync, key, op)

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        yield await run_blocking(self._scandir_sync, key)

    async def _open_reader(self, key: str) -> RawReader:
        return await run_blocking(self._open_reader_sync, key)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        file, tmp, target = await run_blocking(self._open_writer_sync, key)
        return LocalWriter(file, tmp, partial(self._commit_sync, file, tmp, target, exclusive, key))

    async def _write_whole(self, key: str, data: bytes, *, exclusive: bool) -> bool:
        return await run_blocking(self._write_whole_sync, key, data, exclusive)

    def _write_batch_limit(self) -> int:
        return BATCH_WRITES

    async def _write_batch(
        self, files: Sequence[tuple[str, bytes]], *, exclusive: bool
    ) -> list[bool | Exception]:
        # Shielded, as _copy_batch_from: the caller learns about every file published.
        with shielded():
            return await run_blocking(self._write_batch_sync, files, exclusive)

    def _write_batch_sync(
        self, files: Sequence[tuple[str, bytes]], exclusive: bool
    ) -> list[bool | Exception]:
        return _each(files, lambda file: self._write_whole_sync(*file, exclusive))

    def _read_batch_limit(self) -> int:
        return SMALL_FILE

    async def _read_batch(self, keys: Sequence[str]) -> list[bytes | Exception | None]:
        return await run_blocking(_each, keys, self._read_whole_sync)

    async def _remove_file(self, key: str) -> None:
        await run_blocking(self._remove_file_sync, key)

    async def _create_dir(self, key: str, *, parents: bool) -> None:
        await run_blocking(self._create_dir_sync, key, parents)

    async def _remove_dir(self, key: str) -> None:
        await run_blocking(self._remove_dir_sync, key)

    async def _iter_tree(self, key: str) -> AsyncIterator[tuple[str, DirEntry]]:
        tree = self._tree_sync(key)
        done = False
        try:
            while not done:
                batch = await run_blocking(take, tree, _TREE_BATCH)
                done = len(batch) < _TREE_BATCH
                for item in batch:
                    yield item
        finally:
            if not done:
                await cleanup(tree.close)  # its open directory handle

    async def _rmtree(self, key: str) -> None:
        await run_blocking(self._rmtree_sync, key)

    async def _move(self, src: str, dst: str, *, is_dir: bool) -> None:
        await run_blocking(self._move_sync, src, dst)

    async def _copy_file(self, src: str, dst: str) -> None:
        await self._copy_from(self, src, dst, exclusive=False)

    async def _copy_from(
        self, source: StorePrimitives, src: str, dst: str, *, exclusive: bool
    ) -> int | None:
        if not isinstance(source, LocalStore):
            return None
        (copied,) = await run_blocking(self._copy_batch_sync, source, [(src, dst)], exclusive)
        if isinstance(copied, Exception):
            raise copied
        return copied

    def _copy_batch_limit(self, source: StorePrimitives) -> int:
        return BATCH_FILE if isinstance(source, LocalStore) else 0

    async def _copy_batch_from(
        self, source: StorePrimitives, pairs: Sequence[tuple[str, str]], *, exclusive: bool
    ) -> list[int | Exception]:
        assert isinstance(source, LocalStore)
        # Shielded: the worker call cannot be stopped anyway, and this way the
        # caller learns about every file it published before a cancellation lands.
        with shielded():
            return await run_blocking(self._copy_batch_sync, source, pairs, exclusive)

    def _copy_batch_sync(
        self, source: LocalStore, pairs: Sequence[tuple[str, str]], exclusive: bool
    ) -> list[int | Exception]:
        dirs: tuple[set[str], set[str]] = (set(), set())

        def copy(pair: tuple[str, str]) -> int:
            try:
                return self._copy_sync(source, *pair, exclusive, dirs)
            except FileNotFoundError as exc:
                source._raise_missing(pair[0], exc)

        return _each(pairs, copy)

    def _raise_missing(self, src: str, exc: FileNotFoundError) -> NoReturn:
        """Raise ``exc`` from a copy of ``src``; the source's own error when ``src`` is missing."""
        if os.path.lexists(self._locate(src, "copyfile").path):
            raise exc  # a destination directory that vanished
        raise self._err(FileNotFoundError, "copyfile", src) from exc

    # ------------------------------------- where os says ENOTDIR, not ENOENT

    async def mkdir(self, path: PathType) -> None:
        """Create one directory; its parent must exist.

        Raises:
            FileExistsError: Something is at ``path`` already.
            FileNotFoundError: The parent is missing.
            NotADirectoryError: The parent, or one of its ancestors, is a file.
        """
        try:
            await super().mkdir(path)
        except FileNotFoundError as exc:
            key = self._key(path, "mkdir")
            if await run_blocking(self._below_file_sync, key):
                raise self._err(NotADirectoryError, "mkdir", key) from exc
            raise

    async def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Move a file or a whole directory (see :meth:`AsyncArtifactStore.rename`).

        As ``os.rename``, a destination below a file is ``NotADirectoryError``
        even when the source is missing too.
        """
        try:
            await super().rename(src, dst, overwrite)
        except FileNotFoundError as exc:
            key = self._key(dst, "rename")
            if await run_blocking(self._below_file_sync, key):
                raise self._err(NotADirectoryError, "rename", key) from exc
            raise
