"""Carrying out one action: move a file, compare two by checksum, delete one entry.

Moving a file:

- *Server-side*, when both ends are the same store object: ``store.copyfile``
  (S3 ``CopyObject``, GCS ``rewrite``, a local or in-memory copy).
- Otherwise *streamed*: the source is read ``part_size`` bytes at a time and
  written to the destination through the same writer ``store.open(..., "wb")``
  gives, opened without ``open``'s look at the path (the walk's listing of the
  destination already showed it is not a directory; see
  :meth:`._endpoints.Endpoint.open_writer`). That write is all or nothing: a
  failure or a cancellation leaves the old destination file (or none), no
  temporary file and no pending upload. ``copy(overwrite=False)`` writes with
  ``"xb"``, so a file that appeared meanwhile is not replaced (it counts as
  skipped).

Every moved file is then verified: the destination's ``stat`` must show the
size that was read from the source, and its checksum, where the destination
reports one, must match the checksum of the bytes read, computed while they
streamed by (CRC-32C, which GCS reports; see
:func:`._checksums.streaming_algorithms`). After a server-side copy the two
sides' reported checksums are compared when they are comparable. A mismatch
raises :class:`~artifactio.IntegrityError` (retried like any transient error),
and the destination file that failed the check is removed, so a later ``sync``
cannot take it for up to date.
"""

from __future__ import annotations

import contextlib
import errno
from typing import TYPE_CHECKING

from .._concurrency import shielded
from .._exceptions import IntegrityError
from ._checksums import Digest, algorithm, checksums_match, computable, streaming_algorithms
from ._progress import ItemProgress

if TYPE_CHECKING:
    from .._store import AsyncArtifactStore
    from ._endpoints import Endpoint
    from ._plan import Action, TransferPlan
    from ._progress import Tally
    from ._retry import Retrying

__all__ = ["ItemRunner", "StopTransfer"]


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
    """

    def __init__(
        self, plan: TransferPlan, src: Endpoint, dst: Endpoint, tally: Tally, retrying: Retrying
    ) -> None:
        self.plan = plan
        self.src = src
        self.dst = dst
        self.tally = tally
        self.retrying = retrying
        self.server_side = src.store is dst.store
        self._algorithms = streaming_algorithms()
        self._exclusive = plan.mode == "copy" and not plan.overwrite

    # ------------------------------------------------------------ entry points

    async def run(self, action: Action) -> None:
        """Carry out a ``transfer`` or ``check`` action; record how it ended.

        Raises:
            StopTransfer: It failed and the plan is ``fail_fast``.
        """
        source = self.src.full(action.path)
        self.tally.start(source)
        item = ItemProgress(self.tally, action.size)
        try:
            if action.kind == "check" and await self.retrying.call(
                lambda: self._same_content(action)
            ):
                item.done()
                self.tally.skipped_file()
                return
            if self.plan.dry_run:
                item.done()
                self.tally.transferred_file(action.size)
                return
            moved = await self.retrying.call(lambda: self._transfer(action, item))
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
        if not self.plan.dry_run:
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

    async def _transfer(self, action: Action, item: ItemProgress) -> int | None:
        """One attempt: move the file; its size, or ``None`` when it appeared meanwhile."""
        item.restart()
        source, target = self.src.full(action.path), self.dst.full(action.path)
        try:
            if self.server_side:
                await self.src.store.copyfile(source, target, overwrite=not self._exclusive)
                size = await self._verify_copy(source, target)
                item.advance(size)
                return size
            return await self._stream(action.path, item)
        except FileExistsError:
            if self._exclusive:
                return None
            raise

    async def _stream(self, rel: str, item: ItemProgress) -> int:
        digests = [Digest(name) for name in self._algorithms]
        part = self.plan.part_size
        moved = 0
        # The walk listed the destination: rel is no directory there (else it was a
        # conflict), so the writer opens without looking at it again.
        async with (
            self.src.store.open(self.src.full(rel), "rb") as reader,
            await self.dst.open_writer(rel, exclusive=self._exclusive) as writer,
        ):
            while True:
                chunk: bytes = await reader.read(part)
                if not chunk:
                    break
                for digest in digests:
                    digest.update(chunk)
                await writer.write(chunk)
                moved += len(chunk)
                item.advance(len(chunk))
        await self._verify(self.dst.full(rel), moved, digests)
        return moved

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
        """``compare="checksum"``: whether both files hold the same bytes."""
        source, target = self.src.full(action.path), self.dst.full(action.path)
        src_st = await self.src.store.stat(source)
        dst_st = await self.dst.store.stat(target)
        if src_st.size != dst_st.size:
            return False
        match = checksums_match(src_st.checksum, dst_st.checksum)
        if match is not None:
            return match
        name = computable(src_st.checksum, dst_st.checksum)
        a = src_st.checksum if algorithm(src_st.checksum) == name else None
        b = dst_st.checksum if algorithm(dst_st.checksum) == name else None
        a = a or await self._compute(self.src.store, source, name)
        b = b or await self._compute(self.dst.store, target, name)
        return checksums_match(a, b) is True

    async def _compute(self, store: AsyncArtifactStore, path: str, name: str) -> str:
        digest = Digest(name)
        async with store.open(path, "rb") as f:
            while chunk := await f.read(self.plan.part_size):
                digest.update(chunk)
        return digest.checksum()
