"""Carrying out one action: move a file, compare two by checksum, delete one entry.

Moving a file:

- *Server-side*, when both ends are the same store object: ``store.copyfile``
  (S3 ``CopyObject``, GCS ``rewrite``, a local or in-memory copy).
- Between two local stores, by the kernel (``StorePrimitives._copy_from``:
  ``sendfile`` into a temporary file, renamed into place); small files go
  many at a time (``_copy_batch_from``, see :mod:`._batches`).
- Otherwise a small file (up to :data:`WHOLE_FILE` and ``part_size``) is read
  whole (one read; from a local disk, many files are read in one call ahead of
  time, see :mod:`._batches`) and written in one step
  (``StorePrimitives._write_whole``: one ``PutObject``; onto a local disk,
  the files ready together in one worker-thread call, see :mod:`._writes`),
  without ``open``'s look at the path.
- A larger one is *streamed*, through the same writer ``store.open(..., "wb")``
  gives, opened without ``open``'s look at the path (the walk's listing of the
  destination already showed it is not a directory; see
  :meth:`._endpoints.Endpoint.open_writer`). A file up to ``part_size`` (or
  any file, where the destination takes its parts in order only: GCS) is read
  and written ``part_size`` bytes at a time. A larger one goes in parts
  (:func:`._plan.split_parts`), read with parallel ranged reads and written
  at their offsets (S3 ``UploadPart``, ``pwrite`` into the local temporary
  file), as many at once as the transfer has free slots (at most
  :data:`._plan.PARTS_IN_FLIGHT` for one file): parts and whole
  files share one ``concurrency`` limit (:func:`~artifactio._concurrency.for_each_borrowing`),
  and a part that fails transiently is retried alone. Either way the write is
  all or nothing: a failure or a cancellation leaves the old destination file
  (or none), no temporary file and no pending upload. ``copy(overwrite=False)``
  writes with ``"xb"``, so a file that appeared meanwhile is not replaced (it
  counts as skipped).

Every moved file is verified. S3 and GCS check each write themselves, against a
checksum of the bytes sent (``Content-MD5`` on a single ``PutObject``, CRC-32 on
every part of a multipart upload, CRC-32C on GCS uploads), and refuse a body
that arrived different (:attr:`~artifactio.RawWriter.verified`): a small
object costs one request to move. A local store checks the written file's size
before publishing it (verified too). Elsewhere the destination's ``stat`` must
show the size that was read from the source, and its checksum, where it
reports one, must match the checksum of the bytes read, computed while they
streamed by (see :func:`._checksums.streaming_algorithms`). After a server-side copy the two
sides' reported checksums are compared when they are comparable. A mismatch
raises :class:`~artifactio.IntegrityError` (retried like any transient error),
and the destination file that failed the check is removed, so a later ``sync``
cannot take it for up to date.

A file that goes up in parts to a store that keeps a whole-file checksum with
it (S3: the MD5, in the object's metadata, which a multipart upload takes only
when it starts) gets that checksum declared up front
(``StorePrimitives._open_writer_with_checksum``), so that a later
``sync(compare="checksum")`` compares it without reading the object back: the
source's own checksum when it reports one of that algorithm for the very
version its reads are pinned to (an S3 object written so: it cannot change
while it is read, so nothing needs checking), else, from a local or in-memory
source, one computed before the upload starts (the file read a part at a time,
hashed in a worker thread), together with the CRC-32 of each part at the
boundaries the parts are then sent with. The upload refuses a part whose bytes
lack their CRC-32 (``IntegrityError``, retried: the source changed meanwhile),
so the file is not hashed twice. (A file no larger than one plan part, which
goes in order and is cut by the writer, is hashed again by the writer
instead.) From another service's object without such a checksum, none is
declared: reading the object twice would cost more than it saves.

A dry run moves and deletes nothing; it logs each action it would take at INFO
on the ``artifactio.transfer`` logger (``would copy SRC -> DST (reason)``,
``would delete DST (not in the source)``), which is what ``artifactio cp/sync --dry-run``
prints.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._blocking import run_blocking
from .._concurrency import for_each_borrowing, shielded
from .._exceptions import IntegrityError
from ._checksums import (
    Digest,
    algorithm,
    available,
    checksums_match,
    computable,
    decode,
    streaming_algorithms,
)
from ._plan import MIN_PART_SIZE, PARTS_IN_FLIGHT, split_parts
from ._progress import ItemProgress
from ._writes import BatchedWrites

if TYPE_CHECKING:
    from .._concurrency import SharedLimit
    from .._files import RawReader, RawWriter
    from ._endpoints import Endpoint
    from ._plan import Action, TransferPlan
    from ._progress import Tally
    from ._retry import Retrying

__all__ = ["ItemRunner", "StopTransfer"]

logger = logging.getLogger("artifactio.transfer")


def _changed(offset: int, got: int, wanted: int) -> OSError:
    """The source gave fewer bytes than its size promised (ESTALE: worth another try)."""
    return OSError(
        errno.ESTALE,
        f"the source changed while it was read: {got} bytes at byte {offset}, not {wanted}",
    )


WHOLE_FILE = 256 * 1024
"""A file up to this size (and ``part_size``) is read whole, then written in one step
(``StorePrimitives._write_whole``: one worker-thread call for a local destination);
larger ones stream through a writer."""


@dataclass(frozen=True)
class _Declared:
    """The checksum declared to a writer (``StorePrimitives._open_writer_with_checksum``)."""

    checksum: str | None  # None: nothing declared
    part_crcs: list[int] | None = None  # of the parts of split_parts, in order
    pinned: bool = False


_UNDECLARED = _Declared(None)


def _hash_block(digest: Digest, chunk: bytes) -> int:
    """Feed ``chunk`` to ``digest``; its CRC-32."""
    digest.update(chunk)
    return zlib.crc32(chunk)


async def _digest_and_crcs(
    reader: RawReader, name: str, parts: list[tuple[int, int]]
) -> tuple[str, list[int]]:
    """The checksum (algorithm ``name``) of what ``reader`` reads, and each part's CRC-32.

    The parts (``(offset, length)``, in order, covering the file) are read one
    after the other and hashed in a worker thread, one call each.
    """
    digest = Digest(name)
    crcs: list[int] = []
    for offset, length in parts:
        chunk = await reader.read_at(offset, length)
        if len(chunk) != length:
            raise _changed(offset, len(chunk), length)
        crcs.append(await run_blocking(_hash_block, digest, chunk))
    return digest.checksum(), crcs


async def _digest_of(reader: RawReader, name: str, block: int) -> str:
    """The checksum (algorithm ``name``) of the file ``reader`` reads, a block at a time.

    The blocks are read in order and hashed in a worker thread, so the event loop
    goes on meanwhile and no more than one block is held.
    """
    digest = Digest(name)
    offset, size = 0, reader.size
    while offset < size:
        want = min(block, size - offset)
        chunk = await reader.read_at(offset, want)
        if len(chunk) != want:
            raise _changed(offset, len(chunk), want)
        await run_blocking(digest.update, chunk)
        offset += want
    return digest.checksum()


class StopTransfer(Exception):
    """Raised by an item of a ``fail_fast`` transfer after its failure was recorded."""


class ItemRunner:
    """Runs the ``transfer``, ``check`` and ``delete`` actions of one transfer.

    Args:
        plan: The plan.
        src: The source end.
        dst: The destination end.
        tally: The counts.
        retrying: Retries (one budget for the whole transfer).
        shared: The transfer's concurrency limit, which the parts of large
            files share with the items.
    """

    def __init__(
        self,
        plan: TransferPlan,
        src: Endpoint,
        dst: Endpoint,
        tally: Tally,
        retrying: Retrying,
        shared: SharedLimit,
    ) -> None:
        self.plan = plan
        self.shared = shared
        self.src = src
        self.dst = dst
        self.tally = tally
        self.retrying = retrying
        self.server_side = src.store is dst.store
        self._algorithms = streaming_algorithms()
        self.exclusive = plan.mode == "copy" and not plan.overwrite
        self._copies_directly = True  # until the stores decline once (see _copy_from)
        self._writes: BatchedWrites | None = None  # small files written in batches
        if dst.store._write_batch_limit() > 0 and not plan.dry_run:
            self._writes = BatchedWrites(dst.store, exclusive=self.exclusive)

    # ------------------------------------------------------------ entry points

    async def run(
        self, action: Action, *, failed: Exception | None = None, data: bytes | None = None
    ) -> None:
        """Carry out a ``transfer`` or ``check`` action; record how it ended.

        Args:
            action: The action.
            failed: A ``transfer`` whose first attempt (in a batch) failed with
                this: it gets the retries it has left, if the failure is transient.
            data: A ``transfer`` whose source file was read already (in a batch):
                its bytes, for the first attempt (a retry reads the file again).

        Raises:
            StopTransfer: It failed and the plan is ``fail_fast``.
        """
        source = self.src.full(action.path)
        self.tally.start(source)
        item = ItemProgress(self.tally, action.size)
        try:
            if (
                failed is None
                and action.kind == "check"
                and await self.retrying.call(lambda: self._same_content(action))
            ):
                item.done()
                self.tally.skipped_file()
                return
            if self.plan.dry_run:
                logger.info("would copy %s -> %s (%s)", source, self.dst.full(action.path),
                            action.reason)  # fmt: skip
                item.done()
                self.tally.transferred_file(action.size)
                return
            read = [] if data is None else [data]
            moved = await self.retrying.call(
                lambda: self._transfer(action, item, read.pop() if read else None), failed=failed
            )
        except Exception as exc:
            item.done()
            self.tally.failure(source, exc)
            if self.plan.fail_fast:
                raise StopTransfer from exc
            return
        item.done()
        if moved is None:
            self.tally.skipped_file()  # copy(overwrite=False): it appeared meanwhile
        else:
            self.tally.transferred_file(moved)

    async def delete(self, action: Action) -> None:
        """Carry out a ``delete`` action (a file, or a directory with everything below).

        Raises:
            StopTransfer: It failed and the plan is ``fail_fast``.
        """
        target = self.dst.full(action.path)
        store = self.dst.store
        if self.plan.dry_run:
            logger.info("would delete %s%s (not in the source)", target, "/" * action.is_dir)
        else:
            try:
                if action.is_dir:
                    await self.retrying.call(lambda: store.rmtree(target))
                else:
                    await self.retrying.call(lambda: store.remove(target))
            except FileNotFoundError:
                return  # gone already
            except Exception as exc:
                self.tally.failure(target, exc)
                if self.plan.fail_fast:
                    raise StopTransfer from exc
                return
        self.tally.deleted_entry()

    # ------------------------------------------------------------ moving

    async def _transfer(
        self, action: Action, item: ItemProgress, data: bytes | None = None
    ) -> int | None:
        """One attempt: move the file; its size, or ``None`` when it appeared meanwhile.

        ``data``: the source file's bytes, read already.
        """
        item.restart()
        try:
            if self.server_side:
                source, target = self.src.full(action.path), self.dst.full(action.path)
                await self.src.store.copyfile(source, target, overwrite=not self.exclusive)
                size = await self._verify_copy(source, target)
                item.advance(size)
                return size
            if self._copies_directly:
                copied = await self.dst.copy_from(self.src, action.path, exclusive=self.exclusive)
                if copied is not None:  # two local disks: the kernel copied it
                    item.advance(copied)
                    return copied
                self._copies_directly = False  # these two stores never do: stream from now on
            if data is not None:
                return await self._write_whole(action.path, data, item)
            return await self._stream(action.path, item)
        except FileExistsError:
            if self.exclusive:
                return None
            raise

    async def _stream(self, rel: str, item: ItemProgress) -> int:
        reader = await self.src.open_reader(rel)
        try:
            size = reader.size
            if size > min(WHOLE_FILE, self.plan.part_size):
                return await self._send(rel, reader, item)
            data = await reader.read_range(0, size) if size else b""
        finally:
            with shielded():
                await reader.aclose()
        if len(data) != size:
            raise _changed(0, len(data), size)
        return await self._write_whole(rel, data, item)

    async def _send(self, rel: str, reader: RawReader, item: ItemProgress) -> int:
        """Send a file larger than :data:`WHOLE_FILE` through a writer; its size."""
        # The walk listed the destination: rel is no directory there (else it was
        # a conflict), so the writer opens without looking at it again.
        parts = split_parts(reader.size, self.plan.part_size)
        declared = await self._declared_checksum(rel, reader, parts)
        writer = await self.dst.open_writer(
            rel,
            exclusive=self.exclusive,
            checksum=declared.checksum,
            part_crcs=declared.part_crcs,
            pinned=declared.pinned,
        )
        try:
            digests: list[Digest] = []
            if writer.parallel_parts and reader.size > max(self.plan.part_size, MIN_PART_SIZE):
                moved = await self._send_parts(reader, writer, item, parts)
            else:
                moved, digests = await self._send_in_order(reader, writer, item)
            await writer.commit()
        except BaseException:
            with shielded():
                await writer.abort()
            raise
        if not writer.verified:  # else the service checked the bytes it stored
            await self._verify(self.dst.full(rel), moved, digests)
        return moved

    async def _declared_checksum(
        self, rel: str, reader: RawReader, parts: list[tuple[int, int]]
    ) -> _Declared:
        """The checksum to declare to the writer of ``rel``, where the destination keeps one.

        Only for a file that may go up in parts: a single request has the store
        compute the checksum itself. ``parts``: those the file is sent in, in
        parallel (``write_part``), whose CRC-32s go with a checksum computed
        here (a writer that takes parts in any order is assumed: S3's).
        """
        name = self.dst.store._kept_checksum
        single = min(self.dst.store.part_size, max(self.plan.part_size, MIN_PART_SIZE))
        if name is None or not available(name) or reader.size <= single:
            return _UNDECLARED
        reported = await self.src.pinned_checksum(rel, reader)
        decoded = decode(reported) if reported else None
        if decoded is not None and decoded[0] == name:
            return _Declared(f"{name}:{decoded[1].hex()}", pinned=True)
        if not self.src.store.inline_capable:  # another service: not read twice
            return _UNDECLARED
        if reader.size <= max(self.plan.part_size, MIN_PART_SIZE):
            # Written in order, cut where the writer cuts: it hashes what it sends.
            return _Declared(await _digest_of(reader, name, self.plan.part_size))
        return _Declared(*await _digest_and_crcs(reader, name, parts))

    async def _write_whole(self, rel: str, data: bytes, item: ItemProgress) -> int:
        """Write a file held whole (one step: ``StorePrimitives._write_whole``); its size.

        The checksums the check needs are computed only when the destination
        did not verify the write itself.
        """
        size = len(data)
        if self._writes is not None:
            verified = await self._writes.write(self.dst.store_key(rel, "open"), data)
        else:
            verified = await self.dst.write_whole(rel, data, exclusive=self.exclusive)
        item.advance(size)
        if not verified:
            digests = [Digest(name) for name in self._algorithms]
            for digest in digests:
                digest.update(data)
            await self._verify(self.dst.full(rel), size, digests)
        return size

    async def _send_in_order(
        self, reader: RawReader, writer: RawWriter, item: ItemProgress
    ) -> tuple[int, list[Digest]]:
        """Read and write ``part_size`` bytes at a time; the size and the digests of the bytes."""
        digests = [Digest(name) for name in self._algorithms]
        part, size = self.plan.part_size, reader.size
        moved = 0
        while moved < size:
            want = min(part, size - moved)
            # A file read in one go needs no read-ahead: one ranged read.
            chunk = await (reader.read_range if want == size else reader.read_at)(moved, want)
            if len(chunk) != want:
                raise _changed(moved, len(chunk), want)
            for digest in digests:
                digest.update(chunk)
            await writer.write(chunk)
            moved += len(chunk)
            item.advance(len(chunk))
        return moved, digests

    async def _send_parts(
        self,
        reader: RawReader,
        writer: RawWriter,
        item: ItemProgress,
        parts: list[tuple[int, int]],
    ) -> int:
        """Send a large file in ``parts``, in parallel as far as free slots allow; its size.

        Each part is read (one ranged read) and written (one ``UploadPart``, one
        ``pwrite``...) within its slot, so the bytes in flight stay within about
        ``concurrency * part_size`` for the whole transfer. A part that fails
        transiently is retried alone.
        """

        async def attempt(index: int) -> None:
            offset, length = parts[index]
            data = await reader.read_range(offset, length)
            if len(data) != length:
                raise _changed(offset, len(data), length)
            await writer.write_part(index, offset, data)

        async def one(index: int) -> None:
            await self.retrying.call(lambda: attempt(index))
            item.advance(parts[index][1])

        await for_each_borrowing(range(len(parts)), one, shared=self.shared, most=PARTS_IN_FLIGHT)
        return reader.size

    async def _verify(self, target: str, size: int, digests: list[Digest]) -> None:
        """Check the destination against what was read from the source."""
        st = await self.dst.store.stat(target)
        if st.size != size:
            await self._discard(target)
            raise IntegrityError(
                errno.EIO,
                f"verify: the destination has {st.size} bytes, the source gave {size}",
                target,
            )
        reported = algorithm(st.checksum)
        for digest in digests:
            if digest.name == reported and checksums_match(st.checksum, digest.checksum()) is False:
                await self._discard(target)
                raise IntegrityError(
                    errno.EIO,
                    f"verify: the destination's checksum {st.checksum} differs from "
                    f"the bytes read from the source ({digest.checksum()})",
                    target,
                )

    async def _verify_copy(self, source: str, target: str) -> int:
        """Check a server-side copy: sizes, and checksums where comparable; the size."""
        store = self.src.store
        src_st = await store.stat(source)
        dst_st = await store.stat(target)
        if dst_st.size != src_st.size or checksums_match(src_st.checksum, dst_st.checksum) is False:
            await self._discard(target)
            raise IntegrityError(
                errno.EIO,
                f"verify: the copy ({dst_st.size} bytes, {dst_st.checksum}) differs from "
                f"its source ({src_st.size} bytes, {src_st.checksum})",
                target,
            )
        return dst_st.size

    async def _discard(self, target: str) -> None:
        """Remove a destination file that failed verification (best effort)."""
        with shielded(), contextlib.suppress(Exception):
            await self.dst.store.remove(target)

    # ------------------------------------------------------------ comparing

    async def _same_content(self, action: Action) -> bool:
        """``compare="checksum"``: whether both files (of equal size) hold the same bytes."""
        rel = action.path
        a = await self.src.checksum(rel)
        b = await self.dst.checksum(rel)
        match = checksums_match(a, b)
        if match is not None:
            return match
        name = computable(a, b)
        if algorithm(a) != name:
            a = await self._compute(self.src, rel, name)
        if algorithm(b) != name:
            b = await self._compute(self.dst, rel, name)
        return checksums_match(a, b) is True

    async def _compute(self, end: Endpoint, rel: str, name: str) -> str:
        reader = await end.open_reader(rel)
        try:
            return await _digest_of(reader, name, self.plan.part_size)
        finally:
            with shielded():
                await reader.aclose()
