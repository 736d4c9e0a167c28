"""Plain files of the local backend: the reader and writer handles, atomic publishing, copies.

File data moves through aiofiles on asyncio (anyio's worker threads on other
loops, direct calls when the sync facade drives the store inline).

Writes are atomic: content goes to a hidden temporary file in the target's
directory (``.<name>.<12 hex digits>.tmp``, never shown by listings) which
replaces the target on commit (``os.replace``), or is hard-linked onto it for
``x`` modes (``os.link`` fails atomically when the target exists). Copies
(:func:`copy_file`: the kernel copies into the temporary file; :func:`move_across`)
publish the same way. An exception, a cancellation or a writer dropped without
closing removes the temporary file. A process killed outright may leave one
behind; listings keep hiding it and ``rmtree`` removes it with its directory.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import secrets
import shutil
import stat as stat_module
import weakref
from contextlib import suppress
from typing import TYPE_CHECKING, Any, BinaryIO

import aiofiles.threadpool

from .._blocking import in_inline_mode, run_blocking
from .._concurrency import shielded
from .._files import RawReader, RawWriter

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BATCH_FILE",
    "BATCH_WRITES",
    "NEW_FILE_FLAGS",
    "LocalReader",
    "LocalWriter",
    "cleanup",
    "commit",
    "copy_file",
    "is_temp",
    "move_across",
    "publish",
    "temp_name",
    "unlink_quietly",
    "write_whole",
]

_TEMP_RE = re.compile(r"\A\..+\.[0-9a-f]{12}\.tmp\Z", re.DOTALL)
_TEMP_NAME_BYTES = 200  # keeps ".<name>.<hex>.tmp" within NAME_MAX (255 bytes)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC
_NO_HARD_LINKS = {errno.EPERM, errno.EMLINK, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
# O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused after fstat).
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}
_SEND_BLOCK = 8 * 1024 * 1024


# -------------------------------------------------------------- temporary files


def is_temp(name: str) -> bool:
    """Whether ``name`` is one of this backend's temporary files."""
    return name.startswith(".") and name.endswith(".tmp") and _TEMP_RE.match(name) is not None


def temp_name(name: str) -> str:
    """A fresh hidden temporary name beside ``name``."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > _TEMP_NAME_BYTES:
        name = encoded[:_TEMP_NAME_BYTES].decode("utf-8", "ignore")
    return f".{name}.{secrets.token_hex(6)}.tmp"


def unlink_quietly(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _discard(file: BinaryIO, tmp: str) -> None:
    """Close a writer's file and delete its temporary file (abort, or the writer was dropped)."""
    try:
        file.close()
    finally:
        unlink_quietly(tmp)


def _keep_mode(tmp: str, target: str) -> None:
    """Give ``tmp`` the permissions of the file it replaces, as writing in place would."""
    try:
        st = os.stat(target)
        if stat_module.S_ISREG(st.st_mode):
            os.chmod(tmp, stat_module.S_IMODE(st.st_mode))
    except OSError:
        pass


def publish(tmp: str, target: str, exclusive: bool, *, keep_mode: bool = True) -> None:
    """Make ``tmp`` the file at ``target``; on failure ``tmp`` is removed.

    With ``keep_mode``, a file replaced at ``target`` hands its permissions to ``tmp``.
    """
    try:
        if not exclusive:
            if keep_mode:
                _keep_mode(tmp, target)
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # fails atomically with FileExistsError
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # No hard links on this filesystem: reserve the name, then replace it.
            os.close(os.open(target, NEW_FILE_FLAGS, 0o666))
            try:
                os.replace(tmp, target)
            except BaseException:
                unlink_quietly(target)
                raise
            return
        os.unlink(tmp)
    except BaseException:
        unlink_quietly(tmp)
        raise


def _send(fd_in: int, fd_out: int) -> int:
    """Copy all of ``fd_in`` (from its start) to ``fd_out``; the bytes copied.

    The kernel copies (``sendfile``) where it can; a file system that refuses
    falls back to reads and writes.
    """
    copied = 0
    try:
        while n := os.sendfile(fd_out, fd_in, copied, _SEND_BLOCK):
            copied += n
        return copied
    except OSError as exc:
        if copied or exc.errno not in _NO_SENDFILE:
            raise
    while data := os.pread(fd_in, _SEND_BLOCK, copied):
        _pwrite(fd_out, copied, data)
        copied += len(data)
    return copied


