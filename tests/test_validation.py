"""What is checked when a store is made, and how object-store failures are named.

- Roots: the bucket is taken as written and must be a valid bucket name; ``..``
  cannot climb out of it (``s3://b/../c`` is refused, not read as bucket ``c``).
- Endpoints (options and environment variables) are checked at once, and shown
  without ``user:password@``; an HTTP server that is not the service is named so.
- A failure of the service names the user's operation and path, never the
  requests taken inside (``list`` of ``dir/``).

Absolute local paths given to an object store are refused by the conformance
suite (``path.absolute-local``), which runs on S3 and GCS in their own modules.
"""

from __future__ import annotations

import errno
import json
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

import artifactio
from _gcs_fixtures import TokenEndpoint, service_account_key
from artifactio._paths import StoreRoot
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Store
from artifactio.testing import covers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS


MAKERS: list[Callable[..., object]] = [artifactio.open_store, artifactio.ArtifactStore]


# ------------------------------------------------------------------- roots


@covers("config.root-bucket")
@pytest.mark.parametrize("make", MAKERS, ids=["open_store", "ArtifactStore"])
@pytest.mark.parametrize(
    "root",
    [
        "s3://b/../c",
        "s3://b/x/../..",
        "s3://b/x/../../c/y",
        "s3://../c",
        "s3://./c",
        "s3:///c",
        "s3://",
        "gs://bucket/../other",
        "gs://../other",
        "gcs://bucket/x/../../other",
        "memory://name/../other",
    ],
)
def test_roots_cannot_leave_their_bucket(make: Callable[..., object], root: str) -> None:
    with pytest.raises(ValueError, match="bucket"):
        make(root)


def test_roots_normalise_within_the_bucket() -> None:
    assert artifactio.open_store("s3://b/./x//y/../z/").root == "s3://b/x/z"
    assert artifactio.open_store("gs://bucket/x/..").root == "gs://bucket"
    assert StoreRoot.parse("memory://").uri == "memory://"
    assert StoreRoot.parse("memory://name/a/../b").uri == "memory://name/b"


@covers("config.root-bucket")
@pytest.mark.parametrize("make", MAKERS, ids=["open_store", "ArtifactStore"])
@pytest.mark.parametrize(
    "root",
    [
        "s3://b b/x",
        "s3://bucket!/x",
        "s3://b%2Fc/x",
        "s3://" + "b" * 256,
        "s3://user:pw@bucket/x",
        "gs://b/x",  # too short for GCS
        "gs://Bucket/x",
        "gs://-bucket/x",
        "gs://bucket-/x",
        "gs://" + "b" * 64,
        "gs://" + ".".join(["b" * 63] * 4),
        "gs://bucket:1/x",
    ],
)
def test_invalid_bucket_names_fail_at_once(make: Callable[..., object], root: str) -> None:
    with pytest.raises(ValueError, match="bucket") as info:
        make(root)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "root",
    [
        "s3://b/x",  # as botocore: legacy names (capitals, underscores) are still served
        "s3://Legacy_Bucket/x",
        "s3://my.bucket-1",
        "gs://abc",
        "gs://my_bucket.with.dots/x",
        "gs://" + "b" * 63,
        "gs://" + ".".join(["b" * 63] * 3),
    ],
)
def test_valid_bucket_names(root: str) -> None:
    artifactio.open_store(root)


# --------------------------------------------------------------- endpoints

BAD_ENDPOINTS = [
    "localhost:9000",
    "127.0.0.1",
    "http://",
    "ftp://127.0.0.1:21",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:port",
    "http://127.0.0.1:0",
    "http://bad host:9000",
    "http://[::1",
    "http://exa_mple..com",
    "http://127.0.0.1:9000/?region=x",
    "http://user:pa55word@bad host",
]


@covers("config.endpoint")
@pytest.mark.parametrize("make", MAKERS, ids=["open_store", "ArtifactStore"])
@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
@pytest.mark.parametrize("root", ["s3://bucket/x", "gs://bucket/x"])
def test_garbage_endpoints_fail_at_once(
    make: Callable[..., object], endpoint: str, root: str
) -> None:
    with pytest.raises(ValueError, match=r"endpoint_url .* is not an endpoint URL") as info:
        make(root, endpoint_url=endpoint)
    assert "pa55word" not in str(info.value)


@covers("config.endpoint")
def test_endpoints_from_the_environment_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://user:pa55word@not a host")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL 'http://not a host'"):
        artifactio.open_store("s3://bucket/x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "s3.local:9000")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL_S3"):
        artifactio.open_store("s3://bucket/x")
    # An option wins over the environment.
    store = artifactio.open_store("s3://bucket/x", endpoint_url="http://127.0.0.1:9000")
    assert isinstance(store, S3Store)
    assert store.endpoint_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "bad host:4443")
    with pytest.raises(ValueError, match="STORAGE_EMULATOR_HOST"):
        artifactio.open_store("gs://bucket/x")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    gcs = artifactio.open_store("gs://bucket/x")
    assert isinstance(gcs, GCSStore)
    assert gcs.endpoint == "http://127.0.0.1:4443"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:9000",
        "https://s3.eu-west-1.amazonaws.com",
        "http://[::1]:9000/",
        "http://minio:9000/base",
    ],
)
def test_valid_endpoints(endpoint: str) -> None:
    artifactio.open_store("s3://bucket/x", endpoint_url=endpoint)
    artifactio.open_store("gs://bucket/x", endpoint_url=endpoint)


def test_an_s3_endpoint_never_sends_its_password() -> None:
    store = artifactio.open_store("s3://bucket/x", endpoint_url="http://u:pa55word@127.0.0.1:9")
    assert isinstance(store, S3Store)
    assert store.endpoint_url == "http://127.0.0.1:9"


