"""The GCS JSON API's wire rules, as pure functions: no I/O here.

The GCS backend (:mod:`artifactio.backends.gcs`) is glue around these (and
around the checksums of :mod:`._gcs_checksum`):

- retry policy: which failures to repeat (:func:`should_retry`) and how long to
  wait (:func:`retry_delay`, exponential backoff with full jitter);
- error mapping: HTTP statuses, aiohttp errors, credentials that yield no token
  (:class:`TokenError`) and batch calls still failing (:class:`BatchFailure`) to
  builtin ``OSError`` subclasses (:func:`status_error`, :func:`map_error`);
- the JSON API's resource paths (:func:`object_resource`, :func:`upload_resource`,
  :func:`rewrite_resource`) and the body of a one-request upload with metadata
  (:func:`multipart_upload_body`);
- the multipart/mixed codec of batch requests (:func:`batch_delete_body`,
  :func:`parse_batch_response`);
- reading object resources, ``Content-Range`` and resumable-session ``Range`` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import errno
import functools
import json
import random
import re
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from .._exceptions import IntegrityError, StoreConnectionError, os_error
from ._objectstore import ObjectMeta

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "BATCH_LIMIT",
    "CHUNK_QUANTUM",
    "RETRY_STATUSES",
    "BatchFailure",
    "TokenError",
    "batch_delete_body",
    "content_range_total",
    "map_error",
    "multipart_upload_body",
    "object_meta",
    "object_resource",
    "parse_batch_response",
    "parse_time",
    "persisted_bytes",
    "retry_delay",
    "rewrite_resource",
    "should_retry",
    "status_error",
    "upload_resource",
]

CHUNK_QUANTUM = 256 * 1024
"""Every chunk of a resumable upload but the last is a multiple of this."""


BATCH_LIMIT = 100
"""The most calls one JSON batch request may hold."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth repeating a request for."""

# ------------------------------------------------------------------ pure policy


