"""``main``: run one ``artifactio`` command and turn every outcome into an exit status.

- 0: everything succeeded.
- 1: something failed: a file of a transfer (each listed on stderr), a missing
  path or bucket, refused credentials, an unreachable endpoint.
- 2: the command line is wrong: an unknown option, a bad option value, a URI
  with no backend, an invalid path or store option.
- 130: interrupted (Ctrl-C); the transfer was cancelled, which leaves no
  partial file and no pending upload behind.

Errors are one line on stderr (``artifactio <command>: <what>``), never a
traceback, and never an option's value.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from ._browse import run_browse
from ._output import describe_error
from ._parser import UsageError, build_parser
from ._transfer import run_transfer

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``artifactio`` command line.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status (see the module docstring).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    try:
        return asyncio.run(_dispatch(args))
    except KeyboardInterrupt:
        _say(f"artifactio {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        _quiet_stdout()
        return EXIT_FAILED
    except (UsageError, ValueError) as exc:  # pydantic.ValidationError is a ValueError
        _say(f"artifactio {args.command}: {describe_error(exc)}")
        return EXIT_USAGE
    except Exception as exc:
        _say(f"artifactio {args.command}: {describe_error(exc)}")
        return EXIT_FAILED


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("cp", "sync"):
        return await run_transfer(args)
    return await run_browse(args)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (captured): nothing to flush there
        pass
    finally:
        os.close(devnull)
