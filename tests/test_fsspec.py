"""ArtifactioFileSystem's own contract.

Registration, paths, errors, open modes and all-or-nothing writes, pickling,
event loops and chained URLs, on memory:// unless a behaviour needs a real
server. pandas, pyarrow and dask are in tests/test_fsspec_pandas.py, fsspec's
abstract suite in tests/test_fsspec_abstract.py.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import pickle
import socket
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import fsspec
import pandas as pd
import pytest
from blockbuster import blockbuster_ctx

import artifactio
from _fsspec_fixtures import frame
from _s3_fixtures import BUCKET
from artifactio.integrations.fsspec import ArtifactioFileSystem
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from artifactio.embedded import SeaweedFS


@pytest.fixture
def fs(memory_root: str) -> Iterator[ArtifactioFileSystem]:
    """A filesystem that opened a fresh memory:// store itself (closed afterwards)."""
    filesystem = ArtifactioFileSystem(memory_root)
    yield filesystem
    filesystem.close()


# ------------------------------------------------------------------ registration


def test_registered_under_its_own_protocol(memory_root: str) -> None:
    assert fsspec.get_filesystem_class("artifactio") is ArtifactioFileSystem
    assert ArtifactioFileSystem.protocol == "artifactio"
    fs = fsspec.filesystem("artifactio", store_or_uri=memory_root)
    try:
        assert isinstance(fs, ArtifactioFileSystem)
        assert fs.store.root == memory_root
        # fsspec caches it: the same URI and options give the same filesystem and store.
        assert fsspec.filesystem("artifactio", store_or_uri=memory_root) is fs
        assert ArtifactioFileSystem(memory_root) is fs
        fs.pipe("a/b.txt", b"through fsspec")
        with fsspec.open("artifactio://a/b.txt", store_or_uri=memory_root) as f:
            assert f.read() == b"through fsspec"
        same, path = fsspec.core.url_to_fs("artifactio://a/b.txt", store_or_uri=memory_root)
        assert same is fs
        assert path == "a/b.txt"
        assert fsspec.core.url_to_fs("artifactio://", store_or_uri=memory_root)[0].ls("") == [
            fs.info("a")
        ]
        # It replaces nobody: memory:// is still fsspec's own, and has no such file.
        assert not fsspec.filesystem("memory").exists(f"{memory_root}/a/b.txt")
    finally:
        fs.close()


def test_construction(memory_root: str) -> None:
    with pytest.raises(TypeError, match="store_or_uri"):
        ArtifactioFileSystem()
    store = artifactio.open_store(memory_root)
    with pytest.raises(TypeError, match="takes no store options"):
        ArtifactioFileSystem(store, concurrency=4)
    with pytest.raises(TypeError, match="not int"):
        ArtifactioFileSystem(42)
    with pytest.raises(ValueError, match="no_such_option"):
        ArtifactioFileSystem(memory_root, no_such_option=1)
    # The blocking facade is accepted too: its async store serves the filesystem.
    with artifactio.ArtifactStore(store) as facade:
        assert ArtifactioFileSystem(facade).store is store
    # Store objects are never shared through fsspec's cache, even with equal roots.
    one = ArtifactioFileSystem(artifactio.open_store(memory_root))
    other = ArtifactioFileSystem(artifactio.open_store(memory_root))
    assert one is not other
    assert one != other
    assert one == ArtifactioFileSystem(one.store)


def test_close(memory_root: str) -> None:
    fs = ArtifactioFileSystem(memory_root)
    fs.pipe("x", b"1")
    fs.close()
    with pytest.raises(artifactio.StoreClosedError):
        fs.cat("x")
    again = ArtifactioFileSystem(memory_root)  # no longer cached: a new store
    assert again is not fs
    assert again.cat("x") == b"1"
    again.close()
    # A store passed in stays the caller's.
    store = artifactio.open_store(memory_root)
    ArtifactioFileSystem(store).close()
    assert asyncio.run(store.read_bytes("x")) == b"1"


# ------------------------------------------------------------------------- paths


