"""Path rules: coercion, normalising, bounds and glob matching.

Pure functions with no I/O. A store works on *keys*: the normalised path
relative to its root, with ``/`` separators and no leading or trailing slash
(``""`` is the root itself). Every path handed back to a user is a full path in
the same form as the root (``/data/x``, ``file:///data/x``, ``s3://bucket/x``).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from ._exceptions import InvalidPathError, PathOutsideStoreError
from ._redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "GlobMatcher",
    "PathType",
    "StoreRoot",
    "base_name",
    "coerce_path",
    "glob_matcher",
    "has_magic",
    "is_below",
    "is_directory_pattern",
    "join_key",
    "parent_key",
    "split_scheme",
]

PathType = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""Anything a path may be given as: ``str``, ``bytes`` or an ``os.PathLike``."""

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)\Z", re.DOTALL)


def coerce_path(path: object, op: str = "") -> str:
    """Turn a user's path into a ``str``, rejecting what can never be a valid path.

    Args:
        path: ``str``, ``bytes`` or ``os.PathLike``.
        op: The operation, for the error message.

    Returns:
        The path as ``str``.

    Raises:
        InvalidPathError: Empty, a NUL byte, bytes not valid in the filesystem
            encoding, or lone surrogates.
        TypeError: Not a path type at all.
    """
    where = f"{op}: " if op else ""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        try:
            path = path.decode(sys.getfilesystemencoding(), "strict")
        except UnicodeDecodeError as exc:
            raise InvalidPathError(
                f"{where}bytes path is not valid {sys.getfilesystemencoding()}: {path!r}"
            ) from exc
    if not isinstance(path, str):
        raise TypeError(f"{where}expected str, bytes or os.PathLike, not {type(path).__name__}")
    if not path:
        raise InvalidPathError(f"{where}empty path")
    if "\x00" in path:
        raise InvalidPathError(f"{where}path contains a NUL byte: {path!r}")
    try:
        path.encode("utf-8", "strict")
    except UnicodeEncodeError as exc:
        raise InvalidPathError(f"{where}path is not valid text: {path!r}") from exc
    return path


def split_scheme(uri: str) -> tuple[str, str]:
    """Split ``"s3://bucket/key"`` into ``("s3", "bucket/key")``; no scheme gives ``("", uri)``."""
    match = _SCHEME_RE.match(uri)
    if match is None:
        return "", uri
    return match.group(1).lower(), match.group(2)


def _normalise(parts: Sequence[str]) -> tuple[list[str], bool]:
    """Collapse ``.``, ``..`` and empty components; report whether ``..`` rose above the top."""
    out: list[str] = []
    escaped = False
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            else:
                escaped = True
            continue
        out.append(part)
    return out, escaped


