"""``s3://bucket/prefix``: Amazon S3 and S3-compatible servers, over aiobotocore.

The filesystem rules (directories as prefixes and ``dir/`` markers, batched
``rmtree``, copy-then-delete ``rename``, multipart writes, pinned ranged reads)
live in :mod:`artifactio.backends._objectstore`; this module is the thin S3
glue: one aiobotocore client per event loop, and one mapping from S3's errors
to Python's (:func:`._s3_errors.map_error`), applied at the boundary around every request
(:meth:`S3Client.map_errors`).

What it asks of the server:

- ``x`` modes send ``If-None-Match: *`` on ``PutObject`` and on
  ``CompleteMultipartUpload``, so of two racing creators exactly one wins.
- Reads send ``If-Match`` with the ETag first read, so a file replaced while
  it is being read fails with ``OSError(ESTALE)`` instead of mixing versions.
- Writes are checked by the server: ``PutObject`` sends ``Content-MD5``, and a
  multipart upload's parts carry CRC-32 checksums; a body that arrived
  different is refused. ``PutObject`` also stores the object's MD5 in its
  metadata (``x-amz-meta-artifactio-md5``), which ``stat`` reports as its
  checksum (``"md5:<hex>"``), so ``sync(compare="checksum")`` compares it
  without reading the object. A multipart upload starts before its bytes are
  seen: it carries that metadata only when its writer was told the file's MD5
  up front (``_open_writer_with_checksum``, which bulk transfers use), and then
  completes only if the bytes written have that MD5 (a bulk transfer declares
  each part's CRC-32 with it, which every part must have: see
  :class:`~._s3_upload.S3Upload`); an object written in parts through
  ``open(..., "wb")`` reports no checksum.
- ``copyfile`` and ``rename`` use ``CopyObject`` (``UploadPartCopy`` in parts
  above 5 GiB): no data passes through the client.
- Multipart uploads and ``x``-mode ``PutObject`` carry a write token in their
  metadata (``x-amz-meta-artifactio-write``), and request bodies are sent under
  a stall bound: see :mod:`._s3_upload`, which also aborts the uploads that
  lost answers to a repeated ``CreateMultipartUpload`` left behind.

Credentials: ``key``/``secret``/``token`` when given, else the standard AWS
chain (environment, config files, instance roles). The endpoint: ``endpoint_url``,
else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, else AWS; a custom
endpoint is addressed path-style (``http://host:port/bucket/key``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import (
    ClientError,
)

from .. import __version__
from .._concurrency import for_each, shielded
from .._config import S3Config, check_endpoint
from .._exceptions import InvalidPathError, mark_retried, was_retried
from .._paths import StoreRoot
from .._redact import guard_loggers, register_secrets, register_url
from ._objectstore import (
    LIST_PAGE,
    ListPage,
    ObjectClient,
    ObjectMeta,
    ObjectRead,
    ObjectStore,
    ObjectStream,
    Upload,
    object_changed,
    read_body,
    redact_url,
    release_session,
)
from ._objectstore._client import CHECKSUM_KEY, WRITE_TOKEN, new_token, read_within
from ._s3_errors import (
    FAILURES,
    NOT_FOUND,
    error_code,
    error_message,
    map_error,
    retried_by_botocore,
)
from ._s3_lean import MAX_BODY, LeanS3
from ._s3_upload import BoundedSession, S3Upload, abort_orphans, create_upload, token_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from .._paths import PathType
    from ._objectstore._writer import Declared

__all__ = ["LOGGERS", "S3Client", "S3Store"]

logger = logging.getLogger("artifactio.s3")

GiB = 1024**3

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters XML 1.0 cannot hold (surrogates never reach here): S3 speaks XML, so a
store refuses paths holding them (objects named so by other tools still list and go)."""

_NOT_BATCHED = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")
"""Characters a key cannot carry unchanged in a ``DeleteObjects`` body: XML forbids
them, and an XML parser reads a ``\\r`` (which botocore sends as it is) as ``\\n``."""

LOGGERS = ("botocore", "aiobotocore", "aiohttp", "artifactio")
"""The loggers whose records a store keeps free of secrets (see :func:`guard_loggers`)."""


def _etag(value: object) -> str | None:
    text = str(value or "").strip('"')
    return text or None


