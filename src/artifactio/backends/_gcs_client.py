"""The GCS calls :class:`~._objectstore.ObjectStore` needs, as one :class:`GCSClient` per loop.

Each call is one or a few JSON API requests through the client's
:class:`~._gcs_transport.Transport` (which retries, bills ``userProject`` and
translates errors):

- metadata and listings are ``GET``s; a missing object's metadata is ``None``;
- ranged downloads are pinned to a ``generation`` and checked against the
  object's CRC-32C once every byte was read (ranges may arrive in any order);
- small files are one ``uploadType=multipart`` upload carrying their CRC-32C;
  larger ones a resumable session (:class:`~._gcs_upload.ResumableUpload`);
  ``x`` modes send ``ifGenerationMatch=0``, so GCS refuses to replace an object;
  the checksum GCS reports back is compared, and a corrupt object removed;
- server-side copies are ``rewrite`` calls, looping on their token;
- deletes go 100 per batch request, one by one where batches are not supported.
"""

from __future__ import annotations

import contextlib
import errno
import json
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from .._exceptions import IntegrityError, StoreClosedError, StoreConnectionError, os_error
from .._redact import redact_url
from ._gcs_checksum import (
    DownloadCheck,
    b64_crc32c,
    crc32c,
    goog_hash,
    parse_b64_crc32c,
    read_mismatch,
)
from ._gcs_protocol import (
    BATCH_LIMIT,
    RETRY_STATUSES,
    BatchFailure,
    batch_delete_body,
    content_range_total,
    multipart_upload_body,
    object_meta,
    object_resource,
    parse_batch_response,
    parse_time,
    rewrite_resource,
    status_error,
    upload_resource,
)
from ._gcs_transport import Transport
from ._gcs_upload import ResumableUpload, written_object
from ._objectstore import (
    LIST_PAGE,
    ListPage,
    ObjectClient,
    ObjectMeta,
    ObjectRead,
    ObjectStream,
    Upload,
    object_changed,
    release_session,
)
from ._objectstore._client import WRITE_TOKEN, new_token

if TYPE_CHECKING:
    from collections.abc import Mapping

    import aiohttp
    from multidict import CIMultiDictProxy

    from ._gcs_auth import Credentials
    from ._gcs_transport import Response, Settings

__all__ = ["GCSClient"]

_MAX_CHECKS = 256
"""Objects whose download checksums one client follows at once (the oldest is dropped)."""

_LIST_FIELDS = "items(name,size,updated,etag,generation,crc32c),prefixes,nextPageToken"
_UPLOADED_FIELDS = "generation,crc32c"
"""What a one-request upload asks GCS to answer with: what :meth:`GCSClient.check_upload` reads."""
_CONTENT_TYPE = "application/octet-stream"
_JSON = "application/json; charset=UTF-8"


