"""``gs://bucket/prefix``: Google Cloud Storage, over aiohttp, with gcloud-aio-auth credentials.

:class:`GCSStore` is an :class:`~artifactio.backends._objectstore.ObjectStore`:
the directory rules, listings, buffered writes and read-ahead live there. The
GCS glue is in small modules, one concept each:

- :mod:`._gcs_client`: :class:`~._gcs_client.GCSClient`, the calls the object
  store needs (metadata, listings, ranged reads, uploads, copies, deletes), made
  once per event loop;
- :mod:`._gcs_upload`: resumable upload sessions, fed in chunks of 256 KiB multiples;
- :mod:`._gcs_transport`: the one way requests go out: credentials, timeouts,
  ``userProject``, retries with backoff, and one translation of what fails;
- :mod:`._gcs_auth`: where credentials come from, and tokens that fail fast;
- :mod:`._gcs_protocol` and :mod:`._gcs_checksum`: the wire rules and CRC-32C, no I/O.

Options (:class:`~artifactio._config.GCSConfig`): ``project`` bills every
request to that project (``userProject``), as requester-pays buckets require.
Credentials: ``token`` (an OAuth2 access token, or the JSON text of a key),
``service_file`` (a key file), else Application Default Credentials. When an
endpoint is set (``endpoint_url`` or ``STORAGE_EMULATOR_HOST``) and no
credentials are given, requests are sent without credentials, as emulators
expect. Unusable credentials fail the first request with ``PermissionError``,
without retries.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

import aiohttp

from .._config import GCSConfig, check_endpoint, redact_url
from .._paths import StoreRoot
from .._redact import guard_loggers, register_secrets, register_url
from ._gcs_auth import Credentials, load_credentials
from ._gcs_client import GCSClient
from ._gcs_transport import Settings
from ._objectstore import ObjectClient, ObjectStore

__all__ = ["LOGGERS", "GCSStore"]

DEFAULT_ENDPOINT = "https://storage.googleapis.com"

LOGGERS = ("aiohttp", "gcloud", "artifactio")
"""The loggers whose records a store keeps free of secrets (see :func:`guard_loggers`)."""


def _endpoint(config: GCSConfig) -> tuple[str, bool]:
    """The API root and whether it came from the user (endpoint_url or the emulator variable)."""
    if config.endpoint_url:
        return config.endpoint_url.rstrip("/"), True
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if host:
        url = host if "://" in host else f"http://{host}"
        return check_endpoint(url, "STORAGE_EMULATOR_HOST").rstrip("/"), True
    return DEFAULT_ENDPOINT, False


class GCSStore(ObjectStore):
    """An artifact store in a Google Cloud Storage bucket.

    Args:
        root: ``gs://bucket`` or ``gs://bucket/prefix`` (``gcs://`` is accepted too).
        **options: :class:`~artifactio._config.GCSConfig` fields: ``endpoint_url``
            (default ``$STORAGE_EMULATOR_HOST``), ``project`` (billed for every
            request: requester-pays buckets), ``service_file``, ``token`` (an
            access token or a service-account key's JSON), ``concurrency``,
            ``part_size`` (a multiple of 256 KiB), ``connect_timeout``,
            ``read_timeout``, ``retries``.

    Attributes:
        project: The project billed for requests (``userProject``), if any.

    Raises:
        pydantic.ValidationError: An unknown or invalid option, a root whose bucket
            is not a valid bucket name (a ``ValueError``; no value is shown).
        ValueError: A root whose ``..`` climbs out of its bucket; a
            ``STORAGE_EMULATOR_HOST`` that is no ``host:port`` nor URL; an endpoint
            with ``user:password@`` together with ``token`` or ``service_file``
            (a request carries one ``Authorization``: the password is sent as
            HTTP basic credentials only when the store sends no credentials).
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
        register_secrets(token)
        register_url(endpoint)
        if redact_url(endpoint) != endpoint and (token or self.config.service_file):
            raise ValueError(
                f"the endpoint {redact_url(endpoint)!r} has a user:password@, which requests "
                "cannot carry together with the token or service_file credentials"
            )
        guard_loggers(*LOGGERS)
        self.project = self.config.project
        self._settings = Settings(
            endpoint=endpoint,
            anonymous=custom and token is None and self.config.service_file is None,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            retries=self.config.retries,
            concurrency=self.config.concurrency,
            project=self.config.project,
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
            credentials = (
                Credentials()
                if settings.anonymous
                else await load_credentials(
                    token=settings.token,
                    service_file=settings.service_file,
                    session=session,
                    timeouts=settings.timeout(),
                )
            )
        except BaseException:
            await session.close()
            raise
        return GCSClient(settings, session, credentials, store=self.root)
