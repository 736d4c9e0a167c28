"""The S3 backend against a real SeaweedFS server (started once per session).

The conformance suite runs through the async API and the sync facade, once with
the lean request path (the default) and once with every request through
aiobotocore; the tests below it cover what only S3 has: multipart uploads and
their abort, pinned ranged reads, keys with special characters, server-side
copies in parts, credentials, an unreachable endpoint, and clients that live on
several event loops. Directories (markers, listings, rename, rmtree) are in
test_s3_dirs.py.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import io
import os
import random
import socket
import threading
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

import artifactio
from _closing import ClosingBackend, ClosingTests
from _s3_fixtures import BUCKET, PART, keys_below, pending_uploads
from artifactio.backends import _objectstore
from artifactio.backends._s3_errors import map_error
from artifactio.backends.s3 import S3Client, S3Store
from artifactio.testing import Capabilities, ConformanceSuite, StoreFactory

if TYPE_CHECKING:
    from artifactio.embedded import SeaweedFS

pytestmark = pytest.mark.s3

MiB = 1024 * 1024


class TestS3Conformance(ConformanceSuite):
    """Every row of docs/semantics.md on ``s3://`` (small parts: 5 MiB, S3's minimum)."""

    @pytest.fixture
    def async_store_factory(self, s3_root: str, s3_options: dict[str, Any]) -> StoreFactory:
        return StoreFactory(
            lambda: S3Store(s3_root, part_size=PART, **s3_options),
            Capabilities(object_store=True),
        )


class BotocoreS3Store(S3Store):
    """An S3 store whose every request goes through aiobotocore (no lean path)."""

    lean_requests = False


class TestS3ConformanceBotocorePath(ConformanceSuite):
    """The same rows with the lean request path off: both paths keep every row."""

    @pytest.fixture
    def async_store_factory(self, s3_root: str, s3_options: dict[str, Any]) -> StoreFactory:
        return StoreFactory(
            lambda: BotocoreS3Store(s3_root, part_size=PART, **s3_options),
            Capabilities(object_store=True),
        )


# ----------------------------------------------------------------- writing


async def test_multipart_write_reads_back_identical(s3_store: S3Store, raw_s3: Any) -> None:
    data = random.Random(1).randbytes(2 * PART + 1234)  # three parts
    async with s3_store.open("big.bin", "wb") as f:
        for i in range(0, len(data), 1 << 20):
            await f.write(data[i : i + (1 << 20)])
    st = await s3_store.stat("big.bin")
    assert st.size == len(data)
    assert st.etag is not None
    assert st.etag.endswith("-3"), "expected a three-part multipart upload"
    assert await s3_store.read_bytes("big.bin") == data
    assert pending_uploads(raw_s3, s3_store.root) == []


async def test_small_write_is_one_put(s3_store: S3Store) -> None:
    await s3_store.write_bytes("small.bin", b"x" * 1000)
    st = await s3_store.stat("small.bin")
    assert st.etag is not None
    assert "-" not in st.etag  # not a multipart ETag


async def test_write_of_exactly_one_part(s3_store: S3Store) -> None:
    data = os.urandom(PART)
    await s3_store.write_bytes("one.bin", data)
    assert await s3_store.read_bytes("one.bin") == data


async def test_exception_aborts_multipart_write(s3_store: S3Store, raw_s3: Any) -> None:
    pending: list[list[str]] = []

    async def crash(name: str) -> None:
        async with s3_store.open(name, "wb") as f:
            await f.write(os.urandom(2 * PART + 1))  # two parts sent already
            pending.append(pending_uploads(raw_s3, s3_store.root))
            raise RuntimeError("crash")

    await s3_store.write_bytes("kept.bin", b"old content")
    with pytest.raises(RuntimeError, match="crash"):
        await crash("kept.bin")
    assert pending == [["kept.bin"]]
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert await s3_store.read_bytes("kept.bin") == b"old content"
    with pytest.raises(RuntimeError, match="crash"):
        await crash("new.bin")
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("new.bin")
    assert sorted(keys_below(raw_s3, s3_store.root)) == ["kept.bin"]


async def test_cancellation_aborts_multipart_write(s3_store: S3Store, raw_s3: Any) -> None:
    started = anyio.Event()

    async def writer() -> None:
        async with s3_store.open("cancelled.bin", "wb") as f:
            await f.write(os.urandom(2 * PART + 1))
            started.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await started.wait()
        assert pending_uploads(raw_s3, s3_store.root) == ["cancelled.bin"]
        tg.cancel_scope.cancel()
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("cancelled.bin")


