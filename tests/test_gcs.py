"""The GCS backend against fake-gcs-server: the conformance suite, then what only GCS does.

The fake keeps everything in memory and listens on 127.0.0.1; every test gets a
fresh prefix in one bucket (see ``_gcs_fixtures.py``). What the fake does not
check is observed on the wire: a recording relay in front of it sees every
request (``userProject``, ``Authorization``, batches), and a local token
endpoint refuses or fails as a test tells it to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import traceback
import urllib.parse
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import google_crc32c
import pytest
from blockbuster import blockbuster_ctx

import artifactio
from _closing import ClosingBackend, ClosingTests
from _gcs_fixtures import RecordingRelay, Seen, TokenEndpoint, service_account_key
from artifactio import IntegrityError, StoreConnectionError
from artifactio.backends import _gcs_client, _gcs_transport, _gcs_upload, _objectstore
from artifactio.backends._gcs_checksum import crc32c, crc32c_combine
from artifactio.backends._gcs_protocol import (
    BatchFailure,
    TokenError,
    batch_delete_body,
    map_error,
    parse_batch_response,
    retry_delay,
    should_retry,
)
from artifactio.backends.gcs import GCSStore
from artifactio.testing import Capabilities, ConformanceSuite, StoreFactory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer

pytestmark = pytest.mark.gcs

CHUNK = 256 * 1024


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


def _payload(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + i * 7) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


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


class _Boom(Exception):
    pass


async def _fail_while_writing(store: GCSStore, path: str, data: bytes) -> None:
    async with store.open(path, "wb") as f:
        await f.write(data)
        raise _Boom


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


# ----------------------------------------------- on the wire: userProject, batches


@pytest.fixture
async def recording(fake_gcs_server: FakeGCSServer) -> AsyncIterator[RecordingRelay]:
    async with RecordingRelay(fake_gcs_server.url) as r:
        yield r


def _kind(seen: Seen) -> str:
    """What a request to GCS was for."""
    if "upload_id" in seen.query:
        return f"session {seen.method}"
    if seen.path == "/batch/storage/v1":
        return "batch"
    if seen.path.startswith("/upload/"):
        return f"upload {seen.query.get('uploadType')}"
    if "/rewriteTo/" in seen.path:
        return "copy"
    if seen.path.endswith("/o"):
        return "list"
    if seen.method == "GET":
        return f"get {seen.query.get('alt')}"
    return seen.method.lower()


EVERY_KIND = {
    "get json", "get media", "list", "upload multipart", "upload resumable",
    "session PUT", "session DELETE", "copy", "delete", "batch",
}  # fmt: skip


async def _every_kind_of_request(store: GCSStore) -> None:
    """Make at least one request of each kind the backend makes (:data:`EVERY_KIND`)."""
    await store.write_bytes("small.txt", b"small")  # one multipart upload
    big = _payload(2 * CHUNK + 1)
    await store.write_bytes("big.bin", big)  # a resumable session and its chunks
    with pytest.raises(_Boom):
        await _fail_while_writing(store, "aborted.bin", big)  # the session is cancelled
    assert await store.read_bytes("big.bin") == big  # ranged GETs
    with pytest.raises(NotADirectoryError):
        await store.listdir("small.txt")  # a listing, then the file's metadata
    await store.copyfile("small.txt", "dir/copy.txt")  # a rewrite
    await store.write_bytes("dir/other.txt", b"other")
    await store.remove("big.bin")  # one delete
    await store.rmtree("dir")  # a batch of deletes


def _url_target(url: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.unquote(parts.path), sorted(urllib.parse.parse_qsl(parts.query))


@pytest.mark.parametrize("project", ["billing-project", None])
async def test_project_is_billed_on_every_request(
    gcs_root: str, recording: RecordingRelay, project: str | None
) -> None:
    """``userProject`` on every JSON API request and batched call, only with ``project``."""
    options = {"endpoint_url": recording.url, "part_size": CHUNK, "project": project}
    async with GCSStore(gcs_root, **options) as s:
        await _every_kind_of_request(s)
    assert {_kind(seen) for seen in recording.seen} == EVERY_KIND
    billed = [project] if project else []
    sessions = [_url_target(url) for url in recording.locations]
    for seen in recording.seen:
        kind = _kind(seen)
        if kind.startswith("session"):
            # The URL GCS answered the billed POST with, as is: the session carries it.
            assert (seen.path, sorted(seen.query.items())) in sessions
        elif kind == "batch":
            assert "userProject" not in seen.query  # the envelope: each call in it is billed
            calls = seen.inner_requests()
            assert calls
            for method, target in calls:
                assert method == "DELETE"
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
                assert query.get("userProject", []) == billed, target
        else:
            assert seen.query.getall("userProject", []) == billed, (kind, seen.path)
    if not project:
        assert all(b"userProject" not in seen.body for seen in recording.seen)


def _fail_batched_deletes(name: str, times: int) -> Callable[[Seen, bytes], bytes]:
    """A relay rewrite: the batched delete of ``name`` answers 503, ``times`` times."""
    left = [times]

    def rewrite(seen: Seen, answer: bytes) -> bytes:
        if _kind(seen) != "batch" or not left[0]:
            return answer
        for i, (_, target) in enumerate(seen.inner_requests()):
            if urllib.parse.unquote(target.partition("?")[0]).endswith(name):
                left[0] -= 1
                status = rb"(<response-item%d>.*?)HTTP/1\.1 \d{3} [^\r\n]*" % i
                unavailable = rb"\1HTTP/1.1 503 Service Unavailable"
                return re.sub(status, unavailable, answer, count=1, flags=re.DOTALL)
        return answer

    return rewrite


async def test_batched_deletes_that_fail_are_retried_alone(
    gcs_root: str, recording: RecordingRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_gcs_transport, "retry_delay", lambda attempt: 0.0)

    def batches() -> list[int]:
        return [len(seen.inner_requests()) for seen in recording.seen if _kind(seen) == "batch"]

    async with GCSStore(gcs_root, endpoint_url=recording.url, retries=1) as s:
        for i in range(3):
            await s.write_bytes(f"d/{i}.txt", b"x")
        recording.rewrite = _fail_batched_deletes("d/1.txt", times=1)
        await s.rmtree("d")
        assert not await s.exists("d")
        assert batches() == [3, 1]  # the failed call again, alone
        for i in range(3):
            await s.write_bytes(f"d/{i}.txt", b"x")
        recording.seen.clear()
        recording.rewrite = _fail_batched_deletes("d/1.txt", times=2)
        with pytest.raises(OSError, match=r"HTTP 503 \(batch delete, 1 still failing\)") as info:
            await s.rmtree("d")
        assert batches() == [3, 1]  # the first try and the one retry allowed
    assert type(info.value) is OSError
    assert info.value.filename == f"{gcs_root}/d/1.txt"


# ----------------------------------------------------------------- credentials


@pytest.fixture
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    async with TokenEndpoint() as endpoint:
        yield endpoint


def _key_file(tmp_path: Path, key: dict[str, Any] | str, name: str = "key.json") -> str:
    path = tmp_path / name
    path.write_text(key if isinstance(key, str) else json.dumps(key))
    return str(path)


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


async def test_token_option_and_emulator_credentials_on_the_wire(
    gcs_root: str, recording: RecordingRelay
) -> None:
    async with GCSStore(gcs_root, endpoint_url=recording.url, token="ya29.given") as s:
        await s.write_bytes("a.txt", b"a")
        assert await s.read_bytes("a.txt") == b"a"
    assert recording.seen
    assert {seen.headers.get("Authorization") for seen in recording.seen} == {"Bearer ya29.given"}
    recording.seen.clear()
    async with GCSStore(gcs_root, endpoint_url=recording.url) as s:  # an emulator: none
        assert await s.read_bytes("a.txt") == b"a"
    assert recording.seen
    assert all("Authorization" not in seen.headers for seen in recording.seen)


async def test_key_file_token_is_fetched_once_for_many_requests(
    gcs_root: str, recording: RecordingRelay, token_endpoint: TokenEndpoint, tmp_path: Path
) -> None:
    token_endpoint.answers(200, {"access_token": "ya29.from-key", "expires_in": 3600})
    key = _key_file(tmp_path, service_account_key(token_endpoint.url))
    async with GCSStore(gcs_root, endpoint_url=recording.url, service_file=key) as s:
        await asyncio.gather(*(s.write_bytes(f"f{i}.txt", b"x") for i in range(16)))
        assert len(await s.listdir(".")) == 16
    assert token_endpoint.hits == 1
    assert token_endpoint.grants == [JWT_BEARER]
    assert {seen.headers.get("Authorization") for seen in recording.seen} == {
        "Bearer ya29.from-key"
    }


REFUSALS = [
    pytest.param(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                 id="400-invalid_grant"),
    pytest.param(401, {"error": "unauthorized_client"}, id="401"),
    pytest.param(403, {"error": "access_denied"}, id="403"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "answer"), REFUSALS)
async def test_refused_credentials_fail_at_once(
    gcs_root: str,
    recording: RecordingRelay,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    status: int,
    answer: dict[str, Any],
) -> None:
    token_endpoint.answers(status, answer)
    key = _key_file(tmp_path, service_account_key(token_endpoint.url))
    async with GCSStore(gcs_root, endpoint_url=recording.url, service_file=key, retries=5) as s:
        waiting = await asyncio.gather(
            *(s.exists(f"f{i}") for i in range(8)), return_exceptions=True
        )
        assert token_endpoint.hits == 1  # eight requests waited for one refusal
        with pytest.raises(PermissionError) as info:
            await s.read_bytes("model.bin")
    assert token_endpoint.hits == 2  # never repeated: 5 retries were allowed
    assert token_endpoint.grants == [JWT_BEARER] * 2
    assert all(isinstance(result, PermissionError) for result in waiting), waiting
    assert recording.seen == []  # GCS was never asked without a token
    message = str(info.value)
    assert info.value.filename == f"{gcs_root}/model.bin"
    assert message.startswith("[Errno 13] open: ")  # the user's operation (read_bytes opens)
    assert key in message
    assert f"HTTP {status}" in message
    assert str(answer["error"]) in message
    assert _private_key_marker() not in "".join(traceback.format_exception(info.value))


def _private_key_marker() -> str:
    """A line of the test key's PEM body, to look for in messages."""
    return str(service_account_key("x")["private_key"]).splitlines()[5]


