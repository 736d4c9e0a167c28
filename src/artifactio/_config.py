"""Pydantic models of each backend's options.

``open_store(uri, **options)`` validates ``options`` with the backend's model, so
a typo or a bad value fails at once with a clear message. Secrets are
``SecretStr``: they never show in a ``repr``, a log line or an error message.
No error shows the value of any option: a validation error names the option and
what is wrong with it (an unknown option may be a mistyped secret). The root path
is validated as ZenML validates an artifact store's ``path``: surrounding quotes
are stripped and the scheme must be one the backend supports; object stores also
check that the bucket is a valid bucket name.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from ._paths import split_scheme
from ._redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pydantic_core import InitErrorDetails

__all__ = [
    "GCSConfig",
    "LocalConfig",
    "MemoryConfig",
    "ObjectStoreConfig",
    "S3Config",
    "StoreConfig",
    "check_endpoint",
    "redact_url",
]

MiB = 1024 * 1024

_S3_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}\Z")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]\Z")
_REGION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
        return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)
    return True


def _endpoint_problem(url: str) -> str:
    """What makes ``url`` unusable as an endpoint (``""``: nothing)."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "it holds white space or control characters"
    try:
        parts = urllib.parse.urlsplit(redact_url(url))
        port = parts.port
    except ValueError:
        return "its host or port cannot be read"
    if parts.scheme.lower() not in ("http", "https") or "://" not in url:
        return "it must start with http:// or https://"
    if not parts.hostname or not _valid_host(parts.hostname):
        return "it has no valid host name"
    if port == 0:
        return "its port is 0"
    if parts.query or parts.fragment:
        return "it has a query or a fragment"
    return ""


def check_endpoint(url: str, name: str) -> str:
    """Check that ``url`` can be an endpoint: ``http(s)://host[:port][/path]``.

    Args:
        url: The endpoint URL.
        name: Where it came from (an option or an environment variable), for the message.

    Returns:
        ``url`` unchanged.

    Raises:
        ValueError: It is not such a URL. The message shows it without ``user:password@``.
    """
    problem = _endpoint_problem(url)
    if problem:
        raise ValueError(f"{name} {redact_url(url)!r} is not an endpoint URL: {problem}")
    return url


class StoreConfig(BaseModel):
    """Options every backend takes.

    Attributes:
        path: The store's root (a URI, or an absolute local path).
        concurrency: Requests a bulk operation (rmtree, directory copy, multipart
            upload) keeps in flight.
        part_size: Write buffer size and multipart part size, in bytes.
    """

    # hide_input_in_errors: a validation error names the option, never its value.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset()

    path: str
    concurrency: int = Field(32, ge=1, le=4096)
    part_size: int = Field(8 * MiB, ge=1)

    def __setattr__(self, name: str, value: Any) -> None:
        # pydantic shows the value in its frozen-instance error even with
        # hide_input_in_errors: raise the same error without it.
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            lines: list[InitErrorDetails] = [
                {"type": error["type"], "loc": error["loc"], "input": None}
                for error in exc.errors(include_url=False, include_context=False)
            ]
            raise ValidationError.from_exception_data(exc.title, lines, hide_input=True) from None

    @classmethod
    def _root_problem(cls, rest: str) -> str:
        """What is wrong with a URI root's part after ``scheme://`` (``""``: nothing)."""
        return ""

    @field_validator("path", mode="before")
    @classmethod
    def _strip_and_check_scheme(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        scheme, rest = split_scheme(value)
        scheme = scheme or ("file" if value.startswith("/") else "")
        if cls.SUPPORTED_SCHEMES and scheme not in cls.SUPPORTED_SCHEMES:
            allowed = ", ".join(sorted(f"{s}://" for s in cls.SUPPORTED_SCHEMES))
            raise ValueError(
                f"path {redact_url(value)!r} has an unsupported scheme; "
                f"{cls.__name__} accepts {allowed}"
            )
        problem = cls._root_problem(rest) if scheme != "file" else ""
        if problem:
            raise ValueError(f"path {redact_url(value)!r}: {problem}")
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

    BUCKET_RULE: ClassVar[str] = ""
    """What a valid bucket name is, for messages (empty: any name is accepted)."""

    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=0, le=50)

    @classmethod
    def _valid_bucket(cls, bucket: str) -> bool:
        return True

    @classmethod
    def _root_problem(cls, rest: str) -> str:
        bucket = rest.partition("/")[0]
        if not bucket:
            return "the root names no bucket (bucket/prefix after the scheme)"
        if "@" in bucket:
            return "the root's bucket holds '@' (credentials are options, never part of the root)"
        if bucket in (".", "..") or not cls._valid_bucket(bucket):
            return f"the root's bucket is not a valid bucket name: {cls.BUCKET_RULE}"
        return ""

    @field_validator("endpoint_url", check_fields=False)
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return check_endpoint(value, "endpoint_url") if value else value

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
    BUCKET_RULE: ClassVar[str] = "1 to 255 letters, digits, '.', '-' and '_'"

    part_size: int = Field(8 * MiB, ge=5 * MiB, le=5 * 1024 * MiB)
    endpoint_url: str | None = None
    region: str | None = None
    key: SecretStr | None = None
    secret: SecretStr | None = None
    token: SecretStr | None = None

    @classmethod
    def _valid_bucket(cls, bucket: str) -> bool:
        # What botocore sends at all (legacy buckets may have capitals and underscores).
        return _S3_BUCKET.match(bucket) is not None

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value and _REGION.match(value) is None:
            raise ValueError("region must be letters, digits and '-' (e.g. us-east-1)")
        return value


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
    BUCKET_RULE: ClassVar[str] = (
        "3 to 63 lower-case letters, digits, '-', '_' and '.', starting and ending with a "
        "letter or digit (up to 222 with dots, 63 between two dots)"
    )

    part_size: int = Field(8 * MiB, ge=256 * 1024)
    endpoint_url: str | None = None
    project: str | None = Field(
        None, description="Project billed for every request (userProject): requester-pays buckets."
    )
    service_file: str | None = None
    token: SecretStr | None = None

    @classmethod
    def _valid_bucket(cls, bucket: str) -> bool:
        if _GCS_BUCKET.match(bucket) is None:
            return False
        longest = max(len(part) for part in bucket.split("."))
        return longest <= 63 if "." in bucket else len(bucket) <= 63

    @field_validator("part_size")
    @classmethod
    def _multiple_of_256k(cls, value: int) -> int:
        if value % (256 * 1024):
            raise ValueError("part_size must be a multiple of 256 KiB for resumable uploads")
        return value