async def test_cancellation_while_the_upload_is_being_created(
    s3_store: S3Store, raw_s3: Any
) -> None:
    client = await s3_store._client()
    assert isinstance(client, S3Client)
    real = client.s3.create_multipart_upload
    made = anyio.Event()

    async def slow_answer(**kwargs: Any) -> Any:
        answer = await real(**kwargs)  # the server has made the upload ...
        made.set()
        await anyio.sleep(0.2)  # ... but its id reaches the writer only later
        return answer

    client.s3.create_multipart_upload = slow_answer

    async def writer() -> None:
        async with s3_store.open("racing.bin", "wb") as f:
            await f.write(os.urandom(2 * PART + 1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await made.wait()
        tg.cancel_scope.cancel()
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("racing.bin")


async def test_cancellation_at_any_moment_leaves_nothing(s3_store: S3Store, raw_s3: Any) -> None:
    for delay in (0.01, 0.03, 0.06, 0.1, 0.2):
        with anyio.move_on_after(delay):
            async with s3_store.open("racing.bin", "wb") as f:
                for _ in range(8):
                    await f.write(os.urandom(PART))
        assert pending_uploads(raw_s3, s3_store.root) == [], f"left after a cancel at {delay} s"
        if await s3_store.exists("racing.bin"):  # the write finished in time
            await s3_store.remove("racing.bin")


async def test_writer_dropped_without_close_warns_and_aborts(
    s3_store: S3Store, raw_s3: Any
) -> None:
    files = [await s3_store.open("dropped.bin", "wb")]
    await files[0].write(os.urandom(2 * PART + 1))  # a multipart upload with parts sent
    assert pending_uploads(raw_s3, s3_store.root) == ["dropped.bin"]
    with pytest.warns(ResourceWarning, match="dropped.bin"):
        files.clear()  # the last reference: the writer is finalised at once
    await asyncio.sleep(0)  # the abort is scheduled on this loop
    await asyncio.gather(*_objectstore._DROPPED)
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("dropped.bin")


async def test_exclusive_multipart_write_loses_race(s3_store: S3Store, raw_s3: Any) -> None:
    f = await s3_store.open("race.bin", "xb")
    await f.write(os.urandom(2 * PART + 1))
    await s3_store.write_bytes("race.bin", b"the winner")
    with pytest.raises(FileExistsError):
        await f.close()
    assert await s3_store.read_bytes("race.bin") == b"the winner"
    assert pending_uploads(raw_s3, s3_store.root) == []


# ----------------------------------------------------------------- reading


@pytest.fixture
async def blob(s3_store: S3Store) -> bytes:
    data = random.Random(7).randbytes(2 * PART + 777)
    await s3_store.write_bytes("blob.bin", data)
    return data


async def test_ranged_reads_and_seeks(s3_store: S3Store, blob: bytes) -> None:
    rng = random.Random(3)
    async with s3_store.open("blob.bin", "rb") as f:
        assert await f.read(10) == blob[:10]
        for _ in range(25):
            pos = rng.randrange(len(blob))
            n = rng.choice([1, 100, PART - 3, PART + 5, 3 * PART])
            assert await f.seek(pos) == pos
            assert await f.read(n) == blob[pos : pos + n]
            assert await f.tell() == min(pos + n, len(blob))
        assert await f.seek(-100, io.SEEK_END) == len(blob) - 100
        assert await f.read() == blob[-100:]
        assert await f.read(1) == b""
        await f.seek(PART - 1)
        await f.seek(2, io.SEEK_CUR)
        assert await f.read(4) == blob[PART + 1 : PART + 5]


async def test_sequential_read_in_small_pieces(s3_store: S3Store, blob: bytes) -> None:
    pieces = []
    async with s3_store.open("blob.bin", "rb") as f:
        while chunk := await f.read(1 << 20):
            pieces.append(chunk)
    assert b"".join(pieces) == blob


async def test_whole_read_of_large_file(s3_store: S3Store, blob: bytes) -> None:
    async with s3_store.open("blob.bin", "rb") as f:
        await f.seek(3)
        assert await f.read() == blob[3:]


async def test_read_is_pinned_to_the_version_opened(s3_store: S3Store, blob: bytes) -> None:
    async with s3_store.open("blob.bin", "rb") as f:
        assert await f.read(10) == blob[:10]
        await s3_store.write_bytes("blob.bin", b"replaced")
        await f.seek(2 * PART)  # beyond the block fetched at open
        with pytest.raises(OSError) as info:
            await f.read(10)
    assert info.value.errno == errno.ESTALE
    assert "blob.bin" in str(info.value)


async def test_read_of_empty_file(s3_store: S3Store) -> None:
    await s3_store.write_bytes("empty", b"")
    assert await s3_store.read_bytes("empty") == b""
    async with s3_store.open("empty", "rb") as f:
        assert await f.read(10) == b""


# -------------------------------------------------------------------- keys


SPECIAL = ["with space.txt", "ünï/cødé.bin", "a+b.txt", "100%25.txt", "k=v.txt", "what?.txt"]


async def test_special_keys_are_stored_unchanged(s3_store: S3Store, raw_s3: Any) -> None:
    for name in SPECIAL:
        await s3_store.write_bytes(f"sp/{name}", name.encode())
    assert sorted(keys_below(raw_s3, s3_store.root)) == sorted(f"sp/{n}" for n in SPECIAL)
    for name in SPECIAL:
        assert await s3_store.read_bytes(f"sp/{name}") == name.encode()
    await s3_store.copyfile("sp/what?.txt", "sp/copy +%=?.txt")
    assert await s3_store.read_bytes("sp/copy +%=?.txt") == b"what?.txt"
    await s3_store.rename("sp", "moved")
    assert sorted(keys_below(raw_s3, s3_store.root)) == sorted(
        [f"moved/{n}" for n in SPECIAL] + ["moved/copy +%=?.txt"]
    )
    await s3_store.rmtree("moved")
    assert keys_below(raw_s3, s3_store.root) == []


# ------------------------------------------------------------------ copies


async def test_copy_of_large_file_in_parts(s3_store: S3Store) -> None:
    s3_store.multipart_copy_threshold = PART
    s3_store.copy_part_size = PART
    data = random.Random(5).randbytes(2 * PART + 99)
    await s3_store.write_bytes("orig.bin", data)
    await s3_store.copyfile("orig.bin", "copy.bin")
    assert await s3_store.read_bytes("copy.bin") == data
    await s3_store.rename("copy.bin", "moved.bin")  # a file's rename: one server-side copy
    assert await s3_store.read_bytes("moved.bin") == data
    await s3_store.makedirs("dir")
    await s3_store.copyfile("orig.bin", "dir/orig.bin")
    await s3_store.rename("dir", "dir2")  # a directory's rename: copies in parts (size known)
    assert await s3_store.read_bytes("dir2/orig.bin") == data


async def test_failed_part_copy_cancels_the_others_and_aborts(
    s3_store: S3Store, raw_s3: Any
) -> None:
    s3_store.copy_part_size = PART
    await s3_store.write_bytes("orig.bin", os.urandom(2 * PART + 1))  # three parts to copy
    client = await s3_store._client()
    assert isinstance(client, S3Client)
    real_part_copy = client.s3.upload_part_copy
    too_large = _client_error(
        "InvalidRequest", 400, "The specified copy source is larger than the maximum allowable size"
    )
    denied = _client_error("AccessDenied", 403)
    cancelled: list[int] = []

    async def copy_object(**kwargs: Any) -> Any:
        raise too_large  # what S3 answers for a source above 5 GiB: copyfile copies in parts

    async def upload_part_copy(**kwargs: Any) -> Any:
        number = kwargs["PartNumber"]
        if number == 1:
            await anyio.sleep(0.1)  # the other parts are on their way by then
            raise denied
        try:
            await anyio.sleep(30)  # a slow part
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        return await real_part_copy(**kwargs)

    client.s3.copy_object = copy_object
    client.s3.upload_part_copy = upload_part_copy
    with anyio.fail_after(10), pytest.raises(PermissionError, match=r"orig\.bin") as info:
        await s3_store.copyfile("orig.bin", "copy.bin")
    assert info.value.__cause__ is denied  # the part's own failure, not a group of them
    assert sorted(cancelled) == [2, 3]  # the slow parts did not outlive the copy
    assert pending_uploads(raw_s3, s3_store.root) == []
    assert not await s3_store.exists("copy.bin")


# ------------------------------------------------------------------ errors


async def test_wrong_secret_is_permission_error(s3_root: str, seaweedfs: SeaweedFS) -> None:
    options = seaweedfs.store_options(secret="not-the-secret", retries=0)
    async with S3Store(s3_root, **options) as bad:
        with pytest.raises(PermissionError) as info:
            await bad.read_bytes("anything")
        assert "not-the-secret" not in str(info.value)
        with pytest.raises(PermissionError):
            await bad.listdir(bad.root)
        with pytest.raises(PermissionError):
            await bad.write_bytes("x", b"1")
        with pytest.raises(PermissionError):
            await bad.exists("x")  # never reported as "missing"


async def test_unknown_access_key_is_permission_error(s3_root: str, seaweedfs: SeaweedFS) -> None:
    options = seaweedfs.store_options(key="nobody", retries=0)
    async with S3Store(s3_root, **options) as bad:
        with pytest.raises(PermissionError):
            await bad.stat("x")


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_endpoint_is_connection_error() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    async with S3Store(
        f"s3://{BUCKET}/x",
        endpoint_url=endpoint,
        key="k",
        secret="s",
        retries=0,
        connect_timeout=2,
        read_timeout=2,
    ) as store:
        for call in (store.exists("a"), store.read_bytes("a"), store.write_bytes("a", b"1")):
            with pytest.raises(artifactio.StoreConnectionError) as info:
                await call
            assert endpoint in str(info.value)
            assert isinstance(info.value, ConnectionError)


async def test_silent_endpoint_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel; nothing ever answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with S3Store(
            f"s3://{BUCKET}/x",
            endpoint_url=endpoint,
            key="k",
            secret="s",
            retries=0,
            read_timeout=0.5,
        ) as store:
            with pytest.raises(artifactio.StoreConnectionError, match="cannot reach"):
                await store.exists("a")


async def test_missing_bucket_is_named(seaweedfs: SeaweedFS) -> None:
    async with S3Store("s3://no-such-bucket-here/p", **seaweedfs.store_options()) as store:
        with pytest.raises(FileNotFoundError, match="no-such-bucket-here"):
            await store.listdir(store.root)


def test_secrets_never_shown(seaweedfs: SeaweedFS) -> None:
    store = S3Store(f"s3://{BUCKET}/p", **seaweedfs.store_options(token="tok-en"))
    for text in (repr(store), str(store), repr(store.config), str(store.config)):
        assert seaweedfs.secret_key not in text
        assert "tok-en" not in text


def test_key_without_secret_is_rejected() -> None:
    with pytest.raises(ValueError, match="both key and secret"):
        S3Store("s3://bucket/p", key="k")


def test_root_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="bucket"):
        S3Store("s3://")


def test_open_store_picks_s3(seaweedfs: SeaweedFS) -> None:
    store = artifactio.open_store(f"s3://{BUCKET}/p", **seaweedfs.store_options())
    assert isinstance(store, S3Store)
    assert store.part_size == 8 * MiB


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert S3Store("s3://b/p").endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2")
    assert S3Store("s3://b/p").endpoint_url == "http://127.0.0.1:2"
    assert S3Store("s3://b/p", endpoint_url="http://127.0.0.1:3").endpoint_url == (
        "http://127.0.0.1:3"
    )


def _client_error(code: str, status: int, message: str = "msg") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("NoSuchKey", 404), FileNotFoundError),
        (_client_error("404", 404, "Not Found"), FileNotFoundError),
        (_client_error("NoSuchBucket", 404), FileNotFoundError),
        (_client_error("AccessDenied", 403), PermissionError),
        (_client_error("InvalidAccessKeyId", 403), PermissionError),
        (_client_error("SignatureDoesNotMatch", 403), PermissionError),
        (_client_error("403", 403, "Forbidden"), PermissionError),
        (_client_error("PreconditionFailed", 412), FileExistsError),
        (_client_error("InternalError", 500), OSError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ConnectionError),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), ConnectionError),
    ],
)
def test_error_mapping(exc: Exception, expected: type[OSError]) -> None:
    mapped = map_error(exc, "read", "bkt", "a/key", "http://127.0.0.1:9")
    assert type(mapped) is expected or (
        expected is ConnectionError and isinstance(mapped, artifactio.StoreConnectionError)
    )
    assert "a/key" in str(mapped)
    assert "read" in str(mapped)
    if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "NoSuchBucket":
        assert "bucket 'bkt' does not exist" in str(mapped)