class GCSClient(ObjectClient):
    """The GCS calls :class:`~._objectstore.ObjectStore` needs, for one event loop.

    Args:
        settings: The store's settings.
        session: The aiohttp session of this loop (closed by :meth:`aclose`).
        credentials: What authorises each request.
        store: The store's root, for messages.

    Attributes:
        transport: Sends every request of this client.
    """

    delete_batch = BATCH_LIMIT
    prune_empty_dirs = False
    checks_writes = True  # CRC-32C on every upload

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        *,
        store: str,
    ) -> None:
        super().__init__(store=store, close_grace=settings.read_timeout)
        self.transport = Transport(settings, session, credentials, gate=self.request)
        self._session = session
        self._base_path = urlsplit(self.transport.endpoint).path.rstrip("/")
        self._checks: dict[tuple[str, str, str], DownloadCheck] = {}
        # The multipart boundary of one-request uploads: random, made once (a fresh
        # one per upload costs a getrandom call, as much as the rest of a small upload).
        self._boundary = uuid.uuid4().hex
        self._batch_ok = True

    @staticmethod
    def path(bucket: str, key: str = "") -> str:
        """The ``gs://bucket/key`` path of an object, for messages."""
        return f"gs://{bucket}/{key}"

    @staticmethod
    def _no_bucket(bucket: str) -> str:
        return f"bucket {bucket!r} does not exist"

    def _check_json_404(self, resp: Response, op: str, path: str) -> None:
        """Refuse a 404 that is not the JSON API's: the endpoint is some other HTTP server.

        The JSON API answers every metadata and listing request, a 404 included,
        with JSON (media downloads may answer in plain text: they are not checked).
        """
        content_type = resp.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            kind = content_type.partition(";")[0] or "untyped"
            raise StoreConnectionError(
                errno.EPROTO,
                f"{op}: {redact_url(self.transport.endpoint)} is not the GCS JSON API "
                f"(HTTP {resp.status} with a {kind} answer)",
                path,
            )

    # ---------------------------------------------------------------- metadata

    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        path = self.path(bucket, key)
        resp = await self.transport.request(
            "stat", path, "GET", object_resource(bucket, key), params={"alt": "json"}, ok=(404,),
        )  # fmt: skip
        if resp.status == 404:
            self._check_json_404(resp, "stat", path)
            return None
        return object_meta(resp.json())

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
        path = self.path(bucket, prefix)
        resp = await self.transport.request(
            "list", path, "GET", object_resource(bucket), params=params, ok=(404,),
        )  # fmt: skip
        if resp.status == 404:
            self._check_json_404(resp, "list", path)
            raise os_error(FileNotFoundError, "list", path, self._no_bucket(bucket))
        data = resp.json()
        return ListPage(
            objects=[object_meta(item) for item in data.get("items") or []],
            prefixes=[str(p) for p in data.get("prefixes") or []],
            next_token=data.get("nextPageToken") or None,
        )

    # ---------------------------------------------------------------- reading

    async def get_range(
        self, bucket: str, key: str, start: int, end: int, *, version: str | None = None
    ) -> ObjectRead:
        path = self.path(bucket, key)
        if end <= start:
            return await self._empty_read(bucket, key, version, changed=False)
        params = {"alt": "media"}
        if version is not None:
            params["generation"] = version
        try:
            resp = await self.transport.request(
                "read", path, "GET", object_resource(bucket, key),
                params=params, headers={"Range": f"bytes={start}-{end - 1}"},
                nbytes=end - start, ok=(416,), decompress=False,
            )  # fmt: skip
        except FileNotFoundError:
            if version is not None:
                raise object_changed("read", path) from None
            raise
        if resp.status == 416:  # the object is empty (or shorter than ``start``)
            return await self._empty_read(bucket, key, version, changed=version is not None)
        got = self._ranged(resp, start, end)
        self._check_download(bucket, key, resp.headers, got, start)
        return got

    async def open_stream(
        self, bucket: str, key: str, start: int, *, version: str | None
    ) -> ObjectStream | None:
        path = self.path(bucket, key)
        params = {"alt": "media"}
        if version is not None:
            params["generation"] = version
        try:
            return await self.transport.open_stream(
                "read", path, object_resource(bucket, key), params=params, start=start
            )
        except FileNotFoundError:
            if version is not None:  # that generation is gone: the object was replaced
                raise object_changed("read", path) from None
            raise

    async def _empty_read(
        self, bucket: str, key: str, version: str | None, *, changed: bool
    ) -> ObjectRead:
        """Nothing to read: what the object's metadata says (``changed``: it was replaced)."""
        meta = await self.head(bucket, key)
        if meta is None or (version is not None and meta.version != version):
            if changed:
                raise object_changed("read", self.path(bucket, key))
            raise os_error(FileNotFoundError, "read", self.path(bucket, key))
        return ObjectRead(b"", meta.size, meta.version, meta.etag, meta.mtime)

    @staticmethod
    def _ranged(resp: Response, start: int, end: int) -> ObjectRead:
        headers = resp.headers
        version = headers.get("X-Goog-Generation")
        etag = (headers.get("ETag") or "").strip('"') or None
        mtime = parse_time(headers.get("Last-Modified"))
        data = resp.body
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
        if start == 0 and len(got.data) == got.size:  # the whole object at once
            actual = crc32c(got.data)
            if actual != expected:
                raise read_mismatch(actual, expected, self.path(bucket, key))
            return
        ident = (bucket, key, got.version)
        check = self._checks.get(ident)
        if check is None:
            check = DownloadCheck(got.size, expected)
            if len(self._checks) >= _MAX_CHECKS:
                self._checks.pop(next(iter(self._checks)))
            self._checks[ident] = check
        try:
            if check.add(start, got.data):
                self._checks.pop(ident, None)
        except IntegrityError as exc:
            self._checks.pop(ident, None)
            raise IntegrityError(exc.errno, exc.strerror, self.path(bucket, key)) from None

    # ---------------------------------------------------------------- writing

    async def put(self, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        crc = crc32c(data)
        params = {"uploadType": "multipart", "fields": _UPLOADED_FIELDS}
        resource: dict[str, Any] = {"name": key, "crc32c": b64_crc32c(crc)}
        token = new_token() if exclusive else None
        if token is not None:
            params["ifGenerationMatch"] = "0"
            resource["metadata"] = {WRITE_TOKEN: token}
        boundary = self._boundary
        if boundary in key or boundary.encode("ascii") in data:  # a fresh one, then
            boundary = uuid.uuid4().hex
        body = multipart_upload_body(resource, data, _CONTENT_TYPE, boundary)
        try:
            resp = await self.transport.request(
                "write", self.path(bucket, key), "POST", upload_resource(bucket),
                params=params, missing=self._no_bucket(bucket),
                headers={"Content-Type": f"multipart/related; boundary={boundary}",
                         "Accept": "application/json"},
                body=body, nbytes=len(body), watch_body=False,
            )  # fmt: skip
        except FileExistsError:
            # A repeat (the first answer lost) meets the object the first attempt made.
            ours = None if token is None else (await written_object(self, bucket, key, token))[0]
            if ours is None:
                raise
            answer = ours
        else:
            answer = resp.json()
        await self.check_upload(bucket, key, answer, crc)

    async def check_upload(
        self, bucket: str, key: str, resource: Mapping[str, Any], crc: int
    ) -> None:
        """Compare the CRC-32C GCS stored with the one sent; remove a corrupt object.

        Args:
            bucket: The bucket.
            key: The object's key.
            resource: The object resource GCS answered the upload with.
            crc: The CRC-32C of the bytes sent.

        Raises:
            artifactio.IntegrityError: They differ (the object is removed, if still that one).
        """
        stored = parse_b64_crc32c(resource.get("crc32c"))
        if stored is None or stored == crc:
            return
        generation = resource.get("generation")
        if generation:
            with contextlib.suppress(OSError, StoreClosedError):
                await self.transport.request(
                    "write", self.path(bucket, key), "DELETE", object_resource(bucket, key),
                    params={"ifGenerationMatch": str(generation)}, cleanup=True,
                )  # fmt: skip
        raise IntegrityError(
            errno.EIO,
            f"write: CRC32C mismatch: sent {b64_crc32c(crc)}, GCS stored {b64_crc32c(stored)}",
            self.path(bucket, key),
        )

    async def upload(self, bucket: str, key: str, *, exclusive: bool) -> Upload:
        path = self.path(bucket, key)
        params = {"uploadType": "resumable", "name": key}
        if exclusive:
            params["ifGenerationMatch"] = "0"
        token = new_token()
        resource = {"name": key, "contentType": _CONTENT_TYPE, "metadata": {WRITE_TOKEN: token}}
        resp = await self.transport.request(
            "write", path, "POST", upload_resource(bucket),
            params=params, missing=self._no_bucket(bucket),
            headers={"Content-Type": _JSON, "X-Upload-Content-Type": _CONTENT_TYPE},
            body=json.dumps(resource).encode(),
        )  # fmt: skip
        location = resp.headers.get("Location")
        if not location:
            raise os_error(OSError, "write", path, "no resumable session URL in the answer")
        return ResumableUpload(self, bucket, key, location, token=token, exclusive=exclusive)

    async def copy(self, bucket: str, src: str, dst: str, *, size: int | None = None) -> None:
        params: dict[str, str] = {}
        while True:  # a large object takes several rewrite calls
            resp = await self.transport.request(
                "copy", self.path(bucket, src), "POST", rewrite_resource(bucket, src, dst),
                params=params, headers={"Content-Type": _JSON}, body=b"{}",
            )  # fmt: skip
            answer = resp.json()
            if answer.get("done") or not answer.get("rewriteToken"):
                return
            params = {"rewriteToken": str(answer["rewriteToken"])}

    # ---------------------------------------------------------------- deleting

    async def delete(self, bucket: str, key: str) -> None:
        await self.transport.request(
            "delete", self.path(bucket, key), "DELETE", object_resource(bucket, key), ok=(404,)
        )

    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        pending = list(keys)

        async def attempt() -> bool:
            """One batch of what is still pending; False: the endpoint has no batches."""
            nonlocal pending
            statuses = await self._batch(bucket, pending)
            if statuses is None:
                return False
            again: list[tuple[str, int]] = []
            for i, key in enumerate(pending):
                status = statuses.get(i, 503)
                if 200 <= status < 300 or status == 404:
                    continue
                if status not in RETRY_STATUSES:
                    path = self.path(bucket, key)
                    raise status_error(status, f"HTTP {status} (batch delete)", "delete", path)
                again.append((key, status))
            pending = [key for key, _ in again]
            if again:
                key, status = again[0]
                raise BatchFailure(status, self.path(bucket, key), len(again))
            return True

        if len(keys) > 1 and self._batch_ok:
            path = self.path(bucket, keys[0])
            if await self.transport.call("delete", path, attempt):
                return
            self._batch_ok = False
        for key in pending:
            await self.delete(bucket, key)

    async def _batch(self, bucket: str, keys: list[str]) -> dict[int, int] | None:
        """Send one batch of deletes: the status of each, or ``None`` without batch support."""
        query = f"?{urlencode(self.transport.billing)}" if self.transport.billing else ""
        paths = [f"{self._base_path}{object_resource(bucket, k)}{query}" for k in keys]
        boundary = uuid.uuid4().hex
        resp = await self.transport.send(
            "POST", f"{self.transport.endpoint}/batch/storage/v1",
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            body=batch_delete_body(paths, boundary), ok=(400, 404, 405, 501),
        )  # fmt: skip
        if resp.status >= 400:
            return None
        return parse_batch_response(resp.headers.get("Content-Type", ""), resp.body)

    async def aclose(self) -> None:
        await self._session.close()

    def release(self) -> None:
        release_session(self._session)
