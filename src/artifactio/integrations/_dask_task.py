"""What travels to a Dask worker for one shard, and what the worker does with it.

A :class:`ShardTask` is the one argument of the one task per shard: the plan
piece (a :class:`~artifactio.transfer.TransferPlan` restricted to the shard's
key range) and a :class:`StoreSpec` for each end — a URI, never an open store
(a store holds connections and an event loop; it cannot be pickled), plus the
options the worker opens it with. :func:`run_shard` runs on the worker: it opens
both ends, runs :func:`artifactio.transfer.execute` on an event loop of its own
(its own ``concurrency`` and bytes-in-flight bound), closes the stores and
returns the :class:`~artifactio.TransferReport`.

Secrets: the options a worker needs are the driver's store's validated config
values, so a secret travels as ``pydantic.SecretStr`` (pickled with the task,
as everything a task needs must be), and every text Dask makes of a task — the
``repr`` its logs and dashboard show ("Compute Failed ... Task: ..."), its key —
names the options, never their values. Only :meth:`StoreSpec.open` reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .._concurrency import shielded
from .._paths import split_scheme
from .._registry import get_backend, open_store
from .._store import AsyncArtifactStore
from ..transfer import TransferPlan, TransferReport, execute
from ..transfer._endpoints import parse_location

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

__all__ = ["ShardTask", "StoreSpec", "open_ends", "run_shard"]

_MAX_STORE_CONCURRENCY = 4096
"""The largest ``concurrency`` a store's config accepts."""

_CANONICAL = {"gcs": "gs"}
"""Schemes that name the same service as another."""


@dataclass(frozen=True, repr=False)
class StoreSpec:
    """One end of a transfer as a worker opens it: the store's root, the path, the options.

    Attributes:
        root: The store's root URI (the bucket, the memory store's name, a local
            path's parent directory).
        path: The full path of the source or destination.
        as_dir: The path was written with a trailing ``/``.
        options: What ``open_store(root, **options)`` gets besides ``concurrency``.
        share: Ends with the same ``share`` and options are served by one store
            (URIs of one bucket: server-side copies), as in ``artifactio.copy``.
    """

    root: str
    path: str
    as_dir: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    share: str | None = None

    @classmethod
    def parse(cls, location: object, options: Mapping[str, Any] | None, what: str) -> StoreSpec:
        """The spec of a URI or local path (a relative one is taken from the working directory).

        Args:
            location: ``src`` or ``dst`` as the caller gave it.
            options: The store options given for it.
            what: ``"src"`` or ``"dst"``, for messages.

        Raises:
            TypeError: ``location`` is a ``(store, path)`` pair or a store, or not a path.
            InvalidPathError: An empty path, a NUL byte...
        """
        if isinstance(location, tuple) or _is_store(location):
            raise TypeError(
                f"artifactio.integrations.dask: {what} must be a URI or a local path, not "
                f"{'a (store, path) pair' if isinstance(location, tuple) else 'a store'}: an "
                "open store cannot travel to Dask workers; pass its URI, and its options as "
                f"{what}_options=..."
            )
        if not isinstance(location, (str, bytes, os.PathLike)):
            raise TypeError(
                f"artifactio.integrations.dask: {what} must be a URI or a local path "
                f"(str or os.PathLike), not {type(location).__name__}"
            )
        root, path, as_dir = parse_location(location)
        scheme, bucket = split_scheme(root)
        share = None if scheme in ("", "file") else f"{_CANONICAL.get(scheme, scheme)}://{bucket}"
        return cls(root, path, as_dir, dict(options or {}), share)

    @property
    def scheme(self) -> str:
        """The URI scheme (``"file"`` for local paths)."""
        return split_scheme(self.root)[0] or "file"

    @property
    def location(self) -> str:
        """The path as the engine takes it (with its trailing ``/`` when it had one)."""
        return self.path + "/" if self.as_dir else self.path

    def load_backend(self) -> None:
        """Import the backend that serves this end (best done outside an event loop)."""
        get_backend(self.scheme)

    def open(self, concurrency: int) -> AsyncArtifactStore:
        """Open the store (a connection pool that fits ``concurrency``, unless an option says)."""
        options = {"concurrency": min(concurrency, _MAX_STORE_CONCURRENCY), **self.options}
        return open_store(self.root, **options)

    def secured(self, store: AsyncArtifactStore) -> StoreSpec:
        """This spec with the options as ``store`` validated them (secrets as ``SecretStr``)."""
        config = getattr(store, "config", None)
        if not isinstance(config, BaseModel):
            return self
        validated = {name: getattr(config, name, value) for name, value in self.options.items()}
        return replace(self, options=validated)

    def same_store(self, other: StoreSpec) -> bool:
        """Whether one store serves both ends (same bucket or memory store, same options)."""
        same = self.share is not None and self.share == other.share
        return same and self.options == other.options

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.options))
        return f"StoreSpec({self.location!r}, options=[{names}])"

    __str__ = __repr__


def _is_store(value: object) -> bool:
    from .._sync._base import FacadeBase

    return isinstance(value, (AsyncArtifactStore, FacadeBase))


@dataclass(frozen=True, repr=False)
class ShardTask:
    """Everything one shard's task needs: the plan piece and both ends.

    Attributes:
        plan: The transfer's plan restricted to the shard's key range.
        src: The source.
        dst: The destination.
        index: The shard's number (key order), for logs.
    """

    plan: TransferPlan
    src: StoreSpec
    dst: StoreSpec
    index: int = 0

    def __repr__(self) -> str:
        r = self.plan.key_range
        return (
            f"ShardTask({self.plan.mode} #{self.index}: {self.src!r} -> {self.dst!r}, "
            f"keys [{r.start!r}, {r.stop!r}))"
        )

    __str__ = __repr__


@contextlib.asynccontextmanager
async def open_ends(
    src: StoreSpec, dst: StoreSpec, *, concurrency: int
) -> AsyncIterator[tuple[tuple[AsyncArtifactStore, str], tuple[AsyncArtifactStore, str]]]:
    """Open both ends (one store for both when they share it); close them when the block ends.

    Yields:
        ``(store, path)`` pairs for :func:`artifactio.transfer.execute`.

    Raises:
        UnsupportedSchemeError, MissingDependencyError, pydantic.ValidationError,
        ValueError: From ``open_store`` (messages name options, never their values).
    """
    opened: list[AsyncArtifactStore] = []
    try:
        source = src.open(concurrency)
        opened.append(source)
        if src.same_store(dst):
            target = source
        else:
            target = dst.open(concurrency)
            opened.append(target)
        yield (source, src.location), (target, dst.location)
    finally:
        with shielded():
            for store in opened:
                await store.aclose()


async def _run(task: ShardTask) -> TransferReport:
    async with open_ends(task.src, task.dst, concurrency=task.plan.concurrency) as (src, dst):
        return await execute(task.plan, src, dst)


def run_shard(task: ShardTask) -> TransferReport:
    """Run one shard on this worker (in a task thread: an event loop of its own).

    Returns:
        The shard's report; failed files are listed in it.

    Raises:
        Exception: What :func:`artifactio.transfer.execute` raises about the ends
            (Dask retries the task as many times as it was submitted with).
    """
    task.src.load_backend()
    task.dst.load_backend()
    return asyncio.run(_run(task))
