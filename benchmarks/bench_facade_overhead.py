"""Per-call cost of the blocking facade, against ``os.path.exists`` in the same run.

Times ``exists`` on one existing file through:

* ``os.path.exists`` (the baseline every ratio is taken against);
* fsspec's ``LocalFileSystem().exists`` (what artifact stores built on fsspec pay);
* ``ArtifactStore`` on ``memory://`` and on a local directory, both driven inline
  in the caller's thread (no event loop, no thread hop);
* ``ArtifactStore`` over stores that must run on the facade's loop thread: a
  memory store whose primitives suspend (the pure hop cost) and the local store
  with inline driving switched off (hop + anyio worker thread per blocking call);
* the same suspending memory store behind a facade whose calls go through
  anyio's ``BlockingPortal`` (``start_blocking_portal``) instead of the facade's
  runner: what building the runner on the portal would cost.

Each row is calibrated to last ``--seconds`` per run; then ``--rounds`` rounds
run every row once in turn (so drift hits all rows alike) and each row reports
the median of its rounds.

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
from typing import TYPE_CHECKING, Any, TypeVar

from anyio.from_thread import start_blocking_portal

import artifactio
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from anyio.from_thread import BlockingPortal

T = TypeVar("T")


def _local_store_class() -> type[Any] | None:
    try:
        from artifactio.backends.local import LocalStore
    except ImportError:
        return None
    return LocalStore


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


def calibrate(func: Callable[[], object], seconds: float) -> int:
    """How many calls of ``func`` last about ``seconds`` (after a warm-up)."""
    for _ in range(100):  # warm up (starts loop threads, fills caches)
        func()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            return max(1, int(number * seconds / elapsed))
        number *= 4


def per_call_us(rows: list[Callable[[], object]], *, seconds: float, rounds: int) -> list[float]:
    """Median over ``rounds`` interleaved rounds of each row's mean time per call, in µs."""
    numbers = [calibrate(func, seconds) for func in rows]
    samples: list[list[float]] = [[] for _ in rows]
    for _ in range(rounds):
        for func, number, runs in zip(rows, numbers, samples, strict=True):
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

    rows: list[tuple[str, Callable[[], object]]] = []
    closers: list[Callable[[], None]] = []
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-bench-") as tmp,
        start_blocking_portal() as portal,
    ):
        path = os.path.join(tmp, "data.bin")
        with open(path, "wb") as f:
            f.write(b"x" * 1024)
        rows.append(("os.path.exists", lambda: os.path.exists(path)))
        try:
            from fsspec.implementations.local import LocalFileSystem

            fs = LocalFileSystem()
            rows.append(("fsspec LocalFileSystem().exists", lambda: fs.exists(path)))
        except ImportError:
            print("fsspec is not installed: skipping its row", file=sys.stderr)

        memory = artifactio.ArtifactStore("memory://bench-facade")
        memory.write_bytes("data.bin", b"x" * 1024)
        closers.append(memory.close)
        rows.append(("ArtifactStore memory:// (inline)", lambda: memory.exists("data.bin")))

        local_cls = _local_store_class()
        if local_cls is not None:
            local = artifactio.ArtifactStore(tmp)
            closers.append(local.close)
            rows.append(("ArtifactStore local (inline)", lambda: local.exists(path)))
        else:
            print("artifactio.backends.local is missing: skipping local rows", file=sys.stderr)

        looped = artifactio.ArtifactStore(SuspendingMemoryStore("memory://bench-facade"))
        closers.append(looped.close)
        rows.append(("ArtifactStore memory, loop thread", lambda: looped.exists("data.bin")))

        on_portal = PortalArtifactStore(SuspendingMemoryStore("memory://bench-facade"), portal)
        closers.append(on_portal.close)
        rows.append(("  same, on anyio's BlockingPortal", lambda: on_portal.exists("data.bin")))

        if local_cls is not None:
            local_looped_cls = type("LoopLocalStore", (local_cls,), {"inline_capable": False})
            local_looped = artifactio.ArtifactStore(local_looped_cls(tmp))
            closers.append(local_looped.close)
            rows.append(("ArtifactStore local, loop thread", lambda: local_looped.exists(path)))

        try:
            for label, func in rows:
                assert func() is True, label
            timings = per_call_us(
                [func for _, func in rows], seconds=args.seconds, rounds=args.rounds
            )
        finally:
            for close in closers:
                close()

    base = timings[0]
    results = [
        {"name": label, "us_per_call": us, "ratio_to_os_path_exists": us / base}
        for (label, _), us in zip(rows, timings, strict=True)
    ]
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
        return 0
    width = max(len(label) for label, _ in rows)
    print(f"{'exists() on one existing file':<{width}}  {'us/call':>9}  {'x os.path':>9}")
    for label, us in zip((label for label, _ in rows), timings, strict=True):
        print(f"{label:<{width}}  {us:>9.2f}  {us / base:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
