"""``s3://bucket/prefix``: Amazon S3 and S3-compatible servers, over aiobotocore.

The filesystem rules (directories as prefixes and ``dir/`` markers, batched
``rmtree``, copy-then-delete ``rename``, multipart writes, pinned ranged reads)
live in :mod:`artifactio.backends._objectstore`; this module is the thin S3
glue: one aiobotocore client per event loop, and one mapping from S3's errors
to Python's (:func:`_map_error`), applied at the boundary around every request
(:meth:`S3Client.map_errors`).

What it asks of the server:

- ``x`` modes send ``If-None-Match: *`` on ``PutObject`` and on
  ``CompleteMultipartUpload``, so of two racing creators exactly one wins.
- Reads send ``If-Match`` with the ETag first read, so a file replaced while
  it is being read fails with ``OSError(ESTALE)`` instead of mixing versions.
- ``copyfile`` and ``rename`` use ``CopyObject`` (``UploadPartCopy`` in parts
  above 5 GiB): no data passes through the client.

Credentials: ``key``/``secret``/``token`` when given, else the standard AWS
chain (environment, config files, instance roles). The endpoint: ``endpoint_url``,
else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, else AWS; a custom
endpoint is addressed path-style (``http://host:port/bucket/key``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .. import __version__
from .._concurrency import for_each, shielded
from .._config import S3Config
from .._exceptions import StoreConnectionError, os_error
from .._paths import StoreRoot
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
    from collections.abc import Iterator, Mapping

__all__ = ["S3Client", "S3Store"]

logger = logging.getLogger("artifactio.s3")

GiB = 1024**3

_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "ExpiredToken",
        "Forbidden",
        "InvalidAccessKeyId",
        "InvalidToken",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "403",
    }
)
_PRECONDITION = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})


def _map_error(exc: Exception, op: str, bucket: str, key: str, endpoint: str) -> OSError:
    """Translate an aiobotocore/botocore failure into the builtin ``OSError`` it means.

    Args:
        exc: What the client raised.
        op: The operation, for the message (``"read"``, ``"list"``...).
        bucket: The bucket.
        key: The key (or prefix) the operation was about.
        endpoint: The endpoint, for connection errors.

    Returns:
        The error to raise (``raise _map_error(...) from exc``).
    """
    path = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        error: Mapping[str, Any] = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = str(error.get("Message", "")) or code
        detail = f"{message} ({code})" if code and code != message else message
        if code == "NoSuchBucket":
            return os_error(FileNotFoundError, op, path, f"bucket {bucket!r} does not exist")
        if code in _NOT_FOUND or (status == 404 and code not in _DENIED):
            return os_error(FileNotFoundError, op, path)
        if code in _DENIED or status == 403:
            return os_error(PermissionError, op, path, f"access denied: {detail}")
        if code in _PRECONDITION or status == 412:
            return os_error(FileExistsError, op, path)
        if code == "ExistingObjectIsFile":  # SeaweedFS: a directory marker over a file
            return os_error(FileExistsError, op, path, f"a file is in the way: {detail}")
        if code == "ExistingObjectIsDirectory":
            return os_error(IsADirectoryError, op, path)
        kind = "server error" if status >= 500 else "request failed"
        return os_error(OSError, op, path, f"{kind}: {detail} (HTTP {status})")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)):
        return os_error(PermissionError, op, path, f"no usable AWS credentials: {exc}")
    if isinstance(
        exc,
        (
            BotoConnectionError,
            HTTPClientError,
            IncompleteReadError,
            aiohttp.ClientError,
            asyncio.TimeoutError,
            TimeoutError,
        ),
    ):
        return StoreConnectionError(f"{op}: cannot reach {endpoint} for {path!r}: {exc}")
    return os_error(OSError, op, path, f"{type(exc).__name__}: {exc}")


_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)


def _code(exc: BaseException | None) -> str:
    """S3's error code of a ``ClientError`` (``""`` for other failures)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _message(exc: BaseException) -> str:
    """S3's error message of a ``ClientError`` (``""`` for other failures)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return ""


def _etag(value: object) -> str | None:
    text = str(value or "").strip('"')
    return text or None


def _timestamp(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


class _S3Upload(Upload):
    """A multipart upload; parts go up in any order, several at once."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        upload_id: str,
        exclusive: bool,
        max_in_flight: int,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._id = upload_id
        self._exclusive = exclusive
        self._parts: dict[int, dict[str, Any]] = {}
        self.max_in_flight = max_in_flight

    async def add_part(self, number: int, data: bytes) -> None:
        client = self._client
        with client.map_errors("write", self._bucket, self._key), client.request("write"):
            response = await client.s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC32",
            )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        self._parts[number] = part

    async def complete(self, final: bytes) -> None:
        if final or not self._parts:
            await self.add_part(max(self._parts, default=0) + 1, final)
        extra = {"IfNoneMatch": "*"} if self._exclusive else {}
        client = self._client
        with client.map_errors("write", self._bucket, self._key), client.request("write"):
            await client.s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._id,
                MultipartUpload={"Parts": [self._parts[n] for n in sorted(self._parts)]},
                **extra,
            )

    async def abort(self) -> None:
        client = self._client
        with (
            contextlib.suppress(FileNotFoundError),  # already gone
            client.map_errors("abort", self._bucket, self._key),
            client.request("abort", cleanup=True),
        ):
            await client.s3.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._id
            )


