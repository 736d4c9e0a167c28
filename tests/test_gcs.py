"""The GCS backend against fake-gcs-server: the conformance suite, then what only GCS does.

The fake keeps everything in memory and listens on 127.0.0.1; every test gets a
fresh prefix in one bucket (see ``_gcs_fixtures.py``). Here: writes, reads, listings,
failures, event loops and configuration, closing. What the fake does not check is
observed on the wire in test_gcs_protocol.py and test_gcs_credentials.py.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import traceback
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import google_crc32c
import pytest
from blockbuster import blockbuster_ctx

import artifactio
from _closing import ClosingBackend, ClosingTests
from _gcs_fixtures import (
    CHUNK,
    _Boom,
    _fail_while_writing,
    _payload,
)
from artifactio import IntegrityError, StoreConnectionError
from artifactio.backends import _gcs_client, _gcs_transport, _gcs_upload, _objectstore
from artifactio.backends._gcs_checksum import crc32c
from artifactio.backends.gcs import GCSStore
from artifactio.testing import Capabilities, ConformanceSuite, StoreFactory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.embedded import FakeGCSServer


pytestmark = pytest.mark.gcs


def _store(root: str, server: FakeGCSServer, **options: Any) -> GCSStore:
    options.setdefault("part_size", CHUNK)
    return GCSStore(root, **server.store_options(**options))


class TestGCS(ConformanceSuite):
    """``gs://`` stores on fake-gcs-server, through the async API and the sync facade."""

    @pytest.fixture
    def async_store_factory(self, gcs_root: str, fake_gcs_server: FakeGCSServer) -> StoreFactory:
        return StoreFactory(
            lambda: _store(gcs_root, fake_gcs_server), Capabilities(object_store=True)
        )


@pytest.fixture
async def store(gcs_root: str, fake_gcs_server: FakeGCSServer) -> AsyncIterator[GCSStore]:
    async with _store(gcs_root, fake_gcs_server) as s:
        yield s


class _Spy:
    """Counts calls of a method while keeping its behaviour."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)


# ----------------------------------------------------------------- writes


async def test_resumable_write_in_several_chunks(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _Spy(monkeypatch, _gcs_upload.ResumableUpload, "add_part")
    data = _payload(5 * CHUNK + 12345)
    async with store.open("big/model.bin", "wb") as f:
        for i in range(0, len(data), 100_003):  # writes that do not line up with chunks
            await f.write(data[i : i + 100_003])
    assert parts.calls >= 4  # chunks went up while writing
    assert await store.read_bytes("big/model.bin") == data
    st = await store.stat("big/model.bin")
    assert st.size == len(data)
    digest = base64.b64encode(int(google_crc32c.value(data)).to_bytes(4, "big")).decode()
    assert st.checksum == f"crc32c:{digest}"


async def test_chunk_boundary_sizes_round_trip(store: GCSStore) -> None:
    for size in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 1):
        data = _payload(size, seed=size)
        await store.write_bytes(f"sizes/{size}", data)
        assert await store.read_bytes(f"sizes/{size}") == data, size


async def test_aborted_resumable_write_leaves_nothing(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    aborts = _Spy(monkeypatch, _gcs_upload.ResumableUpload, "abort")
    await store.write_bytes("keep.bin", b"old content")
    with pytest.raises(_Boom):
        await _fail_while_writing(store, "keep.bin", _payload(3 * CHUNK + 5))
    with pytest.raises(_Boom):
        await _fail_while_writing(store, "new.bin", _payload(3 * CHUNK + 5))
    assert aborts.calls == 2  # the sessions were cancelled
    assert await store.read_bytes("keep.bin") == b"old content"
    assert not await store.exists("new.bin")
    assert await store.listdir(".") == ["keep.bin"]


async def test_cancelled_write_leaves_nothing(store: GCSStore) -> None:
    started = anyio.Event()

    async def writer() -> None:
        async with store.open("cancelled.bin", "wb") as f:
            await f.write(_payload(2 * CHUNK + 1))
            started.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await started.wait()
        tg.cancel_scope.cancel()
    assert not await store.exists("cancelled.bin")
    assert await store.listdir(".") == []


async def test_writer_dropped_without_close_cancels_its_session(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    aborts = _Spy(monkeypatch, _gcs_upload.ResumableUpload, "abort")
    files = [await store.open("dropped.bin", "wb")]
    await files[0].write(_payload(2 * CHUNK + 1))  # a resumable session with chunks sent
    with pytest.warns(ResourceWarning, match=r"dropped\.bin"):
        files.clear()  # the last reference: the writer is finalised at once
    await asyncio.sleep(0)  # the abort is scheduled on this loop
    await asyncio.gather(*_objectstore._DROPPED)
    assert aborts.calls == 1
    assert not await store.exists("dropped.bin")


async def test_resumable_chunk_resumes_after_a_dropped_connection(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk cut off mid-way is resumed from where GCS stopped, not restarted."""
    client = await store._client()
    key = store._obj("resumed.bin")
    upload = await client.upload(store.bucket, key, exclusive=False)
    assert isinstance(upload, _gcs_upload.ResumableUpload)
    real_put = upload._put
    sent: list[tuple[int, int]] = []

    async def flaky_put(view: memoryview, start: int, total: int | None, crc: int) -> Any:
        sent.append((start, len(view)))
        if len(sent) == 1:  # GCS keeps the first half, then the connection drops
            await real_put(view[:CHUNK], start, None, crc)
            raise aiohttp.ServerDisconnectedError()
        return await real_put(view, start, total, crc)

    async def persisted() -> int:
        # fake-gcs-server would finalise on a status query; GCS answers 308 + Range.
        return CHUNK

    monkeypatch.setattr(upload, "_put", flaky_put)
    monkeypatch.setattr(upload, "_persisted", persisted)
    monkeypatch.setattr(_gcs_transport, "retry_delay", lambda attempt: 0.0)
    data = _payload(3 * CHUNK + 10, seed=9)
    await upload.add_part(1, data[: 2 * CHUNK])
    await upload.complete(data[2 * CHUNK :])
    assert sent == [(0, 2 * CHUNK), (CHUNK, CHUNK), (2 * CHUNK, CHUNK + 10)]
    assert await store.read_bytes("resumed.bin") == data


