"""``AsyncArtifactStore``: the async API, written once above a few backend primitives.

A backend implements the primitives of :class:`~artifactio._primitives.StorePrimitives`
(look up one entry, list one directory, open a reader or a writer, delete a
file, create a directory). Everything users call — path rules and bounds,
argument checks in ZenML's order, ``glob``, ``walk``, ``rmtree``, ``size``,
copy and rename — is written here, once, so every backend behaves alike.

The blocking facade ``_sync/_store.py`` is generated from this module's
:class:`AsyncArtifactStore` by ``artifactio._codegen``: its public methods, their
signatures and docstrings are the facade's too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._entries import DirEntry, EntryInfo, StatResult, WalkEntry
from ._exceptions import PathOutsideStoreError, directory_not_empty, invalid_argument
from ._files import (
    AsyncFile,
    AsyncReadFile,
    AsyncWriteFile,
    OpenContext,
    resolve_open_args,
)
from ._paths import (
    GlobMatcher,
    PathType,
    glob_matcher,
    is_below,
    is_directory_pattern,
    join_key,
    parent_key,
)
from ._primitives import StorePrimitives
from ._text_files import AsyncTextReadFile, AsyncTextWriteFile

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from typing_extensions import Self

__all__ = ["AsyncArtifactStore", "DirEntry", "EntryInfo", "StatResult", "WalkEntry"]


class AsyncArtifactStore(StorePrimitives):
    """An artifact store with an awaitable method for every operation.

    Get one with :func:`artifactio.open_store`. Paths may be full paths in the
    store's spelling (``s3://bucket/prefix/x``) or relative to its root; every
    path it returns is a full path. Behaviour is the same on every backend
    (see docs/semantics.md); use ``async with store:`` or :meth:`aclose` to release
    connections.

    Attributes:
        root: The store's root as a full path.
        concurrency: How many requests a bulk operation keeps in flight.
        part_size: Write buffer and multipart part size, in bytes.
    """

    @property
    def root(self) -> str:
        """The store's root, as a full path."""
        return self._root.uri

    # ------------------------------------------------------------------ the API

    def open(
        self,
        path: PathType | None = None,
        mode: str = "r",
        *,
        name: PathType | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> OpenContext[Any]:
        """Open a file for reading or writing.

        Writes are all or nothing: the new content becomes visible when the file
        is closed successfully; an exception or cancellation before that leaves
        the old content (or no file) and nothing temporary behind.

        Args:
            path: The file's path. ``name=`` is accepted too, for code written
                against ZenML's older signature.
            mode: ``r rb w wb a ab x xb``. Text modes are UTF-8 unless
                ``encoding`` says otherwise.
            name: Alias of ``path``.
            encoding: Text encoding (text modes only).
            errors: Text error handler (text modes only), default ``"strict"``.
            newline: As for the builtin ``open`` (text modes only).

        Returns:
            An awaitable async context manager giving the file object.

        Raises:
            ValueError: An unknown mode, or an invalid path.
            FileNotFoundError: Reading a missing file.
            IsADirectoryError: The path is a directory.
            FileExistsError: ``x`` modes, when the file exists.
            PermissionError: The path is outside the store.
        """
        target = _one_path(path, name)
        kind, binary, text_encoding, text_errors = resolve_open_args(
            mode, encoding, errors, newline
        )
        key = self._key(target, "open")
        return OpenContext(
            lambda: self._open(key, mode, kind, binary, text_encoding, text_errors, newline)
        )

    async def _open(
        self,
        key: str,
        mode: str,
        kind: str,
        binary: bool,
        encoding: str,
        errors: str,
        newline: str | None,
    ) -> AsyncFile[Any]:
        full = self._full(key)
        if kind == "r":
            reader = AsyncReadFile(full, mode, await self._open_reader(key))
            return reader if binary else AsyncTextReadFile(reader, encoding, errors, newline)
        info = await self._info(key)
        if key == "" or (info is not None and info.kind == "dir"):
            raise self._err(IsADirectoryError, "open", key)
        if kind == "x" and info is not None:
            raise self._err(FileExistsError, "open", key)
        raw = await self._open_writer(key, exclusive=kind == "x")
        writer = AsyncWriteFile(full, mode, raw, self.part_size)
        if kind == "a" and info is not None:
            try:
                await self._append_existing(key, writer)
            except BaseException:
                await writer.abort()
                raise
        return writer if binary else AsyncTextWriteFile(writer, encoding, errors, newline)

    async def read_bytes(self, path: PathType) -> bytes:
        """Return the whole content of a file.

        Raises:
            FileNotFoundError: Missing.
            IsADirectoryError: A directory.
        """
        async with self.open(path, "rb") as f:
            data: bytes = await f.read()
            return data

    async def write_bytes(self, path: PathType, data: bytes) -> None:
        """Replace a file's content with ``data``, all or nothing.

        Raises:
            IsADirectoryError: The path is a directory.
        """
        async with self.open(path, "wb") as f:
            await f.write(data)

    async def exists(self, path: PathType) -> bool:
        """Whether a file or directory exists at ``path``.

        Failures other than "missing" (permissions, network) propagate.
        """
        key = self._key(path, "exists")
        return await self._info(key) is not None

    async def isdir(self, path: PathType) -> bool:
        """Whether ``path`` is a directory (the root always is)."""
        key = self._key(path, "isdir")
        return await self._isdir(key)

    async def stat(self, path: PathType) -> StatResult:
        """Describe a file or directory.

        Raises:
            FileNotFoundError: Missing.
        """
        key = self._key(path, "stat")
        info = await self._require(key, "stat")
        return StatResult(
            path=self._full(key),
            size=info.size if info.kind == "file" else 0,
            mtime=info.mtime or 0.0,
            is_dir=info.kind == "dir",
            etag=info.etag,
            checksum=info.checksum,
        )

    async def size(self, path: PathType) -> int:
        """A file's size; for a directory, the total size of the files below it.

        Raises:
            FileNotFoundError: Missing.
        """
        key = self._key(path, "size")
        info = await self._require(key, "size")
        if info.kind == "file":
            return info.size
        total = 0
        async for _, entry in self._iter_tree(key):
            if not entry.is_dir:
                total += entry.size
        return total

    async def listdir(self, path: PathType) -> list[str]:
        """The sorted names of the entries directly below a directory.

        Raises:
            FileNotFoundError: Missing.
            NotADirectoryError: A file.
        """
        key = self._key(path, "listdir")
        names: set[str] = set()
        async for page in self._scandir(key):
            names.update(entry.name for entry in page)
        return sorted(names)

    async def makedirs(self, path: PathType) -> None:
        """Create a directory and any missing parents; an existing directory is fine.

        Raises:
            FileExistsError: A file is at ``path``.
            NotADirectoryError: A file is at one of the parents.
        """
        key = self._key(path, "makedirs")
        if await self._isdir(key):
            return
        info = await self._info(key)
        if info is not None:
            if info.kind == "dir":  # made meanwhile by a concurrent caller
                return
            raise self._err(FileExistsError, "makedirs", key)
        await self._check_ancestors(key, "makedirs")
        await self._create_dir(key, parents=True)

    async def mkdir(self, path: PathType) -> None:
        """Create one directory; its parent must exist.

        Raises:
            FileExistsError: Something is at ``path`` already.
            FileNotFoundError: The parent is missing.
            NotADirectoryError: The parent is a file.
        """
        key = self._key(path, "mkdir")
        if key == "" or await self._info(key) is not None:
            raise self._err(FileExistsError, "mkdir", key)
        parent = parent_key(key)
        if parent and not await self._isdir(parent):
            info = await self._info(parent)
            if info is None:
                raise self._err(FileNotFoundError, "mkdir", key, "parent directory does not exist")
            if info.kind != "dir":  # else made meanwhile by a concurrent caller
                raise self._err(NotADirectoryError, "mkdir", key, "parent is not a directory")
        await self._create_dir(key, parents=False)

    async def remove(self, path: PathType) -> None:
        """Delete one file.

        Raises:
            FileNotFoundError: Missing.
            IsADirectoryError: A directory.
        """
        key = self._key(path, "remove")
        info = await self._require(key, "remove")
        if info.kind == "dir":
            raise self._err(IsADirectoryError, "remove", key)
        await self._remove_file(key)

    async def rmtree(self, path: PathType) -> None:
        """Delete a directory and everything below it.

        Raises:
            FileNotFoundError: Missing.
            NotADirectoryError: A file.
            PermissionError: ``path`` is the store's root.
        """
        key = self._key(path, "rmtree")
        if key == "":
            raise PathOutsideStoreError(
                self._full(key), self.root, "rmtree", "refusing to delete the store root"
            )
        if not await self._isdir(key):
            await self._require(key, "rmtree")
            raise self._err(NotADirectoryError, "rmtree", key)
        await self._rmtree(key)

    async def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Copy one file within the store (server-side where the backend can).

        Raises:
            FileExistsError: ``dst`` exists and ``overwrite`` is false.
            FileNotFoundError: ``src`` is missing.
            IsADirectoryError: ``src`` is a directory, or ``dst`` is one.
        """
        skey = self._key(src, "copyfile")
        dkey = self._key(dst, "copyfile")
        dinfo = await self._info(dkey)
        if dinfo is not None and not overwrite:
            raise self._err(FileExistsError, "copyfile", dkey)
        sinfo = await self._require(skey, "copyfile")
        if sinfo.kind == "dir":
            raise self._err(IsADirectoryError, "copyfile", skey)
        if dkey == "" or (dinfo is not None and dinfo.kind == "dir"):
            raise self._err(IsADirectoryError, "copyfile", dkey)
        if skey == dkey:
            return
        await self._copy_file(skey, dkey)

    async def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Move a file or a whole directory.

        On object stores this is a copy followed by a delete, so it is not atomic.

        Raises:
            FileExistsError: ``dst`` exists and ``overwrite`` is false.
            FileNotFoundError: ``src`` is missing.
            IsADirectoryError: ``src`` is a file and ``dst`` a directory.
            NotADirectoryError: ``src`` is a directory and ``dst`` a file.
            OSError: ``dst`` is a non-empty directory (ENOTEMPTY), or lies
                inside ``src`` (EINVAL).
        """
        skey = self._key(src, "rename")
        dkey = self._key(dst, "rename")
        dinfo = await self._info(dkey)
        if dinfo is not None and not overwrite:
            raise self._err(FileExistsError, "rename", dkey)
        sinfo = await self._require(skey, "rename")
        if skey == dkey:
            return
        src_is_dir = sinfo.kind == "dir"
        if skey == "":
            raise PathOutsideStoreError(
                self._full(skey), self.root, "rename", "refusing to move the store root"
            )
        if src_is_dir and is_below(dkey, skey):
            raise invalid_argument(
                "rename", self._full(dkey), f"cannot move {self._full(skey)!r} into itself"
            )
        if dinfo is not None:
            if dinfo.kind == "dir" and not src_is_dir:
                raise self._err(IsADirectoryError, "rename", dkey)
            if dinfo.kind == "file" and src_is_dir:
                raise self._err(NotADirectoryError, "rename", dkey)
            if dinfo.kind == "dir":
                async for page in self._scandir(dkey):
                    if page:
                        raise directory_not_empty("rename", self._full(dkey))
                await self._remove_dir(dkey)
        await self._move(skey, dkey, is_dir=src_is_dir)

    async def glob(self, pattern: PathType) -> list[str]:
        """Sorted full paths of the files and directories matching ``pattern``.

        ``*``, ``?`` and ``[...]`` match within one component, ``**`` across
        components (``d/**`` matches ``d`` itself too); names starting with
        ``.`` match only a pattern component that starts with ``.``. A pattern
        ending in ``/`` matches directories only, and they come back ending in
        ``/``, as ``glob.glob`` spells them. Nothing matching gives ``[]``.
        """
        key = self._key(pattern, "glob")
        matcher = glob_matcher(key, dirs_only=is_directory_pattern(pattern))
        found: set[str] = set()
        if not matcher.parts:
            if matcher.dirs_only:
                present = await self._isdir(key)
            else:
                present = await self._info(key) is not None
            if present:
                found.add(key)
        elif await self._isdir(matcher.base):
            base = matcher.base
            if matcher.matches(""):  # "dir/**" matches dir itself, as glob.glob does
                found.add(base)
            offset = len(base) + 1 if base else 0
            if matcher.recursive:
                async for child, entry in self._iter_tree(base):
                    if (entry.is_dir or not matcher.dirs_only) and matcher.matches(child[offset:]):
                        found.add(child)
            else:
                await self._glob_level(base, offset, matcher, found)
        full = [self._full(k) for k in found]
        if matcher.dirs_only:
            full = [p if p.endswith("/") else p + "/" for p in full]
        return sorted(full)

    async def _glob_level(
        self, key: str, offset: int, matcher: GlobMatcher, found: set[str]
    ) -> None:
        """Add the keys below ``key`` that match, descending only where one may."""
        subdirs: list[str] = []
        async for page in self._scandir(key):
            for entry in page:
                child = join_key(key, entry.name)
                rel = child[offset:]
                if (entry.is_dir or not matcher.dirs_only) and matcher.matches(rel):
                    found.add(child)
                if entry.is_dir and matcher.may_descend(rel):
                    subdirs.append(child)
        for sub in subdirs:
            await self._glob_level(sub, offset, matcher, found)

    async def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[[OSError], Any] | None = None,
    ) -> AsyncIterator[WalkEntry]:
        """Walk a directory tree like ``os.walk``.

        Yields ``(dirpath, dirnames, filenames)`` with ``dirpath`` a full path and
        sorted name lists. With ``topdown``, removing names from ``dirnames``
        prunes the walk. Listings are fetched as the walk goes.

        Args:
            top: The directory to start from.
            topdown: Yield a directory before (true) or after its subdirectories.
            onerror: Called with the ``OSError`` when a directory cannot be
                listed (a missing ``top`` included); otherwise errors are ignored.
        """
        key = self._key(top, "walk")
        async for item in self._walk(key, topdown, onerror, top=True):
            yield item

    async def _walk(
        self,
        key: str,
        topdown: bool,
        onerror: Callable[[OSError], Any] | None,
        top: bool = False,
    ) -> AsyncIterator[WalkEntry]:
        dirs: set[str] = set()
        files: set[str] = set()
        links: set[str] = set()
        try:
            async for page in self._scandir(key):
                for entry in page:
                    (dirs if entry.is_dir else files).add(entry.name)
                    if entry.is_link:
                        links.add(entry.name)
        except OSError as exc:
            if top and isinstance(exc, PathOutsideStoreError):
                raise  # a top whose links lead out is refused, as by every operation
            if onerror is not None:
                onerror(exc)
            return
        dirnames = sorted(dirs)
        filenames = sorted(files)
        if topdown:
            yield self._full(key), dirnames, filenames
        for name in list(dirnames):
            if name in links:  # not followed, as os.walk(followlinks=False)
                continue
            async for item in self._walk(join_key(key, name), topdown, onerror):
                yield item
        if not topdown:
            yield self._full(key), dirnames, filenames

    async def aclose(self) -> None:
        """Release connections; the store cannot be used afterwards. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await self._aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _one_path(path: PathType | None, name: PathType | None) -> PathType:
    if path is None and name is None:
        raise TypeError("open() missing required argument: 'path'")
    if path is not None and name is not None:
        raise TypeError("open() got both 'path' and 'name'; pass one")
    return path if path is not None else name  # type: ignore[return-value]
