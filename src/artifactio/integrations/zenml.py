"""ZenML artifact-store flavors on artifactio: ``artifactio_s3``, ``_gcs`` and ``_local``.

Register a flavor once, then use it like ZenML's own (ZenML >= 0.98,
``pip install 'artifactio[zenml]'``)::

    zenml artifact-store flavor register artifactio.integrations.zenml.S3ArtifactStoreFlavor
    zenml secret create s3-creds --aws_access_key_id=... --aws_secret_access_key=...
    zenml artifact-store register store --flavor=artifactio_s3 --path=s3://bucket/zenml \\
        --authentication_secret=s3-creds --client_kwargs='{"endpoint_url": "http://127.0.0.1:8333"}'
    zenml stack register fast -o default -a store --set

(ZenML's command line keeps ``--secret`` for itself: give the credentials through
``authentication_secret`` as here, or the ``key``/``secret`` fields with ZenML's
Python client, as values or ``{{secret_name.key}}`` references.)

Each artifact store subclasses ZenML's ``BaseArtifactStore`` and hands every
operation to an :class:`artifactio.ArtifactStore` (the blocking facade) rooted at
the artifact store's ``path``. That facade is made once per process for each
configuration and shared by every artifact-store object with that configuration:
ZenML makes new artifact-store objects often (one per stack object it builds, one
per artifact it loads from a store that is not the active stack's, one per
unpickled copy), and a client per object would pay a connection setup each time.
A forked child process makes its own facade on first use (the parent's
connections are the parent's). The shared facades close at interpreter exit;
ZenML's ``cleanup()`` (called e.g. when a step's log exporter shuts down) leaves
them open for the other objects that use them.

The configs are in :mod:`artifactio.integrations._zenml_config`; the S3 one also
takes ZenML's S3 fields, so a stack moves from ``s3`` to ``artifactio_s3`` by
changing its flavor alone. Credentials come from the config's secret fields or
from the ZenML secret named by ``authentication_secret`` (ZenML's AWS or GCP
schema), as ZenML's own flavors take them; ZenML service connectors are not
supported.
"""

# No `from __future__ import annotations` in this module. ZenML's path sanitiser
# (_sanitize_paths in zenml/artifact_stores/base_artifact_store.py) finds the path
# parameters of each artifact-store method by comparing, at run time, the
# parameter's annotation with `PathType`; with string annotations nothing would
# match, and every path would silently go unchecked: no bounds check against the
# store's path, no bytes-to-str, no backslash fix. For the same reason the
# annotations' names are imported at run time, not under TYPE_CHECKING.

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, cast

from .._exceptions import MissingDependencyError

try:
    from zenml.artifact_stores import BaseArtifactStore, BaseArtifactStoreFlavor
    from zenml.artifact_stores.base_artifact_store import PathType
    from zenml.config.global_config import GlobalConfiguration
    from zenml.secret.schemas import AWSSecretSchema, GCPSecretSchema
    from zenml.stack.authentication_mixin import AuthenticationMixin
except ImportError as exc:  # pragma: no cover - the zenml extra is missing
    raise MissingDependencyError(
        f"artifactio.integrations.zenml needs ZenML (missing module {exc.name!r}): "
        "pip install 'artifactio[zenml]'",
        name=exc.name,
    ) from exc

from .._entries import StatResult
from .._sync import ArtifactStore
from ._zenml_config import (
    GCSArtifactStoreConfig,
    LocalArtifactStoreConfig,
    S3ArtifactStoreConfig,
)

__all__ = [
    "GCSArtifactStore",
    "GCSArtifactStoreConfig",
    "GCSArtifactStoreFlavor",
    "LocalArtifactStore",
    "LocalArtifactStoreConfig",
    "LocalArtifactStoreFlavor",
    "S3ArtifactStore",
    "S3ArtifactStoreConfig",
    "S3ArtifactStoreFlavor",
]


# ------------------------------------------------------------------ the shared facades


class _StoreCache:
    """One :class:`artifactio.ArtifactStore` per (root, options), per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[tuple[Any, ...], ArtifactStore] = {}
        self._pid = os.getpid()

    def get(self, root: str, options: dict[str, Any]) -> ArtifactStore:
        """The process's facade for ``root`` with ``options``, made on first use."""
        key = (root, *sorted(options.items()))
        with self._lock:
            if self._pid != os.getpid():  # forked without the hook (it runs for os.fork)
                self._forget_parent()
            store = self._stores.get(key)
            if store is None or store._runner.closed:  # closed by a user: open a new one
                store = self._stores[key] = ArtifactStore(root, **options)
            return store

    def _forget_parent(self) -> None:
        """In a forked child: start empty. The parent's facades stay referenced,
        unused and unclosed (their connections belong to the parent)."""
        _INHERITED.extend(self._stores.values())
        self._stores = {}
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._stores)


