"""What only the local backend does: atomic temp-file writes, symlink bounds, no loop blocking.

The behaviour every backend shares (docs/semantics.md) is the conformance suite's job;
the local-only rows are checked here too (``@covers``).
"""

from __future__ import annotations

import errno
import functools
import gc
import glob
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import aiofiles.threadpool
import anyio
import pytest
from blockbuster import BlockBusterFunction, BlockingError, blockbuster_ctx

import artifactio
from artifactio._blocking import InlineSuspendedError, run_inline
from artifactio.backends import local
from artifactio.backends._local_files import SMALL_FILE
from artifactio.backends.local import LocalStore
from artifactio.testing import SyncAsAsync, covers

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

    from artifactio import DirEntry


def on_disk(root: Path) -> set[str]:
    """Every file and directory below ``root``, relative, temporary files included."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return found


def temp_files(root: Path) -> set[str]:
    return {p for p in on_disk(root) if p.rpartition("/")[2].endswith(".tmp")}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def store(root: Path) -> LocalStore:
    return LocalStore(str(root))


# ------------------------------------------------------------------ atomic writes


@covers("write.abort")
async def test_exception_mid_write_keeps_old_content_and_leaves_no_temp(
    store: LocalStore, root: Path
) -> None:
    await store.write_bytes("d/f.bin", b"old")
    small = LocalStore(str(root), part_size=4)  # every write reaches the disk

    async def failing_write() -> None:
        async with small.open("d/f.bin", "wb") as f:
            await f.write(b"new content that reaches the temp file")
            assert temp_files(root)  # the data really went somewhere
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_write()
    assert (root / "d/f.bin").read_bytes() == b"old"
    assert on_disk(root) == {"d", "d/f.bin"}


@covers("write.abort")
async def test_cancellation_mid_write_keeps_old_content_and_leaves_no_temp(
    root: Path,
) -> None:
    store = LocalStore(str(root), part_size=1024)
    await store.write_bytes("f.bin", b"old")
    writing = anyio.Event()

    async def writer() -> None:
        async with store.open("f.bin", "wb") as f:
            while True:  # every write is a thread hop, the only place this task waits
                await f.write(b"x" * 4096)
                writing.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await writing.wait()
        tg.cancel_scope.cancel()
    assert (root / "f.bin").read_bytes() == b"old"
    assert on_disk(root) == {"f.bin"}


@covers("write.abort")
async def test_cancellation_of_a_new_file_leaves_nothing(root: Path) -> None:
    store = LocalStore(str(root), part_size=8)
    with anyio.CancelScope() as scope:
        async with store.open("new/f.txt", "w") as f:
            await f.write("some text " * 10)
            scope.cancel()
            await anyio.sleep(0)
    assert scope.cancelled_caught
    assert on_disk(root) == {"new"}  # the parent was made at open; no file, no temp


async def test_cancelled_reader_still_closes_its_file(store: LocalStore) -> None:
    await store.write_bytes("f.bin", b"x" * (SMALL_FILE + 1))  # kept open while read
    with anyio.CancelScope() as scope:
        async with store.open("f.bin", "rb") as f:
            await f.read(10)
            scope.cancel()
            await anyio.sleep(0)
    assert scope.cancelled_caught
    assert f._raw._file.raw.closed  # type: ignore[attr-defined]


async def test_writer_dropped_without_close_leaves_no_temp(store: LocalStore, root: Path) -> None:
    await store.write_bytes("f.bin", b"old")
    f = await store.open("f.bin", "wb")
    await f.write(b"never committed")
    assert len(temp_files(root)) == 1
    with pytest.warns(ResourceWarning, match="nothing was published"):  # noqa: PT031
        del f
        gc.collect()
    assert temp_files(root) == set()
    assert (root / "f.bin").read_bytes() == b"old"


async def test_new_files_get_umask_permissions_and_overwrites_keep_theirs(
    store: LocalStore, root: Path
) -> None:
    old_umask = os.umask(0o027)
    try:
        await store.write_bytes("new.bin", b"x")
        assert stat.S_IMODE((root / "new.bin").stat().st_mode) == 0o640
        await store.copyfile("new.bin", "copy.bin")
        assert stat.S_IMODE((root / "copy.bin").stat().st_mode) == 0o640
        (root / "script.sh").write_text("#!/bin/sh\n")
        (root / "script.sh").chmod(0o751)
        await store.write_bytes("script.sh", b"#!/bin/sh\necho hi\n")
        assert stat.S_IMODE((root / "script.sh").stat().st_mode) == 0o751
        await store.copyfile("new.bin", "script.sh", overwrite=True)
        assert stat.S_IMODE((root / "script.sh").stat().st_mode) == 0o751
    finally:
        os.umask(old_umask)


@covers("open.x-atomic")
async def test_exclusive_writers_race_exactly_one_wins(store: LocalStore, root: Path) -> None:
    files = [await store.open("race.bin", "xb") for _ in range(8)]  # all pass the first check
    for i, f in enumerate(files):
        await f.write(b"writer %d" % i)
    outcomes: dict[int, str] = {}

    async def close(i: int, f: Any) -> None:
        try:
            await f.aclose()
        except FileExistsError:
            outcomes[i] = "lost"
        else:
            outcomes[i] = "won"

    async with anyio.create_task_group() as tg:
        for i, f in enumerate(files):
            tg.start_soon(close, i, f)
    winners = [i for i, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    assert sorted(outcomes.values()) == ["lost"] * 7 + ["won"]
    assert (root / "race.bin").read_bytes() == b"writer %d" % winners[0]
    assert on_disk(root) == {"race.bin"}


@covers("open.x-atomic")
async def test_exclusive_write_loses_to_a_file_created_meanwhile(
    store: LocalStore, root: Path
) -> None:
    f = await store.open("x.txt", "x")
    await f.write("mine")
    (root / "x.txt").write_text("theirs")
    with pytest.raises(FileExistsError, match=r"x\.txt"):
        await f.aclose()
    assert (root / "x.txt").read_text() == "theirs"
    assert on_disk(root) == {"x.txt"}


async def test_exclusive_write_without_hard_links(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    await store.write_bytes("a.txt", b"first")
    async with store.open("b.txt", "xb") as f:
        await f.write(b"exclusive")
    f = await store.open("c.txt", "xb")
    await f.write(b"late")
    (root / "c.txt").write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        await f.aclose()
    assert (root / "b.txt").read_bytes() == b"exclusive"
    assert (root / "c.txt").read_bytes() == b"theirs"
    assert on_disk(root) == {"a.txt", "b.txt", "c.txt"}


@covers("rename.file", "rename.directory")
async def test_rename_across_filesystems_falls_back_to_copying(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write_bytes("d/a.txt", b"a")
    await store.write_bytes("f.txt", b"f")
    real_rename = os.rename

    def cross_device(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(src).startswith(str(root)):
            raise OSError(errno.EXDEV, "Invalid cross-device link", src)
        real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", cross_device)
    await store.rename("d", "e/moved")
    await store.rename("f.txt", "e/f.txt")
    assert on_disk(root) == {"e", "e/moved", "e/moved/a.txt", "e/f.txt"}
    assert (root / "e/moved/a.txt").read_bytes() == b"a"


# ---------------------------------------------------------------- parents, temps


@covers("write.below-file", "path.below-file-local")
async def test_writing_below_a_file_is_not_a_directory(store: LocalStore, root: Path) -> None:
    await store.write_bytes("f.txt", b"x")
    where = f"{root}/f.txt"
    with pytest.raises(NotADirectoryError, match=r"f\.txt") as info:
        await store.write_bytes("f.txt/x.bin", b"y")
    assert where in str(info.value)
    with pytest.raises(NotADirectoryError, match=r"f\.txt"):
        await store.write_bytes("f.txt/a/b/x.bin", b"y")
    await store.write_bytes("g.txt", b"g")
    with pytest.raises(NotADirectoryError, match=r"f\.txt"):
        await store.copyfile("g.txt", "f.txt/copy.txt")
    with pytest.raises(NotADirectoryError, match=r"f\.txt"):
        await store.rename("g.txt", "f.txt/moved.txt")
    assert on_disk(root) == {"f.txt", "g.txt"}


async def test_root_is_made_on_first_write(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = LocalStore(str(root))
    assert await store.exists(store.root)
    assert await store.isdir(store.root)
    assert await store.listdir(store.root) == []
    assert [w async for w in store.walk(store.root)] == [(str(root), [], [])]
    assert await store.glob("**/*") == []
    assert await store.size(store.root) == 0
    assert not root.exists()
    await store.mkdir("first")
    assert root.is_dir()
    other = LocalStore(str(tmp_path / "other"))
    await other.write_bytes("a/b.txt", b"b")
    assert (tmp_path / "other/a/b.txt").read_bytes() == b"b"


async def test_temp_files_are_hidden_from_listings(store: LocalStore, root: Path) -> None:
    await store.write_bytes("d/kept.txt", b"kept")
    dotfile = b"users' own dotfiles stay visible"
    plain_tmp = b"and so do their .tmp files"
    (root / "d/.dotfile").write_bytes(dotfile)
    (root / "d/.plain.tmp").write_bytes(plain_tmp)
    f = await store.open("d/pending.bin", "wb")
    await f.write(b"x" * 10)
    g = await store.open("d/sub/other.bin", "wb")
    assert len(temp_files(root)) == 3  # the two writers' temps and the users' .plain.tmp
    visible = ["kept.txt", ".dotfile", ".plain.tmp"]
    assert await store.listdir("d") == sorted([*visible, "sub"])
    assert await store.listdir("d/sub") == []
    walked = [(p, d, f) async for p, d, f in store.walk(store.root)]
    assert walked == [
        (str(root), ["d"], []),
        (f"{root}/d", ["sub"], sorted(visible)),
        (f"{root}/d/sub", [], []),
    ]
    assert await store.glob("d/.*") == [f"{root}/d/.dotfile", f"{root}/d/.plain.tmp"]
    assert await store.glob("**/.*") == [f"{root}/d/.dotfile", f"{root}/d/.plain.tmp"]
    assert await store.glob("d/**/*") == [f"{root}/d/kept.txt", f"{root}/d/sub"]
    assert await store.size("d") == len(b"kept") + len(dotfile) + len(plain_tmp)
    await f.aclose()
    await g.abort()
    assert await store.listdir("d") == sorted([*visible, "pending.bin", "sub"])
    assert temp_files(root) == {"d/.plain.tmp"}


async def test_tree_listing_in_small_batches(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_TREE_BATCH", 2)
    names = ["a.txt", "b/c.txt", "b/d/e.txt", "b/d/f.txt", "g/h.txt"]
    for i, name in enumerate(names):
        await store.write_bytes(name, b"x" * i)
    assert await store.size(store.root) == sum(range(len(names)))
    assert await store.glob("**/*.txt") == [f"{root}/{n}" for n in sorted(names)]
    tree = cast("AsyncGenerator[tuple[str, DirEntry], None]", store._iter_tree(""))
    first = await tree.__anext__()
    assert first[0] in {"a.txt", "b", "g"}
    await tree.aclose()  # the open directory handle is closed, not leaked
    gc.collect()


# -------------------------------------------------------------------- symlinks


@pytest.fixture(params=["absolute", "relative", "chained"])
def escaping_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A root holding ``link`` (a directory link) and ``flink`` (a file link) that lead out."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "inside.txt").write_text("inside")
    if request.param == "absolute":
        (root / "link").symlink_to(outside)
        (root / "flink").symlink_to(outside / "secret.txt")
    elif request.param == "relative":
        (root / "link").symlink_to("../outside")
        (root / "flink").symlink_to("../outside/secret.txt")
    else:  # an inside link to an inside link that leads out
        (root / "hop").symlink_to(outside)
        (root / "link").symlink_to("hop")
        (root / "flink").symlink_to("hop/secret.txt")
    return root


OUTSIDE_OPERATIONS: dict[str, Callable[[LocalStore], Awaitable[object]]] = {
    "exists": lambda s: s.exists("link"),
    "exists below": lambda s: s.exists("link/secret.txt"),
    "exists missing below": lambda s: s.exists("link/missing.txt"),
    "isdir": lambda s: s.isdir("link"),
    "stat": lambda s: s.stat("flink"),
    "size": lambda s: s.size("link"),
    "listdir": lambda s: s.listdir("link"),
    "glob": lambda s: s.glob("link/*"),
    "read": lambda s: s.read_bytes("flink"),
    "read below": lambda s: s.read_bytes("link/secret.txt"),
    "write through file link": lambda s: s.write_bytes("flink", b"pwned"),
    "write below": lambda s: s.write_bytes("link/new.txt", b"pwned"),
    "overwrite below": lambda s: s.write_bytes("link/secret.txt", b"pwned"),
    "append below": lambda s: s.open("link/secret.txt", "ab"),
    "remove": lambda s: s.remove("link/secret.txt"),
    "remove link": lambda s: s.remove("flink"),
    "rmtree": lambda s: s.rmtree("link"),
    "makedirs": lambda s: s.makedirs("link/sub/dir"),
    "mkdir": lambda s: s.mkdir("link/sub"),
    "copyfile from": lambda s: s.copyfile("flink", "copy.txt"),
    "copyfile into": lambda s: s.copyfile("inside.txt", "link/copy.txt"),
    "rename from": lambda s: s.rename("link/secret.txt", "moved.txt"),
    "rename into": lambda s: s.rename("inside.txt", "link/moved.txt"),
}


@covers("path.local-symlink-out")
@pytest.mark.parametrize("operation", OUTSIDE_OPERATIONS)
async def test_symlink_leading_out_of_the_root_is_outside(
    escaping_root: Path, operation: str
) -> None:
    store = LocalStore(str(escaping_root))
    before = on_disk(escaping_root.parent)
    with pytest.raises(artifactio.PathOutsideStoreError) as info:
        await OUTSIDE_OPERATIONS[operation](store)
    assert isinstance(info.value, PermissionError)
    assert str(escaping_root) in str(info.value)
    assert on_disk(escaping_root.parent) == before
    assert (escaping_root.parent / "outside/secret.txt").read_text() == "secret"


@covers("path.local-symlink-out", "walk.links")
async def test_walks_and_globs_never_show_what_lies_outside(escaping_root: Path) -> None:
    store = LocalStore(str(escaping_root))
    with pytest.raises(PermissionError):
        [w async for w in store.walk("link")]
    errors: list[OSError] = []
    walked = [w async for w in store.walk(store.root, onerror=errors.append)]
    assert walked[0][0] == str(escaping_root)
    assert all("secret.txt" not in files for _, _, files in walked)
    assert "link" in walked[0][1]  # listed among the directories, as os.walk lists it
    assert errors == []  # and, like every link, not entered
    assert not any("secret" in p for p in await store.glob("**"))
    assert await store.size(store.root) == len("inside")


@covers("local.tree-links")
async def test_symlinks_inside_the_root_work(store: LocalStore, root: Path) -> None:
    await store.write_bytes("real/data.txt", b"data")
    (root / "alias").symlink_to("real")
    (root / "flink").symlink_to("real/data.txt")
    assert await store.isdir("alias")
    assert await store.listdir("alias") == ["data.txt"]
    assert await store.read_bytes("alias/data.txt") == b"data"
    assert (await store.stat("flink")).size == 4
    await store.write_bytes("alias/new.txt", b"new")
    assert (root / "real/new.txt").read_bytes() == b"new"
    await store.write_bytes("flink", b"through the link")
    assert (root / "flink").is_symlink()
    assert (root / "real/data.txt").read_bytes() == b"through the link"
    async with store.open("flink", "ab") as f:
        await f.write(b"!")
    assert (root / "real/data.txt").read_bytes() == b"through the link!"
    await store.copyfile("alias/new.txt", "alias/copy.txt")
    assert (root / "real/copy.txt").read_bytes() == b"new"
    # Like os.walk, tree listings do not descend into linked directories.
    assert await store.glob("**/*.txt") == [
        f"{root}/real/copy.txt",
        f"{root}/real/data.txt",
        f"{root}/real/new.txt",
    ]
    assert await store.size(store.root) == 2 * len(b"through the link!") + 3 + 3
    await store.remove("flink")
    assert (root / "real/data.txt").exists()
    assert temp_files(root) == set()


@covers("walk.links")
async def test_walk_lists_linked_directories_without_entering_them(
    store: LocalStore, root: Path
) -> None:
    (root / "real").mkdir()
    (root / "real/data.txt").write_bytes(b"data")
    (root / "alias").symlink_to(root / "real")
    (root / "real/loop").symlink_to("..")  # a cycle: followed, it would nest until ELOOP
    errors: list[OSError] = []
    walked = [w async for w in store.walk(store.root, onerror=errors.append)]
    assert walked == [
        (str(root), ["alias", "real"], []),
        (f"{root}/real", ["loop"], ["data.txt"]),
    ]
    assert errors == []
    # Walking a link itself enters it, as os.walk does with a link as top.
    assert [w async for w in store.walk("alias")] == [(f"{root}/alias", ["loop"], ["data.txt"])]


async def test_root_reached_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real")
    store = LocalStore(str(tmp_path / "via"))
    await store.write_bytes("a/b.txt", b"b")
    (tmp_path / "real/a/up").symlink_to("..")
    assert await store.read_bytes("a/up/a/b.txt") == b"b"
    assert await store.glob("a/*") == [f"{tmp_path}/via/a/b.txt", f"{tmp_path}/via/a/up"]
    (tmp_path / "real/a/out").symlink_to("../..")
    assert await store.exists("a/out/via/a/b.txt")  # out and back in
    with pytest.raises(PermissionError):
        await store.exists("a/out/other")


# --------------------------------------------------------------------- spelling


@covers("path.local-forms")
async def test_file_uri_spelling_round_trips(root: Path) -> None:
    uri = f"file://{root}"
    store = artifactio.open_store(uri)
    assert isinstance(store, LocalStore)
    assert store.root == uri
    await store.write_bytes(f"{uri}/a/one.txt", b"1")
    await store.write_bytes(f"{root}/a/two.txt", b"2")
    await store.write_bytes("a/three.txt", b"3")
    assert await store.listdir(f"{root}/a") == ["one.txt", "three.txt", "two.txt"]
    assert await store.glob("a/t*") == [f"{uri}/a/three.txt", f"{uri}/a/two.txt"]
    assert [p async for p, _, _ in store.walk(uri)] == [uri, f"{uri}/a"]
    assert (await store.stat("a/one.txt")).path == f"{uri}/a/one.txt"
    async with store.open(f"{root}/a/one.txt", "rb") as f:
        assert f.name == f"{uri}/a/one.txt"
    with pytest.raises(FileNotFoundError) as info:
        await store.read_bytes("a/missing.txt")
    assert info.value.filename == f"{uri}/a/missing.txt"
    await store.write_bytes("f.txt", b"")
    with pytest.raises(NotADirectoryError) as info2:
        await store.write_bytes("f.txt/x", b"")
    assert f"{uri}/f.txt" in str(info2.value)
    plain = LocalStore(str(root))
    assert await plain.glob(f"{uri}/a/o*") == [f"{root}/a/one.txt"]
    assert (root / "a/one.txt").read_bytes() == b"1"


# ------------------------------------------------- never block the event loop


@contextmanager
def strict_blockbuster() -> Iterator[None]:
    """blockbuster, plus the os calls this backend makes that it does not watch by default."""
    with blockbuster_ctx() as bb:
        for name in ("os.lstat", "os.open", "os.fstat", "os.chmod", "os.makedirs"):
            bb.functions[name] = BlockBusterFunction(None, name).activate()
        yield


async def workload(store: LocalStore) -> None:
    """A bit of everything a pipeline does, through the async API."""
    await store.makedirs("runs/1")
    await store.mkdir("runs/2")
    await store.write_bytes("runs/1/model.bin", b"\x00" * 5000)
    async with store.open("runs/1/log.txt", "w") as f:
        await f.write("line 1\nline 2\n")
    async with store.open("runs/1/log.txt", "a") as f:
        await f.write("line 3\n")
    async with store.open("runs/1/new.txt", "x") as f:
        await f.write("exclusive")
    assert await store.read_bytes("runs/1/model.bin") == b"\x00" * 5000
    async with store.open("runs/1/log.txt") as f:
        assert [line async for line in f] == ["line 1\n", "line 2\n", "line 3\n"]
    async with store.open("runs/1/model.bin", "rb") as f:
        await f.seek(4000)
        assert len(await f.read()) == 1000
    assert (await store.stat("runs/1/model.bin")).size == 5000
    assert await store.exists("runs/1")
    assert not await store.exists("runs/9")
    assert await store.isdir("runs")
    assert not await store.isdir("runs/1/model.bin")
    assert await store.listdir("runs/1") == ["log.txt", "model.bin", "new.txt"]
    assert len([w async for w in store.walk(store.root)]) == 4
    assert len(await store.glob("runs/*/*.txt")) == 2
    assert len(await store.glob("**")) == 7
    await store.copyfile("runs/1/model.bin", "runs/2/model.bin")
    await store.copyfile("runs/1/log.txt", "runs/2/model.bin", overwrite=True)
    await store.rename("runs/2/model.bin", "runs/2/log.txt")
    await store.rename("runs/2", "archive/2")
    assert await store.size("runs") == 5000 + 21 + 9
    await store.remove("runs/1/new.txt")
    with pytest.raises(FileNotFoundError):
        await store.read_bytes("runs/1/missing.bin")

    async def failing_write() -> None:
        async with store.open("runs/1/model.bin", "wb") as f:
            await f.write(b"discarded")
            raise RuntimeError("abort this write")

    with pytest.raises(RuntimeError):
        await failing_write()
    await store.rmtree("runs")
    await store.rmtree("archive")
    assert await store.listdir(store.root) == []


async def test_async_api_never_blocks_the_event_loop(store: LocalStore) -> None:
    with strict_blockbuster():
        await workload(store)


async def test_blockbuster_catches_a_primitive_that_blocks_the_loop(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: run the primitives on the loop and blockbuster objects."""

    async def on_the_loop(func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)

    await store.write_bytes("a.txt", b"a")
    monkeypatch.setattr(local, "run_blocking", on_the_loop)
    with strict_blockbuster():
        with pytest.raises(BlockingError, match=r"os\.lstat"):
            await store.exists("a.txt")
        with pytest.raises(BlockingError, match=r"os\.lstat"):
            await store.write_bytes("b.txt", b"b")
    with blockbuster_ctx(), pytest.raises(BlockingError, match=r"(?i)scandir"):
        await store.listdir(store.root)  # the default checks alone catch this one


