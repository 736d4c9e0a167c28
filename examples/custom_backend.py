"""A backend of your own: artifacts in one SQLite database file, checked by the conformance suite.

Run: python examples/custom_backend.py [STORE_URI]   (pytest and pytest-asyncio: the test extra)

``SQLiteStore`` keeps a tree of files and directories in one table of an SQLite
database, so a whole artifact store is one portable file. Its roots are
``sqlite://<name>/<prefix>`` and the database file is the ``database`` option::

    artifactio.register_backend("sqlite", SQLiteStore)
    store = artifactio.open_store("sqlite://team-a/run-1", database="/data/artifacts.db")

It subclasses ``artifactio.AsyncArtifactStore`` and implements the seven
required primitives (``_info``, ``_scandir``, ``_open_reader``, ``_open_writer``,
``_remove_file``, ``_create_dir``, ``_remove_dir``) and four optional ones that
SQL does in one transaction (``_copy_file``, ``_move``, ``_rmtree``,
``_iter_tree``): a rename of a whole directory is atomic here. sqlite3 blocks,
so every call runs in a worker thread, on a connection no other thread is
using; writes are ``BEGIN IMMEDIATE`` transactions, which makes ``x`` modes
atomic even between processes. A file's content is held in memory while it is
written and while it is open for reading, and SQLite caps one file at 1 GB by
default.

The module registers the backend; the example uses it through ``open_store`` and the
blocking ``ArtifactStore``, copies its files to another store (STORE_URI, or a
temporary directory), and then runs ``artifactio.testing.ConformanceSuite`` on it
(``pytest examples/custom_backend.py`` does that alone): every row of
docs/semantics.md, through the async API and the blocking facade.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
import pytest
from pydantic import Field

import artifactio
from artifactio import DirEntry, EntryInfo
from artifactio._paths import StoreRoot  # parses the root URI; not re-exported by artifactio
from artifactio.testing import ConformanceSuite, StoreFactory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    path   TEXT PRIMARY KEY,  -- 'team-a/run-1/model.bin': no leading or trailing '/'
    parent TEXT NOT NULL,     -- the directory holding it ('' at the top)
    is_dir INTEGER NOT NULL,
    size   INTEGER NOT NULL,
    mtime  REAL NOT NULL,
    data   BLOB               -- a file's content; NULL for a directory
);
CREATE INDEX IF NOT EXISTS entries_by_parent ON entries (parent);
"""


class SQLiteConfig(artifactio.StoreConfig):
    """Options of ``sqlite://`` stores (besides ``concurrency`` and ``part_size``).

    Attributes:
        database: The database file; created, with its table, on first use.
        busy_timeout: Seconds to wait for another connection's write to finish.
    """

    SUPPORTED_SCHEMES: ClassVar[frozenset[str]] = frozenset({"sqlite"})

    database: str
    busy_timeout: float = Field(30.0, gt=0)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _kind(db: sqlite3.Connection, path: str) -> bool | None:
    """Whether ``path`` is a directory (``True``), a file (``False``) or missing (``None``)."""
    row = db.execute("SELECT is_dir FROM entries WHERE path = ?", (path,)).fetchone()
    return None if row is None else bool(row[0])


