"""Bulk transfers against real stores: memory, local disks, SeaweedFS (S3), fake-gcs-server (GCS).

Trees of a few hundred small files and one file big enough for a multipart (S3)
or resumable (GCS) upload go across every pair the engine must serve, and come
out byte-identical. Failures are injected with small store subclasses.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import artifactio
from _s3_fixtures import PART, pending_uploads
from artifactio import (
    DirEntry,
    EntryInfo,
    RawReader,
    RawWriter,
    StoreConnectionError,
    TransferProgress,
)
from artifactio._concurrency import for_each
from artifactio.backends.gcs import GCSStore
from artifactio.backends.local import LocalStore
from artifactio.backends.memory import MemoryStore
from artifactio.transfer import TransferPlan, TransferReport, execute, split_points
from artifactio.transfer._endpoints import open_endpoints

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from artifactio import AsyncArtifactStore
    from artifactio.backends.s3 import S3Store
    from artifactio.embedded import FakeGCSServer

MiB = 1024 * 1024
S3_PART = PART


def make_tree(count: int = 200, big: int = 0, seed: int = 7) -> dict[str, bytes]:
    """``count`` small files over a few directory levels, plus one of ``big`` bytes."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        parts = [f"d{(i // 7) % 5}", f"e{i % 3}", "deep"][: i % 4]
        files["/".join([*parts, f"file-{i:03d}.bin"])] = rng.randbytes(rng.randrange(0, 1500))
    if big:
        files["big/weights.bin"] = rng.randbytes(big)
    return files


async def fill(store: AsyncArtifactStore, files: dict[str, bytes]) -> None:
    async def one(item: tuple[str, bytes]) -> None:
        await store.write_bytes(item[0], item[1])

    await for_each(files.items(), one, limit=32)


async def contents(store: AsyncArtifactStore, top: str = ".") -> dict[str, bytes]:
    """Every file below ``top``, by path relative to it."""
    base = (
        store.root
        if top == "."
        else top
        if "://" in top or top[0] == "/"
        else f"{store.root}/{top}"
    )
    paths: list[str] = []
    async for dirpath, _, filenames in store.walk(top):
        paths.extend(f"{dirpath}/{name}" for name in filenames)
    found: dict[str, bytes] = {}

    async def one(path: str) -> None:
        found[path[len(base) :].lstrip("/")] = await store.read_bytes(path)

    await for_each(paths, one, limit=32)
    return found


def counts(report: TransferReport) -> tuple[int, int, int, int]:
    return report.transferred, report.skipped, report.failed, report.bytes


@pytest.fixture
async def memory(memory_root: str) -> AsyncIterator[MemoryStore]:
    async with MemoryStore(memory_root) as store:
        yield store


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalStore]:
    (tmp_path / "local").mkdir()
    async with LocalStore(str(tmp_path / "local")) as store:
        yield store


# ----------------------------------------------------------------- S3 and GCS


@pytest.fixture
def s3(s3_store: S3Store) -> S3Store:
    """The shared ``s3_store`` (5 MiB parts, on a fresh root), named like this module's others."""
    return s3_store


@pytest.fixture
async def gcs(gcs_root: str, fake_gcs_server: FakeGCSServer) -> AsyncIterator[GCSStore]:
    """A GCS store in a fresh bucket, with 1 MiB resumable-upload chunks."""
    async with GCSStore(gcs_root, **fake_gcs_server.store_options(part_size=MiB)) as store:
        yield store


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


# ----------------------------------------------------------------- sync


@pytest.mark.s3
async def test_sync_transfers_what_differs_and_then_nothing(local: LocalStore, s3: S3Store) -> None:
    files = make_tree(count=120)
    await fill(local, files)
    first = await artifactio.sync((local, "."), (s3, "."))
    assert first.transferred == len(files)
    # S3 keeps whole seconds: the copies may look up to a second older than their sources.
    again = await artifactio.sync((local, "."), (s3, "."))
    assert counts(again) == (0, len(files), 0, 0)
    await local.write_bytes(sorted(files)[10], b"now longer than before" * 100)
    await local.write_bytes("d4/new.bin", b"new")
    third = await artifactio.sync((local, "."), (s3, "."))
    assert (third.transferred, third.skipped) == (2, len(files) - 1)
    assert await s3.read_bytes("d4/new.bin") == b"new"
    assert (await artifactio.sync((local, "."), (s3, "."))).transferred == 0


async def test_sync_compare_modes(local: LocalStore, tmp_path: Path) -> None:
    await local.write_bytes("src/a.bin", b"aaaa")
    await local.write_bytes("src/b.bin", b"bbbb")
    await artifactio.sync((local, "src"), (local, "dst"))
    await local.write_bytes("dst/a.bin", b"AAAA")  # same size, newer: only a checksum tells
    os.utime(tmp_path / "local" / "dst" / "b.bin", (1, 1))  # same content, made old
    ends = ((local, "src"), (local, "dst"))
    plan_size = await artifactio.sync(*ends, compare="size", dry_run=True)
    assert counts(plan_size) == (0, 2, 0, 0)
    plan_mtime = await artifactio.sync(*ends, dry_run=True)
    assert (plan_mtime.transferred, plan_mtime.skipped) == (1, 1)  # b.bin: the source is newer
    by_checksum = await artifactio.sync(*ends, compare="checksum")
    assert (by_checksum.transferred, by_checksum.skipped) == (1, 1)  # a.bin: the bytes differ
    assert await local.read_bytes("dst/a.bin") == b"aaaa"


@pytest.mark.gcs
async def test_sync_by_checksum_against_gcs(local: LocalStore, gcs: GCSStore) -> None:
    files = make_tree(count=40)
    await fill(local, files)
    await artifactio.sync((local, "."), (gcs, "."))
    changed = sorted(files)[5]
    await gcs.write_bytes(changed, bytes(len(files[changed])))  # same size, newer, other bytes
    assert (await artifactio.sync((local, "."), (gcs, "."))).transferred == 0
    report = await artifactio.sync((local, "."), (gcs, "."), compare="checksum")
    assert (report.transferred, report.skipped) == (1, len(files) - 1)
    assert await gcs.read_bytes(changed) == files[changed]


async def test_sync_delete(memory: MemoryStore, local: LocalStore) -> None:
    await fill(memory, {"a.txt": b"a", "keep/b.txt": b"b"})
    await fill(local, {"a.txt": b"old", "gone.txt": b"x", "old/c.txt": b"c", "x.log": b"l"})
    dry = await artifactio.sync((memory, "."), (local, "."), delete=True, dry_run=True)
    assert (dry.transferred, dry.deleted, dry.dry_run) == (2, 3, True)
    assert sorted(await local.listdir(".")) == ["a.txt", "gone.txt", "old", "x.log"]
    report = await artifactio.sync((memory, "."), (local, "."), delete=True, exclude=["*.log"])
    assert (report.transferred, report.deleted) == (2, 2)
    assert await contents(local) == {"a.txt": b"a", "keep/b.txt": b"b", "x.log": b"l"}


async def test_include_and_exclude(memory: MemoryStore, local: LocalStore) -> None:
    await fill(memory, {"m/w.bin": b"1", "m/cache/t.bin": b"2", "c.json": b"3", "x/c.json": b"4"})
    report = await artifactio.copy(
        (memory, "."), (local, "."), recursive=True, include=["m", "*.json"], exclude=["m/cache"]
    )
    assert report.transferred == 2
    assert await contents(local) == {"m/w.bin": b"1", "c.json": b"3"}


async def test_dry_run_changes_nothing(memory: MemoryStore, local: LocalStore) -> None:
    files = make_tree(count=25)
    await fill(memory, files)
    await local.write_bytes("stale.bin", b"s")
    report = await artifactio.copy((memory, "."), (local, "."), recursive=True, dry_run=True)
    assert counts(report) == (len(files), 0, 0, sum(len(b) for b in files.values()))
    assert report.dry_run
    assert "would transfer" in str(report)
    report = await artifactio.sync((memory, "."), (local, "."), delete=True, dry_run=True)
    assert (report.transferred, report.deleted) == (len(files), 1)
    assert await contents(local) == {"stale.bin": b"s"}


# ----------------------------------------------------------------- failures


class FailingStore(MemoryStore):
    """Fails to read files whose name holds ``bad`` (for good), or ``flaky`` (once each)."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.flaky_seen: set[str] = set()

    async def _open_reader(self, key: str) -> RawReader:
        if "bad" in key:
            raise PermissionError(errno.EACCES, "open: permission denied", self._full(key))
        if "flaky" in key and key not in self.flaky_seen:
            self.flaky_seen.add(key)
            raise StoreConnectionError(f"open: connection reset for {key}")
        return await super()._open_reader(key)


async def test_one_failure_does_not_stop_the_others(memory_root: str, local: LocalStore) -> None:
    async with FailingStore(memory_root) as src:
        files = make_tree(count=40)
        files["d2/bad.bin"] = b"unreadable"
        await fill(src, files)
        report = await artifactio.sync((src, "."), (local, "."), delete=True)
        await local.write_bytes("extra.bin", b"e")
        again = await artifactio.sync((src, "."), (local, "."), delete=True)
    assert (report.transferred, report.failed) == (len(files) - 1, 1)
    assert report.failures == [
        {
            "path": f"{memory_root}/d2/bad.bin",
            "error": f"PermissionError: [Errno 13] open: permission denied: "
            f"'{memory_root}/d2/bad.bin'",
        }
    ]
    assert (again.failed, again.deleted) == (1, 0)  # a failure: nothing is deleted
    assert await local.exists("extra.bin")


async def test_fail_fast_stops_at_the_first_failure(memory_root: str, local: LocalStore) -> None:
    async with FailingStore(memory_root) as src:
        files = make_tree(count=60)
        files["bad.bin"] = b"unreadable"  # the top level is planned first
        await fill(src, files)
        report = await artifactio.copy(
            (src, "."), (local, "."), recursive=True, fail_fast=True, concurrency=2
        )
    assert report.failed == 1
    assert report.transferred < len(files) - 1
    copied = await contents(local)
    assert all(files[path] == data for path, data in copied.items())  # nothing partial


async def test_transient_failures_are_retried(memory_root: str, local: LocalStore) -> None:
    async with FailingStore(memory_root) as src:
        await fill(src, {"flaky-1.bin": b"1", "sub/flaky-2.bin": b"2", "ok.bin": b"3"})
        report = await artifactio.copy((src, "."), (local, "."), recursive=True)
    assert counts(report) == (3, 0, 0, 3)
    async with FailingStore(memory_root) as src:
        no_retries = await artifactio.copy((src, "."), (local, "again"), recursive=True, retries=0)
    assert (no_retries.transferred, no_retries.failed) == (1, 2)
    assert all(f["error"].startswith("StoreConnectionError:") for f in no_retries.failures)


class LyingStore(MemoryStore):
    """Reports a byte too many for ``short`` files and a wrong CRC-32C for ``crc`` files."""

    async def _info(self, key: str) -> EntryInfo | None:
        info = await super()._info(key)
        if info is None or info.kind == "dir":
            return info
        if "short" in key:
            return EntryInfo("file", info.size + 1, info.mtime)
        if "crc" in key:
            return EntryInfo("file", info.size, info.mtime, checksum="crc32c:AAAAAA==")
        return info


async def test_a_destination_that_does_not_match_is_a_failure(
    memory: MemoryStore, memory_root: str
) -> None:
    await fill(memory, {"src/short.bin": b"12345", "src/crc.bin": b"abc", "src/fine.bin": b"ok"})
    async with LyingStore(f"{memory_root}/dst") as dst:
        report = await artifactio.copy((memory, "src"), (dst, "."), recursive=True, retries=1)
        assert (report.transferred, report.failed) == (1, 2)
        errors = " | ".join(f["error"] for f in report.failures)
        assert errors.count("IntegrityError:") == 2
        assert "checksum crc32c:AAAAAA==" in errors
        assert "has 6 bytes" in errors
        # The copies that failed the check are gone: a later sync cannot take them for done.
        assert await dst.listdir(".") == ["fine.bin"]


class Tripwire(RawReader):
    """A reader that calls ``hook`` with how far it has read."""

    def __init__(self, inner: RawReader, hook: Callable[[int], None]) -> None:
        self._inner = inner
        self._hook = hook
        self.size = inner.size

    async def read_at(self, offset: int, n: int) -> bytes:
        data = await self._inner.read_at(offset, n)
        self._hook(offset + len(data))
        return data


class TrippingStore(MemoryStore):
    hook: Callable[[int], None] = staticmethod(lambda _: None)

    async def _open_reader(self, key: str) -> RawReader:
        return Tripwire(await super()._open_reader(key), self.hook)


def _all_names(root: Path) -> Iterator[str]:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)


@pytest.mark.s3
async def test_cancelled_midway_leaves_no_partial_file_or_upload(
    memory_root: str, s3: S3Store, raw_s3: Any, tmp_path: Path
) -> None:
    files = make_tree(count=20, big=3 * S3_PART)
    files["big/second.bin"] = random.Random(3).randbytes(3 * S3_PART)
    async with TrippingStore(memory_root) as src:
        await fill(src, files)
        with anyio.CancelScope() as scope:

            def trip(position: int) -> None:
                if position >= 2 * S3_PART:  # a multipart upload is under way by then
                    scope.cancel()

            src.hook = trip
            await artifactio.copy((src, "."), (s3, "."), recursive=True, part_size=MiB)
        assert scope.cancelled_caught
        copied = await contents(s3)
        assert "big/weights.bin" not in copied
        assert "big/second.bin" not in copied
        assert all(files[path] == data for path, data in copied.items())
        assert pending_uploads(raw_s3, s3.root) == []

        out = tmp_path / "out"
        with anyio.CancelScope() as scope:
            await artifactio.copy((src, "."), str(out), recursive=True, part_size=MiB)
        names = set(_all_names(out))
        assert not any(n.rpartition("/")[2].startswith(".") for n in names)  # no temporary files
        assert all((out / n).read_bytes() == files[n] for n in names)
        assert "big/weights.bin" not in names


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


async def fill_dir(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    async with LocalStore(str(root)) as store:
        await fill(store, files)


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
