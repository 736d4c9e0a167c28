"""The client pool: one :class:`ObjectClient` per event loop.

Clients are made lazily, one per event loop, so a store works across several
``asyncio.run()`` calls and from several loops; :meth:`ClientPool.aclose` (the
store's ``aclose()``) closes them all, and a client whose loop shuts down first
is closed with it.

A forked child starts afresh: it neither uses nor closes the clients (and
sockets) it inherited from its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING

from ..._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    from ._client import ObjectClient

__all__ = ["ClientPool"]

logger = logging.getLogger("artifactio.objectstore")

_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_INHERITED: list[object] = []
"""Clients a forked child inherited: their sockets belong to the parent, so they are
neither used nor closed here, only kept from the garbage collector (which would
complain that they were never closed)."""


class _Slot:
    """The client of one event loop."""

    __slots__ = ("building", "client", "guard")

    def __init__(self) -> None:
        self.client: ObjectClient | None = None
        self.building: asyncio.Task[ObjectClient] | None = None
        self.guard: AsyncGenerator[None, None] | None = None


class ClientPool:
    """Makes one client per event loop on first use and closes them all.

    A client is tied to the loop it was made in (its connection pool is). Each
    client comes with a guard: a suspended async generator registered with its
    loop, which ``asyncio.run`` closes at shutdown, closing the client with it.
    """

    def __init__(self, factory: Callable[[], Awaitable[ObjectClient]], label: str) -> None:
        self._factory = factory
        self._label = label
        self._slots: dict[asyncio.AbstractEventLoop, _Slot] = {}
        self._lock = threading.Lock()
        self._generation = _fork_generation
        self._closed = False

    async def get(self) -> ObjectClient:
        """The running loop's client, made on first use."""
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is not None and slot.client is not None and self._generation == _fork_generation:
            return slot.client
        return await self._slow_get(loop)

    async def _slow_get(self, loop: asyncio.AbstractEventLoop) -> ObjectClient:
        with self._lock:
            if self._closed:
                raise StoreClosedError(f"store {self._label!r} is closed")
            if self._generation != _fork_generation:
                _INHERITED.append(self._slots)
                self._slots = {}
                self._generation = _fork_generation
            slot = self._slots.get(loop)
            if slot is None:
                slot = self._slots[loop] = _Slot()
        if slot.client is not None:
            return slot.client
        if slot.building is None:
            slot.building = loop.create_task(self._build(loop, slot))
        return await asyncio.shield(slot.building)

    async def _build(self, loop: asyncio.AbstractEventLoop, slot: _Slot) -> ObjectClient:
        try:
            client = await self._factory()
        except BaseException:
            slot.building = None
            raise
        slot.client = client
        slot.building = None
        slot.guard = self._guard(loop, slot)
        await slot.guard.asend(None)
        if self._closed:  # aclose() ran while the client was being made
            await slot.guard.aclose()
            raise StoreClosedError(f"store {self._label!r} is closed")
        return client

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, slot: _Slot
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._slots.get(loop) is slot:
                    del self._slots[loop]
            client, slot.client = slot.client, None
            if client is not None:
                try:
                    await client.drain()
                    await client.aclose()
                except Exception:  # pragma: no cover - closing is best effort
                    logger.debug("closing a client of %s failed", self._label, exc_info=True)

    async def aclose(self) -> None:
        """Close every client: this loop's at once, those of loops running elsewhere there.

        New requests are refused at once, on every loop; each client then waits
        (bounded) for its requests in flight before closing its connections.
        """
        with self._lock:
            self._closed = True
            slots = list(self._slots.items())
            self._slots.clear()
        for _, slot in slots:
            if slot.client is not None:
                slot.client.refuse()
        current = asyncio.get_running_loop()
        for loop, slot in slots:
            guard = slot.guard
            if guard is None:
                continue
            if loop is current:
                await guard.aclose()
            elif loop.is_running() and not loop.is_closed():
                grace = slot.client.close_grace if slot.client is not None else 0.0
                future = asyncio.run_coroutine_threadsafe(guard.aclose(), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), grace + 30)
            # A loop that is not running closes the client itself when it shuts down.