async def test_file_data_moves_through_aiofiles_on_asyncio(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped: list[object] = []
    real_wrap = aiofiles.threadpool.wrap

    def spy(file: Any, **kwargs: Any) -> Any:
        wrapped.append(file)
        return real_wrap(file, **kwargs)

    monkeypatch.setattr(aiofiles.threadpool, "wrap", spy)
    data = os.urandom(SMALL_FILE + 1)
    await store.write_bytes("a.bin", data)
    assert await store.read_bytes("a.bin") == data
    assert len(wrapped) == 2  # the writer's file and the reader's file
    await store.write_bytes("small.bin", b"data")
    assert await store.read_bytes("small.bin") == b"data"
    assert len(wrapped) == 2  # a small file is written and read in one worker call each


# ------------------------------------------------------------------ inline driving


def test_inline_driving_never_suspends(store: LocalStore) -> None:
    async def everything() -> None:
        await workload(store)
        # a half-consumed tree listing: closed inline too
        tree = cast("AsyncGenerator[tuple[str, DirEntry], None]", store._iter_tree(""))
        await store.write_bytes("a/b.txt", b"b")
        await tree.__anext__()
        await tree.aclose()
        f = await store.open("a/dropped.txt", "w")
        await f.write("x")
        await f.abort()

    try:
        run_inline(everything())
    except InlineSuspendedError as exc:  # pragma: no cover - the failure being tested for
        pytest.fail(f"an operation waited on an event loop: {exc}")
    assert on_disk(Path(store.root)) == {"a", "a/b.txt"}


# ------------------------------------------- below a file: what os and shutil raise


def _zenml_copyfile(src: str, dst: str, overwrite: bool = False) -> None:
    """ZenML's ``LocalFilesystem.copyfile``: the exists check, then ``shutil.copyfile``."""
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    shutil.copyfile(src, dst)


def _zenml_rename(src: str, dst: str, overwrite: bool = False) -> None:
    """ZenML's ``LocalFilesystem.rename``: the exists check, then ``os.rename``."""
    if not overwrite and os.path.exists(dst):
        raise FileExistsError(dst)
    os.rename(src, dst)


def _os_open(path: str, mode: str) -> None:
    with open(path, mode) as f:
        if mode[0] != "r":
            f.write(b"x" if "b" in mode else "x")


def _os_walk_errors(top: str) -> list[type[OSError]]:
    errors: list[OSError] = []
    for _ in os.walk(top, onerror=errors.append):
        pass
    return [type(e) for e in errors]


def _os_open_at(at: Callable[[str], str], path: str, *, mode: str) -> None:
    _os_open(at(path), mode)


async def _store_open(store: Any, path: str, mode: str) -> None:
    async with store.open(path, mode) as f:
        if mode[0] != "r":
            await f.write(b"x" if "b" in mode else "x")


async def _store_walk_errors(store: Any, top: str) -> list[type[OSError]]:
    errors: list[OSError] = []
    async for _ in store.walk(top, onerror=errors.append):
        pass
    return [type(e) for e in errors]


OsCall: TypeAlias = "Callable[[Callable[[str], str], str], object]"
StoreCall: TypeAlias = "Callable[[Any, str], Awaitable[object]]"

# label -> (the call on the twin through os/shutil/glob, the same call on the store).
# On the os side ``at`` turns a path relative to the twin into an absolute one.
BELOW_FILE_OPERATIONS: dict[str, tuple[OsCall, StoreCall]] = {
    "exists": (lambda at, p: os.path.exists(at(p)), lambda s, p: s.exists(p)),
    "isdir": (lambda at, p: os.path.isdir(at(p)), lambda s, p: s.isdir(p)),
    "stat": (lambda at, p: os.stat(at(p)) and None, lambda s, p: s.stat(p)),
    "size": (lambda at, p: os.path.getsize(at(p)), lambda s, p: s.size(p)),
    "listdir": (lambda at, p: os.listdir(at(p)), lambda s, p: s.listdir(p)),
    "glob": (
        lambda at, p: glob.glob(at(p) + "/*", recursive=True),
        lambda s, p: s.glob(p + "/*"),
    ),
    "walk(onerror)": (lambda at, p: _os_walk_errors(at(p)), _store_walk_errors),
    "remove": (lambda at, p: os.remove(at(p)), lambda s, p: s.remove(p)),
    "rmtree": (lambda at, p: shutil.rmtree(at(p)), lambda s, p: s.rmtree(p)),
    "makedirs": (
        lambda at, p: os.makedirs(at(p), exist_ok=True),
        lambda s, p: s.makedirs(p),
    ),
    "mkdir": (lambda at, p: os.mkdir(at(p)), lambda s, p: s.mkdir(p)),
    "read_bytes": (lambda at, p: _os_open(at(p), "rb"), lambda s, p: s.read_bytes(p)),
    "write_bytes": (lambda at, p: _os_open(at(p), "wb"), lambda s, p: s.write_bytes(p, b"x")),
    **{
        f"open({mode!r})": (
            functools.partial(_os_open_at, mode=mode),
            functools.partial(_store_open, mode=mode),
        )
        for mode in ("r", "rb", "w", "wb", "a", "ab", "x", "xb")
    },
    "copyfile(src)": (
        lambda at, p: _zenml_copyfile(at(p), at("new.txt")),
        lambda s, p: s.copyfile(p, "new.txt"),
    ),
    "copyfile(src, overwrite)": (
        lambda at, p: _zenml_copyfile(at(p), at("ok.txt"), overwrite=True),
        lambda s, p: s.copyfile(p, "ok.txt", overwrite=True),
    ),
    "copyfile(dst)": (
        lambda at, p: _zenml_copyfile(at("ok.txt"), at(p)),
        lambda s, p: s.copyfile("ok.txt", p),
    ),
    "copyfile(dst, overwrite)": (
        lambda at, p: _zenml_copyfile(at("ok.txt"), at(p), overwrite=True),
        lambda s, p: s.copyfile("ok.txt", p, overwrite=True),
    ),
    "copyfile(missing src, dst)": (
        lambda at, p: _zenml_copyfile(at("missing.txt"), at(p)),
        lambda s, p: s.copyfile("missing.txt", p),
    ),
    "copyfile(dir src, dst)": (
        lambda at, p: _zenml_copyfile(at("dir"), at(p)),
        lambda s, p: s.copyfile("dir", p),
    ),
    "rename(src)": (
        lambda at, p: _zenml_rename(at(p), at("new.txt")),
        lambda s, p: s.rename(p, "new.txt"),
    ),
    "rename(src, overwrite)": (
        lambda at, p: _zenml_rename(at(p), at("ok.txt"), overwrite=True),
        lambda s, p: s.rename(p, "ok.txt", overwrite=True),
    ),
    "rename(dst)": (
        lambda at, p: _zenml_rename(at("ok.txt"), at(p)),
        lambda s, p: s.rename("ok.txt", p),
    ),
    "rename(dst, overwrite)": (
        lambda at, p: _zenml_rename(at("ok.txt"), at(p), overwrite=True),
        lambda s, p: s.rename("ok.txt", p, overwrite=True),
    ),
    "rename(dir src, dst)": (
        lambda at, p: _zenml_rename(at("dir"), at(p)),
        lambda s, p: s.rename("dir", p),
    ),
    "rename(missing src, dst)": (
        lambda at, p: _zenml_rename(at("missing.txt"), at(p)),
        lambda s, p: s.rename("missing.txt", p),
    ),
}

# shape -> (the tree: content, None for a directory, "->target" for a symlink; the bad path)
BELOW_FILE_SHAPES: dict[str, tuple[dict[str, bytes | str | None], str]] = {
    "below a top-level file": ({"f": b""}, "f/x"),
    "two levels below a file": ({"f": b"data"}, "f/x/y"),
    "below a file in a directory": ({"d/f": b"data", "d/g": b"g"}, "d/f/x"),
    "below a link to a file": ({"t.txt": b"t", "l": "->t.txt"}, "l/x"),
    "below a file, trailing slash": ({"f": b"data"}, "f/x/"),
}


def _make_twin_tree(top: Path, tree: dict[str, bytes | str | None]) -> None:
    full = {"ok.txt": b"ok", "dir": None, "dir/in.txt": b"in", **tree}
    for rel, content in full.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, str):
            path.symlink_to(content.removeprefix("->"))
        else:
            path.write_bytes(content)


