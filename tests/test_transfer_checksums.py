"""Whole-file checksums kept with what a transfer uploads in parts (S3: the MD5 in the metadata).

S3 takes an object's metadata only when its upload starts, so a writer told the
file's MD5 up front (``_open_writer_with_checksum``) has it stored with its
multipart upload, and publishes only bytes that have it: told each part's
CRC-32 too, every part must have its own; told the MD5 alone, the writer hashes
what it sends and completes only if the two agree. Bulk transfers declare it
(the source's own MD5 for the version they read, or one computed from a local
or in-memory source with the parts' CRC-32s), so ``sync(compare="checksum")``
later compares without reading the object; test_transfer_faults.py counts the
requests of that.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import zlib
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import artifactio
from _s3_fixtures import PART, keys_below, pending_uploads
from _server_fixtures import BUCKET
from _transfer_fixtures import transfer_local  # noqa: F401 - the "local" fixture
from artifactio import IntegrityError, RawReader, RawWriter
from artifactio.backends.memory import MemoryStore
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

    from artifactio.backends.local import LocalStore
    from artifactio.embedded import SeaweedFS

BIG = 2 * PART + 17
"""Three parts of the store's part size."""


def _data(seed: int = 1, size: int = BIG) -> bytes:
    return random.Random(seed).randbytes(size)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _metadata(raw_s3: Any, store: S3Store, key: str) -> dict[str, str]:
    answer = raw_s3.head_object(Bucket=BUCKET, Key=f"{store._obj(key)}")
    return dict(answer.get("Metadata", {}))


async def _write(store: S3Store, key: str, data: bytes, checksum: str, how: str) -> None:
    """Write ``data`` through a writer told ``checksum``: in order, or in parts (any order)."""
    writer = await store._open_writer_with_checksum(key, exclusive=False, checksum=checksum)
    try:
        if how == "in order":
            for offset in range(0, len(data), 3 * 1024 * 1024):
                await writer.write(data[offset : offset + 3 * 1024 * 1024])
        else:
            assert writer.parallel_parts
            async with anyio.create_task_group() as tg:  # all at once, the last first
                for index, offset in reversed(list(enumerate(range(0, len(data), PART)))):
                    tg.start_soon(writer.write_part, index, offset, data[offset : offset + PART])
                    await anyio.sleep(0)
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


def _crcs(data: bytes) -> list[int]:
    return [zlib.crc32(data[offset : offset + PART]) for offset in range(0, len(data), PART)]


@contextlib.asynccontextmanager
async def _declared(store: S3Store, data: bytes, *, crcs: bool = True) -> AsyncIterator[RawWriter]:
    """A writer of ``big.bin`` told ``data``'s MD5 (and its parts' CRC-32s); aborted at the end
    (nothing to undo after a commit)."""
    writer = await store._open_writer_with_checksum(
        "big.bin",
        exclusive=False,
        checksum=f"md5:{_md5(data)}",
        part_crcs=_crcs(data) if crcs else None,
    )
    try:
        yield writer
    finally:
        await writer.abort()


# ----------------------------------------------------------------- the writer


@pytest.mark.s3
@pytest.mark.parametrize("how", ["in order", "in parts"])
async def test_a_multipart_upload_keeps_the_declared_md5(
    s3_store: S3Store, raw_s3: Any, how: str
) -> None:
    data = _data()
    await _write(s3_store, "big.bin", data, f"md5:{_md5(data)}", how)
    assert await s3_store.read_bytes("big.bin") == data
    assert _metadata(raw_s3, s3_store, "big.bin")["artifactio-md5"] == _md5(data)
    assert await s3_store._checksum("big.bin") == f"md5:{_md5(data)}"
    assert raw_s3.head_object(Bucket=BUCKET, Key=s3_store._obj("big.bin"))["ETag"].endswith('-3"')


