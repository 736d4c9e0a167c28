"""S6: what the blocking facade ``ArtifactStore`` adds to a call.

* Local metadata calls on one existing 1 KiB file: ``ArtifactStore(dir).exists``
  and ``.stat`` beside fsspec's ``LocalFileSystem().exists`` / ``.info`` and
  ``os.path.exists`` / ``os.stat``; for context, the facade's ``exists`` on
  ``memory://`` (driven inline too) and on a store that must run on the
  facade's event loop (``SuspendingMemoryStore``: called from the main thread,
  the cost of ``run_until_complete`` on the facade's own loop there).
  Every contender makes the same number of calls per run, as many as the
  facade's call makes in ``call_seconds``.
* Async local calls, for scale: ``await store.exists`` on the local store
  (its file-system calls in worker threads) beside ``aiofiles.os.path.exists``
  (asyncio's default executor), ``concurrency`` calls in flight.
* S3: ``facade_gets`` GETs of one 1 KiB object, one after the other, through
  ``ArtifactStore.read_bytes`` (from the main thread: on the facade's own loop
  there, no thread hop) beside
  ``await store.read_bytes`` on this thread's event loop (another store of the
  same options, so each side keeps its connection warm).

The local rows read µs per call; the targets compare the facade with fsspec
(the issue allows 2x) and, on S3, the facade with the awaited call (5 %).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from _harness import (
    Case,
    Contender,
    EventLoop,
    alternate,
    calls_lasting,
    for_each_limited,
    missing,
)
from _s3_clients import artifactio_store

import artifactio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from _harness import Context

__all__ = ["run_s6"]

ONE = "s6/one.bin"


def run_s6(ctx: Context) -> None:
    """Measure S6: the local rows always, the S3 rows when SeaweedFS runs."""
    _local(ctx)
    _async_local(ctx)
    if ctx.s3 is None:
        ctx.results.skip("S6", "the S3 GET rows", "SeaweedFS is not installed")
    else:
        _s3(ctx)


def _run_calls(func: Callable[[], object], calls: int) -> Callable[[str], None]:
    def run(tag: str) -> None:
        for _ in range(calls):
            func()

    return run


def _local(ctx: Context) -> None:
    from artifactio.testing import SuspendingMemoryStore

    s = ctx.settings
    root = ctx.tmp / "s6"
    root.mkdir()
    path = str(root / "data.bin")
    with open(path, "wb") as f:
        f.write(b"x" * 1024)
    local = artifactio.ArtifactStore(str(root))
    memory = artifactio.ArtifactStore("memory://bench-s6")
    memory.write_bytes("data.bin", b"x" * 1024)
    looped = artifactio.ArtifactStore(SuspendingMemoryStore("memory://bench-s6"))
    fs: Any = None
    reason = missing("fsspec")
    if reason is None:
        from fsspec.implementations.local import LocalFileSystem

        fs = LocalFileSystem()
    else:
        ctx.results.skip("S6", "fsspec local", reason)
    try:
        exists: list[tuple[str, Callable[[], object], bool]] = [
            ("ArtifactStore(dir).exists", lambda: local.exists(path), True),
            ("fsspec LocalFileSystem.exists", lambda: fs.exists(path), fs is not None),
            ("os.path.exists", lambda: os.path.exists(path), True),
            ("ArtifactStore('memory://').exists", lambda: memory.exists("data.bin"), True),
            ("ArtifactStore(loop-thread store).exists", lambda: looped.exists("data.bin"), True),
        ]
        stat: list[tuple[str, Callable[[], object], bool]] = [
            ("ArtifactStore(dir).stat", lambda: local.stat(path), True),
            ("fsspec LocalFileSystem.info", lambda: fs.info(path), fs is not None),
            ("os.stat", lambda: os.stat(path), True),
        ]
        for name, rows in (("local exists", exists), ("local stat", stat)):
            for label, func, present in rows:
                if present and not func():
                    raise RuntimeError(f"{label}: the file is not there")
            calls = calls_lasting(rows[0][1], s.call_seconds)
            case = Case("S6", name, "us/call", calls, "one existing 1 KiB file, one call at a time")
            contenders = [
                Contender(label, _run_calls(func, calls), ours=label.startswith("ArtifactStore"))
                for label, func, present in rows
                if present
            ]
            alternate(ctx.results, case, contenders, max(s.rounds, 5) if not s.quick else 1)
            ctx.results.target("S6", name, rows[0][0], rows[1][0], 2.0)
    finally:
        for facade in (local, memory, looped):
            facade.close()


def _async_local(ctx: Context) -> None:
    import aiofiles.os

    s = ctx.settings
    root = ctx.tmp / "s6-async"
    root.mkdir()
    path = str(root / "data.bin")
    with open(path, "wb") as f:
        f.write(b"x" * 1024)
    calls = 640 if s.quick else 6400
    with EventLoop() as loop:
        store = artifactio.open_store(str(root))

        def run(check: Callable[[], Awaitable[bool]]) -> Callable[[str], None]:
            async def one(i: int) -> None:
                if not await check():
                    raise RuntimeError("the file is not there")

            return lambda tag: loop.run(for_each_limited(calls, s.concurrency, one))

        case = Case(
            "S6",
            "async local exists",
            "us/call",
            calls,
            f"one existing 1 KiB file, {s.concurrency} calls in flight",
        )
        contenders = [
            Contender("await store.exists", run(lambda: store.exists(path)), ours=True),
            Contender("aiofiles.os.path.exists", run(lambda: aiofiles.os.path.exists(path))),
        ]
        try:
            alternate(ctx.results, case, contenders, max(s.rounds, 5) if not s.quick else 1)
        finally:
            loop.run(store.aclose())


def _s3(ctx: Context) -> None:
    assert ctx.s3 is not None
    s, n = ctx.settings, ctx.settings.facade_gets
    data = os.urandom(1024)
    facade = artifactio.ArtifactStore(artifactio_store(ctx.s3))
    with EventLoop() as loop:
        store = artifactio_store(ctx.s3)
        try:
            facade.write_bytes(ONE, data)

            def facade_gets(tag: str) -> None:
                for _ in range(n):
                    if facade.read_bytes(ONE) != data:
                        raise RuntimeError("ArtifactStore.read_bytes: wrong bytes")

            async def awaited(count: int) -> None:
                for _ in range(count):
                    if await store.read_bytes(ONE) != data:
                        raise RuntimeError("store.read_bytes: wrong bytes")

            for _ in range(20):  # warm-up, untimed: loop thread, client, connection
                facade.read_bytes(ONE)
            loop.run(awaited(20))
            case = Case(
                "S6", "S3 GET, one at a time", "us/call", n, f"{n} GETs of one 1 KiB object"
            )
            contenders = [
                Contender("ArtifactStore.read_bytes (facade)", facade_gets, ours=True),
                Contender("await store.read_bytes", lambda tag: loop.run(awaited(n)), ours=True),
            ]
            alternate(ctx.results, case, contenders, max(s.rounds, 5) if not s.quick else 1)
            ctx.results.target(
                "S6", case.name, "ArtifactStore.read_bytes (facade)", "await store.read_bytes", 1.05
            )
            facade.remove(ONE)
        finally:
            loop.run(store.aclose())
            facade.close()