def test_paths_come_back_spelled_as_asked(fs: ArtifactioFileSystem) -> None:
    root = fs.store.root
    fs.pipe("d/x.txt", b"1")
    fs.mkdir("d/empty")
    assert fs.ls("d", detail=False) == ["d/empty", "d/x.txt"]
    assert fs.ls(f"{root}/d", detail=False) == [f"{root}/d/empty", f"{root}/d/x.txt"]
    assert fs.ls("artifactio://d", detail=False) == ["d/empty", "d/x.txt"]
    assert fs.ls("d/x.txt", detail=False) == ["d/x.txt"]  # a file lists as itself
    assert fs.find("") == ["d/x.txt"]
    assert fs.find(root, withdirs=True) == [root, f"{root}/d", f"{root}/d/empty", f"{root}/d/x.txt"]
    assert fs.glob(f"{root}/d/*.txt") == [f"{root}/d/x.txt"]
    assert fs.info("d/x.txt") == {
        "name": "d/x.txt",
        "size": 1,
        "type": "file",
        "mtime": fs.info("d/x.txt")["mtime"],
    }
    assert fs.info(f"{root}/d")["type"] == "directory"
    assert fs.info("")["type"] == "directory"
    assert fs.unstrip_protocol("d/x.txt") == "artifactio://d/x.txt"


ERRORS: list[tuple[type[Exception], Callable[[ArtifactioFileSystem], object]]] = [
    (FileNotFoundError, lambda fs: fs.open("missing")),
    (FileNotFoundError, lambda fs: fs.cat("missing")),
    (FileNotFoundError, lambda fs: fs.info("missing")),
    (FileNotFoundError, lambda fs: fs.ls("missing")),
    (FileNotFoundError, lambda fs: fs.rm("missing")),
    (FileNotFoundError, lambda fs: fs.mkdir("a/b", create_parents=False)),
    (FileNotFoundError, lambda fs: fs.rmdir("missing")),
    (IsADirectoryError, lambda fs: fs.open("d")),
    (IsADirectoryError, lambda fs: fs.open("d", "wb")),
    (IsADirectoryError, lambda fs: fs.cat("d")),
    (IsADirectoryError, lambda fs: fs.rm("d")),  # without recursive=True
    (NotADirectoryError, lambda fs: fs.rmdir("d/x.txt")),
    (FileExistsError, lambda fs: fs.open("d/x.txt", "xb")),
    (FileExistsError, lambda fs: fs.pipe_file("d/x.txt", b"2", mode="create")),
    (FileExistsError, lambda fs: fs.mkdir("d")),
    (FileExistsError, lambda fs: fs.makedirs("d")),
    (FileExistsError, lambda fs: fs.makedirs("d/x.txt", exist_ok=True)),
    (PermissionError, lambda fs: fs.cat("memory://elsewhere/x")),
    (PermissionError, lambda fs: fs.exists("/etc/hostname")),
    (PermissionError, lambda fs: fs.ls("..")),
    (PermissionError, lambda fs: fs.rm("", recursive=True)),  # the root
    (ValueError, lambda fs: fs.cat("bad\x00name")),
    (ValueError, lambda fs: fs.pipe_file("new", b"", mode="append")),
]


@pytest.mark.parametrize(("error", "call"), ERRORS)
def test_errors(
    fs: ArtifactioFileSystem,
    error: type[Exception],
    call: Callable[[ArtifactioFileSystem], object],
) -> None:
    fs.pipe("d/x.txt", b"1")
    with pytest.raises(error):
        call(fs)
    assert fs.cat("d/x.txt") == b"1"  # nothing changed
    assert fs.find("", withdirs=True) == ["d", "d/x.txt"]


def test_errors_name_the_full_path(fs: ArtifactioFileSystem) -> None:
    fs.mkdir("d")
    with pytest.raises(IsADirectoryError) as info:
        fs.open("d")
    assert info.value.filename == f"{fs.store.root}/d"
    assert f"{fs.store.root}/d" in str(info.value)


def test_answers_and_rmdir(fs: ArtifactioFileSystem) -> None:
    fs.pipe("d/x.txt", b"1")
    fs.mkdir("empty")
    assert not fs.exists("missing")
    assert not fs.isdir("d/x.txt")
    assert not fs.isfile("d")
    assert fs.isfile("d/x.txt")
    with pytest.raises(OSError) as not_empty:
        fs.rmdir("d")
    assert not_empty.value.errno == errno.ENOTEMPTY
    fs.rmdir("empty")
    assert not fs.exists("empty")


