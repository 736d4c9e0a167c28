"""What S3 and GCS have in common: a flat keyspace dressed up as a filesystem.

:class:`ObjectStore` implements every primitive of
:class:`~artifactio.AsyncArtifactStore` once, over a small service-neutral
:class:`ObjectClient` that each service implements (S3 with aiobotocore, GCS
with its JSON API on aiohttp). One concept per module:

- :mod:`._client`: the data types and the :class:`ObjectClient` and
  :class:`Upload` interfaces; requests counted while they run, so closing
  waits for them; response bodies read with their own stall timeout.
- :mod:`._pool`: one client per event loop, made lazily, closed with the store
  or with its loop (released without it when it was closed first), never
  reused after a fork.
- :mod:`._store`: :class:`ObjectStore`: directories as prefixes and markers,
  listings, batched deletes, copy-then-delete moves.
- :mod:`._reader`: ranged reads pinned to the version first read, with
  read-ahead.
- :mod:`._writer`: buffered writes, uploaded in parts when large; aborted on an
  exception, a cancellation, or when the writer is dropped unclosed.

The backends import what they need from this package.
"""

from ..._config import redact_url
from ._client import (
    LIST_PAGE,
    ListPage,
    ObjectClient,
    ObjectMeta,
    ObjectRead,
    ObjectStream,
    Upload,
    object_changed,
    read_answer,
    read_body,
)
from ._pool import release_session
from ._store import ObjectStore
from ._writer import _DROPPED as _DROPPED  # the tests wait for these aborts

__all__ = [
    "LIST_PAGE",
    "ListPage",
    "ObjectClient",
    "ObjectMeta",
    "ObjectRead",
    "ObjectStore",
    "ObjectStream",
    "Upload",
    "object_changed",
    "read_answer",
    "read_body",
    "redact_url",
    "release_session",
]
