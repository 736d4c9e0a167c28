"""GCS fixtures: a fresh root per test (imported by conftest), and local servers to observe traffic.

- :class:`RecordingRelay`: an HTTP relay in front of fake-gcs-server that records
  every request it forwards (fake-gcs-server ignores ``userProject``, so the
  tests look at what was sent);
- :class:`TokenEndpoint`: an OAuth2 token endpoint on 127.0.0.1 that answers
  what a test tells it to, and counts how often it was asked;
- :func:`service_account_key`: a service-account key (a fresh RSA key) whose
  ``token_uri`` is such an endpoint;
- what several GCS test modules share: the ``recording`` fixture (a relay per test),
  ``CHUNK`` (the resumable chunk size the tests use), ``_payload`` (deterministic
  bytes) and ``_fail_while_writing`` (a write that raises ``_Boom`` midway).
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from multidict import CIMultiDictProxy, MultiMapping

    from artifactio.backends.gcs import GCSStore
    from artifactio.embedded import FakeGCSServer

__all__ = [
    "CHUNK",
    "RecordingRelay",
    "Seen",
    "TokenEndpoint",
    "gcs_root",
    "recording_relay",
    "service_account_key",
]


@pytest.fixture
def gcs_root(fake_gcs_server: FakeGCSServer) -> str:
    """A ``gs://`` root in a bucket no other test uses.

    A bucket per test keeps the emulator's listings (which scan the whole bucket)
    as fast at the end of the session as at its start.
    """
    bucket = f"t-{uuid.uuid4().hex}"
    fake_gcs_server.create_bucket(bucket)
    return f"gs://{bucket}/root"


_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})
_INNER_REQUEST = re.compile(rb"^(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r?$", re.MULTILINE)


@dataclass(frozen=True)
class Seen:
    """One request as it went over the wire.

    Attributes:
        method: The HTTP method.
        path: The URL path (decoded).
        query: The query parameters.
        headers: The request headers.
        body: The request body.
    """

    method: str
    path: str
    query: MultiMapping[str]
    headers: CIMultiDictProxy[str]
    body: bytes

    def inner_requests(self) -> list[tuple[str, str]]:
        """``(method, path?query)`` of the calls in a batch request's body."""
        return [(m.decode(), p.decode()) for m, p in _INNER_REQUEST.findall(self.body)]


class RecordingRelay:
    """An HTTP relay to a real server that records every request.

    Resumable-session URLs in ``Location`` headers are rewritten to point at the
    relay, so the chunks of an upload are seen too.

    Args:
        target: The real server's base URL.
        rewrite: Changes an answer's body before it is passed on (``None``: as is).

    Attributes:
        url: The relay's base URL.
        seen: Every request, in order.
        locations: Every ``Location`` handed out (rewritten).
    """

    def __init__(self, target: str, rewrite: Callable[[Seen, bytes], bytes] | None = None) -> None:
        self.target = target.rstrip("/")
        self.url = ""
        self.seen: list[Seen] = []
        self.locations: list[str] = []
        self.rewrite = rewrite
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RecordingRelay:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        assert self._client is not None
        await self._runner.cleanup()
        await self._client.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        seen = Seen(request.method, request.path, request.query, request.headers, body)
        self.seen.append(seen)
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        async with self._client.request(
            request.method,
            f"{self.target}{request.raw_path}",
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            out = CIMultiDict(
                (k, v) for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP
            )
        if "Location" in out:
            out["Location"] = out["Location"].replace(self.target, self.url, 1)
            self.locations.append(out["Location"])
        if self.rewrite is not None:
            data = self.rewrite(seen, data)
        return web.Response(status=answer.status, headers=out, body=data)


class TokenEndpoint:
    """An OAuth2 token endpoint on 127.0.0.1: answers ``status`` with ``answer``.

    Attributes:
        url: The endpoint's URL (a key's ``token_uri``).
        hits: How many token requests it got.
        grants: The ``grant_type`` of each.
    """

    def __init__(self) -> None:
        self.url = ""
        self.hits = 0
        self.grants: list[str] = []
        self.status = 200
        self.answer: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None

    def answers(self, status: int, answer: dict[str, Any]) -> None:
        """Answer every token request with ``status`` and ``answer`` (JSON) from now on."""
        self.status = status
        self.answer = answer

    async def __aenter__(self) -> TokenEndpoint:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/token"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.hits += 1
        form = await request.post()
        self.grants.append(str(form.get("grant_type", "")))
        return web.json_response(self.answer, status=self.status)


@functools.cache
def _private_key_pem() -> str:
    """A fresh RSA key for this test session, PEM (PKCS#8)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account_key(token_uri: str, **fields: Any) -> dict[str, Any]:
    """A service-account key whose tokens come from ``token_uri`` (``fields`` override)."""
    key = {
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "k1",
        "private_key": _private_key_pem(),
        "client_email": "tester@test-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    key.update(fields)
    return key


# ------------------------------------------------- shared by the GCS test modules

CHUNK = 256 * 1024


def _payload(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + i * 7) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


class _Boom(Exception):
    pass


async def _fail_while_writing(store: GCSStore, path: str, data: bytes) -> None:
    async with store.open(path, "wb") as f:
        await f.write(data)
        raise _Boom


@pytest.fixture(name="recording")
async def recording_relay(fake_gcs_server: FakeGCSServer) -> AsyncIterator[RecordingRelay]:
    async with RecordingRelay(fake_gcs_server.url) as r:
        yield r