def test_an_outage_is_not_a_missing_file() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fs = ArtifactioFileSystem(
        f"s3://{BUCKET}/x",
        endpoint_url=f"http://127.0.0.1:{port}",
        key="k",
        secret="s",
        retries=0,
        connect_timeout=2,
    )
    try:
        for call in (fs.exists, fs.isfile, fs.isdir, fs.find):
            with pytest.raises(OSError) as info:
                call("a")
            assert not isinstance(info.value, FileNotFoundError)
    finally:
        fs.close()


# --------------------------------------------------------------------- open modes


def test_open_modes(fs: ArtifactioFileSystem) -> None:
    data = bytes(range(256)) * 64
    with fs.open("f.bin", "wb", block_size=1000) as f:
        assert f.writable()
        assert not f.readable()
        f.write(data[:5000])
        f.write(data[5000:])
        assert f.tell() == len(data)
    with fs.open("f.bin", "rb", block_size=1024) as f:
        assert f.seekable()
        assert f.size == len(data)
        assert f.read(3) == data[:3]
        f.seek(-10, 2)
        assert f.read() == data[-10:]
        f.seek(5000)
        assert f.read(3) == data[5000:5003]
        assert f.tell() == 5003
        f.seek(2, 1)
        assert f.read(1) == data[5005:5006]
    with fs.open("f.bin", "ab") as f:
        assert f.tell() == len(data)
        f.write(b"tail")
    assert fs.cat("f.bin") == data + b"tail"
    assert fs.cat_file("f.bin", start=-4) == b"tail"
    assert fs.cat_file("f.bin", start=1, end=3) == data[1:3]
    with fs.open("new.bin", "xb") as f:
        f.write(b"x")
    assert fs.cat("new.bin") == b"x"
    # Text modes are UTF-8 unless told otherwise; lines, iteration, readline.
    with fs.open("t.txt", "w") as f:
        f.write("héllo\nwörld\n")
    assert fs.cat("t.txt") == "héllo\nwörld\n".encode()
    with fs.open("t.txt", "r") as f:
        assert list(f) == ["héllo\n", "wörld\n"]
    with fs.open("t.txt", "r", encoding="latin-1") as f:
        assert f.readline() == "hÃ©llo\n"
    with fs.open("t.txt", "rb") as f:
        assert f.readline() == "héllo\n".encode()
        assert f.readlines() == ["wörld\n".encode()]


@pytest.mark.parametrize("mode", ["wb", "w", "ab", "xb"])
def test_a_failed_write_publishes_nothing(fs: ArtifactioFileSystem, mode: str) -> None:
    path = "new" if mode == "xb" else "f"
    if mode != "xb":
        fs.pipe("f", b"old")
    payload: Any = "partial" * 1000 if mode == "w" else b"partial" * 1000
    with pytest.raises(RuntimeError, match="died"):
        write_and_die(fs, path, mode, payload)
    assert fs.cat("f") == b"old" if mode != "xb" else not fs.exists("new")


def write_and_die(fs: ArtifactioFileSystem, path: str, mode: str, payload: Any) -> None:
    with fs.open(path, mode, block_size=100) as f:
        f.write(payload)  # more than a block: some of it reached the store's writer
        raise RuntimeError("the writer died")


def test_writes_are_visible_only_when_closed(fs: ArtifactioFileSystem) -> None:
    f = fs.open("f", "wb", block_size=100)
    f.write(b"x" * 1000)
    assert not fs.exists("f")
    f.close()
    assert fs.cat("f") == b"x" * 1000


def test_a_dropped_writer_publishes_nothing(fs: ArtifactioFileSystem) -> None:
    files = [fs.open("f", "wb")]
    files[0].write(b"data")
    with pytest.warns(ResourceWarning, match="nothing was published"):
        drop(files)
    assert not fs.exists("f")


def drop(files: list[Any]) -> None:
    files.clear()
    gc.collect()


def test_transactions_commit_at_the_end(fs: ArtifactioFileSystem) -> None:
    with fs.transaction:
        with fs.open("a", "wb") as f:
            f.write(b"1")
        assert not fs.exists("a")
    assert fs.cat("a") == b"1"
    with pytest.raises(RuntimeError, match="rolled back"):
        write_in_a_failing_transaction(fs)
    assert not fs.exists("b")