# ------------------------------------------------------------ event loops


def test_store_used_from_two_asyncio_runs(s3_root: str, s3_options: dict[str, Any]) -> None:
    store = S3Store(s3_root, **s3_options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(store.write_bytes("a.txt", b"first loop"))
        assert asyncio.run(store.read_bytes("a.txt")) == b"first loop"
        asyncio.run(store.aclose())
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


def test_store_used_from_two_loops_at_once(s3_root: str, s3_options: dict[str, Any]) -> None:
    store = S3Store(s3_root, **s3_options)
    ready = threading.Barrier(2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def other_loop() -> None:
        async def main() -> None:
            await store.write_bytes("other.txt", b"other loop")
            ready.wait()
            while not stop.is_set():
                await asyncio.sleep(0.01)

        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    async def here() -> None:
        await store.write_bytes("here.txt", b"this loop")
        ready.wait()
        assert await store.read_bytes("other.txt") == b"other loop"
        await store.aclose()  # closes the other loop's client too, in that loop
        stop.set()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=other_loop)
        thread.start()
        try:
            asyncio.run(here())
        finally:
            stop.set()
            thread.join()
        gc.collect()
    assert errors == []
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], [str(w.message) for w in leaks]


async def test_aclose_closes_clients(s3_root: str, s3_options: dict[str, Any]) -> None:
    store = S3Store(s3_root, **s3_options)
    await store.write_bytes("a.txt", b"1")
    client = await store._client()
    assert isinstance(client, S3Client)
    session = client.s3._endpoint.http_session
    assert session._sessions  # a live aiohttp session
    await store.aclose()
    assert not session._sessions
    with pytest.raises(artifactio.StoreClosedError):
        await store.exists("a.txt")
    await store.aclose()  # twice is fine


