"""The two ends of a transfer: a store and a path in it, opened from what the user gave.

``src`` and ``dst`` are each a URI or local path, or a ``(store, path)`` pair:

- A URI (``s3://bucket/a/b``, ``gs://...``, ``memory://name/a``, ``file:///x``)
  or a local path (absolute, or relative to the working directory) is opened
  with :func:`artifactio.open_store` and closed when the transfer ends. Object
  stores (and memory stores) are rooted at their bucket (or name), local paths
  at their parent directory. Stores opened here get the transfer's
  ``concurrency`` (so their connection pools fit it) and their own defaults
  otherwise; credentials and endpoints come from the environment as for
  ``open_store`` (``AWS_ENDPOINT_URL``, ``STORAGE_EMULATOR_HOST``...). For other
  options, open the store yourself and pass a pair.
- A ``(store, path)`` pair reuses an open :class:`~artifactio.AsyncArtifactStore`
  (the path may be full or relative to its root). It is not closed.

When both ends are URIs of the same bucket of the same service, one store
serves both, so files are copied server-side (S3 ``CopyObject``, GCS
``rewrite``); the same holds for two pairs with the *same store object*. Two
different store objects are always treated as different services (bytes
stream through this process), even when they point at the same bucket.

A path written with a trailing ``/`` names a directory: a single file copied
there lands inside it, as it does when the destination is an existing directory.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .._concurrency import shielded
from .._paths import PathType, coerce_path, join_key, split_scheme
from .._registry import open_store
from .._store import AsyncArtifactStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .._files import RawReader, RawWriter

__all__ = ["Endpoint", "Location", "open_endpoints", "parse_location"]

Location = PathType | tuple[AsyncArtifactStore, PathType]
"""An end of a transfer: a URI or local path, or a ``(store, path)`` pair."""

_MAX_STORE_CONCURRENCY = 4096
"""The largest ``concurrency`` a store's config accepts."""


@dataclass(frozen=True)
class Endpoint:
    """One end of a transfer: a store and the key of the source or destination in it.

    Attributes:
        store: The store.
        key: The key (relative to the store's root) of the file or directory.
        as_dir: The path was written with a trailing ``/``.
        owned: The transfer opened the store (and closes it).
    """

    store: AsyncArtifactStore
    key: str
    as_dir: bool = False
    owned: bool = False

    def key_of(self, rel: str) -> str:
        """The store key of relative path ``rel`` below this end."""
        return join_key(self.key, rel) if rel else self.key

    def full(self, rel: str = "") -> str:
        """The full path of relative path ``rel`` below this end."""
        return self.store._full(self.key_of(rel))

    def store_key(self, rel: str, op: str) -> str:
        """The store key of ``rel`` below this end, checked as the store checks ``op``'s paths."""
        return self.store._key(self.full(rel), op)

    def child(self, name: str) -> Endpoint:
        """The end one level down, at ``name``."""
        return replace(self, key=join_key(self.key, name), as_dir=False)

    async def checksum(self, rel: str) -> str | None:
        """The checksum the store keeps for file ``rel`` below this end, if any.

        Raises:
            FileNotFoundError: No such file.
        """
        return await self.store._checksum(self.store_key(rel, "stat"))

    async def pinned_checksum(self, rel: str, reader: RawReader) -> str | None:
        """The checksum the store keeps of the very bytes ``reader`` of ``rel`` reads, if any.

        See ``StorePrimitives._pinned_checksum``.

        Raises:
            FileNotFoundError: No such file.
        """
        return await self.store._pinned_checksum(self.store_key(rel, "stat"), reader)

    async def copy_from(self, source: Endpoint, rel: str, *, exclusive: bool) -> int | None:
        """Copy file ``rel`` of ``source`` here without streaming it, where the stores can.

        Returns the size copied, or ``None`` when the file must be streamed (see
        ``StorePrimitives._copy_from``).
        """
        return await self.store._copy_from(
            source.store,
            source.store_key(rel, "copyfile"),
            self.store_key(rel, "copyfile"),
            exclusive=exclusive,
        )

    async def open_reader(self, rel: str) -> RawReader:
        """A reader of file ``rel`` below this end (the store's primitive; close it).

        Raises:
            FileNotFoundError, IsADirectoryError: As ``store.open(path, "rb")``.
        """
        return await self.store._open_reader(self.store_key(rel, "open"))

    async def open_writer(
        self,
        rel: str,
        *,
        exclusive: bool,
        checksum: str | None = None,
        part_crcs: Sequence[int] | None = None,
        pinned: bool = False,
    ) -> RawWriter:
        """A writer of file ``rel`` below this end (the store's primitive).

        Unlike ``open``, it does not look at the path first (one request fewer per
        file on object stores): call it only where the destination listing showed
        that ``rel`` is not a directory. Nothing is published until
        :meth:`RawWriter.commit`; the caller must :meth:`RawWriter.abort` it on any
        failure or cancellation. ``exclusive`` makes the commit raise
        ``FileExistsError`` if the file exists by then. A directory that appeared
        at the path after the listing is not replaced by a local or in-memory
        store (the commit raises); an object store writes the file beside it.
        ``checksum`` (``"md5:<hex>"``): the file's, declared up front, for a store
        that keeps it with the file, with each part's CRC-32 or ``pinned``
        (``StorePrimitives._open_writer_with_checksum``).

        Raises:
            StoreClosedError: The store is closed.
            PermissionError: The path is outside the store.
        """
        key = self.store_key(rel, "open")
        if checksum is None:
            return await self.store._open_writer(key, exclusive=exclusive)
        return await self.store._open_writer_with_checksum(
            key, exclusive=exclusive, checksum=checksum, part_crcs=part_crcs, pinned=pinned
        )

    async def write_whole(self, rel: str, data: bytes, *, exclusive: bool) -> bool:
        """Write ``data`` as file ``rel`` below this end, all or nothing; whether it was verified.

        As :meth:`open_writer` (which it stands for, with its write and commit),
        it does not look at the path first (see ``StorePrimitives._write_whole``).
        """
        return await self.store._write_whole(self.store_key(rel, "open"), data, exclusive=exclusive)


