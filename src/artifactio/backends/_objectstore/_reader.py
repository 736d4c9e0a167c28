"""Reading: ranged GETs of the version first read, with read-ahead.

Reads are ranged GETs pinned to the version first read (S3 ``If-Match``, GCS
``generation``): a file replaced while it is being read fails with
``OSError(ESTALE)`` (:func:`object_changed`) instead of mixing
versions. The next block is fetched while the caller consumes the current one,
and one large read goes out as several ranged GETs in parallel.
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
    from ._client import ObjectRead
    from ._store import ObjectStore

__all__ = ["ObjectReader"]

_MAX_PARALLEL_READS = 8
"""Ranged GETs in flight for one large ``read``."""


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


class ObjectReader(RawReader):
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
