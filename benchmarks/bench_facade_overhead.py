"""Per-call cost of the blocking facade, against ``os.path.exists`` in the same run.

Times ``exists`` on one existing file through:

* ``os.path.exists`` (the baseline every ratio is taken against);
* fsspec's ``LocalFileSystem().exists`` (what artifact stores built on fsspec pay);
* ``ArtifactStore`` on ``memory://`` and on a local directory, both driven inline
  in the caller's thread (no event loop, no thread hop);
* ``ArtifactStore`` over stores that must run on the facade's loop thread: a
  memory store whose primitives suspend (the pure hop cost) and the local store
  with inline driving switched off (hop + anyio worker thread per blocking call).

Run: ``python benchmarks/bench_facade_overhead.py [--json] [--repeat N] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import artifactio
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable


def _local_store_class() -> type[Any] | None:
    try:
        from artifactio.backends.local import LocalStore
    except ImportError:
        return None
    return LocalStore


def per_call_us(func: Callable[[], object], *, seconds: float, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean time per call, in microseconds."""
    for _ in range(100):  # warm up (starts loop threads, fills caches)
        func()
    number = 1
    while True:  # calibrate: one run should last about ``seconds``
        start = time.perf_counter()
        for _ in range(number):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            break
        number *= 4
    number = max(1, int(number * seconds / elapsed))
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (median taken)")
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one run")
    args = parser.parse_args(argv)

    rows: list[tuple[str, Callable[[], object]]] = []
    closers: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="artifactio-bench-") as tmp:
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

        if local_cls is not None:
            local_looped_cls = type("LoopLocalStore", (local_cls,), {"inline_capable": False})
            local_looped = artifactio.ArtifactStore(local_looped_cls(tmp))
            closers.append(local_looped.close)
            rows.append(("ArtifactStore local, loop thread", lambda: local_looped.exists(path)))

        try:
            results = []
            for label, func in rows:
                assert func() is True, label
                results.append(
                    {
                        "name": label,
                        "us_per_call": per_call_us(func, seconds=args.seconds, repeat=args.repeat),
                    }
                )
        finally:
            for close in closers:
                close()

    base = results[0]["us_per_call"]
    for row in results:
        row["ratio_to_os_path_exists"] = row["us_per_call"] / base
    if args.json:
        print(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
        return 0
    width = max(len(str(row["name"])) for row in results)
    print(f"{'exists() on one existing file':<{width}}  {'us/call':>9}  {'x os.path':>9}")
    for row in results:
        print(
            f"{row['name']:<{width}}  {row['us_per_call']:>9.2f}  "
            f"{row['ratio_to_os_path_exists']:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
