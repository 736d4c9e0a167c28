"""The client pool: one :class:`ObjectClient` per event loop.

Clients are made lazily, one per event loop, so a store works across several
``asyncio.run()`` calls and from several loops. A client's connections belong to
its loop, so it is closed there, whichever way its end comes:

- :meth:`ClientPool.aclose` (the store's ``aclose()``) closes the calling loop's
  client at once and starts closing the others on their own loops. It waits for
  those of running loops, except a loop whose thread is blocked waiting for this
  very call (the sync facade's ``close()`` called from inside that loop): that
  client closes as soon as its loop runs again. A loop that is not running
  closes its client when it next runs, or when it shuts down.
- A loop that shuts down (``asyncio.run``, ``loop.shutdown_asyncgens()``) closes
  its client with it, through the client's guard.
- A loop closed without that shutdown can run nothing any more: its client's
  connections are released without it (:meth:`ObjectClient.release`) as soon as
  the pool sees the loop closed, when another loop gets its client or at
  :meth:`ClientPool.aclose`.

A forked child starts afresh: it neither uses nor closes the clients (and
sockets) it inherited from its parent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING

from ..._blocking import waiting_loops
from ..._exceptions import StoreClosedError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable

    import aiohttp

    from ._client import ObjectClient

__all__ = ["ClientPool", "release_session"]

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

_CLOSING: set[asyncio.Task[None]] = set()
"""Closings started on other loops, referenced until they finish."""

_AFTER_CLOSE = 30.0
"""Seconds allowed, beyond a client's ``close_grace``, to close its connections."""


class _Slot:
    """The client of one event loop."""

    __slots__ = ("building", "client", "closed", "guard")

    def __init__(self) -> None:
        self.client: ObjectClient | None = None
        self.building: asyncio.Task[ObjectClient] | None = None
        self.guard: AsyncGenerator[None, None] | None = None
        self.closed: asyncio.Future[None] | None = None  # on the slot's loop, once closing


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
            dead = [(other, s) for other, s in self._slots.items() if other.is_closed()]
            for other, _ in dead:
                del self._slots[other]
            slot = self._slots.get(loop)
            if slot is None:
                slot = self._slots[loop] = _Slot()
        for _, old in dead:
            self._release(old)
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
            await self._close(loop, slot)
            raise StoreClosedError(f"store {self._label!r} is closed")
        return client

    async def _guard(
        self, loop: asyncio.AbstractEventLoop, slot: _Slot
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            slot.guard = None  # closing: nobody else closes it
            await self._shut(loop, slot)

    async def _close(self, loop: asyncio.AbstractEventLoop, slot: _Slot) -> None:
        """On ``loop``: close the slot's client, then its guard (which has nothing left to do).

        A guard that the loop's shutdown is closing already is left to it.
        """
        await self._shut(loop, slot)
        guard, slot.guard = slot.guard, None
        if guard is not None:
            await guard.aclose()

    async def _shut(self, loop: asyncio.AbstractEventLoop, slot: _Slot) -> None:
        """On ``loop``: close the slot's client; a second call waits for the first."""
        if slot.closed is not None:
            await asyncio.shield(slot.closed)
            return
        slot.closed = loop.create_future()
        with self._lock:
            if self._slots.get(loop) is slot:
                del self._slots[loop]
        client, slot.client = slot.client, None
        try:
            if client is not None:
                try:
                    await client.drain()
                finally:
                    try:
                        await client.aclose()
                    except Exception:  # pragma: no cover - closing is best effort
                        logger.debug("closing a client of %s failed", self._label, exc_info=True)
        finally:
            if not slot.closed.done():
                slot.closed.set_result(None)

    def _shut_there(
        self, loop: asyncio.AbstractEventLoop, slot: _Slot
    ) -> concurrent.futures.Future[None] | None:
        """Start closing the slot's client on its own loop ``loop``, from another thread.

        Returns:
            What is done when the client is closed; ``None`` when ``loop`` is closed.
        """
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def finished(task: asyncio.Task[None]) -> None:
            _CLOSING.discard(task)
            done.set_result(None)

        def start() -> None:
            task = loop.create_task(self._close(loop, slot))
            _CLOSING.add(task)
            task.add_done_callback(finished)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop was closed meanwhile
            return None
        return done

    def _release(self, slot: _Slot) -> None:
        """Release the client of a closed loop, where nothing can be awaited any more."""
        client, slot.client = slot.client, None
        if client is None:
            return
        try:
            client.release()
        except Exception:  # pragma: no cover - releasing is best effort
            logger.debug("releasing a client of %s failed", self._label, exc_info=True)

    async def aclose(self) -> None:
        """Close every client: this loop's at once, those of other loops there.

        New requests are refused at once, on every loop; each client then waits
        (bounded) for its requests in flight before closing its connections.
        Nothing waits for a loop whose thread waits for this call (it would wait
        for itself): its client closes when that loop runs again.
        """
        with self._lock:
            self._closed = True
            slots = list(self._slots.items())
            self._slots.clear()
        for _, slot in slots:
            if slot.client is not None:
                slot.client.refuse()
        current = asyncio.get_running_loop()
        blocked = waiting_loops()
        own: _Slot | None = None
        closings: list[asyncio.Future[None]] = []
        grace = 0.0
        for loop, slot in slots:
            if slot.client is None:
                continue  # still being made: _build closes it
            if loop is current:
                own = slot
                continue
            slot_grace = slot.client.close_grace
            done = None if loop.is_closed() else self._shut_there(loop, slot)
            if done is None:
                self._release(slot)
            elif loop.is_running() and loop not in blocked:
                grace = max(grace, slot_grace)
                closings.append(asyncio.wrap_future(done))
        if own is not None:
            await self._close(current, own)
        if closings:
            await asyncio.wait(closings, timeout=grace + _AFTER_CLOSE)


def release_session(session: aiohttp.ClientSession) -> None:
    """Close an aiohttp session whose event loop was closed before it, without that loop.

    Its connections' transports cannot close the usual way (closing schedules a
    callback on the loop), so each one is ended as the loop would have ended it:
    the socket is closed and the transport let go. Then the connector is marked
    closed. Only for a loop that is closed: nothing of it may run meanwhile.
    """
    connector = session.connector
    if connector is None or connector.closed:
        return
    protocols = [proto for idle in connector._conns.values() for proto, _ in idle]
    protocols.extend(connector._acquired)
    for proto in protocols:
        transport = proto.transport
        if transport is None:
            continue
        with contextlib.suppress(RuntimeError):  # the loop is closed: it cannot finish this
            transport.abort()
        finish = getattr(transport, "_call_connection_lost", None)
        if finish is not None and getattr(transport, "_sock", None) is not None:
            with contextlib.suppress(Exception):
                finish(None)  # what the loop would have called: closes the socket
    connector._close()
