"""Uploads to GCS when the network fails on purpose: fake-gcs-server behind a fault proxy.

The same failures as ``test_s3_faults.py``, where GCS has the same shape:

- a body the server stops reading fails the request in bounded time (single
  uploads and resumable chunks), and a cancelled write with a chunk stuck on
  the wire cancels its session at once;
- a lost answer to a session's creation: the retry makes a second session and
  the write goes on (the first one cannot be reached: GCS lists no sessions; it
  holds no data and expires after a week);
- a write whose answer was lost is not told that its own object exists, nor
  that it vanished, and another writer's object is never taken for ours.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _faults import Drop, FaultProxy, StallUpload
from _gcs_fixtures import CHUNK
from artifactio.backends.gcs import GCSStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.embedded import FakeGCSServer

pytestmark = pytest.mark.gcs


SINGLE = r"uploadType=multipart"  # one-request upload: POST .../o?uploadType=multipart
CREATE = r"uploadType=resumable&name="  # session creation: POST ...?uploadType=resumable
CHUNKS = r"upload_id="  # a session's chunks and status queries: PUT <session URL>


@pytest.fixture
async def proxy(fake_gcs_server: FakeGCSServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(fake_gcs_server.url) as p:
        yield p


def _store(root: str, server: FakeGCSServer, proxy: FaultProxy, **options: Any) -> GCSStore:
    options.setdefault("retries", 2)
    options.setdefault("read_timeout", 5)
    return GCSStore(
        root, part_size=CHUNK, **server.store_options(endpoint_url=proxy.url, **options)
    )


async def _write(store: GCSStore, path: str, data: bytes, mode: str = "wb") -> None:
    async with store.open(path, mode) as f:
        await f.write(data)


def _sessions(proxy: FaultProxy) -> int:
    return sum(
        1 for r in proxy.requests if r.method == "POST" and "uploadType=resumable" in r.target
    )


# ------------------------------------------------ 1. every request ends in bounded time


@pytest.mark.parametrize(
    ("size", "target"),
    [(1024, SINGLE), (CHUNK - 1, SINGLE), (3 * CHUNK + 5, CHUNKS)],
    ids=["small single", "single", "chunk"],  # small: a body sent without send_bounded
)
async def test_upload_whose_body_the_server_stops_reading_fails(
    gcs_root: str, fake_gcs_server: FakeGCSServer, proxy: FaultProxy, size: int, target: str
) -> None:
    async with _store(gcs_root, fake_gcs_server, proxy, read_timeout=0.5, retries=1) as store:
        await store.write_bytes("f.bin", b"old content")
        stall = proxy.add(StallUpload(), target=target, times=None)
        with pytest.raises(artifactio.StoreConnectionError, match=r"f\.bin"):
            await _write(store, "f.bin", os.urandom(size))
        assert stall.hits >= 1
        # (Released now, a body the proxy holds whole would still land, late: the
        # outcome of a request whose answer never came is unknown.)
        assert await store.read_bytes("f.bin") == b"old content"


async def test_cancelled_write_does_not_wait_for_a_stalled_chunk(
    gcs_root: str,
    fake_gcs_server: FakeGCSServer,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk stuck mid-body is not waited for: the session is cancelled while it is stuck."""
    monkeypatch.setattr(
        "artifactio.backends._objectstore._writer._ABORT_GRACE", 3600.0, raising=False
    )
    async with _store(gcs_root, fake_gcs_server, proxy, read_timeout=300) as store:
        stall = proxy.add(StallUpload(), method="PUT", target=CHUNKS, times=None)
        writing = asyncio.get_running_loop().create_task(
            _write(store, "f.bin", os.urandom(3 * CHUNK + 5))
        )
        await stall.fired.wait()
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        assert not stall.released.is_set()  # the chunk was never let through
        assert [r.method for r in proxy.requests if "upload_id=" in r.target][-1] == "DELETE"
        assert not await store.exists("f.bin")


# ------------------------------------------------ 2. a lost answer to the session's creation


async def test_lost_answer_to_session_creation_still_writes(
    gcs_root: str, fake_gcs_server: FakeGCSServer, proxy: FaultProxy
) -> None:
    lost = proxy.add(Drop(), method="POST", target=CREATE)
    data = os.urandom(3 * CHUNK + 5)
    async with _store(gcs_root, fake_gcs_server, proxy) as store:
        await _write(store, "f.bin", data)
        assert lost.hits == 1
        assert _sessions(proxy) == 2  # the first session is out of reach (and holds no data)
        assert await store.read_bytes("f.bin") == data
        assert await store.listdir(".") == ["f.bin"]


# ------------------------------------------------ 3. a lost answer to the last request


@pytest.mark.parametrize("mode", ["wb", "xb"])
@pytest.mark.parametrize(("size", "target"), [(10, SINGLE), (CHUNK + 5, CHUNKS)])
async def test_write_whose_last_answer_is_lost_succeeds(
    gcs_root: str,
    fake_gcs_server: FakeGCSServer,
    proxy: FaultProxy,
    mode: str,
    size: int,
    target: str,
) -> None:
    """The repeat meets our own object (412 in x mode, a finished session): that is success."""
    # The resumable upload's chunks: the first (of CHUNK bytes), then the last one.
    lost = proxy.add(Drop(), target=target, nth=1 if target == SINGLE else 2)
    data = os.urandom(size)
    async with _store(gcs_root, fake_gcs_server, proxy) as store:
        await _write(store, "f.bin", data, mode)
        assert lost.hits == 1
        assert await store.read_bytes("f.bin") == data


async def test_exclusive_write_with_a_lost_answer_still_refuses_another_file(
    gcs_root: str, fake_gcs_server: FakeGCSServer, proxy: FaultProxy
) -> None:
    """Another writer's object came first: GCS's 412 was lost, the repeat must not hide it.

    Single uploads only: fake-gcs-server does not check ``ifGenerationMatch=0``
    when a resumable session finishes.
    """
    async with (
        _store(gcs_root, fake_gcs_server, proxy) as store,
        GCSStore(gcs_root, **fake_gcs_server.store_options()) as direct,
    ):
        f = await store.open("f.bin", "xb")
        await f.write(b"mine")
        await direct.write_bytes("f.bin", b"theirs")  # not through the proxy
        lost = proxy.add(Drop(), target=SINGLE)
        with pytest.raises(FileExistsError, match=r"f\.bin"):
            await f.close()
        assert lost.hits == 1
        assert await store.read_bytes("f.bin") == b"theirs"