def copy_file(src: str, target: str, replaced: os.stat_result | None, exclusive: bool) -> int:
    """Copy file ``src`` onto ``target``, all or nothing; its size.

    The bytes go to a temporary file beside ``target``, published as
    :func:`publish` does. ``replaced`` is what ``target`` was when looked at
    (``None``: nothing): a file there hands its permissions on.

    Raises:
        IsADirectoryError: ``src`` is a directory.
        OSError: ``src`` is not a plain file (a FIFO, a device...), or the copy failed.
    """
    fd_in = os.open(src, _READ_FLAGS)
    try:
        st = os.fstat(fd_in)
        if not stat_module.S_ISREG(st.st_mode):
            if stat_module.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src)
            raise OSError(errno.EINVAL, "not a plain file", src)
        directory, name = os.path.split(target)
        tmp = os.path.join(directory, temp_name(name))
        fd_out = os.open(tmp, NEW_FILE_FLAGS, 0o666)
        try:
            try:
                _send(fd_in, fd_out)
                size = os.fstat(fd_out).st_size  # what the file system holds
                if replaced is not None and stat_module.S_ISREG(replaced.st_mode):
                    os.fchmod(fd_out, stat_module.S_IMODE(replaced.st_mode))
            finally:
                os.close(fd_out)
        except BaseException:
            unlink_quietly(tmp)
            raise
    finally:
        os.close(fd_in)
    publish(tmp, target, exclusive, keep_mode=False)
    return size


def commit(file: BinaryIO, tmp: str, target: str, exclusive: bool) -> None:
    """Close a writer's file and publish it at ``target``; on failure ``tmp`` is removed."""
    try:
        file.close()
    except BaseException:
        unlink_quietly(tmp)
        raise
    publish(tmp, target, exclusive)


def write_whole(file: BinaryIO, tmp: str, target: str, data: bytes, exclusive: bool) -> bool:
    """Write ``data`` to a writer's fresh file, close and publish it; on failure ``tmp`` is removed.

    Returns:
        Whether the file system held ``len(data)`` bytes before publishing.
    """
    try:
        file.write(data)
        file.flush()
        size = os.fstat(file.fileno()).st_size
    except BaseException:
        _discard(file, tmp)
        raise
    commit(file, tmp, target, exclusive)
    return size == len(data)


def move_across(src: str, dst: str) -> None:
    """Move ``src`` to a free ``dst`` on another filesystem: copy, then delete the source.

    A copy that fails removes what it made (a file is copied to a temporary
    name first), so the source is whole and ``dst`` is free again.
    """
    if os.path.isdir(src) and not os.path.islink(src):
        os.mkdir(dst)  # FileExistsError if it appeared meanwhile: then it is not ours to delete
        try:
            shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
        except BaseException:
            shutil.rmtree(dst, ignore_errors=True)
            raise
        shutil.rmtree(src)
        return
    directory, name = os.path.split(dst)
    tmp = os.path.join(directory, temp_name(name))
    try:
        shutil.copy2(src, tmp, follow_symlinks=False)
        os.replace(tmp, dst)
    except BaseException:
        unlink_quietly(tmp)
        raise
    os.unlink(src)


async def cleanup(func: Callable[[], object]) -> None:
    """Run a blocking clean-up call (close, unlink) off the loop, even when cancelled.

    ``run_blocking`` alone would raise at once in a cancelled scope and skip the call.
    """
    with shielded():
        await run_blocking(func)


# ---------------------------------------------------------------- file handles


