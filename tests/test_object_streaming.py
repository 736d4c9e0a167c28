"""Sequential reads of large objects stream: one GET from the first block's end on.

Through a :class:`~_faults.FaultProxy` in front of the session's SeaweedFS or
fake-gcs-server, so the tests see every request and can cut or stall a stream.
Both S3 request paths (the lean one and aiobotocore's) and GCS stream the same way.
"""

from __future__ import annotations

import errno
import os
import uuid
from typing import TYPE_CHECKING

import pytest

from _faults import Cut, FaultProxy, Request, StallResponse
from _server_fixtures import BUCKET
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.backends._objectstore import ObjectStore
    from artifactio.embedded import FakeGCSServer, SeaweedFS


KiB = 1024
BLOCK = 128 * KiB
SIZE = 8 * BLOCK + 1234


class BotocoreS3Store(S3Store):
    """Every request through aiobotocore (no lean path)."""

    lean_requests = False


@pytest.fixture(params=["s3", "s3-botocore", "gcs"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def proxy(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[FaultProxy]:
    if kind == "gcs":
        server: FakeGCSServer = request.getfixturevalue("fake_gcs_server")
        target = server.url
    else:
        target = request.getfixturevalue("seaweedfs").endpoint_url
    async with FaultProxy(target) as p:
        yield p


@pytest.fixture
async def store(
    kind: str, request: pytest.FixtureRequest, proxy: FaultProxy
) -> AsyncIterator[ObjectStore]:
    name = f"{BUCKET}/stream-{uuid.uuid4().hex[:12]}"
    s: ObjectStore
    if kind == "gcs":
        gcs: FakeGCSServer = request.getfixturevalue("fake_gcs_server")
        options = gcs.store_options(endpoint_url=proxy.url, retries=1)
        s = GCSStore(f"gs://{name}", read_timeout=2.0, **options)
    else:
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        options = seaweedfs.store_options(endpoint_url=proxy.url, retries=1)
        kind_of = S3Store if kind == "s3" else BotocoreS3Store
        s = kind_of(f"s3://{name}", read_timeout=2.0, **options)
    async with s:
        s.block_size = BLOCK  # small blocks, small objects (the option is the part size)
        yield s
        proxy.clear()
        await s.remove("big.bin")


@pytest.fixture
async def blob(store: ObjectStore) -> bytes:
    data = os.urandom(SIZE)
    await store.write_bytes("big.bin", data)
    return data


def _gets(proxy: FaultProxy) -> list[str]:
    """The ``Range`` of every GET of the object, in order."""
    return [r.headers.get("Range", "") for r in proxy.requests if _is_get(r)]


def _is_get(request: Request) -> bool:
    """A GET of the object's bytes (GCS's metadata GETs carry no ``Range``)."""
    return (
        request.method == "GET" and request.path.endswith("/big.bin") and "Range" in request.headers
    )


def _streams(request: Request) -> bool:
    return _is_get(request) and request.headers.get("Range", "").endswith("-")


async def _read_all(store: ObjectStore, piece: int) -> bytes:
    chunks: list[bytes] = []
    async with store.open("big.bin", "rb") as f:
        while chunk := await f.read(piece):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_sequential_read_is_the_first_block_then_one_stream(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    assert await _read_all(store, 100 * KiB) == blob
    assert _gets(proxy) == [f"bytes=0-{BLOCK - 1}", f"bytes={BLOCK}-"]


async def test_small_reads_take_the_stream_piece_by_piece(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    assert await _read_all(store, 1000) == blob
    assert _gets(proxy) == [f"bytes=0-{BLOCK - 1}", f"bytes={BLOCK}-"]


async def test_stream_cut_midway_resumes_where_it_stopped(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    cut = 3 * BLOCK + 17
    proxy.add(Cut(nbytes=cut), where=_streams)
    assert await _read_all(store, 100 * KiB) == blob
    assert _gets(proxy) == [f"bytes=0-{BLOCK - 1}", f"bytes={BLOCK}-", f"bytes={BLOCK + cut}-"]


async def test_stream_that_brings_nothing_again_fails(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    proxy.add(Cut(nbytes=0), where=_streams, times=None)
    async with store.open("big.bin", "rb") as f:
        assert await f.read(BLOCK) == blob[:BLOCK]
        with pytest.raises(ConnectionError):
            await f.read(BLOCK)
    assert _gets(proxy)[1:] == [f"bytes={BLOCK}-"] * 2  # one resume, not a retry loop


async def test_stalled_stream_resumes_then_fails_when_stalled_with_nothing(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    first = proxy.add(StallResponse(after=10 * KiB), where=_streams)
    then = proxy.add(StallResponse(after=0), where=_streams, nth=2, times=None)
    async with store.open("big.bin", "rb") as f:
        assert await f.read(BLOCK) == blob[:BLOCK]
        with pytest.raises(ConnectionError) as caught:
            await f.read(BLOCK)
    assert caught.value.errno == errno.ETIMEDOUT
    # the second stream resumed after the 10 KiB the first one brought
    assert _gets(proxy)[1:] == [f"bytes={BLOCK}-", f"bytes={BLOCK + 10 * KiB}-"]
    assert (first.hits, then.hits) == (1, 1)


async def test_object_replaced_before_the_stream_opens_is_stale(
    store: ObjectStore, blob: bytes
) -> None:
    async with store.open("big.bin", "rb") as f:
        await store.write_bytes("big.bin", os.urandom(SIZE))
        assert await f.read(BLOCK) == blob[:BLOCK]  # fetched by the open
        with pytest.raises(OSError) as caught:  # the stream opens pinned to the first version
            await f.read(BLOCK)
    assert caught.value.errno == errno.ESTALE


async def test_seeks_drop_the_stream_and_read_right(
    store: ObjectStore, blob: bytes, proxy: FaultProxy
) -> None:
    async with store.open("big.bin", "rb") as f:
        assert await f.read(3 * BLOCK) == blob[: 3 * BLOCK]
        await f.seek(50_000)
        assert await f.read(100) == blob[50_000:50_100]
        await f.seek(5 * BLOCK + 3)
        assert await f.read(BLOCK) == blob[5 * BLOCK + 3 : 6 * BLOCK + 3]
        rest = b""
        while chunk := await f.read(BLOCK):
            rest += chunk
        assert rest == blob[6 * BLOCK + 3 :]


async def test_reader_closed_midstream_leaves_the_store_usable(
    store: ObjectStore, blob: bytes
) -> None:
    for _ in range(3):
        async with store.open("big.bin", "rb") as f:
            assert await f.read(BLOCK + 5) == blob[: BLOCK + 5]
    assert await _read_all(store, BLOCK) == blob
