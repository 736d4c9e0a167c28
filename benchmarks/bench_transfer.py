"""Bulk transfer throughput of ``artifactio.copy`` against s3fs and obstore, in one run.

Run: ``python benchmarks/bench_transfer.py [--json] [--quick] [--rounds N] [--files N]
[--file-size BYTES] [--big-mib MIB] [--concurrency C] [--part-mib MIB]``
(the peers come with ``pip install -e '.[bench]'``; a peer that is not installed
is skipped with a printed reason).

Starts the embedded SeaweedFS (``artifactio.embedded.SeaweedFS``, on 127.0.0.1,
stopped by its own handle) and times, on the same local files, in the same run:

* ``small up``: ``--files`` files of ``--file-size`` bytes (default 1000 x 1 KiB)
  in one local directory -> an S3 prefix: ``artifactio.copy(recursive=True)``,
  s3fs ``put(lpath, rpath, recursive=True)``, and obstore ``put_async`` of each
  file with ``--concurrency`` in flight (obstore has no bulk upload helper);
* ``big up``: one ``--big-mib`` MiB file (default 256) -> S3: ``artifactio.copy``,
  s3fs ``put`` and obstore ``put_async`` (multipart);
* ``big down``: that object (uploaded once before timing) -> a local file:
  ``artifactio.copy``, s3fs ``get`` and obstore ``get_async`` streamed to a file.

Settings, the same knob wherever a library has one: ``--concurrency`` (default
32) is artifactio's ``concurrency`` (the transfer's and the S3 store's), s3fs's
``batch_size`` and ``max_concurrency`` (parts per file) and its connection pool,
obstore's files in flight and ``max_concurrency`` (parts per file);
``--part-mib`` (default 8) is artifactio's ``part_size``, s3fs's ``chunksize``
and obstore's ``chunk_size`` / ``min_chunk_size``.

Every run writes below a fresh key prefix (or a fresh local file) and is checked
afterwards (object count, sizes, one file's bytes; the download's SHA-256),
then removed, all outside the timing. The order of the libraries rotates from
round to round. Each row reports the median over ``--rounds`` rounds of wall
seconds, files/s or MB/s (10^6 bytes), CPU seconds of this process (all threads;
the server runs apart) and, for the peers, ``art x``: artifactio's throughput
divided by the peer's (above 1: artifactio is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import artifactio
from artifactio.embedded import SeaweedFS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

BUCKET = "bench"
REF_KEY = "ref/big.bin"
"""The object every ``big down`` run reads (uploaded once, before timing)."""
MiB = 1024 * 1024
SCENARIOS = ("small up", "big up", "big down")


@dataclass(frozen=True)
class Plan:
    """The workload and the knobs every library gets."""

    files: int
    file_size: int
    big_size: int
    concurrency: int
    part_size: int
    rounds: int


@dataclass
class Row:
    """The timed runs of one library in one scenario."""

    scenario: str
    client: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


class Peer:
    """One library's way of doing each scenario (``prefix``/``key`` are bucket-relative)."""

    name = ""

    async def start(self) -> None:
        """Open clients (untimed)."""

    async def close(self) -> None:
        """Close clients."""

    async def upload_tree(self, src_dir: Path, prefix: str) -> None:
        raise NotImplementedError

    async def upload_file(self, src: Path, key: str) -> None:
        raise NotImplementedError

    async def download_file(self, key: str, dst: Path) -> None:
        raise NotImplementedError


# --------------------------------------------------------------- artifactio


class ArtifactioPeer(Peer):
    name = "artifactio"

    def __init__(self, server: SeaweedFS, plan: Plan) -> None:
        self.plan = plan
        self.store = artifactio.open_store(
            f"s3://{BUCKET}",
            **server.store_options(concurrency=plan.concurrency, part_size=plan.part_size),
        )

    async def close(self) -> None:
        await self.store.aclose()

    def _options(self) -> dict[str, Any]:
        return {"concurrency": self.plan.concurrency, "part_size": self.plan.part_size}

    async def _copy(self, src: artifactio.transfer.Location, dst: Any, **kw: Any) -> None:
        report = await artifactio.copy(src, dst, **self._options(), **kw)
        if report.failed:
            raise RuntimeError(f"artifactio.copy failed: {report.to_json()}")

    async def upload_tree(self, src_dir: Path, prefix: str) -> None:
        await self._copy(str(src_dir), (self.store, prefix), recursive=True)

    async def upload_file(self, src: Path, key: str) -> None:
        await self._copy(str(src), (self.store, key))

    async def download_file(self, key: str, dst: Path) -> None:
        await self._copy((self.store, key), str(dst))


# -------------------------------------------------------------------- s3fs