@covers("config.endpoint")
def test_gcs_endpoint_credentials_cannot_go_with_a_token() -> None:
    endpoint = "http://u:pa55word@127.0.0.1:9"
    GCSStore("gs://bucket/x", endpoint_url=endpoint)  # sent as basic credentials
    for options in ({"token": "ya29.x"}, {"service_file": "/no/such/key.json"}):
        with pytest.raises(ValueError, match="user:password") as info:
            artifactio.open_store("gs://bucket/x", endpoint_url=endpoint, **options)
        assert "pa55word" not in str(info.value)


@covers("config.root-bucket", "config.endpoint")
def test_bad_region_fails_at_once() -> None:
    with pytest.raises(ValueError, match="region"):
        artifactio.open_store("s3://bucket/x", region="us east 1")


# --------------------------------------------- failures name the user's calls


def _calls(
    store: artifactio.AsyncArtifactStore,
) -> list[tuple[str, str, Callable[[], Awaitable[Any]]]]:
    """(operation named in the error, path given, the call) for every operation."""

    async def walk() -> None:
        errors: list[OSError] = []
        async for _ in store.walk("d/sub", onerror=errors.append):
            pass
        raise errors[0]

    return [
        ("exists", "d/f", lambda: store.exists("d/f")),
        ("isdir", "d", lambda: store.isdir("d/")),
        ("stat", "d/f", lambda: store.stat("./d/f")),
        ("size", "d", lambda: store.size("d")),
        ("open", "d/f", lambda: store.read_bytes("d/f")),
        ("open", "d/f", lambda: store.write_bytes("d//f", b"x")),
        ("listdir", "d", lambda: store.listdir("d")),
        ("makedirs", "d/e/f", lambda: store.makedirs("d/e/f")),
        ("mkdir", "d", lambda: store.mkdir("d")),
        ("remove", "d/f", lambda: store.remove("d/f")),
        ("rmtree", "d", lambda: store.rmtree("d")),
        ("glob", "d", lambda: store.glob("d/*.txt")),
        ("walk", "d/sub", walk),
        ("copyfile", "e", lambda: store.copyfile("d/f", "e")),
        ("rename", "e", lambda: store.rename("d/f", "e")),
    ]


async def _assert_named(
    store: artifactio.AsyncArtifactStore, error: type[OSError], detail: str
) -> None:
    for op, rel, call in _calls(store):
        with pytest.raises(error) as info:
            await call()
        exc = info.value
        assert isinstance(exc, OSError)
        assert str(exc.strerror).startswith(f"{op}: {detail}"), (op, str(exc))
        assert exc.filename == f"{store.root}/{rel}", (op, exc.filename)


@covers("errors.user-operation")
async def test_s3_missing_bucket_names_the_call(seaweedfs: SeaweedFS) -> None:
    async with S3Store("s3://no-such-bucket/p", **seaweedfs.store_options(retries=0)) as store:
        await _assert_named(store, FileNotFoundError, "bucket 'no-such-bucket' does not exist")


@covers("errors.user-operation")
async def test_s3_refused_credentials_name_the_call(s3_root: str, seaweedfs: SeaweedFS) -> None:
    options = seaweedfs.store_options(secret="not-the-secret", retries=0)
    async with S3Store(s3_root, **options) as store:
        await _assert_named(store, PermissionError, "access denied")


@covers("errors.user-operation")
async def test_gcs_missing_bucket_names_the_call(fake_gcs_server: FakeGCSServer) -> None:
    options = fake_gcs_server.store_options(retries=0)
    async with GCSStore("gs://no-such-bucket/p", **options) as store:
        await _assert_named(store, FileNotFoundError, "bucket 'no-such-bucket' does not exist")


@covers("errors.user-operation")
async def test_gcs_refused_credentials_name_the_call(
    gcs_root: str, fake_gcs_server: FakeGCSServer, tmp_path: Path
) -> None:
    async with TokenEndpoint() as tokens:
        tokens.answers(401, {"error": "invalid_grant", "error_description": "Invalid JWT"})
        key = tmp_path / "key.json"
        key.write_text(json.dumps(service_account_key(tokens.url)))
        options = fake_gcs_server.store_options(service_file=str(key), retries=0)
        async with GCSStore(gcs_root, **options) as store:
            await _assert_named(store, PermissionError, "unusable GCS credentials")


# ------------------------------------------------ an HTTP server, not the service


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    """A plain aiohttp server on 127.0.0.1 that answers every request 404 with an HTML page."""

    async def not_found(request: web.Request) -> web.Response:
        page = "<!DOCTYPE html><html><body><h1>Not Found</h1><p>nothing here<br></body></html>"
        return web.Response(status=404, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@covers("config.endpoint", "errors.user-operation", "exists.failures")
@pytest.mark.parametrize("scheme", ["s3", "gs"])
async def test_an_http_server_that_is_not_the_service_is_named(
    web_server: str, scheme: str
) -> None:
    options: dict[str, Any] = {"endpoint_url": web_server, "retries": 0}
    if scheme == "s3":
        options.update(key="k", secret="s")
    async with artifactio.open_store(f"{scheme}://bucket/p", **options) as store:
        for op, rel, call in _calls(store):
            with pytest.raises(artifactio.StoreConnectionError) as info:
                await call()
            exc = info.value
            assert isinstance(exc, ConnectionError)
            assert exc.errno == errno.EPROTO
            assert str(exc.strerror).startswith(f"{op}: {web_server} is not "), str(exc)
            assert "S3 service" in str(exc) if scheme == "s3" else "GCS JSON API" in str(exc)
            assert exc.filename == f"{store.root}/{rel}"
