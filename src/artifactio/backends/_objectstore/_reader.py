"""Reading: GETs of the version first read, streamed when reading goes sequentially.

Every GET is pinned to the version first read (S3 ``If-Match``, GCS
``generation``): a file replaced while it is being read fails with
``OSError(ESTALE)`` (:func:`object_changed`) instead of mixing versions.

Opening fetches the first block. Once reading runs sequentially past it, the
rest comes as one GET streamed from there to the end of the object (where the
client can, :meth:`ObjectClient.open_stream`), opened while the caller still
consumes the block: one request however large the object, and memory bounded by
the connection's buffers, not by a block. Elsewhere the next block is fetched
while the caller consumes the current one. A read elsewhere (a seek) drops the
stream; a large read off the stream goes out as several ranged GETs in parallel.
A stream cut by the network resumes where it stopped, as long as each new GET
brings bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from typing import TYPE_CHECKING, Any

from ..._concurrency import for_each
from ..._exceptions import os_error
from ..._files import RawReader
from ._client import object_changed

if TYPE_CHECKING:
    from ._client import ObjectRead, ObjectStream
    from ._store import ObjectStore

__all__ = ["ObjectReader"]

_MAX_PARALLEL_READS = 8
"""Ranged GETs in flight for one large ``read``."""

_MAX_RESUMES = 10
"""New GETs one stream may make after its connection was cut or stalled."""


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


def _close_opened(task: asyncio.Task[ObjectStream | None]) -> None:
    """Close the stream an abandoned opening made (or mark its failure as seen)."""
    if task.cancelled():
        return
    if task.exception() is None and (body := task.result()) is not None:
        body.close()


class _Stream:
    """One GET of the object from :attr:`pos` on, opened in the background."""

    def __init__(self, reader: ObjectReader, pos: int) -> None:
        self.pos = pos
        self._reader = reader
        self._opening: asyncio.Task[ObjectStream | None] | None = (
            asyncio.get_running_loop().create_task(reader._open_stream(pos))
        )
        self._body: ObjectStream | None = None
        self._chunk = b""  # the bytes that came last; those from _used on are at pos
        self._used = 0
        self.failed = False  # the service cannot stream: read by ranges
        self._resumes = 0

    async def take(self, n: int) -> bytes:
        """Up to ``n`` bytes at :attr:`pos`, of what came; ``b""`` only when the stream failed."""
        if self._used == len(self._chunk):
            self._chunk, self._used = await self._next(), 0
        start = self._used
        piece = self._chunk[start : start + n]  # no copy of the rest: small reads stay cheap
        self._used += len(piece)
        self.pos += len(piece)
        return piece

    async def _next(self) -> bytes:
        resumed_at = -1
        while True:
            if self._body is None:
                opening, self._opening = self._opening, None
                if opening is None:
                    opening = asyncio.get_running_loop().create_task(
                        self._reader._open_stream(self.pos)
                    )
                self._body = await opening
                if self._body is None:
                    self.failed = True
                    return b""
            try:
                chunk = await self._body.read()
            except (ConnectionError, TimeoutError):
                # Cut or stalled: a new GET from here on, unless the last one
                # brought nothing (then the failure is the answer) or the
                # stream resumed too often already.
                self.close()
                if resumed_at == self.pos or self._resumes >= _MAX_RESUMES:
                    raise
                resumed_at = self.pos
                self._resumes += 1
                continue
            if not chunk and self.pos < self._reader.size:
                raise os_error(
                    OSError,
                    "read",
                    self._reader._path,
                    f"short read: the object ended at byte {self.pos} of {self._reader.size}",
                    code=errno.EIO,
                )
            return chunk

    def close(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None:
            opening.add_done_callback(_close_opened)
            opening.cancel()  # a no-op when it is done: the callback closes what it opened
        if self._body is not None:
            self._body.close()
            self._body = None


class ObjectReader(RawReader):
    """Reads of one object version: the first block, then one stream or ranged GETs.

    Memory stays within two blocks: the block being consumed and the next one
    (fetched in the background when the client does not stream), plus what a
    streaming connection buffers.
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
        self._stream: _Stream | None = None
        self._streams = True  # until the client or the service says otherwise

    async def _open_stream(self, start: int) -> ObjectStream | None:
        client = await self._store._client()
        try:
            return await client.open_stream(
                self._store.bucket, self._obj, start, version=self._version
            )
        except FileNotFoundError as exc:  # deleted since it was opened
            raise object_changed("read", self._path) from exc

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

        async def one(i: int) -> None:
            pieces[i] = await self._get(*spans[i])

        await for_each(
            range(len(spans)), one, limit=min(self._store.concurrency, _MAX_PARALLEL_READS)
        )
        return b"".join(pieces)

    async def read_range(self, offset: int, n: int) -> bytes:
        """One ranged GET of the pinned version (the block the open fetched serves its part)."""
        end = min(offset + n, self.size)
        if offset >= end:
            return b""
        if self._block_start == 0 and end <= len(self._block):
            piece = self._block[offset:end]
            if end == len(self._block):
                self._block = b""  # served: do not hold it while the other parts go
            return piece
        return await self._get(offset, end)

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
            stream = self._stream
            if stream is not None and stream.pos == pos:
                piece = await stream.take(end - pos)
                if piece:
                    pieces.append(piece)
                    pos += len(piece)
                    continue
                self._streams = not stream.failed
            self._drop_stream()
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
        """After a sequential read that stopped at ``end``, get what follows coming."""
        if end >= self.size or self._ahead is not None:
            return
        if self._block_start <= end < self._block_start + len(self._block):
            return  # still inside the current block
        if self._stream is not None and self._stream.pos == end:
            return
        self._drop_stream()
        self._block = b""  # consumed: not held while the rest streams
        if self._streams:
            self._stream = _Stream(self, end)
            return
        stop = min(end + self.block_size, self.size)
        self._ahead_start = end
        self._ahead = asyncio.get_running_loop().create_task(self._get(end, stop))

    def _drop_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def aclose(self) -> None:
        self._drop_stream()
        ahead, self._ahead = self._ahead, None
        self._block = b""
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
