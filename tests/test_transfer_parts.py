"""Large files in bulk transfers: parts in parallel, under the transfer's one concurrency limit.

A file larger than ``part_size`` goes in parts where the destination takes them
in any order (S3, local, memory): each part is one ranged read and one part
write, run in the file's own slot and in slots that are free. Instrumented
memory stores count what is in flight; SeaweedFS shows the multipart uploads.
"""

from __future__ import annotations

import errno
import itertools
import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import artifactio
from _s3_fixtures import pending_uploads
from artifactio import RawReader, RawWriter, StoreConnectionError
from artifactio._concurrency import SharedLimit, for_each, for_each_borrowing
from artifactio.backends.local import LocalStore
from artifactio.backends.memory import MemoryStore
from artifactio.transfer._plan import MAX_PARTS, MIN_PART_SIZE, PARTS_IN_FLIGHT, split_parts

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.backends.s3 import S3Store

MiB = 1024 * 1024
PART = MIN_PART_SIZE


# ----------------------------------------------------------------- splitting


@pytest.mark.parametrize(
    ("size", "part_size", "expected"),
    [
        (1, PART, [(0, 1)]),
        (PART, PART, [(0, PART)]),
        (PART + 1, PART, [(0, PART), (PART, 1)]),
        (3 * PART, MiB, [(0, PART), (PART, PART), (2 * PART, PART)]),  # at least 5 MiB
        (20 * MiB, 8 * MiB, [(0, 8 * MiB), (8 * MiB, 8 * MiB), (16 * MiB, 4 * MiB)]),
    ],
)
def test_split_parts(size: int, part_size: int, expected: list[tuple[int, int]]) -> None:
    assert split_parts(size, part_size) == expected


@pytest.mark.parametrize("size", [8 * MiB * MAX_PARTS + 1, 5 * 1024**4, 49 * 1024**3 + 7])
def test_huge_files_never_need_more_than_ten_thousand_parts(size: int) -> None:
    parts = split_parts(size, 8 * MiB)
    assert len(parts) <= MAX_PARTS
    assert parts[0][0] == 0
    assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert parts[-1][0] + parts[-1][1] == size
    assert {length for _, length in parts[:-1]} == {parts[0][1]}  # equal, but the last
    assert parts[0][1] % MiB == 0
    assert split_parts(0, 8 * MiB) == []


# ----------------------------------------------------------------- one shared limit


async def test_borrowing_takes_only_free_slots_and_never_waits_for_others() -> None:
    shared = SharedLimit(4)
    running = peak = 0

    async def part(_: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.005)
        running -= 1

    async def item(_: int) -> None:  # an item holding one slot, with six parts
        await for_each_borrowing(range(6), part, shared=shared)

    await for_each(range(10), item, limit=shared)
    assert peak == 4  # items and their parts together: never more than the limit
    await for_each(range(1), item, limit=shared)
    assert peak == 4  # one item alone runs its parts in every slot

    async def capped(_: int) -> None:
        await for_each_borrowing(range(6), part, shared=shared, most=3)

    peak = 0
    await for_each(range(1), capped, limit=shared)
    assert peak == 3  # free slots, but no more than ``most``


async def test_borrowing_raises_the_first_failure_and_cancels_the_rest() -> None:
    shared = SharedLimit(3)
    started: list[int] = []

    async def part(index: int) -> None:
        started.append(index)
        if index == 1:
            raise ValueError("part 1")
        await anyio.sleep(10)

    await shared.acquire()  # the slot of the item whose parts these are
    with anyio.fail_after(5), pytest.raises(ValueError, match="part 1"):
        await for_each_borrowing(range(50), part, shared=shared)
    assert len(started) < 50
    assert shared.try_acquire()  # the borrowed slots came back
    assert shared.try_acquire()


# ----------------------------------------------------------------- instrumented stores


class Meter:
    """What is in flight across one transfer: part writes, and their bytes."""

    def __init__(self) -> None:
        self.parts = self.bytes = 0
        self.peak_parts = self.peak_bytes = 0
        self.reads: list[int] = []  # offsets of ranged reads, in order

    async def hold(self, size: int) -> None:
        self.parts += 1
        self.bytes += size
        self.peak_parts = max(self.peak_parts, self.parts)
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        try:
            await anyio.sleep(0.002)
        finally:
            self.parts -= 1
            self.bytes -= size


