"""Secrets stay out of errors and logs.

- Option values never show in a validation error (a mistyped option may hold a
  secret): every config class, with a wrong name, a wrong type and a bad value,
  through ``open_store``, ``ArtifactStore`` and the pydantic models.
- A whole S3 session and a whole GCS session, logged at DEBUG on the root logger
  against the real servers, with credentials and an endpoint holding
  ``user:password@``: no secret in any record nor in the errors raised.
- :func:`redact_text` and the logging filter on their own: records formatted
  lazily, tracebacks attached to records.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _gcs_fixtures import TokenEndpoint, service_account_key
from _server_fixtures import BUCKET
from artifactio._config import ObjectStoreConfig
from artifactio._redact import RedactingFilter, guard_loggers, redact_text, register_secrets
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Store
from artifactio.testing import covers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS


def _secret(label: str) -> str:
    return f"{label}-SEKRIT-{uuid.uuid4().hex[:12]}"


def _shown(exc: BaseException) -> str:
    """Everything an error shows: its message, its repr and its traceback with causes."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


# --------------------------------------------------------- validation errors

CONFIGS: list[tuple[type[artifactio.StoreConfig], str]] = [
    (artifactio.StoreConfig, "memory://any/x"),
    (artifactio.MemoryConfig, "memory://secrets/x"),
    (artifactio.LocalConfig, "/tmp/artifactio-secrets-test"),
    (ObjectStoreConfig, "s3://bucket/x"),
    (artifactio.S3Config, "s3://bucket/x"),
    (artifactio.GCSConfig, "gs://bucket/x"),
]

NUMBER = 7_654_321_987


def _bad_options(cls: type[artifactio.StoreConfig], secret: str) -> list[dict[str, Any]]:
    """A wrong name, wrong types and bad values for ``cls``, each hiding ``secret`` or NUMBER."""
    cases: list[dict[str, Any]] = [
        {"secret_key": secret},  # a mistyped secret option
        {"concurrency": secret},
        {"part_size": [secret]},
        {"concurrency": -NUMBER},
        {"part_size": -NUMBER},
    ]
    if issubclass(cls, ObjectStoreConfig):
        cases += [
            {"retries": secret},
            {"read_timeout": -NUMBER},
            {"endpoint_url": f"http://user:{secret}@bad host:9000"},
            {"endpoint_url": f"http://user:{secret}@127.0.0.1:port"},
            {"endpoint_url": NUMBER},
        ]
    if cls is artifactio.S3Config:
        cases += [
            {"key": NUMBER},
            {"secret": [secret]},
            {"token": {"value": secret}},
            {"region": f"{secret} eu"},
        ]
    if cls is artifactio.GCSConfig:
        cases += [{"token": NUMBER}, {"project": [secret]}, {"service_file": {"p": secret}}]
    return cases


def _check_hidden(exc: BaseException, secret: str, options: dict[str, Any]) -> None:
    text = _shown(exc)
    assert secret not in text
    assert str(NUMBER) not in text
    for name in options:
        assert name in str(exc), f"the error does not name {name!r}: {exc}"


@covers("config.no-values-in-errors")
@pytest.mark.parametrize(("cls", "root"), CONFIGS, ids=lambda v: getattr(v, "__name__", ""))
def test_config_models_never_show_values(cls: type[artifactio.StoreConfig], root: str) -> None:
    secret = _secret("opt")
    for options in _bad_options(cls, secret):
        with pytest.raises(ValueError, match="validation error") as info:
            cls(path=root, **options)
        _check_hidden(info.value, secret, options)
        with pytest.raises(ValueError, match="validation error") as info:
            cls.model_validate({"path": root, **options})
        _check_hidden(info.value, secret, options)


@covers("config.no-values-in-errors")
@pytest.mark.parametrize(("cls", "root"), CONFIGS[1:], ids=lambda v: getattr(v, "__name__", ""))
def test_open_store_and_the_facade_never_show_values(
    cls: type[artifactio.StoreConfig], root: str
) -> None:
    secret = _secret("opt")
    makers: list[Callable[..., object]] = [artifactio.open_store, artifactio.ArtifactStore]
    for make in makers:
        for options in _bad_options(cls, secret):
            with pytest.raises(ValueError, match="validation error") as info:
                make(root, **options)
            _check_hidden(info.value, secret, options)