def write_in_a_failing_transaction(fs: ArtifactioFileSystem) -> None:
    with fs.transaction:
        with fs.open("b", "wb") as f:
            f.write(b"2")
        raise RuntimeError("rolled back")


def test_a_reader_pickles(fs: ArtifactioFileSystem) -> None:
    fs.pipe("f", b"0123456789")
    with fs.open("f", "rb") as f:
        f.seek(4)
        with pickle.loads(pickle.dumps(f)) as again:
            assert again.read() == b"456789"


def test_du_modified_and_rm(fs: ArtifactioFileSystem) -> None:
    fs.pipe({"d/a": b"12", "d/sub/b": b"345", "d/sub/deep/c": b"6", "e": b""})
    assert fs.du("d") == 6
    assert fs.du("d", total=False) == {"d/a": 2, "d/sub/b": 3, "d/sub/deep/c": 1}
    assert fs.modified("d/a").timestamp() == pytest.approx(fs.info("d/a")["mtime"], abs=1e-5)
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        fs.rm("d/sub/*")  # the file goes; deep is a directory
    assert fs.find("d") == ["d/a", "d/sub/deep/c"]
    fs.rm("d/sub/*", recursive=True)
    assert fs.find("d", withdirs=True) == ["d", "d/a", "d/sub"]
    fs.rm(["d", "e"], recursive=True)
    assert fs.find("") == []


# ---------------------------------------------------------------------- asyncio


async def test_an_asynchronous_filesystem_on_the_callers_loop(memory_root: str) -> None:
    store = artifactio.open_store(memory_root)
    fs = ArtifactioFileSystem(store, asynchronous=True)
    await fs._pipe_file("a/x", b"123")
    assert await fs._cat_file("a/x", start=1) == b"23"
    assert await fs._ls("a", detail=False) == ["a/x"]
    f = await fs.open_async("a/y", "wb")
    async with f:
        await f.write(b"hello")
    async with await fs.open_async("a/y", "rb") as f:
        assert await f.read(2) == b"he"
        f.seek(3)
        assert await f.read() == b"lo"
    with pytest.raises(RuntimeError, match="died"):
        await write_async_and_die(fs, "a/y")
    assert await fs._cat_file("a/y") == b"hello"
    with pytest.raises(FileExistsError):
        await fs.open_async("a/y", "xb")
    with pytest.raises(RuntimeError, match="open_async"):
        fs.open("a/y")
    await store.aclose()


async def test_the_coroutine_methods_never_block_the_loop(local_root: str, tmp_path: Path) -> None:
    """On a local store, put and get included (local files through worker threads)."""
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100_000)
    store = artifactio.open_store(local_root)
    fs = ArtifactioFileSystem(store, asynchronous=True)
    with blockbuster_ctx():
        await fs._put_file(str(source), "a/up.bin")
        await fs._get_file("a/up.bin", str(tmp_path / "down.bin"))
        await fs._pipe_file("a/b", b"1")
        assert await fs._cat_file("a/b") == b"1"
        assert await fs._find("") == ["a/b", "a/up.bin"]
        await fs._cp_file("a", "c")
        await fs._rm("a", recursive=True)
        async with await fs.open_async("z", "wb") as f:
            await f.write(b"q")
        assert await fs._find("", withdirs=True) == ["c", "z"]
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()
    await store.aclose()


async def write_async_and_die(fs: ArtifactioFileSystem, path: str) -> None:
    async with await fs.open_async(path, "wb") as f:
        await f.write(b"partial")
        raise RuntimeError("the writer died")


def test_one_store_on_the_callers_loops_and_fsspecs(
    s3_root: str, s3_options: dict[str, Any]
) -> None:
    """One S3 store serves the caller's loops and fsspec's IO loop, each with its own client;
    ``aclose()`` on the caller's loop closes them all."""
    store = artifactio.open_store(s3_root, **s3_options)
    fs = ArtifactioFileSystem(store)

    async def caller_writes() -> None:
        await store.write_bytes("a.bin", b"from the caller")

    asyncio.run(caller_writes())  # the caller's first loop
    assert fs.cat("a.bin") == b"from the caller"  # fsspec's loop
    fs.pipe("b.bin", b"from fsspec")

    async def inside_a_running_loop() -> None:
        assert await store.read_bytes("b.bin") == b"from fsspec"
        # A blocking fsspec call from inside a running loop runs on fsspec's loop.
        assert fs.cat("a.bin") == b"from the caller"
        same = ArtifactioFileSystem(store, asynchronous=True)  # this loop's client
        assert await same._cat_file("b.bin") == b"from fsspec"
        for name in ("a.bin", "b.bin"):
            await store.remove(name)
        await store.aclose()

    asyncio.run(inside_a_running_loop())
    with pytest.raises(artifactio.StoreClosedError):
        fs.cat("a.bin")
    gc.collect()  # an unclosed client of any loop would warn (an error here)


