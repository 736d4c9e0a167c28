"""S4: ``walk`` and ``listdir`` of a prefix of 10 000 objects, with the peak RSS of each.

The objects (one flat prefix of ``list_count``, another of ``list_small``, and a
tiny one for warm-ups) are written once, as fast as the installed clients allow
(obstore if present, else artifactio), and read by every round:

* rates: artifactio ``walk`` (every file name of every level counted) and
  ``listdir``, s3fs ``_walk`` and ``_ls`` (its listing cache emptied before each
  run), obstore ``list`` and ``list_with_delimiter``, aiobotocore's
  ``ListObjectsV2`` paginator;
* memory: artifactio's and s3fs's walk and listing of each prefix in a child
  process (:mod:`_memory`), once per run: the peak RSS growth at ``list_count``
  objects, and the growth per object between the two prefixes. "Memory flat in
  the number of objects" is read as at most 1 KiB per extra object: a name costs
  ~100 bytes, so a client that keeps a record per object shows far above it.
  (``--quick`` measures the larger prefix only: its prefixes are too small for
  a slope.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _harness import Case, Contender, EventLoop, alternate, for_each_limited, missing, on_loop
from _memory import peak_growth
from _s3_clients import (
    S3Endpoint,
    aiobotocore_client,
    artifactio_store,
    obstore_store,
    s3fs_filesystem,
)

if TYPE_CHECKING:
    from _harness import Context
    from _memory import Meter

__all__ = ["child_list", "run_s4"]

WARM = "s4/warm"
FLAT_PER_OBJECT = 1024  # bytes of peak RSS per extra object that still count as flat


def _prefix(count: int) -> str:
    return f"s4/n{count}"


async def _fill(ep: S3Endpoint, counts: list[int], concurrency: int) -> None:
    """Write every prefix's objects (16 bytes each) with the fastest installed client."""
    data = b"0123456789abcdef"
    keys = [f"{_prefix(n)}/o{i:06d}" for n in counts for i in range(n)]
    keys += [f"{WARM}/o{i}" for i in range(10)]
    if missing("obstore") is None:
        import obstore

        store = obstore_store(ep)
        await for_each_limited(
            len(keys), concurrency, lambda i: obstore.put_async(store, keys[i], data)
        )
        return
    async with artifactio_store(ep, concurrency=concurrency) as store:
        await for_each_limited(len(keys), concurrency, lambda i: store.write_bytes(keys[i], data))


async def _listed(client: str, op: str, handle: Any, bucket: str, prefix: str) -> int:
    """How many objects ``client``'s ``op`` found below ``prefix``."""
    if client == "artifactio":
        if op == "walk":
            count = 0
            async for _, _, files in handle.walk(prefix):
                count += len(files)
            return count
        return len(await handle.listdir(prefix))
    if client == "s3fs":
        handle.invalidate_cache()
        if op == "walk":
            count = 0
            async for _, _, files in handle._walk(f"{bucket}/{prefix}"):
                count += len(files)
            return count
        return len(await handle._ls(f"{bucket}/{prefix}", detail=False, refresh=True))
    if client == "obstore":
        import obstore

        if op == "walk":
            count = 0
            async for batch in obstore.list(handle, f"{prefix}/", chunk_size=1000):
                count += len(batch)
            return count
        return len((await obstore.list_with_delimiter_async(handle, f"{prefix}/"))["objects"])
    count = 0  # aiobotocore
    async for page in handle.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        count += len(page.get("Contents", []))
    return count


def run_s4(ctx: Context) -> None:
    """Measure S4 on the suite's SeaweedFS."""
    assert ctx.s3 is not None
    ep, s = ctx.s3, ctx.settings
    n = s.list_count
    with EventLoop() as loop:
        loop.run(_fill(ep, [n, s.list_small], s.concurrency))
        store = artifactio_store(ep, concurrency=s.concurrency)
        handles: dict[str, Any] = {"artifactio": store}
        for peer in ("s3fs", "obstore", "aiobotocore"):
            reason = missing(peer)
            if reason is not None:
                ctx.results.skip("S4", peer, reason)
        if missing("s3fs") is None:
            handles["s3fs"] = loop.run(s3fs_filesystem(ep, s.concurrency))
        if missing("obstore") is None:
            handles["obstore"] = obstore_store(ep)
        if missing("aiobotocore") is None:
            abc = aiobotocore_client(ep, s.concurrency)
            handles["aiobotocore"] = loop.run(abc.__aenter__())
        try:
            _rates(ctx, loop, handles)
        finally:

            async def close() -> None:
                if "s3fs" in handles:
                    await handles["s3fs"]._s3.close()
                if "aiobotocore" in handles:
                    await abc.__aexit__(None, None, None)
                await store.aclose()

            loop.run(close())
    _memory(ctx, ep)