@dataclass(frozen=True)
class StoreRoot:
    """Where a store lives and how its paths are spelled.

    Attributes:
        scheme: The canonical scheme: ``"file"``, ``"memory"``, ``"s3"``, ``"gs"``...
        parts: The root's components: for a URI, bucket (or name) and prefix; for a
            local path, the components below ``/``.
        aliases: Other schemes accepted for this store (``"gcs"`` for ``"gs"``).
        as_uri: For local stores, whether paths are spelled as ``file://`` URIs.
    """

    scheme: str
    parts: tuple[str, ...]
    aliases: frozenset[str] = frozenset()
    as_uri: bool = False

    @classmethod
    def parse(cls, uri: str, *, aliases: frozenset[str] = frozenset()) -> StoreRoot:
        """Parse a root URI (or an absolute local path) into a :class:`StoreRoot`.

        Raises:
            InvalidPathError: The root is not valid, or a local root is relative.
        """
        uri = coerce_path(uri, "root")
        scheme, rest = split_scheme(uri)
        if scheme in ("", "file"):
            if not rest.startswith("/"):
                raise InvalidPathError(f"a local store root must be an absolute path: {uri!r}")
            parts, _ = _normalise(rest.split("/"))
            return cls("file", tuple(parts), frozenset(), as_uri=scheme == "file")
        # The first component (a bucket, a memory store's name) is taken as written:
        # "s3://b/../c" does not become bucket c; nothing may climb out of it.
        head, _, tail = rest.partition("/")
        parts, escaped = _normalise(tail.split("/"))
        if head in (".", "..") or (not head and parts):
            raise InvalidPathError(
                f"a {scheme}:// root starts with its bucket (or name): {redact_url(uri)!r}"
            )
        if escaped:
            raise InvalidPathError(f"root climbs out of its bucket: {redact_url(uri)!r}")
        return cls(scheme, (head, *parts) if head else (), aliases)

    @property
    def is_local(self) -> bool:
        """Whether this is a local-filesystem root."""
        return self.scheme == "file"

    @functools.cached_property
    def uri(self) -> str:
        """The root as a full path (``"s3://bucket/prefix"``, ``"/data"``)."""
        return self.full("")

    @functools.cached_property
    def _prefix(self) -> str:
        if self.is_local:
            head = "file://" if self.as_uri else ""
            return head + "/" + "/".join(self.parts)
        return f"{self.scheme}://" + "/".join(self.parts)

    def full(self, key: str) -> str:
        """The full path of ``key`` in the root's spelling."""
        if not key:
            return self._prefix
        if self._prefix.endswith("/"):
            return self._prefix + key
        return f"{self._prefix}/{key}"

    @functools.cached_property
    def _os_base(self) -> str:
        return "/" + "/".join(self.parts)

    @functools.cached_property
    def _child_prefix(self) -> str:
        """What every full path below the root starts with (the root plus a slash)."""
        return self._prefix if self._prefix.endswith("/") else self._prefix + "/"

    def os_path(self, key: str) -> str:
        """For local roots, the plain filesystem path of ``key``."""
        base = self._os_base
        if not key:
            return base
        return base + key if base == "/" else f"{base}/{key}"

    def key(self, path: object, op: str = "") -> str:
        """Turn a user's path into a key relative to this root.

        Args:
            path: A full path (any accepted spelling) or a path relative to the root.
            op: The operation, for error messages.

        Returns:
            The normalised key, ``""`` for the root.

        Raises:
            InvalidPathError: See :func:`coerce_path`.
            PathOutsideStoreError: The path is not the root or below it.
        """
        if type(path) is str:
            # Fast path: a full path in the root's own spelling, or a relative path
            # without a scheme, that is already normal (no empty, "." or ".."
            # components, no trailing slash).
            if path.startswith(self._child_prefix):
                rest = path[len(self._child_prefix) :]
            elif path[:1] not in ("/", "") and "://" not in path:
                rest = path
            else:
                rest = ""
            if (
                rest
                and rest[0] not in "./"
                and "//" not in rest
                and "/." not in rest
                and rest[-1] != "/"
                and "\x00" not in rest
                and rest.isascii()
            ):
                return rest
        text = coerce_path(path, op)
        scheme, rest = split_scheme(text)
        if scheme:
            own = scheme == self.scheme or scheme in self.aliases
            if own or (self.is_local and scheme == "file"):
                absolute = True
            else:
                raise PathOutsideStoreError(text, self.uri, op)
        elif text.startswith("/") and not self.is_local:
            # A local absolute path given to a memory or object store is outside it,
            # as a file:// URI is: it never means a key below the root.
            raise PathOutsideStoreError(text, self.uri, op)
        else:
            rest = text
            absolute = self.is_local and text.startswith("/")
        if absolute:
            parts, escaped = _normalise(rest.split("/"))
            if escaped and not self.is_local:
                raise PathOutsideStoreError(text, self.uri, op)
        else:
            parts, escaped = _normalise((*self.parts, *rest.split("/")))
            if escaped and not self.is_local:
                raise PathOutsideStoreError(text, self.uri, op)
        depth = len(self.parts)
        if tuple(parts[:depth]) != self.parts:
            raise PathOutsideStoreError(text, self.uri, op)
        return "/".join(parts[depth:])