class MeteredWriter(RawWriter):
    parallel_parts = True

    def __init__(self, raw: RawWriter, meter: Meter, fail_once: set[int]) -> None:
        self._raw = raw
        self._meter = meter
        self._fail_once = fail_once

    async def write(self, data: bytes) -> None:
        await self._meter.hold(len(data))
        await self._raw.write(data)

    async def write_part(self, index: int, offset: int, data: bytes) -> None:
        if index in self._fail_once:
            self._fail_once.discard(index)
            raise StoreConnectionError(f"part {index}: connection reset")
        await self._meter.hold(len(data))
        await self._raw.write_part(index, offset, data)

    async def commit(self) -> None:
        await self._raw.commit()

    async def abort(self) -> None:
        await self._raw.abort()


class MeteredReader(RawReader):
    def __init__(self, raw: RawReader, meter: Meter) -> None:
        self._raw = raw
        self._meter = meter
        self.size = raw.size

    async def read_at(self, offset: int, n: int) -> bytes:
        return await self._raw.read_at(offset, n)

    async def read_range(self, offset: int, n: int) -> bytes:
        self._meter.reads.append(offset)
        return await self._raw.read_range(offset, n)


class MeteredStore(MemoryStore):
    def __init__(self, root: str, meter: Meter, fail_once: set[int] | None = None) -> None:
        super().__init__(root)
        self.meter = meter
        self.fail_once = fail_once if fail_once is not None else set()

    async def _open_reader(self, key: str) -> RawReader:
        return MeteredReader(await super()._open_reader(key), self.meter)

    async def _open_writer(self, key: str, *, exclusive: bool) -> RawWriter:
        raw = await super()._open_writer(key, exclusive=exclusive)
        return MeteredWriter(raw, self.meter, self.fail_once)


def big_files(count: int, size: int, seed: int = 5) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"big-{i}.bin": rng.randbytes(size + i) for i in range(count)}


async def test_parts_and_files_share_one_limit_and_bound_the_bytes_in_flight(
    memory_root: str,
) -> None:
    meter = Meter()
    files = big_files(4, 4 * PART)  # 5 parts each (the last one of a few bytes)
    files.update({f"small/{i}.bin": bytes([i]) * 1000 for i in range(20)})
    async with MemoryStore(memory_root) as src, MeteredStore(f"{memory_root}-dst", meter) as dst:
        for name, data in files.items():
            await src.write_bytes(name, data)
        report = await artifactio.copy(
            (src, "."), (dst, "."), recursive=True, concurrency=3, part_size=PART
        )
        assert report.ok
        assert report.transferred == len(files)
        for name, data in files.items():
            assert await dst.read_bytes(name) == data
    assert meter.peak_parts == 3  # parallel parts, and never more than the limit
    assert meter.peak_bytes <= 3 * PART


async def test_one_large_file_alone_uses_every_slot(memory_root: str) -> None:
    meter = Meter()
    files = big_files(1, 6 * PART)
    async with MemoryStore(memory_root) as src, MeteredStore(f"{memory_root}-dst", meter) as dst:
        await src.write_bytes("big-0.bin", files["big-0.bin"])
        report = await artifactio.copy(
            (src, "big-0.bin"), (dst, "out.bin"), concurrency=5, part_size=PART
        )
        assert report.ok
        assert await dst.read_bytes("out.bin") == files["big-0.bin"]
    assert meter.peak_parts == 5


async def test_one_file_moves_at_most_parts_in_flight_at_once(memory_root: str) -> None:
    meter = Meter()
    files = big_files(1, (PARTS_IN_FLIGHT + 4) * PART)
    async with MemoryStore(memory_root) as src, MeteredStore(f"{memory_root}-dst", meter) as dst:
        await src.write_bytes("big-0.bin", files["big-0.bin"])
        report = await artifactio.copy(
            (src, "big-0.bin"), (dst, "out.bin"), concurrency=64, part_size=PART
        )
        assert report.ok
        assert await dst.read_bytes("out.bin") == files["big-0.bin"]
    assert meter.peak_parts == PARTS_IN_FLIGHT


