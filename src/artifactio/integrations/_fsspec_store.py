"""How :class:`~artifactio.integrations.fsspec.ArtifactioFileSystem` meets its store.

No I/O here except closing a store: how fsspec's instance cache treats store
objects and secrets (:class:`StoreAwareCache`), how paths are spelled in and
out (:class:`Spelling`, :class:`Chain` for chained URLs), what fsspec's
listings say about an entry (:func:`stat_info`, :func:`entry_info`), how a
store is pickled (:func:`reopen_arguments`) and closed (:func:`close_store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fsspec.asyn import AsyncFileSystem
from fsspec.utils import tokenize
from pydantic import SecretStr

from .._config import StoreConfig
from .._paths import split_scheme
from .._registry import get_backend

if TYPE_CHECKING:
    from .._entries import DirEntry, StatResult
    from .._store import AsyncArtifactStore

__all__ = [
    "CLOSE_TIMEOUT",
    "FS_OPTIONS",
    "Chain",
    "Spelling",
    "StoreAwareCache",
    "Target",
    "close_store",
    "entry_info",
    "is_store_object",
    "on_thread_of",
    "reopen_arguments",
    "stat_info",
    "write_mode",
]

FS_OPTIONS = frozenset(
    {
        "asynchronous",
        "loop",
        "batch_size",
        "use_listings_cache",
        "listings_expiry_time",
        "max_paths",
    }
)
"""Keyword arguments that configure fsspec's side of the filesystem, not the store."""

CLOSE_TIMEOUT = 10.0
"""Seconds a filesystem waits for its store to close on fsspec's loop."""


def is_store_object(value: object) -> bool:
    """Whether ``store_or_uri`` is an object (a store) rather than a URI or path."""
    return value is not None and not isinstance(value, (str, bytes, os.PathLike))


class StoreAwareCache(type(AsyncFileSystem)):  # type: ignore[misc]
    """fsspec's instance cache (its metaclass), made safe for store objects and secrets.

    fsspec caches filesystems by ``str()`` of their arguments (here always keyword
    arguments: ``ArtifactioFileSystem(uri)`` and ``fsspec.filesystem("artifactio",
    store_or_uri=uri)`` are one filesystem). Two store objects
    with the same root print alike, so a filesystem made with a store object is
    never cached and its token includes the store's identity (``==``, ``hash``
    and dask's tokens tell such filesystems apart). A ``SecretStr`` option prints
    as ``**********`` whatever it holds, so secrets are tokenized by value.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:  # positional or keyword: one spelling, one cache entry
            kwargs = {"store_or_uri": args[0], **kwargs}
            args = args[1:]
        store = kwargs.get("store_or_uri")
        kwargs = {
            k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in kwargs.items()
        }
        if not is_store_object(store):
            return super().__call__(*args, **kwargs)
        kwargs["skip_instance_cache"] = True
        fs = super().__call__(*args, **kwargs)
        fs._fs_token_ = tokenize(fs._fs_token_, id(fs.store))
        return fs


class Spelling(enum.Enum):
    """How a caller spelled a path, and so how the paths handed back are spelled."""

    RELATIVE = "relative"  # "runs/1/x.csv"
    FULL = "full"  # "s3://bucket/prefix/runs/1/x.csv"
    CHAINED = "chained"  # "bucket/prefix/runs/1/x.csv" (a chained URL's inner form)


@dataclass(frozen=True)
class Target:
    """A path as the store sees it (``key``, ``full``), and the caller's spelling."""

    key: str
    full: str
    spelling: Spelling


_CHAIN_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "memory": "memory"}
_CHAIN_LOCAL = frozenset({"file", "local"})