@covers("config.no-values-in-errors")
def test_a_bad_root_is_shown_without_credentials() -> None:
    secret = _secret("root")
    for make in (artifactio.open_store, artifactio.ArtifactStore):
        with pytest.raises(ValueError, match="bucket") as info:
            make(f"s3://user:{secret}@bucket/x")
        assert secret not in _shown(info.value)
        with pytest.raises(ValueError, match="bucket") as info:
            make(f"gs://user:{secret}@bucket/x")
        assert secret not in _shown(info.value)


@covers("config.no-values-in-errors")
def test_assigning_to_a_config_never_shows_the_value() -> None:
    secret = _secret("set")
    cfg = artifactio.S3Config(path="s3://bucket/x")
    for name in ("key", "endpoint_url", "concurrency"):
        with pytest.raises(ValueError, match="frozen") as info:
            setattr(cfg, name, secret)
        assert name in str(info.value)
        assert secret not in _shown(info.value)


# ------------------------------------------------------------- the log filter


def test_redact_text_hides_registered_secrets_and_credentials() -> None:
    secret = _secret("reg")
    register_secrets(secret, None, "", "abc")
    text = (
        f"key={secret} quoted={secret!r} encoded=a%2F{secret}\n"
        "x-amz-security-token:FQoGZXIvYXdzE\n"
        "{'X-Amz-Security-Token': b'FQoGZXIvYXdzE', 'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef'}\n"
        "Authorization: Bearer ya29.a0AfH6SMB\n"
        "url=http://someone:pa55w0rd@127.0.0.1:9000/bucket?list-type=2\n"
        '{"access_token": "ya29.c.b0AXv0zT", "token_type": "Bearer"}\n'
        "{'aws_secret_access_key': 'wJalrXUtnFEMI/K7MDENG', 'Key': 'runs/1/model.bin'}\n"
        "AKIAIOSFODNN7EXAMPLE alone, and abc stays"
    )
    clean = redact_text(text)
    for hidden in (
        secret,
        "FQoGZXIvYXdzE",
        "AKIAIOSFODNN7EXAMPLE",
        "0123456789abcdef0123456789abcdef",
        "ya29.a0AfH6SMB",
        "pa55w0rd",
        "ya29.c.b0AXv0zT",
        "wJalrXUtnFEMI/K7MDENG",
    ):
        assert hidden not in clean, hidden
    # What is no credential stays readable.
    for kept in ("http://127.0.0.1:9000/bucket?list-type=2", "runs/1/model.bin", "abc stays"):
        assert kept in clean, kept