async def test_failing_token_endpoint_is_retried_as_configured(
    gcs_root: str,
    recording: RecordingRelay,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_gcs_transport, "retry_delay", lambda attempt: 0.0)
    token_endpoint.answers(503, {"error": "backendError"})
    key = _key_file(tmp_path, service_account_key(token_endpoint.url))
    async with GCSStore(gcs_root, endpoint_url=recording.url, service_file=key, retries=2) as s:
        with pytest.raises(StoreConnectionError, match="HTTP 503") as info:
            await s.exists("a")
        assert token_endpoint.hits == 3  # the first try and 2 retries
        token_endpoint.answers(200, {"access_token": "ya29.later", "expires_in": 3600})
        assert not await s.exists("a")
    assert isinstance(info.value.__cause__, TokenError)
    assert token_endpoint.hits == 4
    assert recording.seen
    assert all(seen.headers["Authorization"] == "Bearer ya29.later" for seen in recording.seen)


UNUSABLE_KEYS = [
    pytest.param("{ sekrit-not-json", "is not valid JSON at line 1 column 3", id="not-json"),
    pytest.param('["sekrit"]', 'is not a credentials file \\(no "type"\\)', id="no-type"),
    pytest.param({"type": "no_such_kind"}, "unsupported type .no_such_kind.", id="unknown-type"),
    pytest.param({"type": "service_account", "private_key": "sekrit"},
                 "without client_email", id="no-email"),
    pytest.param({"type": "service_account", "client_email": "a@b", "private_key": "sekrit"},
                 "private_key that is not a PEM private key", id="bad-private-key"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "problem"), UNUSABLE_KEYS)
