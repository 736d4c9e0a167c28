"""Bulk transfers against real stores: memory, local disks, SeaweedFS (S3), fake-gcs-server (GCS).

Trees of a few hundred small files and one file big enough for a multipart (S3)
or resumable (GCS) upload go across every pair the engine must serve, and come
out byte-identical; then progress, shards and kernel copies between local disks.
``sync`` and failures have their own modules (test_transfer_sync, test_transfer_failures).
"""

from __future__ import annotations

import errno
import itertools
import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import artifactio
from _s3_fixtures import pending_uploads
from _transfer_fixtures import (
    S3_PART,
    MiB,
    _all_names,
    contents,
    counts,
    fill,
    fill_dir,
    make_tree,
    transfer_gcs,  # noqa: F401 - fixture
    transfer_local,  # noqa: F401 - fixture
    transfer_memory,  # noqa: F401 - fixture
    transfer_s3,  # noqa: F401 - fixture
)
from artifactio import (
    DirEntry,
    EntryInfo,
    RawReader,
    RawWriter,
    TransferProgress,
)
from artifactio.backends.local import LocalStore
from artifactio.backends.memory import MemoryStore
from artifactio.transfer import TransferPlan, TransferReport, execute, split_points
from artifactio.transfer._endpoints import open_endpoints

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from artifactio.backends.gcs import GCSStore
    from artifactio.backends.s3 import S3Store


# ----------------------------------------------------------------- any store to any store


