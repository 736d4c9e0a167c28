"""``artifactio cp`` and ``artifactio sync``: bulk transfers from the command line.

Both open their stores with the command's options (:class:`StoreSet`), hand
``(store, path)`` pairs to :func:`artifactio.copy` / :func:`artifactio.sync`, and
show the transfer's progress: a live line on a terminal, else nothing until the
one-line summary at the end (both on stderr). ``--json`` prints the report's
JSON form on stdout. The exit status is 0 only when every file succeeded; each
failure is listed on stderr as ``path: error``. ``--dry-run`` changes nothing and
lists each action it would take, one per line (``would copy SRC -> DST (new)``,
``would delete DST (not in the source)``): on stdout, or on stderr with ``--json``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING, TextIO

from .._primitives import DEFAULT_PART_SIZE
from ..transfer import copy, sync
from ._output import ProgressLine, print_failures, summary
from ._stores import StoreSet, Target

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from ..transfer import TransferReport

__all__ = ["run_transfer"]


async def run_transfer(args: argparse.Namespace) -> int:
    """Run ``cp`` or ``sync`` as ``args`` say; the exit status."""
    live = not args.json and sys.stderr.isatty()
    progress = ProgressLine(sys.stderr) if live else None
    stores = StoreSet(
        endpoint_url=args.endpoint_url, concurrency=args.concurrency, part_size=args.part_size
    )
    listing = _listing(sys.stderr if args.json else sys.stdout) if args.dry_run else None
    try:
        async with stores:
            src = stores.target(args.src)
            dst = stores.target(args.dst)
            with listing or contextlib.nullcontext():
                report = await _run(args, src, dst, progress)
    finally:
        if progress is not None:
            progress.clear()
    return _print_report(args.command, report, as_json=args.json)


async def _run(
    args: argparse.Namespace, src: Target, dst: Target, progress: ProgressLine | None
) -> TransferReport:
    part_size: int = DEFAULT_PART_SIZE if args.part_size is None else args.part_size
    if args.command == "cp":
        return await copy(
            src,
            dst,
            recursive=args.recursive,
            concurrency=args.concurrency,
            part_size=part_size,
            include=args.include,
            exclude=args.exclude,
            dry_run=args.dry_run,
            progress=progress,
        )
    return await sync(
        src,
        dst,
        delete=args.delete,
        compare=args.compare,
        concurrency=args.concurrency,
        part_size=part_size,
        include=args.include,
        exclude=args.exclude,
        dry_run=args.dry_run,
        progress=progress,
    )


class _Lines(logging.Handler):
    """Prints each record's message on its own line (the dry run's actions)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.INFO)
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=self._stream, flush=True)


@contextlib.contextmanager
def _listing(stream: TextIO) -> Iterator[None]:
    """While the block runs, print the transfer's dry-run actions on ``stream``."""
    logger = logging.getLogger("artifactio.transfer")
    handler = _Lines(stream)
    handler.addFilter(lambda record: record.getMessage().startswith("would "))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed here, not again by a root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _print_report(command: str, report: TransferReport, *, as_json: bool) -> int:
    """Print the report (JSON on stdout if asked), failures and summary on stderr."""
    if as_json:
        print(report.to_json(), flush=True)
    print_failures(report, sys.stderr)
    print(summary(command, report), file=sys.stderr, flush=True)
    return 0 if report.ok else 1
