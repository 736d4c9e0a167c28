"""``aclose()`` with requests in flight, written once for every object-store backend.

A backend's test module subclasses :class:`ClosingTests` and provides one fixture,
``closing``, returning a :class:`ClosingBackend`. The tests put a
:class:`~_faults.FaultProxy` between the store and its real server, so the answer
to a read can be held back mid-body while the store closes.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _faults import FaultProxy, Request, Rule, StallResponse

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = ["ClosingBackend", "ClosingTests"]


@dataclass(frozen=True)
class ClosingBackend:
    """How the closing tests reach one backend.

    Attributes:
        root: The store root (fresh for the test).
        url: The real server's endpoint.
        new_store: Makes a store on ``root``; keyword arguments are store options
            (``endpoint_url`` among them) that override the backend's defaults.
        read_size: A payload size that one ranged GET reads whole.
        part_size: A part size for writes: a write of more goes up in the background.
        stall_after: Body bytes of a read's answer to let through before holding the
            rest back.
    """

    root: str
    url: str
    new_store: Callable[..., artifactio.AsyncArtifactStore]
    read_size: int
    part_size: int
    stall_after: int


def _stall_read(proxy: FaultProxy, closing: ClosingBackend) -> Rule:
    """Hold back the next answer to a read of ``big.bin`` after ``stall_after`` body bytes."""

    def is_read(request: Request) -> bool:  # the object's bytes, not its metadata
        return request.path.endswith("big.bin") and "alt=json" not in request.target

    return proxy.add(StallResponse(after=closing.stall_after), method="GET", where=is_read)


async def _until_closing(store: artifactio.AsyncArtifactStore) -> None:
    while not store._closed:
        await asyncio.sleep(0)


class ClosingTests:
    """What ``aclose()`` does to requests in flight and to files opened before it."""

    @pytest.fixture
    async def proxy(self, closing: ClosingBackend) -> AsyncIterator[FaultProxy]:
        async with FaultProxy(closing.url) as proxy:
            yield proxy

    async def test_aclose_lets_a_read_in_flight_finish(
        self, closing: ClosingBackend, proxy: FaultProxy
    ) -> None:
        data = os.urandom(closing.read_size)
        store = closing.new_store(endpoint_url=proxy.url)
        await store.write_bytes("big.bin", data)
        stall = _stall_read(proxy, closing)
        reader = asyncio.create_task(store.read_bytes("big.bin"))
        await stall.fired.wait()
        closer = asyncio.create_task(store.aclose())
        await _until_closing(store)
        stall.release()
        assert await reader == data  # aclose() waited for it
        await closer
        with pytest.raises(artifactio.StoreClosedError, match=re.escape(closing.root)):
            await store.read_bytes("big.bin")

    async def test_aclose_bounds_a_stalled_read_in_flight(
        self, closing: ClosingBackend, proxy: FaultProxy
    ) -> None:
        # aiohttp drops a body's own read timeout when its connection is closed under
        # it: the store's timeout must end the read (the test timeout catches a hang).
        store = closing.new_store(endpoint_url=proxy.url, read_timeout=0.5, retries=0)
        await store.write_bytes("big.bin", os.urandom(closing.read_size))
        stall = _stall_read(proxy, closing)
        reader = asyncio.create_task(store.read_bytes("big.bin"))
        await stall.fired.wait()
        await store.aclose()
        with pytest.raises(
            (artifactio.StoreClosedError, artifactio.StoreConnectionError)
        ) as caught:
            await reader
        if isinstance(caught.value, artifactio.StoreConnectionError):
            assert isinstance(caught.value.__cause__, TimeoutError)

    async def test_stalled_body_is_a_connection_error(
        self, closing: ClosingBackend, proxy: FaultProxy
    ) -> None:
        options: dict[str, Any] = {"endpoint_url": proxy.url, "read_timeout": 0.5, "retries": 0}
        async with closing.new_store(**options) as store:
            await store.write_bytes("big.bin", os.urandom(closing.read_size))
            stall = _stall_read(proxy, closing)
            with pytest.raises(artifactio.StoreConnectionError, match=r"big\.bin") as caught:
                await store.read_bytes("big.bin")
            assert isinstance(caught.value.__cause__, TimeoutError)
            stall.release()

    async def test_files_opened_before_aclose_refuse_requests(
        self, closing: ClosingBackend
    ) -> None:
        store = closing.new_store()
        store.block_size = 64 * 1024  # type: ignore[attr-defined]
        await store.write_bytes("r.bin", os.urandom(closing.read_size))
        reader = await store.open("r.bin", "rb")
        assert len(await reader.read(10)) == 10
        writer = await store.open("w.bin", "wb")
        await writer.write(os.urandom(2 * closing.part_size + 1))  # parts go up meanwhile
        await store.aclose()  # waits for the part in flight
        with pytest.raises(artifactio.StoreClosedError, match=re.escape(closing.root)):
            await reader.read()
        with pytest.raises(artifactio.StoreClosedError, match=re.escape(closing.root)):
            await writer.close()
        await reader.close()
        with pytest.raises(artifactio.StoreClosedError, match=re.escape(closing.root)):
            await store.exists("r.bin")
        async with closing.new_store() as other:
            assert not await other.exists("w.bin")  # nothing published, nothing pending
