"""``gs://bucket/prefix``: Google Cloud Storage, with gcloud-aio-storage.

:class:`GCSStore` is an :class:`~artifactio.backends._objectstore.ObjectStore`:
the directory rules, listings, buffered writes and read-ahead live there. This
module is only the GCS glue, :class:`_GCSClient`, made once per event loop:

- metadata, listings, small uploads, server-side copies (``rewrite``, looping on
  its token) and single deletes go through ``gcloud.aio.storage.Storage``;
- ranged downloads pinned to a ``generation``, resumable upload sessions fed in
  chunks (multiples of 256 KiB) and batch deletes (100 per request) are plain
  requests through the same aiohttp session and credentials;
- ``x`` modes send ``ifGenerationMatch=0``, so GCS refuses to replace an object;
- every upload carries its CRC32C and the checksum GCS reports back is compared;
  downloads are checked against the object's CRC32C once every byte was read
  (ranges may arrive in any order: their checksums are combined);
- throttling (429), server errors (5xx) and dropped connections are retried with
  exponential backoff and full jitter (:func:`retry_delay`, :func:`should_retry`);
- errors are translated once, at this boundary (:func:`map_error`).

Credentials: ``token`` (an OAuth2 access token, or the JSON text of a service
account key), ``service_file`` (a key file), else Application Default
Credentials. When an endpoint is set (``endpoint_url`` or
``STORAGE_EMULATOR_HOST``) and no credentials are given, requests are sent
without credentials, as emulators expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import io
import json
import math
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
import anyio.to_thread
from gcloud.aio.storage import Storage

from .._config import GCSConfig
from .._exceptions import IntegrityError, StoreClosedError, os_error
from .._paths import StoreRoot
from ._gcs_protocol import (
    BATCH_LIMIT,
    CHUNK_QUANTUM,
    RETRY_STATUSES,
    DownloadCheck,
    b64_crc32c,
    batch_delete_body,
    content_range_total,
    crc32c,
    crc32c_combine,
    goog_hash,
    map_error,
    object_meta,
    parse_b64_crc32c,
    parse_batch_response,
    parse_time,
    persisted_bytes,
    retry_delay,
    should_retry,
    status_error,
)
from ._objectstore import (
    LIST_PAGE,
    ListPage,
    ObjectClient,
    ObjectMeta,
    ObjectRead,
    ObjectStore,
    Upload,
    object_changed,
    read_body,
    redact_url,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from gcloud.aio.auth import Token
    from multidict import CIMultiDictProxy

__all__ = ["GCSStore"]

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]

MIN_THROUGHPUT = 256 * 1024
"""Bytes per second a transfer may not fall below: sets the deadline of one request."""

_MAX_CHECKS = 256
"""Objects whose download checksums one client follows at once (the oldest is dropped)."""

_LIST_FIELDS = "items(name,size,updated,etag,generation,crc32c),prefixes,nextPageToken"
_CONTENT_TYPE = "application/octet-stream"


# ----------------------------------------------------------------- the client


class _Body(aiohttp.payload.Payload):
    """A request body already in memory, handed to the transport in one write.

    aiohttp's own ``BytesPayload`` warns (``ResourceWarning``) above 1 MiB that raw
    bytes "might lock the event loop", but a transport write never blocks: the
    transport buffers what the socket does not take at once. Its suggestion, a
    ``BytesIO``, would cost a thread hop per 64 KiB. This payload also takes a
    ``memoryview``, so a chunk is sent without being copied first.
    """

    _autoclose = True

    def __init__(self, value: bytes | memoryview) -> None:
        super().__init__(value, content_type=_CONTENT_TYPE)
        self._size = memoryview(value).nbytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: Any) -> None:
        await writer.write(self._value)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        value = self._value if content_length is None else memoryview(self._value)[:content_length]
        await writer.write(value)


class _StaticToken:
    """An access token given as is (no refresh)."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def get(self) -> str:
        return self._value

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "_StaticToken(***)"


class _Anonymous:
    """No credentials (emulators); ``Storage`` never asks it for a token."""

    async def get(self) -> None:
        return None

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class _Settings:
    """What every per-loop client of one store shares."""

    endpoint: str
    anonymous: bool
    connect_timeout: float
    read_timeout: float
    retries: int
    concurrency: int
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