class TokenError(Exception):
    """No access token could be had for a request (raised by the credentials).

    Attributes:
        detail: What went wrong and where the credentials came from; never a secret.
        transient: Whether asking again may succeed (throttling, server errors,
            dropped connections); a refusal or an unusable key is final.
    """

    def __init__(self, detail: str, *, transient: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient


class BatchFailure(Exception):
    """Calls of a batch request that failed with a status worth repeating.

    Attributes:
        status: The HTTP status of the first of them.
        path: The ``gs://bucket/key`` path of the first of them.
        count: How many failed.
    """

    def __init__(self, status: int, path: str, count: int) -> None:
        super().__init__(f"{count} calls of a batch failed (HTTP {status})")
        self.status = status
        self.path = path
        self.count = count


def should_retry(exc: BaseException) -> bool:
    """Whether a failed request is worth repeating.

    Args:
        exc: What the request raised.

    Returns:
        True for throttling (429), request timeouts (408), server errors (5xx),
        dropped or refused connections and timeouts, transient token failures and
        batch calls that failed so.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, TokenError):
        return exc.transient
    if isinstance(exc, BatchFailure):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError))


def retry_delay(
    attempt: int,
    *,
    base: float = 0.1,
    cap: float = 10.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``.

    Args:
        attempt: How many retries came before this one.
        base: The ceiling of the first delay.
        cap: The largest delay.
        rand: A source of floats in ``[0, 1)``.

    Returns:
        The delay in seconds.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return float(ceiling * rand())


def _error_detail(exc: aiohttp.ClientResponseError) -> str:
    """A short description of an HTTP error: the status and GCS's own message."""
    text = exc.message or ""
    reason, _, body = text.partition(": ")
    message = body.strip()
    with_json = message.startswith("{")
    if with_json:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = str(json.loads(message)["error"]["message"])
    message = " ".join(message.split())[:200]
    head = f"HTTP {exc.status} {reason}".strip()
    return f"{head}: {message}" if message and message != reason else head


def status_error(
    status: int, detail: str, op: str, path: str, *, missing: str | None = None
) -> OSError:
    """The ``OSError`` an HTTP error status means.

    Args:
        status: The HTTP status.
        detail: A short description (status line and GCS's message).
        op: The operation, for the message.
        path: The ``gs://bucket/key`` path, for the message.
        missing: What a 404 means here (default: the path does not exist).

    Returns:
        ``FileNotFoundError`` (404), ``PermissionError`` (401, 403),
        ``FileExistsError`` (412), ``IntegrityError`` (a checksum GCS refused),
        else ``OSError(EIO)``.
    """
    if status == 404:
        return os_error(FileNotFoundError, op, path, missing or "no such file or directory")
    if status in (401, 403):
        return os_error(PermissionError, op, path, f"permission denied ({detail})")
    if status == 412:
        return os_error(FileExistsError, op, path, f"file exists ({detail})")
    if status == 400 and re.search(r"crc32c|md5|checksum|hash", detail, re.IGNORECASE):
        return IntegrityError(errno.EIO, f"{op}: checksum mismatch ({detail})", path)
    return os_error(OSError, op, path, detail, code=errno.EIO)


def map_error(
    exc: BaseException,
    op: str,
    path: str,
    *,
    endpoint: str,
    missing: str | None = None,
) -> BaseException:
    """Translate a failed request into the builtin ``OSError`` it means.

    Args:
        exc: The error: an aiohttp one, a :class:`TokenError` or a :class:`BatchFailure`.
        op: The operation, for the message.
        path: The ``gs://bucket/key`` path, for the message.
        endpoint: The service's URL, for connection errors.
        missing: What a 404 means here, e.g. ``"bucket 'b' does not exist"``
            (default: the path does not exist).

    Returns:
        The exception to raise (``exc`` itself when it needs no translation):
        ``PermissionError`` for credentials that yield no token, and
        ``artifactio.StoreConnectionError`` when the token endpoint kept failing.
    """
    if isinstance(exc, TokenError):
        if exc.transient:
            return StoreConnectionError(
                errno.EIO, f"{op}: no GCS access token ({exc.detail})", path
            )
        return os_error(PermissionError, op, path, f"unusable GCS credentials: {exc.detail}")
    if isinstance(exc, BatchFailure):
        detail = f"HTTP {exc.status} (batch delete, {exc.count} still failing)"
        return status_error(exc.status, detail, op, exc.path, missing=missing)
    if isinstance(exc, aiohttp.ClientResponseError):
        return status_error(exc.status, _error_detail(exc), op, path, missing=missing)
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)):
        timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
        kind = "timed out" if timed_out else type(exc).__name__
        code = errno.ETIMEDOUT if timed_out else errno.EIO
        if isinstance(exc, aiohttp.ClientConnectorError):
            code = errno.ECONNREFUSED
        return StoreConnectionError(
            code,
            f"{op}: cannot reach {endpoint} ({kind}: {exc})",
            path,
        )
    return exc


# -------------------------------------------------------- request paths and bodies


def object_resource(bucket: str, key: str | None = None) -> str:
    """The JSON API path of an object (of a bucket's objects when ``key`` is ``None``)."""
    objects = f"/storage/v1/b/{quote(bucket, safe='')}/o"
    return objects if key is None else f"{objects}/{quote(key, safe='')}"


def upload_resource(bucket: str) -> str:
    """The JSON API path that uploads go to."""
    return f"/upload/storage/v1/b/{quote(bucket, safe='')}/o"


def rewrite_resource(bucket: str, src: str, dst: str) -> str:
    """The JSON API path of a server-side copy (``rewrite``) within a bucket."""
    target = f"/rewriteTo/b/{quote(bucket, safe='')}/o/{quote(dst, safe='')}"
    return f"{object_resource(bucket, src)}{target}"


def multipart_upload_body(
    resource: Mapping[str, Any], data: bytes, content_type: str, boundary: str
) -> bytes:
    """The body of an ``uploadType=multipart`` upload: the object resource, then the bytes.

    Args:
        resource: Object metadata (``name``, ``crc32c``...).
        data: The object's content.
        content_type: The content's type.
        boundary: The multipart boundary; the request's ``Content-Type`` is
            ``multipart/related; boundary=<boundary>``.

    Returns:
        The ``multipart/related`` body.
    """
    head = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        f"{json.dumps(dict(resource))}\r\n"
        f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
    )
    return b"".join((head.encode("utf-8"), data, f"\r\n--{boundary}--\r\n".encode("ascii")))


