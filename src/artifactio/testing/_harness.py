"""The machinery behind the conformance suite: fixtures, the sync adapter, tree helpers.

The suite's tests are written once, as async tests against a :class:`StoreAPI`:
an object whose methods are awaitable. For the async API that object is the
:class:`~artifactio.AsyncArtifactStore` itself; for the blocking facade it is
:class:`SyncAsAsync`, which runs every facade call in a worker thread (so the
facade is exercised from a thread that is not running an event loop).
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
    from types import TracebackType

    from .._paths import PathType
    from .._store import AsyncArtifactStore, StatResult, WalkEntry

__all__ = [
    "Capabilities",
    "ConformanceFixtures",
    "OpenAPI",
    "StoreAPI",
    "StoreFactory",
    "SyncAsAsync",
    "ThreadFile",
    "ThreadOpen",
    "Tree",
    "full_path",
    "load_sync_facade",
    "make_tree",
    "raises",
    "rejects",
    "snapshot",
    "unchanged",
]

Tree = dict[str, "bytes | None"]
"""A tree below the root: relative key -> file content, or ``None`` for a directory."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, where docs/semantics.md lets backends differ.

    Attributes:
        object_store: Directories are key prefixes plus marker objects (S3, GCS):
            a directory that only existed because of its files vanishes with them.
        checks_ancestors: Writing below a file raises ``NotADirectoryError``.
            ``None`` reads the store class's ``checks_ancestors`` flag. Where it is
            false, a file and a directory of the same name can coexist.
        atomic_exclusive: ``x`` modes are atomic: of many racing creators, exactly
            one succeeds.
        local_paths: The root is a local directory (absolute paths and ``file://``
            URIs name the same files; symlinks leaving the root count as outside).
    """

    object_store: bool = False
    checks_ancestors: bool | None = None
    atomic_exclusive: bool = True
    local_paths: bool = False


@dataclass(frozen=True)
class StoreFactory:
    """What a backend's test module provides as the ``async_store_factory`` fixture.

    Calling it makes a new :class:`~artifactio.AsyncArtifactStore` whose root is
    fresh and empty for the current test (every call within one test gives a store
    on the same root). The fixture that returns it owns the cleanup of that root.

    Attributes:
        new_store: Builds the store; called without a running event loop for the
            sync facade, inside the test's event loop for the async API.
        capabilities: Where the backend differs (see :class:`Capabilities`).
    """

    new_store: Callable[[], AsyncArtifactStore]
    capabilities: Capabilities = Capabilities()

    def __call__(self) -> AsyncArtifactStore:
        """Build a store on the test's root."""
        return self.new_store()


class OpenAPI(Protocol):
    """What ``open`` returns: awaitable, and an async context manager."""

    def __await__(self) -> Generator[Any, None, Any]:
        """Open the file."""

    async def __aenter__(self) -> Any:
        """Open the file."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the file (or discard the write on an exception)."""


class StoreAPI(Protocol):
    """The store interface as the suite sees it: every method awaitable."""

    @property
    def root(self) -> str:
        """The store's root as a full path."""

    def open(
        self,
        path: PathType | None = None,
        mode: str = "r",
        *,
        name: PathType | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> OpenAPI:
        """Open a file."""

    async def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Copy a file."""

    async def exists(self, path: PathType) -> bool:
        """Whether the path exists."""

    async def glob(self, pattern: PathType) -> list[str]:
        """Sorted full paths matching the pattern."""

    async def isdir(self, path: PathType) -> bool:
        """Whether the path is a directory."""

    async def listdir(self, path: PathType) -> list[str]:
        """Sorted names below a directory."""

    async def makedirs(self, path: PathType) -> None:
        """Create a directory and its parents."""

    async def mkdir(self, path: PathType) -> None:
        """Create one directory."""

    async def remove(self, path: PathType) -> None:
        """Delete a file."""

    async def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """Move a file or directory."""

    async def rmtree(self, path: PathType) -> None:
        """Delete a directory tree."""

    async def stat(self, path: PathType) -> StatResult:
        """Describe a path."""

    async def size(self, path: PathType) -> int:
        """Size of a file, or of the files below a directory."""

    def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[[OSError], Any] | None = None,
    ) -> AsyncIterator[WalkEntry]:
        """Walk a tree like ``os.walk``."""

    async def read_bytes(self, path: PathType) -> bytes:
        """A file's whole content."""

    async def write_bytes(self, path: PathType, data: bytes) -> None:
        """Replace a file's content."""


# --------------------------------------------------------------- sync adapter


async def _in_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))