class _GCSClient(ObjectClient):
    """The GCS calls :class:`ObjectStore` needs, for one event loop."""

    delete_batch = BATCH_LIMIT
    prune_empty_dirs = False

    def __init__(
        self,
        settings: _Settings,
        session: aiohttp.ClientSession,
        storage: Storage,
        token: Any,
        *,
        store: str,
    ) -> None:
        super().__init__(store=store, close_grace=settings.read_timeout)
        self._settings = settings
        self._session = session
        self._storage = storage
        self._token = token
        self._api = settings.endpoint.rstrip("/")
        self._api_path = urlsplit(self._api).path.rstrip("/")
        self._shown = redact_url(self._api)  # for messages: no user:password
        self._checks: dict[tuple[str, str, str], DownloadCheck] = {}
        self._batch_ok = True

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _path(bucket: str, key: str = "") -> str:
        return f"gs://{bucket}/{key}"

    def _object_url(self, bucket: str, key: str) -> str:
        return f"{self._api}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(key, safe='')}"

    async def _auth(self) -> dict[str, str]:
        """The ``Authorization`` header (none against an emulator).

        Raises:
            PermissionError: No access token could be obtained.
        """
        if self._settings.anonymous:
            return {}
        try:
            token = await self._token.get()
        except Exception as exc:
            raise PermissionError(
                errno.EACCES,
                f"no usable GCS credentials ({type(exc).__name__}: {_first_line(exc)})",
            ) from exc
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _total(self, nbytes: int = 0) -> int:
        return math.ceil(self._settings.deadline(nbytes))

    async def _call(
        self,
        op: str,
        path: str,
        func: Callable[[], Awaitable[T]],
        *,
        missing: str | None = None,
    ) -> T:
        """Run one request with retries; translate what finally fails.

        Raises:
            artifactio.StoreClosedError: The store was closed (also between retries).
        """
        attempt = 0
        while True:
            with self.request(op):
                try:
                    await self._auth()  # credential failures surface as such, not as HTTP errors
                except PermissionError as exc:
                    raise os_error(PermissionError, op, path, exc.strerror or "") from exc.__cause__
                try:
                    return await func()
                except Exception as exc:
                    if not (attempt < self._settings.retries and should_retry(exc)):
                        mapped = map_error(exc, op, path, endpoint=self._shown, missing=missing)
                        if mapped is exc:
                            raise
                        raise mapped from exc
            await anyio.sleep(retry_delay(attempt))
            attempt += 1

    @staticmethod
    def _no_bucket(bucket: str) -> str:
        return f"bucket {bucket!r} does not exist"

    # ---------------------------------------------------------------- metadata

    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        async def run() -> ObjectMeta | None:
            try:
                item = await self._storage.download_metadata(bucket, key, timeout=self._total())
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    return None
                raise
            return object_meta(item)

        return await self._call("stat", self._path(bucket, key), run)

    async def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None,
        limit: int = LIST_PAGE,
        token: str | None = None,
    ) -> ListPage:
        params: dict[str, str] = {
            "prefix": prefix,
            "maxResults": str(max(1, min(limit, LIST_PAGE))),
            "fields": _LIST_FIELDS,
        }
        if delimiter:
            params["delimiter"] = delimiter
        if token:
            params["pageToken"] = token

        async def run() -> dict[str, Any]:
            return await self._storage.list_objects(
                bucket, params=dict(params), timeout=self._total()
            )

        data = await self._call(
            "list", self._path(bucket, prefix), run, missing=self._no_bucket(bucket)
        )
        return ListPage(
            objects=[object_meta(item) for item in data.get("items") or []],
            prefixes=[str(p) for p in data.get("prefixes") or []],
            next_token=data.get("nextPageToken") or None,
        )

    # ---------------------------------------------------------------- reading

    async def get_range(
        self, bucket: str, key: str, start: int, end: int, *, version: str | None = None
    ) -> ObjectRead:
        path = self._path(bucket, key)
        if end <= start:
            meta = await self.head(bucket, key)
            if meta is None or (version is not None and meta.version != version):
                raise os_error(FileNotFoundError, "read", path)
            return ObjectRead(b"", meta.size, meta.version, meta.etag, meta.mtime)
        params = {"alt": "media"}
        if version is not None:
            params["generation"] = version

        async def run() -> ObjectRead | None:
            headers = await self._auth()
            headers["Range"] = f"bytes={start}-{end - 1}"
            async with self._session.get(
                self._object_url(bucket, key),
                params=params,
                headers=headers,
                timeout=self._settings.timeout(end - start),
                auto_decompress=False,
            ) as resp:
                if resp.status == 416:
                    return None
                await _raise_for_status(resp, self._settings.read_timeout)
                data = await read_body(resp.content.read, self._settings.read_timeout)
                got = self._ranged(resp, data, start, end)
                self._check_download(bucket, key, resp.headers, got, start)
                return got

        try:
            got = await self._call("read", path, run)
        except FileNotFoundError:
            if version is not None:
                raise object_changed("read", path) from None
            raise
        if got is None:  # 416: the object is empty (or shorter than ``start``)
            meta = await self.head(bucket, key)
            if meta is None or (version is not None and meta.version != version):
                if version is not None:
                    raise object_changed("read", path)
                raise os_error(FileNotFoundError, "read", path)
            return ObjectRead(b"", meta.size, meta.version, meta.etag, meta.mtime)
        return got

    @staticmethod
    def _ranged(resp: aiohttp.ClientResponse, data: bytes, start: int, end: int) -> ObjectRead:
        headers = resp.headers
        version = headers.get("X-Goog-Generation")
        etag = (headers.get("ETag") or "").strip('"') or None
        mtime = parse_time(headers.get("Last-Modified"))
        if resp.status == 206:
            total = content_range_total(headers.get("Content-Range"))
            size = total if total is not None else start + len(data)
            return ObjectRead(data, size, version, etag, mtime)
        # 200: the server sent the whole object.
        return ObjectRead(data[start:end], len(data), version, etag, mtime)

    def _check_download(
        self,
        bucket: str,
        key: str,
        headers: CIMultiDictProxy[str],
        got: ObjectRead,
        start: int,
    ) -> None:
        """Fold a downloaded range into its object's CRC-32C check."""
        expected = parse_b64_crc32c(goog_hash(headers))
        if expected is None or got.version is None:
            return
        ident = (bucket, key, got.version)
        check = self._checks.get(ident)
        if check is None:
            check = DownloadCheck(got.size, expected)
            if not (start == 0 and len(got.data) == got.size):  # not the whole object at once
                if len(self._checks) >= _MAX_CHECKS:
                    self._checks.pop(next(iter(self._checks)))
                self._checks[ident] = check
        try:
            if check.add(start, got.data):
                self._checks.pop(ident, None)
        except IntegrityError as exc:
            self._checks.pop(ident, None)
            raise IntegrityError(exc.errno, exc.strerror, self._path(bucket, key)) from None

    # ---------------------------------------------------------------- writing

    async def put(self, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        path = self._path(bucket, key)
        crc = crc32c(data)
        parameters = {"ifGenerationMatch": "0"} if exclusive else {}

        async def run() -> dict[str, Any]:
            return await self._storage.upload(
                bucket,
                key,
                data,
                content_type=_CONTENT_TYPE,
                parameters=dict(parameters),
                metadata={"crc32c": b64_crc32c(crc)},
                force_resumable_upload=False,
                timeout=self._total(len(data)),
            )

        resource = await self._call("write", path, run, missing=self._no_bucket(bucket))
        await self._check_upload(bucket, key, resource, crc)

    async def _check_upload(
        self, bucket: str, key: str, resource: Mapping[str, Any], crc: int
    ) -> None:
        """Compare the CRC-32C GCS stored with the one sent; remove a corrupt object."""
        stored = parse_b64_crc32c(resource.get("crc32c"))
        if stored is None or stored == crc:
            return
        generation = resource.get("generation")
        if generation:
            params = {"ifGenerationMatch": str(generation)}
            with (
                contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, StoreClosedError),
                self.request("write", cleanup=True),
            ):
                await self._storage.delete(bucket, key, params=params, timeout=self._total())
        raise IntegrityError(
            errno.EIO,
            f"write: CRC32C mismatch: sent {b64_crc32c(crc)}, GCS stored {b64_crc32c(stored)}",
            self._path(bucket, key),
        )

    async def upload(self, bucket: str, key: str, *, exclusive: bool) -> Upload:
        path = self._path(bucket, key)
        params = {"uploadType": "resumable", "name": key}
        if exclusive:
            params["ifGenerationMatch"] = "0"
        body = json.dumps({"name": key, "contentType": _CONTENT_TYPE}).encode()

        async def run() -> str:
            headers = await self._auth()
            headers.update({
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": _CONTENT_TYPE,
            })  # fmt: skip
            async with self._session.post(
                f"{self._api}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
                params=params,
                headers=headers,
                data=body,
                timeout=self._settings.timeout(),
            ) as resp:
                await _raise_for_status(resp, self._settings.read_timeout)
                location = resp.headers.get("Location")
                if not location:
                    raise os_error(OSError, "write", path, "no resumable session URL in the answer")
                return location

        session_url = await self._call("write", path, run, missing=self._no_bucket(bucket))
        return _ResumableUpload(self, bucket, key, session_url)

    async def copy(self, bucket: str, src: str, dst: str, *, size: int | None = None) -> None:
        async def run() -> dict[str, Any]:
            return await self._storage.copy(
                bucket, src, bucket, new_name=dst, params={}, timeout=self._total()
            )

        await self._call("copy", self._path(bucket, src), run)

    # ---------------------------------------------------------------- deleting

    async def delete(self, bucket: str, key: str) -> None:
        async def run() -> None:
            try:
                await self._storage.delete(bucket, key, timeout=self._total())
            except aiohttp.ClientResponseError as exc:
                if exc.status != 404:
                    raise

        await self._call("delete", self._path(bucket, key), run)

    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        if len(keys) <= 1 or not self._batch_ok:
            for key in keys:
                await self.delete(bucket, key)
            return
        pending = list(keys)
        attempt = 0
        while pending:
            statuses = await self._call(
                "delete",
                self._path(bucket, pending[0]),
                functools.partial(self._batch, bucket, pending),
            )
            if statuses is None:  # the endpoint has no batch support: one by one
                self._batch_ok = False
                for key in pending:
                    await self.delete(bucket, key)
                return
            retry: list[str] = []
            for i, key in enumerate(pending):
                status = statuses.get(i, 503)
                if 200 <= status < 300 or status == 404:
                    continue
                if status in RETRY_STATUSES:
                    retry.append(key)
                    continue
                raise status_error(
                    status, f"HTTP {status} (batch delete)", "delete", self._path(bucket, key)
                )
            if retry and attempt >= self._settings.retries:
                raise os_error(
                    OSError, "delete", self._path(bucket, retry[0]),
                    f"{len(retry)} deletes still failing after {attempt} retries",
                    code=errno.EIO,
                )  # fmt: skip
            if retry:
                await anyio.sleep(retry_delay(attempt))
                attempt += 1
            pending = retry

    async def _batch(self, bucket: str, keys: list[str]) -> dict[int, int] | None:
        boundary = uuid.uuid4().hex
        paths = [
            f"{self._api_path}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(k, safe='')}"
            for k in keys
        ]
        headers = await self._auth()
        headers["Content-Type"] = f"multipart/mixed; boundary={boundary}"
        async with self._session.post(
            f"{self._api}/batch/storage/v1",
            headers=headers,
            data=batch_delete_body(paths, boundary),
            timeout=self._settings.timeout(),
        ) as resp:
            if resp.status in (400, 404, 405, 501):
                return None
            await _raise_for_status(resp, self._settings.read_timeout)
            body = await read_body(resp.content.read, self._settings.read_timeout)
            return parse_batch_response(resp.headers.get("Content-Type", ""), body)

    async def aclose(self) -> None:
        await self._session.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


