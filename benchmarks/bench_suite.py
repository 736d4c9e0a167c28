"""The peer benchmark suite: artifactio beside s3fs, gcsfs, obstore, boto3, fsspec, shutil and more.

Run: ``python benchmarks/bench_suite.py [--quick] [--rounds N] [--concurrency C]
[--only S1 --only S4 ...] [--json PATH] [--markdown] [--report PATH]`` (``tox -e bench`` runs it
with the ``bench`` extra, which brings the peers; a peer that is not installed
is skipped with a printed reason, its rows and targets marked not measured).

Starts SeaweedFS (S3) and, for S7, fresh fake-gcs-servers (GCS), all from
``artifactio.embedded`` on 127.0.0.1 and stopped by their own handles, then
runs each scenario of issue 10 for artifactio and every peer in the same run,
alternating, ``--rounds`` rounds each (default 3; ``--quick``: small sizes,
one round):

* S1/S2: 1000 x 1 KiB up and down, per call under a semaphore of
  ``--concurrency`` (default 64) and in bulk (``artifactio.copy``);
* S3: one 256 MiB object up and down (store API and ``copy``);
* S4: ``walk`` and ``listdir`` of a prefix of 10 000 objects, and the peak RSS
  of each in a child process;
* S5: a local tree of 1000 x 64 KiB files copied, beside ``shutil.copytree``;
* S6: the blocking facade's per-call cost: local ``exists``/``stat`` beside
  ``os`` and fsspec, one small S3 GET beside the same call awaited;
* S7: S1 and S2 on GCS (fake-gcs-server) beside gcsfs;
* S8: peak RSS while streaming a 1 GiB object up and down at default settings.

It prints a table of medians with artifactio/peer ratios and each target of
the issue (met / NOT MET), and writes it all as JSON with ``--json PATH``.
The machine is shared and noisy: read ratios within one run, never absolute
figures across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

# The scenario modules sit beside this file (run as a script, this directory is on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Context, Results, Settings
from _report import print_markdown, print_table, summary, write_json
from _s3_clients import S3Endpoint
from _scenarios_facade import run_s6
from _scenarios_gcs import run_s7
from _scenarios_listing import run_s4
from _scenarios_local_copy import run_s5
from _scenarios_s3 import run_s1_s2_s3
from _scenarios_streaming import run_s8

from artifactio.embedded import SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Callable

BUCKET = "bench"
SCENARIOS = tuple(f"S{i}" for i in range(1, 9))

# (scenarios, runner, S3: "required" | "optional" | "none"), in the order they run.
PLAN: list[tuple[tuple[str, ...], Callable[[Context], None], str]] = [
    (("S5",), run_s5, "none"),
    (("S6",), run_s6, "optional"),
    (("S1", "S2", "S3"), run_s1_s2_s3, "required"),
    (("S4",), run_s4, "required"),
    (("S7",), run_s7, "none"),
    (("S8",), run_s8, "required"),
]


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, one round (a smoke run of every scenario)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per case (median taken; default 3)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        metavar="SN",
        help="run only these scenarios (repeatable: --only S1 --only S4)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH",
        help="measure nothing: print the results a --json run wrote",
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or (args.rounds is not None and args.rounds < 1):
        parser.error("--rounds and --concurrency must be positive")
    settings = (
        Settings.quick_run(args.concurrency)
        if args.quick
        else Settings(concurrency=args.concurrency)
    )
    if args.rounds is not None:
        settings = Settings(**{**settings.__dict__, "rounds": args.rounds})
    return args, settings


def main(argv: list[str] | None = None) -> int:
    args, settings = parse(argv)
    if args.report is not None:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        print_table(report)
        if args.markdown:
            print_markdown(report)
        return 0
    selected = frozenset(args.only or SCENARIOS)
    results = Results()
    started = time.perf_counter()
    server: SeaweedFS | None = None
    with tempfile.TemporaryDirectory(prefix="artifactio-bench-") as tmp:
        try:
            if any(s3 != "none" and selected.intersection(ids) for ids, _, s3 in PLAN):
                if SeaweedFS.available():
                    server = SeaweedFS(buckets=[BUCKET]).start()
                else:
                    results.skip(
                        "S1-S8", "every S3 scenario", "SeaweedFS is not installed (the test extra)"
                    )
            endpoint = S3Endpoint.of(server, BUCKET) if server is not None else None
            ctx = Context(settings, results, Path(tmp), endpoint, selected)
            for ids, runner, s3 in PLAN:
                if not selected.intersection(ids) or (s3 == "required" and endpoint is None):
                    continue
                print(f"running {'/'.join(i for i in ids if i in selected)}...", file=sys.stderr)
                runner(ctx)
        finally:
            if server is not None:
                server.stop()
    report = summary(
        results, {**settings.__dict__, "only": sorted(selected)}, time.perf_counter() - started
    )
    print_table(report)
    if args.markdown:
        print_markdown(report)
    if args.json is not None:
        write_json(report, args.json)
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
