"""Tie tests to the rows of the behaviour document (``docs/semantics.md``).

Every row of the document has a short, stable ID (``copyfile.dst-parents``).
A test names the rows it checks with :func:`covers`; the repository's own test
``tests/test_semantics_doc.py`` reads the document and fails when a row has no
test, or a test names a row the document does not have.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ROW_ID", "covered_rows", "covers"]

F = TypeVar("F", bound="Callable[..., object]")

ROW_ID = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z0-9]+(?:-[a-z0-9]+)*")
"""What a row ID looks like: ``area.behaviour``, lower-case words joined by ``-``."""

_ATTRIBUTE = "__semantics_rows__"


def covers(*row_ids: str) -> Callable[[F], F]:
    """Mark a test as checking the behaviour rows ``row_ids`` of ``docs/semantics.md``.

    Stacking the decorator adds rows. The marked function is returned unchanged
    (no pytest marker is registered, so ``--strict-markers`` needs no setup)::

        @covers("copyfile.dst-parents", "write.parents")
        async def test_copyfile_makes_parents(self, store): ...

    Raises:
        ValueError: No row given, or an ID that is not of the form ``area.name``.
    """
    if not row_ids:
        raise ValueError("covers() needs at least one row ID")
    for row in row_ids:
        if not isinstance(row, str) or ROW_ID.fullmatch(row) is None:
            raise ValueError(f"not a row ID (area.name, lower case): {row!r}")

    def mark(func: F) -> F:
        rows = (*covered_rows(func), *row_ids)
        setattr(func, _ATTRIBUTE, tuple(dict.fromkeys(rows)))
        return func

    return mark


def covered_rows(func: object) -> tuple[str, ...]:
    """The row IDs a test was marked with by :func:`covers` (``()`` when none)."""
    rows = getattr(func, _ATTRIBUTE, ())
    return tuple(rows) if isinstance(rows, tuple) else ()