def _outcome(value: object) -> tuple[str, object]:
    if isinstance(value, (bool, list)):
        return "returned", value
    return "returned", None


@covers("path.below-file-local")
@pytest.mark.parametrize("api", ["async", "sync"])
@pytest.mark.parametrize("shape", BELOW_FILE_SHAPES)
@pytest.mark.parametrize("operation", BELOW_FILE_OPERATIONS)
async def test_below_a_file_raises_what_os_raises(
    tmp_path: Path, operation: str, shape: str, api: str
) -> None:
    tree, bad = BELOW_FILE_SHAPES[shape]
    root, twin = tmp_path / "root", tmp_path / "twin"
    _make_twin_tree(root, tree)
    _make_twin_tree(twin, tree)
    os_call, store_call = BELOW_FILE_OPERATIONS[operation]
    try:
        expected = _outcome(os_call(lambda rel: str(twin / rel), bad))
    except OSError as exc:
        expected = ("raised", type(exc))
    store: Any = LocalStore(str(root))
    if api == "sync":
        store = SyncAsAsync(artifactio.ArtifactStore(store))
    try:
        got = _outcome(await store_call(store, bad))
    except OSError as exc:
        got = ("raised", type(exc))
    # (glob's lists compare too: nothing lies below a file, so both are empty)
    assert got == expected, f"{operation} on {bad!r}: store {got}, os {expected}"
    assert on_disk(root) == on_disk(twin), "the store and os left different trees"
    if api == "sync":
        store.sync_store.close()


