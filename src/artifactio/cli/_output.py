"""What the command line prints besides results: progress, summaries, failures, errors.

Everything here goes to stderr, so stdout holds only results (a listing, a file's
bytes, the ``--json`` document). Text made by others (exception messages) passes
through :func:`artifactio._redact.redact_text` and is kept to one line.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, TextIO

import pydantic

from .._redact import redact_text

if TYPE_CHECKING:
    from ..transfer import TransferProgress, TransferReport

__all__ = [
    "ProgressLine",
    "describe_error",
    "human_size",
    "one_line",
    "print_failures",
    "summary",
]


def human_size(n: float) -> str:
    """``1536`` gives ``"1.5 KiB"``; below 1 KiB, ``"512 B"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def one_line(text: str) -> str:
    """``text`` redacted, on one line."""
    return " ".join(redact_text(text).split())


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, without secrets or option values."""
    if isinstance(exc, pydantic.ValidationError):
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "option"
            problems.append(f"{where}: {error['msg']}")
        return one_line("invalid option " + "; ".join(problems))
    text = str(exc)
    if not text:
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        text = exc.strerror  # without the "[Errno N] " prefix
        if exc.filename is not None:
            text += f": {exc.filename!r}"
    return one_line(text)


def summary(command: str, report: TransferReport) -> str:
    """The one-line end-of-transfer summary."""
    return f"artifactio {command}: {report}"


def print_failures(report: TransferReport, stream: TextIO) -> None:
    """One ``path: error`` line per failure."""
    for failure in report.failures:
        print(f"{failure['path']}: {one_line(failure['error'])}", file=stream)


class ProgressLine:
    """A live one-line progress display, redrawn in place with ``\\r``.

    Give it to the transfer as its ``progress`` callback; call :meth:`clear`
    before printing anything else to the same stream.

    Args:
        stream: A terminal (stderr).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._width = 0

    def __call__(self, progress: TransferProgress) -> None:
        self.draw(self.render(progress, time.monotonic() - self._started))

    @staticmethod
    def render(progress: TransferProgress, elapsed: float) -> str:
        """The line for ``progress`` after ``elapsed`` seconds: files, bytes, rate, ETA."""
        total = "" if progress.listing_done else "+"
        rate = progress.bytes_done / elapsed if elapsed > 0 else 0.0
        left = progress.bytes_total - progress.bytes_done
        if progress.listing_done and rate > 0:
            eta = _duration(left / rate)
        elif progress.listing_done and left <= 0:
            eta = _duration(0)
        else:
            eta = "?"
        line = (
            f"{progress.files_done}/{progress.files_total}{total} files  "
            f"{human_size(progress.bytes_done)}/{human_size(progress.bytes_total)}{total}  "
            f"{human_size(rate)}/s  ETA {eta}"
        )
        if progress.failed:
            line += f"  {progress.failed} failed"
        return line

    def draw(self, line: str) -> None:
        """Show ``line`` in place of the previous one (cut to the terminal's width)."""
        columns = shutil.get_terminal_size().columns - 1
        line = line[: max(columns, 20)]
        padding = " " * max(self._width - len(line), 0)
        self._stream.write(f"\r{line}{padding}")
        self._stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        """Erase the line, so that the next output starts on a clean line."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
