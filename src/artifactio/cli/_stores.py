"""The stores a command works on, opened from the URIs on its command line.

Each URI is split as the transfer engine splits it
(:func:`artifactio.transfer._endpoints.parse_location`): object stores are opened
at their bucket, local paths at their parent directory (a relative path is taken
from the working directory). A mistyped URI — a backend's scheme and a colon
without ``//`` (``s3:/bucket/key``, ``gs:bucket``) — is refused rather than
taken for a local path that begins with ``s3:``; ``./s3:x`` names such a path.
The command's options reach every store that takes them: ``--concurrency`` and
``--part-size`` all of them, ``--endpoint-url`` the object stores — ``s3=URL``
the S3 ends, ``gs=URL`` the GCS ends, a plain URL every object-store end whose
scheme has no URL of its own. A plain URL that would reach ends of two schemes
(``cp s3://... gs://...``) is refused: one server hardly serves both. URIs of one
root share one store, so a copy inside one bucket is done server-side.
Credentials come from the environment, as for :func:`artifactio.open_store`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._concurrency import shielded
from .._paths import split_scheme
from .._registry import available_schemes, open_store
from ..transfer._endpoints import parse_location
from ._parser import Endpoints, UsageError

if TYPE_CHECKING:
    from types import TracebackType

    from .._store import AsyncArtifactStore

__all__ = ["StoreSet", "Target", "check_uri"]

_NO_ENDPOINT = frozenset({"", "file", "memory"})
"""Schemes whose stores take no ``endpoint_url``."""

_CANONICAL = {"gcs": "gs"}

_SCHEME_WITHOUT_SLASHES = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!//)")
"""``scheme:`` not followed by ``//`` at the start of a command-line path."""


def check_uri(uri: str) -> None:
    """Refuse ``uri`` when it looks like a mistyped URI of a backend (``s3:/bucket/key``).

    ``file:/path`` too: paths take ``file:///path`` only (else ``file:`` would
    be a directory of the working directory).

    Raises:
        UsageError: A backend's scheme and a colon, without ``//`` after it.
    """
    match = _SCHEME_WITHOUT_SLASHES.match(uri)
    if match is None:
        return
    scheme = match.group(1).lower()
    if scheme in available_schemes():
        example = "/PATH" if scheme == "file" else "BUCKET/KEY"
        raise UsageError(
            f"{scheme}: without // is not a URI: write {scheme}://{example} "
            f"(or ./{scheme}:... for a local path)"
        )


Target = tuple["AsyncArtifactStore", str]
"""A store and a full path in it (ending in ``/`` when the URI did)."""


def _scheme(uri: str) -> str:
    """The canonical scheme of ``uri`` (``""`` for a local path)."""
    scheme = split_scheme(uri)[0]
    return _CANONICAL.get(scheme, scheme)


class StoreSet:
    """Opens one store per root on demand; closes them all when the block ends.

    Args:
        endpoint_url: The ``--endpoint-url`` options (a string: one URL for every
            object store; ``None``: endpoints from the environment).
        concurrency: Requests in flight at once, per store.
        part_size: Part size for every store (``None``: each store's default).
    """

    def __init__(
        self,
        *,
        endpoint_url: Endpoints | str | None,
        concurrency: int,
        part_size: int | None,
    ) -> None:
        if isinstance(endpoint_url, str):
            endpoint_url = Endpoints(plain=endpoint_url)
        self._endpoints = endpoint_url if endpoint_url is not None else Endpoints()
        self._plain_for: str | None = None  # the scheme the plain URL went to
        self._concurrency = concurrency
        self._part_size = part_size
        self._stores: dict[str, AsyncArtifactStore] = {}

    def target(self, uri: str) -> Target:
        """The store serving ``uri`` (opened on first use) and the full path there.

        Raises:
            UsageError: A mistyped URI (:func:`check_uri`), or a plain
                ``--endpoint-url`` would reach this end and an earlier one of
                another scheme.
            UnsupportedSchemeError, InvalidPathError, MissingDependencyError,
            pydantic.ValidationError, ValueError: From opening the store.
        """
        check_uri(uri)
        root, path, as_dir = parse_location(uri)
        store = self._stores.get(root)
        if store is None:
            store = open_store(root, **self._options(root))
            self._stores[root] = store
        return store, path + "/" if as_dir else path

    def _options(self, root: str) -> dict[str, Any]:
        options: dict[str, Any] = {"concurrency": self._concurrency}
        if self._part_size is not None:
            options["part_size"] = self._part_size
        scheme = _scheme(root)
        if scheme not in _NO_ENDPOINT:
            url = self._endpoints.url_for(scheme)
            if url is not None:
                if scheme not in self._endpoints.by_scheme:
                    self._plain_url_for(scheme)
                options["endpoint_url"] = url
        return options

    def _plain_url_for(self, scheme: str) -> None:
        """The plain ``--endpoint-url`` goes to an end of ``scheme``: refuse a second scheme."""
        if self._plain_for is None:
            self._plain_for = scheme
        elif scheme != self._plain_for:
            first, second = sorted((self._plain_for, scheme))
            raise UsageError(
                f"--endpoint-url: one URL for both the {first}:// and the {second}:// ends; "
                f"give each its own: --endpoint-url {first}=URL --endpoint-url {second}=URL"
            )

    async def __aenter__(self) -> StoreSet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with shielded():
            for store in self._stores.values():
                await store.aclose()
