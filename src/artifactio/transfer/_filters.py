"""Include and exclude filters: which paths below the source a transfer takes. Pure.

Patterns are globs matched against the path *relative to the source* (``/``
separators), with the store's own glob matcher (``store.glob`` follows the same
rules): ``*``, ``?`` and ``[...]`` match within one name, ``**`` spans
directories (``**/*.bin`` is every ``.bin`` file at any depth, the top level
included), and a name starting with ``.`` is matched only by a pattern
component that starts with ``.`` (``**/.*`` for dot-files).

A pattern that matches a directory covers everything below it, as in rsync and
``.gitignore``: ``exclude=["cache"]`` leaves out the directory ``cache`` and all
its files (a trailing ``/`` is allowed: ``"cache/"``), and ``include=["models"]``
takes everything below ``models``.

A file is taken when it (or a directory above it) matches some ``include``
pattern (or no include pattern was given), and neither it nor a directory above
it matches an ``exclude`` pattern. Excluded directories are not listed at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._paths import GlobMatcher, coerce_path

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["PathFilter", "parse_pattern"]


def parse_pattern(pattern: object) -> GlobMatcher:
    """Turn one filter pattern into a matcher of paths relative to the source.

    Leading ``./`` and ``/`` and a trailing ``/`` are ignored, as are repeated
    slashes.

    Raises:
        ValueError: An empty pattern, or one with a ``..`` component.
    """
    text = coerce_path(pattern, "filter")
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if not parts:
        raise ValueError(f"filter: pattern {text!r} matches nothing")
    if ".." in parts:
        raise ValueError(f"filter: pattern {text!r} climbs above the source ('..')")
    collapsed: list[str] = []
    for part in parts:  # "**/**" is the same as "**"
        if part == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(part)
    return GlobMatcher("", tuple(collapsed))


def _ancestors_and_self(rel: str) -> Iterable[str]:
    """``"a/b/c"`` gives ``"a"``, ``"a/b"``, ``"a/b/c"``."""
    start = 0
    while True:
        slash = rel.find("/", start)
        if slash < 0:
            yield rel
            return
        yield rel[:slash]
        start = slash + 1


class PathFilter:
    """Include/exclude patterns, decided on paths relative to the source.

    Args:
        include: Take only paths matching one of these (all paths when empty).
        exclude: Leave out paths matching one of these.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.include = tuple(parse_pattern(p) for p in include)
        self.exclude = tuple(parse_pattern(p) for p in exclude)

    @property
    def active(self) -> bool:
        """Whether any pattern was given (without any, every path is taken)."""
        return bool(self.include or self.exclude)

    def _excluded(self, rel: str) -> bool:
        return any(m.matches(p) for p in _ancestors_and_self(rel) for m in self.exclude)

    def _included(self, rel: str) -> bool:
        return any(m.matches(p) for p in _ancestors_and_self(rel) for m in self.include)

    def wants_file(self, rel: str) -> bool:
        """Whether the file at ``rel`` (relative to the source) is taken."""
        if not self.active:
            return True
        if self.include and not self._included(rel):
            return False
        return not self._excluded(rel)

    def may_descend(self, rel: str) -> bool:
        """Whether some file below directory ``rel`` may be taken (else it is not listed)."""
        if not self.active:
            return True
        if self._excluded(rel):
            return False
        if not self.include:
            return True
        return self._included(rel) or any(m.may_descend(rel) for m in self.include)
