"""Bulk ``sync``: only what differs moves, compare modes, deletes, filters and dry runs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

import artifactio
from _transfer_fixtures import (
    contents,
    counts,
    fill,
    make_tree,
    transfer_gcs,  # noqa: F401 - fixture
    transfer_local,  # noqa: F401 - fixture
    transfer_memory,  # noqa: F401 - fixture
    transfer_s3,  # noqa: F401 - fixture
)

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.backends.gcs import GCSStore
    from artifactio.backends.local import LocalStore
    from artifactio.backends.memory import MemoryStore
    from artifactio.backends.s3 import S3Store


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