# --------------------------------------------------------------------- pickling


def test_a_filesystem_opened_by_uri_pickles_as_its_uri(memory_root: str) -> None:
    fs = ArtifactioFileSystem(memory_root, concurrency=4)
    try:
        assert pickle.loads(pickle.dumps(fs)) is fs  # fsspec's cache: same arguments
        args = fs.__reduce__()[1]
        assert args[1:] == ((), {"store_or_uri": memory_root, "concurrency": 4})
    finally:
        fs.close()


def test_a_filesystem_over_a_store_pickles_as_its_root_and_options(
    s3_root: str, s3_options: dict[str, Any]
) -> None:
    store = artifactio.open_store(s3_root, **s3_options)
    fs = ArtifactioFileSystem(store)
    fs.pipe("x", b"from the parent")
    payload = pickle.dumps(fs)
    again = pickle.loads(payload)
    try:
        assert again is not fs
        assert again.store is not store
        assert again.store.root == s3_root
        assert again.cat("x") == b"from the parent"
    finally:
        again.close()
    code = (
        "import pickle, sys; fs = pickle.loads(sys.stdin.buffer.read()); "
        "sys.stdout.buffer.write(fs.cat('x')); fs.rm('x'); fs.close()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"from the parent"
    assert not fs.exists("x")
    asyncio.run(store.aclose())


def test_a_store_that_cannot_be_reopened_refuses_to_pickle(memory_root: str) -> None:
    fs = ArtifactioFileSystem(SuspendingMemoryStore(memory_root))
    with pytest.raises(TypeError, match=r"cannot pickle.*from a URI and options"):
        pickle.dumps(fs)


# ------------------------------------------------------------------ chained URLs


def test_chained_memory_url(memory_root: str) -> None:
    name = memory_root.removeprefix("memory://")
    url = f"artifactio::memory://{name}/c/x.csv"
    frame().to_csv(url, index=False)
    assert pd.read_csv(url).equals(frame())
    fs, path = fsspec.core.url_to_fs(url)
    assert isinstance(fs, ArtifactioFileSystem)
    assert fs.store.root == memory_root
    assert path == f"/{name}/c/x.csv"  # as fsspec's memory filesystem spells it
    assert fs.ls(f"/{name}/c", detail=False) == [path]
    assert artifactio.ArtifactStore(memory_root).read_bytes("c/x.csv") == fs.cat(path)
    assert not fsspec.filesystem("memory").exists(path)  # in artifactio's store, not fsspec's


def test_chained_local_url(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.txt"
    with fsspec.open(f"artifactio::file://{target}", "w") as f:
        f.write("chained")
    assert target.read_text() == "chained"
    with fsspec.open(f"artifactio::{target}", "r") as f:
        assert f.read() == "chained"


def test_chained_s3_url(seaweedfs: SeaweedFS, s3_options: dict[str, Any]) -> None:
    pytest.importorskip("s3fs", reason="fsspec parses a chained s3:// URL with s3fs's class")
    key = f"fsspec-chained-{uuid.uuid4().hex[:8]}/frame.csv"
    url = f"artifactio::s3://{BUCKET}/{key}"
    frame().to_csv(url, index=False, storage_options={"s3": s3_options})
    assert pd.read_csv(url, storage_options=s3_options).equals(frame())  # top level works too
    store = artifactio.ArtifactStore(f"s3://{BUCKET}", **s3_options)
    with store:
        assert store.read_bytes(key).startswith(b"run,loss,note")
        store.rmtree(key.partition("/")[0])


def test_chained_urls_over_other_protocols_are_refused() -> None:
    with pytest.raises(ValueError, match="not ftp://"):
        ArtifactioFileSystem(fo="host/x", target_protocol="ftp")
