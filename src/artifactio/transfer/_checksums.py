"""Checksums: telling whether two reported checksums agree, and computing them. No I/O.

Stores report checksums as ``"algorithm:value"`` (:attr:`artifactio.StatResult.checksum`;
GCS gives ``"crc32c:<base64>"``). Two checksums are *comparable* when they name the
same algorithm; values are compared as bytes, so a hex and a base64 spelling of
one digest agree.

A transfer computes checksums of the bytes it streams (:class:`Digest`) to check
the destination's reported checksum, and ``sync(compare="checksum")`` computes
them when the two sides do not report comparable ones. ``crc32c`` needs the
``google-crc32c`` package (installed with the ``gcs`` extra); ``md5`` and
``sha256`` come from :mod:`hashlib`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from typing import Any

__all__ = [
    "Digest",
    "algorithm",
    "available",
    "checksums_match",
    "computable",
    "decode",
    "streaming_algorithms",
]

_HEX = re.compile(r"[0-9a-fA-F]+")

FALLBACK_ALGORITHM = "md5"
"""What ``sync(compare="checksum")`` computes on both sides when neither reports a checksum."""


def algorithm(checksum: str | None) -> str | None:
    """The algorithm of ``"crc32c:..."`` (lower case), or ``None`` for no checksum."""
    if not checksum or ":" not in checksum:
        return None
    return checksum.partition(":")[0].strip().lower() or None


def decode(checksum: str) -> tuple[str, bytes] | None:
    """``(algorithm, digest bytes)`` of a reported checksum; ``None`` when unreadable.

    The value may be hex or base64 (with its padding).
    """
    name = algorithm(checksum)
    if name is None:
        return None
    value = checksum.partition(":")[2].strip()
    if not value:
        return None
    try:
        if _HEX.fullmatch(value) and len(value) % 2 == 0:
            return name, bytes.fromhex(value)
        return name, base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def checksums_match(a: str | None, b: str | None) -> bool | None:
    """Whether two reported checksums agree; ``None`` when they are not comparable."""
    if a is None or b is None:
        return None
    da, db = decode(a), decode(b)
    if da is None or db is None or da[0] != db[0]:
        return None
    return da[1] == db[1]


@functools.cache
def _crc32c_module() -> Any:
    try:
        import google_crc32c
    except ImportError:
        return None
    return google_crc32c


def available(name: str) -> bool:
    """Whether :class:`Digest` can compute checksum algorithm ``name``."""
    if name == "crc32c":
        return _crc32c_module() is not None
    return name in ("md5", "sha256")


def streaming_algorithms() -> tuple[str, ...]:
    """What a transfer computes while it streams, to check the destination's checksum.

    Only what costs next to nothing: CRC-32C where ``google-crc32c`` has its
    native implementation (GCS reports CRC-32C for every object).
    """
    module = _crc32c_module()
    if module is not None and getattr(module, "implementation", "") == "c":
        return ("crc32c",)
    return ()


def computable(*checksums: str | None) -> str:
    """The algorithm to compute so that it compares with one of ``checksums``.

    The first reported checksum whose algorithm can be computed wins (then only the
    other side needs reading); otherwise :data:`FALLBACK_ALGORITHM`.
    """
    for checksum in checksums:
        name = algorithm(checksum)
        if name is not None and available(name):
            return name
    return FALLBACK_ALGORITHM


class Digest:
    """A running checksum of bytes as they stream by.

    Args:
        name: ``"crc32c"``, ``"md5"`` or ``"sha256"``.

    Raises:
        ValueError: An algorithm that cannot be computed here.
    """

    def __init__(self, name: str) -> None:
        if not available(name):
            raise ValueError(f"checksum algorithm {name!r} cannot be computed here")
        self.name = name
        self._crc: Any = None
        self._hash: Any = None
        if name == "crc32c":
            self._crc = _crc32c_module().Checksum()
        else:
            self._hash = hashlib.new(name, usedforsecurity=False)

    def update(self, data: bytes) -> None:
        """Feed the next bytes."""
        if self._crc is not None:
            self._crc.update(data)
        else:
            self._hash.update(data)

    def checksum(self) -> str:
        """``"crc32c:<base64>"`` (as GCS spells it), ``"md5:<hex>"`` or ``"sha256:<hex>"``."""
        if self._crc is not None:
            return "crc32c:" + base64.b64encode(self._crc.digest()).decode("ascii")
        return f"{self.name}:{self._hash.hexdigest()}"
