"""Uploads to S3 when the network fails on purpose: SeaweedFS behind a fault proxy.

Each test puts a :class:`~_faults.FaultProxy` between the store and the
session's SeaweedFS and breaks chosen requests: a body the server stops
reading, an answer lost after the server acted. What must hold:

- every request fails in bounded time, sending included, and a cancelled write
  with a part stuck on the wire aborts at once;
- a retried ``CreateMultipartUpload`` leaves no pending upload behind, and the
  clean-up never aborts another writer's upload;
- an ``x``-mode write whose answer was lost is not told that its own file exists.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _faults import Drop, FaultProxy, StallUpload
from _s3_fixtures import BUCKET, PART, pending_uploads
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.embedded import SeaweedFS

pytestmark = pytest.mark.s3

CREATE = r"\?uploads"  # CreateMultipartUpload: POST key?uploads
PART_2 = r"[?&]partNumber=2\b"  # UploadPart of part 2
COMPLETE = r"\?uploadId="  # CompleteMultipartUpload: POST key?uploadId=... (abort is a DELETE)


@pytest.fixture
async def proxy(seaweedfs: SeaweedFS) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(seaweedfs.url) as p:
        yield p


def _store(root: str, server: SeaweedFS, proxy: FaultProxy, **options: Any) -> S3Store:
    options.setdefault("retries", 2)
    options.setdefault("read_timeout", 5)
    return S3Store(root, part_size=PART, **server.store_options(endpoint_url=proxy.url, **options))


async def _write(store: S3Store, path: str, data: bytes, mode: str = "wb") -> None:
    async with store.open(path, mode) as f:
        await f.write(data)


# ------------------------------------------------ 1. every request ends in bounded time


async def test_put_whose_body_the_server_stops_reading_fails(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy
) -> None:
    """``100 Continue``, then nothing read: the write fails instead of hanging."""
    async with _store(s3_root, seaweedfs, proxy, read_timeout=0.5, retries=1) as store:
        await store.write_bytes("f.bin", b"old content")
        stall = proxy.add(StallUpload(), method="PUT", target=r"/f\.bin$", times=None)
        with pytest.raises(artifactio.StoreConnectionError, match=r"f\.bin"):
            await store.write_bytes("f.bin", os.urandom(PART - 1))  # one PutObject
        assert stall.hits == 2  # the first attempt and its retry both stalled
        assert await store.read_bytes("f.bin") == b"old content"


async def test_part_whose_body_the_server_stops_reading_fails(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any
) -> None:
    async with _store(s3_root, seaweedfs, proxy, read_timeout=0.5, retries=1) as store:
        await store.write_bytes("f.bin", b"old content")
        stall = proxy.add(StallUpload(), method="PUT", target=PART_2, times=None)
        with pytest.raises(artifactio.StoreConnectionError, match=r"f\.bin"):
            await _write(store, "f.bin", os.urandom(3 * PART))
        assert stall.hits >= 1
        assert pending_uploads(raw_s3, store.root) == []
        assert await store.read_bytes("f.bin") == b"old content"


async def test_cancelled_write_does_not_wait_for_a_stalled_part(
    s3_root: str,
    seaweedfs: SeaweedFS,
    proxy: FaultProxy,
    raw_s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A part stuck mid-body is not waited for: the abort goes out while it is still stuck.

    Its own timeout (read_timeout) is longer than the test may run, and so is
    whatever the writer would grant parts in flight to land.
    """
    monkeypatch.setattr(
        "artifactio.backends._objectstore._writer._ABORT_GRACE", 3600.0, raising=False
    )
    async with _store(s3_root, seaweedfs, proxy, read_timeout=300) as store:
        stall = proxy.add(StallUpload(), method="PUT", target=PART_2, times=None)
        writing = asyncio.get_running_loop().create_task(
            _write(store, "f.bin", os.urandom(3 * PART))
        )
        await stall.fired.wait()
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        assert not stall.released.is_set()  # the part was never let through
        assert [r.method for r in proxy.requests if "uploadId" in r.target][-1] == "DELETE"
        assert pending_uploads(raw_s3, store.root) == []
        assert not await store.exists("f.bin")


# ------------------------------------------------ 2. a lost answer to the upload's creation


async def test_lost_answer_to_create_leaves_no_pending_upload(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any
) -> None:
    lost = proxy.add(Drop(), method="POST", target=CREATE)
    data = os.urandom(2 * PART + 1)
    async with _store(s3_root, seaweedfs, proxy) as store:
        await _write(store, "f.bin", data)
        assert lost.hits == 1
        assert sum(1 for r in proxy.requests if r.method == "POST" and "?uploads" in r.target) == 2
        assert pending_uploads(raw_s3, store.root) == []
        assert await store.read_bytes("f.bin") == data