def _timestamp(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


class S3Client(ObjectClient):
    """:class:`ObjectClient` over one aiobotocore S3 client (of one event loop).

    Every request runs inside :meth:`map_errors`, so S3's failures leave as the
    builtin errors they mean, and inside :meth:`request` (directly or as a step
    of a larger counted operation), so that closing waits for it.
    """

    delete_batch = 1000
    prune_empty_dirs = True
    parts_in_any_order = True
    checks_writes = True  # Content-MD5 on single PUTs, CRC-32 on every part

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
        retried: bool = False,
        lean: LeanS3 | None = None,
    ) -> None:
        super().__init__(store=store, close_grace=read_timeout)
        self._retried = retried
        self._lean = lean
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
            OSError: What :func:`map_error` makes of the failure, ``from`` it.
        """
        try:
            yield
        except FAILURES as exc:
            mapped = map_error(exc, op, bucket, key, self._endpoint)
            if self._retried and (retried_by_botocore(exc) or was_retried(exc)):
                mark_retried(mapped)  # not again in a transfer
            raise mapped from exc

    async def head(self, bucket: str, key: str) -> ObjectMeta | None:
        try:
            with self.map_errors("stat", bucket, key), self.request("stat"):
                r = await (self._lean or self.s3).head_object(Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        etag = _etag(r.get("ETag"))
        md5 = (r.get("Metadata") or {}).get(CHECKSUM_KEY)
        return ObjectMeta(
            key,
            r["ContentLength"],
            _timestamp(r.get("LastModified")),
            etag,
            r.get("ETag"),
            f"md5:{md5}" if md5 else None,
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
        # botocore asks for EncodingType=url and decodes what comes back, so keys that
        # XML cannot hold (\x01...) list unchanged.
        with self.map_errors("list", bucket, prefix), self.request("list"):
            r = await (self._lean or self.s3).list_objects_v2(**kwargs)
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
            if start == 0 and error_code(exc.__cause__) == "InvalidRange":
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

    async def open_stream(
        self, bucket: str, key: str, start: int, *, version: str | None
    ) -> ObjectStream | None:
        ranged = f"bytes={start}-"
        read: Callable[[int], Awaitable[bytes]]
        close: Callable[[], object]
        try:
            with self.map_errors("read", bucket, key), self.request("read"):
                if self._lean is not None:
                    response = await self._lean.open_object(
                        Bucket=bucket, Key=key, Range=ranged, IfMatch=version
                    )
                    ranged_answer = response.status == 206
                    read, close = response.content.read, response.close
                else:
                    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": ranged}
                    if version:
                        kwargs["IfMatch"] = version
                    r = await self.s3.get_object(**kwargs)
                    ranged_answer = bool(r.get("ContentRange"))
                    read, close = r["Body"].read, r["Body"].close
        except OSError as exc:
            if version and isinstance(exc, FileExistsError):
                raise object_changed("read", f"s3://{bucket}/{key}") from exc
            raise
        if not ranged_answer:  # the whole object came: read it by ranges instead
            close()
            return None

        async def next_bytes() -> bytes:
            with self.map_errors("read", bucket, key), self.request("read"):
                return await read_within(read, self._read_timeout)

        return ObjectStream(next_bytes, close)

    async def _get(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """``GetObject`` and its body (read with our own stall timeout)."""
        with self.request("read"):
            if self._lean is not None:
                return await self._lean.get_object(**kwargs)
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
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        metadata = {CHECKSUM_KEY: md5.hex()}
        kwargs: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": data,
            "ContentMD5": base64.b64encode(md5).decode(),  # S3 refuses a body that differs
            "Metadata": metadata,
        }
        token = new_token() if exclusive else None
        if token is not None:
            kwargs["IfNoneMatch"] = "*"
            metadata[WRITE_TOKEN] = token
        try:
            lean = self._lean if len(data) <= MAX_BODY else None
            with self.map_errors("write", bucket, key), self.request("write"):
                await (lean or self.s3).put_object(**kwargs)
        except FileExistsError:
            # A repeat (the first answer lost) meets the object the first attempt made.
            if token is None or await token_of(self, bucket, key) != token:
                raise

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
                if "larger than the maximum" not in error_message(exc):
                    raise
                meta = await self.head(bucket, src)  # above 5 GiB: copy in parts
                if meta is None:
                    raise
                await self._copy_in_parts(bucket, src, dst, meta.size)

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep a clean-up task until it ends (``aclose`` waits for it); log its failure."""
        self._orphans.add(task)
        task.add_done_callback(self._orphan_done)

    def _orphan_done(self, task: asyncio.Task[Any]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("could not abort an orphaned upload: %s", task.exception())

    async def _copy_in_parts(self, bucket: str, src: str, dst: str, size: int) -> None:
        part = max(self._copy_part_size, -(-size // 10_000))
        upload_id, creation = await create_upload(self, "copy", bucket, dst)
        if creation.repeated:
            await abort_orphans(self, bucket, dst, creation, upload_id)
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
            with shielded(), contextlib.suppress(*FAILURES):
                await self.s3.abort_multipart_upload(Bucket=bucket, Key=dst, UploadId=upload_id)
            raise

    async def delete(self, bucket: str, key: str) -> None:
        with self.map_errors("delete", bucket, key), self.request("delete"):
            try:
                await (self._lean or self.s3).delete_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in NOT_FOUND:
                    raise  # a missing key is fine, a missing bucket is not

    async def delete_many(self, bucket: str, keys: list[str]) -> None:
        # Keys an XML body cannot carry (made by other tools) are deleted one by one.
        alone = [k for k in keys if _NOT_BATCHED.search(k)]
        if alone:
            keys = [k for k in keys if not _NOT_BATCHED.search(k)]
            await for_each(alone, lambda k: self.delete(bucket, k), limit=self._max_in_flight)
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
            if code in NOT_FOUND:
                continue
            fake = ClientError({"Error": failure, "ResponseMetadata": {}}, "DeleteObjects")
            key = failure.get("Key", "")
            raise map_error(fake, "delete", bucket, key, self._endpoint) from None

    async def upload(
        self, bucket: str, key: str, *, exclusive: bool, declared: Declared | None = None
    ) -> S3Upload:
        """Start a multipart upload; ``declared``: the object's MD5, kept in its metadata.

        The upload (:class:`S3Upload`) checks the parts' CRC-32s declared with
        it; without them the caller makes sure of the MD5 (``ObjectWriter``).
        """
        token = new_token()
        metadata = {WRITE_TOKEN: token}
        if declared is not None and declared.md5 is not None:
            metadata[CHECKSUM_KEY] = declared.md5
        with self.request("write"):
            upload_id, creation = await create_upload(
                self, "write", bucket, key, ChecksumAlgorithm="CRC32", Metadata=metadata
            )
        return S3Upload(
            self, bucket, key, upload_id,
            exclusive=exclusive, max_in_flight=self._max_in_flight, token=token, creation=creation,
            part_crcs=declared.part_crcs if declared else None,
        )  # fmt: skip

    async def aclose(self) -> None:
        if self._orphans:
            await asyncio.wait(self._orphans, timeout=30)
        await self.s3.close()

    def release(self) -> None:
        # aiobotocore keeps its aiohttp sessions there, one per proxy (None: no proxy).
        for session in list((self.s3._endpoint.http_session._sessions or {}).values()):
            release_session(session)


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

    The endpoint is checked at once (``endpoint_url``, else ``AWS_ENDPOINT_URL_S3``,
    else ``AWS_ENDPOINT_URL``). A ``user:password@`` in it is never sent nor shown:
    S3 requests carry their own signed ``Authorization``.

    Raises:
        pydantic.ValidationError: An unknown or invalid option, a root whose bucket
            is not a valid bucket name (a ``ValueError``; no value is shown).
        ValueError: ``key`` without ``secret`` or the reverse; a root without a
            bucket, or whose ``..`` climbs out of it; an endpoint from the
            environment that is not an ``http(s)://host[:port]`` URL.
    """

    scheme: ClassVar[str] = "s3"

    multipart_copy_threshold: int = 5 * GiB
    """Objects larger than this are copied with ``UploadPartCopy`` (S3's CopyObject limit)."""

    copy_part_size: int = 1 * GiB
    """Part size of server-side copies in parts (grown to stay within 10,000 parts)."""

    lean_requests: bool = True
    """Send small hot requests on the lean path (:mod:`._s3_lean`) where it applies."""

    _kept_checksum: ClassVar[str | None] = "md5"

    def __init__(self, root: str = "s3://", **options: Any) -> None:
        self.config = S3Config(path=root, **options)
        if (self.config.key is None) != (self.config.secret is None):
            raise ValueError("S3Store: give both key and secret, or neither")
        super().__init__(
            StoreRoot.parse(self.config.path),
            concurrency=self.config.concurrency,
            part_size=self.config.part_size,
        )
        cfg = self.config
        register_secrets(*(s.get_secret_value() for s in (cfg.key, cfg.secret, cfg.token) if s))
        endpoint = cfg.endpoint_url
        for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if not endpoint and os.environ.get(variable):
                endpoint = check_endpoint(os.environ[variable], variable)
        if endpoint:
            register_url(endpoint)
        self.endpoint_url = redact_url(endpoint) if endpoint else None
        """The endpoint requests go to (``None``: AWS), without any ``user:password@``."""
        guard_loggers(*LOGGERS)

    def _key(self, path: PathType, op: str) -> str:
        """The key of ``path``; a key that XML cannot hold is refused, before any request."""
        key = super()._key(path, op)
        bad = _NOT_XML.search(self._obj(key))
        if bad is not None:
            raise InvalidPathError(
                f"{op}: S3 keys cannot hold {bad.group()!r} (XML 1.0 forbids it): "
                f"{self._full(key)!r}"
            )
        return key

    async def _start_upload(
        self, client: ObjectClient, obj: str, *, exclusive: bool, declared: Declared
    ) -> Upload:
        assert isinstance(client, S3Client)  # what _new_client makes
        return await client.upload(self.bucket, obj, exclusive=exclusive, declared=declared)

    async def _new_client(self) -> S3Client:
        cfg = self.config
        endpoint = self.endpoint_url
        aio_config = AioConfig(
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            retries={"mode": "standard", "total_max_attempts": cfg.retries + 1},
            http_session_cls=BoundedSession,  # request bodies sent with a stall bound
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
        guard_loggers(*LOGGERS)  # and those the client's modules made meanwhile
        return S3Client(
            s3,
            store=self.root,
            endpoint=redact_url(endpoint or "AWS S3"),
            read_timeout=cfg.read_timeout,
            max_in_flight=max(1, min(cfg.concurrency, 4)),
            copy_threshold=self.multipart_copy_threshold,
            copy_part_size=self.copy_part_size,
            retried=cfg.retries > 0,
            lean=(
                LeanS3.attach(s3, retries=cfg.retries, read_timeout=cfg.read_timeout)
                if self.lean_requests
                else None
            ),
        )
