"""Bulk transfers on a Dask cluster beside the single-process engine, in one run.

Run: ``python benchmarks/bench_dask.py [--json] [--quick] [--rounds N] [--files N]
[--file-size BYTES] [--workers 1,2,4] [--shard-size N] [--concurrency C]
[--rss-objects 5000,20000,100000]``
(needs the ``test`` extra: ``dask[distributed]`` and the embedded SeaweedFS).

Starts the embedded SeaweedFS (``artifactio.embedded.SeaweedFS``, on
127.0.0.1) and one ``distributed.LocalCluster`` per worker count in
``--workers`` (worker processes of one thread each, on 127.0.0.1, no
dashboard; each warmed up by a small untimed transfer), then:

* ``copy``: ``--files`` files of ``--file-size`` bytes (default 5000 x 1 KiB,
  100 per directory), uploaded once to bucket ``bench-src``, copied to a fresh
  prefix of bucket ``bench-dst`` — so every byte goes through the transferring
  processes, as between two services — by ``artifactio.blocking.copy`` (the
  single-process engine) and by ``artifactio.integrations.dask_blocking.copy``
  on each cluster (``--shard-size`` files per shard, default 500: ten shards).
  Every run is checked afterwards (object count and sizes from the listing) and
  removed, outside the timing; the order of the configurations rotates from
  round to round.
* ``rss``: the driver's memory against the number of objects: dry runs
  (everything is listed and planned, on the driver and on the workers; nothing
  is written) of local trees of ``--rss-objects`` files (100 per directory) by
  the engine and by the Dask transfer on the 2-worker cluster (or the largest
  one below it).

Each transfer runs in a fresh driver process (this script with ``--driver``),
which connects to the cluster (the scheduler runs in this process, the workers
in their own), so its memory is the driver's alone. It reports wall seconds
(the call only), its RSS just before the call, and its peak RSS during the
call (``VmHWM`` of ``/proc/self/status``, reset just before the call through
``/proc/self/clear_refs``; "n/a" where the system does not allow it). The S3
client's first use (botocore's service model) falls inside the call, for the
engine and for the Dask driver alike. Rows give medians over ``--rounds`` rounds, files/s and
``x engine`` (throughput divided by the engine's; above 1: faster). The cluster's
workers share this machine's cores with SeaweedFS: compare ratios within one
run, and read the 4-worker row as what oversubscription costs, not as what a
cluster of four machines would do.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import artifactio
from artifactio.embedded import SeaweedFS

SRC_BUCKET = "bench-src"
DST_BUCKET = "bench-dst"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """The workload and the knobs."""

    files: int
    file_size: int
    workers: tuple[int, ...]
    shard_size: int
    concurrency: int
    rounds: int
    rss_objects: tuple[int, ...]


@dataclass
class Row:
    """The runs of one configuration."""

    name: str
    walls: list[float] = field(default_factory=list)
    before: list[float] = field(default_factory=list)
    during: list[float] = field(default_factory=list)


# ------------------------------------------------------------------ the driver process


def _status_kib(field_name: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def driver(spec: dict[str, Any]) -> dict[str, Any]:
    """One transfer, in this (fresh) process: its wall time and this process's memory."""
    import artifactio.blocking
    from artifactio.integrations import dask_blocking

    client: Any = None
    if spec["scheduler"]:
        from distributed import Client

        client = Client(spec["scheduler"])  # type: ignore[no-untyped-call]
    src_options, dst_options = spec["src_options"], spec["dst_options"]
    for uri in (spec["src"], spec["dst"]):  # backends imported before the measured call
        scheme = uri.partition("://")[0] if "://" in uri else "file"
        artifactio.get_backend(scheme)
    common = {"concurrency": spec["concurrency"], "dry_run": spec["dry_run"]}
    stores = []
    startup = _status_kib("VmHWM")
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    if client is not None:
        report = dask_blocking.copy(
            spec["src"], spec["dst"], client=client, recursive=True,
            shard_size=spec["shard_size"], src_options=src_options, dst_options=dst_options,
            **common,
        )  # fmt: skip
    else:
        # The engine takes options through open stores; URIs with no options are opened by it.
        src: Any = spec["src"]
        dst: Any = spec["dst"]
        if src_options:
            stores.append(artifactio.ArtifactStore(spec["src_root"], **src_options))
            src = (stores[-1], spec["src"])
        if dst_options:
            stores.append(artifactio.ArtifactStore(spec["dst_root"], **dst_options))
            dst = (stores[-1], spec["dst"])
        report = artifactio.blocking.copy(src, dst, recursive=True, **common)
    wall = time.perf_counter() - started
    during = _status_kib("VmHWM") if reset else None
    for store in stores:
        store.close()
    if client is not None:
        client.close()
    return {
        "wall": wall,
        "report": report.to_dict(),
        "rss_startup_peak_mib": _in_mib(startup),
        "rss_before_mib": _in_mib(before),
        "rss_peak_during_mib": _in_mib(during),
    }


