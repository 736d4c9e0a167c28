"""The GCS transport: every request of the backend goes out through :class:`Transport`.

One attempt (:meth:`Transport.send`) adds the credentials' ``Authorization``
header, sets the timeouts of a request moving that many bytes, sends its body
with a stall bound (:func:`~._objectstore.send_bounded`: aiohttp has none for
body writes; a small one-request upload goes without, as it cannot stall) and
reads the answer whole, with a stall bound of its own
(:func:`~._objectstore.read_answer`).
One call (:meth:`Transport.call`) repeats attempts that failed in a way worth
repeating (:func:`~._gcs_protocol.should_retry`: throttling, 5xx, dropped
connections, timeouts, a token endpoint that failed so) up to ``retries`` times,
with exponential backoff and full jitter, counting each attempt as a request in
flight of the client (so ``aclose`` waits for it and a closed store refuses the
next one), and translates what finally fails once
(:func:`~._gcs_protocol.map_error`), ``raise ... from`` the original.

Requests to the JSON API (:meth:`Transport.request`) carry ``userProject`` when
the store has a ``project``: the project billed for requester-pays buckets.
Requests to a URL GCS handed out (a resumable session) go to it verbatim: the
session was created with the parameters it needs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import anyio

from .._config import redact_url
from .._exceptions import mark_retried
from ._gcs_protocol import map_error, retry_delay, should_retry
from ._objectstore import ObjectStream, read_answer
from ._objectstore._client import SendBody, read_within, send_bounded

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Container, Mapping
    from contextlib import AbstractContextManager

    from multidict import CIMultiDictProxy

    from ._gcs_auth import Credentials

__all__ = ["MIN_THROUGHPUT", "UNWATCHED_BODY", "Response", "Settings", "Transport"]

T = TypeVar("T")

MIN_THROUGHPUT = 256 * 1024
"""Bytes per second a transfer may not fall below: sets the deadline of one request."""

UNWATCHED_BODY = 16 * 1024
"""The largest body :meth:`Transport.send` may send unwatched: well within what a
connection takes without waiting (asyncio and aiohttp wait for the socket only
beyond 64 KiB of unsent bytes)."""

_TIMEOUTS_KEPT = 64
"""Request sizes whose timeouts a transport keeps made (most requests share a few sizes)."""


@dataclass(frozen=True)
class Settings:
    """What every per-loop client of one store shares.

    Attributes:
        endpoint: The JSON API's root URL.
        anonymous: Send no credentials (an emulator).
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for the next bytes of an answer.
        retries: Attempts after the first for failures worth repeating.
        concurrency: Requests a bulk operation keeps in flight.
        project: The project billed for requests (``userProject``), if any.
        token: The ``token`` option (never shown).
        service_file: The ``service_file`` option.
    """

    endpoint: str
    anonymous: bool
    connect_timeout: float
    read_timeout: float
    retries: int
    concurrency: int
    project: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    service_file: str | None = None

    def deadline(self, nbytes: int = 0) -> float:
        """The total time one request moving ``nbytes`` may take."""
        return self.connect_timeout + self.read_timeout + nbytes / MIN_THROUGHPUT

    def timeout(self, nbytes: int = 0) -> aiohttp.ClientTimeout:
        """aiohttp timeouts for a request moving ``nbytes``."""
        return aiohttp.ClientTimeout(
            total=self.deadline(nbytes),
            connect=self.connect_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )


@dataclass(frozen=True)
class Response:
    """An answer, read whole.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        body: The body.
    """

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Transport:
    """Sends the requests of one client (one event loop) to GCS.

    Args:
        settings: The store's settings.
        session: The client's aiohttp session.
        credentials: What authorises each request.
        gate: Counts one attempt as a request in flight: ``gate(op, cleanup=...)``
            (:meth:`~._objectstore.ObjectClient.request`).

    Attributes:
        endpoint: The JSON API's root URL.
        billing: The query parameters every JSON API request carries
            (``userProject`` when the store has a ``project``).
    """

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        *,
        gate: Callable[..., AbstractContextManager[None]],
    ) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint.rstrip("/")
        self.billing: dict[str, str] = {"userProject": settings.project} if settings.project else {}
        self._session = session
        self._credentials = credentials
        self._gate = gate
        self._shown = redact_url(self.endpoint)  # for messages: no user:password
        self._timeouts: dict[int, aiohttp.ClientTimeout] = {}

    def _timeout(self, nbytes: int) -> aiohttp.ClientTimeout:
        """The timeouts of a request moving ``nbytes``, made once per size."""
        timeout = self._timeouts.get(nbytes)
        if timeout is None:
            if len(self._timeouts) >= _TIMEOUTS_KEPT:
                self._timeouts.clear()
            timeout = self._timeouts[nbytes] = self.settings.timeout(nbytes)
        return timeout

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | memoryview | None = None,
        nbytes: int = 0,
        ok: Container[int] = (),
        decompress: bool = True,
        watch_body: bool = True,
    ) -> Response:
        """Make one attempt at a request, without retries or translation.

        Args:
            method: The HTTP method.
            url: The whole URL.
            params: Query parameters (added to those in ``url``).
            headers: Request headers (besides ``Authorization``).
            body: The request body.
            nbytes: Bytes the request moves, for its deadline.
            ok: Error statuses that are answers here, not failures (e.g. 404).
            decompress: Undo a ``Content-Encoding`` (not for object bytes).
            watch_body: Send the body through :func:`~._objectstore.send_bounded`
                (its stall bound, and a cancellation that waits for the answer to
                a delivered body). ``False`` sends a body of at most
                :data:`UNWATCHED_BODY` bytes as it is, for a request that need not
                be waited for once cancelled (a one-request upload, whose outcome
                is unknown either way; not a session's chunk, which must not land
                after its session's cancellation): the connection takes such a
                body at once, so it cannot stall, and the answer is bounded by the
                timeouts.

        Returns:
            The answer.

        Raises:
            aiohttp.ClientResponseError: An error status not in ``ok`` (with GCS's message).
            artifactio.backends._gcs_protocol.TokenError: No access token.
            TimeoutError: The body or the answer stalled for ``read_timeout``.
        """
        sent = await self._credentials.headers()
        sent.update(headers or {})
        # Not replayed by aiohttp behind call()'s back: call() knows what a repeat means.
        payload = SendBody(body, replayable=False) if body is not None and len(body) else None

        timeout = self._timeout(nbytes)

        async def attempt() -> Response:
            async with self._session.request(
                method,
                url,
                params=params,
                headers=sent,
                data=body if payload is None else payload,
                timeout=timeout,
                allow_redirects=False,  # 308 is a resumable session's "go on"
                auto_decompress=decompress,
            ) as resp:
                data = await read_answer(resp.content, self.settings.read_timeout)
                if resp.status >= 400 and resp.status not in ok:
                    raise _refused(resp, data)
                return Response(resp.status, resp.headers, data)

        if payload is None or (not watch_body and (payload.size or 0) <= UNWATCHED_BODY):
            return await attempt()
        settings = self.settings
        return await send_bounded(
            attempt, payload, connect_timeout=settings.connect_timeout, idle=settings.read_timeout
        )

    async def open_stream(
        self, op: str, path: str, resource: str, *, params: Mapping[str, str], start: int
    ) -> ObjectStream | None:
        """A GET of ``resource`` from byte ``start`` to its end, its body read as it comes.

        Retried as :meth:`call` retries until the answer's head is in; afterwards
        each read waits at most ``read_timeout`` for the next bytes (no deadline
        for the whole body: the reader sets the pace). ``None`` when the answer
        is not the range asked for.

        Raises:
            OSError: The translated failure (see :meth:`call`).
        """
        timeout = aiohttp.ClientTimeout(
            connect=self.settings.connect_timeout,
            sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.read_timeout,
        )

        async def attempt() -> aiohttp.ClientResponse:
            sent = await self._credentials.headers()
            sent["Range"] = f"bytes={start}-"
            resp = await self._session.request(
                "GET",
                f"{self.endpoint}{resource}",
                params={**params, **self.billing},
                headers=sent,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=False,
            )
            if resp.status < 400:
                return resp
            async with resp:
                raise _refused(resp, await read_answer(resp.content, self.settings.read_timeout))

        resp = await self.call(op, path, attempt)
        if resp.status != 206:
            resp.close()
            return None

        async def next_bytes() -> bytes:
            with self._gate(op, cleanup=False):
                try:
                    return await read_within(resp.content.read, self.settings.read_timeout)
                except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
                    raise map_error(exc, op, path, endpoint=self._shown) from exc

        return ObjectStream(next_bytes, resp.close)

    async def call(
        self,
        op: str,
        path: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        missing: str | None = None,
        cleanup: bool = False,
    ) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the retries run out.

        Args:
            op: The operation, for messages and the request count.
            path: The ``gs://bucket/key`` path, for messages.
            attempt: One try; it may make several requests (:meth:`send`).
            missing: What a 404 means here (default: the path does not exist).
            cleanup: A best-effort clean-up: tried once, allowed while the store closes.

        Returns:
            What ``attempt`` returned.

        Raises:
            OSError: The translated failure (``FileNotFoundError``,
                ``PermissionError``, ``artifactio.StoreConnectionError``...).
            artifactio.StoreClosedError: The store was closed (also between retries).
        """
        retries = 0 if cleanup else self.settings.retries
        tries = 0
        while True:
            with self._gate(op, cleanup=cleanup):
                try:
                    return await attempt()
                except Exception as exc:
                    if tries >= retries or not should_retry(exc):
                        mapped = map_error(exc, op, path, endpoint=self._shown, missing=missing)
                        if retries:
                            mark_retried(mapped)
                        if mapped is exc:
                            raise
                        raise mapped from exc
            await anyio.sleep(retry_delay(tries))
            tries += 1

    async def request(
        self,
        op: str,
        path: str,
        method: str,
        resource: str,
        *,
        params: Mapping[str, str] | None = None,
        missing: str | None = None,
        cleanup: bool = False,
        **options: Any,
    ) -> Response:
        """A JSON API request, billed to the store's project, with retries and translation.

        Args:
            op: The operation, for messages.
            path: The ``gs://bucket/key`` path, for messages.
            method: The HTTP method.
            resource: The path below the endpoint, e.g. ``/storage/v1/b/b/o``.
            params: Query parameters (``userProject`` is added).
            missing: What a 404 means here.
            cleanup: See :meth:`call`.
            **options: ``headers``, ``body``, ``nbytes``, ``ok``, ``decompress`` of :meth:`send`.

        Returns:
            The answer.
        """
        attempt = functools.partial(
            self.send,
            method,
            f"{self.endpoint}{resource}",
            params={**(params or {}), **self.billing},
            **options,
        )
        return await self.call(op, path, attempt, missing=missing, cleanup=cleanup)


def _refused(resp: aiohttp.ClientResponse, body: bytes) -> aiohttp.ClientResponseError:
    """The error of an answer with an error status (GCS's message in ``body``)."""
    return aiohttp.ClientResponseError(
        resp.request_info,
        resp.history,
        status=resp.status,
        message=f"{resp.reason}: {body.decode(errors='replace')}",
        headers=resp.headers,
    )
