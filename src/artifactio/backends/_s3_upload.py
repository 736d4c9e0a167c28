"""S3 writes in parts, and what keeps a write's outcome exact when answers are lost.

A lost answer is one the server acted on but the client never read (the
connection broke after the request went out). botocore then repeats the
request, and the repeat meets the first attempt's work:

- **Write token.** Every multipart upload, and every ``x``-mode ``PutObject``,
  carries a random token in the object's metadata
  (``x-amz-meta-artifactio-write``). When a repeated ``PutObject`` with
  ``If-None-Match: *`` is refused (412), or a repeated
  ``CompleteMultipartUpload`` is refused (412 in ``x`` mode, ``NoSuchUpload``
  once the first attempt completed), a ``HEAD`` tells our own object (the
  write succeeded) from another writer's (``FileExistsError`` stands).
- **Orphaned uploads.** A repeated ``CreateMultipartUpload`` may leave behind
  the upload its first attempt made, whose id never reached us. S3 lists
  neither an upload's metadata nor anything else a writer could mark it with,
  so such an upload is recognised by what it is (:func:`abort_orphans`): an
  upload of the same key, initiated while our create was under way (server
  time, anchored on the listing's ``Date``), that still has no part when our
  write ends. A writer always sends a part right after creating its upload, so
  an upload without parts by then is ours; one with parts never is.
- **Bounded sends.** :class:`BoundedSession` is aiobotocore's HTTP session with
  its request bodies sent under a stall bound
  (:func:`~._objectstore._client.send_bounded`): aiohttp bounds neither the
  wait for ``100 Continue`` nor a body the server stopped reading.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import functools
import io
import logging
import time
import zlib
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, cast

from aiobotocore.httpsession import AIOHTTPSession
from botocore.exceptions import ClientError, HTTPClientError

from .._blocking import run_blocking
from .._concurrency import shielded
from .._exceptions import IntegrityError
from ._objectstore import Upload
from ._objectstore._client import WRITE_TOKEN, SendBody, send_bounded

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Sequence

    from .s3 import S3Client

__all__ = [
    "BoundedSession",
    "Creation",
    "S3Upload",
    "abort_orphans",
    "create_upload",
    "token_of",
]

logger = logging.getLogger("artifactio.s3")


@dataclass(frozen=True)
class Creation:
    """When one ``CreateMultipartUpload`` call ran, and whether it was repeated.

    Attributes:
        started: When the call began (``time.monotonic()``).
        ended: When it returned or failed.
        repeated: botocore made more than one attempt (or the call failed in a
            way that does not rule that out): an earlier attempt may have made an
            upload whose id never reached us.
    """

    started: float
    ended: float
    repeated: bool


async def create_upload(
    client: S3Client, op: str, bucket: str, key: str, **extra: Any
) -> tuple[str, Creation]:
    """Start a multipart upload; its id, and how the create went.

    The request runs shielded: if the caller is cancelled meanwhile, the upload
    the server may still make is aborted as soon as its id is known. When the
    create fails, or is cancelled, after botocore repeated it, the uploads that
    lost answers left behind are aborted too (:func:`abort_orphans`); after a
    repeated create that succeeded, that is for the caller to do once its write
    ends (:class:`S3Upload` does).

    Args:
        client: The client.
        op: The operation, for messages (``"write"``, ``"copy"``).
        bucket: The bucket.
        key: The key.
        **extra: More ``CreateMultipartUpload`` parameters.
    """
    started = time.monotonic()
    starting = asyncio.get_running_loop().create_task(
        client.s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)
    )
    with client.map_errors(op, bucket, key):
        try:
            created = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(
                functools.partial(_after_cancelled_create, client, bucket, key, started)
            )
            raise
        except Exception as exc:
            creation = Creation(started, time.monotonic(), _maybe_repeated(exc))
            if creation.repeated:
                await abort_orphans(client, bucket, key, creation, None)
            raise
    repeated = created.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
    return str(created["UploadId"]), Creation(started, time.monotonic(), repeated)


def _maybe_repeated(exc: BaseException) -> bool:
    """Whether a failed request may have acted more than once (botocore repeated it).

    Only an error answer to a first attempt rules that out.
    """
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0
    return True


def _after_cancelled_create(
    client: S3Client, bucket: str, key: str, started: float, task: asyncio.Task[Any]
) -> None:
    """The create of a cancelled writer ended: abort what it made (in the background)."""
    if task.cancelled():
        return
    failure = task.exception()
    if failure is not None and not _maybe_repeated(failure):
        return
    upload_id = None if failure is not None else str(task.result()["UploadId"])
    creation = Creation(started, time.monotonic(), True)
    client.track(
        asyncio.get_running_loop().create_task(
            _abort_created(client, bucket, key, upload_id, creation)
        )
    )


async def _abort_created(
    client: S3Client, bucket: str, key: str, upload_id: str | None, creation: Creation
) -> None:
    """Abort an upload a cancelled writer never learned of, and any orphans of its create."""
    if upload_id is not None:
        await client.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    await abort_orphans(client, bucket, key, creation, upload_id)


async def token_of(client: S3Client, bucket: str, key: str) -> str | None:
    """The write token of the object at ``key`` (``None``: no object, or no token)."""
    try:
        with client.map_errors("write", bucket, key), client.request("write"):
            answer = await client.s3.head_object(Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None
    token = answer.get("Metadata", {}).get(WRITE_TOKEN)
    return str(token) if token else None


async def abort_orphans(
    client: S3Client, bucket: str, key: str, creation: Creation, ours: str | None
) -> None:
    """Abort the uploads of ``key`` that the lost answers of one create left behind.

    Candidates are the pending uploads of exactly ``key``, other than ``ours``,
    whose initiation falls within the create's run, on the server's clock: the
    listing's ``Date`` (whole seconds) anchors it, and initiation times may be
    whole seconds too (SeaweedFS), hence a second of slack on either side.
    Among those, only uploads without a part are aborted. Best effort: a failure
    is logged, never raised.

    Args:
        client: The client that made the create.
        bucket: The bucket.
        key: The key the upload was for.
        creation: When the create ran.
        ours: The id the create answered with (``None``: it failed).
    """
    try:
        with shielded(), client.map_errors("write", bucket, key):
            asked = time.monotonic()
            uploads, date = await _uploads_of(client, bucket, key)
            now = time.monotonic()
            if date is None:
                logger.warning("cannot tell orphaned uploads of %r: no Date in the answer", key)
                return
            earliest = date - (now - creation.started) - 1.0
            latest = date + 1.0 - (asked - creation.ended)
            for upload in uploads:
                upload_id = upload["UploadId"]
                if upload_id == ours or not earliest <= upload["Initiated"].timestamp() <= latest:
                    continue
                with client.request("write", cleanup=True):
                    parts = await client.s3.list_parts(
                        Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=1
                    )
                    if parts.get("Parts"):
                        continue  # somebody sends parts to it: not an orphan of ours
                    await client.s3.abort_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload_id
                    )
    except Exception:
        logger.warning("could not abort the orphaned uploads of %r", key, exc_info=True)


async def _uploads_of(
    client: S3Client, bucket: str, key: str
) -> tuple[list[dict[str, Any]], float | None]:
    """The pending uploads of exactly ``key``, and the server's clock (the first ``Date``)."""
    uploads: list[dict[str, Any]] = []
    date: float | None = None
    markers: dict[str, str] = {}
    while True:
        with client.request("write", cleanup=True):
            page = await client.s3.list_multipart_uploads(Bucket=bucket, Prefix=key, **markers)
        if date is None:
            header = page.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
            with contextlib.suppress(TypeError, ValueError):
                date = parsedate_to_datetime(header).timestamp() if header else None
        uploads.extend(u for u in page.get("Uploads", ()) if u.get("Key") == key)
        if not page.get("IsTruncated") or page.get("NextKeyMarker", "") > key:
            return uploads, date
        markers = {
            "KeyMarker": page.get("NextKeyMarker", ""),
            "UploadIdMarker": page.get("NextUploadIdMarker", ""),
        }