def _below(path: str) -> tuple[str, tuple[str, ...]]:
    """An SQL condition (and its parameters) selecting every entry below directory ``path``."""
    if not path:
        return "path > ''", ()
    return "path > ? AND path < ?", (path + "/", path + "0")  # '0' sorts right after '/'


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, *, write: bool = False) -> Iterator[None]:
    """One transaction: a consistent snapshot to read, or the database's write lock."""
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class _Connections:
    """Idle connections to one database, taken by one worker thread at a time.

    A connection is kept open between calls: closing the last one makes SQLite
    fold its write-ahead log into the database, with an fsync, every time. In a
    forked child the parent's connections are left alone (kept, never used or
    closed there) and the child opens its own.
    """

    def __init__(self, database: str, busy_timeout: float) -> None:
        self._database = database
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []  # list.pop/append: atomic, no lock
        self._pid = os.getpid()
        self._inherited: list[list[sqlite3.Connection]] = []
        self._closed = False

    def take(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._inherited.append(self._idle)
            self._idle, self._pid = [], os.getpid()
        with contextlib.suppress(IndexError):
            return self._idle.pop()
        db = sqlite3.connect(
            self._database,
            timeout=self._busy_timeout,
            isolation_level=None,  # transactions are explicit: see _transaction
            check_same_thread=False,  # handed from worker thread to worker thread
        )
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: fsync at checkpoints only
        return db

    def give_back(self, db: sqlite3.Connection) -> None:
        if self._closed or db.in_transaction or self._pid != os.getpid():
            db.close()
        else:
            self._idle.append(db)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class _BlobReader(artifactio.RawReader):
    """A file's content as it was when opened."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    async def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]

    async def read_range(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]  # no shared state: safe side by side


class _Writer(artifactio.RawWriter):
    """Collects the chunks of a write; commit stores them as the file in one transaction."""

    def __init__(self, store: SQLiteStore, key: str, exclusive: bool) -> None:
        self._store = store
        self._key = key
        self._exclusive = exclusive
        self._chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self._chunks.append(bytes(data))

    async def commit(self) -> None:
        data, self._chunks = b"".join(self._chunks), []
        await self._store._publish(self._key, data, self._exclusive)

    async def abort(self) -> None:
        self._chunks = []


class SQLiteStore(artifactio.AsyncArtifactStore):
    """An artifact store in an SQLite database file.

    Args:
        root: ``sqlite://name/prefix`` (``sqlite://`` alone: the whole database).
        **options: See :class:`SQLiteConfig`.
    """

    scheme = "sqlite"

    def __init__(self, root: str, **options: Any) -> None:
        self.config = SQLiteConfig(path=root, **options)
        parsed = StoreRoot.parse(self.config.path)
        super().__init__(
            parsed, concurrency=self.config.concurrency, part_size=self.config.part_size
        )
        self._base = "/".join(parsed.parts)
        self._database = os.path.abspath(self.config.database)
        self._connections = _Connections(self._database, self.config.busy_timeout)
        self._ready = False  # WAL mode, the table and the root's directories exist
        self._setting_up = threading.Lock()

    # ----------------------------------------------------------- the database

    def _path(self, key: str) -> str:
        """The ``path`` column of ``key`` (a key relative to the root)."""
        return f"{self._base}/{key}" if self._base and key else self._base or key

    async def _call(self, func: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``func`` on a connection in a worker thread (sqlite3 blocks)."""
        return await anyio.to_thread.run_sync(self._connected, func)

    def _connected(self, func: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connections.take()
        try:
            if not self._ready:
                # Once, by one thread: switching a new database to WAL needs it to
                # itself, and SQLite refuses (without waiting) while another
                # connection is at it.
                with self._setting_up:
                    if not self._ready:
                        db.execute("PRAGMA journal_mode = WAL")  # readers never wait for the writer
                        db.executescript(SCHEMA)
                        with _transaction(db, write=True):
                            self._make_dirs(db, self._base, "", "open")
                        self._ready = True
            return func(db)
        except sqlite3.Error as exc:
            raise OSError(errno.EIO, f"sqlite: {exc}", self._database) from exc
        finally:
            self._connections.give_back(db)

    async def _aclose(self) -> None:
        await anyio.to_thread.run_sync(self._connections.close)

    def _make_dirs(self, db: sqlite3.Connection, path: str, key: str, op: str) -> None:
        """Create directory ``path`` and its parents (inside a write transaction)."""
        parts = path.split("/") if path else []
        for depth in range(1, len(parts) + 1):
            current = "/".join(parts[:depth])
            kind = _kind(db, current)
            if kind is None:
                db.execute(
                    "INSERT INTO entries VALUES (?, ?, 1, 0, ?, NULL)",
                    (current, _parent(current), time.time()),
                )
            elif not kind:
                detail = f"'{self.scheme}://{current}' is a file"
                raise self._err(NotADirectoryError, op, key, detail)

    def _put(self, db: sqlite3.Connection, key: str, data: bytes, exclusive: bool, op: str) -> None:
        """Store ``data`` as file ``key``, creating its parents (inside a write transaction)."""
        path = self._path(key)
        kind = _kind(db, path)
        if kind:
            raise self._err(IsADirectoryError, op, key)
        if kind is not None and exclusive:
            raise self._err(FileExistsError, op, key)
        self._make_dirs(db, _parent(path), key, op)
        db.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, 0, ?, ?, ?)",
            (path, _parent(path), len(data), time.time(), data),
        )

    async def _publish(self, key: str, data: bytes, exclusive: bool) -> None:
        def publish(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                self._put(db, key, data, exclusive, "close")

        await self._call(publish)

    # -------------------------------------------------- primitives (required)

    async def _info(self, key: str) -> EntryInfo | None:
        if not key:
            return EntryInfo("dir")  # the root always exists
        row = await self._call(
            lambda db: db.execute(
                "SELECT is_dir, size, mtime FROM entries WHERE path = ?", (self._path(key),)
            ).fetchone()
        )
        if row is None:
            return None
        return EntryInfo("dir" if row[0] else "file", row[1], row[2])

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        path = self._path(key)

        def listing(db: sqlite3.Connection) -> list[Any]:
            with _transaction(db):
                kind = _kind(db, path) if key else True  # the root always exists
                if kind is None:
                    raise self._err(FileNotFoundError, "listdir", key)
                if not kind:
                    raise self._err(NotADirectoryError, "listdir", key)
                query = "SELECT path, is_dir, size, mtime FROM entries WHERE parent = ?"
                return db.execute(query, (path,)).fetchall()

        rows = await self._call(listing)
        yield [DirEntry(p.rpartition("/")[2], bool(d), s, m) for p, d, s, m in rows]

    async def _open_reader(self, key: str) -> artifactio.RawReader:
        if not key:
            raise self._err(IsADirectoryError, "open", key)
        row = await self._call(
            lambda db: db.execute(
                "SELECT is_dir, data FROM entries WHERE path = ?", (self._path(key),)
            ).fetchone()
        )
        if row is None:
            raise self._err(FileNotFoundError, "open", key)
        if row[0]:
            raise self._err(IsADirectoryError, "open", key)
        return _BlobReader(row[1])

    async def _open_writer(self, key: str, *, exclusive: bool) -> artifactio.RawWriter:
        def check_parents(db: sqlite3.Connection) -> None:
            # Refuse at once a write below a file; commit checks again.
            parent = _parent(self._path(key))
            while parent:
                kind = _kind(db, parent)
                if kind is not None:
                    if not kind:
                        detail = f"'{self.scheme}://{parent}' is a file"
                        raise self._err(NotADirectoryError, "open", key, detail)
                    return
                parent = _parent(parent)

        await self._call(check_parents)
        return _Writer(self, key, exclusive)

    async def _remove_file(self, key: str) -> None:
        def remove(db: sqlite3.Connection) -> int:
            query = "DELETE FROM entries WHERE path = ? AND is_dir = 0"
            return db.execute(query, (self._path(key),)).rowcount

        if not await self._call(remove):
            raise self._err(FileNotFoundError, "remove", key)

    async def _create_dir(self, key: str, *, parents: bool) -> None:
        path = self._path(key)

        def create(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                parent = _parent(path)
                if not parents and parent and not _kind(db, parent):
                    raise self._err(FileNotFoundError, "mkdir", key)
                self._make_dirs(db, path, key, "makedirs" if parents else "mkdir")

        await self._call(create)

    async def _remove_dir(self, key: str) -> None:
        path = self._path(key)

        def remove(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                if db.execute("SELECT 1 FROM entries WHERE parent = ?", (path,)).fetchone():
                    raise self._err(OSError, "rmdir", key, "directory not empty")
                db.execute("DELETE FROM entries WHERE path = ? AND is_dir = 1", (path,))

        await self._call(remove)

    # -------------------------------------------------- primitives (optional)

    async def _iter_tree(self, key: str) -> AsyncIterator[tuple[str, DirEntry]]:
        condition, params = _below(self._path(key))
        query = f"SELECT path, is_dir, size, mtime FROM entries WHERE {condition}"
        rows = await self._call(lambda db: db.execute(query, params).fetchall())
        skip = len(self._base) + 1 if self._base else 0
        for path, is_dir, size, mtime in rows:
            yield path[skip:], DirEntry(path.rpartition("/")[2], bool(is_dir), size, mtime)

    async def _rmtree(self, key: str) -> None:
        path = self._path(key)
        condition, params = _below(path)

        def remove(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                db.execute(f"DELETE FROM entries WHERE path = ? OR ({condition})", (path, *params))

        await self._call(remove)

    async def _copy_file(self, src: str, dst: str) -> None:
        def copy(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                query = "SELECT data FROM entries WHERE path = ? AND is_dir = 0"
                row = db.execute(query, (self._path(src),)).fetchone()
                if row is None:
                    raise self._err(FileNotFoundError, "copyfile", src)
                self._put(db, dst, row[0], False, "copyfile")

        await self._call(copy)

    async def _move(self, src: str, dst: str, *, is_dir: bool) -> None:
        """Rename in one transaction: a directory with everything below it, atomically.

        The caller checked the arguments: ``dst`` is free, or a file that a file
        replaces (an empty directory there was removed), and not below ``src``.
        """
        old, new = self._path(src), self._path(dst)

        def move(db: sqlite3.Connection) -> None:
            with _transaction(db, write=True):
                if _kind(db, old) is not is_dir:
                    raise self._err(FileNotFoundError, "rename", src)
                db.execute("DELETE FROM entries WHERE path = ? AND is_dir = 0", (new,))
                self._make_dirs(db, _parent(new), dst, "rename")
                db.execute(
                    "UPDATE entries SET path = ?, parent = ? WHERE path = ?",
                    (new, _parent(new), old),
                )
                # Everything below: swap the leading 'old' of path and parent for 'new'.
                condition, params = _below(old)
                cut = len(old) + 1  # substr() counts from 1
                db.execute(
                    "UPDATE entries SET path = ? || substr(path, ?),"
                    f" parent = ? || substr(parent, ?) WHERE {condition}",
                    (new, cut, new, cut, *params),
                )

        await self._call(move)


artifactio.register_backend("sqlite", SQLiteStore)  # open_store("sqlite://...") finds it


# ------------------------------------------------------------ the conformance suite


class TestSQLiteStore(ConformanceSuite):
    """Every row of docs/semantics.md on ``sqlite://``: a fresh database file per test."""

    @pytest.fixture
    def async_store_factory(self, tmp_path: Path) -> StoreFactory:
        database = str(tmp_path / "suite.db")
        # A small part size makes every write test write several chunks.
        return StoreFactory(
            lambda: SQLiteStore("sqlite://suite/root", database=database, part_size=64 * 1024)
        )


def run_conformance_suite(tmp: str) -> int:
    """Run the suite above: ``pytest examples/custom_backend.py``, in a child process.

    Returns:
        pytest's exit code.
    """
    print("running artifactio.testing.ConformanceSuite on SQLiteStore:", flush=True)
    python = [sys.executable, *(["-X", "dev"] if sys.flags.dev_mode else [])]
    python += [f"-W{option}" for option in sys.warnoptions]  # this run's warning filters
    options = ["-q", "-p", "no:cacheprovider", f"--basetemp={tmp}/pytest"]
    options += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
    return subprocess.run([*python, "-m", "pytest", __file__, *options], check=False).returncode


# --------------------------------------------------------------------- the example


async def use_async(store: artifactio.AsyncArtifactStore, export_to: str) -> None:
    """The async API on the new backend, then a copy of its files to another store."""
    async with store:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(store.write_bytes, f"metrics/step-{i:02d}.json", b'{"loss": 0.1}')
        async with store.open("model/weights.bin", "wb") as f:
            await f.write(os.urandom(256 * 1024))
        await store.rename("model", "model-final")  # one transaction
        print("sqlite:// listdir:", await store.listdir(store.root))
        report = await artifactio.copy((store, "."), export_to, recursive=True)
        print(f"copied to {export_to}: {report}")


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="artifactio-sqlite-") as tmp:
        database = os.path.join(tmp, "artifacts.db")
        store = artifactio.open_store("sqlite://team-a/run-1", database=database)
        print("opened", store)
        anyio.run(use_async, store, argv[0] if argv else os.path.join(tmp, "exported"))

        with artifactio.ArtifactStore("sqlite://team-a", database=database) as sync_store:
            for dirpath, dirnames, filenames in sync_store.walk("run-1"):
                print(f"  {dirpath}: {len(dirnames)} dirs, {len(filenames)} files")
            print("  size of run-1:", sync_store.size("run-1"), "bytes")
            try:
                sync_store.write_bytes("run-1/metrics/step-00.json/x", b"")
            except NotADirectoryError as exc:
                print("  as expected:", exc)
        print(f"one database file: {os.path.getsize(database)} bytes")

        return run_conformance_suite(tmp)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