_INHERITED: list[ArtifactStore] = []
_CACHE = _StoreCache()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_CACHE._forget_parent)


# ---------------------------------------------------------------------- the stores


class _ArtifactioStore(BaseArtifactStore):  # type: ignore[misc]  # zenml is untyped for mypy
    """A ZenML artifact store whose every operation is artifactio's (the blocking facade).

    The facade comes from a per-process cache, keyed by the root and the
    options (credentials included), so it is never pickled with the artifact
    store: an unpickled artifact store finds the facade of its process.
    """

    @property
    def store(self) -> ArtifactStore:
        """The :class:`artifactio.ArtifactStore` rooted at ``path`` that does the work."""
        options = self.__dict__.get("_artifactio_options")
        if options is None:
            options = self._artifactio_options = self._store_options()
        return _CACHE.get(self.path, options)

    def _store_options(self) -> dict[str, Any]:
        """The facade's options: the config's, and credentials where the flavor has them."""
        return cast("dict[str, Any]", self.config.store_options())

    def __getstate__(self) -> dict[str, Any]:
        state = cast("dict[str, Any]", super().__getstate__())
        state.pop("_artifactio_options", None)  # credentials: looked up again after unpickling
        return state

    def open(self, path: PathType, mode: str = "r") -> Any:
        """Open a file: modes ``r rb w wb a ab x xb``; writes show when closed successfully."""
        return self.store.open(path, mode)

    def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Copy one file (server-side on object stores); FileExistsError unless ``overwrite``."""
        self.store.copyfile(src, dst, overwrite)

    def exists(self, path: PathType) -> bool:
        """Whether a file or directory is there (an outage raises, it is never "missing")."""
        return self.store.exists(path)

    def glob(self, pattern: PathType) -> list[PathType]:
        """Sorted full paths matching ``pattern`` (``**`` spans directories)."""
        return list(self.store.glob(pattern))

    def isdir(self, path: PathType) -> bool:
        """Whether ``path`` is a directory."""
        return self.store.isdir(path)

    def listdir(self, path: PathType) -> list[PathType]:
        """Sorted names (not paths) of the entries directly below a directory."""
        return list(self.store.listdir(path))

    def makedirs(self, path: PathType) -> None:
        """Create a directory and its missing parents (an existing one is fine)."""
        self.store.makedirs(path)

    def mkdir(self, path: PathType) -> None:
        """Create one directory whose parent exists."""
        self.store.mkdir(path)

    def remove(self, path: PathType) -> None:
        """Delete one file."""
        self.store.remove(path)

    def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Move a file or a directory (on object stores: copy, then delete)."""
        self.store.rename(src, dst, overwrite)

    def rmtree(self, path: PathType) -> None:
        """Delete a directory and everything below it."""
        self.store.rmtree(path)

    def stat(self, path: PathType) -> StatResult:
        """An ``os.stat_result``-like :class:`artifactio.StatResult` (``st_size``, ``st_mtime``)."""
        return self.store.stat(path)

    def size(self, path: PathType) -> int:
        """A file's size; for a directory, the total of the files below it."""
        return self.store.size(path)

    def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[..., None] | None = None,
    ) -> Iterable[tuple[PathType, list[PathType], list[PathType]]]:
        """Walk a tree like ``os.walk`` (full ``dirpath``, sorted names), listing as it goes."""
        return self.store.walk(top, topdown, onerror)


class _RemoteStore(_ArtifactioStore, AuthenticationMixin):  # type: ignore[misc]  # zenml
    """An object store: refuses a linked ZenML service connector, which it would not use."""

    def _store_options(self) -> dict[str, Any]:
        if getattr(self, "connector", None) is not None:
            raise RuntimeError(
                f"the {self.flavor} artifact store {self.name!r} is linked to a ZenML service "
                "connector, which artifactio does not use; give credentials in its secret "
                "fields or an authentication_secret instead"
            )
        options = super()._store_options()
        options.update(self._credentials())
        return options

    def _credentials(self) -> dict[str, Any]:
        raise NotImplementedError


class S3ArtifactStore(_RemoteStore):
    """ZenML artifact store on S3 or an S3-compatible server, through artifactio."""

    @property
    def config(self) -> S3ArtifactStoreConfig:
        """The ``artifactio_s3`` config."""
        return cast("S3ArtifactStoreConfig", self._config)

    def _credentials(self) -> dict[str, Any]:
        # As ZenML's S3 flavor: an authentication_secret wins over the secret fields.
        secret = self.get_typed_authentication_secret(expected_schema_type=AWSSecretSchema)
        if secret is not None:
            found = (secret.aws_access_key_id, secret.aws_secret_access_key)
            token = secret.aws_session_token
        else:
            found = (self.config.key, self.config.secret)
            token = self.config.token
        credentials = dict(zip(("key", "secret"), found, strict=True))
        if token:
            credentials["token"] = token
        return {name: value for name, value in credentials.items() if value}