def _rates(ctx: Context, loop: EventLoop, handles: dict[str, Any]) -> None:
    s, bucket = ctx.settings, ctx.s3.bucket if ctx.s3 else ""
    n = s.list_count
    ops = {
        "walk": [
            ("artifactio", "artifactio walk"),
            ("s3fs", "s3fs _walk"),
            ("obstore", "obstore list"),
            ("aiobotocore", "aiobotocore ListObjectsV2 pages"),
        ],
        "listdir": [
            ("artifactio", "artifactio listdir"),
            ("s3fs", "s3fs _ls"),
            ("obstore", "obstore list_with_delimiter"),
        ],
    }
    for client, _ in ops["walk"]:  # warm-up: connections, parsers, first requests
        if client in handles:
            loop.run(_listed(client, "walk", handles[client], bucket, WARM))

    def lister(client: str, label: str, op: str) -> Contender:
        async def work(tag: str) -> None:
            found = await _listed(client, op, handles[client], bucket, _prefix(n))
            if found != n:
                raise RuntimeError(f"{label}: listed {found} objects, expected {n}")

        return on_loop(loop, label, work, ours=client == "artifactio")

    for op, rows in ops.items():
        case = Case("S4", op, "objects/s", n, f"a flat prefix of {n:,} objects")
        contenders = [lister(client, label, op) for client, label in rows if client in handles]
        alternate(ctx.results, case, contenders, s.rounds)
        ctx.results.target("S4", op, rows[0][1], rows[1][1], 1.5)


def _memory(ctx: Context, ep: S3Endpoint) -> None:
    s = ctx.settings
    big, small = s.list_count, s.list_small
    clients = ["artifactio"] + (["s3fs"] if missing("s3fs") is None else [])
    for op in ("walk", "listdir"):
        peak = Case("S4", f"{op}, peak RSS growth", "MiB", 1, f"{big:,} objects, child process")
        slope = Case(
            "S4",
            f"{op}, memory per extra object",
            "B/object",
            1,
            f"peak RSS growth {small:,} -> {big:,} objects",
        )
        for client in clients:
            growth = {}
            for count in (big,) if s.quick else (small, big):
                spec = {
                    "endpoint": ep.to_dict(),
                    "client": client,
                    "op": op,
                    "count": count,
                    "concurrency": s.concurrency,
                }
                growth[count] = peak_growth("_scenarios_listing:child_list", spec)["growth_mib"]
            label = f"{client} {op}"
            ctx.results.record(peak, label, client == "artifactio", growth[big])
            if s.quick:
                continue
            per_object = (growth[big] - growth[small]) * 1024 * 1024 / (big - small)
            ctx.results.record(slope, label, client == "artifactio", max(per_object, 0.0))
        if not s.quick:
            ctx.results.target("S4", slope.name, f"artifactio {op}", None, FLAT_PER_OBJECT)
    if s.quick:
        ctx.results.notes.append("S4: --quick measures peak RSS at one prefix size only")


async def child_list(spec: dict[str, Any], meter: Meter) -> None:
    """In a child process: one client's ``walk`` or ``listdir`` of a prefix, metered."""
    ep = S3Endpoint(**spec["endpoint"])
    client, op, count = spec["client"], spec["op"], spec["count"]
    if client == "artifactio":
        handle: Any = artifactio_store(ep, concurrency=spec["concurrency"])
    else:
        handle = await s3fs_filesystem(ep, spec["concurrency"])
    try:
        await _listed(client, op, handle, ep.bucket, WARM)
        with meter:
            found = await _listed(client, op, handle, ep.bucket, _prefix(count))
        if found != count:
            raise RuntimeError(f"{client} {op}: listed {found} objects, expected {count}")
    finally:
        await (handle.aclose() if client == "artifactio" else handle._s3.close())