def parse_location(location: PathType) -> tuple[str, str, bool]:
    """Split a URI or local path into the root to open, the full path, and "ends in /".

    Object stores are rooted at their bucket (``s3://bucket``), memory stores at
    their name, local paths at their parent directory; a relative local path is
    taken from the working directory.

    Raises:
        InvalidPathError: An empty path, a NUL byte...
    """
    return _parse(location)[:3]


def _parse(location: PathType) -> tuple[str, str, bool, tuple[str, str] | None]:
    text = coerce_path(location, "transfer")
    as_dir = text.endswith("/") and len(text.rstrip("/")) > 0
    scheme, rest = split_scheme(text)
    if scheme in ("", "file"):
        local = rest if scheme else text
        if scheme and not local.startswith("/"):
            local = "/" + local
        path = posixpath.normpath(os.path.abspath(local) if not scheme else local)
        head = "file://" if scheme else ""
        parent = posixpath.dirname(path)
        return head + parent, head + path, as_dir, None
    parts = [p for p in rest.split("/") if p]
    bucket = parts[0] if parts else ""
    root = f"{scheme}://{bucket}"
    path = root + ("/" + "/".join(parts[1:]) if len(parts) > 1 else "")
    canonical = {"gcs": "gs"}.get(scheme, scheme)
    return root, path, as_dir, (canonical, bucket)


def _pair(location: object) -> tuple[AsyncArtifactStore, PathType] | None:
    if isinstance(location, tuple):
        if len(location) == 2 and isinstance(location[0], AsyncArtifactStore):
            return location[0], location[1]
        raise TypeError(
            "transfer: a (store, path) pair needs an AsyncArtifactStore first, "
            f"not {type(location[0]).__name__ if location else 'an empty tuple'}"
        )
    return None


@contextlib.asynccontextmanager
async def open_endpoints(
    src: Location, dst: Location, *, concurrency: int
) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    """Open (or take) both ends; close what was opened here when the block ends.

    Raises:
        UnsupportedSchemeError, MissingDependencyError, InvalidPathError,
        PathOutsideStoreError: From opening a store or placing a path in it.
        TypeError: A pair whose first item is not an ``AsyncArtifactStore``.
    """
    opened: list[AsyncArtifactStore] = []
    shared: dict[tuple[str, str], AsyncArtifactStore] = {}

    def make(location: Location) -> Endpoint:
        pair = _pair(location)
        if pair is not None:
            store, path = pair
            raw = os.fspath(path) if isinstance(path, os.PathLike) else path
            ends_in_slash = raw.endswith("/") if isinstance(raw, str) else raw.endswith(b"/")
            return Endpoint(store, store._key(path, "transfer"), ends_in_slash)
        root, path, as_dir, share = _parse(location)  # type: ignore[arg-type]
        existing = shared.get(share) if share is not None else None
        if existing is not None:
            return Endpoint(existing, existing._key(path, "transfer"), as_dir, owned=False)
        store = open_store(root, concurrency=min(concurrency, _MAX_STORE_CONCURRENCY))
        opened.append(store)
        if share is not None:
            shared[share] = store
        return Endpoint(store, store._key(path, "transfer"), as_dir, owned=True)

    try:
        source = make(src)
        destination = make(dst)
        yield source, destination
    finally:
        with shielded():
            for store in opened:
                await store.aclose()