class S3fsPeer(Peer):
    name = "s3fs"

    def __init__(self, server: SeaweedFS, plan: Plan) -> None:
        import s3fs

        self.plan = plan
        self.fs = s3fs.S3FileSystem(
            key=server.access_key,
            secret=server.secret_key,
            endpoint_url=server.endpoint_url,
            client_kwargs={"region_name": server.region},
            config_kwargs={
                "max_pool_connections": plan.concurrency,
                "s3": {"addressing_style": "path"},
            },
            max_concurrency=plan.concurrency,
            asynchronous=True,
            skip_instance_cache=True,
        )
        self.session: Any = None

    async def start(self) -> None:
        self.session = await self.fs.set_session()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def upload_tree(self, src_dir: Path, prefix: str) -> None:
        await self.fs._put(
            f"{src_dir}/", f"{BUCKET}/{prefix}/", recursive=True, batch_size=self.plan.concurrency
        )

    async def upload_file(self, src: Path, key: str) -> None:
        await self.fs._put(str(src), f"{BUCKET}/{key}", chunksize=self.plan.part_size)

    async def download_file(self, key: str, dst: Path) -> None:
        await self.fs._get(f"{BUCKET}/{key}", str(dst), chunksize=self.plan.part_size)


# ----------------------------------------------------------------- obstore


class ObstorePeer(Peer):
    name = "obstore"

    def __init__(self, server: SeaweedFS, plan: Plan) -> None:
        from obstore.store import S3Store

        self.plan = plan
        self.store = S3Store(
            BUCKET,
            endpoint=server.endpoint_url,
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            region=server.region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    async def upload_tree(self, src_dir: Path, prefix: str) -> None:
        import obstore

        paths = iter(sorted(os.scandir(src_dir), key=lambda e: e.name))

        async def worker() -> None:
            for entry in paths:
                await obstore.put_async(self.store, f"{prefix}/{entry.name}", Path(entry.path))

        await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))

    async def upload_file(self, src: Path, key: str) -> None:
        import obstore

        await obstore.put_async(
            self.store,
            key,
            src,
            chunk_size=self.plan.part_size,
            max_concurrency=self.plan.concurrency,
        )

    async def download_file(self, key: str, dst: Path) -> None:
        import obstore

        result = await obstore.get_async(self.store, key)
        with open(dst, "wb") as f:
            async for chunk in result.stream(min_chunk_size=self.plan.part_size):
                f.write(chunk)


PEERS: dict[str, Callable[[SeaweedFS, Plan], Peer]] = {
    "artifactio": ArtifactioPeer,
    "s3fs": S3fsPeer,
    "obstore": ObstorePeer,
}


def available_peers(names: list[str]) -> list[str]:
    """The peers whose library imports; the others are skipped with a printed reason."""
    found = []
    for name in names:
        module = {"s3fs": "s3fs", "obstore": "obstore"}.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError as exc:
                print(
                    f"{name} is not installed ({exc}): skipping it (pip install -e '.[bench]')",
                    file=sys.stderr,
                )
                continue
        found.append(name)
    return found


# ------------------------------------------------------------------ inputs


def make_inputs(root: Path, plan: Plan) -> tuple[Path, Path, str]:
    """The small-file directory and the big file (random bytes); the big one's SHA-256."""
    small = root / "small"
    small.mkdir()
    for i in range(plan.files):
        (small / f"f{i:05d}.bin").write_bytes(os.urandom(plan.file_size))
    big = root / "big.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        left = plan.big_size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return small, big, digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ checks


async def check_tree(store: artifactio.AsyncArtifactStore, prefix: str, small: Path, plan: Plan,
                     who: str) -> None:  # fmt: skip
    names = await store.listdir(prefix)
    if len(names) != plan.files:
        raise RuntimeError(f"{who}: {len(names)} objects under {prefix}, expected {plan.files}")
    name = "f00000.bin"
    if await store.read_bytes(f"{prefix}/{name}") != (small / name).read_bytes():
        raise RuntimeError(f"{who}: {prefix}/{name} differs from its source")


async def check_big(store: artifactio.AsyncArtifactStore, key: str, plan: Plan, who: str) -> None:
    size = await store.size(key)
    if size != plan.big_size:
        raise RuntimeError(f"{who}: {key} holds {size} bytes, expected {plan.big_size}")


# ------------------------------------------------------------------ rounds


