"""The file objects of :class:`~artifactio.integrations.fsspec.ArtifactioFileSystem`.

- :class:`ArtifactioFile`: what ``fs.open(path, "rb" | "wb" | "ab" | "xb")`` returns,
  an ``fsspec.spec.AbstractBufferedFile`` (seekable reads through fsspec's block
  cache; buffered writes), so pandas, pyarrow and anything else that takes an
  fsspec file gets one. Its blocking methods run on the filesystem's event loop.
- :class:`ArtifactioStreamedFile`: what ``await fs.open_async(path, mode)``
  returns, an ``fsspec.asyn.AbstractAsyncStreamedFile`` on the caller's loop.
- :class:`TextFile`: the ``io.TextIOWrapper`` of the text modes.
- :func:`upload` and :func:`download`: a local file into a store's file, and back.

Each wraps one file of the store (:class:`artifactio.AsyncFile`), opened when the
fsspec file is, so a missing file, a directory or an existing file in ``x`` mode
fails at ``open``. Writes keep the store's rule, all or nothing: the content
becomes the file's when ``close()`` succeeds (``commit()`` inside an fsspec
transaction); an exception inside ``with`` (or ``async with``), ``discard()``, or
dropping the file unclosed publishes nothing. (fsspec's own files publish what
was written when a ``with`` block raises, or when they are collected unclosed.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import anyio
from fsspec.asyn import AbstractAsyncStreamedFile, sync
from fsspec.spec import AbstractBufferedFile

from ._fsspec_store import on_thread_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from types import TracebackType

    from .._files import AsyncFile

__all__ = [
    "ArtifactioFile",
    "ArtifactioStreamedFile",
    "TextFile",
    "download",
    "text_file",
    "upload",
]

_BACKGROUND: set[asyncio.Task[Any] | Any] = set()
"""Clean-ups of files dropped unclosed, referenced until they finish."""
_BACKGROUND_LOCK = threading.Lock()


def _in_background(
    loop: asyncio.AbstractEventLoop | None, make: Callable[[], Coroutine[Any, Any, None]]
) -> bool:
    """Start ``make()`` on ``loop`` without waiting for it; ``False`` when no loop can run it."""
    if loop is None or loop.is_closed() or not loop.is_running() or sys.is_finalizing():
        return False
    if on_thread_of(loop):
        task: Any = loop.create_task(make())
    else:
        try:
            task = asyncio.run_coroutine_threadsafe(make(), loop)
        except RuntimeError:  # the loop closed meanwhile
            return False
    with _BACKGROUND_LOCK:
        _BACKGROUND.add(task)
    task.add_done_callback(_forget_task)
    return True


def _forget_task(task: Any) -> None:
    with _BACKGROUND_LOCK:
        _BACKGROUND.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed clean-up of a dropped file is not news


async def _read_range(afile: AsyncFile[bytes], start: int, end: int) -> bytes:
    await afile.seek(start)
    data: bytes = await afile.read(max(end - start, 0))
    return data


class _StoreFileState:
    """The store file behind an fsspec file, and whether it is finished (closed or aborted)."""

    def __init__(self, afile: AsyncFile[Any], loop: asyncio.AbstractEventLoop | None) -> None:
        self.afile = afile
        self.loop = loop
        self.done = False

    async def push(self, data: bytes, commit: bool) -> None:
        """Hand ``data`` to the store file, and publish it all when ``commit``."""
        try:
            if data:
                await self.afile.write(data)
            if commit:
                await self.afile.aclose()
                self.done = True
        except BaseException:
            self.done = True  # the store file aborted itself: nothing was published
            raise

    async def finish(self) -> None:
        """Close a reader, or publish a writer."""
        if not self.done:
            self.done = True
            await self.afile.aclose()

    async def abort(self) -> None:
        """Close without publishing anything."""
        if not self.done:
            self.done = True
            await self.afile.abort()

    def drop(self, writing: bool, name: str) -> None:
        """The fsspec file was dropped unfinished: abort (writers) or close it in the background.

        A writer is unfinished until it is published: closed, or committed by
        its transaction.
        """
        if self.done:
            return
        self.done = True
        if writing:
            warnings.warn(
                f"file {name!r} opened for writing was garbage-collected before it was "
                "published: nothing was published (close it, or use 'with')",
                ResourceWarning,
                stacklevel=3,
            )
        cleanup = self.afile.abort if writing else self.afile.aclose
        if not _in_background(self.loop, cleanup):
            # No loop can run it any more: the backend's own finalizer releases
            # what the writer staged.
            self.afile._forget()


class ArtifactioFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of an :class:`ArtifactioFileSystem` (``fs.open(path, mode)``).

    Reads are seekable and go through fsspec's cache (``cache_type``,
    ``block_size``); writes are buffered, handed to the store's writer
    ``block_size`` bytes at a time, and published when :meth:`close` succeeds
    (:meth:`commit` inside ``fs.transaction``). An exception inside ``with``,
    :meth:`discard`, or a file dropped without ``close()`` publishes nothing.

    Made by the filesystem, never directly.
    """

    def __init__(
        self,
        fs: Any,
        path: str,
        mode: str,
        afile: AsyncFile[Any],
        *,
        size: int,
        block_size: int | str | None = None,
        autocommit: bool = True,
        cache_type: str = "readahead",
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._state = _StoreFileState(afile, fs.loop)
        super().__init__(
            fs,
            path,
            mode=mode,
            block_size=block_size,
            autocommit=autocommit,
            cache_type=cache_type,
            cache_options=cache_options,
            size=size if mode == "rb" else None,
            **kwargs,
        )
        if mode != "rb":
            self.loc = size  # "ab" continues after the content already there

    def _run(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return sync(self.fs.loop, func, *args)

    def _fetch_range(self, start: int, end: int) -> bytes:
        data: bytes = self._run(_read_range, self._state.afile, start, end)
        return data

    def _initiate_upload(self) -> None:
        """Nothing to do: the store's writer was opened with the file."""

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        self._run(self._state.push, data, final and self.autocommit)
        return True

    def close(self) -> None:
        """Close the file; a writer publishes its content (unless inside a transaction)."""
        if self.closed:
            return
        try:
            super().close()
        finally:
            if self.mode == "rb":
                self._run(self._state.finish)

    def commit(self) -> None:
        """Publish what was written (``fs.transaction`` calls it for files opened inside)."""
        self._run(self._state.finish)

    def discard(self) -> None:
        """Close without publishing anything written; the old content stays."""
        self.closed = True
        self.buffer = io.BytesIO()
        self._run(self._state.abort)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.writable():
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.done:
            state.drop(self.mode != "rb", self.path)
        self._closed = True


class ArtifactioStreamedFile(AbstractAsyncStreamedFile):  # type: ignore[misc]
    """A file of an asynchronous filesystem: ``await fs.open_async(path, mode)``.

    Use it with ``async with``; it belongs to the event loop that opened it.
    Reads are seekable (no read cache); writes are published by ``await
    f.close()``, and an exception inside ``async with`` publishes nothing.
    """

    def __init__(
        self,
        fs: Any,
        path: str,
        mode: str,
        afile: AsyncFile[Any],
        *,
        size: int,
        block_size: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        self._state = _StoreFileState(afile, asyncio.get_running_loop())
        # fsspec's streamed files write in modes wb and ab only; "xb" was
        # enforced when the store opened its writer.
        super().__init__(
            fs,
            path,
            mode="wb" if mode == "xb" else mode,
            block_size=block_size,
            cache_type="none",
            size=size if mode == "rb" else None,
            **kwargs,
        )
        if mode != "rb":
            self.loc = size

    async def _fetch_range(self, start: int, end: int) -> bytes:
        return await _read_range(self._state.afile, start, end)

    async def _upload_chunk(self, final: bool = False) -> bool:
        await self._state.push(self.buffer.getvalue(), final)
        return True

    async def close(self) -> None:
        """Close the file; a writer publishes its content."""
        if self.closed:
            return
        try:
            await super().close()
        finally:
            if self.mode == "rb":
                await self._state.finish()

    async def discard(self) -> None:
        """Close without publishing anything written; the old content stays."""
        self.closed = True
        self.buffer = io.BytesIO()
        await self._state.abort()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self.writable():
            await self.discard()
        else:
            await self.close()

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None and not state.done:
            state.drop(self.mode != "rb", self.path)
        self._closed = True


class TextFile(io.TextIOWrapper):
    """A text-mode file: an ``io.TextIOWrapper`` whose ``with`` block, when it
    raises, discards what was written instead of publishing it."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raw = self.buffer
        if exc_type is not None and isinstance(raw, ArtifactioFile) and raw.writable():
            raw.discard()
        self.close()


def text_file(binary: Any, encoding: str | None, errors: str | None, newline: str | None) -> Any:
    """Wrap a binary fsspec file for text; UTF-8 unless ``encoding`` says otherwise."""
    return TextFile(binary, encoding=encoding or "utf-8", errors=errors, newline=newline)


async def upload(local: anyio.Path, dst: AsyncFile[Any], chunk: int, callback: Any) -> None:
    """Write local file ``local`` into the store's writer ``dst``, ``chunk`` bytes at a time."""
    async with await anyio.open_file(local, "rb") as src:
        callback.set_size(await src.seek(0, os.SEEK_END))
        await src.seek(0)
        while data := await src.read(chunk):
            await dst.write(data)
            callback.relative_update(len(data))


async def download(src: AsyncFile[Any], local: anyio.Path, chunk: int, callback: Any) -> None:
    """Write the store's file ``src`` to ``local``, which appears whole or not at all.

    The bytes go to a temporary file next to ``local``, renamed over it at the
    end; a failure or cancellation removes the temporary file.
    """
    partial = local.with_name(f".{local.name}.artifactio-{os.getpid()}-{id(src):x}.part")
    try:
        callback.set_size(await src.seek(0, os.SEEK_END))
        await src.seek(0)
        async with await anyio.open_file(partial, "wb") as out:
            while data := await src.read(chunk):
                await out.write(data)
                callback.relative_update(len(data))
        await partial.replace(local)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
            await partial.unlink(missing_ok=True)
        raise
