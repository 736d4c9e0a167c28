"""GCS credentials: where they come from, and access tokens that fail fast.

Where from, in this order (:func:`load_credentials`):

- ``token``: an OAuth2 access token, sent as is, or the JSON text of a key;
- ``service_file``: a key file (service account, authorized user, external account...);
- ``GOOGLE_APPLICATION_CREDENTIALS``: a key file, read like ``service_file``;
- else gcloud's application-default credentials file, else the GCE metadata
  server (gcloud-aio-auth looks for them).

Against an emulator without any of the first three, requests carry no
credentials (:class:`Credentials`).

A key that cannot be read or parsed fails at once with a ``PermissionError``
naming the file (never showing its content). Tokens come from gcloud-aio-auth's
``Token.refresh``: one request per call, within the store's timeouts. Its
``Token.get`` is not used: it repeats a failed fetch five times, waiting up to a
minute between tries, so bad credentials took seconds to fail. Here a failure
is a :class:`~._gcs_protocol.TokenError` raised into the request that needed
the token: a refusal (HTTP 400/401/403, an unusable key) is final, throttling,
server errors and dropped connections are transient, and the transport retries
the request with its own policy. Requests waiting for the same fetch share its
outcome, so a refusal costs the token endpoint one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import anyio
import anyio.to_thread
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from gcloud.aio.auth import Token
from gcloud.aio.auth.token import Type

from .._redact import register_secrets
from ._gcs_protocol import RETRY_STATUSES, TokenError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SCOPES", "Credentials", "RefreshingToken", "StaticToken", "load_credentials"]

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]

_RENEW_MARGIN = 300.0
"""Seconds before a token expires when it is fetched anew (at most half its lifetime)."""

_KNOWN_TYPES = frozenset(t.value for t in Type)

_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
"""The fields of a key whose values are secrets (kept out of every log line)."""


class Credentials:
    """No credentials: requests carry no ``Authorization`` header (emulators)."""

    async def headers(self) -> dict[str, str]:
        """The headers that authorise one request (a new dict each call).

        Raises:
            artifactio.backends._gcs_protocol.TokenError: No access token could be had.
        """
        return {}


class StaticToken(Credentials):
    """An access token given as is (never refreshed)."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._value}"}

    def __repr__(self) -> str:
        return "StaticToken(***)"


class RefreshingToken(Credentials):
    """Access tokens from a key or the metadata server, fetched when missing or near expiry.

    Args:
        token: gcloud-aio-auth's token source; only its ``refresh`` is called.
        source: Where the credentials came from, for messages.
        timeout: The timeouts of one token request.
    """

    def __init__(self, token: Token, source: str, timeout: aiohttp.ClientTimeout) -> None:
        self._token = token
        self._source = source
        self._timeout = timeout
        self._metadata = token.token_type is Type.GCE_METADATA
        self._value: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self._fetched = 0  # fetches finished (or abandoned)
        self._failure: TokenError | None = None  # of the last fetch

    def __repr__(self) -> str:
        return f"RefreshingToken({self._source})"

    def _fresh(self) -> bool:
        return self._value is not None and anyio.current_time() < self._renew_at

    async def headers(self) -> dict[str, str]:
        if not self._fresh():
            seen = self._fetched
            async with self._lock:
                failure = self._failure
                if self._fetched != seen and failure is not None:  # the fetch we waited for
                    raise TokenError(failure.detail, transient=failure.transient) from (
                        failure.__cause__
                    )
                if not self._fresh():
                    await self._fetch()
        return {"Authorization": f"Bearer {self._value}"}

    async def _fetch(self) -> None:
        self._failure = None
        try:
            # AioSession takes an aiohttp.ClientTimeout too (its ``Timeout``), so the
            # connect timeout holds for the token endpoint as for GCS.
            answer = await self._token.refresh(timeout=cast("int", self._timeout))
        except Exception as exc:
            self._failure = self._error(exc)
            raise self._failure from exc
        finally:
            self._fetched += 1
        lifetime = max(float(answer.expires_in), 0.0)
        register_secrets(answer.value)  # never in a log line
        self._value = answer.value
        self._renew_at = anyio.current_time() + max(lifetime - _RENEW_MARGIN, lifetime / 2)

    def _error(self, exc: Exception) -> TokenError:
        """What a failed token request means (no secret in the message)."""
        endpoint = f"{self._source}: the token endpoint {self._token.token_uri}"
        if isinstance(exc, aiohttp.ClientResponseError):
            detail = f"HTTP {exc.status}{_oauth_error(exc.message)}"
            if exc.status in RETRY_STATUSES:
                return TokenError(f"{endpoint} failed ({detail})", transient=True)
            if exc.status < 400:
                return TokenError(f"{endpoint} gave no token ({detail})", transient=False)
            return TokenError(f"{endpoint} refused them ({detail})", transient=False)
        if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)):
            if self._metadata and isinstance(exc, aiohttp.ClientConnectorError):
                return TokenError(
                    "none found (no token or service_file option, no "
                    "GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default "
                    "credentials, and no GCE metadata server)",
                    transient=False,
                )
            timed_out = isinstance(exc, (asyncio.TimeoutError, TimeoutError))
            kind = "timed out" if timed_out else type(exc).__name__
            return TokenError(f"{endpoint} cannot be reached ({kind})", transient=True)
        return TokenError(f"{self._source}: no token ({type(exc).__name__})", transient=False)