class S3Upload(Upload):
    """A multipart upload; parts go up in any order, several at once.

    Every part carries its CRC-32, which S3 checks. An upload told the CRC-32 of
    each part up front (``part_crcs``: that of the object's MD5 in its metadata,
    computed before the upload) computes that of each part's bytes itself (in a
    worker thread, the CRC-32 botocore would compute) and sends the part only
    when the two agree, else raises :class:`~artifactio.IntegrityError`; it
    completes only when every declared part, and no other, was sent. So the MD5
    kept with the object is of the bytes it holds, without hashing them again.

    Args:
        client: The client that created it.
        bucket: The bucket.
        key: The key.
        upload_id: The upload's id.
        exclusive: Completing fails if the object exists (``If-None-Match: *``).
        max_in_flight: Parts sent at once.
        token: The write token in the upload's metadata.
        creation: How its create went (orphans are looked for at the end when
            it was repeated).
        part_crcs: The CRC-32 each part must have, in order (``None``: any).
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        upload_id: str,
        *,
        exclusive: bool,
        max_in_flight: int,
        token: str,
        creation: Creation,
        part_crcs: Sequence[int] | None = None,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._id = upload_id
        self._exclusive = exclusive
        self._token = token
        self._creation: Creation | None = creation if creation.repeated else None
        self._parts: dict[int, dict[str, Any]] = {}
        self._crcs = tuple(part_crcs) if part_crcs is not None else None
        self.max_in_flight = max_in_flight

    def _mismatch(self, detail: str) -> IntegrityError:
        return IntegrityError(errno.EIO, f"write: {detail}", f"s3://{self._bucket}/{self._key}")

    async def _declared_crc(self, number: int, data: bytes) -> dict[str, str]:
        """The checksum parameter of part ``number``, which must have its declared CRC-32."""
        assert self._crcs is not None
        if not 0 < number <= len(self._crcs):
            raise self._mismatch(f"part {number} is beyond the {len(self._crcs)} declared")
        crc = await run_blocking(zlib.crc32, data)
        if crc != self._crcs[number - 1]:
            raise self._mismatch(
                f"part {number} has CRC-32 {crc:08x}, not the declared "
                f"{self._crcs[number - 1]:08x} (the source changed after its checksum was taken)"
            )
        return {"ChecksumCRC32": base64.b64encode(crc.to_bytes(4, "big")).decode()}

    async def add_part(self, number: int, data: bytes) -> None:
        client = self._client
        # Told the part's CRC-32, botocore sends it rather than computing it.
        extra = await self._declared_crc(number, data) if self._crcs is not None else {}
        with client.map_errors("write", self._bucket, self._key), client.request("write"):
            response = await client.s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC32",
                **extra,
            )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        self._parts[number] = part

    async def complete(self, final: bytes) -> None:
        if final or not self._parts:
            await self.add_part(max(self._parts, default=0) + 1, final)
        if self._crcs is not None and len(self._parts) != len(self._crcs):
            raise self._mismatch(f"{len(self._parts)} parts sent, {len(self._crcs)} declared")
        extra = {"IfNoneMatch": "*"} if self._exclusive else {}
        client = self._client
        try:
            with client.map_errors("write", self._bucket, self._key), client.request("write"):
                await client.s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._id,
                    MultipartUpload={"Parts": [self._parts[n] for n in sorted(self._parts)]},
                    **extra,
                )
        except (FileExistsError, FileNotFoundError):
            # A repeat after our own completion (its answer lost) is refused:
            # 412 in x mode, NoSuchUpload otherwise. Ours if it carries our token.
            if await token_of(client, self._bucket, self._key) != self._token:
                raise
        finally:
            await self._settle()

    async def abort(self) -> None:
        client = self._client
        try:
            with (
                contextlib.suppress(FileNotFoundError),  # already gone
                client.map_errors("abort", self._bucket, self._key),
                client.request("abort", cleanup=True),
            ):
                await client.s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._id
                )
        finally:
            await self._settle()

    async def _settle(self) -> None:
        """Once: abort the uploads lost answers to our create left behind."""
        creation, self._creation = self._creation, None
        if creation is not None:
            await abort_orphans(self._client, self._bucket, self._key, creation, self._id)


class BoundedSession(AIOHTTPSession):  # type: ignore[misc]  # untyped base
    """aiobotocore's HTTP session, sending request bodies under a stall bound.

    A body (bytes, or the ``aws-chunked`` stream botocore makes over HTTPS; other
    bodies, which artifactio never sends, go as they are) that takes no bytes for
    ``read_timeout`` fails the attempt with an
    ``HTTPClientError``, which botocore retries like a dropped connection; see
    :func:`~._objectstore._client.send_bounded`, also for cancellation.
    """

    def __init__(self, *args: Any, timeout: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, timeout=timeout, **kwargs)
        connect, read = timeout if isinstance(timeout, (tuple, list)) else (timeout, timeout)
        self._connect_timeout: float | None = connect
        self._read_timeout: float | None = read

    async def send(self, request: Any) -> Any:
        data = request.body
        payload = _payload(data)
        if payload is None or self._read_timeout is None:
            return await super().send(request)
        body = SendBody(payload)
        request.body = body
        try:
            return await send_bounded(
                functools.partial(super().send, request),
                body,
                connect_timeout=self._connect_timeout or 0.0,
                idle=self._read_timeout,
            )
        except TimeoutError as exc:
            raise HTTPClientError(error=exc) from exc
        finally:
            request.body = data


def _payload(data: object) -> memoryview | AsyncIterable[bytes] | None:
    """What of a botocore request body :class:`SendBody` can send (``None``: leave it).

    botocore hands bytes bodies over as a ``BytesIO`` (whose ``getvalue()`` gives
    the very bytes it holds, no copy), over HTTPS an ``aws-chunked`` stream.
    """
    if isinstance(data, io.BytesIO):
        view = memoryview(data.getvalue())[data.tell() :]
        return view if view.nbytes else None
    if isinstance(data, (bytes, bytearray)):
        return memoryview(data) if data else None
    if hasattr(data, "__aiter__"):
        return cast("AsyncIterable[bytes]", data)
    return None
