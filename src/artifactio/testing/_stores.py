"""Stores made for tests: a memory store that the facade must treat like a network backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from ..backends.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .._entries import DirEntry, EntryInfo
    from .._files import RawReader, RawWriter

__all__ = ["SuspendingMemoryStore"]


class SuspendingMemoryStore(MemoryStore):
    """A ``memory://`` store whose every primitive waits on the event loop once.

    Network backends suspend in every request, so the sync facade must run them
    on its loop thread; this store does the same without needing a server, and
    driving it inline fails (``InlineSuspendedError``). Use it to test or measure
    the facade's loop-thread path.
    """

    inline_capable = False

    async def _info(self, key: str) -> EntryInfo | None:
        await anyio.lowlevel.checkpoint()
        return await super()._info(key)

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        await anyio.lowlevel.checkpoint()
        async for page in super()._scandir(key):
            yield page

    async def _open_reader(self, key: str) -> RawReader:
        await anyio.lowlevel.checkpoint()
        return await super()._open_reader(key)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        await anyio.lowlevel.checkpoint()
        return await super()._open_writer(key, exclusive=exclusive)

    async def _remove_file(self, key: str) -> None:
        await anyio.lowlevel.checkpoint()
        await super()._remove_file(key)

    async def _create_dir(self, key: str, *, parents: bool) -> None:
        await anyio.lowlevel.checkpoint()
        await super()._create_dir(key, parents=parents)

    async def _remove_dir(self, key: str) -> None:
        await anyio.lowlevel.checkpoint()
        await super()._remove_dir(key)