@dataclass(frozen=True)
class Chain:
    """How the inner filesystem of a chained URL spells paths, and the store it names.

    fsspec hands the inner URL over as the inner protocol's class strips it:
    ``bucket/key`` (s3fs, gcsfs), ``/name/key`` (memory), ``/abs/path`` (file).
    The store is the bucket (the memory store's name; for local files, ``/``).
    """

    scheme: str  # "s3", "gs", "memory" or "file"

    @classmethod
    def parse(cls, protocol: str | tuple[str, ...]) -> Chain:
        """The chain over ``protocol`` (fsspec's ``target_protocol``).

        Raises:
            ValueError: artifactio serves no such protocol.
        """
        name = protocol if isinstance(protocol, str) else protocol[0]
        if name in _CHAIN_LOCAL:
            return cls("file")
        if name not in _CHAIN_SCHEMES:
            raise ValueError(
                f"artifactio:: chains over s3://, gs://, memory:// and file:// URLs, not {name}://"
            )
        return cls(_CHAIN_SCHEMES[name])

    def root(self, path: str) -> str:
        """The store's root for the inner path ``path`` (fsspec's ``fo``)."""
        if self.scheme == "file":
            return "/"
        head = path.lstrip("/").partition("/")[0]
        if not head:
            raise ValueError(f"artifactio::{self.scheme}:// needs a URL with a bucket (or name)")
        return f"{self.scheme}://{head}"

    def to_store(self, path: str) -> str:
        """The store's full path of inner path ``path``."""
        if self.scheme == "file":
            return path
        return f"{self.scheme}://{path.lstrip('/')}"

    def from_store(self, full: str) -> str:
        """The inner spelling of the store's full path ``full``."""
        if self.scheme == "file":
            return full
        rest = full[len(self.scheme) + 3 :]
        return "/" + rest if self.scheme == "memory" else rest


def stat_info(name: str, st: StatResult) -> dict[str, Any]:
    """fsspec's description of an entry (``info()``) from the store's ``stat``."""
    info: dict[str, Any] = {
        "name": name,
        "size": st.size,
        "type": "directory" if st.is_dir else "file",
        "mtime": st.mtime,
    }
    if st.etag is not None:
        info["etag"] = st.etag
    if st.checksum is not None:
        info["checksum"] = st.checksum
    return info


def entry_info(name: str, entry: DirEntry) -> dict[str, Any]:
    """fsspec's description of an entry (``ls(detail=True)``) from a listing."""
    info: dict[str, Any] = {
        "name": name,
        "size": 0 if entry.is_dir else entry.size,
        "type": "directory" if entry.is_dir else "file",
    }
    if entry.mtime is not None:
        info["mtime"] = entry.mtime
    if entry.is_link:
        info["islink"] = True
    return info


def write_mode(mode: str) -> str:
    """The store's open mode for fsspec's ``mode`` of ``pipe_file``/``put_file``.

    Raises:
        ValueError: Neither ``"overwrite"`` nor ``"create"``.
    """
    if mode == "overwrite":
        return "wb"
    if mode == "create":
        return "xb"
    raise ValueError(f"mode must be 'overwrite' or 'create', not {mode!r}")


def reopen_arguments(store: AsyncArtifactStore) -> tuple[str, dict[str, Any]]:
    """The root and options that open ``store`` again, from its ``config``.

    Raises:
        TypeError: The store has no config, or its scheme's backend is another class.
    """
    config = getattr(store, "config", None)
    scheme = split_scheme(store.root)[0] or "file"
    if not isinstance(config, StoreConfig) or get_backend(scheme) is not type(store):
        raise TypeError(
            f"cannot pickle an ArtifactioFileSystem over {store!r}: only a built-in or "
            "registered store can be opened again from its config; make the filesystem "
            "from a URI and options instead: ArtifactioFileSystem(uri, **options)"
        )
    options = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in config.model_dump(exclude={"path"}, exclude_unset=True).items()
    }
    return config.path, options


_CLOSING: set[asyncio.Task[None]] = set()
"""Closings started on a loop of the calling thread, referenced until they finish."""


def on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the calling thread is running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def close_store(
    store: AsyncArtifactStore, loop: asyncio.AbstractEventLoop | None, pid: int
) -> None:
    """Close a store a filesystem opened (its finalizer): on ``loop`` (fsspec's) while it runs.

    Without a running ``loop`` it closes on a new loop, or as a task of the
    calling thread's running loop. A forked child leaves its parent's store alone.
    """
    if os.getpid() != pid or sys.is_finalizing():
        return
    with contextlib.suppress(Exception):  # a finalizer: nothing to report to
        if loop is not None and loop.is_running() and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(store.aclose(), loop)
            if not on_thread_of(loop):
                future.result(timeout=CLOSE_TIMEOUT)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(store.aclose())
        else:
            task = running.create_task(store.aclose())
            _CLOSING.add(task)
            task.add_done_callback(_CLOSING.discard)
