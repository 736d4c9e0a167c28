"""S1, S2, S3: small objects up and down (per call and in bulk), one big object up and down, on S3.

* S1 up, per call: ``small_count`` objects of ``small_size`` bytes, one call each,
  ``concurrency`` calls in flight under a semaphore: artifactio ``write_bytes``,
  s3fs ``_pipe_file``, obstore ``put_async``, aiobotocore ``put_object``.
* S1 up, bulk: the same as files of a local directory: ``artifactio.copy``
  (recursive), s3fs ``_put`` (recursive, ``batch_size=concurrency``), obstore
  (one ``put_async`` per file).
* S2 down, per call and bulk: the same objects (written once, before timing)
  read back: ``read_bytes``, ``_cat_file``, ``get_async``, ``get_object``; and
  copied to a local directory (``artifactio.copy``, s3fs ``_get``, obstore).
* S3: one ``big_size`` file up and down: artifactio's store API (``open`` and
  ``write``/``read`` in ``part_size`` pieces) and ``artifactio.copy``, obstore
  (multipart ``put_async``, a streamed ``get_async``), s3fs ``_put_file`` /
  ``_get_file`` and boto3's ``TransferManager``.

Every upload lands below a fresh prefix, is checked (object count and one
object's bytes, or the big object's size) and removed, all untimed; every
download is checked (sizes, file count, the big file's SHA-256).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _harness import (
    Case,
    Contender,
    EventLoop,
    MiB,
    alternate,
    for_each_limited,
    missing,
    on_loop,
)
from _s3_clients import (
    aiobotocore_client,
    artifactio_store,
    boto3_manager,
    check_report,
    obstore_download_tree,
    obstore_store,
    obstore_upload_tree,
    s3fs_filesystem,
)

import artifactio

if TYPE_CHECKING:
    from _harness import Context
    from _s3_clients import S3Endpoint

__all__ = ["run_s1_s2_s3"]

Op = Callable[[str, int], Awaitable[object]]
"""A per-call operation: ``op(prefix, i)`` writes or reads object ``i`` below ``prefix``."""

SRC = "s2/src"
"""The objects every S2 run reads (written once, before timing)."""
REF = "s3/ref.bin"
"""The big object every S3 download reads (uploaded once, before timing)."""


def _kb(size: int) -> str:
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


class S3Clients:
    """Every S3 client that imports, opened on one event loop; closed together."""

    def __init__(self, ctx: Context, ep: S3Endpoint, loop: EventLoop) -> None:
        s = ctx.settings
        self.ep, self.loop, self.c = ep, loop, s.concurrency
        self.stack = contextlib.AsyncExitStack()
        self.store = artifactio_store(ep, concurrency=s.concurrency, part_size=s.part_size)
        self.checker = artifactio_store(ep, concurrency=s.concurrency)
        self.s3fs: Any = None
        self.obstore: Any = None
        self.aiobotocore: Any = None
        self.boto3: tuple[Any, Any] | None = None
        for peer in ("s3fs", "obstore", "aiobotocore", "boto3"):
            reason = missing(peer)
            if reason is not None:
                ctx.results.skip("S1-S3", peer, reason)
        loop.run(self._open(ctx))

    async def _open(self, ctx: Context) -> None:
        s = ctx.settings
        if missing("s3fs") is None:
            self.s3fs = await s3fs_filesystem(self.ep, s.concurrency)
        if missing("obstore") is None:
            self.obstore = obstore_store(self.ep)
        if missing("aiobotocore") is None:
            self.aiobotocore = await self.stack.enter_async_context(
                aiobotocore_client(self.ep, s.concurrency)
            )
        if missing("boto3") is None:
            self.boto3 = boto3_manager(self.ep, s.concurrency, s.part_size)

    def close(self) -> None:
        async def close() -> None:
            if self.s3fs is not None:
                await self.s3fs._s3.close()
            await self.stack.aclose()
            await self.store.aclose()
            await self.checker.aclose()

        self.loop.run(close())
        if self.boto3 is not None:
            self.boto3[1].shutdown()
            self.boto3[0].close()

    def key(self, key: str) -> str:
        """``key`` as s3fs names it (``bucket/key``)."""
        return f"{self.ep.bucket}/{key}"


def run_s1_s2_s3(ctx: Context) -> None:
    """Measure S1, S2 and S3 on the suite's SeaweedFS."""
    assert ctx.s3 is not None
    with EventLoop() as loop:
        clients = S3Clients(ctx, ctx.s3, loop)
        try:
            if ctx.wants("S1", "S2"):
                _s1_s2(ctx, clients)
            if ctx.wants("S3"):
                _s3(ctx, clients)
        finally:
            clients.close()