def _oauth_error(message: str) -> str:
    """``" invalid_grant: Invalid JWT Signature."`` from an OAuth error answer, else ``""``."""
    _, _, body = message.partition(": ")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        answer = json.loads(body)
        error = answer.get("error")
        if isinstance(error, dict):  # {"error": {"message": ...}} (Google APIs)
            return f" {str(error.get('message', ''))[:200]}"
        if isinstance(error, str):
            text = f"{error}: {answer.get('error_description') or ''}".rstrip(": ")
            return f" {text[:200]}"
    return ""


async def load_credentials(
    *,
    token: str | None,
    service_file: str | None,
    session: aiohttp.ClientSession,
    timeouts: aiohttp.ClientTimeout,
) -> Credentials:
    """The credentials a store's requests carry (files are read in a worker thread).

    Args:
        token: The ``token`` option: an access token, or a key's JSON text.
        service_file: The ``service_file`` option: a key file.
        session: The session token requests go through.
        timeouts: The timeouts of one token request.

    Returns:
        The credentials.

    Raises:
        PermissionError: A key that cannot be read or used (the message names
            the file or the option, never its content).
    """
    if token is not None and not token.lstrip().startswith("{"):
        return StaticToken(token)
    source, made = await anyio.to_thread.run_sync(
        functools.partial(_token_source, token, service_file, session)
    )
    return RefreshingToken(made, source, timeouts)


def _token_source(
    token: str | None, service_file: str | None, session: aiohttp.ClientSession
) -> tuple[str, Token]:
    """Where the key comes from (for messages), and gcloud-aio-auth's token source for it.

    Without a key, gcloud-aio-auth looks for application-default credentials.
    """
    key: str | None = None
    if token is not None:
        source, key = "the token option", token
    else:
        path = service_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        option = "service_file" if service_file else "GOOGLE_APPLICATION_CREDENTIALS"
        source = f"{option} {path!r}" if path else "application-default credentials"
        if path:
            try:
                key = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise _unusable(source, f"cannot be read ({reason})") from exc
    if key is not None:
        _check_key(json_text=key, source=source)
    try:
        made = Token(
            service_file=None if key is None else io.StringIO(key),
            session=cast("Any", session),  # its type follows whether requests is installed
            scopes=SCOPES,
        )
    except Exception as exc:  # gcloud-aio-auth refuses the key's content
        raise _unusable(source, f"cannot be used ({type(exc).__name__})") from None
    return source, made


def _check_key(*, json_text: str, source: str) -> None:
    """Refuse a key that gcloud-aio-auth would misread (a malformed file means GCE to it)."""
    try:
        info: Any = json.loads(json_text)
    except ValueError as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno} column {exc.colno}"
        raise _unusable(source, f"is not valid JSON{where}") from None
    if isinstance(info, dict):
        register_secrets(*(str(info[f]) for f in _SECRET_FIELDS if isinstance(info.get(f), str)))
    kind = info.get("type") if isinstance(info, dict) else None
    if not isinstance(kind, str):
        raise _unusable(source, 'is not a credentials file (no "type")')
    if kind not in _KNOWN_TYPES:
        raise _unusable(source, f"has an unsupported type {kind[:50]!r}")
    if kind == Type.SERVICE_ACCOUNT.value:
        _check_service_account(info, source)


def _check_service_account(info: Mapping[str, Any], source: str) -> None:
    missing = [f for f in ("client_email", "private_key") if not isinstance(info.get(f), str)]
    if missing:
        raise _unusable(source, f"is a service account key without {' or '.join(missing)}")
    try:
        serialization.load_pem_private_key(str(info["private_key"]).encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise _unusable(source, "has a private_key that is not a PEM private key") from None


def _unusable(source: str, detail: str) -> PermissionError:
    return PermissionError(errno.EACCES, f"GCS credentials: {source} {detail}")
