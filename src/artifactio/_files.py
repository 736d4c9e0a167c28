"""Async file objects, written once above two small backend primitives.

A backend hands out a :class:`RawReader` (random access reads of a snapshot of
one object) or a :class:`RawWriter` (a sink that makes its content visible only
on :meth:`RawWriter.commit`). Buffering, read-ahead, lines, text decoding and
the all-or-nothing write protocol live here, the same for every backend; the
text layer over these binary files is in ``_text_files.py``.
"""

from __future__ import annotations

import abc
import codecs
import io
import os
import warnings
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import anyio

from ._blocking import in_inline_mode
from ._concurrency import shielded
from ._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "AsyncFile",
    "AsyncReadFile",
    "AsyncWriteFile",
    "BytesReader",
    "OpenContext",
    "RawReader",
    "RawWriter",
    "parse_mode",
    "resolve_open_args",
]

_MODES = {
    "r": ("r", False),
    "rb": ("r", True),
    "rt": ("r", False),
    "w": ("w", False),
    "wb": ("w", True),
    "wt": ("w", False),
    "a": ("a", False),
    "ab": ("a", True),
    "at": ("a", False),
    "x": ("x", False),
    "xb": ("x", True),
    "xt": ("x", False),
}

DEFAULT_BLOCK_SIZE = 1 << 20


def parse_mode(mode: str) -> tuple[str, bool]:
    """Split a mode into its kind (``"r" "w" "a" "x"``) and whether it is binary.

    Raises:
        ValueError: Any other mode (``"r+"``, ``"rw"``, ``"U"``...).
    """
    found = _MODES.get(mode) if isinstance(mode, str) else None
    if found is not None:  # the usual spellings: no sorting
        return found
    if not isinstance(mode, str):
        raise TypeError(f"open: mode must be str, not {type(mode).__name__}")
    canonical = "".join(sorted(mode, key="rwaxbt".find)) if set(mode) <= set("rwaxbt") else mode
    try:
        return _MODES[canonical]
    except KeyError:
        raise ValueError(
            f"open: invalid mode {mode!r}; expected one of r, rb, w, wb, a, ab, x, xb"
        ) from None


_NEWLINES = (None, "", "\n", "\r", "\r\n")


class _UnknownEncodingError(LookupError, ValueError):
    """An ``encoding`` that names no text codec.

    A ``ValueError`` (docs/semantics.md, ``open.bad-text-options``), and a
    ``LookupError``, which is what the builtin ``open`` raises.
    """


def resolve_open_args(
    mode: str, encoding: str | None, errors: str | None, newline: str | None
) -> tuple[str, bool, str, str]:
    """Check ``open()``'s arguments as the builtin does, before anything is opened.

    Returns:
        ``(kind, binary, encoding, errors)`` with the text defaults filled in
        (UTF-8, ``"strict"``).

    Raises:
        ValueError: An unknown mode, text options with a binary mode, an
            illegal ``newline``, or an ``encoding`` that is no text encoding
            (that one is a ``LookupError`` too, as the builtin raises).
    """
    kind, binary = parse_mode(mode)
    if binary:
        if encoding is not None or errors is not None or newline is not None:
            raise ValueError("open: encoding, errors and newline apply to text modes only")
        return kind, binary, "utf-8", "strict"
    encoding = encoding or "utf-8"
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise _UnknownEncodingError(f"open: unknown encoding: {encoding!r}") from None
    if not getattr(codec, "_is_text_encoding", True):
        raise _UnknownEncodingError(f"open: {encoding!r} is not a text encoding")
    if newline not in _NEWLINES:
        raise ValueError(f"open: illegal newline value: {newline!r}")
    return kind, binary, encoding, errors or "strict"


class RawReader(abc.ABC):
    """Random-access reads of one file, as it was when opened.

    Attributes:
        size: The file's size in bytes.
        block_size: How much the buffered reader fetches per request (read-ahead).
    """

    size: int
    block_size: int = DEFAULT_BLOCK_SIZE

    _range_lock: anyio.Lock | None = None

    @abc.abstractmethod
    async def read_at(self, offset: int, n: int) -> bytes:
        """Return up to ``n`` bytes from ``offset``; fewer only at end of file."""

    async def read_range(self, offset: int, n: int) -> bytes:
        """Like :meth:`read_at`, but safe to await from several tasks at once.

        Bulk transfers read the parts of a large file with it in parallel. The
        default serialises :meth:`read_at` calls; readers whose reads share no
        state (a ranged GET, ``os.pread``) override it to run them side by side.
        """
        if in_inline_mode():  # one caller at a time, and no event loop for a lock
            return await self.read_at(offset, n)
        if self._range_lock is None:
            self._range_lock = anyio.Lock()
        async with self._range_lock:
            return await self.read_at(offset, n)

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the reader's resources."""


