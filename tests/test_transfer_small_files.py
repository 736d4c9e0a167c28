"""Small files between a local disk and another store (``transfer/_batches.py``, ``_items.py``).

Up: the small files of a local disk are read a batch per call (``_read_batch``),
then each is written, counted, retried and failed alone. Down: a small file is
read whole and written in one step (``_write_whole``: one worker-thread call on
a local disk), published whole or not at all.
"""

from __future__ import annotations

import errno
import os
from functools import partial
from typing import TYPE_CHECKING

import anyio
import pytest

import artifactio
from _transfer_fixtures import _all_names, contents, counts, fill, fill_dir, make_tree
from artifactio import IntegrityError
from artifactio.backends._local_files import BATCH_WRITES, SMALL_FILE
from artifactio.backends.local import LocalStore
from artifactio.backends.memory import MemoryStore
from artifactio.transfer._batches import BATCH_FILES, READ_BYTES
from artifactio.transfer._items import WHOLE_FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from artifactio._files import RawReader, RawWriter

MiB = 1024 * 1024


class ReadRecording(LocalStore):
    """A local store that records the batches it reads, and may meddle with them first.

    ``before(keys)`` runs ahead of each batch; ``fail`` holds keys whose first read
    in a batch fails with ``IntegrityError`` (a transient failure).
    """

    def __init__(self, root: str, **options: object) -> None:
        super().__init__(root, **options)
        self.batches: list[list[str]] = []
        self.opened: list[str] = []
        self.fail: set[str] = set()
        self.before: Callable[[Sequence[str]], None] = lambda keys: None

    async def _read_batch(self, keys: Sequence[str]) -> list[bytes | Exception | None]:
        self.batches.append(list(keys))
        self.before(keys)
        read = await super()._read_batch(keys)
        failing = self.fail & set(keys)
        self.fail -= failing
        return [
            IntegrityError(errno.EIO, "read: checksum mismatch", key) if key in failing else out
            for key, out in zip(keys, read, strict=True)
        ]

    async def _open_reader(self, key: str) -> RawReader:
        self.opened.append(key)
        return await super()._open_reader(key)


class WriteRecording(LocalStore):
    """A local store that records how files are written: whole (in batches), or through a writer.

    ``before(key)`` runs ahead of each file written whole.
    """

    def __init__(self, root: str, **options: object) -> None:
        super().__init__(root, **options)
        self.whole: list[str] = []
        self.batches: list[list[str]] = []
        self.writers: list[str] = []
        self.before: Callable[[str], None] = lambda key: None

    async def _write_whole(self, key: str, data: bytes, *, exclusive: bool) -> bool:
        self.whole.append(key)
        self.before(key)
        return await super()._write_whole(key, data, exclusive=exclusive)

    async def _write_batch(
        self, files: Sequence[tuple[str, bytes]], *, exclusive: bool
    ) -> list[bool | Exception]:
        self.batches.append([key for key, _ in files])
        for key, _ in files:
            self.whole.append(key)
            self.before(key)
        return await super()._write_batch(files, exclusive=exclusive)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        self.writers.append(key)
        return await super()._open_writer(key, exclusive=exclusive)


def no_temporary_files(root: Path) -> bool:
    return not any(n.rpartition("/")[2].startswith(".") for n in _all_names(root))


# ------------------------------------------------------------------------- up


async def test_small_local_files_are_read_in_batches(tmp_path: Path, memory_root: str) -> None:
    files = make_tree(count=100, big=SMALL_FILE + 1)  # one file too large for a batch
    await fill_dir(tmp_path / "a", files)
    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert await contents(dst) == files
        read = [key for batch in src.batches for key in batch]
        assert len(read) == len(files) - 1
        assert all(len(batch) <= BATCH_FILES for batch in src.batches)
        assert len(src.batches) < len(read) / 2  # files went several at a time
        assert src.opened == ["big/weights.bin"]  # the large one is streamed


async def test_a_batch_read_ahead_holds_a_bounded_number_of_bytes(
    tmp_path: Path, memory_root: str
) -> None:
    size = 200 * 1024
    files = {f"f{i:02d}.bin": bytes([i]) * size for i in range(20)}
    await fill_dir(tmp_path / "a", files)
    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert report.transferred == len(files)
        assert await contents(dst) == files
        assert len(src.batches) > 1
        assert all((len(batch) - 1) * size < READ_BYTES for batch in src.batches)


async def test_a_file_missing_from_a_read_batch_fails_alone(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=40)
    await fill_dir(tmp_path / "a", files)
    gone = "d0/file-005.bin"
    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        src.before = lambda keys: (tmp_path / "a" / gone).unlink(missing_ok=True)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert (report.transferred, report.failed) == (len(files) - 1, 1)
        assert report.failures[0]["path"] == f"{tmp_path}/a/{gone}"
        assert report.failures[0]["error"].startswith("FileNotFoundError:")
        del files[gone]
        assert await contents(dst) == files


async def test_a_transient_read_failure_in_a_batch_is_retried_alone(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=40)
    await fill_dir(tmp_path / "a", files)
    flaky = {"file-004.bin", "d0/file-005.bin"}
    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        src.fail = set(flaky)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert sorted(src.opened) == sorted(flaky)  # the retries read the file alone
        assert await contents(dst) == files
    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root + "-2") as dst:
        src.fail = set(flaky)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True, retries=0)
        assert (report.transferred, report.failed) == (len(files) - 2, 2)
        assert all(f["error"].startswith("IntegrityError:") for f in report.failures)
        assert src.opened == []


