"""The lean request path of the S3 backend: its signer against botocore's, and where it applies.

Behaviour is checked elsewhere, on both paths: tests/test_s3.py runs the
conformance suite with the lean path and without it, and the fault, closing,
secrets and transfer tests run on the default (lean) path.
"""

from __future__ import annotations

import datetime
import hashlib
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from _server_fixtures import BUCKET
from artifactio.backends._s3_lean import MAX_BODY, sign
from artifactio.backends.s3 import S3Client, S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from artifactio.embedded import SeaweedFS

NOW = datetime.datetime(2026, 12, 2, 7, 30, 15, tzinfo=datetime.timezone.utc)
HOST = "127.0.0.1:8333"


def _quote(text: str, safe: str) -> str:
    return urllib.parse.quote(text, safe=safe)


@pytest.mark.parametrize(
    ("method", "key", "query", "headers", "token"),
    [
        ("GET", "a/b.bin", [], {"range": "bytes=0-99", "if-match": '"abc"'}, None),
        ("HEAD", "dir with space/ü ñ/%41+plus~tilde=eq&amp", [], {}, None),
        (
            "PUT",
            "models/w.bin",
            [],
            {"content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==", "x-amz-meta-artifactio-md5": "d41d8c"},
            "session-token/with+chars=",
        ),
        ("DELETE", "x/\u00e9\u4e2d/\x01ctl", [], {}, None),
        (
            "GET",
            None,
            [
                ("list-type", "2"),
                ("prefix", "dir with space/ü+%/"),
                ("max-keys", "1000"),
                ("encoding-type", "url"),
                ("delimiter", "/"),
                ("continuation-token", "1/ab+cd=="),
            ],
            {},
            None,
        ),
    ],
)
def test_the_signature_is_botocores(
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    key: str | None,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    token: str | None,
) -> None:
    path = f"/{BUCKET}" + ("" if key is None else "/" + _quote(key, "/~"))
    ours = {"host": HOST, **headers}
    payload = "UNSIGNED-PAYLOAD" if method == "PUT" else hashlib.sha256(b"").hexdigest()
    query_string = sign(
        method,
        path,
        query,
        ours,
        region="us-east-1",
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token=token,
        payload_hash=payload,
        now=NOW,
    )
    # botocore signs the same request (same URL, headers and payload hash) at the same time.
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    url = f"https://{HOST}{path}" + (f"?{query_string}" if query_string else "")
    theirs = AWSRequest(method=method, url=url, headers=dict(headers))
    theirs.context["payload_signing_enabled"] = False
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    signer = S3SigV4Auth(credentials, "s3", "us-east-1")
    monkeypatch.setattr(signer, "payload", lambda request: payload)
    signer.add_auth(theirs)
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours["x-amz-date"] == theirs.headers["X-Amz-Date"]


# ----------------------------------------------------------------- where it applies


class _Calls:
    """The operations a store's aiobotocore client made."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.fixture
async def store(seaweedfs: SeaweedFS) -> AsyncIterator[S3Store]:
    name = f"lean-{uuid.uuid4().hex[:12]}"
    async with S3Store(f"s3://{BUCKET}/{name}", **seaweedfs.store_options(retries=1)) as s:
        yield s
        for entry in await s.listdir("."):
            await (s.rmtree if await s.isdir(entry) else s.remove)(entry)


async def _watch(store: S3Store) -> _Calls:
    client = await store._client()
    assert isinstance(client, S3Client)
    calls = _Calls()
    client.s3.meta.events.register("before-call.s3", calls)
    return calls


@pytest.mark.s3
async def test_small_requests_skip_botocore_and_the_rest_go_through_it(store: S3Store) -> None:
    calls = await _watch(store)
    await store.write_bytes("a/small.bin", b"x" * 100)
    assert await store.read_bytes("a/small.bin") == b"x" * 100
    assert await store.exists("a/small.bin")
    assert await store.listdir("a") == ["small.bin"]
    assert (await store.stat("a/small.bin")).size == 100
    await store.remove("a/small.bin")
    assert calls.names == []  # all of it on the lean path

    big = b"y" * (MAX_BODY + 1)
    await store.write_bytes("big.bin", big)  # a body too large for the lean path
    await store.copyfile("big.bin", "copy.bin")  # a copy: never lean
    assert await store.read_bytes("copy.bin") == big
    assert calls.names == ["PutObject", "CopyObject"]


@pytest.mark.s3
async def test_the_lean_path_can_be_turned_off(
    seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3Store, "lean_requests", False)
    root = f"s3://{BUCKET}/lean-off-{uuid.uuid4().hex[:8]}"
    async with S3Store(root, **seaweedfs.store_options(retries=1)) as s:
        calls = await _watch(s)
        await s.write_bytes("f.bin", b"1")
        assert await s.read_bytes("f.bin") == b"1"
        await s.remove("f.bin")
    assert "PutObject" in calls.names
    assert "GetObject" in calls.names
    assert "DeleteObject" in calls.names