async def _raise_for_status(resp: aiohttp.ClientResponse, idle: float) -> None:
    """Raise ``ClientResponseError`` (with GCS's message) for an error status.

    Args:
        resp: The response.
        idle: The longest wait for the next bytes of the error's body.
    """
    if resp.status >= 400:
        body = (await read_body(resp.content.read, idle)).decode(errors="replace")
        raise aiohttp.ClientResponseError(
            resp.request_info, resp.history, status=resp.status,
            message=f"{resp.reason}: {body}", headers=resp.headers,
        )  # fmt: skip


class _ResumableUpload(Upload):
    """A GCS resumable upload session, fed one chunk after the other."""

    max_in_flight = 1

    def __init__(self, client: _GCSClient, bucket: str, key: str, url: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._url = url
        self._offset = 0
        self._crc = 0
        self._done = False

    @property
    def _path(self) -> str:
        return self._client._path(self._bucket, self._key)

    async def add_part(self, number: int, data: bytes) -> None:
        if len(data) % CHUNK_QUANTUM:
            raise ValueError(f"resumable chunks must be multiples of {CHUNK_QUANTUM} bytes")
        await self._send(data, final=False)

    async def complete(self, final: bytes) -> None:
        resource = await self._send(final, final=True)
        self._done = True
        if resource is None:  # the answer was lost after GCS finished: ask for the object
            meta = await self._client.head(self._bucket, self._key)
            if meta is None:
                raise os_error(OSError, "write", self._path, "upload vanished", code=errno.EIO)
            crc = (meta.checksum or "").removeprefix("crc32c:")
            resource = {"crc32c": crc, "generation": meta.version}
        await self._client._check_upload(self._bucket, self._key, resource, self._crc)

    async def _send(self, data: bytes, *, final: bool) -> dict[str, Any] | None:
        """PUT ``data`` at the current offset; on a retryable failure resume where GCS stopped."""
        client = self._client
        settings = client._settings
        view = memoryview(data)
        crc_after = self._crc
        if data:
            crc_after = crc32c_combine(self._crc, crc32c(data), len(data))
        total = self._offset + len(data)
        sent_from = self._offset  # the offset ``view[0]`` stands for
        attempt = 0
        while True:
            try:
                with client.request("write"):
                    result = await self._put(view, sent_from, total if final else None, crc_after)
            except Exception as exc:
                if attempt >= settings.retries or not should_retry(exc):
                    mapped = map_error(exc, "write", self._path, endpoint=client._shown)
                    if mapped is exc:
                        raise
                    raise mapped from exc
                await anyio.sleep(retry_delay(attempt))
                attempt += 1
                persisted = await self._persisted()
                if persisted is None:  # the session finished meanwhile
                    break
                skip = persisted - sent_from
                if skip < 0 or skip > len(view):
                    raise os_error(
                        OSError, "write", self._path,
                        f"upload session lost data (GCS has {persisted} bytes)", code=errno.EIO,
                    ) from exc  # fmt: skip
                view = view[skip:]
                sent_from = persisted
                continue
            self._offset = total
            self._crc = crc_after
            return result
        self._offset = total
        self._crc = crc_after
        return None

    async def _put(
        self, view: memoryview, start: int, total: int | None, crc: int
    ) -> dict[str, Any] | None:
        client = self._client
        headers = await client._auth()
        size = "*" if total is None else str(total)
        if len(view):
            headers["Content-Range"] = f"bytes {start}-{start + len(view) - 1}/{size}"
        else:
            headers["Content-Range"] = f"bytes */{size}"
        if total is not None:
            headers["X-Goog-Hash"] = f"crc32c={b64_crc32c(crc)}"
        async with client._session.put(
            self._url,
            headers=headers,
            data=_Body(view),
            timeout=client._settings.timeout(len(view)),
            allow_redirects=False,
        ) as resp:
            if resp.status == 308:
                if total is not None:
                    raise os_error(
                        OSError,
                        "write",
                        self._path,
                        "GCS did not finish the upload",
                        code=errno.EIO,
                    )
                persisted = persisted_bytes(resp.headers)
                if persisted != start + len(view):
                    raise aiohttp.ClientPayloadError(
                        f"GCS kept {persisted} of {start + len(view)} bytes"
                    )
                return None
            timeout = client._settings.read_timeout
            await _raise_for_status(resp, timeout)
            if total is None:
                raise os_error(
                    OSError, "write", self._path, "GCS finished the upload early", code=errno.EIO
                )
            resource: dict[str, Any] = json.loads(await read_body(resp.content.read, timeout))
            return resource

    async def _persisted(self) -> int | None:
        """How many bytes the session holds (``None``: it is finished)."""
        client = self._client

        async def run() -> int | None:
            headers = await client._auth()
            headers["Content-Range"] = "bytes */*"
            async with client._session.put(
                self._url,
                headers=headers,
                data=b"",
                timeout=client._settings.timeout(),
                allow_redirects=False,
            ) as resp:
                if resp.status == 308:
                    return persisted_bytes(resp.headers)
                await _raise_for_status(resp, client._settings.read_timeout)
                return None

        return await client._call("write", self._path, run)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        client = self._client
        timeout = client._settings.read_timeout
        with client.request("abort", cleanup=True):
            headers = await client._auth()
            try:
                async with client._session.delete(
                    self._url, headers=headers, timeout=client._settings.timeout()
                ) as resp:
                    # 499 (cancelled), 404/410 (gone): all fine
                    await read_body(resp.content.read, timeout)
            except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError):
                pass  # an unfinished session expires on its own after a week