async def test_a_part_that_fails_transiently_is_retried_alone(memory_root: str) -> None:
    meter = Meter()
    data = random.Random(9).randbytes(3 * PART + 11)
    async with (
        MeteredStore(memory_root, meter) as src,
        MeteredStore(f"{memory_root}-dst", Meter(), fail_once={1}) as dst,
    ):
        await src.write_bytes("big.bin", data)
        report = await artifactio.copy(
            (src, "big.bin"), (dst, "big.bin"), concurrency=2, part_size=PART
        )
        assert report.ok
        assert await dst.read_bytes("big.bin") == data
    # Part 1 was read twice (its write failed once); no other part was read again.
    assert sorted(meter.reads) == [0, PART, PART, 2 * PART, 3 * PART]


class UnreadableTail(MemoryStore):
    """A source whose large files fail to read from their third part on (for good)."""

    async def _open_reader(self, key: str) -> RawReader:
        return _Unreadable(await super()._open_reader(key))


class _Unreadable(RawReader):
    def __init__(self, raw: RawReader) -> None:
        self._raw = raw
        self.size = raw.size

    async def read_at(self, offset: int, n: int) -> bytes:
        return await self._raw.read_at(offset, n)

    async def read_range(self, offset: int, n: int) -> bytes:
        if offset >= 2 * PART:
            raise PermissionError(errno.EACCES, "read: permission denied")
        return await self._raw.read_range(offset, n)


async def test_a_part_that_fails_for_good_fails_its_file_and_leaves_nothing(
    memory_root: str, tmp_path: Path
) -> None:
    data = random.Random(2).randbytes(4 * PART)
    async with UnreadableTail(memory_root) as src, LocalStore(str(tmp_path)) as dst:
        await src.write_bytes("big.bin", data)
        await src.write_bytes("ok.bin", b"fine")
        report = await artifactio.copy((src, "."), (dst, "out"), recursive=True)
        assert (report.transferred, report.failed) == (1, 1)
        assert "PermissionError" in report.failures[0]["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.bin"]  # no temp file


async def test_large_files_between_local_disks_go_in_parts(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(2 * PART + 123)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(data)
    report = await artifactio.copy(str(tmp_path / "src"), str(tmp_path / "dst"), recursive=True)
    assert report.ok
    assert (tmp_path / "dst" / "big.bin").read_bytes() == data
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["big.bin"]


# ----------------------------------------------------------------- S3


@pytest.mark.s3
async def test_large_files_up_to_s3_and_back_in_parallel_parts(
    s3_store: S3Store, raw_s3: Any, tmp_path: Path
) -> None:
    data = random.Random(8).randbytes(3 * PART + 1001)
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "model.bin").write_bytes(data)
    report = await artifactio.copy(
        str(tmp_path / "up"), (s3_store, "models"), recursive=True, part_size=PART
    )
    assert report.ok
    st = await s3_store.stat("models/model.bin")
    assert st.size == len(data)
    assert st.etag is not None
    assert st.etag.endswith("-4")  # four parts
    assert pending_uploads(raw_s3, s3_store.root) == []
    report = await artifactio.copy((s3_store, "models"), str(tmp_path / "down"), recursive=True)
    assert report.ok
    assert (tmp_path / "down" / "model.bin").read_bytes() == data


@pytest.mark.s3
async def test_a_large_upload_that_fails_leaves_no_object_and_no_pending_upload(
    s3_store: S3Store, raw_s3: Any, memory_root: str
) -> None:
    async with UnreadableTail(memory_root) as src:
        await src.write_bytes("big.bin", random.Random(1).randbytes(4 * PART))
        report = await artifactio.copy((src, "big.bin"), (s3_store, "big.bin"), concurrency=4)
    assert report.failed == 1
    assert not await s3_store.exists("big.bin")
    assert pending_uploads(raw_s3, s3_store.root) == []
