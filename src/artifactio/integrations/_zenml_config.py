"""The configs of the ZenML flavors in :mod:`artifactio.integrations.zenml`, and their options.

Each config is a ZenML ``BaseArtifactStoreConfig`` (what ``zenml artifact-store
register --flavor=...`` validates) that also holds artifactio's own options.
:func:`s3_options` and :func:`object_store_options` turn one into the keyword
arguments of :class:`artifactio.ArtifactStore`; the credentials are added by the
artifact store, which resolves ZenML secrets at run time.

The S3 config takes ZenML's S3 fields too, so a stack moves from the ``s3`` flavor
to ``artifactio_s3`` by changing the flavor alone: ``key``/``secret``/``token``
(secret fields), ``client_kwargs`` (``endpoint_url``, ``region_name``),
``config_kwargs`` (botocore ``Config`` options that artifactio has a meaning for)
and ``s3_additional_kwargs`` (none has one). Anything else in those dicts is
refused when the config is validated, with a message that says what to do, so a
setting never silently stops applying.

No ``from __future__ import annotations`` here: ZenML reads the fields'
annotations at run time (``StackComponentConfig`` converts JSON strings given on
the command line by looking at them), so they stay ordinary objects.
"""

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from zenml.artifact_stores import BaseArtifactStoreConfig
from zenml.stack.authentication_mixin import AuthenticationConfigMixin
from zenml.utils.networking_utils import replace_localhost_with_internal_hostname
from zenml.utils.secret_utils import SecretField

from .. import _config

__all__ = [
    "GCSArtifactStoreConfig",
    "LocalArtifactStoreConfig",
    "S3ArtifactStoreConfig",
    "object_store_options",
    "s3_options",
]

_REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "hdfs://", "az://", "abfs://", "memory://")


def _explain(exc: ValidationError) -> str:
    """artifactio's validation errors as one line (they name options, never values)."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(message if not where or message.startswith(where) else f"{where}: {message}")
    return "; ".join(lines)


def _container_endpoint(url: str) -> str:
    """As ZenML's S3 flavor does: in a container, a 127.0.0.1/localhost endpoint
    becomes the host's name there (host.docker.internal, host.k3d.internal)."""
    return str(replace_localhost_with_internal_hostname(url.rstrip("/")))


def _checked(model: type[_config.StoreConfig], path: str, options: Mapping[str, Any]) -> None:
    """Validate ``path`` and ``options`` as artifactio will, raising ``ValueError`` on a problem."""
    try:
        model(path=path, **options)
    except ValidationError as exc:
        raise ValueError(_explain(exc)) from None


