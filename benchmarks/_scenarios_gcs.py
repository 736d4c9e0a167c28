"""S7: S1 and S2 on GCS, against fake-gcs-server, beside gcsfs.

Four cases of ``gcs_count`` objects of ``small_size`` bytes, ``concurrency`` in
flight: up per call (artifactio ``write_bytes``, gcsfs ``_pipe_file``), down per
call (``read_bytes``, ``_cat_file``), up in bulk from a local directory
(``artifactio.copy``, gcsfs ``_put``) and down in bulk to one (``copy``,
``_get``).

fake-gcs-server's memory backend slows down as objects accumulate, so every
timed run gets a fresh server (``artifactio.embedded.FakeGCSServer`` on
127.0.0.1, stopped by its own handle after the run): started, loaded with the
objects a download reads, and the client opened and warmed up, all untimed.

gcsfs is used through ``gcsfs.core.GCSFileSystem``, the JSON-API file system.
Since 2025 the package's top-level ``gcsfs.GCSFileSystem`` is, by default
(``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT``), an extended class that first asks the
Storage Control gRPC API for the bucket's layout; fake-gcs-server never answers
that, and the first write hangs. For an ordinary bucket the extended class
hands every call to the JSON-API one, which is what is measured here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import Case, Contender, EventLoop, alternate, for_each_limited, missing
from _s3_clients import check_report

import artifactio
from artifactio.embedded import FakeGCSServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from _harness import Context

__all__ = ["run_s7"]

BUCKET = "bench"
SRC = "src"
ART, GCSFS = "artifactio", "gcsfs"


class Fresh:
    """One fake-gcs-server and one client on it, for one timed run."""

    def __init__(self, ctx: Context, loop: EventLoop, client: str, preload: int) -> None:
        self.ctx, self.loop, self.client = ctx, loop, client
        c = ctx.settings.concurrency
        self.server = FakeGCSServer(buckets=[BUCKET]).start()
        try:
            self.checker = artifactio.open_store(
                f"gs://{BUCKET}", **self.server.store_options(concurrency=c)
            )
            loop.run(self._open(preload))
        except BaseException:
            self.server.stop()
            raise

    async def _open(self, preload: int) -> None:
        c, data = self.ctx.settings.concurrency, os.urandom(self.ctx.settings.small_size)
        await for_each_limited(
            preload, c, lambda i: self.checker.write_bytes(f"{SRC}/o{i:05d}", data)
        )
        if self.client == ART:
            self.handle: Any = artifactio.open_store(
                f"gs://{BUCKET}", **self.server.store_options(concurrency=c)
            )
            await for_each_limited(c, c, lambda i: self.handle.write_bytes(f"warm/o{i}", b"w"))
        else:
            import aiohttp
            from gcsfs.core import GCSFileSystem

            self.handle = GCSFileSystem(
                endpoint_url=self.server.url,
                token="anon",
                asynchronous=True,
                skip_instance_cache=True,
                session_kwargs={"connector": aiohttp.TCPConnector(limit=c)},
            )
            await (getattr(self.handle, "_set_session", None) or self.handle.set_session)()
            await for_each_limited(
                c, c, lambda i: self.handle._pipe_file(f"{BUCKET}/warm/o{i}", b"w")
            )
        await self.checker.rmtree("warm")

    def close(self) -> None:
        async def close() -> None:
            if self.client == ART:
                await self.handle.aclose()
            else:
                await self.handle._session.close()
            await self.checker.aclose()

        try:
            self.loop.run(close())
        finally:
            self.server.stop()


def run_s7(ctx: Context) -> None:
    """Measure S7 with a fresh fake-gcs-server per timed run."""
    if not FakeGCSServer.available():
        ctx.results.skip("S7", "every row", "fake-gcs-server is not installed (the test extra)")
        return
    clients = [ART]
    reason = missing("gcsfs")
    if reason is None:
        clients.append(GCSFS)
    else:
        ctx.results.skip("S7", "gcsfs", reason)
    s = ctx.settings
    n, c = s.gcs_count, s.concurrency
    src = ctx.tmp / "gcs-small"
    src.mkdir()
    for i in range(n):
        (src / f"o{i:05d}.bin").write_bytes(os.urandom(s.small_size))
    data = os.urandom(s.small_size)
    detail = f"{n} x {s.small_size // 1024} KiB, {c} in flight, a fresh server per run"
    with EventLoop() as loop:
        live: dict[str, Fresh] = {}

        def contender(
            label: str,
            client: str,
            preload: int,
            work: Callable[[Any, str], Awaitable[object]],
            check: Callable[[Fresh, str], Awaitable[None] | None],
        ) -> Contender:
            def before(tag: str) -> None:
                live[tag] = Fresh(ctx, loop, client, preload)

            def run(tag: str) -> None:
                loop.run(work(live[tag].handle, tag))  # type: ignore[arg-type]

            def after(tag: str) -> None:
                fresh = live.pop(tag)
                try:
                    checked = check(fresh, tag)
                    if checked is not None:
                        loop.run(checked)  # type: ignore[arg-type]
                finally:
                    fresh.close()

            return Contender(label, run, after, ours=client == ART, before=before)

        async def uploaded(fresh: Fresh, tag: str) -> None:
            names = await fresh.checker.listdir(tag)
            if len(names) != n:
                raise RuntimeError(f"{fresh.client}: {len(names)} objects under {tag}, not {n}")

        def downloaded(fresh: Fresh, tag: str) -> None:
            dst = ctx.tmp / tag
            files = [Path(d, f) for d, _, fs in os.walk(dst) for f in fs]
            if len(files) != n or any(f.stat().st_size != s.small_size for f in files):
                raise RuntimeError(f"{fresh.client}: {len(files)} files of the wrong sizes")
            shutil.rmtree(dst)

        async def read_each(get: Callable[[int], Awaitable[bytes]], who: str) -> None:
            async def one(i: int) -> None:
                if len(await get(i)) != s.small_size:
                    raise RuntimeError(f"{who}: object {i} has the wrong size")

            await for_each_limited(n, c, one)

        async def art_copy_up(h: Any, tag: str) -> None:
            check_report(
                await artifactio.copy(str(src), (h, tag), recursive=True, concurrency=c),
                "artifactio.copy",
            )

        async def art_copy_down(h: Any, tag: str) -> None:
            check_report(
                await artifactio.copy((h, SRC), str(ctx.tmp / tag), recursive=True, concurrency=c),
                "artifactio.copy",
            )

        def key(i: int) -> str:
            return f"o{i:05d}"

        cases: list[tuple[Case, list[Contender], str]] = [
            (
                Case("S7", "up, per call", "objects/s", n, detail),
                [
                    contender(
                        "artifactio write_bytes",
                        ART,
                        0,
                        lambda h, tag: for_each_limited(
                            n, c, lambda i: h.write_bytes(f"{tag}/{key(i)}", data)
                        ),
                        uploaded,
                    ),
                    contender(
                        "gcsfs _pipe_file",
                        GCSFS,
                        0,
                        lambda h, tag: for_each_limited(
                            n, c, lambda i: h._pipe_file(f"{BUCKET}/{tag}/{key(i)}", data)
                        ),
                        uploaded,
                    ),
                ],
                "gcsfs _pipe_file",
            ),
            (
                Case("S7", "down, per call", "objects/s", n, detail),
                [
                    contender(
                        "artifactio read_bytes",
                        ART,
                        n,
                        lambda h, tag: read_each(lambda i: h.read_bytes(f"{SRC}/{key(i)}"), ART),
                        lambda f, t: None,
                    ),
                    contender(
                        "gcsfs _cat_file",
                        GCSFS,
                        n,
                        lambda h, tag: read_each(
                            lambda i: h._cat_file(f"{BUCKET}/{SRC}/{key(i)}"), GCSFS
                        ),
                        lambda f, t: None,
                    ),
                ],
                "gcsfs _cat_file",
            ),
            (
                Case("S7", "up, bulk", "objects/s", n, f"a local directory of {detail}"),
                [
                    contender("artifactio.copy", ART, 0, art_copy_up, uploaded),
                    contender(
                        "gcsfs _put",
                        GCSFS,
                        0,
                        lambda h, tag: h._put(
                            f"{src}/", f"{BUCKET}/{tag}/", recursive=True, batch_size=c
                        ),
                        uploaded,
                    ),
                ],
                "gcsfs _put",
            ),
            (
                Case("S7", "down, bulk", "objects/s", n, f"{detail}, to a local directory"),
                [
                    contender("artifactio.copy", ART, n, art_copy_down, downloaded),
                    contender(
                        "gcsfs _get",
                        GCSFS,
                        n,
                        lambda h, tag: h._get(
                            f"{BUCKET}/{SRC}/", f"{ctx.tmp / tag}/", recursive=True, batch_size=c
                        ),
                        downloaded,
                    ),
                ],
                "gcsfs _get",
            ),
        ]
        for case, contenders, peer in cases:
            present = [x for x in contenders if x.ours or GCSFS in clients]
            alternate(ctx.results, case, present, s.rounds)
            ctx.results.target("S7", case.name, contenders[0].client, peer, 2.0)
    shutil.rmtree(src)
