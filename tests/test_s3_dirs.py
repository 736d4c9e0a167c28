"""S3 directories against a real SeaweedFS server: markers, listings, rename and rmtree.

S3 has no directories: a store makes them of keys (a file's key implies its
parents; ``makedirs`` writes ``name/`` markers). What must hold on S3 itself:

- listings, walks and globs over more than one page of keys, and an ``rmtree``
  that leaves no key behind (nor raises a group when one batch of deletes fails);
- a directory's rename moves its markers and files, and one that fails partway
  leaves the source whole and nothing at the destination;
- a marker is never written while a key below it creates its directory
  (SeaweedFS can lose such a marker), and a directory emptied by any removal
  leaves the listings.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from _s3_fixtures import key_prefix, keys_below
from artifactio.backends.s3 import S3Client, S3Store

if TYPE_CHECKING:
    from collections.abc import Awaitable

pytestmark = pytest.mark.s3


async def test_listing_and_rmtree_over_many_keys(s3_store: S3Store, raw_s3: Any) -> None:
    count = 1100  # more than one page of 1000
    names = [f"many/d{i % 3}/f{i:05d}" for i in range(count)]
    limit = anyio.Semaphore(32)

    async def put(name: str) -> None:
        async with limit:
            await s3_store.write_bytes(name, b"x")

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(put, name)
    await s3_store.makedirs("many/d0/empty")
    assert await s3_store.listdir("many") == ["d0", "d1", "d2"]
    listed = await s3_store.listdir("many/d0")
    assert len(listed) == len([n for n in names if n.startswith("many/d0/")]) + 1
    assert "empty" in listed
    walked = 0
    async for _, _, files in s3_store.walk("many"):
        walked += len(files)
    assert walked == count
    assert len(await s3_store.glob("many/**/f*")) == count
    assert await s3_store.size("many") == count
    await s3_store.rmtree("many")
    assert not await s3_store.exists("many")
    assert keys_below(raw_s3, s3_store.root) == []
    assert await s3_store.listdir(s3_store.root) == []


async def test_failed_directory_rename_leaves_no_partial_copy(
    s3_store: S3Store, raw_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await s3_store.makedirs("src/empty")
    for i in range(6):
        await s3_store.write_bytes(f"src/f{i}.bin", b"x" * i)
    before = sorted(keys_below(raw_s3, s3_store.root))
    real_copy = S3Client.copy
    calls = 0

    async def failing_copy(self: S3Client, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise PermissionError(errno.EACCES, "copy: denied (injected)", "s3://x")
        await real_copy(self, *args, **kwargs)

    monkeypatch.setattr(S3Client, "copy", failing_copy)
    with pytest.raises(PermissionError, match="injected"):
        await s3_store.rename("src", "dst")
    monkeypatch.undo()
    # The source is whole, nothing is left at the destination, and the move can be retried.
    assert sorted(keys_below(raw_s3, s3_store.root)) == before
    assert not await s3_store.exists("dst")
    await s3_store.rename("src", "dst")
    assert await s3_store.read_bytes("dst/f5.bin") == b"xxxxx"


async def test_a_copy_under_way_when_a_move_fails_is_taken_back_too(
    s3_store: S3Store, raw_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request cut midway may still be carried out by the server after the clean-up
    # looked: here the server's late copy is played by a task the cancel does not stop.
    for i in range(6):
        await s3_store.write_bytes(f"src/f{i}.bin", b"x" * i)
    before = sorted(keys_below(raw_s3, s3_store.root))
    real_copy = S3Client.copy
    late: list[asyncio.Task[None]] = []

    async def copy(self: S3Client, bucket: str, src: str, dst: str, **kwargs: Any) -> None:
        if src.endswith("f1.bin"):
            raise PermissionError(errno.EACCES, "copy: denied (injected)", "s3://x")
        if src.endswith("f4.bin"):

            async def server_side() -> None:
                await asyncio.sleep(0.3)
                await real_copy(self, bucket, src, dst, **kwargs)

            late.append(asyncio.ensure_future(server_side()))
            await asyncio.shield(late[-1])
            return
        await real_copy(self, bucket, src, dst, **kwargs)

    monkeypatch.setattr(S3Client, "copy", copy)
    with pytest.raises(PermissionError, match="injected"):
        await s3_store.rename("src", "dst")
    await asyncio.gather(*late)
    monkeypatch.undo()
    assert sorted(keys_below(raw_s3, s3_store.root)) == before


async def test_rmtree_batch_failure_raises_the_error_itself(
    s3_store: S3Store, raw_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(8):
        await s3_store.write_bytes(f"t/f{i}.bin", b"x")
    monkeypatch.setattr(S3Client, "delete_batch", 2)  # four batches, several in flight
    real_delete_many = S3Client.delete_many
    calls = 0

    async def failing_delete_many(self: S3Client, bucket: str, keys: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise PermissionError(errno.EACCES, "delete: denied (injected)", "s3://x")
        await real_delete_many(self, bucket, keys)

    monkeypatch.setattr(S3Client, "delete_many", failing_delete_many)
    with pytest.raises(PermissionError, match="injected"):  # not an ExceptionGroup
        await s3_store.rmtree("t")
    monkeypatch.undo()
    await s3_store.rmtree("t")  # what is left can be removed afterwards
    assert not await s3_store.exists("t")


async def test_rename_directory_moves_markers_and_files(s3_store: S3Store, raw_s3: Any) -> None:
    await s3_store.makedirs("src/empty")
    await s3_store.write_bytes("src/a/b.txt", b"b")
    await s3_store.rename("src", "dst")
    assert not await s3_store.exists("src")
    assert await s3_store.isdir("dst/empty")
    assert await s3_store.read_bytes("dst/a/b.txt") == b"b"
    # makedirs("src/empty") marked "src/" too; both markers moved
    assert sorted(keys_below(raw_s3, s3_store.root)) == ["dst/", "dst/a/b.txt", "dst/empty/"]


async def test_no_marker_is_written_while_a_key_below_creates_its_directory(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SeaweedFS can lose a marker written at the moment a key below it creates its directory.

    Such a key (a marker or a file) makes its missing parents as plain directories;
    when that happens at the same time as a parent's own marker write, the plain one
    can win. So a marker's write never overlaps a write below it unless something at
    or below the marker was written before that write began (the directory exists).
    """
    writes: list[tuple[str, float, float]] = []
    real_put, real_copy = S3Client.put, S3Client.copy

    async def timed(key: str, call: Awaitable[None]) -> None:
        start = time.monotonic()
        await asyncio.sleep(0.01)  # keeps every write the code allows at once in flight together
        await call
        writes.append((key, start, time.monotonic()))

    async def put(self: S3Client, bucket: str, key: str, data: bytes, *, exclusive: bool) -> None:
        await timed(key, real_put(self, bucket, key, data, exclusive=exclusive))

    async def copy(
        self: S3Client, bucket: str, src: str, dst: str, *, size: int | None = None
    ) -> None:
        await timed(dst, real_copy(self, bucket, src, dst, size=size))

    monkeypatch.setattr(S3Client, "put", put)
    monkeypatch.setattr(S3Client, "copy", copy)
    await s3_store.makedirs("src/x/y/z")
    await s3_store.makedirs("src/e")
    await s3_store.write_bytes("src/x/f", b"f")
    await s3_store.write_bytes("src/x/y/g", b"g")
    await s3_store.rename("src", "dst")

    moved = [w for w in writes if w[0].startswith(key_prefix(s3_store.root) + "dst/")]
    assert len(moved) == 7  # 5 markers and 2 files
    for marker, m_start, m_end in writes:
        if not marker.endswith("/"):
            continue
        for key, start, end in writes:
            below = key != marker and key.startswith(marker)
            if below and start < m_end and m_start < end:  # overlapping
                existed = any(k.startswith(marker) and e <= start for k, _, e in writes)
                assert existed, f"{marker} written while {key} created its directory"


