"""artifactio: an async-first artifact store for ML pipelines.

``open_store(uri)`` gives an :class:`AsyncArtifactStore` (awaitable methods);
:class:`ArtifactStore` is the generated blocking facade with the same methods;
:func:`copy` and :func:`sync` move many files between any two stores, and
:mod:`artifactio.blocking` holds their generated blocking twins.
"""

from . import blocking as blocking  # the blocking twins of copy/sync
from ._config import GCSConfig, LocalConfig, MemoryConfig, S3Config, StoreConfig
from ._entries import DirEntry, EntryInfo, StatResult
from ._exceptions import (
    ArtifactioError,
    IntegrityError,
    InvalidPathError,
    MissingDependencyError,
    PathOutsideStoreError,
    StoreClosedError,
    StoreConnectionError,
    UnsupportedSchemeError,
)
from ._files import AsyncFile, RawReader, RawWriter
from ._paths import PathType
from ._registry import available_schemes, get_backend, open_store, register_backend
from ._store import AsyncArtifactStore
from ._sync import ArtifactStore
from .transfer import TransferProgress, TransferReport, copy, sync

__version__ = "0.1.0"

__all__ = [
    "ArtifactStore",
    "ArtifactioError",
    "AsyncArtifactStore",
    "AsyncFile",
    "DirEntry",
    "EntryInfo",
    "GCSConfig",
    "IntegrityError",
    "InvalidPathError",
    "LocalConfig",
    "MemoryConfig",
    "MissingDependencyError",
    "PathOutsideStoreError",
    "PathType",
    "RawReader",
    "RawWriter",
    "S3Config",
    "StatResult",
    "StoreClosedError",
    "StoreConfig",
    "StoreConnectionError",
    "TransferProgress",
    "TransferReport",
    "UnsupportedSchemeError",
    "__version__",
    "available_schemes",
    "copy",
    "get_backend",
    "open_store",
    "register_backend",
    "sync",
]
