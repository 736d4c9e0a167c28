"""CRC-32C as GCS uses it, as pure functions: no I/O here.

GCS checks uploads and reports every object's CRC-32C; the backend sends one
with every upload and checks every download against it:

- values (:func:`crc32c`) and their base64 spelling (:func:`b64_crc32c`,
  :func:`parse_b64_crc32c`, :func:`goog_hash` for the ``X-Goog-Hash`` header);
- the checksum of two adjacent ranges from theirs (:func:`crc32c_combine`), so
  the chunks of a resumable upload are never read twice;
- :class:`DownloadCheck`, which checks an object read in ranges arriving in any order
  (:func:`read_mismatch`: the error of a download that does not match).
"""

from __future__ import annotations

import base64
import errno
import functools
from typing import TYPE_CHECKING

import google_crc32c

from .._exceptions import IntegrityError

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

__all__ = [
    "DownloadCheck",
    "b64_crc32c",
    "crc32c",
    "crc32c_combine",
    "goog_hash",
    "parse_b64_crc32c",
    "read_mismatch",
]

_CASTAGNOLI = 0x82F63B78  # CRC-32C polynomial, bit-reflected


def _gf2_apply(matrix: tuple[int, ...], vector: int) -> int:
    result = 0
    row = 0
    while vector:
        if vector & 1:
            result ^= matrix[row]
        vector >>= 1
        row += 1
    return result


def _gf2_compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_gf2_apply(a, column) for column in b)


@functools.lru_cache(maxsize=64)
def _zeros_operator(nbytes: int) -> tuple[int, ...]:
    """The linear map that runs a CRC-32C register over ``nbytes`` zero bytes."""
    one_bit = (_CASTAGNOLI, *(1 << n for n in range(31)))
    power = one_bit
    for _ in range(3):  # 1 -> 2 -> 4 -> 8 zero bits: one zero byte
        power = _gf2_compose(power, power)
    result = tuple(1 << n for n in range(32))
    while nbytes:
        if nbytes & 1:
            result = _gf2_compose(power, result)
        nbytes >>= 1
        if nbytes:
            power = _gf2_compose(power, power)
    return result


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32C of ``a + b`` from ``crc(a)``, ``crc(b)`` and ``len(b)``."""
    if len2 <= 0:
        return crc1
    return _gf2_apply(_zeros_operator(len2), crc1) ^ crc2


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data``, as an unsigned integer."""
    return int(google_crc32c.value(data))


def b64_crc32c(value: int) -> str:
    """A CRC-32C as GCS spells it: four big-endian bytes in base64."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def parse_b64_crc32c(text: str | None) -> int | None:
    """The CRC-32C that GCS spelled ``text`` (``None`` when absent or malformed)."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def goog_hash(headers: CIMultiDictProxy[str], name: str = "crc32c") -> str | None:
    """One hash from the ``X-Goog-Hash: crc32c=...,md5=...`` header(s)."""
    for value in headers.getall("X-Goog-Hash", []):
        for item in value.split(","):
            key, _, digest = item.strip().partition("=")
            if key == name:
                return digest
    return None


def read_mismatch(got: int, expected: int, path: str | None = None) -> IntegrityError:
    """The error of a download whose CRC-32C is ``got`` where GCS reports ``expected``."""
    detail = f"read: CRC32C mismatch: got {b64_crc32c(got)}, GCS reports {b64_crc32c(expected)}"
    return IntegrityError(errno.EIO, detail, path)


class DownloadCheck:
    """The CRC-32C of one object version, checked once ranges cover it all.

    Ranges may arrive in any order and may repeat; each new one is folded into
    the covered spans with :func:`crc32c_combine`.
    """

    def __init__(self, size: int, expected: int) -> None:
        self.size = size
        self.expected = expected
        self._spans: list[tuple[int, int, int]] = []  # (start, end, crc), sorted, disjoint

    def add(self, start: int, data: bytes) -> bool:
        """Fold in ``data`` read at ``start``.

        Returns:
            True once the whole object was seen and its checksum matched.

        Raises:
            IntegrityError: The whole object was seen and its checksum differs.
        """
        end = start + len(data)
        if not data or any(s < end and start < e for s, e, _ in self._spans):
            return False
        crc = crc32c(data)
        spans = self._spans
        spans.append((start, end, crc))
        spans.sort()
        merged: list[tuple[int, int, int]] = []
        for s, e, c in spans:
            if merged and merged[-1][1] == s:
                ps, _, pc = merged[-1]
                merged[-1] = (ps, e, crc32c_combine(pc, c, e - s))
            else:
                merged.append((s, e, c))
        self._spans = merged
        if len(merged) == 1 and merged[0][0] == 0 and merged[0][1] == self.size:
            if merged[0][2] != self.expected:
                raise read_mismatch(merged[0][2], self.expected)
            return True
        return False