class BytesReader(RawReader):
    """A reader of bytes in memory (a memory store's file, a small local file read whole)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    async def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]

    read_range = read_at  # no state: safe from several tasks at once


class RawWriter(abc.ABC):
    """A sink whose content becomes the file's only when :meth:`commit` succeeds.

    A writer is filled either by :meth:`write` calls, in order, or — when
    :attr:`parallel_parts` says it can — by :meth:`write_part` calls, in any order
    and several at once (bulk transfers send the parts of a large file that way);
    never both.

    Attributes:
        parallel_parts: Whether :meth:`write_part` is supported.
        verified: Set by :meth:`commit` when what was stored was checked against
            what was written: by the service, against a checksum of the bytes sent
            (S3's Content-MD5 and per-part CRC-32, GCS's CRC-32C), or by the local
            store, against the file's size before it was published. A bulk
            transfer then need not look again.
    """

    parallel_parts: bool = False
    verified: bool = False

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data`` (the buffered writer hands over chunks of ``part_size``)."""

    async def write_part(self, index: int, offset: int, data: bytes) -> None:
        """Write part ``index`` (from 0), which starts at byte ``offset``.

        Every part but the last has the same size (at least 5 MiB, S3's minimum),
        and every part is written exactly once before :meth:`commit`.

        Raises:
            NotImplementedError: :attr:`parallel_parts` is false.
        """
        raise NotImplementedError(f"{type(self).__name__} writes in order only")

    @abc.abstractmethod
    async def commit(self) -> None:
        """Make the written content visible as the file, replacing what was there."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Discard everything written; leave no temporary or partial object. Idempotent."""


T_co = TypeVar("T_co", bytes, str, covariant=True)


