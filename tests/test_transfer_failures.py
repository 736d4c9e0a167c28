"""Bulk transfers when stores fail: failures are counted, not raised, retried, checked, cancelled.

Failures are injected with small store subclasses; network faults against the real
servers are test_transfer_faults.py's.
"""

from __future__ import annotations

import errno
import random
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
    make_tree,
    transfer_local,  # noqa: F401 - fixture
    transfer_memory,  # noqa: F401 - fixture
    transfer_s3,  # noqa: F401 - fixture
)
from artifactio import (
    EntryInfo,
    RawReader,
    StoreConnectionError,
)
from artifactio.backends.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from artifactio.backends.local import LocalStore
    from artifactio.backends.s3 import S3Store


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