def test_client_closed_when_its_loop_ends(s3_root: str, s3_options: dict[str, Any]) -> None:
    store = S3Store(s3_root, **s3_options)

    async def use() -> Any:
        await store.exists("a")
        client = await store._client()
        assert isinstance(client, S3Client)
        return client.s3._endpoint.http_session

    session = asyncio.run(use())  # the store is not closed, its loop is gone
    assert not session._sessions
    asyncio.run(store.aclose())


# ------------------------------------------------- closing with requests in flight


class TestClosing(ClosingTests):
    @pytest.fixture
    def closing(
        self, s3_root: str, s3_options: dict[str, Any], seaweedfs: SeaweedFS
    ) -> ClosingBackend:
        def new_store(**options: Any) -> S3Store:
            return S3Store(s3_root, **{"part_size": PART, **s3_options, **options})

        return ClosingBackend(
            root=s3_root,
            url=seaweedfs.endpoint_url,
            new_store=new_store,
            read_size=MiB,
            part_size=PART,
            stall_after=64 * 1024,
        )


# ---------------------------------------------------------------- launcher


def test_launcher_cleans_up_after_a_failed_start(seaweedfs: SeaweedFS) -> None:
    from artifactio.embedded import SeaweedFS as Launcher

    server = Launcher(buckets=["x"])  # too short a name: bucket creation fails
    with pytest.raises(ClientError, match="InvalidBucketName"):
        server.start()
    assert server.pid is None
    assert server._workdir is None
    for port in server.ports.values():
        assert not os.path.exists(f"/tmp/seaweedfs-s3-{port}.sock")
    assert seaweedfs.pid is not None  # the session's server is another process


async def test_parts_sent_are_freed_without_waiting_for_the_cycle_collector(
    s3_store: S3Store,
) -> None:
    # Big byte strings never trigger a collection of cycles: a part kept alive by a
    # reference cycle stays until something else does, and memory grows with the file.
    gc.collect()
    gc.disable()
    try:
        async with s3_store.open("big.bin", "wb") as f:
            for _ in range(4):
                await f.write(os.urandom(3 * MiB))
        alive = [o for o in gc.get_objects() if isinstance(o, _objectstore._client.SendBody)]
    finally:
        gc.enable()
    assert alive == []
    assert (await s3_store.stat("big.bin")).size == 12 * MiB