# --------------------------------------------------------------------- store


def _endpoint(config: GCSConfig) -> tuple[str, bool]:
    """The API root and whether it came from the user (endpoint_url or the emulator variable)."""
    if config.endpoint_url:
        return config.endpoint_url.rstrip("/"), True
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if host:
        return (host if "://" in host else f"http://{host}").rstrip("/"), True
    return DEFAULT_ENDPOINT, False


class GCSStore(ObjectStore):
    """An artifact store in a Google Cloud Storage bucket.

    Args:
        root: ``gs://bucket`` or ``gs://bucket/prefix`` (``gcs://`` is accepted too).
        **options: :class:`~artifactio._config.GCSConfig` fields: ``endpoint_url``
            (default ``$STORAGE_EMULATOR_HOST``), ``project``, ``service_file``,
            ``token`` (an access token or a service-account key's JSON),
            ``concurrency``, ``part_size`` (a multiple of 256 KiB),
            ``connect_timeout``, ``read_timeout``, ``retries``.

    Raises:
        pydantic.ValidationError: An unknown or invalid option.
    """

    scheme: ClassVar[str] = "gs"

    def __init__(self, root: str, **options: Any) -> None:
        self.config = GCSConfig(path=root, **options)
        parsed = StoreRoot.parse(self.config.path, aliases=frozenset({"gs", "gcs"}))
        parsed = dataclasses.replace(parsed, scheme="gs", aliases=frozenset({"gcs"}))
        super().__init__(
            parsed, concurrency=self.config.concurrency, part_size=self.config.part_size
        )
        endpoint, custom = _endpoint(self.config)
        token = self.config.token.get_secret_value() if self.config.token else None
        self.project = self.config.project
        self._settings = _Settings(
            endpoint=endpoint,
            anonymous=custom and token is None and self.config.service_file is None,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            retries=self.config.retries,
            concurrency=self.config.concurrency,
            token=token,
            service_file=self.config.service_file,
        )

    @property
    def endpoint(self) -> str:
        """The JSON API's root URL."""
        return self._settings.endpoint

    def __repr__(self) -> str:
        return f"GCSStore({self.root!r}, endpoint={redact_url(self.endpoint)!r})"

    async def _new_client(self) -> ObjectClient:
        settings = self._settings
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(settings.concurrency, 1) + 8),
            timeout=settings.timeout(),
        )
        try:
            token = await self._token(session)
            storage = Storage(
                token=cast("Token", token),
                session=session,
                api_root=settings.endpoint,
                api_is_dev=settings.anonymous,
            )
        except BaseException:
            await session.close()
            raise
        return _GCSClient(settings, session, storage, token, store=self.root)

    async def _token(self, session: aiohttp.ClientSession) -> Any:
        """The credentials for one client (made in a worker thread: they may read files)."""
        settings = self._settings
        if settings.anonymous:
            return _Anonymous()
        secret = settings.token
        if secret is not None and not secret.lstrip().startswith("{"):
            return _StaticToken(secret)
        from gcloud.aio.auth import Token

        source: Any = io.StringIO(secret) if secret is not None else settings.service_file
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(Token, service_file=source, session=session, scopes=SCOPES)
            )
        except (OSError, ValueError, KeyError) as exc:
            where = "the token option" if secret is not None else repr(settings.service_file)
            raise PermissionError(
                errno.EACCES,
                f"open_store: unusable GCS credentials in {where} ({type(exc).__name__})",
                self.root,
            ) from None
