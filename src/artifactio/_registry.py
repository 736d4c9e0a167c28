"""Which backend serves which URI scheme, and :func:`open_store`.

Built-in backends are imported lazily, on first use, so a missing optional
dependency costs nothing until that backend is asked for, and then fails with
an error that names the extra to install. Third-party backends join through the
``artifactio.backends`` entry-point group (name: the scheme; value:
``"package.module:StoreClass"``) or by calling :func:`register_backend`.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ._exceptions import MissingDependencyError, UnsupportedSchemeError
from ._paths import coerce_path, split_scheme

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._store import AsyncArtifactStore

__all__ = ["available_schemes", "get_backend", "open_store", "register_backend"]

ENTRY_POINT_GROUP = "artifactio.backends"

_BUILTIN: dict[str, str] = {
    "file": "artifactio.backends.local:LocalStore",
    "memory": "artifactio.backends.memory:MemoryStore",
    "s3": "artifactio.backends.s3:S3Store",
    "gs": "artifactio.backends.gcs:GCSStore",
    "gcs": "artifactio.backends.gcs:GCSStore",
}

_EXTRAS: dict[str, str] = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}

_registered: dict[str, str | type[AsyncArtifactStore]] = {}
_loaded: dict[str, type[AsyncArtifactStore]] = {}
_entry_points_read = False
_lock = threading.Lock()


def register_backend(scheme: str, backend: str | type[AsyncArtifactStore]) -> None:
    """Serve ``scheme://`` URIs with ``backend``.

    Args:
        scheme: The URI scheme, e.g. ``"myfs"``.
        backend: The store class, or ``"package.module:StoreClass"`` to import lazily.
            The class is called as ``StoreClass(uri, **options)``.
    """
    with _lock:
        _registered[scheme.lower()] = backend
        _loaded.pop(scheme.lower(), None)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _registered.setdefault(ep.name.lower(), ep.value)
    _entry_points_read = True


def available_schemes() -> list[str]:
    """The schemes that have a backend (built in, registered or from entry points)."""
    with _lock:
        _read_entry_points()
        return sorted(set(_BUILTIN) | set(_registered))


def get_backend(scheme: str) -> type[AsyncArtifactStore]:
    """The store class that serves ``scheme``, imported on first use.

    Raises:
        UnsupportedSchemeError: No backend serves the scheme.
        MissingDependencyError: The backend's optional dependency is missing.
    """
    scheme = scheme.lower()
    with _lock:
        cached = _loaded.get(scheme)
        if cached is not None:
            return cached
        _read_entry_points()
        target = _registered.get(scheme, _BUILTIN.get(scheme))
    if target is None:
        raise UnsupportedSchemeError(
            f"no backend for {scheme}:// URIs; available: "
            + ", ".join(f"{s}://" for s in available_schemes())
        )
    if isinstance(target, str):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            extra = _EXTRAS.get(scheme)
            if extra is None or (exc.name or "").startswith("artifactio"):
                raise
            raise MissingDependencyError(
                f"the {scheme}:// backend needs the '{extra}' extra "
                f"(missing module {exc.name!r}): pip install 'artifactio[{extra}]'",
                name=exc.name,
            ) from exc
        cls: type[AsyncArtifactStore] = getattr(module, attr)
    else:
        cls = target
    with _lock:
        _loaded[scheme] = cls
    return cls


def open_store(uri: Any, **options: Any) -> AsyncArtifactStore:
    """Open the store rooted at ``uri``, choosing the backend by the URI's scheme.

    Args:
        uri: ``memory://name/prefix``, an absolute local path or ``file://`` URI,
            ``s3://bucket/prefix``, ``gs://bucket/prefix``, or any registered scheme.
        **options: The backend's options (see its config model), e.g.
            ``endpoint_url``, ``key``, ``secret``, ``concurrency``, ``part_size``.

    Returns:
        An :class:`~artifactio.AsyncArtifactStore`; close it with ``aclose()`` or
        ``async with``.

    Raises:
        UnsupportedSchemeError: No backend serves the scheme.
        MissingDependencyError: The backend's extra is not installed.
        pydantic.ValidationError: An option is unknown or invalid, or an object
            store's root names no valid bucket (the error names the option, never
            its value).
        ValueError: The root climbs out of its bucket, or an endpoint is not an
            ``http(s)://host[:port]`` URL (shown without ``user:password@``).
    """
    text = coerce_path(uri, "open_store").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    scheme, _ = split_scheme(text)
    if not scheme:
        if not text.startswith("/"):
            raise UnsupportedSchemeError(
                f"{text!r} is neither a URI nor an absolute path; "
                "use e.g. /data/artifacts, file:///data/artifacts or s3://bucket/prefix"
            )
        scheme = "file"
    factory: Callable[..., AsyncArtifactStore] = get_backend(scheme)
    return factory(text, **options)