# ---------------------------------------------------------------- S1 and S2


def _small_inputs(ctx: Context) -> tuple[Path, bytes]:
    s = ctx.settings
    src = ctx.tmp / "small"
    src.mkdir(exist_ok=True)
    for i in range(s.small_count):
        (src / f"o{i:05d}.bin").write_bytes(os.urandom(s.small_size))
    return src, (src / "o00000.bin").read_bytes()


def _s1_s2(ctx: Context, cl: S3Clients) -> None:
    s, loop = ctx.settings, cl.loop
    n, c = s.small_count, s.concurrency
    src, first = _small_inputs(ctx)
    data = os.urandom(s.small_size)
    detail = f"{n} x {_kb(s.small_size)}, {c} in flight"

    def name(prefix: str, i: int) -> str:
        return f"{prefix}/o{i:05d}.bin"

    # Per-call writers and readers, each as (client label, ours, op(prefix, i)).
    async def art_put(p: str, i: int) -> None:
        await cl.store.write_bytes(name(p, i), data)

    async def art_get(p: str, i: int) -> bytes:
        return await cl.store.read_bytes(name(p, i))

    async def s3fs_put(p: str, i: int) -> None:
        await cl.s3fs._pipe_file(cl.key(name(p, i)), data)

    async def s3fs_get(p: str, i: int) -> bytes:
        got: bytes = await cl.s3fs._cat_file(cl.key(name(p, i)))
        return got

    async def obs_put(p: str, i: int) -> None:
        import obstore

        await obstore.put_async(cl.obstore, name(p, i), data)

    async def obs_get(p: str, i: int) -> bytes:
        import obstore

        result = await obstore.get_async(cl.obstore, name(p, i))
        return bytes(await result.bytes_async())

    async def abc_put(p: str, i: int) -> None:
        await cl.aiobotocore.put_object(Bucket=cl.ep.bucket, Key=name(p, i), Body=data)

    async def abc_get(p: str, i: int) -> bytes:
        answer = await cl.aiobotocore.get_object(Bucket=cl.ep.bucket, Key=name(p, i))
        async with answer["Body"] as body:
            got: bytes = await body.read()
        return got

    per_call: list[tuple[str, str, Op, Op]] = [
        ("artifactio write_bytes", "artifactio read_bytes", art_put, art_get)
    ]
    if cl.s3fs is not None:
        per_call.append(("s3fs _pipe_file", "s3fs _cat_file", s3fs_put, s3fs_get))
    if cl.obstore is not None:
        per_call.append(("obstore put_async", "obstore get_async", obs_put, obs_get))
    if cl.aiobotocore is not None:
        per_call.append(("aiobotocore put_object", "aiobotocore get_object", abc_put, abc_get))

    async def uploaded(prefix: str, who: str) -> None:
        names = await cl.checker.listdir(prefix)
        if len(names) != n:
            raise RuntimeError(f"{who}: {len(names)} objects under {prefix}, expected {n}")
        if await cl.checker.read_bytes(name(prefix, 0)) not in (data, first):
            raise RuntimeError(f"{who}: {prefix}/o00000.bin differs from what was written")
        await cl.checker.rmtree(prefix)

    def downloaded(tag: str, who: str) -> None:
        dst = ctx.tmp / tag
        files = [Path(d, f) for d, _, fs in os.walk(dst) for f in fs]
        if len(files) != n or any(f.stat().st_size != s.small_size for f in files):
            raise RuntimeError(f"{who}: {len(files)} files of the wrong sizes in {dst}")
        shutil.rmtree(dst)

    def writer(label: str, put: Op) -> Contender:
        async def work(tag: str) -> None:
            await for_each_limited(n, c, lambda i: put(f"s1/{tag}", i))

        return on_loop(
            loop,
            label,
            work,
            lambda tag: uploaded(f"s1/{tag}", label),
            ours=label.startswith("artifactio"),
        )

    def reader(label: str, get: Op) -> Contender:
        async def one(i: int) -> None:
            got = await get(SRC, i)
            if not isinstance(got, bytes) or len(got) != s.small_size:
                raise RuntimeError(f"{label}: {name(SRC, i)} read back wrong")

        return on_loop(
            loop,
            label,
            lambda tag: for_each_limited(n, c, one),
            ours=label.startswith("artifactio"),
        )

    def bulk_up(label: str, work: Callable[[str], Awaitable[object]]) -> Contender:
        return on_loop(
            loop,
            label,
            work,
            lambda tag: uploaded(f"s1b/{tag}", label),
            ours=label.startswith("artifactio"),
        )

    def bulk_down(label: str, work: Callable[[str], Awaitable[object]]) -> Contender:
        contender = on_loop(loop, label, work, ours=label.startswith("artifactio"))
        contender.after = lambda tag: downloaded(tag, label)
        return contender

    # Warm-up, untimed: every client's connections and first requests.
    async def warm_up(op: Op, prefix: str, count: int) -> None:
        await for_each_limited(count, c, lambda i: op(prefix, i))

    async def warm() -> None:
        for label, _, put, _ in per_call:
            await warm_up(put, f"warm/{label[:4]}", c)
        await warm_up(art_put, SRC, n)  # the objects S2 reads
        for _, _, _, get in per_call:
            await warm_up(get, SRC, c)
        await cl.checker.rmtree("warm")

    loop.run(warm())

    case = Case("S1", "up, per call", "objects/s", n, detail)
    alternate(ctx.results, case, [writer(w, put) for w, _, put, _ in per_call], s.rounds)
    ctx.results.target("S1", case.name, "artifactio write_bytes", "s3fs _pipe_file", 1.5)

    case = Case("S2", "down, per call", "objects/s", n, detail)
    alternate(ctx.results, case, [reader(r, get) for _, r, _, get in per_call], s.rounds)
    ctx.results.target("S2", case.name, "artifactio read_bytes", "s3fs _cat_file", 2.5)
    ctx.results.target("S2", case.name, "artifactio read_bytes", "obstore get_async", 0.8)

    # S1 up, bulk: a local directory to a prefix.
    async def art_up(tag: str) -> None:
        report = await artifactio.copy(
            str(src), (cl.store, f"s1b/{tag}"), recursive=True, concurrency=c
        )
        check_report(report, "artifactio.copy")

    async def s3fs_up(tag: str) -> None:
        await cl.s3fs._put(f"{src}/", cl.key(f"s1b/{tag}/"), recursive=True, batch_size=c)

    async def obstore_up(tag: str) -> None:
        await obstore_upload_tree(cl.obstore, src, f"s1b/{tag}", c)

    case = Case("S1", "up, bulk", "objects/s", n, f"a local directory of {detail}")
    ups = [bulk_up("artifactio.copy", art_up)]
    if cl.s3fs is not None:
        ups.append(bulk_up("s3fs _put", s3fs_up))
    if cl.obstore is not None:
        ups.append(bulk_up("obstore put_async (each file)", obstore_up))
    alternate(ctx.results, case, ups, s.rounds)
    ctx.results.target("S1", case.name, "artifactio.copy", "s3fs _put", 2.0)
    ctx.results.target("S1", case.name, "artifactio.copy", "obstore put_async (each file)", 0.8)

    # S2 down, bulk: the prefix SRC to a local directory.
    async def art_down(tag: str) -> None:
        report = await artifactio.copy(
            (cl.store, SRC), str(ctx.tmp / tag), recursive=True, concurrency=c
        )
        check_report(report, "artifactio.copy")

    async def s3fs_down(tag: str) -> None:
        await cl.s3fs._get(cl.key(f"{SRC}/"), f"{ctx.tmp / tag}/", recursive=True, batch_size=c)

    async def obstore_down(tag: str) -> None:
        await obstore_download_tree(cl.obstore, SRC, ctx.tmp / tag, c)

    case = Case("S2", "down, bulk", "objects/s", n, f"{detail}, to a local directory")
    downs = [bulk_down("artifactio.copy", art_down)]
    if cl.s3fs is not None:
        downs.append(bulk_down("s3fs _get", s3fs_down))
    if cl.obstore is not None:
        downs.append(bulk_down("obstore get_async (each object)", obstore_down))
    alternate(ctx.results, case, downs, s.rounds)
    ctx.results.target("S2", case.name, "artifactio.copy", "s3fs _get", 2.5)
    ctx.results.target("S2", case.name, "artifactio.copy", "obstore get_async (each object)", 0.8)

    loop.run(cl.checker.rmtree(SRC))
    shutil.rmtree(src)