class S3Client(ObjectClient):
    """:class:`ObjectClient` over one aiobotocore S3 client (of one event loop).

    Every request runs inside :meth:`map_errors`, so S3's failures leave as the
    builtin errors they mean, and inside :meth:`request` (directly or as a step
    of a larger counted operation), so that closing waits for it.
    """

    delete_batch = 1000
    prune_empty_dirs = True

    def __init__(
        self,
        s3: Any,
        *,
        store: str,
        endpoint: str,
        read_timeout: float,
        max_in_flight: int,
        copy_threshold: int,
        copy_part_size: int,
    ) -> None:
        super().__init__(store=store, close_grace=read_timeout)
        self.s3 = s3
        self._read_timeout = read_timeout
        self._endpoint = endpoint
        self._max_in_flight = max_in_flight
        self._copy_threshold = copy_threshold
        self._copy_part_size = copy_part_size
        self._orphans: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def map_errors(self, op: str, bucket: str, key: str) -> Iterator[None]:
        """Raise the failures of the requests inside as the builtin errors they mean.

        Args:
            op: The operation, for the message (``"read"``, ``"list"``...).
            bucket: The bucket.
            key: The key (or prefix) the operation is about.

        Raises:
            OSError: What :func:`_map_error` makes of the failure, ``from`` it.
        """
        try:
            yield
        except _FAILURES as exc:
            raise _map_error(exc, op, bucket, key, self._endpoint) from exc

    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        try:
            with self.map_errors("stat", bucket, key), self.request("stat"):
                r = await self.s3.head_object(Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        etag = _etag(r.get("ETag"))
        return ObjectMeta(
            key, r["ContentLength"], _timestamp(r.get("LastModified")), etag, r.get("ETag")
        )

    async def list_page(
        self,
        bucket: str,
        prefix: str,
        *,
        delimiter: str | None,
        limit: int = LIST_PAGE,
        token: str | None = None,
    ) -> ListPage:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        if token:
            kwargs["ContinuationToken"] = token
        with self.map_errors("list", bucket, prefix), self.request("list"):
            r = await self.s3.list_objects_v2(**kwargs)
        objects = [
            ObjectMeta(
                o["Key"],
                o["Size"],
                _timestamp(o.get("LastModified")),
                _etag(o.get("ETag")),
                o.get("ETag"),
            )
            for o in r.get("Contents", ())
        ]
        prefixes = [p["Prefix"] for p in r.get("CommonPrefixes", ())]
        next_token = r.get("NextContinuationToken") if r.get("IsTruncated") else None
        return ListPage(objects, prefixes, next_token)

    async def get_range(
        self, bucket: str, key: str, start: int, end: int, *, version: str | None = None
    ) -> ObjectRead:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
        if version:
            kwargs["IfMatch"] = version
        try:
            with self.map_errors("read", bucket, key):
                r, data = await self._get(kwargs)
        except OSError as exc:
            # A zero-size object has no byte 0; a failed If-Match means it was replaced.
            if start == 0 and _code(exc.__cause__) == "InvalidRange":
                return await self._get_empty(bucket, key, version)
            if version and isinstance(exc, FileExistsError):
                raise object_changed("read", f"s3://{bucket}/{key}") from exc
            raise
        content_range = r.get("ContentRange")
        if content_range:
            size = int(content_range.rpartition("/")[2])
        else:  # the server ignored the range and sent everything
            size = len(data)
            data = data[start:end]
        raw_etag = r.get("ETag")
        return ObjectRead(data, size, raw_etag, _etag(raw_etag), _timestamp(r.get("LastModified")))

    async def _get(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """``GetObject`` and its body (read with our own stall timeout)."""
        with self.request("read"):
            r: dict[str, Any] = await self.s3.get_object(**kwargs)
            body = r["Body"]
            try:
                data = await read_body(body.read, self._read_timeout)
            finally:
                body.close()
        return r, data

    async def _get_empty(self, bucket: str, key: str, version: str | None) -> ObjectRead:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version:
            kwargs["IfMatch"] = version
        with self.map_errors("read", bucket, key):
            r, data = await self._get(kwargs)
        raw_etag = r.get("ETag")
        return ObjectRead(
            data, len(data), raw_etag, _etag(raw_etag), _timestamp(r.get("LastModified"))
        )

    async def put(self, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if exclusive:
            kwargs["IfNoneMatch"] = "*"
        with self.map_errors("write", bucket, key), self.request("write"):
            await self.s3.put_object(**kwargs)

    async def copy(self, bucket: str, src: str, dst: str, *, size: int | None = None) -> None:
        with self.request("copy"):
            await self._copy(bucket, src, dst, size)

    async def _copy(self, bucket: str, src: str, dst: str, size: int | None) -> None:
        if size is not None and size > self._copy_threshold:
            await self._copy_in_parts(bucket, src, dst, size)
            return
        with self.map_errors("copy", bucket, src):
            try:
                await self.s3.copy_object(
                    Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src}
                )
            except ClientError as exc:
                if "larger than the maximum" not in _message(exc):
                    raise
                meta = await self.head(bucket, src)  # above 5 GiB: copy in parts
                if meta is None:
                    raise
                await self._copy_in_parts(bucket, src, dst, meta.size)

    async def _create_upload(self, op: str, bucket: str, key: str, **extra: Any) -> str:
        """Start a multipart upload and return its id.

        The request runs shielded: if the caller is cancelled meanwhile, the upload
        the server may still make is aborted as soon as its id is known.
        """
        starting = asyncio.get_running_loop().create_task(
            self.s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)
        )
        with self.map_errors(op, bucket, key):
            try:
                created = await asyncio.shield(starting)
            except BaseException:  # cancelled (if the request failed, nothing is aborted)
                starting.add_done_callback(lambda task: self._abort_orphan(task, bucket, key))
                raise
        return str(created["UploadId"])

    def _abort_orphan(self, task: asyncio.Task[Any], bucket: str, key: str) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        upload_id = task.result()["UploadId"]
        orphan = asyncio.get_running_loop().create_task(
            self.s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        )
        self._orphans.add(orphan)
        orphan.add_done_callback(self._orphan_done)

    def _orphan_done(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("could not abort an orphaned upload: %s", task.exception())

    async def _copy_in_parts(self, bucket: str, src: str, dst: str, size: int) -> None:
        part = max(self._copy_part_size, -(-size // 10_000))
        upload_id = await self._create_upload("copy", bucket, dst)
        etags: dict[int, str] = {}

        async def one(numbered: tuple[int, int]) -> None:
            number, start = numbered
            stop = min(start + part, size) - 1
            r = await self.s3.upload_part_copy(
                Bucket=bucket,
                Key=dst,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": src},
                CopySourceRange=f"bytes={start}-{stop}",
            )
            etags[number] = r["CopyPartResult"]["ETag"]

        try:
            with self.map_errors("copy", bucket, src):
                # The first failure cancels the parts still running and is raised as itself.
                await for_each(enumerate(range(0, size, part), 1), one, limit=self._max_in_flight)
                await self.s3.complete_multipart_upload(
                    Bucket=bucket,
                    Key=dst,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
                    },
                )
        except BaseException:
            with shielded(), contextlib.suppress(*_FAILURES):
                await self.s3.abort_multipart_upload(Bucket=bucket, Key=dst, UploadId=upload_id)
            raise

    async def delete(self, bucket: str, key: str) -> None:
        with self.map_errors("delete", bucket, key), self.request("delete"):
            try:
                await self.s3.delete_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if _code(exc) not in _NOT_FOUND:  # a missing key is fine, a missing bucket is not
                    raise

    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        if not keys:
            return
        if len(keys) == 1:
            await self.delete(bucket, keys[0])
            return
        with self.map_errors("delete", bucket, keys[0]), self.request("delete"):
            r = await self.s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        for failure in r.get("Errors", ()):
            code = failure.get("Code", "")
            if code in _NOT_FOUND:
                continue
            fake = ClientError({"Error": failure, "ResponseMetadata": {}}, "DeleteObjects")
            key = failure.get("Key", "")
            raise _map_error(fake, "delete", bucket, key, self._endpoint) from None

    async def upload(self, bucket: str, key: str, *, exclusive: bool) -> Upload:
        with self.request("write"):
            upload_id = await self._create_upload("write", bucket, key, ChecksumAlgorithm="CRC32")
        return _S3Upload(self, bucket, key, upload_id, exclusive, self._max_in_flight)

    async def aclose(self) -> None:
        if self._orphans:
            await asyncio.wait(self._orphans, timeout=30)
        await self.s3.close()


# ------------------------------------------------------------------ the store

_session: AioSession | None = None
_session_pid = 0
_session_lock = threading.Lock()


def _shared_session() -> AioSession:
    """One botocore session per process: it caches the service model (~0.1 s to load)."""
    global _session, _session_pid
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            _session = AioSession()
            _session_pid = os.getpid()
        return _session


class S3Store(ObjectStore):
    """An artifact store in an S3 bucket (or an S3-compatible server).

    Args:
        root: ``s3://bucket`` or ``s3://bucket/prefix``.
        **options: The fields of :class:`~artifactio.S3Config`: ``endpoint_url``,
            ``region``, ``key``, ``secret``, ``token``, ``concurrency``,
            ``part_size`` (at least 5 MiB), ``connect_timeout``, ``read_timeout``,
            ``retries``.

    Raises:
        pydantic.ValidationError: An unknown or invalid option.
        ValueError: ``key`` without ``secret`` or the reverse; a root without a bucket.
    """

    scheme: ClassVar[str] = "s3"

    multipart_copy_threshold: int = 5 * GiB
    """Objects larger than this are copied with ``UploadPartCopy`` (S3's CopyObject limit)."""

    copy_part_size: int = 1 * GiB
    """Part size of server-side copies in parts (grown to stay within 10,000 parts)."""

    def __init__(self, root: str = "s3://", **options: Any) -> None:
        self.config = S3Config(path=root, **options)
        if (self.config.key is None) != (self.config.secret is None):
            raise ValueError("S3Store: give both key and secret, or neither")
        super().__init__(
            StoreRoot.parse(self.config.path),
            concurrency=self.config.concurrency,
            part_size=self.config.part_size,
        )
        self.endpoint_url = (
            self.config.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )

    async def _new_client(self) -> S3Client:
        cfg = self.config
        endpoint = self.endpoint_url
        aio_config = AioConfig(
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            retries={"mode": "standard", "total_max_attempts": cfg.retries + 1},
            max_pool_connections=cfg.concurrency,
            s3={"addressing_style": "path"} if endpoint else None,
            user_agent_extra=f"artifactio/{__version__}",
            # Load botocore's JSON models in a worker thread, not on the event loop.
            warm_up_loader_caches=True,
        )
        kwargs: dict[str, Any] = {"config": aio_config}
        region = cfg.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region or endpoint:
            kwargs["region_name"] = region or "us-east-1"
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if cfg.key is not None and cfg.secret is not None:
            kwargs["aws_access_key_id"] = cfg.key.get_secret_value()
            kwargs["aws_secret_access_key"] = cfg.secret.get_secret_value()
            if cfg.token is not None:
                kwargs["aws_session_token"] = cfg.token.get_secret_value()
        s3 = await _shared_session().create_client("s3", **kwargs).__aenter__()
        return S3Client(
            s3,
            store=self.root,
            endpoint=redact_url(endpoint or "AWS S3"),
            read_timeout=cfg.read_timeout,
            max_in_flight=max(1, min(cfg.concurrency, 4)),
            copy_threshold=self.multipart_copy_threshold,
            copy_part_size=self.copy_part_size,
        )