async def test_copy_memory_to_local_and_back(
    memory: MemoryStore, tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(big=3 * MiB + 17)  # more than a local store's 1 MiB write buffer
    await fill(memory, files)
    total = sum(len(b) for b in files.values())
    out = tmp_path / "out"
    report = await artifactio.copy(memory_root, str(out), recursive=True, part_size=MiB)
    assert counts(report) == (len(files), 0, 0, total)
    assert report.ok
    async with LocalStore(str(out)) as copied:
        assert await contents(copied) == files
    back = f"{memory_root}/back"
    report = await artifactio.copy(str(out), back, recursive=True)  # URIs: opened, then closed
    assert counts(report) == (len(files), 0, 0, total)
    async with MemoryStore(back) as returned:
        assert await contents(returned) == files


@pytest.mark.s3
async def test_copy_local_to_s3_and_back(
    local: LocalStore, s3: S3Store, tmp_path: Path, raw_s3: Any
) -> None:
    files = make_tree(big=S3_PART + MiB)  # a two-part multipart upload
    await fill(local, files)
    report = await artifactio.copy((local, "."), (s3, "."), recursive=True)
    assert counts(report) == (len(files), 0, 0, sum(len(b) for b in files.values()))
    assert (await s3.stat("big/weights.bin")).etag.endswith("-2")  # type: ignore[union-attr]
    assert await contents(s3) == files
    assert pending_uploads(raw_s3, s3.root) == []
    back = tmp_path / "back"
    report = await artifactio.copy((s3, "."), str(back), recursive=True, part_size=2 * MiB)
    assert report.transferred == len(files)
    assert report.ok
    async with LocalStore(str(back)) as returned:
        assert await contents(returned) == files


@pytest.mark.gcs
async def test_copy_local_to_gcs(local: LocalStore, gcs: GCSStore) -> None:
    files = make_tree(big=3 * MiB + 5)  # a resumable upload in 1 MiB chunks
    await fill(local, files)
    report = await artifactio.copy((local, "."), (gcs, "models"), recursive=True)
    assert report.transferred == len(files)
    assert report.ok
    assert await contents(gcs, "models") == files


@pytest.mark.s3
@pytest.mark.gcs
async def test_copy_s3_to_gcs(s3: S3Store, gcs: GCSStore, raw_s3: Any) -> None:
    files = make_tree(count=150, big=S3_PART + 3)
    await fill(s3, files)
    report = await artifactio.copy((s3, "."), (gcs, "."), recursive=True, concurrency=16)
    assert counts(report) == (len(files), 0, 0, sum(len(b) for b in files.values()))
    assert await contents(gcs) == files


async def test_one_file_lands_inside_a_directory_or_at_its_path(memory: MemoryStore) -> None:
    await memory.write_bytes("src/a.txt", b"alpha")
    await memory.makedirs("existing")
    for dst in ("existing", "spelled/", "renamed.txt"):
        report = await artifactio.copy((memory, "src/a.txt"), (memory, dst))
        assert report.transferred == 1
    assert await memory.read_bytes("existing/a.txt") == b"alpha"
    assert await memory.read_bytes("spelled/a.txt") == b"alpha"
    assert await memory.read_bytes("renamed.txt") == b"alpha"
    await memory.write_bytes("renamed.txt", b"other")
    report = await artifactio.copy((memory, "src/a.txt"), (memory, "renamed.txt"), overwrite=False)
    assert counts(report) == (0, 1, 0, 0)
    assert await memory.read_bytes("renamed.txt") == b"other"


class CountingStore(MemoryStore):
    """Counts server-side copies."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.copies = 0

    async def copyfile(self, src: Any, dst: Any, overwrite: bool = False) -> None:
        self.copies += 1
        await super().copyfile(src, dst, overwrite)


async def test_one_store_at_both_ends_copies_server_side(memory_root: str) -> None:
    async with CountingStore(memory_root) as store:
        files = make_tree(count=30)
        await fill(store, {f"a/{k}": v for k, v in files.items()})
        report = await artifactio.copy((store, "a"), (store, "b"), recursive=True)
        assert report.transferred == store.copies == len(files)
        assert await contents(store, f"{store.root}/b") == files


async def test_uris_of_one_bucket_share_one_store() -> None:
    async with open_endpoints("s3://bucket/a/x", "s3://bucket/b/", concurrency=8) as (src, dst):
        assert src.store is dst.store
        assert (src.key, dst.key, dst.as_dir) == ("a/x", "b", True)
    assert src.store._closed
    async with open_endpoints("memory://m/a", "memory://n/a", concurrency=8) as (src, dst):
        assert src.store is not dst.store
    async with open_endpoints("gs://bkt/x", "gcs://bkt/y", concurrency=8) as (src, dst):
        assert src.store is dst.store


async def test_the_ends_are_checked_before_anything_moves(
    memory: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await memory.write_bytes("d/f.txt", b"x")
    with pytest.raises(FileNotFoundError, match="missing"):
        await artifactio.copy((memory, "missing"), (memory, "out"))
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        await artifactio.copy((memory, "d"), (memory, "out"))
    with pytest.raises(NotADirectoryError):
        await artifactio.sync((memory, "d"), (memory, "d/f.txt"))
    with pytest.raises(OSError, match="into itself") as into:
        await artifactio.copy((memory, "d"), (memory, "d/sub"), recursive=True)
    assert into.value.errno == errno.EINVAL
    with pytest.raises(artifactio.UnsupportedSchemeError):
        await artifactio.copy("nope://x/y", (memory, "out"))
    with pytest.raises(TypeError, match="AsyncArtifactStore"):
        await artifactio.copy(("not a store", "x"), (memory, "out"))  # type: ignore[arg-type]
    assert await memory.listdir(".") == ["d"]
    monkeypatch.chdir(tmp_path)  # a relative local path is taken from the working directory
    report = await artifactio.copy((memory, "d/f.txt"), "rel/f.txt")
    assert report.transferred == 1
    assert (tmp_path / "rel" / "f.txt").read_bytes() == b"x"


class ListingCounter(MemoryStore):
    """Counts the listings and lookups made of it."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.listed: list[str] = []
        self.looked_up: list[str] = []

    async def _info(self, key: str) -> EntryInfo | None:
        self.looked_up.append(key)
        return await super()._info(key)

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        self.listed.append(key)
        async for page in super()._scandir(key):
            yield page


async def test_the_destination_is_listed_once_per_level_not_probed_per_file(
    memory: MemoryStore, memory_root: str
) -> None:
    files = make_tree(count=60)
    await fill(memory, {f"src/{k}": v for k, v in files.items()})
    levels = {"/".join(k.split("/")[:n]) for k in files for n in range(k.count("/") + 1)}
    async with ListingCounter(f"{memory_root}/dst") as dst:
        await artifactio.copy((memory, "src"), (dst, "."), recursive=True)
        assert dst.listed == [""]  # the top; the levels below were new: nothing to list
        dst.listed.clear()
        dst.looked_up.clear()
        report = await artifactio.sync((memory, "src"), (dst, "."))
        assert counts(report) == (0, len(files), 0, 0)
        assert sorted(dst.listed) == sorted(levels)
        assert dst.looked_up == [""]  # where the destination is; no file was looked up


@pytest.mark.parametrize("overwrite", [True, False])
async def test_files_are_written_without_a_probe_and_checked_once(
    memory: MemoryStore, memory_root: str, overwrite: bool
) -> None:
    files = {f"f{i:02d}.bin": bytes([i]) * i for i in range(20)}
    await fill(memory, {f"src/{k}": v for k, v in files.items()})
    async with ListingCounter(f"{memory_root}/dst") as dst:
        await dst.write_bytes("out/f00.bin", b"old")  # an existing directory, one file in it
        dst.looked_up.clear()
        report = await artifactio.copy(
            (memory, "src"), (dst, "out"), recursive=True, overwrite=overwrite
        )
        moved = files if overwrite else {k: v for k, v in files.items() if k != "f00.bin"}
        assert counts(report) == (
            len(moved),
            len(files) - len(moved),
            0,
            sum(map(len, moved.values())),
        )
        assert dst.listed == ["out"]
        # Where the destination is, then each written file once: the check after the
        # write. Opening the writers looked nothing up (the listing had answered).
        assert sorted(dst.looked_up) == ["out", *(f"out/{name}" for name in sorted(moved))]
        assert await contents(dst, "out") == (files if overwrite else {**files, "f00.bin": b"old"})


class StaleLocal(LocalStore):
    """Lists every directory as empty, as if what is there appeared after the listing."""

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        yield []


async def test_a_directory_the_listing_missed_is_not_written_over(
    memory: MemoryStore, tmp_path: Path
) -> None:
    await memory.write_bytes("src/a.bin", b"data")
    (tmp_path / "out" / "a.bin").mkdir(parents=True)
    async with StaleLocal(str(tmp_path)) as dst:
        report = await artifactio.copy((memory, "src"), (dst, "out"), recursive=True)
    assert counts(report) == (0, 0, 1, 0)
    assert report.failures[0]["error"].startswith("IsADirectoryError")
    assert (tmp_path / "out" / "a.bin").is_dir()
    assert os.listdir(tmp_path / "out") == ["a.bin"]  # no temporary file left


class PagedSource(MemoryStore):
    """Lists ten entries a page; the top level's later pages wait until ``gate`` is set."""

    def __init__(self, root: str, gate: anyio.Event) -> None:
        super().__init__(root)
        self.gate = gate

    async def _scandir(self, key: str) -> AsyncIterator[list[DirEntry]]:
        entries: list[DirEntry] = []
        async for page in super()._scandir(key):
            entries.extend(page)
        for i in range(0, len(entries), 10):
            if i and not key:
                await self.gate.wait()
            yield entries[i : i + 10]


class SignallingWriter(RawWriter):
    def __init__(self, raw: RawWriter, done: anyio.Event) -> None:
        self._raw = raw
        self._done = done

    async def write(self, data: bytes) -> None:
        await self._raw.write(data)

    async def commit(self) -> None:
        await self._raw.commit()
        self._done.set()

    async def abort(self) -> None:
        await self._raw.abort()


class SignallingStore(MemoryStore):
    """Sets ``written`` when a file was written."""

    def __init__(self, root: str, written: anyio.Event) -> None:
        super().__init__(root)
        self.written = written

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        raw = await super()._open_writer(key, exclusive=exclusive)
        return SignallingWriter(raw, self.written)


async def test_transfers_start_while_the_source_is_still_being_listed(memory_root: str) -> None:
    written = anyio.Event()  # the source lists its second page only once a file was written
    files = {f"f{i:02d}.bin": bytes([i]) * i for i in range(35)}
    async with (
        PagedSource(f"{memory_root}/src", written) as src,
        SignallingStore(f"{memory_root}/dst", written) as dst,
    ):
        await fill(src, files)
        with anyio.fail_after(60):  # a deadlock guard: listing everything first never ends
            report = await artifactio.copy((src, "."), (dst, "."), recursive=True, concurrency=4)
        assert report.transferred == len(files)
        assert await contents(dst) == files


# ----------------------------------------------------------------- progress and shards


async def test_progress_counts_only_grow(memory: MemoryStore, local: LocalStore) -> None:
    files = make_tree(count=80, big=2 * MiB)
    await fill(memory, files)
    first = sorted(files)[0]
    await local.write_bytes(first, files[first])
    seen: list[TransferProgress] = []
    report = await artifactio.sync(
        (memory, "."), (local, "."), progress=seen.append, part_size=256 * 1024, concurrency=4
    )
    assert len(seen) >= 2
    fields = ("files_done", "files_total", "bytes_done", "bytes_total", "transferred", "skipped")
    for before, after in itertools.pairwise(seen):
        assert all(getattr(after, f) >= getattr(before, f) for f in fields)
        assert after.bytes_done <= after.bytes_total
        assert after.files_done <= after.files_total
    last = seen[-1]
    assert last.listing_done
    assert last.files_done == last.files_total == len(files)
    assert last.bytes_done == last.bytes_total == report.bytes
    assert (last.transferred, last.skipped) == (len(files) - 1, 1)
    assert last.current is not None
    assert last.current.startswith(memory.root)


async def test_a_failing_progress_callback_is_raised_once_the_transfer_is_over(
    memory: MemoryStore, local: LocalStore
) -> None:
    files = make_tree(count=20)
    await fill(memory, files)

    def broken(_: TransferProgress) -> None:
        raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar"):
        await artifactio.copy((memory, "."), (local, "."), recursive=True, progress=broken)
    assert await contents(local) == files  # the files were not taken for failed


async def test_shards_merge_into_the_whole(memory: MemoryStore, tmp_path: Path) -> None:
    files = make_tree(count=150)
    await fill(memory, files)
    plan = TransferPlan.for_sync(delete=True)
    for target in ("whole", "pieces"):  # something to delete, and something up to date
        await fill_dir(
            tmp_path / target, {"stale/x.bin": b"x", "file-004.bin": files["file-004.bin"]}
        )
    whole = await execute(plan, (memory, "."), str(tmp_path / "whole"))
    pieces = plan.shard(split_points(await memory.listdir("."), 4))
    assert len(pieces) == 4
    reports = [await execute(piece, (memory, "."), str(tmp_path / "pieces")) for piece in pieces]
    merged = TransferReport.merge(reports)
    assert counts(merged) == counts(whole)
    assert merged.deleted == whole.deleted == 1
    assert (whole.transferred, whole.skipped) == (len(files) - 1, 1)
    async with LocalStore(str(tmp_path / "whole")) as a, LocalStore(str(tmp_path / "pieces")) as b:
        assert await contents(a) == await contents(b) == files


class NoStreaming(LocalStore):
    """A local store that refuses to open readers: what it serves must not be streamed."""

    async def _open_reader(self, key: str) -> RawReader:
        raise AssertionError(f"{key} was streamed")


async def test_files_between_local_disks_are_copied_by_the_kernel(tmp_path: Path) -> None:
    files = make_tree(count=30, big=3 * MiB)
    (tmp_path / "a").mkdir()
    async with NoStreaming(str(tmp_path / "a")) as src, LocalStore(str(tmp_path / "b")) as dst:
        await fill_dir(tmp_path / "a", files)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert await contents(dst) == files
        assert not any(n.rpartition("/")[2].startswith(".") for n in _all_names(tmp_path / "b"))
        await dst.write_bytes("d0/new.bin", b"mine")
        await src.write_bytes("d0/new.bin", b"theirs")
        again = await artifactio.copy((src, "."), (dst, "."), recursive=True, overwrite=False)
        assert (again.transferred, again.skipped) == (0, len(files) + 1)
        assert await dst.read_bytes("d0/new.bin") == b"mine"
        await src.write_bytes("d0/newer.bin", b"1")
        again = await artifactio.copy((src, "."), (dst, "."), recursive=True, overwrite=False)
        assert (again.transferred, again.skipped) == (1, len(files) + 1)
        assert await dst.read_bytes("d0/newer.bin") == b"1"
