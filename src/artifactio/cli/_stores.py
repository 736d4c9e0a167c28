"""The stores a command works on, opened from the URIs on its command line.

Each URI is split as the transfer engine splits it
(:func:`artifactio.transfer._endpoints.parse_location`): object stores are opened
at their bucket, local paths at their parent directory (a relative path is taken
from the working directory). The command's options reach every store that takes
them: ``--endpoint-url`` the object stores, ``--concurrency`` and ``--part-size``
all of them. URIs of one root share one store, so a copy inside one bucket is
done server-side. Credentials come from the environment, as for
:func:`artifactio.open_store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._concurrency import shielded
from .._paths import split_scheme
from .._registry import open_store
from ..transfer._endpoints import parse_location

if TYPE_CHECKING:
    from types import TracebackType

    from .._store import AsyncArtifactStore

__all__ = ["StoreSet", "Target"]

_NO_ENDPOINT = frozenset({"", "file", "memory"})
"""Schemes whose stores take no ``endpoint_url``."""

Target = tuple["AsyncArtifactStore", str]
"""A store and a full path in it (ending in ``/`` when the URI did)."""


class StoreSet:
    """Opens one store per root on demand; closes them all when the block ends.

    Args:
        endpoint_url: For object stores (``None``: from the environment).
        concurrency: Requests in flight at once, per store.
        part_size: Part size for every store (``None``: each store's default).
    """

    def __init__(
        self, *, endpoint_url: str | None, concurrency: int, part_size: int | None
    ) -> None:
        self._endpoint_url = endpoint_url
        self._concurrency = concurrency
        self._part_size = part_size
        self._stores: dict[str, AsyncArtifactStore] = {}

    def target(self, uri: str) -> Target:
        """The store serving ``uri`` (opened on first use) and the full path there.

        Raises:
            UnsupportedSchemeError, InvalidPathError, MissingDependencyError,
            pydantic.ValidationError, ValueError: From opening the store.
        """
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
        if self._endpoint_url is not None and split_scheme(root)[0] not in _NO_ENDPOINT:
            options["endpoint_url"] = self._endpoint_url
        return options

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