async def test_unusable_key_files_are_named_without_their_content(
    fake_gcs_server: FakeGCSServer,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    content: dict[str, Any] | str,
    problem: str,
) -> None:
    if isinstance(content, dict):
        content = {**content, "token_uri": token_endpoint.url}
    key = _key_file(tmp_path, content, name="broken-key.json")
    async with GCSStore("gs://bucket/p", endpoint_url=fake_gcs_server.url, service_file=key) as s:
        with pytest.raises(PermissionError, match=problem) as info:
            await s.exists("a")
    assert f"service_file {key!r}" in str(info.value)
    assert "sekrit" not in "".join(traceback.format_exception(info.value))
    assert token_endpoint.hits == 0


async def test_missing_key_file_and_token_option_json(
    fake_gcs_server: FakeGCSServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "missing-key.json")
    async with GCSStore("gs://bucket/p", service_file=missing) as s:
        with pytest.raises(PermissionError, match=r"missing-key\.json.*cannot be read"):
            await s.exists("a")
    options = {"endpoint_url": fake_gcs_server.url, "token": '{"private_key": "sekrit"'}
    async with GCSStore("gs://bucket/p", **options) as s:
        with pytest.raises(PermissionError, match="the token option is not valid JSON") as info:
            await s.exists("a")
        assert "sekrit" not in "".join(traceback.format_exception(info.value))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", missing)
    async with GCSStore("gs://bucket/p") as s:
        with pytest.raises(PermissionError, match="GOOGLE_APPLICATION_CREDENTIALS"):
            await s.exists("a")


