"""What only the local backend does on disk: atomic temp-file writes, parents, failures.

The behaviour every backend shares (docs/semantics.md) is the conformance suite's job;
the local-only rows are checked here too (``@covers``). Symlinks, the event loop and
paths below a file have their own modules (test_local_symlinks, test_local_loop,
test_local_below_file).
"""

from __future__ import annotations

import errno
import gc
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

import artifactio
from _local_fixtures import local_root, local_store, on_disk, temp_files  # noqa: F401 - fixtures
from artifactio.backends import local
from artifactio.backends._local_files import SMALL_FILE
from artifactio.backends.local import LocalStore
from artifactio.testing import covers

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from artifactio import DirEntry


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