class GCSArtifactStore(_RemoteStore):
    """ZenML artifact store on Google Cloud Storage (or an emulator), through artifactio."""

    @property
    def config(self) -> GCSArtifactStoreConfig:
        """The ``artifactio_gcs`` config."""
        return cast("GCSArtifactStoreConfig", self._config)

    def _credentials(self) -> dict[str, Any]:
        # ZenML's GCP secret schema holds the credentials file's JSON text in `token`,
        # which artifactio's `token` takes as it is.
        secret = self.get_typed_authentication_secret(expected_schema_type=GCPSecretSchema)
        token = secret.token if secret is not None else self.config.token
        return {"token": token} if token else {}


class LocalArtifactStore(_ArtifactioStore):
    """ZenML artifact store in a local directory, through artifactio."""

    _path: str | None = None

    @property
    def config(self) -> LocalArtifactStoreConfig:
        """The ``artifactio_local`` config."""
        return cast("LocalArtifactStoreConfig", self._config)

    @property
    def path(self) -> str:
        """The store's directory: the config's path, else ``<ZenML config dir>/local_stores/<id>``.

        The directory is created if it is missing (as ZenML's local flavor does).
        """
        if self._path is None:
            path = self.config.path or os.path.join(
                GlobalConfiguration().local_stores_path, str(self.id)
            )
            os.makedirs(path, exist_ok=True)
            self._path = path
        return self._path

    @property
    def local_path(self) -> str:
        """The directory on this machine (orchestrators that run containers mount it)."""
        return self.path

    @property
    def custom_cache_key(self) -> bytes:
        """The ZenML user's id: a cached step from another machine's disk is not reused."""
        return cast("bytes", GlobalConfiguration().user_id.bytes)

    def _register(self) -> None:
        # ZenML registers each artifact store as the filesystem of its schemes; this
        # one's scheme is "", i.e. every local path: ZenML's own file access
        # (fileio on temporary directories, source files...) would go through this
        # store and fail outside its root. ZenML's local flavor skips it too.
        return


# --------------------------------------------------------------------- the flavors


class _ArtifactioFlavor(BaseArtifactStoreFlavor):  # type: ignore[misc]  # zenml is untyped
    """A ZenML artifact-store flavor of artifactio; subclasses name their config and store."""

    FLAVOR_NAME: ClassVar[str]
    DISPLAY_NAME: ClassVar[str]
    CONFIG_CLASS: ClassVar[type[Any]]
    IMPLEMENTATION_CLASS: ClassVar[type[_ArtifactioStore]]

    @property
    def name(self) -> str:
        """The flavor's name, as given to ``--flavor``."""
        return self.FLAVOR_NAME

    @property
    def display_name(self) -> str:
        """The flavor's name in ZenML's dashboard."""
        return self.DISPLAY_NAME

    @property
    def config_class(self) -> type[Any]:
        """The config class (what ``zenml artifact-store register`` validates)."""
        return self.CONFIG_CLASS

    @property
    def implementation_class(self) -> type[_ArtifactioStore]:
        """The artifact-store class."""
        return self.IMPLEMENTATION_CLASS


class S3ArtifactStoreFlavor(_ArtifactioFlavor):
    """Flavor ``artifactio_s3``: ``s3://bucket/prefix`` on AWS or an S3-compatible server."""

    FLAVOR_NAME: ClassVar[str] = "artifactio_s3"
    DISPLAY_NAME: ClassVar[str] = "S3 (artifactio)"
    CONFIG_CLASS: ClassVar[type[Any]] = S3ArtifactStoreConfig
    IMPLEMENTATION_CLASS: ClassVar[type[_ArtifactioStore]] = S3ArtifactStore


class GCSArtifactStoreFlavor(_ArtifactioFlavor):
    """Flavor ``artifactio_gcs``: ``gs://bucket/prefix`` on Google Cloud Storage or an emulator."""

    FLAVOR_NAME: ClassVar[str] = "artifactio_gcs"
    DISPLAY_NAME: ClassVar[str] = "GCS (artifactio)"
    CONFIG_CLASS: ClassVar[type[Any]] = GCSArtifactStoreConfig
    IMPLEMENTATION_CLASS: ClassVar[type[_ArtifactioStore]] = GCSArtifactStore


class LocalArtifactStoreFlavor(_ArtifactioFlavor):
    """Flavor ``artifactio_local``: a directory on the machine that runs the steps."""

    FLAVOR_NAME: ClassVar[str] = "artifactio_local"
    DISPLAY_NAME: ClassVar[str] = "Local (artifactio)"
    CONFIG_CLASS: ClassVar[type[Any]] = LocalArtifactStoreConfig
    IMPLEMENTATION_CLASS: ClassVar[type[_ArtifactioStore]] = LocalArtifactStore
