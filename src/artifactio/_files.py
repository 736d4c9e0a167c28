"""Async file objects, written once above two small backend primitives.

A backend hands out a :class:`RawReader` (random access reads of a snapshot of
one object) or a :class:`RawWriter` (a sink that makes its content visible only
on :meth:`RawWriter.commit`). Buffering, read-ahead, lines, text decoding and
the all-or-nothing write protocol live here, the same for every backend.
"""

from __future__ import annotations

import abc
import codecs
import io
import os
import warnings
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from ._concurrency import shielded
from ._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "AsyncFile",
    "AsyncReadFile",
    "AsyncTextReadFile",
    "AsyncTextWriteFile",
    "AsyncWriteFile",
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

    @abc.abstractmethod
    async def read_at(self, offset: int, n: int) -> bytes:
        """Return up to ``n`` bytes from ``offset``; fewer only at end of file."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the reader's resources."""


class RawWriter(abc.ABC):
    """A sink whose content becomes the file's only when :meth:`commit` succeeds."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Append ``data`` (the buffered writer hands over chunks of ``part_size``)."""

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


class AsyncTextReadFile(AsyncFile[str]):
    """A text reader decoding a binary reader incrementally (universal newlines by default).

    ``tell()`` and ``seek()`` take byte offsets, as opaque cookies: ``seek(0)`` and
    ``seek(0, SEEK_END)`` always work, and a value from ``tell()`` can be passed back
    (``tell()`` is the byte offset of the next character; only where a lenient
    ``errors`` handler made several characters of one invalid byte and reading
    stopped among them is there no such offset, and the position before them is
    given).
    """

    def __init__(
        self, binary: AsyncReadFile, encoding: str, errors: str, newline: str | None
    ) -> None:
        super().__init__(binary.name, binary.mode)
        self._bin = binary
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self._reset_decoder(binary._pos)

    def _new_decoder(self) -> Any:
        decoder = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self.newline in (None, ""):
            return io.IncrementalNewlineDecoder(decoder, translate=self.newline is None)
        return decoder

    def _reset_decoder(self, anchor: int) -> None:
        """Start decoding afresh at byte offset ``anchor`` (after a seek)."""
        self._decoder: Any = self._new_decoder()
        self._pending = ""
        self._eof = False
        # tell() bookkeeping: ``_anchor`` is a byte offset where decoding can start
        # afresh (decoder state ``_anchor_state``), ``_fed`` the bytes decoded since,
        # ``_used`` how many characters of their text were handed out.
        self._anchor = anchor
        self._anchor_state: tuple[bytes, int] = self._decoder.getstate()
        self._fed = bytearray()
        self._used = 0

    def _clean_state(self) -> tuple[bytes, int] | None:
        """The decoder's state if it holds nothing back (no partial character, no ``\r``)."""
        buf, flags = self._decoder.getstate()
        held = flags & 1 if isinstance(self._decoder, io.IncrementalNewlineDecoder) else 0
        return None if buf or held else (buf, flags)

    def _take(self, n: int) -> str:
        """Hand out the first ``n`` decoded characters."""
        out, self._pending = self._pending[:n], self._pending[n:]
        self._used += len(out)
        if not self._pending:
            state = self._clean_state()
            if state is not None:  # everything decoded was handed out: a fresh anchor
                self._anchor += len(self._fed)
                self._anchor_state = state
                self._fed.clear()
                self._used = 0
        return out

    def _advance_anchor(self) -> None:
        """Move the anchor to the first character not handed out yet.

        Decodes the bytes since the anchor again, from the anchor's state, until
        ``_used`` characters came out, and stops where the decoder holds nothing
        back, so decoding afresh from there gives the same text.
        """
        need = self._used
        if need == 0:
            return
        decoder = self._new_decoder()
        decoder.setstate(self._anchor_state)
        newline_decoder = isinstance(decoder, io.IncrementalNewlineDecoder)
        data = bytes(self._fed)
        pos = produced = held = 0
        best: tuple[int, tuple[bytes, int], int] = (0, self._anchor_state, 0)
        one_byte = False  # after a step gave more characters than bytes (backslashreplace)
        while pos < len(data):
            # Most decoders give at most one character per byte, so this many bytes
            # never reach past the character being looked for.
            step = 1 if one_byte else max(need - produced - held, 1)
            out = decoder.decode(data[pos : pos + step])
            if step > 1 and produced + len(out) > need:
                pos, state, produced = best
                decoder.setstate(state)
                held, one_byte = 0, True
                continue
            produced += len(out)
            pos = min(pos + step, len(data))
            buf, flags = decoder.getstate()
            held = flags & 1 if newline_decoder else 0
            if buf:
                continue
            if produced + held > need:
                break  # a held "\r" came out as a character of its own: best stands
            if not held:
                best = (pos, (buf, flags), produced)
                if produced == need:
                    break
            elif produced + 1 == need:
                # The "\r" was handed out, unless it pairs with a "\n" still to come
                # (translated to one "\n"): the next steps tell.
                best = (pos, (buf, flags & ~1), need)
        else:
            if self._eof and best[2] < need:  # handed out by the end of file's flush
                best = (len(data), (b"", 0), need)
        pos, state, produced = best
        self._anchor += pos
        self._anchor_state = state
        del self._fed[:pos]
        self._used = need - produced  # 0 unless no byte offset lies exactly there

    def readable(self) -> bool:
        return True

    async def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = await self._bin.read(self._bin._raw.block_size)
        final = not chunk
        self._fed += chunk
        self._pending += self._decoder.decode(chunk, final=final)
        if final:
            self._eof = True
        elif self._used and len(self._fed) > 2 * self._bin._raw.block_size:
            self._advance_anchor()  # keeps the bytes remembered for tell() bounded
        return True

    async def read(self, size: int = -1) -> str:
        self._check_open()
        if size is None or size < 0:
            parts = [self._take(len(self._pending))]
            while await self._fill():
                parts.append(self._take(len(self._pending)))
            return "".join(parts)
        while len(self._pending) < size and await self._fill():
            pass
        return self._take(size)

    def _line_end(self) -> int:
        sep = "\n" if self.newline in (None, "", "\n") else self.newline
        if self.newline == "":
            idxs = [i for i in (self._pending.find("\r\n"), self._pending.find("\n")) if i >= 0]
            cr = self._pending.find("\r")
            lone_cr = cr >= 0 and not self._pending.startswith("\r\n", cr)
            if lone_cr and (cr + 1 < len(self._pending) or self._eof):
                idxs.append(cr)
            if not idxs:
                return -1
            i = min(idxs)
            return i + (2 if self._pending.startswith("\r\n", i) else 1)
        i = self._pending.find(sep)
        return -1 if i < 0 else i + len(sep)

    async def readline(self, size: int = -1) -> str:
        self._check_open()
        while True:
            end = self._line_end()
            if end >= 0 or (size is not None and 0 <= size <= len(self._pending)):
                break
            if not await self._fill():
                end = len(self._pending)
                break
        if size is not None and size >= 0:
            end = min(end if end >= 0 else len(self._pending), size)
        return self._take(end)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        if whence == os.SEEK_CUR and offset != 0:
            raise io.UnsupportedOperation("seek: can't do nonzero cur-relative seeks in text mode")
        if whence == os.SEEK_END and offset != 0:
            raise io.UnsupportedOperation("seek: can't do nonzero end-relative seeks in text mode")
        if whence == os.SEEK_CUR:
            return await self.tell()
        pos = await self._bin.seek(offset, whence)
        self._reset_decoder(pos)
        return pos

    async def tell(self) -> int:
        self._check_open()
        self._advance_anchor()
        return self._anchor

    async def aclose(self) -> None:
        self._closed = True
        await self._bin.aclose()


class AsyncTextWriteFile(AsyncFile[str]):
    """A text writer encoding into a binary writer; ``"\\n"`` is written as ``newline`` if set."""

    def __init__(
        self, binary: AsyncWriteFile, encoding: str, errors: str, newline: str | None
    ) -> None:
        super().__init__(binary.name, binary.mode)
        self._bin = binary
        self.encoding = encoding
        self.errors = errors
        self.newline = newline
        self._encoder = codecs.getincrementalencoder(encoding)(errors)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    async def write(self, data: str) -> int:
        self._check_open()
        if not isinstance(data, str):
            raise TypeError(f"write: {self.name!r} is open in text mode; write str, not bytes")
        text = data.replace("\n", self.newline) if self.newline not in (None, "", "\n") else data
        await self._bin.write(self._encoder.encode(text))
        return len(data)

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._bin.seek(offset, whence)

    async def tell(self) -> int:
        return await self._bin.tell()

    async def aclose(self) -> None:
        if self._closed:
            return
        tail = self._encoder.encode("", final=True)
        if tail:
            await self._bin.write(tail)
        await self._bin.aclose()
        self._closed = True

    async def abort(self) -> None:
        self._closed = True
        await self._bin.abort()


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