class AsyncFile(abc.ABC, Generic[T_co]):
    """An open file of an :class:`~artifactio.AsyncArtifactStore`.

    Use it as an async context manager; ``async for line in f`` iterates lines.

    Attributes:
        name: The full path that was opened.
        mode: The mode it was opened with.
    """

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the file has been closed (or aborted)."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on closed file {self.name!r}")

    def readable(self) -> bool:
        """Whether the file was opened for reading."""
        return False

    def writable(self) -> bool:
        """Whether the file was opened for writing."""
        return False

    def seekable(self) -> bool:
        """Whether :meth:`seek` can move to any position."""
        return self.readable()

    async def read(self, size: int = -1) -> T_co:
        """Read up to ``size`` bytes (characters in text mode); all that is left if negative."""
        raise io.UnsupportedOperation(f"read: {self.name!r} was opened with mode {self.mode!r}")

    async def readline(self, size: int = -1) -> T_co:
        """Read one line, including its newline; at most ``size`` units when given."""
        raise io.UnsupportedOperation(f"readline: {self.name!r} was opened with mode {self.mode!r}")

    async def readlines(self) -> list[T_co]:
        """Read all remaining lines."""
        return [line async for line in self]

    async def write(self, data: T_co) -> int:
        """Write ``data``; return how many bytes (characters in text mode) were taken."""
        raise io.UnsupportedOperation(f"write: {self.name!r} was opened with mode {self.mode!r}")

    @abc.abstractmethod
    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` relative to ``whence`` (SEEK_SET, SEEK_CUR, SEEK_END)."""

    @abc.abstractmethod
    async def tell(self) -> int:
        """The current position."""

    async def flush(self) -> None:
        """Hand buffered data to the backend. Written data becomes visible only on close."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the file; for writers, publish the content (all or nothing)."""

    async def abort(self) -> None:
        """Close without publishing anything written (readers: same as :meth:`aclose`)."""
        await self.aclose()

    def _forget(self) -> None:
        """Mark the file closed without any I/O, publishing nothing.

        For when no event loop can run :meth:`abort` any more (the sync facade
        after its store was closed); the backend's own finalizer releases what it
        staged (a temporary file, a pending upload).
        """
        self._closed = True

    async def close(self) -> None:
        """Alias of :meth:`aclose`, for code written against file objects."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.aclose()
        else:
            await self.abort()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T_co:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name!r} mode={self.mode!r} {state}>"


class AsyncReadFile(AsyncFile[bytes]):
    """A binary reader with read-ahead: memory stays within one block whatever the size."""

    def __init__(self, name: str, mode: str, raw: RawReader) -> None:
        super().__init__(name, mode)
        self._raw = raw
        self._pos = 0
        self._buf = b""
        self._buf_start = 0

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self._raw.size

    def readable(self) -> bool:
        return True

    def _offset(self) -> int:
        """Where the position falls in the buffer (``len(buf)`` when outside it)."""
        offset = self._pos - self._buf_start
        return offset if 0 <= offset <= len(self._buf) else len(self._buf)

    async def _fill(self, want: int) -> None:
        """Make the buffer hold at least ``want`` bytes from the position (or up to EOF)."""
        offset = self._offset()
        have = len(self._buf) - offset
        if have >= want or self._pos + have >= self._raw.size:
            return
        start = self._pos + have
        need = min(max(want - have, self._raw.block_size), self._raw.size - start)
        chunk = await self._raw.read_at(start, need)
        self._buf = self._buf[offset:] + chunk if have else chunk
        self._buf_start = self._pos

    async def read(self, size: int = -1) -> bytes:
        self._check_open()
        if size is None or size < 0:
            size = max(self._raw.size - self._pos, 0)
        if size == 0:
            return b""
        await self._fill(size)
        offset = self._offset()
        data = self._buf[offset : offset + size]
        self._pos += len(data)
        return data

    async def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into a writable buffer; return how many bytes were read."""
        data = await self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    async def readline(self, size: int = -1) -> bytes:
        self._check_open()
        limit = size if size is not None and size >= 0 else None
        parts: list[bytes] = []
        taken = 0
        while limit is None or taken < limit:
            await self._fill(1)
            offset = self._offset()
            end = len(self._buf)
            if offset >= end:
                break
            if limit is not None:
                end = min(end, offset + limit - taken)
            idx = self._buf.find(b"\n", offset, end)
            stop = idx + 1 if idx >= 0 else end
            parts.append(self._buf[offset:stop])
            taken += stop - offset
            self._pos += stop - offset
            if idx >= 0:
                break
        return b"".join(parts)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        elif whence == os.SEEK_END:
            target = self._raw.size + offset
        else:
            raise ValueError(f"seek: invalid whence {whence!r}")
        if target < 0:
            raise ValueError(f"seek: negative position {target}")
        self._pos = target
        return target

    async def tell(self) -> int:
        self._check_open()
        return self._pos

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf = b""
        await self._raw.aclose()


class AsyncWriteFile(AsyncFile[bytes]):
    """A binary writer: buffers up to ``part_size``, publishes on close, all or nothing.

    An exception inside ``async with``, a cancellation, or :meth:`abort` leaves
    the old content (or no file) and nothing temporary behind.
    """

    def __init__(self, name: str, mode: str, raw: RawWriter, part_size: int) -> None:
        super().__init__(name, mode)
        self._raw = raw
        self._part_size = max(int(part_size), 1)
        self._buf = bytearray()
        self._written = 0

    def __del__(self) -> None:
        # Dropped without aclose() or abort(): nothing is published (the backend's
        # own finalizer removes what it staged). Say so, as an unclosed file does.
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"unclosed file {self.name!r} opened for writing was garbage-collected: "
                "nothing was published (close it, or use 'async with')",
                ResourceWarning,
                stacklevel=2,
            )

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    async def _guarded(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run a backend step; on any failure or cancellation abort the whole write."""
        try:
            await step()
        except BaseException:
            await self.abort()
            raise

    async def write(self, data: bytes) -> int:
        self._check_open()
        if isinstance(cast("object", data), str):
            raise TypeError(f"write: {self.name!r} is open in binary mode; write bytes, not str")
        view = memoryview(data).cast("B")
        self._buf += view
        self._written += len(view)
        while len(self._buf) >= self._part_size:
            chunk = bytes(self._buf[: self._part_size])
            del self._buf[: self._part_size]
            await self._guarded(lambda chunk=chunk: self._raw.write(chunk))  # type: ignore[misc]
        return len(view)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        here = self._written
        if (whence == os.SEEK_SET and offset == here) or (whence != os.SEEK_SET and offset == 0):
            return here
        raise io.UnsupportedOperation(
            f"seek: files open for writing are streamed and cannot seek ({self.name!r})"
        )

    async def tell(self) -> int:
        self._check_open()
        return self._written

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            await self._guarded(lambda: self._raw.write(chunk))
        await self._guarded(self._raw.commit)
        self._closed = True

    async def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        with shielded():
            await self._raw.abort()


class OpenContext(Generic[T_co]):
    """What :meth:`AsyncArtifactStore.open` returns: await it, or use ``async with``.

    ``f = await store.open(p)`` gives the file; ``async with store.open(p) as f:``
    closes it on exit (and on an exception, discards whatever was written).
    """

    def __init__(self, opener: Callable[[], Awaitable[AsyncFile[T_co]]]) -> None:
        self._opener: Callable[[], Awaitable[AsyncFile[T_co]]] = opener
        self._file: AsyncFile[T_co] | None = None

    def __await__(self) -> Generator[Any, None, AsyncFile[T_co]]:
        return self._opener().__await__()

    async def __aenter__(self) -> AsyncFile[T_co]:
        if self._file is not None:
            raise RuntimeError("this open() context was already entered")
        self._file = await self._opener()
        return self._file

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        file = self._file
        if file is None:  # pragma: no cover - __aenter__ failed
            raise StoreClosedError("file was never opened")
        await file.__aexit__(exc_type, exc, tb)
