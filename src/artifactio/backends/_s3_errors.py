"""S3's failures as the builtin errors they mean: one mapping, applied at the client's boundary.

:func:`map_error` turns what aiobotocore and botocore raise into
``FileNotFoundError`` (a missing key, or a missing bucket named as such),
``PermissionError`` (refused or missing credentials), ``FileExistsError`` (a
failed precondition), ``StoreConnectionError`` (an endpoint that cannot be
reached, or that is not an S3 service), or a plain ``OSError`` naming S3's code
and the HTTP status.
"""

from __future__ import annotations

import asyncio
import errno
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from .._exceptions import StoreConnectionError, os_error
from .._redact import redact_text

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FAILURES",
    "NOT_FOUND",
    "error_code",
    "error_message",
    "map_error",
    "retried_by_botocore",
]


NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"})
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


def _not_s3(response: Mapping[str, Any], code: str, status: int) -> str:
    """How an error answer shows it did not come from S3 (``""``: it may have).

    S3 answers a failed request with an XML ``<Error>`` holding a code (a ``HEAD``
    answer has no body, and botocore takes the status as its code). A 4xx answer
    with no S3 code that is empty of XML, or whose body was XML of another kind,
    came from some other HTTP server.
    """
    if not 400 <= status < 500 or (code and not code.isdigit()):
        return ""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    content_type = str(headers.get("content-type", ""))
    if not code:
        return f"HTTP {status} with an XML answer that is not an S3 error"
    if content_type and "xml" not in content_type.lower():
        return f"HTTP {status} with a {content_type.partition(';')[0]} answer"
    return ""


def map_error(exc: Exception, op: str, bucket: str, key: str, endpoint: str) -> OSError:
    """Translate an aiobotocore/botocore failure into the builtin ``OSError`` it means.

    Args:
        exc: What the client raised.
        op: The operation, for the message (``"read"``, ``"list"``...).
        bucket: The bucket.
        key: The key (or prefix) the operation was about.
        endpoint: The endpoint, for connection errors.

    Returns:
        The error to raise (``raise map_error(...) from exc``).
    """
    path = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        error: Mapping[str, Any] = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = str(error.get("Message", "")) or code
        detail = f"{message} ({code})" if code and code != message else message
        foreign = _not_s3(exc.response, code, status)
        if foreign:
            return StoreConnectionError(
                errno.EPROTO, f"{op}: {endpoint} is not an S3 service ({foreign})", path
            )
        if code == "NoSuchBucket":
            return os_error(FileNotFoundError, op, path, f"bucket {bucket!r} does not exist")
        if code in NOT_FOUND or (status == 404 and code not in _DENIED):
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
        return os_error(
            PermissionError, op, path, f"no usable AWS credentials: {redact_text(str(exc))}"
        )
    if isinstance(exc, ResponseParserError):
        return StoreConnectionError(
            errno.EPROTO, f"{op}: {endpoint} is not an S3 service (its answer is not S3's)", path
        )
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
        timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
        return StoreConnectionError(
            errno.ETIMEDOUT if timed_out else errno.EIO,
            f"{op}: cannot reach {endpoint}: {redact_text(str(exc)) or type(exc).__name__}",
            path,
        )
    return os_error(OSError, op, path, f"{type(exc).__name__}: {redact_text(str(exc))}")


FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)


def error_code(exc: BaseException | None) -> str:
    """S3's error code of a ``ClientError`` (``""`` for other failures)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    """S3's error message of a ``ClientError`` (``""`` for other failures)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return ""


def retried_by_botocore(exc: BaseException) -> bool:
    """Whether botocore's own retries (``retries``) had their go at this failure.

    They cover the API call up to its answer: error statuses (``ClientError``)
    and connections that failed or closed. A failure while the body of an answer
    was being read (an incomplete or stalled body, a read timeout, which may be
    either) happened after the call returned, and no retry saw it.
    """
    if isinstance(exc, ClientError):
        return True
    if isinstance(exc, (ResponseStreamingError, ReadTimeoutError)):
        return False
    return isinstance(exc, (BotoConnectionError, HTTPClientError))
