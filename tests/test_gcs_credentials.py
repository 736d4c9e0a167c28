"""GCS credentials on the wire: the token option, key files, token endpoints that refuse or fail.

A recording relay in front of fake-gcs-server sees the ``Authorization`` headers;
a local token endpoint answers as each test tells it to.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from typing import TYPE_CHECKING, Any

import pytest

from _gcs_fixtures import (
    RecordingRelay,
    TokenEndpoint,
    recording_relay,  # noqa: F401 - fixtures
    service_account_key,
)
from artifactio import StoreConnectionError
from artifactio.backends import _gcs_transport
from artifactio.backends._gcs_protocol import TokenError
from artifactio.backends.gcs import GCSStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer


pytestmark = pytest.mark.gcs


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
