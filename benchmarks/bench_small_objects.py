"""Per-operation cost of the S3 and GCS stores against their own client libraries.

What the store layers add to one request. Starts the embedded servers
(SeaweedFS for S3, fake-gcs-server for GCS, both on 127.0.0.1) and times, for
``--objects`` objects of ``--size`` bytes, in the same run:

* GCS ``write`` and ``read``: ``await store.write_bytes(key, data)`` and
  ``read_bytes`` against gcloud-aio-storage's ``Storage.upload`` and
  ``Storage.download`` (on S3 these are S1/S2 of ``bench_suite.py``, beside
  aiobotocore's ``put_object``/``get_object``, s3fs and obstore);
* ``exists`` and ``stat`` on both: against ``head_object`` /
  ``Storage.download_metadata``;

each with ``--concurrency`` requests in flight on one event loop (the raw
client is given as many pooled connections as the store), then, one call after
the other, ``exists`` and ``read`` through the raw client and through the async
store (the blocking facade's share is S6 of ``bench_suite.py``).

Every row reports objects per second, wall microseconds per object (for the
concurrent rows the inverse of the throughput, for the sequential ones the
latency of one call) and CPU microseconds per object (``time.process_time`` of
this process, all threads; the servers run in processes of their own), and the
ratio of both to the raw client's row of the same operation. Each figure is the
median of ``--repeat`` runs; raw and artifactio runs alternate.

Run: ``python benchmarks/bench_small_objects.py [--json] [--quick] [--objects N]
[--size BYTES] [--concurrency C] [--repeat R] [--backend s3|gcs]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared harness sits here
from _harness import for_each_limited

import artifactio
from artifactio.embedded import FakeGCSServer, SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BUCKET = "bench"
READ_DIR = "data"
"""Objects read, stat'ed and probed (written once before timing)."""


@dataclass
class Row:
    """One measured row: its runs, then the medians."""

    backend: str
    op: str
    mode: str  # "concurrent" or "sequential"
    client: str
    baseline: bool
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.walls.append(wall)
        self.cpus.append(cpu)


@dataclass
class Plan:
    """The workload: how many objects, how large, how many in flight, how often."""

    objects: int
    size: int
    concurrency: int
    repeat: int

    def key(self, prefix: str, i: int) -> str:
        return f"{prefix}/obj-{i:06d}"


# ----------------------------------------------------------------- harness


async def timed_async(coro_factory: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await coro_factory()
    return time.perf_counter() - wall, time.process_time() - cpu


async def measure_pair(
    plan: Plan,
    rows: list[Row],
    raw: Row,
    ours: Row,
    raw_op: Callable[[int], Awaitable[object]],
    our_op: Callable[[int], Awaitable[object]],
) -> None:
    """Warm both up, then alternate timed runs of the raw client and artifactio."""
    rows += [raw, ours]
    sequential = raw.mode == "sequential"
    for op in (raw_op, our_op):
        await for_each_limited(min(plan.objects, 2 * plan.concurrency), plan.concurrency, op)
    for _ in range(plan.repeat):
        for row, op in ((raw, raw_op), (ours, our_op)):
            row.add(*await timed_async(functools.partial(run_all, op, plan, sequential)))


async def run_all(op: Callable[[int], Awaitable[object]], plan: Plan, sequential: bool) -> None:
    """Every object of the plan, one after the other or ``concurrency`` at a time."""
    if sequential:
        for i in range(plan.objects):
            await op(i)
    else:
        await for_each_limited(plan.objects, plan.concurrency, op)


# ---------------------------------------------------------------------- S3


async def s3_async_rows(
    server: SeaweedFS, store: artifactio.AsyncArtifactStore, plan: Plan, rows: list[Row]
) -> None:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    config = AioConfig(
        max_pool_connections=plan.concurrency,
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "total_max_attempts": 6},
    )
    session = AioSession()
    data = b"x" * plan.size
    async with session.create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=config,
    ) as s3:

        async def raw_put(prefix: str, i: int) -> None:
            await s3.put_object(Bucket=BUCKET, Key=plan.key(prefix, i), Body=data)

        async def raw_get(i: int) -> bytes:
            r = await s3.get_object(Bucket=BUCKET, Key=plan.key(READ_DIR, i))
            async with r["Body"] as body:
                got: bytes = await body.read()
            return got

        async def raw_head(i: int) -> object:
            return await s3.head_object(Bucket=BUCKET, Key=plan.key(READ_DIR, i))

        await for_each_limited(plan.objects, plan.concurrency, lambda i: raw_put(READ_DIR, i))
        await common_async_rows(
            "S3",
            ("aiobotocore put_object", lambda i: raw_put("w-raw", i)),
            ("aiobotocore get_object", raw_get),
            ("aiobotocore head_object", raw_head),
            store,
            plan,
            rows,
        )