async def test_every_create_answer_lost_fails_the_write_and_leaves_nothing(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any
) -> None:
    lost = proxy.add(Drop(), method="POST", target=CREATE, times=None)
    async with _store(s3_root, seaweedfs, proxy, retries=2) as store:
        with pytest.raises(artifactio.StoreConnectionError):
            await _write(store, "f.bin", os.urandom(2 * PART + 1))
        assert lost.hits == 3  # three uploads made on the server, none of their ids known
        assert pending_uploads(raw_s3, store.root) == []
        assert not await store.exists("f.bin")


async def test_clean_up_after_a_lost_create_spares_another_writers_upload(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any
) -> None:
    """Another writer's upload of the same key, begun at the same moment, stays pending."""
    async with _store(s3_root, seaweedfs, proxy) as store:
        key = store._obj("f.bin")
        theirs = raw_s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        raw_s3.upload_part(Bucket=BUCKET, Key=key, UploadId=theirs, PartNumber=1, Body=b"x")
        proxy.add(Drop(), method="POST", target=CREATE)
        data = os.urandom(2 * PART + 1)
        await _write(store, "f.bin", data)
        assert pending_uploads(raw_s3, store.root) == ["f.bin"]
        uploads = raw_s3.list_multipart_uploads(Bucket=BUCKET, Prefix=key)["Uploads"]
        assert [u["UploadId"] for u in uploads] == [theirs]
        assert await store.read_bytes("f.bin") == data


# ------------------------------------------------ 3. x mode and a lost answer


async def test_exclusive_put_whose_answer_is_lost_succeeds(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy
) -> None:
    lost = proxy.add(Drop(), method="PUT", target=r"/f\.bin$")
    async with _store(s3_root, seaweedfs, proxy) as store:
        await _write(store, "f.bin", b"mine", "xb")  # the retry meets our own object: 412
        assert lost.hits == 1
        assert await store.read_bytes("f.bin") == b"mine"


async def test_exclusive_multipart_write_whose_complete_answer_is_lost_succeeds(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any
) -> None:
    lost = proxy.add(Drop(), method="POST", target=COMPLETE)
    data = os.urandom(2 * PART + 1)
    async with _store(s3_root, seaweedfs, proxy) as store:
        await _write(store, "f.bin", data, "xb")
        assert lost.hits == 1
        assert await store.read_bytes("f.bin") == data
        assert pending_uploads(raw_s3, store.root) == []


@pytest.mark.parametrize("size", [10, 2 * PART + 1], ids=["put", "multipart"])
async def test_exclusive_write_with_a_lost_answer_still_refuses_another_file(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy, raw_s3: Any, size: int
) -> None:
    """Another writer's file came first: the server's 412 was lost, the retry's 412 is the truth."""
    async with _store(s3_root, seaweedfs, proxy) as store:
        f = await store.open("f.bin", "xb")
        await f.write(os.urandom(size))
        raw_s3.put_object(Bucket=BUCKET, Key=store._obj("f.bin"), Body=b"theirs")
        if size < PART:
            lost = proxy.add(Drop(), method="PUT", target=r"/f\.bin$")
        else:
            lost = proxy.add(Drop(), method="POST", target=COMPLETE)
        with pytest.raises(FileExistsError, match=r"f\.bin"):
            await f.close()
        assert lost.hits == 1
        assert await store.read_bytes("f.bin") == b"theirs"
        assert pending_uploads(raw_s3, store.root) == []


# ------------------------------------------------ concurrent makedirs


async def test_concurrent_makedirs_write_each_marker_once(
    s3_root: str, seaweedfs: SeaweedFS, proxy: FaultProxy
) -> None:
    # Writes to one key at once are slow on SeaweedFS and refused on GCS (one per second).
    held = proxy.add(StallUpload(after=0), method="PUT", target=r"/t/$")  # hold the shared one
    async with _store(s3_root, seaweedfs, proxy) as store:
        making = [
            asyncio.ensure_future(store.makedirs(p)) for p in ("t/a", "t/a/b", "t/a/b/c", "t/x")
        ]
        await asyncio.wait_for(held.fired.wait(), 30)
        await asyncio.sleep(0.2)  # every makedirs has reached the "t/" marker by now
        held.release()
        await asyncio.gather(*making)
        assert await store.isdir("t/a/b/c")
        assert await store.isdir("t/x")
    puts = [r.target for r in proxy.requests if r.method == "PUT"]
    top = [t for t in puts if t.endswith("/t/")]
    assert len(top) == 1, puts  # four makedirs waited for one write of the "t/" marker
    assert len(puts) >= 5  # and each other level was marked
