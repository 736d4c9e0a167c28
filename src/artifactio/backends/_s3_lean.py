"""The lean request path: S3's small hot requests without botocore's per-call pipeline.

A profile of 1 KiB writes put most of the client's CPU per request in botocore's
generic call path (event hooks, the endpoint ruleset, the user-agent string,
serialisers, the SigV4 signer hashing the body, response parsers), not in
sending bytes. For the five requests a small object's life is made of —
``HeadObject``, ``GetObject``, a small ``PutObject``, ``DeleteObject`` and one
page of ``ListObjectsV2`` — :class:`LeanS3` builds the HTTP request itself,
signs it with SigV4 (:func:`sign`; the tests check it against botocore's
signer), sends it through aiobotocore's own aiohttp session (the same
connection pool and timeouts), and answers with the dicts aiobotocore would.
:class:`~artifactio.backends.s3.S3Client` reads both paths' answers alike, and
failures are raised as aiobotocore raises them (``ClientError`` with S3's code,
botocore's connection errors), so errors are mapped in one place.

Retries follow botocore's *standard* mode with the store's ``retries``: error
statuses 500/502/503/504/429, S3's throttling and timeout codes, and failed
connections are tried again after ``random() * 2**(attempt-1)`` seconds (at most
20), within a retry quota per client (500 tokens, 5 per retry, 10 after a
timeout, one back per success). Unlike the full path, a body cut or stalled
while being read is retried too (every request here can be repeated: reads,
deletes, and writes whose repeats ``S3Client.put`` already recognises).

It serves only what is plain: an explicit ``endpoint_url`` (addressed
path-style), credentials (not anonymous access), no proxy for the endpoint,
request bodies up to :data:`MAX_BODY`. Everything else — AWS's own endpoints
(virtual-host addressing, region redirects), multipart uploads, copies, batch
deletes, large bodies — goes the full way through aiobotocore.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import hmac
import random
import re
import urllib.parse
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
)
from yarl import URL

from .._exceptions import mark_retried
from ._objectstore import read_answer

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_BODY", "LeanS3", "sign"]

MAX_BODY = 1024 * 1024
"""The largest ``PutObject`` body the lean path sends (larger ones go the full way,
whose sends are bounded against a server that stops reading)."""

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNSIGNED = "UNSIGNED-PAYLOAD"  # the body is covered by Content-MD5, which S3 checks

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_CODES = frozenset(
    {
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
        "LimitExceededException",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "TransactionInProgressException",
    }
)
_QUOTA, _RETRY_COST, _TIMEOUT_COST = 500, 5, 10
_MAX_BACKOFF = 20.0


# What urllib.parse.quote leaves as it is, for each ``safe`` used here.
_PLAIN = {
    safe: re.compile(f"[A-Za-z0-9_.~\\-{re.escape(safe)}]*").fullmatch
    for safe in ("", "/~", "-_.~")
}


def _quote(text: str, safe: str) -> str:
    if _PLAIN[safe](text):  # nothing to encode (most keys): skip quote's per-character work
        return text
    return urllib.parse.quote(text, safe=safe)


@functools.lru_cache(maxsize=16)
def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    *,
    region: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    payload_hash: str,
    now: datetime.datetime,
) -> str:
    """Sign a request with SigV4 for S3; add the signing headers; the query string to send.

    Args:
        method: ``GET``, ``PUT``...
        path: The URL path, already percent-encoded (S3 signs it as sent).
        query: The query parameters, not encoded.
        headers: Lower-case names, ``host`` included; ``x-amz-date``,
            ``x-amz-content-sha256``, ``x-amz-security-token`` and
            ``authorization`` are added. Every header in it is signed.
        region: The signing region.
        access_key: The credentials.
        secret_key: The credentials.
        token: The session token, if any.
        payload_hash: The body's SHA-256 (hex), or ``UNSIGNED-PAYLOAD``.
        now: The signing time (UTC).

    Returns:
        The canonical query string (send it as the URL's query).
    """
    amz_date = (  # strftime costs twice as much
        f"{now.year:04d}{now.month:02d}{now.day:02d}T{now.hour:02d}{now.minute:02d}{now.second:02d}Z"
    )
    date = amz_date[:8]
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    if token:
        headers["x-amz-security-token"] = token
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_quote(k, "-_.~"), _quote(v, "-_.~")) for k, v in query)
    )
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    signed = ";".join(names)
    request = "\n".join((method, path, canonical_query, canonical_headers, signed, payload_hash))
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest())
    )
    signature = hmac.new(
        _signing_key(secret_key, date, region), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return canonical_query


def _local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


def _error_of(body: bytes) -> tuple[str, str]:
    """S3's ``(code, message)`` from an ``<Error>`` answer; empty strings when there is none."""
    if not body:
        return "", ""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    if _local(root.tag) != "Error":
        return "", ""
    found = {_local(child.tag): child.text or "" for child in root}
    return found.get("Code", ""), found.get("Message", "")


def _http_date(value: str | None) -> datetime.datetime | None:
    return _parse_http_date(value) if value else None


@functools.lru_cache(maxsize=256)  # objects written in the same second share their date
def _parse_http_date(value: str) -> datetime.datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _iso_date(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _listing(body: bytes) -> dict[str, Any]:
    """A ``ListObjectsV2`` answer (``encoding-type=url``) as aiobotocore returns it."""
    root = ET.fromstring(body)
    contents: list[dict[str, Any]] = []
    prefixes: list[dict[str, str]] = []
    answer: dict[str, Any] = {}
    for child in root:
        tag = _local(child.tag)
        if tag == "Contents":
            fields = {_local(f.tag): f.text or "" for f in child}
            contents.append(
                {
                    "Key": urllib.parse.unquote_plus(fields.get("Key", "")),
                    "Size": int(fields.get("Size") or 0),
                    "LastModified": _iso_date(fields.get("LastModified")),
                    "ETag": fields.get("ETag"),
                }
            )
        elif tag == "CommonPrefixes":
            for f in child:
                if _local(f.tag) == "Prefix":
                    prefixes.append({"Prefix": urllib.parse.unquote_plus(f.text or "")})
        elif tag == "IsTruncated":
            answer["IsTruncated"] = (child.text or "").strip().lower() == "true"
        elif tag == "NextContinuationToken":
            answer["NextContinuationToken"] = child.text or ""
    if contents:
        answer["Contents"] = contents
    if prefixes:
        answer["CommonPrefixes"] = prefixes
    return answer


def _metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name[11:].lower(): value
        for name, value in headers.items()
        if name.lower().startswith("x-amz-meta-")
    }


class LeanS3:
    """Sends ``HeadObject``, ``GetObject``, small ``PutObject``, ``DeleteObject`` and
    ``ListObjectsV2`` itself, for one aiobotocore client (one event loop).

    Build one with :meth:`attach`, which returns ``None`` where the lean path does
    not apply.
    """

    def __init__(self, s3: Any, session_of: Any, *, retries: int, read_timeout: float) -> None:
        self._s3 = s3
        self._session_of = session_of
        endpoint = URL(s3.meta.endpoint_url)
        self._origin = str(endpoint.origin())
        self._host = endpoint.raw_host or ""
        if endpoint.explicit_port:
            self._host += f":{endpoint.port}"
        self._region: str = s3.meta.region_name or "us-east-1"
        self._attempts = retries + 1
        self._read_timeout = read_timeout
        self._quota = _QUOTA
        self._rng = random.Random()

    @classmethod
    def attach(cls, s3: Any, *, retries: int, read_timeout: float) -> LeanS3 | None:
        """A lean path for aiobotocore client ``s3``, or ``None`` where it does not apply."""
        http = getattr(getattr(s3, "_endpoint", None), "http_session", None)
        session_of = getattr(http, "_get_session", None)
        proxies = getattr(http, "_proxy_config", None)
        if session_of is None or proxies is None:
            return None  # an aiobotocore without the session this path sends through
        if proxies.proxy_url_for(s3.meta.endpoint_url):
            return None
        if getattr(s3.meta.config, "s3", None) != {"addressing_style": "path"}:
            return None  # AWS's own endpoints: virtual hosts, region redirects
        if s3._request_signer._credentials is None:
            return None  # anonymous access
        return cls(s3, session_of, retries=retries, read_timeout=read_timeout)

    # ---------------------------------------------------------------- operations

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        _, headers, _ = await self._call("HeadObject", "HEAD", Bucket, Key)
        return {
            "ContentLength": int(headers.get("Content-Length", 0)),
            "LastModified": _http_date(headers.get("Last-Modified")),
            "ETag": headers.get("ETag"),
            "Metadata": _metadata(headers),
        }

    async def get_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Range: str | None = None,
        IfMatch: str | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """``GetObject`` with its body read (the answer's fields, the bytes)."""
        headers = {}
        if Range:
            headers["range"] = Range
        if IfMatch:
            headers["if-match"] = IfMatch
        _, answer, data = await self._call("GetObject", "GET", Bucket, Key, headers=headers)
        return {
            "ContentRange": answer.get("Content-Range"),
            "ContentLength": len(data),
            "ETag": answer.get("ETag"),
            "LastModified": _http_date(answer.get("Last-Modified")),
        }, data

    async def open_object(
        self, *, Bucket: str, Key: str, Range: str, IfMatch: str | None = None
    ) -> aiohttp.ClientResponse:
        """``GetObject`` answered with its body still to read (the caller closes it)."""
        headers = {"range": Range}
        if IfMatch:
            headers["if-match"] = IfMatch
        _, _, _, response = await self._exchange(
            "GetObject", "GET", Bucket, Key, query=None, headers=headers, body=b"", stream=True
        )
        assert response is not None
        return response

    async def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes,
        ContentMD5: str,
        Metadata: Mapping[str, str],
        IfNoneMatch: str | None = None,
    ) -> dict[str, Any]:
        headers = {"content-md5": ContentMD5}
        headers.update({f"x-amz-meta-{k}": v for k, v in Metadata.items()})
        if IfNoneMatch:
            headers["if-none-match"] = IfNoneMatch
        _, answer, _ = await self._call("PutObject", "PUT", Bucket, Key, headers=headers, body=Body)
        return {"ETag": answer.get("ETag")}

    async def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        await self._call("DeleteObject", "DELETE", Bucket, Key)
        return {}

    async def list_objects_v2(
        self,
        *,
        Bucket: str,
        Prefix: str,
        MaxKeys: int,
        Delimiter: str | None = None,
        ContinuationToken: str | None = None,
    ) -> dict[str, Any]:
        query = [
            ("list-type", "2"),
            ("prefix", Prefix),
            ("max-keys", str(MaxKeys)),
            ("encoding-type", "url"),  # keys that XML cannot hold come back encoded
        ]
        if Delimiter:
            query.append(("delimiter", Delimiter))
        if ContinuationToken:
            query.append(("continuation-token", ContinuationToken))
        _, _, body = await self._call("ListObjectsV2", "GET", Bucket, None, query=query)
        return _listing(body)

    # ---------------------------------------------------------------- one request

    async def _call(
        self,
        name: str,
        method: str,
        bucket: str,
        key: str | None,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one request, with standard-mode retries; ``(status, headers, body)`` of a 2xx.

        Raises:
            ClientError: An error status (after retries where they apply).
            EndpointConnectionError, ConnectionClosedError, TimeoutError: The
                request failed on its way (after retries; marked as retried).
        """
        status, answer, data, _ = await self._exchange(
            name, method, bucket, key, query=query, headers=headers, body=body, stream=False
        )
        return status, answer, data

    async def _exchange(
        self,
        name: str,
        method: str,
        bucket: str,
        key: str | None,
        *,
        query: list[tuple[str, str]] | None,
        headers: dict[str, str] | None,
        body: bytes,
        stream: bool,
    ) -> tuple[int, Mapping[str, str], bytes, aiohttp.ClientResponse | None]:
        """:meth:`_call`; with ``stream``, a 2xx comes back open, its body unread."""
        path = "/" + _quote(bucket, "")
        if key is not None:
            path += "/" + _quote(key, "/~")
        attempt = 0
        while True:
            attempt += 1
            try:
                status, answer, data, response = await self._send(
                    method, path, query or [], dict(headers or {}), body, stream
                )
            except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
                timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
                if await self._may_retry(attempt, _TIMEOUT_COST if timed_out else _RETRY_COST):
                    continue
                failure = self._connection_error(exc, timed_out)
                if attempt > 1:
                    mark_retried(failure)
                raise failure from exc
            if status < 300:
                self._quota = min(_QUOTA, self._quota + 1)
                return status, answer, data, response
            code, message = _error_of(data) if method != "HEAD" else ("", "")
            if (status in _RETRY_STATUSES or code in _RETRY_CODES) and await self._may_retry(
                attempt, _RETRY_COST
            ):
                continue
            raise ClientError(
                {
                    "Error": {"Code": code or str(status), "Message": message},
                    "ResponseMetadata": {
                        "HTTPStatusCode": status,
                        "HTTPHeaders": {k.lower(): v for k, v in answer.items()},
                    },
                },
                name,
            )

    async def _may_retry(self, attempt: int, cost: int) -> bool:
        """After failed attempt number ``attempt``: wait and say yes, or say no."""
        if attempt >= self._attempts or self._quota < cost:
            return False
        self._quota -= cost
        await asyncio.sleep(self._rng.random() * min(_MAX_BACKOFF, 2.0 ** (attempt - 1)))
        return True

    def _connection_error(self, exc: BaseException, timed_out: bool) -> Exception:
        url = self._origin
        error: Exception
        if timed_out and isinstance(exc, Exception):
            error = exc  # as the full path raises a body's stall: our own TimeoutError
        elif isinstance(exc, aiohttp.ClientConnectorError):
            error = EndpointConnectionError(endpoint_url=url, error=exc)
        else:
            error = ConnectionClosedError(endpoint_url=url, error=exc)
        return error

    async def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
        stream: bool,
    ) -> tuple[int, Mapping[str, str], bytes, aiohttp.ClientResponse | None]:
        credentials = await self._s3._request_signer._credentials.get_frozen_credentials()
        headers["host"] = self._host
        query_string = sign(
            method,
            path,
            query,
            headers,
            region=self._region,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            token=credentials.token,
            payload_hash=_UNSIGNED if body else _EMPTY_SHA256,
            now=datetime.datetime.now(datetime.timezone.utc),
        )
        del headers["host"]  # aiohttp sends it
        headers["accept-encoding"] = "identity"
        url = self._origin + path + ("?" + query_string if query_string else "")
        session: aiohttp.ClientSession = await self._session_of(None)
        response = await session.request(
            method, URL(url, encoded=True), headers=headers, data=body or None
        )
        if stream and response.status < 300:
            return response.status, response.headers, b"", response
        async with response:  # released (the connection reused once the body was read)
            data = (
                b"" if method == "HEAD" else await read_answer(response.content, self._read_timeout)
            )
            return response.status, response.headers, data, None