async def timed(call: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await call()
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_rounds(server: SeaweedFS, plan: Plan, names: list[str], root: Path) -> list[Row]:
    small, big, big_sha = make_inputs(root, plan)
    peers = [PEERS[name](server, plan) for name in names]
    checker = artifactio.open_store(f"s3://{BUCKET}", **server.store_options())
    rows = {(s, p.name): Row(s, p.name) for s in SCENARIOS for p in peers}
    try:
        for peer in peers:
            await peer.start()
        await artifactio.copy(str(big), (checker, REF_KEY))
        await check_big(checker, REF_KEY, plan, "reference upload")
        # Warm-up (untimed): every client's connections and first requests.
        for peer in peers:
            await peer.upload_file(small / "f00000.bin", f"warm/{peer.name}.bin")
        for r in range(plan.rounds):
            order = peers[r % len(peers) :] + peers[: r % len(peers)]
            for peer in order:
                prefix = f"r{r}/{peer.name}/small"
                wall, cpu = await timed(lambda: peer.upload_tree(small, prefix))  # noqa: B023
                await check_tree(checker, prefix, small, plan, peer.name)
                await checker.rmtree(prefix)
                add(rows["small up", peer.name], wall, cpu)
            for peer in order:
                key = f"r{r}/{peer.name}/big.bin"
                wall, cpu = await timed(lambda: peer.upload_file(big, key))  # noqa: B023
                await check_big(checker, key, plan, peer.name)
                await checker.remove(key)
                add(rows["big up", peer.name], wall, cpu)
            for peer in order:
                dst = root / f"down-{r}-{peer.name}.bin"
                wall, cpu = await timed(lambda: peer.download_file(REF_KEY, dst))  # noqa: B023
                if sha256_of(dst) != big_sha:
                    raise RuntimeError(f"{peer.name}: the downloaded file differs from the source")
                dst.unlink()
                add(rows["big down", peer.name], wall, cpu)
            print(f"round {r + 1}/{plan.rounds} done", file=sys.stderr)
    finally:
        for peer in peers:
            await peer.close()
        await checker.aclose()
    return list(rows.values())


def add(row: Row, wall: float, cpu: float) -> None:
    row.walls.append(wall)
    row.cpus.append(cpu)


# ------------------------------------------------------------------ output


def summarise(rows: list[Row], plan: Plan) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    ours: dict[str, float] = {}
    for row in rows:
        wall = statistics.median(row.walls)
        small = row.scenario == "small up"
        throughput = plan.files / wall if small else plan.big_size / wall / 1e6
        if row.client == "artifactio":
            ours[row.scenario] = throughput
        out.append(
            {
                "scenario": row.scenario,
                "client": row.client,
                "seconds": wall,
                "unit": "files/s" if small else "MB/s",
                "throughput": throughput,
                "cpu_seconds": statistics.median(row.cpus),
                "runs": row.walls,
            }
        )
    for result in out:
        mine = ours.get(result["scenario"])
        peer = result["client"] != "artifactio"
        result["artifactio_ratio"] = mine / result["throughput"] if mine and peer else None
    return out


def print_table(results: list[dict[str, Any]], plan: Plan) -> None:
    print(
        f"small: {plan.files} files x {plan.file_size} B; big: {plan.big_size // MiB} MiB; "
        f"concurrency {plan.concurrency}, part {plan.part_size // MiB} MiB; "
        f"median of {plan.rounds} round(s)"
    )
    header = (
        f"{'scenario':<9} {'client':<11} {'seconds':>8} {'throughput':>16} {'cpu s':>7} "
        f"{'art x':>6}"
    )
    print(header)
    print("-" * len(header))
    last = None
    for r in results:
        if last is not None and r["scenario"] != last:
            print()
        last = r["scenario"]
        ratio = r["artifactio_ratio"]
        print(
            f"{r['scenario']:<9} {r['client']:<11} {r['seconds']:>8.2f} "
            f"{r['throughput']:>8.1f} {r['unit']:<7} {r['cpu_seconds']:>7.2f} "
            f"{'' if ratio is None else format(ratio, '.2f'):>6}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median taken)")
    parser.add_argument("--files", type=int, default=1000, help="small files")
    parser.add_argument("--file-size", type=int, default=1024, help="bytes per small file")
    parser.add_argument("--big-mib", type=int, default=256, help="MiB of the big file")
    parser.add_argument("--concurrency", type=int, default=32, help="files / parts in flight")
    parser.add_argument("--part-mib", type=int, default=8, help="part size in MiB (>= 5)")
    parser.add_argument(
        "--peer", choices=["s3fs", "obstore"], action="append", help="only these peers"
    )
    parser.add_argument("--quick", action="store_true", help="200 files, 32 MiB, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.big_mib, args.rounds = min(args.files, 200), min(args.big_mib, 32), 1
    if min(args.rounds, args.files, args.file_size, args.big_mib, args.concurrency) < 1:
        parser.error("--rounds, --files, --file-size, --big-mib and --concurrency must be positive")
    if args.part_mib < 5:
        parser.error("--part-mib must be at least 5 (S3's smallest part)")
    plan = Plan(
        args.files, args.file_size, args.big_mib * MiB, args.concurrency, args.part_mib * MiB,
        args.rounds,
    )  # fmt: skip
    if not SeaweedFS.available():
        print("SeaweedFS is not installed (the test extra): nothing to measure", file=sys.stderr)
        return 1
    names = available_peers(["artifactio", *(args.peer or ["s3fs", "obstore"])])

    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-bench-") as tmp,
        SeaweedFS(buckets=[BUCKET]) as server,
    ):
        rows = asyncio.run(run_rounds(server, plan, names, Path(tmp)))
    results = summarise(rows, plan)
    elapsed = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "files": plan.files,
                    "file_size": plan.file_size,
                    "big_size": plan.big_size,
                    "concurrency": plan.concurrency,
                    "part_size": plan.part_size,
                    "rounds": plan.rounds,
                    "seconds": elapsed,
                    "results": results,
                },
                indent=2,
            )
        )
        return 0
    print_table(results, plan)
    print(f"\n(total {elapsed:.1f} s, server and inputs included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