# ---------------------------------------------------------------------- S3


def _big_input(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in 4 MiB blocks; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _s3(ctx: Context, cl: S3Clients) -> None:
    s, loop, c, part = ctx.settings, cl.loop, ctx.settings.concurrency, ctx.settings.part_size
    big = ctx.tmp / "big.bin"
    sha = _big_input(big, s.big_size)
    detail = f"one {s.big_size // MiB} MiB object, {part // MiB} MiB parts, {c} in flight"
    loop.run(_check(artifactio.copy(str(big), (cl.checker, REF))))

    async def store_up(key: str) -> None:
        async with cl.store.open(key, "wb") as out:
            with open(big, "rb") as f:
                while block := f.read(part):
                    await out.write(block)

    async def store_down(dst: Path) -> None:
        async with cl.store.open(REF, "rb") as src:
            with open(dst, "wb") as f:
                while block := await src.read(part):
                    f.write(block)

    async def obstore_up(key: str) -> None:
        import obstore

        await obstore.put_async(cl.obstore, key, big, chunk_size=part, max_concurrency=c)

    async def obstore_down(dst: Path) -> None:
        import obstore

        result = await obstore.get_async(cl.obstore, REF)
        with open(dst, "wb") as f:
            async for chunk in result.stream(min_chunk_size=part):
                f.write(chunk)

    async def boto3_up(key: str) -> None:
        assert cl.boto3 is not None
        await asyncio.to_thread(cl.boto3[1].upload(str(big), cl.ep.bucket, key).result)

    async def boto3_down(dst: Path) -> None:
        assert cl.boto3 is not None
        await asyncio.to_thread(cl.boto3[1].download(cl.ep.bucket, REF, str(dst)).result)

    async def art_copy_up(key: str) -> None:
        await _check(artifactio.copy(str(big), (cl.store, key), concurrency=c, part_size=part))

    async def art_copy_down(dst: Path) -> None:
        await _check(artifactio.copy((cl.store, REF), str(dst), concurrency=c, part_size=part))

    async def s3fs_up(key: str) -> None:
        await cl.s3fs._put_file(str(big), cl.key(key), chunksize=part)

    async def s3fs_down(dst: Path) -> None:
        await cl.s3fs._get_file(cl.key(REF), str(dst))

    up: list[tuple[str, Callable[[str], Awaitable[None]]]] = [
        ("artifactio store.open('wb')", store_up),
        ("artifactio.copy", art_copy_up),
    ]
    down: list[tuple[str, Callable[[Path], Awaitable[None]]]] = [
        ("artifactio store.open('rb')", store_down),
        ("artifactio.copy", art_copy_down),
    ]
    if cl.obstore is not None:
        up.append(("obstore put_async", obstore_up))
        down.append(("obstore get_async", obstore_down))
    if cl.s3fs is not None:
        up.append(("s3fs _put_file", s3fs_up))
        down.append(("s3fs _get_file", s3fs_down))
    if cl.boto3 is not None:
        up.append(("boto3 TransferManager", boto3_up))
        down.append(("boto3 TransferManager", boto3_down))

    async def uploaded(key: str, who: str) -> None:
        size = await cl.checker.size(key)
        if size != s.big_size:
            raise RuntimeError(f"{who}: {key} holds {size} bytes, expected {s.big_size}")
        await cl.checker.remove(key)

    def downloaded(dst: Path, who: str) -> None:
        if _sha256(dst) != sha:
            raise RuntimeError(f"{who}: the downloaded file differs from the object")
        dst.unlink()

    def uploader(label: str, op: Callable[[str], Awaitable[None]]) -> Contender:
        return on_loop(
            loop,
            label,
            lambda tag: op(f"s3/{tag}.bin"),
            lambda tag: uploaded(f"s3/{tag}.bin", label),
            ours=label.startswith("artifactio"),
        )

    def downloader(label: str, op: Callable[[Path], Awaitable[None]]) -> Contender:
        contender = on_loop(
            loop, label, lambda tag: op(ctx.tmp / f"{tag}.bin"), ours=label.startswith("artifactio")
        )
        contender.after = lambda tag: downloaded(ctx.tmp / f"{tag}.bin", label)
        return contender

    case = Case("S3", "up", "MB/s", s.big_size, detail)
    alternate(ctx.results, case, [uploader(label, op) for label, op in up], s.rounds)
    for ours in ("artifactio store.open('wb')", "artifactio.copy"):
        ctx.results.target("S3", case.name, ours, "obstore put_async", 1.0)

    case = Case("S3", "down", "MB/s", s.big_size, detail)
    alternate(ctx.results, case, [downloader(label, op) for label, op in down], s.rounds)
    for ours in ("artifactio store.open('rb')", "artifactio.copy"):
        ctx.results.target("S3", case.name, ours, "obstore get_async", 1.0)

    loop.run(cl.checker.remove(REF))
    big.unlink()


async def _check(transfer: Awaitable[artifactio.TransferReport]) -> None:
    check_report(await transfer, "artifactio.copy")
