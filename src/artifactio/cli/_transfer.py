"""``artifactio cp`` and ``artifactio sync``: bulk transfers from the command line.

Both open their stores with the command's options (:class:`StoreSet`), hand
``(store, path)`` pairs to :func:`artifactio.copy` / :func:`artifactio.sync`, and
show the transfer's progress: a live line on a terminal, else nothing until the
one-line summary at the end (both on stderr). ``--json`` prints the report's
JSON form on stdout. The exit status is 0 only when every file succeeded; each
failure is listed on stderr as ``path: error``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .._primitives import DEFAULT_PART_SIZE
from ..transfer import copy, sync
from ._output import ProgressLine, print_failures, summary
from ._stores import StoreSet, Target

if TYPE_CHECKING:
    import argparse

    from ..transfer import TransferReport

__all__ = ["run_transfer"]


async def run_transfer(args: argparse.Namespace) -> int:
    """Run ``cp`` or ``sync`` as ``args`` say; the exit status."""
    live = not args.json and sys.stderr.isatty()
    progress = ProgressLine(sys.stderr) if live else None
    stores = StoreSet(
        endpoint_url=args.endpoint_url, concurrency=args.concurrency, part_size=args.part_size
    )
    try:
        async with stores:
            src = stores.target(args.src)
            dst = stores.target(args.dst)
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


def _print_report(command: str, report: TransferReport, *, as_json: bool) -> int:
    """Print the report (JSON on stdout if asked), failures and summary on stderr."""
    if as_json:
        print(report.to_json(), flush=True)
    print_failures(report, sys.stderr)
    print(summary(command, report), file=sys.stderr, flush=True)
    return 0 if report.ok else 1
