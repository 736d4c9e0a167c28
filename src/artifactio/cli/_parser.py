"""The command line's grammar: subcommands, their options, and option values. Pure.

Usage errors (an unknown option, a bad value, a missing argument) raise
:class:`UsageError` instead of printing argparse's usage block and exiting, so
that :func:`artifactio.cli.main` reports them as one line with exit status 2.
Messages name the option, never its value (a mistyped option may hold a secret).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from .._config import _endpoint_problem
from .._primitives import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Endpoints", "UsageError", "build_parser", "parse_endpoint", "parse_size"]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)

_MAX_CONCURRENCY = 4096
"""The largest ``--concurrency`` (what a store's config accepts)."""


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


def parse_size(text: str) -> int:
    """A byte count written as ``1048576``, ``8M``, ``64MiB``, ``512KB`` or ``1.5G``.

    Units are binary (``K`` = 1024): ``K``, ``M``, ``G``, ``T``, each optionally
    followed by ``B`` or ``iB``; a bare number (or ``B``) is bytes.

    Raises:
        ValueError: Not a size, or not a positive whole number of bytes.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a size such as 1048576, 8M or 64MiB")
    number, unit = match.groups()
    value = float(number) * _UNITS[unit.lower()]
    if value != int(value) or value < 1:
        raise ValueError("expected a positive whole number of bytes")
    return int(value)


ENDPOINT_SCHEMES = {"s3": "s3", "gs": "gs", "gcs": "gs"}
"""The schemes ``--endpoint-url SCHEME=URL`` takes, and the canonical scheme of each."""

_SCHEME_PREFIX = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)=(.*)", re.DOTALL)


@dataclass(frozen=True)
class Endpoints:
    """What the ``--endpoint-url`` options said.

    Attributes:
        plain: The URL given without a scheme: for every object-store end whose
            scheme has no URL of its own (``None``: not given).
        by_scheme: The URL given for each canonical scheme (``"s3"``, ``"gs"``).
    """

    plain: str | None = None
    by_scheme: dict[str, str] = field(default_factory=dict)

    def url_for(self, scheme: str) -> str | None:
        """The endpoint for the ends of canonical ``scheme`` (``None``: the environment's)."""
        return self.by_scheme.get(scheme, self.plain)


def parse_endpoint(text: str) -> tuple[str | None, str]:
    """``"s3=http://host:port"`` gives ``("s3", "http://host:port")``; a plain URL ``(None, url)``.

    ``gcs=`` is ``gs=``. The URL is ``http(s)://host[:port]`` (a path after it is
    kept, as the stores take it).

    Raises:
        ValueError: An unknown scheme, or not such a URL. The message never
            shows ``text``.
    """
    scheme: str | None = None
    url = text
    match = _SCHEME_PREFIX.fullmatch(text)
    if match is not None:
        given = match.group(1).lower()
        if given not in ENDPOINT_SCHEMES:
            raise ValueError("the scheme before '=' must be s3, gs or gcs")
        scheme, url = ENDPOINT_SCHEMES[given], match.group(2)
    problem = _endpoint_problem(url)
    if problem:
        raise ValueError(
            f"not an endpoint URL: {problem} (expected [SCHEME=]http(s)://host[:port])"
        )
    return scheme, url


def _endpoint(text: str) -> tuple[str | None, str]:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _EndpointAction(argparse.Action):
    """Collects the ``--endpoint-url`` options into one :class:`Endpoints`; refuses repeats."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, tuple)
        scheme, url = values
        seen = getattr(namespace, self.dest, None) or Endpoints()
        if scheme is None:
            if seen.plain is not None:
                raise argparse.ArgumentError(self, "a URL without SCHEME= is given twice")
            seen = Endpoints(url, seen.by_scheme)
        else:
            if scheme in seen.by_scheme:
                named = "gs= (or gcs=)" if scheme == "gs" else f"{scheme}="
                raise argparse.ArgumentError(self, f"{named} is given twice")
            seen = Endpoints(seen.plain, {**seen.by_scheme, scheme: url})
        setattr(namespace, self.dest, seen)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _concurrency(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {_MAX_CONCURRENCY}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse quotes a bad value in its messages ("invalid _size value: 'x'"): drop it.
        message = re.sub(r"invalid \w+ value: .*", "invalid value", message)
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _common(*, filters: bool = False, dry_run: bool = False) -> _Parser:
    """The options several subcommands share."""
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--endpoint-url",
        action=_EndpointAction,
        type=_endpoint,
        metavar="[SCHEME=]URL",
        help="an object-store endpoint, http(s)://host[:port]: s3=URL for the S3 ends, "
        "gs=URL (or gcs=URL) for the GCS ends, a plain URL for the other S3/GCS ends "
        "(refused when they are of both schemes); repeatable, once per scheme "
        "(default: AWS_ENDPOINT_URL(_S3), STORAGE_EMULATOR_HOST)",
    )
    group.add_argument("--json", action="store_true", help="print a JSON result on stdout")
    group.add_argument(
        "--concurrency",
        type=_concurrency,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})",
    )
    group.add_argument(
        "--part-size",
        type=_size,
        metavar="SIZE",
        help="bytes per part, e.g. 8M or 64MiB (default: the store's)",
    )
    if filters:
        group.add_argument(
            "--include",
            action="append",
            default=[],
            metavar="GLOB",
            help="take only paths matching GLOB (relative to the source; repeatable)",
        )
        group.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="GLOB",
            help="leave out paths matching GLOB (repeatable)",
        )
    if dry_run:
        group.add_argument(
            "--dry-run", action="store_true", help="say what would be done, change nothing"
        )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``artifactio`` parser; ``args.command`` names the subcommand."""
    parser = _Parser(
        prog="artifactio",
        description="Copy, sync and inspect files on local disks, S3 and GCS.",
        epilog="URIs: /local/path, relative/path, file:///path, s3://bucket/key, gs://bucket/key. "
        "Credentials come from the usual environment variables (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE..., GOOGLE_APPLICATION_CREDENTIALS). "
        "Between two services: artifactio cp -r s3://a/x gs://b/y "
        "--endpoint-url s3=http://127.0.0.1:8333 --endpoint-url gs=http://127.0.0.1:4443",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    moving = _common(filters=True, dry_run=True)
    listing = _common(filters=True)
    plain = _common()

    cp = sub.add_parser("cp", parents=[moving], help="copy a file, or a tree with -r")
    cp.add_argument("-r", "--recursive", action="store_true", help="copy a directory tree")
    cp.add_argument("src", metavar="SRC")
    cp.add_argument("dst", metavar="DST")

    sync = sub.add_parser("sync", parents=[moving], help="make DST hold what SRC holds")
    sync.add_argument(
        "--delete", action="store_true", help="remove destination files absent from SRC"
    )
    how = sync.add_mutually_exclusive_group()
    how.add_argument(
        "--checksum",
        dest="compare",
        action="store_const",
        const="checksum",
        help="compare sizes and checksums (default: size and modification time)",
    )
    how.add_argument(
        "--size-only", dest="compare", action="store_const", const="size", help="compare sizes"
    )
    sync.set_defaults(compare="size-mtime")
    sync.add_argument("src", metavar="SRC")
    sync.add_argument("dst", metavar="DST")

    ls = sub.add_parser("ls", parents=[listing], help="list a directory")
    ls.add_argument("-l", "--long", action="store_true", help="show sizes and times")
    ls.add_argument("-r", "--recursive", action="store_true", help="list every file below URI")
    ls.add_argument("uri", metavar="URI")

    rm = sub.add_parser(
        "rm", parents=[_common(filters=True, dry_run=True)], help="remove a file, or a tree with -r"
    )
    rm.add_argument("-r", "--recursive", action="store_true", help="remove a directory tree")
    rm.add_argument("uri", metavar="URI")

    du = sub.add_parser("du", parents=[listing], help="total size and file count below URI")
    du.add_argument("uri", metavar="URI")

    cat = sub.add_parser("cat", parents=[plain], help="write a file to stdout")
    cat.add_argument("uri", metavar="URI")

    stat = sub.add_parser("stat", parents=[plain], help="show what is known about a path")
    stat.add_argument("uri", metavar="URI")
    return parser