async def test_a_file_grown_past_the_batch_limit_is_streamed(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=20)
    await fill_dir(tmp_path / "a", files)
    grown = "file-004.bin"
    files[grown] = os.urandom(SMALL_FILE + 10)

    def grow(keys: Sequence[str]) -> None:
        if grown in keys:
            (tmp_path / "a" / grown).write_bytes(files[grown])

    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        src.before = grow
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert (report.transferred, report.failed) == (len(files), 0)
        assert src.opened == [grown]
        assert await contents(dst) == files


async def test_fail_fast_stops_a_read_ahead_transfer(tmp_path: Path, memory_root: str) -> None:
    files = make_tree(count=200)
    await fill_dir(tmp_path / "a", files)
    broken = tmp_path / "a" / "file-000.bin"

    def break_one(keys: Sequence[str]) -> None:
        if broken.is_file():  # a directory now where the listing saw a file
            broken.unlink()
            broken.mkdir()

    async with ReadRecording(str(tmp_path / "a")) as src, MemoryStore(memory_root) as dst:
        src.before = break_one
        report = await artifactio.copy(
            (src, "."), (dst, "."), recursive=True, fail_fast=True, concurrency=1
        )
        copied = await contents(dst)
        assert report.failed == 1
        assert report.failures[0]["error"].startswith("IsADirectoryError:")
        assert report.transferred == len(copied) < len(files) - 1


# ----------------------------------------------------------------------- down


async def test_small_files_are_written_whole_in_one_step(tmp_path: Path, memory_root: str) -> None:
    files = make_tree(count=60, big=WHOLE_FILE + 1)
    async with MemoryStore(memory_root) as src, WriteRecording(str(tmp_path / "b")) as dst:
        await fill(src, files)
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert counts(report) == (len(files), 0, 0, sum(map(len, files.values())))
        assert await contents(dst) == files
        assert sorted(dst.whole) == sorted(set(files) - {"big/weights.bin"})
        assert dst.writers == ["big/weights.bin"]
        assert no_temporary_files(tmp_path / "b")
        assert all(len(batch) <= BATCH_WRITES for batch in dst.batches)
        assert 0 < len(dst.batches) < len(dst.whole) / 2  # files ready together went together


async def test_a_whole_write_fails_alone_and_leaves_nothing(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=30)
    blocked = "d1/file-008.bin"
    files[blocked] = b"blocked"

    def block(key: str) -> None:  # a directory appears where the file goes
        if key == blocked:
            (tmp_path / "b" / blocked).mkdir(parents=True)

    async with MemoryStore(memory_root) as src, WriteRecording(str(tmp_path / "b")) as dst:
        await fill(src, files)
        dst.before = block
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True)
        assert (report.transferred, report.failed) == (len(files) - 1, 1)
        assert report.failures[0]["path"] == f"{memory_root}/{blocked}"
        del files[blocked]
        assert await contents(dst) == files
        assert no_temporary_files(tmp_path / "b")


async def test_a_file_that_appears_meanwhile_is_kept_by_copy_without_overwrite(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=20)
    late = "file-004.bin"

    def appear(key: str) -> None:
        if key == late:
            (tmp_path / "b").mkdir(exist_ok=True)
            (tmp_path / "b" / late).write_bytes(b"theirs")

    async with MemoryStore(memory_root) as src, WriteRecording(str(tmp_path / "b")) as dst:
        await fill(src, files)
        dst.before = appear
        report = await artifactio.copy((src, "."), (dst, "."), recursive=True, overwrite=False)
        assert (report.transferred, report.skipped, report.failed) == (len(files) - 1, 1, 0)
        assert (tmp_path / "b" / late).read_bytes() == b"theirs"
        assert no_temporary_files(tmp_path / "b")


async def test_a_cancelled_download_publishes_nothing_after_it_ends(
    tmp_path: Path, memory_root: str
) -> None:
    files = make_tree(count=300)
    async with MemoryStore(memory_root) as src, WriteRecording(str(tmp_path / "b")) as dst:
        await fill(src, files)
        started = anyio.Event()
        dst.before = lambda key: started.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(artifactio.copy, (src, "."), (dst, "."), recursive=True))
            await started.wait()
            tg.cancel_scope.cancel()
        landed = {n: (tmp_path / "b" / n).read_bytes() for n in _all_names(tmp_path / "b")}
        await anyio.sleep(0.1)  # anything still being written would land now
        assert {n: (tmp_path / "b" / n).read_bytes() for n in _all_names(tmp_path / "b")} == landed
        assert all(files[n] == data for n, data in landed.items())  # whole files only
        assert len(landed) < len(files)


async def test_whole_writes_check_the_path_as_open_does(tmp_path: Path) -> None:
    async with LocalStore(str(tmp_path)) as store:
        assert await store._write_whole("new/deep/f.bin", b"abc", exclusive=False) is True
        assert (tmp_path / "new/deep/f.bin").read_bytes() == b"abc"
        assert await store._write_whole("new/deep/f.bin", b"xyz", exclusive=False) is True
        assert (tmp_path / "new/deep/f.bin").read_bytes() == b"xyz"
        with pytest.raises(FileExistsError):
            await store._write_whole("new/deep/f.bin", b"no", exclusive=True)
        with pytest.raises(NotADirectoryError):
            await store._write_whole("new/deep/f.bin/below", b"no", exclusive=False)
        with pytest.raises(IsADirectoryError):
            await store._write_whole("new/deep", b"no", exclusive=False)
        assert (tmp_path / "new/deep/f.bin").read_bytes() == b"xyz"
        assert no_temporary_files(tmp_path)