def _in_mib(kib: float | None) -> float | None:
    return None if kib is None else kib / 1024


def run_driver(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`driver` in a fresh process; its answer."""
    proc = subprocess.run(
        [sys.executable, __file__, "--driver"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the driver process failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["report"]["failed"]:
        raise RuntimeError(f"the transfer failed: {result['report']}")
    return result


# ------------------------------------------------------------------ inputs and checks


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of about ``size`` bytes, 100 per directory."""
    rng = random.Random(1)
    for i in range(files):
        path = root / f"d{i // 100:05d}" / f"f{i:07d}.bin"
        if i % 100 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))


def check_copy(raw_s3: Any, prefix: str, plan: Plan) -> None:
    """The copy is complete (count and sizes); then it is removed."""
    count = 0
    for page in raw_s3.get_paginator("list_objects_v2").paginate(
        Bucket=DST_BUCKET, Prefix=prefix + "/"
    ):
        objects = page.get("Contents", [])
        if any(o["Size"] != plan.file_size for o in objects):
            raise RuntimeError(f"{prefix}: an object of the wrong size")
        count += len(objects)
        keys = [{"Key": o["Key"]} for o in objects]
        if keys:
            raw_s3.delete_objects(Bucket=DST_BUCKET, Delete={"Objects": keys, "Quiet": True})
    if count != plan.files:
        raise RuntimeError(f"{prefix}: {count} objects, expected {plan.files}")


# ------------------------------------------------------------------ the run


def run(plan: Plan, server: SeaweedFS, tmp: Path) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    options = server.store_options()
    tree = tmp / "data"
    make_tree(tree, plan.files, plan.file_size)
    with artifactio.ArtifactStore(f"s3://{SRC_BUCKET}", **options) as source:
        upload = artifactio.blocking.copy(str(tree), (source, "data"), recursive=True)
    if upload.failed or upload.transferred != plan.files:
        raise RuntimeError(f"the source upload failed: {upload}")
    raw_s3 = server._client()

    clusters: dict[int, Any] = {}
    clients: dict[int, Any] = {}
    try:
        for n in plan.workers:
            clusters[n] = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None,
                # the scheduler's HTTP server (health, metrics) on a free loopback port
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            )  # fmt: skip
            clients[n] = Client(clusters[n])  # type: ignore[no-untyped-call]
            # Warm-up (untimed): every worker imports artifactio and opens a store once.
            from artifactio.integrations import dask_blocking

            warm = tmp / "warm"
            make_tree(warm, 4 * n, 16)
            dask_blocking.copy(
                str(warm), str(tmp / f"warm-out-{n}"), client=clients[n], recursive=True,
                shard_size=1,
            )  # fmt: skip

        base = {
            "src": f"s3://{SRC_BUCKET}/data",
            "src_root": f"s3://{SRC_BUCKET}",
            "dst_root": f"s3://{DST_BUCKET}",
            "src_options": options,
            "dst_options": options,
            "shard_size": plan.shard_size,
            "concurrency": plan.concurrency,
            "dry_run": False,
        }
        configs = ["engine", *(f"dask x{n}" for n in plan.workers)]
        rows = {name: Row(name) for name in configs}
        for r in range(plan.rounds):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for name in order:
                n = 0 if name == "engine" else int(name.removeprefix("dask x"))
                prefix = f"r{r}-{name.replace(' ', '')}"
                spec = {
                    **base,
                    "dst": f"s3://{DST_BUCKET}/{prefix}",
                    "scheduler": clusters[n].scheduler_address if n else None,
                }
                result = run_driver(spec)
                check_copy(raw_s3, prefix, plan)
                row = rows[name]
                row.walls.append(result["wall"])
                if result["rss_peak_during_mib"] is not None:
                    row.before.append(result["rss_before_mib"])
                    row.during.append(result["rss_peak_during_mib"])
            print(f"round {r + 1}/{plan.rounds} done", file=sys.stderr)

        rss = []
        n_rss = max([n for n in plan.workers if n <= 2] or [min(plan.workers)])
        for count in plan.rss_objects:
            local = tmp / f"rss-{count}"
            make_tree(local, count, 1)
            for name, scheduler in (("engine", None), (f"dask x{n_rss}", clusters[n_rss])):
                spec = {
                    **base,
                    "src": str(local),
                    "dst": str(tmp / f"rss-out-{count}"),
                    "src_options": {},
                    "dst_options": {},
                    "dry_run": True,
                    "scheduler": scheduler.scheduler_address if scheduler else None,
                }
                result = run_driver(spec)
                if result["report"]["transferred"] != count:
                    raise RuntimeError(f"dry run of {count} files: {result['report']}")
                rss.append({"objects": count, "config": name, **result, "report": None})
            print(f"rss: {count} objects done", file=sys.stderr)
    finally:
        for client in clients.values():
            client.close()
        for cluster in clusters.values():
            cluster.close()
    return {"copy": summarise(rows, plan), "rss": rss}