@pytest.mark.s3
@pytest.mark.parametrize(
    ("how", "size"), [("in order", BIG), ("in parts", BIG), ("in order", 1000)]
)
async def test_a_writer_told_a_wrong_md5_publishes_nothing(
    s3_store: S3Store, raw_s3: Any, how: str, size: int
) -> None:
    data = _data(size=size)  # 1000 bytes: one PutObject
    wrong = f"md5:{_md5(data + b'!')}"
    with pytest.raises(IntegrityError, match="declared"):
        await _write(s3_store, "big.bin", data, wrong, how)
    assert keys_below(raw_s3, s3_store.root) == []
    assert pending_uploads(raw_s3, s3_store.root) == []


@pytest.mark.s3
async def test_a_part_sent_again_must_bring_the_same_bytes(s3_store: S3Store, raw_s3: Any) -> None:
    data = _data()
    async with _declared(s3_store, data, crcs=False) as writer:
        await writer.write_part(0, 0, data[:PART])
        await writer.write_part(0, 0, data[:PART])  # a retry with the same bytes: fine
        with pytest.raises(IntegrityError, match="other bytes"):
            await writer.write_part(0, 0, b"x" * PART)
    assert pending_uploads(raw_s3, s3_store.root) == []


@pytest.mark.s3
async def test_parts_with_their_declared_crcs_go_in_any_order_from_one_task(
    s3_store: S3Store, raw_s3: Any
) -> None:
    # Nothing is hashed in order: one task may give the parts last first.
    data = _data()
    async with _declared(s3_store, data) as writer:
        for index, offset in reversed(list(enumerate(range(0, len(data), PART)))):
            await writer.write_part(index, offset, data[offset : offset + PART])
        await writer.commit()
    assert await s3_store.read_bytes("big.bin") == data
    assert await s3_store._checksum("big.bin") == f"md5:{_md5(data)}"


@pytest.mark.s3
async def test_a_part_without_its_declared_crc_publishes_nothing(
    s3_store: S3Store, raw_s3: Any
) -> None:
    data = _data()
    async with _declared(s3_store, data) as writer:
        await writer.write_part(0, 0, data[:PART])
        changed = data[PART : 2 * PART - 1] + b"!"  # the same size, one byte other
        with pytest.raises(IntegrityError, match="CRC-32"):
            await writer.write_part(1, PART, changed)
    assert keys_below(raw_s3, s3_store.root) == []
    assert pending_uploads(raw_s3, s3_store.root) == []


@pytest.mark.s3
async def test_an_upload_missing_a_declared_part_is_not_completed(
    s3_store: S3Store, raw_s3: Any
) -> None:
    data = _data()
    async with _declared(s3_store, data) as writer:
        await writer.write_part(0, 0, data[:PART])
        await writer.write_part(2, 2 * PART, data[2 * PART :])
        with pytest.raises(IntegrityError, match="declared"):
            await writer.commit()
    assert keys_below(raw_s3, s3_store.root) == []
    assert pending_uploads(raw_s3, s3_store.root) == []


@pytest.mark.s3
async def test_a_malformed_md5_is_refused(s3_store: S3Store) -> None:
    with pytest.raises(ValueError, match="MD5"):
        await s3_store._open_writer_with_checksum("a.bin", exclusive=False, checksum="md5:xyz")


@pytest.mark.s3
async def test_open_wb_writes_in_parts_without_a_checksum(s3_store: S3Store, raw_s3: Any) -> None:
    data = _data()
    async with s3_store.open("big.bin", "wb") as f:
        await f.write(data)
    assert await s3_store.read_bytes("big.bin") == data
    assert "artifactio-md5" not in _metadata(raw_s3, s3_store, "big.bin")
    assert (await s3_store.stat("big.bin")).checksum is None


async def test_stores_that_keep_no_checksum_ignore_it(local: LocalStore) -> None:
    writer = await local._open_writer_with_checksum("a.bin", exclusive=False, checksum="md5:00")
    await writer.write(b"abc")
    await writer.commit()
    assert await local.read_bytes("a.bin") == b"abc"


# ----------------------------------------------------------------- bulk transfers


