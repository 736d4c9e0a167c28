"""Pydantic models of each backend's options.

``open_store(uri, **options)`` validates ``options`` with the backend's model, so
a typo or a bad value fails at once with a clear message. Secrets are
``SecretStr``: they never show in a ``repr``, a log line or an error message.
The root path is validated as ZenML validates an artifact store's ``path``:
surrounding quotes are stripped and the scheme must be one the backend supports.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ._paths import split_scheme

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "GCSConfig",
    "LocalConfig",
    "MemoryConfig",
    "ObjectStoreConfig",
    "S3Config",
    "StoreConfig",
    "redact_url",
]

MiB = 1024 * 1024


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and reprs."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class StoreConfig(BaseModel):
    """Options every backend takes.

    Attributes:
        path: The store's root (a URI, or an absolute local path).
        concurrency: Requests a bulk operation (rmtree, directory copy, multipart
            upload) keeps in flight.
        part_size: Write buffer size and multipart part size, in bytes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset()

    path: str
    concurrency: int = Field(32, ge=1, le=4096)
    part_size: int = Field(8 * MiB, ge=1)

    @field_validator("path", mode="before")
    @classmethod
    def _strip_and_check_scheme(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        scheme, _ = split_scheme(value)
        scheme = scheme or ("file" if value.startswith("/") else "")
        if cls.SUPPORTED_SCHEMES and scheme not in cls.SUPPORTED_SCHEMES:
            allowed = ", ".join(sorted(f"{s}://" for s in cls.SUPPORTED_SCHEMES))
            raise ValueError(
                f"path {value!r} has an unsupported scheme; {cls.__name__} accepts {allowed}"
            )
        return value


class MemoryConfig(StoreConfig):
    """Options of the in-memory store (``memory://name/prefix``)."""

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset({"memory"})


class LocalConfig(StoreConfig):
    """Options of the local store (absolute paths and ``file://`` URIs)."""

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset({"file"})

    part_size: int = Field(1 * MiB, ge=1)


class ObjectStoreConfig(StoreConfig):
    """Options shared by the object-store backends.

    Attributes:
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a response (per read).
        retries: Attempts after the first on throttling, 5xx and dropped connections.
    """

    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=0, le=50)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # An endpoint URL may carry user:password; reprs and str() never show it.
        for name, value in super().__repr_args__():
            if name == "endpoint_url" and isinstance(value, str):
                value = redact_url(value)
            yield name, value


class S3Config(ObjectStoreConfig):
    """Options of the S3 store (``s3://bucket/prefix``), with ZenML's names.

    Without ``key``/``secret`` the standard AWS credential chain applies, and so
    do ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` when ``endpoint_url`` is unset.
    """

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset({"s3"})

    part_size: int = Field(8 * MiB, ge=5 * MiB, le=5 * 1024 * MiB)
    endpoint_url: str | None = None
    region: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None


class GCSConfig(ObjectStoreConfig):
    """Options of the GCS store (``gs://bucket/prefix``).

    Attributes:
        part_size: Write buffer and resumable-upload chunk size: a multiple of 256 KiB.
        endpoint_url: The JSON API's root (default: ``STORAGE_EMULATOR_HOST``
            when set, else Google's). With an endpoint set either way and no
            ``token`` or ``service_file``, requests carry no credentials, as
            emulators expect.
        project: The project billed for every request, sent as GCS's
            ``userProject`` parameter (reads, metadata, listings, uploads and
            resumable sessions, copies, deletes). Requester-pays buckets refuse
            requests without one; other buckets accept it too. The credentials
            need ``serviceusage.services.use`` on that project.
        service_file: A credentials file (service account key, authorized user,
            external account). Without it or ``token``: the file named by
            ``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's application-default
            credentials, else the GCE metadata server.
        token: An OAuth2 access token, sent as is, or the JSON text of a
            credentials file.

    Credentials that cannot be used fail the first request with
    ``PermissionError``, without retries: a file that cannot be read or parsed
    (the message names it, never its content), or a token endpoint that
    refuses them (HTTP 400/401/403). A token endpoint that cannot be reached or
    answers 429/5xx is retried like any request (``retries``), then raises
    ``artifactio.StoreConnectionError``.
    """

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset({"gs", "gcs"})

    part_size: int = Field(8 * MiB, ge=256 * 1024)
    endpoint_url: str | None = None
    project: str | None = Field(
        None, description="Project billed for every request (userProject): requester-pays buckets."
    )
    service_file: str | None = None
    token: SecretStr | None = None

    @field_validator("part_size")
    @classmethod
    def _multiple_of_256k(cls, value: int) -> int:
        if value % (256 * 1024):
            raise ValueError("part_size must be a multiple of 256 KiB for resumable uploads")
        return value
