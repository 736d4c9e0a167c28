"""Writing: one upload for a small file, an upload in parts for a large one.

Writes buffer up to ``part_size``: a small file is one upload, a larger one a
multipart (S3) or resumable (GCS) upload whose parts go up while the caller
keeps writing. Closing completes it; an exception or a cancellation aborts it,
leaving neither an object nor a pending upload. A writer dropped without being
closed aborts its upload too (on its loop, with a ``ResourceWarning``).

A writer told the file's MD5 up front (``StorePrimitives._open_writer_with_checksum``)
has it stored with a multipart upload (the service takes metadata only when an
upload starts) and makes sure it is the MD5 of what it publishes:

- told each part's CRC-32 too (a bulk transfer computes them with the MD5,
  before the upload), it leaves the check to the upload (:class:`Declared`):
  each part must have its declared CRC-32 (on S3 the CRC-32 that goes with the
  part anyway, for the service to check) or its write raises, and the upload
  completes only with the declared parts. Parts go in any order and nothing
  is hashed twice;
- told that the bytes come from a version pinned while it is read, it checks
  nothing;
- told the MD5 alone, it computes the MD5 of what it is given as it goes, in a
  worker thread: parts written in any order are hashed in the order of their
  numbers, each as soon as those before it were (its call waits for them,
  holding its bytes: never more than the callers hold), and a part sent again
  (a retry) must bring the bytes hashed the first time (their CRC-32 is kept).
  Committing compares the two before completing the upload, and on a mismatch
  aborts the upload.

A mismatch raises :class:`~artifactio.IntegrityError`; the caller aborts the
writer, as after any failure: nothing is published. A file small enough for one
request is checked against its whole MD5 (the service computes the MD5 it keeps
of such a file itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import re
import warnings
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._blocking import run_blocking
from ..._concurrency import shielded
from ..._exceptions import IntegrityError
from ..._files import RawWriter

if TYPE_CHECKING:
    from ._client import Upload
    from ._store import ObjectStore

__all__ = ["Declared", "ObjectWriter", "declared_md5"]

logger = logging.getLogger("artifactio.objectstore")

_PARTS_PER_STEP = 1000
"""Every this many parts, the writer's part size grows by ``part_size`` (S3 allows 10,000 parts)."""

_DROPPED: set[asyncio.Task[None]] = set()
"""Aborts of uploads whose writer was dropped without being closed (kept until done)."""

_MD5 = re.compile(r"md5:([0-9a-f]{32})")


def declared_md5(checksum: str | None) -> str | None:
    """The hex MD5 of a declared ``"md5:<hex>"`` checksum; ``None`` for none or another algorithm.

    Raises:
        ValueError: An ``md5:`` checksum that is not 32 hex digits.
    """
    if checksum is None or checksum.partition(":")[0].strip().lower() != "md5":
        return None
    found = _MD5.fullmatch(checksum.strip().lower())
    if found is None:
        raise ValueError(f"not an MD5 checksum (md5:<32 hex digits>): {checksum!r}")
    return found.group(1)


@dataclass(frozen=True)
class Declared:
    """What a writer was told of its file up front (see the module docstring).

    Attributes:
        md5: The file's MD5 (hex), kept with a multipart upload.
        part_crcs: The CRC-32 of each part, in order; the upload checks them.
        pinned: The caller vouches for ``md5``: nothing is checked.
    """

    md5: str | None = None
    part_crcs: tuple[int, ...] | None = None
    pinned: bool = False

    @property
    def hashed(self) -> bool:
        """Whether the writer computes the MD5 of what it sends (told the MD5 alone)."""
        return self.md5 is not None and self.part_crcs is None and not self.pinned


def _md5_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _hash_part(md5: Any, data: bytes) -> int:
    """Feed ``data`` to the running MD5; its CRC-32 (to recognise the part if it comes again)."""
    md5.update(data)
    return zlib.crc32(data)