def parent_key(key: str) -> str:
    """The key of the directory that holds ``key`` (``""`` for top-level entries)."""
    return key.rpartition("/")[0]


def base_name(key: str) -> str:
    """The last component of ``key``."""
    return key.rpartition("/")[2]


def join_key(key: str, name: str) -> str:
    """``key`` joined with one more component."""
    return f"{key}/{name}" if key else name


def is_below(key: str, ancestor: str) -> bool:
    """Whether ``key`` is ``ancestor`` or lies below it, compared by components."""
    return not ancestor or key == ancestor or key.startswith(ancestor + "/")


# --------------------------------------------------------------------------- glob


def has_magic(part: str) -> bool:
    """Whether a pattern component holds glob syntax."""
    return any(c in part for c in "*?[")


@functools.lru_cache(maxsize=512)
def _component_regex(part: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(part))


def _match_component(part: str, name: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False
    if not has_magic(part):
        return part == name
    return _component_regex(part).match(name) is not None


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    head = pattern[0]
    if head == "**":
        # ``**`` takes zero or more components, none of them hidden.
        for i in range(len(parts) + 1):
            if i and parts[i - 1].startswith("."):
                return False
            if _match_parts(pattern[1:], parts[i:]):
                return True
        return False
    if not parts or not _match_component(head, parts[0]):
        return False
    return _match_parts(pattern[1:], parts[1:])


def is_directory_pattern(pattern: object) -> bool:
    """Whether a glob pattern ends in ``/``: it then matches directories only.

    Patterns are not paths here: normalising drops a path's trailing slash, but
    ``glob.glob`` gives a pattern's trailing slash a meaning, and so does ``glob``.
    """
    return coerce_path(pattern, "glob").endswith("/")


@dataclass(frozen=True)
class GlobMatcher:
    """A glob pattern split into its literal base and the components to match below it.

    Attributes:
        base: The key of the deepest directory named literally by the pattern.
        parts: The pattern's components below ``base``.
        dirs_only: The pattern ended in ``/``: only directories match.
    """

    base: str
    parts: tuple[str, ...]
    dirs_only: bool = False

    @property
    def recursive(self) -> bool:
        """Whether the pattern holds ``**`` (and may match at any depth)."""
        return "**" in self.parts

    def matches(self, rel: str) -> bool:
        """Whether ``rel`` (a key relative to ``base``) matches."""
        return _match_parts(self.parts, rel.split("/") if rel else [])

    def may_descend(self, rel: str) -> bool:
        """Whether something below directory ``rel`` (relative to ``base``) could match."""
        if self.recursive:
            return True
        parts = rel.split("/") if rel else []
        if len(parts) >= len(self.parts):
            return False
        return all(_match_component(p, n) for p, n in zip(self.parts, parts, strict=False))


def glob_matcher(key_pattern: str, *, dirs_only: bool = False) -> GlobMatcher:
    """Split a normalised pattern key into its literal base and its magic part.

    ``"a/b/*.txt"`` has base ``"a/b"`` and parts ``("*.txt",)``. ``dirs_only``
    says whether the pattern as given ended in ``/`` (see :func:`is_directory_pattern`).
    """
    parts = key_pattern.split("/") if key_pattern else []
    literal: list[str] = []
    for part in parts:
        if has_magic(part):
            break
        literal.append(part)
    rest = tuple(parts[len(literal) :])
    collapsed: list[str] = []
    for part in rest:  # "**/**" is the same as "**"
        if part == "**" and collapsed and collapsed[-1] == "**":
            continue
        collapsed.append(part)
    return GlobMatcher("/".join(literal), tuple(collapsed), dirs_only)
