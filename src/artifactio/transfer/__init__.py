"""Bulk transfers: copy and sync many files between any two stores, fast.

``await artifactio.copy(src, dst, recursive=True)`` and ``await artifactio.sync(src, dst)``
move files between local disks, memory, S3 and GCS in any combination, and return
a :class:`TransferReport`.

How it is built (planning apart from I/O):

- ``_plan``, ``_filters``, ``_shards``, ``_checksums`` — pure: what to do with
  each path (:class:`TransferPlan`, :class:`LevelPlanner`), include/exclude
  globs, key ranges for sharding, checksum comparison.
- ``_walk`` — lists source and destination one directory level at a time and
  plans each level as its pages arrive.
- ``_items`` — carries out one action: a streamed or server-side copy with its
  verification, a checksum comparison, a deletion.
- ``_engine`` — :func:`execute`: one bounded pool for the whole transfer, fed
  by the walk; deletions last.
- ``_retry``, ``_progress``, ``_report``, ``_endpoints`` — retries with one
  budget, the progress snapshots, the report, opening the two ends.

Sharding, for running one transfer on several workers::

    plan = TransferPlan.for_sync(delete=False)
    pieces = plan.shard(split_points(top_level_names, 8))
    reports = [await execute(piece, "s3://a/data", "gs://b/data") for piece in pieces]
    total = TransferReport.merge(reports)
"""

from ._api import copy, sync
from ._endpoints import Location
from ._engine import execute
from ._filters import PathFilter
from ._plan import Action, Compare, LevelPlanner, TransferPlan
from ._progress import ProgressCallback, TransferProgress
from ._report import TransferReport
from ._retry import RetryPolicy, is_transient
from ._shards import KeyRange, split_points

__all__ = [
    "Action",
    "Compare",
    "KeyRange",
    "LevelPlanner",
    "Location",
    "PathFilter",
    "ProgressCallback",
    "RetryPolicy",
    "TransferPlan",
    "TransferProgress",
    "TransferReport",
    "copy",
    "execute",
    "is_transient",
    "split_points",
    "sync",
]
