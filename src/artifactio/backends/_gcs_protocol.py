"""The GCS JSON API's wire rules, as pure functions: no I/O here.

The GCS backend (:mod:`artifactio.backends.gcs`) is glue around these:

- retry policy: which failures to repeat (:func:`should_retry`) and how long to
  wait (:func:`retry_delay`, exponential backoff with full jitter);
- error mapping: HTTP statuses and aiohttp errors to builtin ``OSError``
  subclasses (:func:`status_error`, :func:`map_error`);
- CRC-32C: values, their base64 spelling, combining the checksums of two
  adjacent ranges (:func:`crc32c_combine`), and :class:`DownloadCheck`, which
  checks an object read in ranges arriving in any order;
- the multipart/mixed codec of batch requests (:func:`batch_delete_body`,
  :func:`parse_batch_response`);
- reading object resources, ``Content-Range`` and resumable-session ``Range`` headers.
"""

from __future__ import annotations

import asyncio
import base64
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

import aiohttp
import google_crc32c

from .._exceptions import IntegrityError, StoreConnectionError, os_error
from ._objectstore import ObjectMeta

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from multidict import CIMultiDictProxy

__all__ = [
    "BATCH_LIMIT",
    "CHUNK_QUANTUM",
    "RETRY_STATUSES",
    "DownloadCheck",
    "b64_crc32c",
    "batch_delete_body",
    "content_range_total",
    "crc32c",
    "crc32c_combine",
    "goog_hash",
    "map_error",
    "object_meta",
    "parse_b64_crc32c",
    "parse_batch_response",
    "parse_time",
    "persisted_bytes",
    "retry_delay",
    "should_retry",
    "status_error",
]

CHUNK_QUANTUM = 256 * 1024
"""Every chunk of a resumable upload but the last is a multiple of this."""


BATCH_LIMIT = 100
"""The most calls one JSON batch request may hold."""

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth repeating a request for."""

# ------------------------------------------------------------------ pure policy


def should_retry(exc: BaseException) -> bool:
    """Whether a failed request is worth repeating.

    Args:
        exc: What the request raised.

    Returns:
        True for throttling (429), request timeouts (408), server errors (5xx),
        dropped or refused connections and timeouts.
    """
    if isinstance(exc, aiohttp.ClientResponseError):
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
    """Translate an aiohttp/gcloud-aio error into the builtin ``OSError`` it means.

    Args:
        exc: The error.
        op: The operation, for the message.
        path: The ``gs://bucket/key`` path, for the message.
        endpoint: The service's URL, for connection errors.
        missing: What a 404 means here, e.g. ``"bucket 'b' does not exist"``
            (default: the path does not exist).

    Returns:
        The exception to raise (``exc`` itself when it needs no translation).
    """
    if isinstance(exc, aiohttp.ClientResponseError):
        return status_error(exc.status, _error_detail(exc), op, path, missing=missing)
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)):
        timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
        kind = "timed out" if timed_out else type(exc).__name__
        return StoreConnectionError(
            errno.ECONNREFUSED if isinstance(exc, aiohttp.ClientConnectorError) else errno.EIO,
            f"{op}: cannot reach {endpoint} ({kind}: {exc})",
            path,
        )
    return exc


# --------------------------------------------------------------------- checksums

_CASTAGNOLI = 0x82F63B78  # CRC-32C polynomial, bit-reflected


def _gf2_apply(matrix: tuple[int, ...], vector: int) -> int:
    result = 0
    row = 0
    while vector:
        if vector & 1:
            result ^= matrix[row]
        vector >>= 1
        row += 1
    return result


def _gf2_compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_gf2_apply(a, column) for column in b)


@functools.lru_cache(maxsize=64)
def _zeros_operator(nbytes: int) -> tuple[int, ...]:
    """The linear map that runs a CRC-32C register over ``nbytes`` zero bytes."""
    one_bit = (_CASTAGNOLI, *(1 << n for n in range(31)))
    power = one_bit
    for _ in range(3):  # 1 -> 2 -> 4 -> 8 zero bits: one zero byte
        power = _gf2_compose(power, power)
    result = tuple(1 << n for n in range(32))
    while nbytes:
        if nbytes & 1:
            result = _gf2_compose(power, result)
        nbytes >>= 1
        if nbytes:
            power = _gf2_compose(power, power)
    return result


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32C of ``a + b`` from ``crc(a)``, ``crc(b)`` and ``len(b)``."""
    if len2 <= 0:
        return crc1
    return _gf2_apply(_zeros_operator(len2), crc1) ^ crc2


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data``, as an unsigned integer."""
    return int(google_crc32c.value(data))


def b64_crc32c(value: int) -> str:
    """A CRC-32C as GCS spells it: four big-endian bytes in base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def parse_b64_crc32c(text: str | None) -> int | None:
    """The CRC-32C that GCS spelled ``text`` (``None`` when absent or malformed)."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def goog_hash(headers: CIMultiDictProxy[str], name: str = "crc32c") -> str | None:
    """One hash from the ``X-Goog-Hash: crc32c=...,md5=...`` header(s)."""
    for value in headers.getall("X-Goog-Hash", []):
        for item in value.split(","):
            key, _, digest = item.strip().partition("=")
            if key == name:
                return digest
    return None


class DownloadCheck:
    """The CRC-32C of one object version, checked once ranges cover it all.

    Ranges may arrive in any order and may repeat; each new one is folded into
    the covered spans with :func:`crc32c_combine`.
    """

    def __init__(self, size: int, expected: int) -> None:
        self.size = size
        self.expected = expected
        self._spans: list[tuple[int, int, int]] = []  # (start, end, crc), sorted, disjoint

    def add(self, start: int, data: bytes) -> bool:
        """Fold in ``data`` read at ``start``.

        Returns:
            True once the whole object was seen and its checksum matched.

        Raises:
            IntegrityError: The whole object was seen and its checksum differs.
        """
        end = start + len(data)
        if not data or any(s < end and start < e for s, e, _ in self._spans):
            return False
        crc = crc32c(data)
        spans = self._spans
        spans.append((start, end, crc))
        spans.sort()
        merged: list[tuple[int, int, int]] = []
        for s, e, c in spans:
            if merged and merged[-1][1] == s:
                ps, _, pc = merged[-1]
                merged[-1] = (ps, e, crc32c_combine(pc, c, e - s))
            else:
                merged.append((s, e, c))
        self._spans = merged
        if len(merged) == 1 and merged[0][0] == 0 and merged[0][1] == self.size:
            if merged[0][2] != self.expected:
                raise IntegrityError(
                    errno.EIO,
                    f"read: CRC32C mismatch: got {b64_crc32c(merged[0][2])}, "
                    f"GCS reports {b64_crc32c(self.expected)}",
                )
            return True
        return False


# ----------------------------------------------------------------- batch codec


def batch_delete_body(paths: list[str], boundary: str) -> bytes:
    """The body of a JSON-API batch request deleting the objects at ``paths``.

    Args:
        paths: URL paths, e.g. ``/storage/v1/b/bucket/o/a%2Fb``.
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
