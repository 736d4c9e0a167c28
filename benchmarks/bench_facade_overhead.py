"""The facade's loop-thread hop: its own runner against anyio's ``BlockingPortal``, in one run.

A design measurement (cited in ``src/artifactio/_sync/_runner.py``): ``exists``
on a memory store whose every call suspends (``SuspendingMemoryStore``, so the
facade must run it on its loop thread) through

* ``ArtifactStore`` called from the main thread: its runner runs the call on
  the main thread's own event loop, no hop (the baseline);
* the same facade's loop-thread hop (what calls from other threads, files and
  iterators take), through its runner directly;
* the same store behind a facade whose calls go through anyio's
  ``BlockingPortal`` (``start_blocking_portal``): what building the runner on
  the portal would cost;

and, for scale, ``os.path.exists`` on a local file. The facade's cost against
``os``, fsspec and on S3 is S6 of ``bench_suite.py``.

Each row makes as many calls per run as the facade makes in ``--seconds``;
then ``--rounds`` rounds run every row once in turn (so drift hits all rows
alike) and each row reports the median of its rounds.

Run: ``python benchmarks/bench_facade_overhead.py [--json] [--rounds N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from anyio.from_thread import start_blocking_portal

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness sits here
from _harness import calls_lasting

import artifactio
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from anyio.from_thread import BlockingPortal

T = TypeVar("T")


class PortalArtifactStore(artifactio.ArtifactStore):
    """The blocking facade with every call made through anyio's ``BlockingPortal``.

    As a runner built on the portal would make it: ``start_task_soon`` on the
    portal, wait for the result, cancel the task if the wait is interrupted.
    """

    def __init__(self, store: artifactio.AsyncArtifactStore, portal: BlockingPortal) -> None:
        super().__init__(store)
        self._portal = portal

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self._portal.start_task_soon(_awaited, coro)
        try:
            result: T = future.result()
        except BaseException:
            future.cancel()
            raise
        return result


async def _awaited(coro: Coroutine[Any, Any, T]) -> T:
    return await coro


def per_call_us(rows: list[Callable[[], object]], *, seconds: float, rounds: int) -> list[float]:
    """Median over ``rounds`` interleaved rounds of each row's mean time per call, in µs."""
    number = calls_lasting(rows[0], seconds)
    samples: list[list[float]] = [[] for _ in rows]
    for _ in range(rounds):
        for func, runs in zip(rows, samples, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                func()
            runs.append((time.perf_counter() - start) / number * 1e6)
    return [statistics.median(runs) for runs in samples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--rounds", type=int, default=7, help="rounds over all rows (median)")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one run")
    args = parser.parse_args(argv)

    looped = artifactio.ArtifactStore(SuspendingMemoryStore("memory://bench-facade"))
    looped.write_bytes("data.bin", b"x" * 1024)

    def hopped() -> Coroutine[Any, Any, bool]:
        return looped.async_store.exists("data.bin")

    with (
        tempfile.TemporaryDirectory(prefix="artifactio-bench-") as tmp,
        start_blocking_portal() as portal,
    ):
        path = os.path.join(tmp, "data.bin")
        with open(path, "wb") as f:
            f.write(b"x" * 1024)
        on_portal = PortalArtifactStore(SuspendingMemoryStore("memory://bench-facade"), portal)
        rows: list[tuple[str, Callable[[], object]]] = [
            ("ArtifactStore, main thread (its own loop)", lambda: looped.exists("data.bin")),
            ("  same, its runner's loop-thread hop", lambda: looped._runner.run(hopped())),
            ("  same, on anyio's BlockingPortal", lambda: on_portal.exists("data.bin")),
            ("os.path.exists (local file, for scale)", lambda: os.path.exists(path)),
        ]
        try:
            for label, func in rows:
                if func() is not True:
                    raise RuntimeError(f"{label}: the file is not there")
            timings = per_call_us(
                [func for _, func in rows], seconds=args.seconds, rounds=args.rounds
            )
        finally:
            looped.close()
            on_portal.close()

    base = timings[0]
    results = [
        {"name": label, "us_per_call": us, "ratio_to_runner": us / base}
        for (label, _), us in zip(rows, timings, strict=True)
    ]
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
        return 0
    width = max(len(label) for label, _ in rows)
    print(f"{'exists() on a store that suspends':<{width}}  {'us/call':>9}  {'x runner':>9}")
    for r in results:
        print(f"{r['name']:<{width}}  {r['us_per_call']:>9.2f}  {r['ratio_to_runner']:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
