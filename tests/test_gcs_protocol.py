"""The GCS protocol: what goes over the wire (``userProject``, batched deletes), and the wire rules.

A recording relay in front of fake-gcs-server sees every request, since the fake
ignores ``userProject``; the wire rules (error mapping, retries, CRC32C, the batch
codec) are checked without I/O.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from typing import TYPE_CHECKING

import aiohttp
import google_crc32c
import pytest

from _gcs_fixtures import (
    CHUNK,
    RecordingRelay,
    Seen,
    _Boom,
    _fail_while_writing,
    _payload,
    recording_relay,  # noqa: F401 - fixtures
)
from artifactio import IntegrityError, StoreConnectionError
from artifactio.backends import _gcs_transport
from artifactio.backends._gcs_checksum import crc32c_combine
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

if TYPE_CHECKING:
    from collections.abc import Callable


pytestmark = pytest.mark.gcs


# ----------------------------------------------- on the wire: userProject, batches


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
