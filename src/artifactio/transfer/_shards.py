"""Key ranges: how a transfer is cut into independent pieces. Pure.

Every file of a transfer has a *relative path*: its path below the source, with
``/`` separators (``""`` when the source is one file). A :class:`KeyRange` is a
half-open interval ``[start, stop)`` of relative paths in code-point order, which
is the byte order of their UTF-8 spelling, so the order S3 and GCS list keys in.

A plan restricted to a range lists only the directories that can hold paths in
it and transfers (or, with ``sync(delete=True)``, deletes) only paths in it. The
ranges of :meth:`KeyRange.split` cover their parent without overlap, so pieces
run anywhere, in any order or side by side, and their reports add up to the
report of the whole. :func:`split_points` picks boundaries from names a caller
listed (for example the top level of the source); :meth:`KeyRange.prefix` is the
range of everything below one directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = ["KeyRange", "split_points"]


@dataclass(frozen=True)
class KeyRange:
    """The relative paths ``start <= path < stop``; ``None`` leaves a side open.

    Attributes:
        start: The first path in the range (inclusive), or ``None`` for no lower bound.
        stop: The first path after the range (exclusive), or ``None`` for no upper bound.
    """

    start: str | None = None
    stop: str | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.stop is not None and self.start > self.stop:
            raise ValueError(f"key range: start {self.start!r} is after stop {self.stop!r}")

    @classmethod
    def prefix(cls, directory: str) -> KeyRange:
        """The range of every path below ``directory`` (a relative path, e.g. ``"a/b"``)."""
        directory = directory.strip("/")
        if not directory:
            return cls()
        # Below "a/b" lie exactly the paths from "a/b/" up to, not including, "a/b0"
        # ("0" follows "/" in code-point order).
        return cls(directory + "/", directory + "0")

    @property
    def unbounded(self) -> bool:
        """Whether the range holds every path."""
        return self.start is None and self.stop is None

    def contains(self, rel: str) -> bool:
        """Whether relative path ``rel`` lies in the range."""
        return (self.start is None or rel >= self.start) and (self.stop is None or rel < self.stop)

    def may_hold_below(self, directory: str) -> bool:
        """Whether some path below ``directory`` can lie in the range (else it is not listed)."""
        if not directory:
            return True
        low, high = directory + "/", directory + "0"
        return (self.stop is None or low < self.stop) and (self.start is None or high > self.start)

    def holds_all_below(self, directory: str) -> bool:
        """Whether every path below ``directory`` lies in the range."""
        if not directory:
            return self.unbounded
        low, high = directory + "/", directory + "0"
        return (self.start is None or low >= self.start) and (
            self.stop is None or high <= self.stop
        )

    def split(self, boundaries: Iterable[str]) -> list[KeyRange]:
        """Cut the range at ``boundaries`` (those outside it are ignored).

        Returns:
            Consecutive ranges that cover this one exactly, in order, none empty.
        """
        cuts = sorted({b for b in boundaries if self.contains(b) and b != self.start})
        edges: list[str | None] = [self.start, *cuts, self.stop]
        return [KeyRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def split_points(names: Sequence[str], pieces: int) -> list[str]:
    """Boundaries that cut sorted ``names`` into about ``pieces`` groups of equal count.

    Feed it the names (relative paths) of a listing of the source, typically its
    top level; pass the result to :meth:`KeyRange.split` or ``TransferPlan.shard``.

    Args:
        names: Relative paths; sorted and deduplicated here.
        pieces: How many pieces are wanted (at least 1).

    Returns:
        At most ``pieces - 1`` boundaries, each one of ``names``.
    """
    if pieces < 1:
        raise ValueError(f"split_points: pieces must be at least 1, not {pieces}")
    ordered = sorted(set(names))
    if pieces == 1 or len(ordered) < 2:
        return []
    count = min(pieces, len(ordered))
    return [ordered[(i * len(ordered)) // count] for i in range(1, count)]