# --------------------------------------------------------------------- GCS


async def gcs_async_rows(
    server: FakeGCSServer, store: artifactio.AsyncArtifactStore, plan: Plan, rows: list[Row]
) -> None:
    import aiohttp
    from gcloud.aio.storage import Storage

    data = b"x" * plan.size
    # As many pooled connections as the store's own session has.
    connector = aiohttp.TCPConnector(limit=plan.concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        storage = Storage(api_root=server.url, session=cast("Any", session))  # its alias varies

        async def raw_put(prefix: str, i: int) -> object:
            return await storage.upload(
                BUCKET,
                plan.key(prefix, i),
                data,
                content_type="application/octet-stream",
                force_resumable_upload=False,
            )

        async def raw_get(i: int) -> bytes:
            return await storage.download(BUCKET, plan.key(READ_DIR, i))

        async def raw_head(i: int) -> object:
            return await storage.download_metadata(BUCKET, plan.key(READ_DIR, i))

        await for_each_limited(plan.objects, plan.concurrency, lambda i: raw_put(READ_DIR, i))
        await common_async_rows(
            "GCS",
            ("gcloud-aio upload", lambda i: raw_put("w-raw", i)),
            ("gcloud-aio download", raw_get),
            ("gcloud-aio download_metadata", raw_head),
            store,
            plan,
            rows,
        )


# ------------------------------------------------------------------ common


async def common_async_rows(
    backend: str,
    raw_write: tuple[str, Callable[[int], Awaitable[object]]],
    raw_read: tuple[str, Callable[[int], Awaitable[object]]],
    raw_head: tuple[str, Callable[[int], Awaitable[object]]],
    store: artifactio.AsyncArtifactStore,
    plan: Plan,
    rows: list[Row],
) -> None:
    data = b"x" * plan.size

    async def write(i: int) -> None:
        await store.write_bytes(plan.key("w-art", i), data)

    async def read(i: int) -> bytes:
        return await store.read_bytes(plan.key(READ_DIR, i))

    async def exists(i: int) -> bool:
        return await store.exists(plan.key(READ_DIR, i))

    async def stat(i: int) -> object:
        return await store.stat(plan.key(READ_DIR, i))

    # Both sides see the same objects.
    if await read(0) != data or await raw_read[1](0) != data or not await exists(plan.objects - 1):
        raise RuntimeError(f"{backend}: the objects written before timing do not read back")

    def pair(op: str, mode: str, raw_name: str, our_name: str) -> tuple[Row, Row]:
        return Row(backend, op, mode, raw_name, True), Row(backend, op, mode, our_name, False)

    c = "concurrent"
    if backend == "GCS":  # S3's are S1/S2 of bench_suite.py
        await measure_pair(plan, rows, *pair("write", c, raw_write[0], "write_bytes"),
                           raw_write[1], write)  # fmt: skip
        await measure_pair(plan, rows, *pair("read", c, raw_read[0], "read_bytes"), raw_read[1],
                           read)  # fmt: skip
    await measure_pair(plan, rows, *pair("exists", c, raw_head[0], "exists"), raw_head[1], exists)
    await measure_pair(plan, rows, *pair("stat", c, raw_head[0], "stat"), raw_head[1], stat)
    s = "sequential"
    await measure_pair(
        plan, rows, *pair("exists", s, raw_head[0], "async exists"), raw_head[1], exists
    )
    await measure_pair(
        plan, rows, *pair("read", s, raw_read[0], "async read_bytes"), raw_read[1], read
    )


def bench_backend(name: str, plan: Plan) -> list[Row]:
    """Start one server, run every row against it, stop it."""
    rows: list[Row] = []
    options: dict[str, Any] = {"concurrency": plan.concurrency}
    if name == "s3":
        with SeaweedFS(buckets=[BUCKET]) as s3_server:
            store = artifactio.open_store(f"s3://{BUCKET}", **s3_server.store_options(**options))

            async def s3_main() -> None:
                async with store:
                    await s3_async_rows(s3_server, store, plan, rows)

            asyncio.run(s3_main())
    else:
        with FakeGCSServer(buckets=[BUCKET]) as gcs_server:
            store = artifactio.open_store(f"gs://{BUCKET}", **gcs_server.store_options(**options))

            async def gcs_main() -> None:
                async with store:
                    await gcs_async_rows(gcs_server, store, plan, rows)

            asyncio.run(gcs_main())
    return rows


# ------------------------------------------------------------------ output


def summarise(rows: list[Row], plan: Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base: dict[str, float] = {}
    base_cpu: dict[str, float] = {}
    for row in rows:
        group = f"{row.backend}/{row.op}/{row.mode}"
        wall = statistics.median(row.walls) / plan.objects * 1e6
        cpu = statistics.median(row.cpus) / plan.objects * 1e6
        if row.baseline:
            base[group], base_cpu[group] = wall, cpu
        out.append(
            {
                "group": group,
                "backend": row.backend,
                "op": row.op,
                "mode": row.mode,
                "client": row.client,
                "objects_per_s": 1e6 / wall,
                "us_per_op": wall,
                "cpu_us_per_op": cpu,
                "ratio_to_raw": wall / base[group],
                "cpu_ratio_to_raw": cpu / base_cpu[group] if base_cpu[group] else None,
            }
        )
    order = list(dict.fromkeys(r["group"] for r in out))
    return sorted(out, key=lambda r: order.index(r["group"]))  # stable: raw row first


def print_table(results: list[dict[str, Any]], plan: Plan) -> None:
    width = max(len(r["client"]) for r in results)
    print(
        f"{plan.objects} objects x {plan.size} B, concurrency {plan.concurrency} "
        f"(sequential rows: one call at a time), median of {plan.repeat}"
    )
    header = (
        f"{'backend':<7} {'op':<6} {'mode':<10} {'client':<{width}}  {'obj/s':>8}  "
        f"{'us/op':>8}  {'x raw':>6}  {'cpu us/op':>9}  {'cpu x raw':>9}"
    )
    print(header)
    print("-" * len(header))
    last = None
    for r in results:
        if last is not None and r["group"] != last:
            print()
        last = r["group"]
        cpu_ratio = r["cpu_ratio_to_raw"]
        print(
            f"{r['backend']:<7} {r['op']:<6} {r['mode']:<10} {r['client']:<{width}}  "
            f"{r['objects_per_s']:>8.0f}  {r['us_per_op']:>8.0f}  {r['ratio_to_raw']:>6.2f}  "
            f"{r['cpu_us_per_op']:>9.0f}  "
            f"{cpu_ratio if cpu_ratio is None else format(cpu_ratio, '.2f'):>9}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--objects", type=int, default=200, help="objects per run")
    parser.add_argument("--size", type=int, default=4096, help="bytes per object")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row (median taken)")
    parser.add_argument(
        "--backend", choices=["s3", "gcs"], action="append", help="only these (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="50 objects, one run per row")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.repeat = min(args.objects, 50), 1
    if args.objects < 1 or args.concurrency < 1 or args.repeat < 1 or args.size < 1:
        parser.error("--objects, --size, --concurrency and --repeat must be positive")
    plan = Plan(args.objects, args.size, args.concurrency, args.repeat)

    rows: list[Row] = []
    started = time.perf_counter()
    for name in args.backend or ["s3", "gcs"]:
        server_cls = SeaweedFS if name == "s3" else FakeGCSServer
        if not server_cls.available():
            print(f"{server_cls.__name__} is not installed: skipping {name}", file=sys.stderr)
            continue
        rows += bench_backend(name, plan)
    results = summarise(rows, plan)
    elapsed = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "objects": plan.objects,
                    "size": plan.size,
                    "concurrency": plan.concurrency,
                    "repeat": plan.repeat,
                    "seconds": elapsed,
                    "results": results,
                },
                indent=2,
            )
        )
        return 0
    print_table(results, plan)
    print(f"\n(total {elapsed:.1f} s, servers included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