# --------------------------------------------------------- failures, not "missing"


@covers("exists.failures")
async def test_lookup_failure_on_disk_is_raised(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write_bytes("locked/inside.bin", b"x")
    real_lstat = os.lstat
    real_stat = os.stat

    def denied(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if "locked" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)

    def denied_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if "locked" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", denied)
    monkeypatch.setattr(os, "stat", denied_stat)
    for call in (store.exists, store.isdir):
        for path in ("locked", "locked/inside.bin", "locked/missing"):
            with pytest.raises(PermissionError, match="locked"):
                await call(path)
    assert await store.exists("elsewhere") is False


# ------------------------------------------------- a move across filesystems fails


@covers("rename.failure-cleanup")
@pytest.mark.parametrize("what", ["directory", "file"])
async def test_failed_move_across_filesystems_leaves_no_partial_copy(
    store: LocalStore, root: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    for i in range(6):
        await store.write_bytes(f"d/f{i}.txt", b"x" * i)
    await store.makedirs("d/empty")
    real_rename = os.rename
    real_copy2 = shutil.copy2
    copies = 0

    def cross_device(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(src).startswith(str(root)):
            raise OSError(errno.EXDEV, "Invalid cross-device link", src)
        real_rename(src, dst, *args, **kwargs)

    def failing_copy2(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal copies
        copies += 1
        if copies == 3 or what == "file":
            if what == "file":  # the copy fails after writing part of the file
                Path(dst).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device (injected)", dst)
        return real_copy2(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(shutil, "copy2", failing_copy2)
    before = on_disk(root)
    src, dst = ("d", "e/moved") if what == "directory" else ("d/f5.txt", "e/f5.txt")
    with pytest.raises(OSError, match="injected"):
        await store.rename(src, dst)
    assert copies >= 3 if what == "directory" else copies == 1  # copytree tries every file
    # the source is whole and nothing is left at the destination (its new parent may stay)
    assert on_disk(root) - {"e"} == before
    assert temp_files(root) == set()
    monkeypatch.setattr(shutil, "copy2", real_copy2)
    await store.rename(src, dst)  # a retry is not refused
    assert not await store.exists(src)
    assert await store.read_bytes(f"{dst}/f5.txt" if what == "directory" else dst) == b"x" * 5