def test_the_filter_redacts_lazy_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = _secret("lazy")
    register_secrets(secret)
    logger = logging.getLogger(f"artifactio.test.{uuid.uuid4().hex}")
    guard_loggers("artifactio")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    caplog.set_level(logging.DEBUG)
    logger.debug("params: %s", {"token": secret})
    logger.debug("url %s and %r", f"http://u:{secret}@host/x", secret)
    try:
        raise ValueError(f"Invalid endpoint: http://user:{secret}@host")
    except ValueError:
        logger.debug("failed", exc_info=True)
    assert len(caplog.records) == 3
    assert secret not in _everything_logged(caplog)
    assert "Invalid endpoint: http://host" in caplog.text  # the rest stays


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The text of every record as handlers see it, and what the records hold."""
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), str(record.exc_text)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


# ------------------------------------------------------ whole sessions at DEBUG


async def _session(store: artifactio.AsyncArtifactStore) -> list[BaseException]:
    """Write, read, list, delete, and fail: the errors raised are returned."""
    await store.write_bytes("d/a.bin", b"a" * 1000)
    async with store.open("d/b.txt", "w") as f:
        await f.write("text")
    assert await store.read_bytes("d/a.bin") == b"a" * 1000
    assert await store.listdir("d") == ["a.bin", "b.txt"]
    assert await store.glob("d/*.txt") == [store.root + "/d/b.txt"]
    await store.copyfile("d/a.bin", "e/a.bin")
    await store.remove("d/a.bin")
    await store.rmtree("e")
    failures: list[BaseException] = []
    for failing in (store.read_bytes("d/missing"), store.remove("nothing/here")):
        with pytest.raises(FileNotFoundError) as info:
            await failing
        failures.append(info.value)
    await store.rmtree("d")
    return failures


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@covers("logs.no-secrets")
@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "botocore-path"])
async def test_s3_session_logs_no_secret(
    seaweedfs: SeaweedFS,
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    lean: bool,
) -> None:
    monkeypatch.setattr(S3Store, "lean_requests", lean)
    password = _secret("pw")
    endpoint = seaweedfs.endpoint_url.replace("://", f"://someone:{password}@")
    root = f"s3://{BUCKET}/secrets-{uuid.uuid4().hex[:8]}"
    failures: list[BaseException] = []
    async with S3Store(root, **seaweedfs.store_options(endpoint_url=endpoint, retries=0)) as s:
        failures += await _session(s)
    # A session token the server refuses: signed headers carry it, and an access key.
    other = {"key": "AKIAZ7TESTONLYKEYID0", "secret": _secret("sk"), "token": _secret("tok")}
    options = seaweedfs.store_options(endpoint_url=endpoint, retries=0, **other)
    async with S3Store(root, **options) as s:
        for failing in (s.write_bytes("x", b"1"), s.exists("x")):
            with pytest.raises(PermissionError) as info:
                await failing
            failures.append(info.value)
    logged = _everything_logged(debug_logs)
    assert "botocore" in {r.name.partition(".")[0] for r in debug_logs.records}
    if not lean:  # the lean path logs no requests; botocore does, signed headers and all...
        assert "X-Amz-Security-Token" in logged
    for secret in (seaweedfs.secret_key, password, *other.values()):  # ...without the secrets
        assert secret not in logged
        for exc in failures:
            assert secret not in _shown(exc)
    assert f"Credential={seaweedfs.access_key}" not in logged


@pytest.fixture
async def token_endpoint() -> AsyncIterator[TokenEndpoint]:
    async with TokenEndpoint() as endpoint:
        yield endpoint


@covers("logs.no-secrets")
async def test_gcs_session_logs_no_secret(
    gcs_root: str,
    fake_gcs_server: FakeGCSServer,
    token_endpoint: TokenEndpoint,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    password = _secret("pw")
    token = f"ya29.{_secret('token')}"
    fetched = f"ya29.{_secret('fetched')}"
    token_endpoint.answers(200, {"access_token": fetched, "expires_in": 3600})
    key = service_account_key(token_endpoint.url)
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(key))
    private = key["private_key"].splitlines()[3]  # a line of the key's body
    endpoint = fake_gcs_server.url.replace("://", f"://someone:{password}@")
    failures: list[BaseException] = []
    stores = [
        GCSStore(gcs_root, endpoint_url=endpoint, retries=0),  # sent as basic credentials
        GCSStore(gcs_root, endpoint_url=fake_gcs_server.url, token=token, retries=0),
        GCSStore(gcs_root, endpoint_url=fake_gcs_server.url, service_file=str(key_file)),
    ]
    for store in stores:
        async with store:
            failures += await _session(store)
    assert token_endpoint.hits == 1
    # An unreachable endpoint fails too.
    async with GCSStore(gcs_root, endpoint_url=endpoint.rsplit(":", 1)[0] + ":1", retries=0) as s:
        with pytest.raises(artifactio.StoreConnectionError) as info:
            await s.exists("x")
        failures.append(info.value)
    logged = _everything_logged(debug_logs)
    for secret in (password, token, fetched, private):
        assert secret not in logged
        for exc in failures:
            assert secret not in _shown(exc)
