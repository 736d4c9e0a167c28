"""Small files between two local disks, copied in batches (``transfer/_batches.py``).

Each file of a batch still ends on its own: counted, retried, skipped or failed
alone, published whole or not at all.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

import anyio
import pytest

import artifactio
from _transfer_fixtures import _all_names, contents, counts, fill_dir, make_tree
from artifactio import IntegrityError
from artifactio.backends.local import LocalStore
from artifactio.transfer._batches import BATCH_FILES
from artifactio.transfer._retry import Retrying, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from artifactio._primitives import StorePrimitives
    from artifactio.transfer import TransferProgress

MiB = 1024 * 1024


class Recording(LocalStore):
    """A local store that records the batches it copies, and may meddle with them first.

    ``before(pairs)`` runs ahead of each batch; ``fail`` holds destination keys whose
    first copy in a batch fails with ``IntegrityError`` (a transient failure).
    """

    def __init__(self, root: str, **options: object) -> None:
        super().__init__(root, **options)
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.fail: set[str] = set()
        self.before: Callable[[Sequence[tuple[str, str]]], None] = lambda pairs: None

    async def _copy_batch_from(
        self, source: StorePrimitives, pairs: Sequence[tuple[str, str]], *, exclusive: bool
    ) -> list[int | Exception]:
        self.batches.append([dst for _, dst in pairs])
        self.before(pairs)
        failing = {dst for _, dst in pairs if dst in self.fail}
        self.fail -= failing
        copied = iter(
            await super()._copy_batch_from(
                source, [p for p in pairs if p[1] not in failing], exclusive=exclusive
            )
        )
        return [
            IntegrityError(errno.EIO, "copyfile: checksum mismatch", dst)
            if dst in failing
            else next(copied)
            for _, dst in pairs
        ]

    async def _copy_from(
        self, source: StorePrimitives, src: str, dst: str, *, exclusive: bool
    ) -> int | None:
        self.singles.append(dst)
        return await super()._copy_from(source, src, dst, exclusive=exclusive)


def no_temporary_files(root: Path) -> bool:
    return not any(n.rpartition("/")[2].startswith(".") for n in _all_names(root))


async def test_small_files_between_local_disks_go_in_batches(tmp_path: Path) -> None:
    files = make_tree(count=100, big=2 * MiB)  # one file too large for a batch
    await fill_dir(tmp_path / "a", files)
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert await contents(dst) == files
        assert no_temporary_files(tmp_path / "b")
        batched = [key for batch in dst.batches for key in batch]
        assert len(batched) == len(files) - 1
        assert all(len(batch) <= BATCH_FILES for batch in dst.batches)
        assert len(dst.batches) < len(batched) / 2  # files went several at a time
        assert dst.singles == ["big/weights.bin"]
        again = await artifactio.sync((src, "."), (dst, "."))
        assert counts(again) == (0, len(files), 0, 0)


async def test_one_failure_in_a_batch_stays_one_failed_file(tmp_path: Path) -> None:
    files = make_tree(count=40)
    await fill_dir(tmp_path / "a", files)
    os.mkfifo(tmp_path / "a" / "pipe.bin")  # listed as a file; not a plain file to copy
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert (report.transferred, report.failed) == (len(files), 1)
        assert report.failures[0]["path"] == f"{tmp_path}/a/pipe.bin"
        assert "not a plain file" in report.failures[0]["error"]
        assert any("pipe.bin" in batch for batch in dst.batches)
        assert await contents(dst) == files
        assert no_temporary_files(tmp_path / "b")


async def test_fail_fast_counts_every_file_its_batch_published(tmp_path: Path) -> None:
    files = make_tree(count=200)
    await fill_dir(tmp_path / "a", files)
    os.mkfifo(tmp_path / "a" / "pipe.bin")
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:
        report = await artifactio.copy(
            (src, "."), (dst, "."), recursive=True, fail_fast=True, concurrency=1
        )
        copied = await contents(dst)
        assert report.failed == 1
        assert report.transferred == len(copied) < len(files)
        assert all(files[path] == data for path, data in copied.items())
        assert no_temporary_files(tmp_path / "b")


async def test_a_transient_failure_in_a_batch_is_retried_alone(tmp_path: Path) -> None:
    files = make_tree(count=40)
    await fill_dir(tmp_path / "a", files)
    flaky = {"file-004.bin", "d0/file-005.bin"}
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:
        dst.fail = set(flaky)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert sorted(dst.singles) == sorted(flaky)  # the retries, one file at a time
        assert await contents(dst) == files
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "c")) as dst:
        dst.fail = set(flaky)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True, retries=0)
        assert (report.transferred, report.failed) == (len(files) - 2, 2)
        assert all(f["error"].startswith("IntegrityError:") for f in report.failures)
        assert dst.singles == []


async def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    files = make_tree(count=20)
    await fill_dir(tmp_path / "a", files)
    target = tmp_path / "b" / "file-008.bin"
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:

        def sneak_in(pairs: Sequence[tuple[str, str]]) -> None:
            if any(dst_key == "file-008.bin" for _, dst_key in pairs):
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(b"mine")

        dst.before = sneak_in
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True, overwrite=False)
        assert (report.transferred, report.skipped, report.failed) == (len(files) - 1, 1, 0)
        assert target.read_bytes() == b"mine"
        assert no_temporary_files(tmp_path / "b")


async def test_cancelled_between_batches_leaves_whole_files_only(tmp_path: Path) -> None:
    files = make_tree(count=5 * BATCH_FILES)
    await fill_dir(tmp_path / "a", files)
    async with LocalStore(str(tmp_path / "a")) as src, Recording(str(tmp_path / "b")) as dst:
        with anyio.CancelScope() as scope:

            def cancel_on_the_second(_: Sequence[tuple[str, str]]) -> None:
                if len(dst.batches) == 2:
                    scope.cancel()

            dst.before = cancel_on_the_second
            await artifactio.copy((src, "."), (dst, "."), recursive=True, concurrency=2)
        assert scope.cancelled_caught
        copied = await contents(dst)
        assert 0 < len(copied) < len(files)
        assert all(files[path] == data for path, data in copied.items())
        assert no_temporary_files(tmp_path / "b")


async def test_progress_of_batched_files(tmp_path: Path) -> None:
    files = make_tree(count=120)
    await fill_dir(tmp_path / "a", files)
    (tmp_path / "b").mkdir()
    seen: list[TransferProgress] = []
    report = await artifactio.copy(
        str(tmp_path / "a"), str(tmp_path / "b"), recursive=True, progress=seen.append
    )
    last = seen[-1]
    assert last.files_done == last.files_total == report.transferred == len(files)
    assert last.bytes_done == last.bytes_total == report.bytes == sum(map(len, files.values()))


async def test_a_replaced_file_keeps_its_mode_and_links_are_written_through(
    tmp_path: Path,
) -> None:
    await fill_dir(tmp_path / "a", {"x/one.bin": b"1", "x/two.bin": b"2"})
    dst = tmp_path / "b"
    await fill_dir(dst, {"x/one.bin": b"old", "real.bin": b"old"})
    (dst / "x" / "one.bin").chmod(0o600)
    (dst / "x" / "two.bin").symlink_to("../real.bin")
    report = await artifactio.copy(str(tmp_path / "a"), str(dst), recursive=True)
    assert report.transferred == 2
    assert stat.S_IMODE((dst / "x" / "one.bin").stat().st_mode) == 0o600
    assert (dst / "x" / "one.bin").read_bytes() == b"1"
    assert (dst / "x" / "two.bin").is_symlink()
    assert (dst / "real.bin").read_bytes() == b"2"


async def test_retrying_after_a_failure_elsewhere() -> None:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        return "done"

    retrying = Retrying(RetryPolicy(retries=1), sleep=lambda _: anyio.sleep(0))
    assert await retrying.call(attempt, failed=IntegrityError(errno.EIO, "bad")) == "done"
    assert len(calls) == 1
    with pytest.raises(PermissionError):  # not transient: no attempt
        await retrying.call(attempt, failed=PermissionError(errno.EACCES, "no"))
    assert len(calls) == 1
    none_left = Retrying(RetryPolicy(retries=0))
    with pytest.raises(IntegrityError):
        await none_left.call(attempt, failed=IntegrityError(errno.EIO, "bad"))
    assert len(calls) == 1