def summarise(rows: dict[str, Row], plan: Plan) -> list[dict[str, Any]]:
    engine = plan.files / statistics.median(rows["engine"].walls)
    out = []
    for row in rows.values():
        wall = statistics.median(row.walls)
        throughput = plan.files / wall
        out.append(
            {
                "config": row.name,
                "seconds": wall,
                "files_per_s": throughput,
                "mb_per_s": plan.files * plan.file_size / wall / 1e6,
                "x_engine": throughput / engine,
                "driver_rss_before_mib": statistics.median(row.before) if row.before else None,
                "driver_rss_peak_during_mib": statistics.median(row.during) if row.during else None,
                "runs": row.walls,
            }
        )
    return out


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def print_tables(results: dict[str, Any], plan: Plan) -> None:
    print(
        f"copy: {plan.files} files x {plan.file_size} B, S3 bucket -> S3 bucket (SeaweedFS); "
        f"concurrency {plan.concurrency} per shard/transfer; shards of {plan.shard_size} files; "
        f"median of {plan.rounds} round(s)"
    )
    header = (
        f"{'config':<10} {'seconds':>8} {'files/s':>8} {'MB/s':>6} {'x engine':>8} "
        f"{'driver RSS before':>18} {'peak in call':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results["copy"]:
        print(
            f"{r['config']:<10} {r['seconds']:>8.2f} {r['files_per_s']:>8.0f} "
            f"{r['mb_per_s']:>6.2f} {r['x_engine']:>8.2f} "
            f"{_mib(r['driver_rss_before_mib']):>18} {_mib(r['driver_rss_peak_during_mib']):>13}"
        )
    print("\ndriver memory against objects (dry runs of local trees, 100 files per directory):")
    header = f"{'objects':>8} {'config':<10} {'seconds':>8} {'RSS before':>11} {'peak in call':>13}"
    print(header)
    print("-" * len(header))
    for r in results["rss"]:
        print(
            f"{r['objects']:>8} {r['config']:<10} {r['wall']:>8.2f} "
            f"{_mib(r['rss_before_mib']):>11} {_mib(r['rss_peak_during_mib']):>13}"
        )


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers separated by commas, not {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median taken)")
    parser.add_argument("--files", type=int, default=5000, help="files copied")
    parser.add_argument("--file-size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--workers", type=_ints, default=(1, 2, 4), help="worker processes")
    parser.add_argument("--shard-size", type=int, default=500, help="files per shard")
    parser.add_argument("--concurrency", type=int, default=32, help="files in flight per shard")
    parser.add_argument(
        "--rss-objects", type=_ints, default=(5000, 20000, 100000), help="tree sizes (rss)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1000 files, one round, rss at 1000 and 5000 objects"
    )
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.driver:
        print(json.dumps(driver(json.loads(sys.stdin.read()))))
        return 0
    if args.quick:
        args.files, args.rounds = min(args.files, 1000), 1
        args.rss_objects = (1000, 5000)
        args.shard_size = min(args.shard_size, 100)
    if min(args.rounds, args.files, args.file_size, args.shard_size, args.concurrency) < 1:
        parser.error("--rounds, --files, --file-size, --shard-size and --concurrency: positive")
    plan = Plan(
        args.files, args.file_size, args.workers, args.shard_size, args.concurrency,
        args.rounds, args.rss_objects,
    )  # fmt: skip
    if not SeaweedFS.available():
        print("SeaweedFS is not installed (the test extra): nothing to measure", file=sys.stderr)
        return 1
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-bench-dask-") as tmp,
        SeaweedFS(buckets=[SRC_BUCKET, DST_BUCKET]) as server,
    ):
        results = run(plan, server, Path(tmp))
    elapsed = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "cpus": os.cpu_count(),
                    "files": plan.files,
                    "file_size": plan.file_size,
                    "shard_size": plan.shard_size,
                    "concurrency": plan.concurrency,
                    "rounds": plan.rounds,
                    "seconds": elapsed,
                    **results,
                },
                indent=2,
            )
        )
        return 0
    print_tables(results, plan)
    print(f"\n(total {elapsed:.1f} s, server, clusters and inputs included; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