def _next_or_done(iterator: Iterator[Any]) -> tuple[Any, bool]:
    # StopIteration cannot cross into a coroutine, so report exhaustion instead.
    try:
        return next(iterator), False
    except StopIteration:
        return None, True


class ThreadFile:
    """A blocking file object driven from async code, one worker-thread call per method."""

    def __init__(self, file: Any) -> None:
        self._file = file

    @property
    def raw_file(self) -> Any:
        """The facade's own file object."""
        return self._file

    @property
    def name(self) -> Any:
        """The file's ``name``."""
        return self._file.name

    @property
    def mode(self) -> Any:
        """The file's ``mode``."""
        return self._file.mode

    @property
    def closed(self) -> bool:
        """The file's ``closed``."""
        return bool(self._file.closed)

    async def read(self, size: int = -1) -> Any:
        """``read`` in a worker thread."""
        return await _in_thread(self._file.read, size)

    async def readline(self, size: int = -1) -> Any:
        """``readline`` in a worker thread."""
        return await _in_thread(self._file.readline, size)

    async def readlines(self) -> list[Any]:
        """``readlines`` in a worker thread."""
        return list(await _in_thread(self._file.readlines))

    async def write(self, data: Any) -> int:
        """``write`` in a worker thread."""
        return int(await _in_thread(self._file.write, data))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """``seek`` in a worker thread."""
        return int(await _in_thread(self._file.seek, offset, whence))

    async def tell(self) -> int:
        """``tell`` in a worker thread."""
        return int(await _in_thread(self._file.tell))

    async def flush(self) -> None:
        """``flush`` in a worker thread."""
        await _in_thread(self._file.flush)

    async def close(self) -> None:
        """``close`` in a worker thread."""
        await _in_thread(self._file.close)

    async def aclose(self) -> None:
        """Alias of :meth:`close`."""
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[Any]:
        iterator = await _in_thread(iter, self._file)
        while True:
            line, done = await _in_thread(_next_or_done, iterator)
            if done:
                return
            yield line

    async def __aenter__(self) -> ThreadFile:
        await _in_thread(self._file.__enter__)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _in_thread(self._file.__exit__, exc_type, exc, tb)