# ----------------------------------------------------------------- wire rules (no I/O)


def test_error_mapping() -> None:
    def status(code: int, message: str = "Reason: body") -> aiohttp.ClientResponseError:
        return aiohttp.ClientResponseError(None, (), status=code, message=message)  # type: ignore[arg-type]

    path = "gs://b/k"
    endpoint = "http://127.0.0.1:1"
    cases = [
        (404, FileNotFoundError),
        (401, PermissionError),
        (403, PermissionError),
        (412, FileExistsError),
        (500, OSError),
    ]
    for code, cls in cases:
        mapped = map_error(status(code), "stat", path, endpoint=endpoint)
        assert type(mapped) is cls, code
        assert isinstance(mapped, OSError)
        assert mapped.filename == path
        assert "stat" in str(mapped)
    crc = map_error(status(400, "Bad Request: Provided CRC32C does not match"), "w", path,
                    endpoint=endpoint)  # fmt: skip
    assert isinstance(crc, IntegrityError)
    gone = map_error(aiohttp.ServerDisconnectedError(), "read", path, endpoint=endpoint)
    assert isinstance(gone, StoreConnectionError)
    assert isinstance(map_error(asyncio.TimeoutError(), "read", path, endpoint=endpoint),
                      StoreConnectionError)  # fmt: skip
    plain = ValueError("x")
    assert map_error(plain, "read", path, endpoint=endpoint) is plain
    refused = map_error(TokenError("key refused", transient=False), "read", path,
                        endpoint=endpoint)  # fmt: skip
    assert type(refused) is PermissionError
    assert refused.filename == path
    assert "key refused" in str(refused)
    failing = map_error(TokenError("HTTP 503", transient=True), "read", path, endpoint=endpoint)
    assert isinstance(failing, StoreConnectionError)
    batch = map_error(BatchFailure(503, "gs://b/other", 2), "delete", path, endpoint=endpoint)
    assert type(batch) is OSError
    assert batch.filename == "gs://b/other"


def test_retry_policy() -> None:
    def status(code: int) -> aiohttp.ClientResponseError:
        return aiohttp.ClientResponseError(None, (), status=code)  # type: ignore[arg-type]

    assert should_retry(status(429))
    assert should_retry(status(503))
    assert should_retry(aiohttp.ServerDisconnectedError())
    assert should_retry(asyncio.TimeoutError())
    assert not should_retry(status(404))
    assert not should_retry(status(412))
    assert not should_retry(ValueError())
    assert should_retry(TokenError("x", transient=True))
    assert not should_retry(TokenError("x", transient=False))
    assert should_retry(BatchFailure(503, "gs://b/k", 1))
    assert retry_delay(0, rand=lambda: 1.0) == pytest.approx(0.1)
    assert retry_delay(3, rand=lambda: 1.0) == pytest.approx(0.8)
    assert retry_delay(30, rand=lambda: 1.0) == pytest.approx(10.0)  # capped
    assert retry_delay(5, rand=lambda: 0.0) == 0.0
    assert all(0 <= retry_delay(4) <= 1.6 for _ in range(100))


def test_crc32c_combine_matches_google_crc32c() -> None:
    for a_len, b_len in [(0, 5), (5, 0), (1, 1), (1000, 4096), (CHUNK, 3 * CHUNK + 7)]:
        a, b = _payload(a_len, seed=a_len), _payload(b_len, seed=b_len + 1)
        combined = crc32c_combine(google_crc32c.value(a), google_crc32c.value(b), len(b))
        assert combined == google_crc32c.value(a + b), (a_len, b_len)


def test_batch_codec() -> None:
    body = batch_delete_body(["/storage/v1/b/b/o/a%2Fb", "/storage/v1/b/b/o/c"], "BOUNDARY")
    assert body.count(b"DELETE /storage/v1/b/b/o/") == 2
    assert body.endswith(b"--BOUNDARY--\r\n")
    answer = (
        b"--R\r\nContent-Type: application/http\r\nContent-ID: <response-item1>\r\n\r\n"
        b"HTTP/1.1 404 Not Found\r\n\r\n{}\r\n"
        b"--R\r\nContent-Type: application/http\r\nContent-ID: <response-item0>\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n\r\n--R--\r\n"
    )
    assert parse_batch_response("multipart/mixed; boundary=R", answer) == {0: 204, 1: 404}


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