async def test_emptied_implicit_directories_leave_listings(s3_store: S3Store) -> None:
    """SeaweedFS keeps real directory entries: a parent emptied by any removal must not linger."""
    await s3_store.makedirs("kept")  # a marker: outlives its children
    await s3_store.write_bytes("kept/f", b"1")
    await s3_store.write_bytes("rm/a/b/f", b"1")
    await s3_store.write_bytes("tree/sub/f", b"1")
    await s3_store.write_bytes("mvfile/f", b"1")
    await s3_store.write_bytes("mvdir/sub/f", b"1")
    await s3_store.write_bytes("busy/one", b"1")
    await s3_store.write_bytes("busy/two", b"1")
    await s3_store.remove("kept/f")
    await s3_store.remove("rm/a/b/f")
    await s3_store.rmtree("tree/sub")
    await s3_store.rename("mvfile/f", "moved-file")
    await s3_store.rename("mvdir/sub", "moved-dir")
    await s3_store.remove("busy/one")
    assert await s3_store.listdir(s3_store.root) == ["busy", "kept", "moved-dir", "moved-file"]
    walked = [
        (top[len(s3_store.root) :], dirs, files) async for top, dirs, files in s3_store.walk(".")
    ]
    assert walked == [
        ("", ["busy", "kept", "moved-dir"], ["moved-file"]),
        ("/busy", [], ["two"]),
        ("/kept", [], []),
        ("/moved-dir", [], ["f"]),
    ]
    assert await s3_store.glob("*") == [
        f"{s3_store.root}/{n}" for n in ("busy", "kept", "moved-dir", "moved-file")
    ]