class ObjectWriter(RawWriter):
    """Buffers a file; one upload when small, a multipart upload when large.

    Parts go up in the background (as many at once as the upload allows) while the
    caller keeps writing. Part sizes grow by ``part_size`` every 1,000 parts so
    a file never needs more than S3's 10,000 parts; every part size is a multiple
    of ``part_size``, as GCS's 256 KiB rule needs.

    Where the service takes parts in any order (S3), :meth:`write_part` sends the
    parts a bulk transfer numbers itself, several at once from its own tasks.

    Args:
        store: The store.
        obj: The object's key.
        exclusive: Completing fails if the object exists.
        declared: What the writer was told up front: the file's MD5, which goes
            with the upload (see the module docstring), and how it is checked.
    """

    def __init__(
        self, store: ObjectStore, obj: str, exclusive: bool, declared: Declared | None = None
    ) -> None:
        self._store = store
        self._obj = obj
        self._exclusive = exclusive
        self._declared = declared = declared or Declared()
        self._md5 = declared.md5
        self._hash: Any = hashlib.md5(usedforsecurity=False) if declared.hashed else None
        self._crcs: list[int] = []  # of the parts hashed so far, in order
        self._hashed = asyncio.Event()  # set (and replaced) whenever a part was hashed
        self._buf = bytearray()
        self._upload: Upload | None = None
        self._starting: asyncio.Task[Upload] | None = None
        self._parts = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __del__(self) -> None:
        # Dropped without commit() or abort(): the upload would stay pending on the
        # server (S3 keeps, and bills, its parts). Abort it on its loop, and say so.
        if self._upload is None and self._starting is None:
            return
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(
                    _abort_dropped, self._upload, self._starting, self._in_flight, self._obj
                )
        warnings.warn(
            f"the writer of {self._obj!r} was dropped without being closed; "
            "its upload is aborted and nothing was written",
            ResourceWarning,
            stacklevel=1,
        )

    def _target(self) -> int:
        return self._store.part_size * (1 + self._parts // _PARTS_PER_STEP)

    async def write(self, data: bytes) -> None:
        self._buf += data
        target = self._target()
        # Keep at least one byte back: the last piece goes with complete().
        while len(self._buf) > target:
            part = bytes(self._buf[:target])
            del self._buf[:target]
            await self._send(part)
            target = self._target()

    async def _started(self) -> Upload:
        """The upload, made by the first caller (callers may be several parts at once)."""
        if self._upload is None:
            client = await self._store._client()
            if self._starting is None:
                self._loop = asyncio.get_running_loop()
                self._starting = self._loop.create_task(
                    self._store._start_upload(
                        client, self._obj, exclusive=self._exclusive, declared=self._declared
                    )
                )
            # Shielded: once the server may have made the upload, abort() must learn
            # its id to discard it, whatever cancels this task meanwhile.
            upload = await asyncio.shield(self._starting)
            self._upload = self._upload or upload
        return self._upload

    async def write_part(self, index: int, offset: int, data: bytes) -> None:
        upload = await self._started()
        self._parts = max(self._parts, index + 1)
        if self._hash is None:
            await upload.add_part(index + 1, data)
            return
        # The part goes up while it waits for its turn to be hashed.
        sending = asyncio.get_running_loop().create_task(upload.add_part(index + 1, data))
        try:
            await self._hash_in_turn(index, data)
            await asyncio.shield(sending)
        except BaseException:
            if not sending.done():
                sending.cancel()
                with shielded(), contextlib.suppress(BaseException):
                    await sending
            elif not sending.cancelled():
                sending.exception()  # retrieved: the hash's failure is raised
            raise

    async def _hash_in_turn(self, index: int, data: bytes) -> None:
        """Feed part ``index`` to the running MD5 once every part before it was.

        A part hashed already (sent again after a failure) must bring the same
        bytes: the MD5 holds the first ones.
        """
        while len(self._crcs) < index:
            await self._hashed.wait()
        if index < len(self._crcs):
            if await run_blocking(zlib.crc32, data) != self._crcs[index]:
                raise IntegrityError(
                    errno.EIO,
                    f"write: part {index + 1} came again with other bytes "
                    "(the source changed while it was read)",
                    self._store._full(self._store._store_key(self._obj)),
                )
            return
        with shielded():  # the MD5 and the CRCs stay in step, whatever cancels
            self._crcs.append(await run_blocking(_hash_part, self._hash, data))
        hashed, self._hashed = self._hashed, asyncio.Event()
        hashed.set()

    async def _send(self, part: bytes) -> None:
        upload = await self._started()
        while len(self._in_flight) >= max(1, upload.max_in_flight):
            await self._wait_one()
        if self._hash is not None:
            await self._hash_in_turn(self._parts, part)
        self._parts += 1
        task = asyncio.get_running_loop().create_task(upload.add_part(self._parts, part))
        self._in_flight.add(task)

    async def _wait_one(self) -> None:
        done, _ = await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
        self._in_flight -= done
        failure: BaseException | None = None
        for task in done:  # look at every outcome: none may go unretrieved
            outcome = asyncio.CancelledError() if task.cancelled() else task.exception()
            failure = failure or outcome
        if failure is not None:
            raise failure  # the part's failure

    async def commit(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        client = await self._store._client()
        if self._upload is None:
            if self._md5 is not None:  # the service computes the MD5 it keeps itself
                await self._check_md5(await run_blocking(_md5_of, data))
            await client.put(self._store.bucket, self._obj, data, exclusive=self._exclusive)
        else:
            while self._in_flight:
                await self._wait_one()
            if self._hash is not None:
                if len(self._crcs) == self._parts:  # else a part is missing: complete() refuses
                    await self._hash_in_turn(self._parts, data)
                await self._check_md5(self._hash.hexdigest())
            await self._upload.complete(data)
            self._upload = self._starting = None
        self.verified = client.checks_writes

    async def _check_md5(self, got: str) -> None:
        """Unless ``got`` (the MD5 of the bytes written) is the declared one, abort and raise."""
        if got != self._md5:
            with shielded():
                await self.abort()
            raise IntegrityError(
                errno.EIO,
                f"write: the bytes written have MD5 {got}, not the declared {self._md5}",
                self._store._full(self._store._store_key(self._obj)),
            )

    async def abort(self) -> None:
        self._buf.clear()
        tasks, self._in_flight = self._in_flight, set()
        upload, self._upload = self._upload, None
        starting, self._starting = self._starting, None
        await _abort_upload(upload, starting, tasks, self._obj)


async def _abort_upload(
    upload: Upload | None,
    starting: asyncio.Task[Upload] | None,
    tasks: set[asyncio.Task[None]],
    obj: str,
) -> None:
    """Discard an upload: end its parts in flight, then abort it."""
    if tasks:
        # A part whose body is still on its way ends at once (the server cannot
        # act on part of a body); one the server has whole first gets its answer,
        # bounded (send_bounded), so that none lands after the abort and brings
        # the upload back.
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    if upload is None and starting is not None:
        try:
            upload = await starting
        except BaseException:  # the upload was never made
            upload = None
    if upload is not None:
        try:
            await upload.abort()
        except Exception:
            logger.warning("could not abort the upload of %r", obj, exc_info=True)


def _abort_dropped(
    upload: Upload | None,
    starting: asyncio.Task[Upload] | None,
    tasks: set[asyncio.Task[None]],
    obj: str,
) -> None:
    """Start aborting the upload of a writer that was garbage-collected unclosed."""
    task = asyncio.get_running_loop().create_task(_abort_upload(upload, starting, tasks, obj))
    _DROPPED.add(task)
    task.add_done_callback(_DROPPED.discard)