# ----------------------------------------------------------------- batch codec


def batch_delete_body(paths: list[str], boundary: str) -> bytes:
    """The body of a JSON-API batch request deleting the objects at ``paths``.

    Args:
        paths: URL paths with their query, e.g. ``/storage/v1/b/bucket/o/a%2Fb``.
        boundary: The multipart boundary (token characters only).

    Returns:
        The ``multipart/mixed`` body.
    """
    out: list[str] = []
    for i, path in enumerate(paths):
        out.append(
            f"--{boundary}\r\n"
            "Content-Type: application/http\r\n"
            f"Content-ID: <item{i}>\r\n"
            "\r\n"
            f"DELETE {path} HTTP/1.1\r\n"
            "Content-Length: 0\r\n"
            "\r\n"
            "\r\n"
        )
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode("utf-8")


_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)?\s+(\d{3})")
_ITEM_ID = re.compile(r"<(?:response-)?item(\d+)>")


def parse_batch_response(content_type: str, body: bytes) -> dict[int, int]:
    """The status of every call in a batch response, by index.

    Args:
        content_type: The response's ``Content-Type`` (with its boundary).
        body: The response body.

    Returns:
        ``{index: HTTP status}`` for each part that could be read.
    """
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    statuses: dict[int, int] = {}
    if not message.is_multipart():
        return statuses
    for part in message.iter_parts():
        match = _ITEM_ID.search(str(part.get("Content-ID", "")))
        payload = part.get_payload(decode=True)
        if match is None or not isinstance(payload, bytes):
            continue
        status = _STATUS_LINE.match(payload.lstrip())
        if status is not None:
            statuses[int(match.group(1))] = int(status.group(1))
    return statuses


# ------------------------------------------------------------ resources and headers


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)?\Z"
)


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch from an RFC 3339 timestamp or an HTTP date (``None``: unknown)."""
    if not value:
        return None
    return _parse_time(value)


@functools.lru_cache(maxsize=1024)
def _parse_time(value: str) -> float | None:
    """:func:`parse_time`, remembered: the objects of one listing or burst of writes share
    their timestamps (HTTP dates have whole seconds)."""
    try:
        if "," in value:  # an HTTP date: "Thu, 26 Nov 2026 05:22:33 GMT"
            return parsedate_to_datetime(value).timestamp()
        match = _RFC3339.match(value.strip())
        if match is None:
            return None
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        offset = timedelta(0)
        if zone and zone not in "Zz":
            sign = -1 if zone[0] == "-" else 1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        stamp = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=timezone(offset),
        )  # fmt: skip
        return stamp.timestamp()
    except (ValueError, TypeError, OverflowError):
        return None


def object_meta(item: Mapping[str, Any]) -> ObjectMeta:
    """An :class:`ObjectMeta` from a JSON-API object resource (a listing item or metadata)."""
    crc = item.get("crc32c")
    return ObjectMeta(
        key=str(item["name"]),
        size=int(item.get("size") or 0),
        mtime=parse_time(item.get("updated")),
        etag=(str(item["etag"]).strip('"') if item.get("etag") else None),
        version=(str(item["generation"]) if item.get("generation") else None),
        checksum=f"crc32c:{crc}" if crc else None,
    )


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def content_range_total(value: str | None) -> int | None:
    """The object size in a ``Content-Range: bytes 0-9/11`` header (``None`` if unknown)."""
    match = _CONTENT_RANGE.search(value or "")
    if match is None or match.group(3) == "*":
        return None
    return int(match.group(3))


def persisted_bytes(headers: Mapping[str, str]) -> int:
    """Bytes a session holds, from a 308 answer's ``Range: bytes=0-N`` (none: 0)."""
    match = re.search(r"bytes=0-(\d+)", headers.get("Range", ""))
    return int(match.group(1)) + 1 if match else 0
