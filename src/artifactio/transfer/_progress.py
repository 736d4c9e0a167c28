"""Progress: the snapshot a callback receives, and the tally a transfer keeps.

A transfer counts as it goes in one :class:`Tally`. The ``progress`` callback gets
a :class:`TransferProgress`, a small immutable snapshot: files and bytes dealt
with so far, the totals known so far (they grow while the source listing still
streams in; ``listing_done`` says when they are final), and the current item.

The callback runs on the event loop, between transfers: keep it quick (update a
progress bar, hand the snapshot to a queue). It is throttled: it is called at
most every 0.1 s, plus once at the very end (with every count final). Counts
never go down between calls. If the callback raises, it is not called again and
the transfer raises that exception once it is over (its items are not counted
as failed).

``bytes_done`` counts the bytes of planned transfers that were dealt with
(moved, found equal, given up), so it ends equal to ``bytes_total``; a retried
file does not count its bytes twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ._report import TransferReport

__all__ = ["ItemProgress", "ProgressCallback", "Tally", "TransferProgress"]

PROGRESS_INTERVAL = 0.1
"""Seconds between two calls of the progress callback (the final call always happens)."""


@dataclass(frozen=True)
class TransferProgress:
    """A snapshot of a running transfer, handed to the ``progress`` callback.

    Attributes:
        files_done: Files dealt with so far (transferred, skipped or failed).
        files_total: Files found so far in the source (that pass the filters).
        bytes_done: Bytes of the files to transfer that were dealt with so far.
        bytes_total: Bytes of the files found so far that need a transfer (or a
            checksum comparison).
        transferred: Files transferred so far.
        skipped: Files found up to date so far.
        failed: Failures so far.
        listing_done: Whether the source was listed completely (totals are final).
        current: The full source path of the item most recently started, if any.
    """

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    transferred: int = 0
    skipped: int = 0
    failed: int = 0
    listing_done: bool = False
    current: str | None = None

    @property
    def fraction(self) -> float | None:
        """``bytes_done / bytes_total`` (files when no bytes are planned); ``None`` if unknown."""
        if self.bytes_total:
            return min(self.bytes_done / self.bytes_total, 1.0)
        if self.files_total:
            return min(self.files_done / self.files_total, 1.0)
        return None


ProgressCallback = Callable[[TransferProgress], object]
"""What ``progress=`` takes: a function of a :class:`TransferProgress` (its result is ignored)."""


class Tally:
    """The mutable counts of one transfer; makes the snapshots and the report.

    Args:
        callback: The user's progress callback, or ``None``.
        dry_run: Whether the transfer writes nothing (recorded in the report).
        clock: Monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        callback: Callable[[TransferProgress], object] | None,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._clock = clock
        self._last_call: float | None = None
        self.started = clock()
        self.dry_run = dry_run
        self.transferred = 0
        self.skipped = 0
        self.failed = 0
        self.deleted = 0
        self.bytes = 0
        self.failures: list[dict[str, str]] = []
        self.files_total = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.listing_done = False
        self.current: str | None = None
        self.callback_error: Exception | None = None
        """What the callback raised: it is not called again, and the transfer raises it."""

    # ------------------------------------------------------------ counting

    def found(self, size: int | None) -> None:
        """A file entered the plan; ``size`` when it needs a transfer or a comparison."""
        self.files_total += 1
        if size is not None:
            self.bytes_total += size

    def start(self, path: str) -> None:
        """An item (its full source path) is being worked on."""
        self.current = path

    def add_bytes(self, n: int) -> None:
        """``n`` more bytes of planned transfers were dealt with."""
        if n > 0:
            self.bytes_done += n
            self._notify()

    def transferred_file(self, size: int) -> None:
        """A file was transferred (``size`` bytes)."""
        self.transferred += 1
        self.bytes += size
        self._notify()

    def skipped_file(self) -> None:
        """A file was up to date."""
        self.skipped += 1
        self._notify()

    def failure(self, path: str, error: BaseException | str) -> None:
        """An item failed: ``path`` is its full path."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failed += 1
        self.failures.append({"path": path, "error": text})
        self._notify()

    def deleted_entry(self) -> None:
        """A destination file or directory was removed."""
        self.deleted += 1

    def add_report(self, report: TransferReport, planned_bytes: int = 0) -> None:
        """Fold in the report of a piece run elsewhere (a shard on a cluster).

        Args:
            report: The piece's report.
            planned_bytes: The bytes the piece was planned to deal with (its
                progress, which the piece's own report does not give).
        """
        self.transferred += report.transferred
        self.skipped += report.skipped
        self.failed += report.failed
        self.bytes += report.bytes
        self.deleted += report.deleted
        self.failures.extend(report.failures)
        self.add_bytes(planned_bytes)
        self._notify()

    def finish_listing(self) -> None:
        """The source was listed completely: the totals are final."""
        self.listing_done = True

    # ------------------------------------------------------------ output

    def snapshot(self) -> TransferProgress:
        """The counts as they are now."""
        return TransferProgress(
            files_done=self.transferred + self.skipped + self.failed,
            files_total=self.files_total,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            transferred=self.transferred,
            skipped=self.skipped,
            failed=self.failed,
            listing_done=self.listing_done,
            current=self.current,
        )

    def _notify(self, *, force: bool = False) -> None:
        if self._callback is None:
            return
        now = self._clock()
        if not force and self._last_call is not None and now - self._last_call < PROGRESS_INTERVAL:
            return
        self._last_call = now
        try:
            self._callback(self.snapshot())
        except Exception as exc:  # a bug of the caller's, not a failure of an item
            self.callback_error = exc
            self._callback = None

    def final(self) -> None:
        """Call the callback one last time, whatever the throttle says."""
        self._notify(force=True)

    def report(self) -> TransferReport:
        """The report of the transfer so far, timed from this tally's creation."""
        return TransferReport(
            transferred=self.transferred,
            skipped=self.skipped,
            failed=self.failed,
            bytes=self.bytes,
            elapsed=max(self._clock() - self.started, 0.0),
            failures=list(self.failures),
            deleted=self.deleted,
            dry_run=self.dry_run,
        )


class ItemProgress:
    """The bytes one file contributes to ``bytes_done``, counted once across retries.

    Each attempt reports its position with :meth:`advance`; only bytes beyond the
    furthest point an earlier attempt reached are added, so the tally never goes
    down and never counts a byte twice. :meth:`done` adds whatever is left of the
    planned size once the item is dealt with, however it ended.
    """

    def __init__(self, tally: Tally, planned: int) -> None:
        self._tally = tally
        self._planned = planned
        self._counted = 0
        self._position = 0

    def restart(self) -> None:
        """A new attempt starts from byte 0."""
        self._position = 0

    def advance(self, n: int) -> None:
        """The current attempt moved ``n`` more bytes."""
        self._position += n
        if self._position > self._counted:
            self._tally.add_bytes(self._position - self._counted)
            self._counted = self._position

    def done(self) -> None:
        """The item is dealt with: count the rest of its planned size."""
        if self._counted > self._planned:  # the file grew since it was listed
            self._tally.bytes_total += self._counted - self._planned
        elif self._counted < self._planned:
            self._tally.add_bytes(self._planned - self._counted)
        self._counted = max(self._counted, self._planned)
