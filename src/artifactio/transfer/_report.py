"""``TransferReport``: what a copy or a sync did.

A report is an immutable record of counts. Its JSON form (:meth:`TransferReport.to_dict`)
has exactly the fields the command line's ``--json`` prints: ``transferred``,
``skipped``, ``failed`` (file counts), ``bytes`` (bytes transferred), ``elapsed``
(seconds) and ``failures`` (a list of ``{"path": ..., "error": ...}``).

Reports of the pieces of a sharded transfer merge into the report of the whole:
``a + b`` adds every count, and :meth:`TransferReport.merge` does the same for
many reports, optionally with the wall-clock time of the whole run (pieces that
ran side by side overlap in time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["TransferReport"]

_FIELDS = ("transferred", "skipped", "failed", "bytes", "elapsed", "failures")


@dataclass(frozen=True)
class TransferReport:
    """What :func:`artifactio.copy` or :func:`artifactio.sync` did.

    Attributes:
        transferred: Files copied (with ``dry_run``: files that would be copied).
        skipped: Files left alone because the destination was up to date
            (``sync``) or existed (``copy(overwrite=False)``).
        failed: Files (or directories that could not be listed) that failed.
        bytes: Bytes of the files transferred.
        elapsed: Seconds the transfer took.
        failures: One ``{"path": ..., "error": ...}`` per failure: the full path
            and ``"ExceptionClass: message"``.
        deleted: Destination entries removed by ``sync(delete=True)`` (a
            directory removed whole counts once). Not part of :meth:`to_dict`.
        dry_run: Whether nothing was written (the counts say what would be done).
            Not part of :meth:`to_dict`.
    """

    transferred: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    deleted: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Whether every item succeeded."""
        return self.failed == 0 and not self.failures

    @property
    def bytes_per_second(self) -> float:
        """Throughput in bytes per second (0.0 when nothing was timed)."""
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def files_per_second(self) -> float:
        """Files transferred per second (0.0 when nothing was timed)."""
        return self.transferred / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: exactly ``transferred skipped failed bytes elapsed failures``."""
        return {
            "transferred": self.transferred,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes": self.bytes,
            "elapsed": self.elapsed,
            "failures": [dict(f) for f in self.failures],
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransferReport:
        """Rebuild a report from :meth:`to_dict`'s output (e.g. sent back by a worker).

        Raises:
            ValueError: A field is missing.
        """
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ValueError(f"transfer report: missing fields {missing}")
        return cls(
            transferred=int(data["transferred"]),
            skipped=int(data["skipped"]),
            failed=int(data["failed"]),
            bytes=int(data["bytes"]),
            elapsed=float(data["elapsed"]),
            failures=[{"path": str(f["path"]), "error": str(f["error"])} for f in data["failures"]],
            deleted=int(data.get("deleted", 0)),
            dry_run=bool(data.get("dry_run", False)),
        )

    def __add__(self, other: object) -> TransferReport:
        if not isinstance(other, TransferReport):
            return NotImplemented
        return TransferReport.merge([self, other])

    @classmethod
    def merge(
        cls, reports: Iterable[TransferReport], *, elapsed: float | None = None
    ) -> TransferReport:
        """One report for several pieces of a transfer.

        Args:
            reports: The pieces' reports.
            elapsed: The wall-clock time of the whole run, when the pieces ran
                side by side; by default the pieces' times are added up.

        Returns:
            Counts, bytes and failures added up; ``dry_run`` when every piece was one.
        """
        pieces = list(reports)
        return cls(
            transferred=sum(r.transferred for r in pieces),
            skipped=sum(r.skipped for r in pieces),
            failed=sum(r.failed for r in pieces),
            bytes=sum(r.bytes for r in pieces),
            elapsed=sum(r.elapsed for r in pieces) if elapsed is None else float(elapsed),
            failures=[dict(f) for r in pieces for f in r.failures],
            deleted=sum(r.deleted for r in pieces),
            dry_run=bool(pieces) and all(r.dry_run for r in pieces),
        )

    def __str__(self) -> str:
        what = "would transfer" if self.dry_run else "transferred"
        rate = self.bytes_per_second / (1024 * 1024)
        text = (
            f"{what} {self.transferred} files ({self.bytes} bytes) in {self.elapsed:.2f} s "
            f"({rate:.1f} MiB/s), skipped {self.skipped}, failed {self.failed}"
        )
        if self.deleted:
            text += f", {'would delete' if self.dry_run else 'deleted'} {self.deleted}"
        return text
