"""Small files written in batches: the writes ready at about the same time, in one call.

Onto a store that writes many files at a time (a local disk:
``StorePrimitives._write_batch``), each item of a transfer that holds a small
file whole hands it to one :class:`BatchedWrites`. The first item that finds no
batch being written writes every file queued by then (at most the store's
``_write_batch_limit``) in one call; the files that arrive meanwhile wait for
the next batch, written by the first of them. Nothing waits for a batch to
fill: a lone file is written at once, alone.

Each file still ends on its own: its item gets what writing it alone would
have returned or raised, so it is counted, retried and failed alone. An item
cancelled before its file was taken takes it back; one cancelled while its
file is being written waits until the batch is done (as a worker-thread call
does), so nothing is published after the transfer ended.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import anyio

from .._concurrency import shielded

if TYPE_CHECKING:
    from .._store import AsyncArtifactStore

__all__ = ["BatchedWrites"]


class _Write:
    """One file queued for a batch, and how its write ended."""

    __slots__ = ("data", "done", "key", "outcome", "taken")

    def __init__(self, key: str, data: bytes) -> None:
        self.key = key
        self.data = data
        self.taken = False
        self.done = False
        self.outcome: bool | Exception = False


class BatchedWrites:
    """Writes files held whole onto ``store``, those that are ready together in one call.

    Args:
        store: The destination store (its ``_write_batch_limit`` is above 0).
        exclusive: Each write fails with ``FileExistsError`` where a file exists.
    """

    def __init__(self, store: AsyncArtifactStore, *, exclusive: bool) -> None:
        self._store = store
        self._exclusive = exclusive
        self._most = max(1, store._write_batch_limit())
        self._queue: list[_Write] = []
        self._writing = False
        self._written: anyio.Event | None = None  # set when the batch being written ends

    async def write(self, key: str, data: bytes) -> bool:
        """Write ``data`` as file ``key``, as ``store._write_whole`` does; whether verified.

        Raises:
            Exception: What writing this file raised.
        """
        job = _Write(key, data)
        self._queue.append(job)
        try:
            while not job.done:
                if self._writing:
                    await self._wait()
                else:
                    await self._write_next()
        except BaseException:
            if not job.taken:
                self._queue.remove(job)
            else:
                with shielded():  # being written: wait for it, as a worker call would
                    while not job.done:
                        await self._wait()
            raise
        if isinstance(job.outcome, Exception):
            raise job.outcome
        return job.outcome

    async def _wait(self) -> None:
        if self._written is None:
            self._written = anyio.Event()
        await self._written.wait()

    async def _write_next(self) -> None:
        """Write the files queued first (up to the store's limit) in one call."""
        batch, self._queue = self._queue[: self._most], self._queue[self._most :]
        for job in batch:
            job.taken = True
        self._writing = True
        outcomes: list[bool | Exception] | None = None
        try:
            files = [(job.key, job.data) for job in batch]
            outcomes = await self._store._write_batch(files, exclusive=self._exclusive)
        except Exception as exc:  # the call itself failed: every file of it did
            outcomes = [exc] * len(batch)
        finally:
            if outcomes is None:  # cancelled midway (a store that does not shield it)
                outcomes = [InterruptedError(errno.EINTR, "write: cancelled")] * len(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                job.outcome = outcome
                job.done = True
            self._writing = False
            written, self._written = self._written, None
            if written is not None:
                written.set()