class _ChangingReader(RawReader):
    """Reads one file; the parallel part reads (``read_range``) see other bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    async def read_at(self, offset: int, n: int) -> bytes:
        return self._data[offset : offset + n]

    async def read_range(self, offset: int, n: int) -> bytes:
        return b"~" * min(n, self.size - offset)


class _ChangingStore(MemoryStore):
    """A memory store whose files change between a sequential read and the part reads."""

    async def _open_reader(self, key: str) -> RawReader:
        reader = await super()._open_reader(key)
        return _ChangingReader(await reader.read_at(0, reader.size))


@pytest.mark.s3
async def test_a_source_that_changed_after_its_md5_was_computed_is_not_published(
    s3_store: S3Store, raw_s3: Any, memory_root: str
) -> None:
    async with _ChangingStore(memory_root) as source:
        await source.write_bytes("big.bin", _data())
        report = await artifactio.copy(
            (source, "big.bin"), (s3_store, "big.bin"), part_size=PART, retries=1
        )
    assert report.failed == 1
    assert "IntegrityError" in report.failures[0]["error"]
    assert keys_below(raw_s3, s3_store.root) == []
    assert pending_uploads(raw_s3, s3_store.root) == []


class _ChangingSourceS3(S3Store):
    """Rewrites a local file (same size, other bytes) once, when its writer opens.

    That is after the transfer computed the file's MD5 and part CRC-32s, before
    any part goes up.
    """

    source: Path | None = None

    async def _open_writer_with_checksum(
        self,
        key: str,
        *,
        exclusive: bool,
        checksum: str,
        part_crcs: Sequence[int] | None = None,
        pinned: bool = False,
    ) -> RawWriter:
        if self.source is not None:
            self.source.write_bytes(_data(seed=2))
            self.source = None
        return await super()._open_writer_with_checksum(
            key, exclusive=exclusive, checksum=checksum, part_crcs=part_crcs, pinned=pinned
        )


@pytest.mark.s3
async def test_a_file_changed_after_its_md5_was_computed_is_not_published(
    s3_store: S3Store, raw_s3: Any, seaweedfs: SeaweedFS, local: LocalStore, tmp_path: Path
) -> None:
    await local.write_bytes("big.bin", _data())
    async with _ChangingSourceS3(s3_store.root, part_size=PART, **seaweedfs.store_options()) as s3:
        s3.source = tmp_path / "local" / "big.bin"
        assert s3.source.read_bytes() == _data()  # the local store's file
        args = ((local, "big.bin"), (s3, "big.bin"))
        report = await artifactio.copy(*args, part_size=PART, retries=0)
        assert report.failed == 1
        assert "IntegrityError" in report.failures[0]["error"]
        assert keys_below(raw_s3, s3_store.root) == []
        assert pending_uploads(raw_s3, s3_store.root) == []
        # Tried again, the file is what it is now, and so is its MD5.
        assert (await artifactio.copy(*args, part_size=PART)).ok
    assert await s3_store.read_bytes("big.bin") == _data(seed=2)
    assert _metadata(raw_s3, s3_store, "big.bin")["artifactio-md5"] == _md5(_data(seed=2))


@pytest.mark.s3
async def test_a_copy_between_s3_stores_keeps_the_md5_the_source_reports(
    s3_store: S3Store, raw_s3: Any, seaweedfs: SeaweedFS, local: LocalStore
) -> None:
    data = _data()
    await local.write_bytes("big.bin", data)
    report = await artifactio.copy((local, "big.bin"), (s3_store, "a/big.bin"), part_size=PART)
    assert report.ok
    async with S3Store(s3_store.root, part_size=PART, **seaweedfs.store_options()) as other:
        # Two store objects: the bytes stream through this process (no CopyObject).
        report = await artifactio.copy((s3_store, "a/big.bin"), (other, "b/big.bin"))
        assert report.ok
        assert await other.read_bytes("b/big.bin") == data
    assert _metadata(raw_s3, s3_store, "b/big.bin")["artifactio-md5"] == _md5(data)