def _pread(fd: int, offset: int, n: int) -> bytes:
    """``n`` bytes from ``offset`` (fewer only at end of file), without moving the position."""
    first = os.pread(fd, n, offset)
    if len(first) in (0, n):
        return first
    pieces = [first]
    got = len(first)
    while got < n:
        piece = os.pread(fd, n - got, offset + got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def _pwrite(fd: int, offset: int, data: bytes) -> None:
    """Write all of ``data`` at ``offset``, without moving the position."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class _FileCalls:
    """Awaitable calls on a plain binary file: the one place that decides how.

    Driven inline by the sync facade: call the file directly, in this thread.
    On asyncio: through aiofiles (its thread pool). On any other event loop
    (aiofiles needs asyncio): through anyio's worker threads.
    """

    __slots__ = ("_aio", "raw")

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self._aio: Any = None

    async def call(self, method: str, *args: Any) -> Any:
        if in_inline_mode():
            return getattr(self.raw, method)(*args)
        if self._aio is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return await run_blocking(getattr(self.raw, method), *args)
            self._aio = aiofiles.threadpool.wrap(self.raw)
        return await getattr(self._aio, method)(*args)


SMALL_FILE = 256 * 1024
"""A file up to this size is read whole when opened for reading, and written at its
commit: one worker-thread call for open, read and close (or write, close and
rename) instead of one per call. Its bytes are held in memory meanwhile."""


BATCH_FILE = 1024 * 1024
"""The largest file a bulk transfer between two local stores copies in a batch: many
small files in one worker-thread call (see ``LocalStore._copy_batch_from``)."""


BATCH_WRITES = 32
"""The most files a bulk transfer onto a local store writes in one worker-thread call
(see ``LocalStore._write_batch``)."""


class LocalReader(RawReader):
    """Reads a plain file opened for reading, ``size`` bytes long."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.size = size
        self._file = _FileCalls(file)
        self._pos: int | None = 0  # None: unknown (a call was interrupted)

    async def read_at(self, offset: int, n: int) -> bytes:
        if self._pos != offset:
            self._pos = None
            await self._file.call("seek", offset)
        self._pos = None
        data: bytes = await self._file.call("read", n)
        self._pos = offset + len(data)
        return data

    async def read_range(self, offset: int, n: int) -> bytes:
        return await run_blocking(_pread, self._file.raw.fileno(), offset, n)

    async def aclose(self) -> None:
        await cleanup(self._file.raw.close)


class LocalWriter(RawWriter):
    """Writes to the temporary file ``tmp`` (open as ``file``) until commit or abort.

    Args:
        file: The temporary file, open for writing.
        tmp: Its path, removed on abort or when the writer is dropped.
        commit: The blocking call that closes ``file`` and publishes it.
    """

    parallel_parts = True

    def __init__(self, file: BinaryIO, tmp: str, commit: Callable[[], None]) -> None:
        self._file = _FileCalls(file)
        self._commit = commit
        self._held: list[bytes] = []  # the start of a file that may stay small
        self._held_size = 0
        self._given = 0  # bytes handed over, to check against the file's size at commit
        # Removes the temporary file if this writer is dropped without commit or abort.
        self._discard = weakref.finalize(self, _discard, file, tmp)

    async def write(self, data: bytes) -> None:
        self._given += len(data)
        # A small file is written with its commit, in one worker call.
        if self._held_size + len(data) <= SMALL_FILE:
            self._held.append(bytes(data))
            self._held_size += len(data)
            return
        if self._held:
            data = b"".join((*self._held, data))
            self._held, self._held_size = [], 0
        await self._file.call("write", data)

    async def write_part(self, index: int, offset: int, data: bytes) -> None:
        await run_blocking(_pwrite, self._file.raw.fileno(), offset, data)
        self._given += len(data)

    async def commit(self) -> None:
        held, self._held, self._held_size = b"".join(self._held), [], 0
        await run_blocking(self._write_and_commit, held)
        self._discard.detach()

    def _write_and_commit(self, held: bytes) -> None:
        raw = self._file.raw
        if held:
            raw.write(held)
        raw.flush()
        # What the file system holds, checked here: a transfer need not look again.
        size = os.fstat(raw.fileno()).st_size
        self._commit()
        self.verified = size == self._given

    async def abort(self) -> None:
        self._held, self._held_size = [], 0
        await cleanup(self._discard)