class _CommonConfig(BaseArtifactStoreConfig):  # type: ignore[misc]  # zenml is untyped for mypy
    """artifactio's options that every backend takes; ``None`` keeps artifactio's default.

    Attributes:
        concurrency: Requests a bulk operation keeps in flight (S3: also the
            connection pool's size).
        part_size: Write buffer size and multipart part size, in bytes.
    """

    # Unknown options fail (ZenML's configs ignore them: a typo would silently not apply),
    # and validation errors never show the input, which holds the secret fields.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    concurrency: int | None = Field(
        None, description="Requests a bulk operation keeps in flight (artifactio's default: 32)."
    )
    part_size: int | None = Field(
        None, description="Write buffer and multipart part size in bytes (artifactio's default)."
    )

    def store_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`artifactio.ArtifactStore`, without credentials."""
        return self._own_options()

    def _own_options(self) -> dict[str, Any]:
        """artifactio's options set in this config (no credentials), by artifactio's names."""
        names = ("concurrency", "part_size", "connect_timeout", "read_timeout", "retries")
        return {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}


class _RemoteConfig(_CommonConfig, AuthenticationConfigMixin):  # type: ignore[misc]  # zenml
    """Options of the object stores: timeouts and retries, and ZenML's ``authentication_secret``.

    Attributes:
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a response.
        retries: Attempts after the first on throttling, 5xx and dropped connections.
    """

    # Again: pydantic merges the bases' configs in order, and the mixin's says extra="ignore".
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    connect_timeout: float | None = Field(None, description="Seconds to wait for a connection.")
    read_timeout: float | None = Field(None, description="Seconds to wait for a response.")
    retries: int | None = Field(None, description="Attempts after the first on transient failures.")

    ARTIFACTIO_CONFIG: ClassVar[type[_config.StoreConfig]]
    """The artifactio config that validates the root and the options."""

    @field_validator("endpoint_url", check_fields=False)
    @classmethod
    def _endpoint_from_inside_a_container(cls, value: str | None) -> str | None:
        return _container_endpoint(value) if value else value

    @model_validator(mode="after")
    def _artifactio_accepts(self) -> "_RemoteConfig":
        # The same checks artifactio makes when the store opens, made at registration.
        # (No credential is read here: a secret reference would need the ZenML client.)
        _checked(self.ARTIFACTIO_CONFIG, self.path, self.store_options())
        return self


# ---------------------------------------------------------------------------- S3

_CLIENT_KWARGS = {"endpoint_url": "endpoint_url", "region_name": "region"}
_CREDENTIAL_KWARGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_CONFIG_KWARGS = frozenset(
    {"region_name", "connect_timeout", "read_timeout", "retries", "max_pool_connections"}
    | {"signature_version", "s3"}
)


def _s3_client_kwargs(client_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in client_kwargs.items():
        if name in _CLIENT_KWARGS:
            if value is not None:
                options[_CLIENT_KWARGS[name]] = value
        elif name in _CREDENTIAL_KWARGS:
            raise ValueError(
                f"client_kwargs: give {name!r} as the secret field "
                f"{'key' if 'key_id' in name else 'secret' if 'secret' in name else 'token'!r} "
                "(or an authentication_secret), not in client_kwargs"
            )
        else:
            raise ValueError(
                f"client_kwargs: {name!r} has no meaning for artifactio_s3; it takes "
                "endpoint_url and region_name (artifactio's own options: endpoint_url, region, "
                "connect_timeout, read_timeout, retries, concurrency, part_size)"
            )
    return options


def _s3_retries(retries: Any) -> int:
    """botocore's ``retries`` dict as artifactio's ``retries`` (attempts after the first)."""
    if not isinstance(retries, Mapping):
        raise ValueError("config_kwargs: retries must be a dict such as {'max_attempts': 5}")
    unknown = set(retries) - {"max_attempts", "total_max_attempts", "mode"}
    if unknown:
        raise ValueError(
            f"config_kwargs: retries takes max_attempts, total_max_attempts and mode, "
            f"not {sorted(unknown)}"
        )
    if retries.get("mode", "standard") != "standard":
        raise ValueError(
            "config_kwargs: retries mode must be 'standard' (artifactio retries in botocore's "
            "standard mode only); drop 'mode' or set it to 'standard'"
        )
    if "max_attempts" in retries and "total_max_attempts" in retries:
        raise ValueError(
            "config_kwargs: retries takes max_attempts or total_max_attempts, not both"
        )
    if "total_max_attempts" in retries:
        total = retries["total_max_attempts"]
        if not isinstance(total, int) or total < 1:
            raise ValueError("config_kwargs: retries total_max_attempts must be an integer >= 1")
        return total - 1
    attempts = retries.get("max_attempts", 5)
    if not isinstance(attempts, int):
        raise ValueError("config_kwargs: retries max_attempts must be an integer")
    return attempts  # botocore's max_attempts counts the retries, as artifactio's retries does


def _s3_config_kwargs(config_kwargs: Mapping[str, Any], endpoint: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in config_kwargs.items():
        if name not in _CONFIG_KWARGS:
            raise ValueError(
                f"config_kwargs: {name!r} has no meaning for artifactio_s3; it takes "
                + ", ".join(sorted(_CONFIG_KWARGS))
            )
        if value is None:
            continue
        if name == "region_name":
            options["region"] = value
        elif name in ("connect_timeout", "read_timeout"):
            options[name] = value
        elif name == "max_pool_connections":
            options["concurrency"] = value  # artifactio sizes its pool by its concurrency
        elif name == "retries":
            options["retries"] = _s3_retries(value)
        elif name == "signature_version":
            if value != "s3v4":
                raise ValueError("config_kwargs: artifactio_s3 signs requests with 's3v4' only")
        else:  # "s3"
            style = value.get("addressing_style", "auto") if isinstance(value, Mapping) else None
            if not isinstance(value, Mapping) or set(value) - {"addressing_style"}:
                raise ValueError("config_kwargs: s3 takes only {'addressing_style': ...}")
            if style not in (("path",) if endpoint else ("auto", "virtual")):
                raise ValueError(
                    "config_kwargs: artifactio addresses buckets by path when an endpoint is "
                    "set and virtual-host style on AWS; s3.addressing_style "
                    f"{style!r} cannot apply here (drop it)"
                )
    return options


def s3_options(
    *,
    endpoint_url: str | None,
    region: str | None,
    client_kwargs: Mapping[str, Any] | None,
    config_kwargs: Mapping[str, Any] | None,
    s3_additional_kwargs: Mapping[str, Any] | None,
    own: Mapping[str, Any],
) -> dict[str, Any]:
    """artifactio's S3 options from artifactio's own fields and ZenML's S3 fields.

    Args:
        endpoint_url: artifactio's ``endpoint_url`` field.
        region: artifactio's ``region`` field.
        client_kwargs: ZenML's ``client_kwargs``: ``endpoint_url``, ``region_name``.
        config_kwargs: ZenML's ``config_kwargs`` (botocore ``Config``):
            ``region_name``, ``connect_timeout``, ``read_timeout``,
            ``retries`` (``max_attempts``/``total_max_attempts``, mode
            ``standard``), ``max_pool_connections`` (artifactio's
            ``concurrency``), ``signature_version`` (``s3v4``) and
            ``s3={"addressing_style": ...}`` when it is what artifactio does.
        s3_additional_kwargs: ZenML's ``s3_additional_kwargs``: must be empty,
            artifactio sends no extra request parameters.
        own: artifactio's other options set in the config (``concurrency``...).

    Returns:
        The options (no credentials).

    Raises:
        ValueError: A setting artifactio has no meaning for, or two settings
            that say different things (the message names them, not their values).
    """
    if s3_additional_kwargs:
        raise ValueError(
            "s3_additional_kwargs: artifactio_s3 sends no extra request parameters "
            f"({', '.join(sorted(s3_additional_kwargs))}); remove them, or keep ZenML's s3 flavor "
            "for this stack"
        )
    sources: list[tuple[str, dict[str, Any]]] = [
        ("", {"endpoint_url": endpoint_url, "region": region, **own}),
        ("client_kwargs", _s3_client_kwargs(client_kwargs or {})),
    ]
    endpoint = any(found.get("endpoint_url") for _, found in sources)
    sources.append(("config_kwargs", _s3_config_kwargs(config_kwargs or {}, endpoint)))
    options: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for where, found in sources:
        for name, value in found.items():
            if value is None:
                continue
            if name in options and options[name] != value:
                raise ValueError(f"{origin[name]} and {where} set {name} differently; set it once")
            options[name] = value
            origin.setdefault(name, where or f"the field {name}")
    return options


class S3ArtifactStoreConfig(_RemoteConfig):
    """Config of the ``artifactio_s3`` flavor: ZenML's S3 fields and artifactio's S3 options.

    Attributes:
        key: Access key id (a secret field; ZenML's name).
        secret: Secret access key (a secret field).
        token: Session token (a secret field).
        client_kwargs: ZenML's: ``endpoint_url`` and ``region_name``.
        config_kwargs: ZenML's botocore ``Config`` options that artifactio has a
            meaning for (see :func:`s3_options`).
        s3_additional_kwargs: ZenML's; must stay empty.
        endpoint_url: artifactio's name for the endpoint.
        region: artifactio's name for the region.
    """

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {"s3://"}
    ARTIFACTIO_CONFIG: ClassVar[type[_config.StoreConfig]] = _config.S3Config

    key: str | None = SecretField(default=None, description="AWS access key id.")
    secret: str | None = SecretField(default=None, description="AWS secret access key.")
    token: str | None = SecretField(default=None, description="AWS session token.")
    client_kwargs: dict[str, Any] | None = Field(
        None, description="ZenML's S3 field: {'endpoint_url': ..., 'region_name': ...}."
    )
    config_kwargs: dict[str, Any] | None = Field(
        None,
        description="ZenML's S3 field (botocore Config): region_name, connect_timeout, "
        "read_timeout, retries, max_pool_connections, signature_version='s3v4'.",
    )
    s3_additional_kwargs: dict[str, Any] | None = Field(
        None, description="ZenML's S3 field; artifactio_s3 takes none (leave empty)."
    )
    endpoint_url: str | None = Field(
        None, description="S3 endpoint, e.g. http://127.0.0.1:8333 (default: AWS)."
    )
    region: str | None = Field(None, description="AWS region (default: the AWS chain's).")

    @field_validator("client_kwargs")
    @classmethod
    def _endpoint_in_client_kwargs(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and isinstance(value.get("endpoint_url"), str):
            value = dict(value)
            value["endpoint_url"] = _container_endpoint(value["endpoint_url"])
        return value

    def store_options(self) -> dict[str, Any]:
        return s3_options(
            endpoint_url=self.endpoint_url,
            region=self.region,
            client_kwargs=self.client_kwargs,
            config_kwargs=self.config_kwargs,
            s3_additional_kwargs=self.s3_additional_kwargs,
            own=self._own_options(),
        )


# --------------------------------------------------------------------------- GCS


def object_store_options(config: "_RemoteConfig", names: tuple[str, ...]) -> dict[str, Any]:
    """The options ``names`` set in ``config``, with artifactio's common ones."""
    options = config._own_options()
    options.update({n: getattr(config, n) for n in names if getattr(config, n) is not None})
    return options


class GCSArtifactStoreConfig(_RemoteConfig):
    """Config of the ``artifactio_gcs`` flavor (``gs://bucket/prefix``).

    GCS objects cannot be appended to, so ZenML writes a step's logs as separate
    files and merges them at the end (``IS_IMMUTABLE_FILESYSTEM``, as ZenML's own
    GCP flavor).

    Attributes:
        endpoint_url: The JSON API's root (an emulator's URL); without it
            ``STORAGE_EMULATOR_HOST``, else Google's.
        project: The project billed for requests (requester-pays buckets).
        service_file: A credentials file on the machines that run the steps.
        token: An OAuth2 access token or the JSON text of a credentials file
            (a secret field). An ``authentication_secret`` of ZenML's GCP schema
            gives the same.
    """

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {"gs://"}
    IS_IMMUTABLE_FILESYSTEM: ClassVar[bool] = True
    ARTIFACTIO_CONFIG: ClassVar[type[_config.StoreConfig]] = _config.GCSConfig

    endpoint_url: str | None = Field(
        None, description="JSON API root, e.g. an emulator's http://127.0.0.1:4443."
    )
    project: str | None = Field(None, description="Project billed for requests (requester-pays).")
    service_file: str | None = Field(None, description="Path of a credentials file.")
    token: str | None = SecretField(
        default=None, description="OAuth2 access token or the JSON text of a credentials file."
    )

    def store_options(self) -> dict[str, Any]:
        return object_store_options(self, ("endpoint_url", "project", "service_file"))


# ------------------------------------------------------------------------- local


class LocalArtifactStoreConfig(_CommonConfig):
    """Config of the ``artifactio_local`` flavor: a directory on the machine that runs the steps.

    Attributes:
        path: An absolute path, or a ``file://`` URI (stored as the plain path).
            Empty: a directory of its own in ZenML's global config directory, as
            ZenML's ``local`` flavor does.
    """

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {""}

    path: str = Field(
        "", description="Absolute local path (empty: a directory in ZenML's config directory)."
    )

    @field_validator("path")
    @classmethod
    def _absolute_local_path(cls, path: str) -> str:
        if path.startswith("file://"):
            path = path.removeprefix("file://") or "/"
        if any(path.startswith(prefix) for prefix in _REMOTE_PREFIXES):
            raise ValueError(
                f"path {path.partition('://')[0]}://... is not local; artifactio_local takes an "
                "absolute local path (use artifactio_s3 or artifactio_gcs for object stores)"
            )
        if path and not os.path.isabs(path):
            raise ValueError(
                "path must be absolute (a relative path would mean another directory in every "
                "process that runs a step)"
            )
        return path

    @property
    def is_local(self) -> bool:
        """The store's files are on this machine (ZenML keeps remote orchestrators away)."""
        return True

    @model_validator(mode="after")
    def _artifactio_accepts(self) -> "LocalArtifactStoreConfig":
        if self.path:
            _checked(_config.LocalConfig, self.path, self._own_options())
        return self