class ThreadOpen:
    """What :meth:`SyncAsAsync.open` returns: awaitable and an async context manager."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._file: ThreadFile | None = None

    async def _open(self) -> ThreadFile:
        return ThreadFile(await _in_thread(self._opener))

    def __await__(self) -> Generator[Any, None, ThreadFile]:
        return self._open().__await__()

    async def __aenter__(self) -> ThreadFile:
        self._file = await self._open()
        return self._file

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._file is not None
        await self._file.__aexit__(exc_type, exc, tb)


class SyncAsAsync:
    """Drive a blocking :class:`~artifactio.ArtifactStore` through awaitable methods.

    Every call runs in one of anyio's worker threads, so the facade is used from
    threads that run no event loop, and many calls may be in flight at once.
    ``walk`` is stepped one item at a time, so pruning ``dirnames`` works.

    Args:
        sync_store: The facade (anything with the store's blocking methods).
    """

    def __init__(self, sync_store: Any) -> None:
        self.sync_store = sync_store

    @property
    def root(self) -> str:
        """The store's root."""
        return str(self.sync_store.root)

    def __repr__(self) -> str:
        return f"SyncAsAsync({self.sync_store!r})"

    def open(
        self,
        path: PathType | None = None,
        mode: str = "r",
        *,
        name: PathType | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> ThreadOpen:
        """The facade's ``open``, run in a worker thread when awaited or entered."""
        args: tuple[Any, ...] = () if path is None else (path,)
        kwargs: dict[str, Any] = {"mode": mode}
        for key, value in (
            ("name", name),
            ("encoding", encoding),
            ("errors", errors),
            ("newline", newline),
        ):
            if value is not None:
                kwargs[key] = value
        return ThreadOpen(functools.partial(self.sync_store.open, *args, **kwargs))

    async def copyfile(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """The facade's ``copyfile``."""
        await _in_thread(self.sync_store.copyfile, src, dst, overwrite=overwrite)

    async def exists(self, path: PathType) -> bool:
        """The facade's ``exists``."""
        return bool(await _in_thread(self.sync_store.exists, path))

    async def glob(self, pattern: PathType) -> list[str]:
        """The facade's ``glob``."""
        return list(await _in_thread(self.sync_store.glob, pattern))

    async def isdir(self, path: PathType) -> bool:
        """The facade's ``isdir``."""
        return bool(await _in_thread(self.sync_store.isdir, path))

    async def listdir(self, path: PathType) -> list[str]:
        """The facade's ``listdir``."""
        return list(await _in_thread(self.sync_store.listdir, path))

    async def makedirs(self, path: PathType) -> None:
        """The facade's ``makedirs``."""
        await _in_thread(self.sync_store.makedirs, path)

    async def mkdir(self, path: PathType) -> None:
        """The facade's ``mkdir``."""
        await _in_thread(self.sync_store.mkdir, path)

    async def remove(self, path: PathType) -> None:
        """The facade's ``remove``."""
        await _in_thread(self.sync_store.remove, path)

    async def rename(self, src: PathType, dst: PathType, overwrite: bool = False) -> None:
        """The facade's ``rename``."""
        await _in_thread(self.sync_store.rename, src, dst, overwrite=overwrite)

    async def rmtree(self, path: PathType) -> None:
        """The facade's ``rmtree``."""
        await _in_thread(self.sync_store.rmtree, path)

    async def stat(self, path: PathType) -> StatResult:
        """The facade's ``stat``."""
        result: StatResult = await _in_thread(self.sync_store.stat, path)
        return result

    async def size(self, path: PathType) -> int:
        """The facade's ``size``."""
        return int(await _in_thread(self.sync_store.size, path))

    async def walk(
        self,
        top: PathType,
        topdown: bool = True,
        onerror: Callable[[OSError], Any] | None = None,
    ) -> AsyncIterator[WalkEntry]:
        """The facade's ``walk``, stepped one item at a time in worker threads."""
        iterator = await _in_thread(
            lambda: iter(self.sync_store.walk(top, topdown=topdown, onerror=onerror))
        )
        while True:
            item, done = await _in_thread(_next_or_done, iterator)
            if done:
                return
            yield item

    async def read_bytes(self, path: PathType) -> bytes:
        """The facade's ``read_bytes``."""
        return bytes(await _in_thread(self.sync_store.read_bytes, path))

    async def write_bytes(self, path: PathType, data: bytes) -> None:
        """The facade's ``write_bytes``."""
        await _in_thread(self.sync_store.write_bytes, path, data)


def load_sync_facade() -> Any:
    """Return ``artifactio.ArtifactStore``, or skip the test when it does not exist yet."""
    try:
        from artifactio import ArtifactStore  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        pytest.skip(f"the sync facade artifactio.ArtifactStore is not importable: {exc}")
    return ArtifactStore


# --------------------------------------------------------------- tree helpers


def full_path(store: StoreAPI, rel: str) -> str:
    """The full path of ``rel`` (a key relative to the root) in the root's spelling."""
    if not rel:
        return store.root
    return store.root.rstrip("/") + "/" + rel


async def make_tree(store: StoreAPI, tree: Tree) -> None:
    """Create ``tree`` below the root (``None`` values are directories)."""
    for rel, content in tree.items():
        if content is None:
            await store.makedirs(rel)
        else:
            await store.write_bytes(rel, content)


async def snapshot(store: StoreAPI) -> Tree:
    """Everything below the root, read back through the store (walk + read_bytes)."""
    tree: Tree = {}
    prefix = store.root.rstrip("/") + "/"
    async for dirpath, dirnames, filenames in store.walk(store.root):
        rel = "" if dirpath == store.root else dirpath[len(prefix) :]
        for name in dirnames:
            tree[f"{rel}/{name}" if rel else name] = None
        for name in filenames:
            key = f"{rel}/{name}" if rel else name
            tree[key] = await store.read_bytes(key)
    return tree


async def rejects(
    store: StoreAPI,
    exc_type: type[BaseException] | tuple[type[BaseException], ...],
    call: Callable[[], Awaitable[object]],
    what: str = "",
) -> pytest.ExceptionInfo[BaseException]:
    """Assert ``call()`` raises ``exc_type`` and leaves the tree exactly as it was.

    Returns:
        The raised exception's info.
    """
    before = await snapshot(store)
    with pytest.raises(exc_type) as info:
        await call()
    after = await snapshot(store)
    assert after == before, f"{what or call!r} raised but changed the tree"
    return info


async def raises(
    exc_type: type[BaseException] | tuple[type[BaseException], ...],
    call: Callable[[], Awaitable[object]],
    what: str = "",
) -> BaseException:
    """Assert ``call()`` raises ``exc_type``; name ``what`` when it does not.

    Returns:
        The exception.
    """
    try:
        await call()
    except exc_type as exc:
        return exc
    except Exception as exc:
        raise AssertionError(f"{what or call!r} raised {exc!r}, expected {exc_type}") from exc
    raise AssertionError(f"{what or call!r} did not raise {exc_type}")


@contextlib.asynccontextmanager
async def unchanged(store: StoreAPI) -> AsyncIterator[None]:
    """Assert the tree below the root is the same after the block as before it."""
    before = await snapshot(store)
    yield
    assert await snapshot(store) == before, "rejected calls changed the tree"


# ----------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class _Env:
    api: StoreAPI
    kind: str
    caps: Capabilities
    part_size: int
    backend: AsyncArtifactStore
    sync_store: Any = None


class ConformanceFixtures:
    """Fixtures of the suite. A backend supplies ``async_store_factory``.

    ``store`` is parametrised over the async API and the sync facade; ``caps`` is
    the backend's :class:`Capabilities` with ``checks_ancestors`` resolved.
    """

    @pytest.fixture(params=["async", "sync"])
    def api_kind(self, request: pytest.FixtureRequest) -> str:
        """Which interface the test drives: ``"async"`` or ``"sync"``."""
        return str(request.param)

    @pytest_asyncio.fixture
    async def conformance_env(
        self, api_kind: str, async_store_factory: StoreFactory
    ) -> AsyncIterator[_Env]:
        """The store under test, through the interface ``api_kind`` names."""
        caps = async_store_factory.capabilities
        if api_kind == "async":
            store = async_store_factory()
            if caps.checks_ancestors is None:
                caps = replace(caps, checks_ancestors=type(store).checks_ancestors)
            try:
                yield _Env(store, api_kind, caps, store.part_size, store)
            finally:
                await store.aclose()
            return
        facade = load_sync_facade()

        def build() -> tuple[Any, AsyncArtifactStore]:
            inner = async_store_factory()
            return facade(inner), inner

        sync_store, inner = await anyio.to_thread.run_sync(build)
        if caps.checks_ancestors is None:
            caps = replace(caps, checks_ancestors=type(inner).checks_ancestors)
        try:
            yield _Env(SyncAsAsync(sync_store), api_kind, caps, inner.part_size, inner, sync_store)
        finally:
            await anyio.to_thread.run_sync(sync_store.close)

    @pytest.fixture
    def store(self, conformance_env: _Env) -> StoreAPI:
        """The store under test (awaitable methods whichever interface is used)."""
        return conformance_env.api

    @pytest.fixture
    def caps(self, conformance_env: _Env) -> Capabilities:
        """The backend's capabilities."""
        return conformance_env.caps

    @pytest.fixture
    def backend(self, conformance_env: _Env) -> AsyncArtifactStore:
        """The async store under the interface being tested (the facade's own store, for ``sync``).

        Tests that inject a failure replace one of its primitives on the instance
        (``monkeypatch.setattr(backend, "_info", failing)``): the primitives are
        what every backend implements, so the failure reaches the API being tested
        the way a real one would.
        """
        return conformance_env.backend

    @pytest.fixture
    def interface(self, conformance_env: _Env) -> Any:
        """The object the test drives: the async store, or the facade itself (not its adapter)."""
        return (
            conformance_env.api
            if conformance_env.sync_store is None
            else conformance_env.sync_store
        )

    @pytest.fixture
    def part_size(self, conformance_env: _Env) -> int:
        """The store's write buffer size: writing more hands data to the backend early."""
        return conformance_env.part_size