async def test_exclusive_small_write_is_refused_by_gcs(store: GCSStore) -> None:
    """``x`` modes send ifGenerationMatch=0: GCS itself refuses an existing object."""
    client = await store._client()
    bucket, key = store.bucket, store._obj("x.bin")
    await client.put(bucket, key, b"first", exclusive=True)
    with pytest.raises(FileExistsError, match=r"x\.bin"):
        await client.put(bucket, key, b"second", exclusive=True)
    assert await store.read_bytes("x.bin") == b"first"


# ----------------------------------------------------------------- reads


async def test_ranged_reads_and_seeks(store: GCSStore, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _payload(4 * CHUNK + 999, seed=3)
    await store.write_bytes("ranged.bin", data)
    gets = _Spy(monkeypatch, _gcs_client.GCSClient, "get_range")
    async with store.open("ranged.bin", "rb") as f:
        assert await f.read(10) == data[:10]
        await f.seek(3 * CHUNK - 5)
        assert await f.read(10) == data[3 * CHUNK - 5 : 3 * CHUNK + 5]  # across a block
        await f.seek(-100, os.SEEK_END)
        assert await f.read() == data[-100:]
        assert await f.read(5) == b""
        await f.seek(CHUNK)
        await f.seek(7, os.SEEK_CUR)
        assert await f.tell() == CHUNK + 7
        assert await f.read(CHUNK) == data[CHUNK + 7 : 2 * CHUNK + 7]
        await f.seek(0)
        assert await f.read() == data
    assert gets.calls >= 3  # ranged GETs, never the whole object at once for a seek


async def test_read_of_a_file_replaced_while_open_fails(store: GCSStore) -> None:
    await store.write_bytes("moving.bin", _payload(3 * CHUNK, seed=1))
    async with store.open("moving.bin", "rb") as f:
        await f.read(10)
        await store.write_bytes("moving.bin", _payload(3 * CHUNK, seed=2))
        await f.seek(2 * CHUNK)
        with pytest.raises(OSError, match="replaced"):
            await f.read(10)


@pytest.mark.parametrize("size", [5, 2 * CHUNK + 3], ids=["one request", "ranges"])
async def test_download_checksum_mismatch_raises(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    await store.write_bytes("check.bin", _payload(size))
    assert await store.read_bytes("check.bin") == _payload(size)
    monkeypatch.setattr(_gcs_client, "goog_hash", lambda headers, name="crc32c": "AAAAAA==")
    with pytest.raises(IntegrityError, match=r"CRC32C.*check\.bin"):
        await store.read_bytes("check.bin")


async def test_small_file_holding_the_multipart_boundary_round_trips(store: GCSStore) -> None:
    client = await store._client()
    assert isinstance(client, _gcs_client.GCSClient)
    data = b"--" + client._boundary.encode() + b"\r\nContent-Type: text/plain\r\n\r\nnot this"
    await store.write_bytes("boundary.bin", data)
    assert await store.read_bytes("boundary.bin") == data
    name = f"dir/{client._boundary}.txt"
    await store.write_bytes(name, b"x")
    assert await store.read_bytes(name) == b"x"


async def test_upload_checksum_mismatch_raises_and_removes_the_object(store: GCSStore) -> None:
    client = await store._client()
    assert isinstance(client, _gcs_client.GCSClient)
    key = store._obj("corrupt.bin")
    await store.write_bytes("corrupt.bin", b"payload")
    meta = await client.head(store.bucket, key)
    assert meta is not None
    resource = {"crc32c": "AAAAAA==", "generation": meta.version}
    with pytest.raises(IntegrityError, match="CRC32C"):
        await client.check_upload(store.bucket, key, resource, crc32c(b"payload"))
    assert not await store.exists("corrupt.bin")


# ----------------------------------------------------------------- listings


async def test_listing_and_rmtree_beyond_one_page(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 1050  # more than one listing page (1000) and ten batch deletes (100)
    client = await store._client()
    limit = anyio.Semaphore(32)

    async def put(i: int) -> None:
        async with limit:
            key = store._obj(f"many/{i:05d}.txt")
            await client.put(store.bucket, key, b"x" * (i % 3), exclusive=False)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(put, i)
    await store.makedirs("many/sub/empty")
    names = await store.listdir("many")
    assert len(names) == count + 1
    assert names[0] == "00000.txt"
    assert names[-1] == "sub"
    assert await store.size("many") == sum(i % 3 for i in range(count))
    assert len(await store.glob("many/*.txt")) == count
    batches = _Spy(monkeypatch, _gcs_client.GCSClient, "_batch")
    await store.rmtree("many")
    assert batches.calls >= count // 100  # batch deletes, 100 keys a request
    assert not await store.exists("many")
    assert await store.listdir(".") == []


async def test_listing_pages_never_repeat_a_name(
    store: GCSStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two keys: common prefixes (repeated on later pages by the emulator) count once."""
    client = await store._client()
    real = client.list_page

    async def small_pages(
        bucket: str, prefix: str, *, delimiter: str | None, limit: int = 1000,
        token: str | None = None,
    ) -> Any:  # fmt: skip
        return await real(bucket, prefix, delimiter=delimiter, limit=min(limit, 2), token=token)

    monkeypatch.setattr(client, "list_page", small_pages)
    for name in ("a", "a/x", "a-1", "a-2", "a0", "b/c", "b/d/e", "b0", "c.txt", "m/n/f"):
        await store.write_bytes(name, b"x")
    top = ["a", "a-1", "a-2", "a0", "b", "b0", "c.txt", "m"]
    assert await store.glob("*") == [f"{store.root}/{n}" for n in top]
    assert await store.listdir(".") == top
    walked = [(d[len(store.root) :], ds, fs) async for d, ds, fs in store.walk(".")]
    assert walked[0] == ("", ["a", "b", "m"], ["a-1", "a-2", "a0", "b0", "c.txt"])


NAMES = ["with space.txt", "ünïcødé-日本.txt", "plus+sign", "per%20cent", "eq=and?q", "a&b#c"]


async def test_names_round_trip(store: GCSStore) -> None:
    for i, name in enumerate(NAMES):
        await store.write_bytes(f"odd/{name}", name.encode())
        assert await store.read_bytes(f"odd/{name}") == name.encode()
        assert (await store.stat(f"odd/{name}")).size == len(name.encode()), i
    assert await store.listdir("odd") == sorted(NAMES)
    await store.makedirs("odd/dir with space+%")
    assert await store.isdir("odd/dir with space+%")
    await store.copyfile(f"odd/{NAMES[0]}", f"odd/dir with space+%/{NAMES[1]}")
    await store.rename("odd/dir with space+%", "odd/renamed ü+%")
    assert await store.listdir("odd/renamed ü+%") == [NAMES[1]]
    assert await store.read_bytes(f"odd/renamed ü+%/{NAMES[1]}") == NAMES[0].encode()
    await store.rmtree("odd")
    assert await store.listdir(".") == []


# ----------------------------------------------------------------- failures


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_endpoint_raises_store_connection_error() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    async with GCSStore("gs://bucket/p", endpoint_url=endpoint, retries=1) as s:
        with pytest.raises(StoreConnectionError, match="cannot reach") as info:
            await s.exists("a")
        assert isinstance(info.value, ConnectionError)
        with pytest.raises(StoreConnectionError):
            await s.write_bytes("a", b"x")
        with pytest.raises(StoreConnectionError):
            await s.read_bytes("a")


async def test_missing_bucket_is_named(fake_gcs_server: FakeGCSServer) -> None:
    async with GCSStore("gs://no-such-bucket/p", **fake_gcs_server.store_options()) as s:
        with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
            await s.listdir(".")
        with pytest.raises(FileNotFoundError, match="no-such-bucket"):
            await s.write_bytes("f", b"x")


def test_secrets_stay_out_of_reprs() -> None:
    s = GCSStore("gs://bucket/p", token="ya29.sekrit-token", project="proj")
    for text in (repr(s), str(s), repr(s.config), str(s.config), repr(s._settings)):
        assert "sekrit" not in text


async def test_credentials_in_the_endpoint_url_stay_hidden() -> None:
    endpoint = f"http://user:pw-sekrit@127.0.0.1:{_closed_port()}"
    async with GCSStore("gs://bucket/p", endpoint_url=endpoint, retries=0) as s:
        assert "sekrit" not in repr(s)
        with pytest.raises(StoreConnectionError) as info:
            await s.exists("a")
        assert "127.0.0.1" in str(info.value)
        assert "sekrit" not in "".join(traceback.format_exception(info.value))


# ----------------------------------------------------------------- event loops and config


def test_two_asyncio_runs_on_one_store(gcs_root: str, fake_gcs_server: FakeGCSServer) -> None:
    s = _store(gcs_root, fake_gcs_server)

    async def first() -> None:
        await s.write_bytes("loops/a.txt", b"first loop")

    async def second() -> bytes:
        await s.write_bytes("loops/b.txt", b"second loop")
        return await s.read_bytes("loops/a.txt")

    asyncio.run(first())
    assert asyncio.run(second()) == b"first loop"
    asyncio.run(s.aclose())


async def test_no_blocking_calls_on_the_event_loop(store: GCSStore) -> None:
    with blockbuster_ctx():
        await store.write_bytes("bb/small.txt", b"x")
        await store.write_bytes("bb/large.bin", _payload(2 * CHUNK + 1))
        assert await store.read_bytes("bb/large.bin") == _payload(2 * CHUNK + 1)
        assert await store.listdir("bb") == ["large.bin", "small.txt"]
        await store.copyfile("bb/small.txt", "bb/copy.txt")
        await store.rmtree("bb")


async def test_open_store_and_aliases(gcs_root: str, fake_gcs_server: FakeGCSServer) -> None:
    s = artifactio.open_store(gcs_root, **fake_gcs_server.store_options())
    assert isinstance(s, GCSStore)
    alias = artifactio.open_store(
        gcs_root.replace("gs://", "gcs://"), **fake_gcs_server.store_options()
    )
    async with s, alias:
        await alias.write_bytes("via-alias.txt", b"a")
        assert await s.read_bytes("via-alias.txt") == b"a"
        assert alias.root == gcs_root
        assert await alias.glob("*.txt") == [f"{gcs_root}/via-alias.txt"]


async def test_storage_emulator_host(
    gcs_root: str, fake_gcs_server: FakeGCSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_server.url.removeprefix("http://"))
    async with GCSStore(gcs_root) as s:
        assert s.endpoint == fake_gcs_server.url
        await s.write_bytes("env.txt", b"from the environment")
        assert await s.read_bytes("env.txt") == b"from the environment"


def test_part_size_must_be_a_multiple_of_256k() -> None:
    with pytest.raises(ValueError, match="256 KiB"):
        GCSStore("gs://bucket", part_size=CHUNK + 1)


# ------------------------------------------------- closing with requests in flight


class TestClosing(ClosingTests):
    @pytest.fixture
    def closing(self, gcs_root: str, fake_gcs_server: FakeGCSServer) -> ClosingBackend:
        return ClosingBackend(
            root=gcs_root,
            url=fake_gcs_server.url,
            new_store=lambda **options: _store(gcs_root, fake_gcs_server, **options),
            read_size=CHUNK - 100,  # one ranged GET
            part_size=CHUNK,
            stall_after=32 * 1024,
        )
