"""Bulk transfers on a Dask cluster (``artifactio.integrations.dask``), on a real ``LocalCluster``.

One cluster for the module: two worker processes of one thread each, on
127.0.0.1, no dashboard (closing it stops every process it started). The big
trees (5 000 small files, written once to a local directory every worker sees)
go to SeaweedFS (S3) and fake-gcs-server (GCS); the servers' own listings (MD5s)
show the copies byte-identical. One worker process is killed by its PID in the
middle of a copy.
"""

# distributed's Client API is only partly typed.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import random
import signal
import threading
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from distributed import Client, LocalCluster, get_task_stream
from pydantic import SecretStr

import artifactio
from _s3_fixtures import BUCKET, objects_below
from artifactio.integrations import dask as dask_transfer
from artifactio.integrations import dask_blocking
from artifactio.integrations._dask_shards import Shard, split
from artifactio.integrations._dask_task import ShardTask, StoreSpec, run_shard
from artifactio.transfer import KeyRange, TransferPlan, TransferProgress
from artifactio.transfer._endpoints import Endpoint
from artifactio.transfer._progress import Tally
from artifactio.transfer._retry import Retrying, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS

FILES = 5000


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes of one thread each (closing the cluster stops every one).

    No dashboard; the scheduler's small HTTP server (health, metrics) takes a free
    loopback port rather than 8787, which another cluster on this machine may hold.
    """
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def make_tree(root: Path, count: int, seed: int = 12) -> dict[str, bytes]:
    """``count`` small files, 100 per directory, written below ``root``; their bytes by path."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        rel = f"part-{i // 100:03d}/sample-{i:05d}.bin"
        data = rng.randbytes(rng.randrange(0, 300))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = data
    return files


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """The 5 000-file source tree on local disk (the workers are on this machine)."""
    root = tmp_path_factory.mktemp("dask-src") / "dataset"
    return root, make_tree(root, FILES)


def s3_listing(raw_s3: Any, root: str) -> dict[str, tuple[int, str]]:
    """``(size, MD5)`` of every object below ``root`` as the server lists them."""
    return {key: (o["Size"], o["ETag"].strip('"')) for key, o in objects_below(raw_s3, root)}


def gcs_listing(server: FakeGCSServer, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """``(size, MD5)`` of every object below ``prefix`` as fake-gcs-server lists them."""
    found: dict[str, tuple[int, str]] = {}
    token = ""
    while True:
        query = urllib.parse.urlencode(
            {"prefix": prefix + "/", "maxResults": 1000, **({"pageToken": token} if token else {})}
        )
        with urllib.request.urlopen(f"{server.url}/storage/v1/b/{bucket}/o?{query}") as answer:
            page = json.load(answer)
        for item in page.get("items", []):
            md5 = base64.b64decode(item["md5Hash"]).hex()
            found[item["name"][len(prefix) + 1 :]] = (int(item["size"]), md5)
        token = page.get("nextPageToken", "")
        if not token:
            return found


def expected(files: dict[str, bytes]) -> dict[str, tuple[int, str]]:
    return {rel: (len(data), hashlib.md5(data).hexdigest()) for rel, data in files.items()}


def our_tasks(stream: Any, mode: str) -> list[dict[str, Any]]:
    return [t for t in stream.data if str(t["key"]).startswith(f"artifactio-{mode}-")]


# ------------------------------------------------------------------ S3 and GCS


def test_copy_5000_files_to_s3_on_two_workers_then_sync_moves_nothing(
    client: Client,
    seaweedfs: SeaweedFS,
    raw_s3: Any,
    s3_root: str,
    tree: tuple[Path, dict[str, bytes]],
) -> None:
    src, files = tree
    dst = s3_root
    options = seaweedfs.store_options()
    snapshots: list[TransferProgress] = []
    with get_task_stream(client=client) as stream:
        report = dask_blocking.copy(
            str(src),
            dst,
            client=client,
            recursive=True,
            shard_size=500,
            dst_options=options,
            progress=snapshots.append,
        )
    assert report.ok, report.failures
    assert (report.transferred, report.skipped, report.failed) == (FILES, 0, 0)
    assert report.bytes == sum(map(len, files.values()))
    assert s3_listing(raw_s3, s3_root) == expected(files)
    tasks = our_tasks(stream, "copy")
    assert len(tasks) == FILES // 500
    assert len({t["worker"] for t in tasks}) == 2, "both workers ran shards"
    assert not any(seaweedfs.secret_key in str(t["key"]) for t in stream.data)
    last = snapshots[-1]
    assert last.listing_done
    assert (last.files_done, last.files_total) == (FILES, FILES)
    assert last.bytes_done == last.bytes_total == report.bytes

    again = dask_blocking.sync(str(src), dst, client=client, shard_size=500, dst_options=options)
    assert (again.transferred, again.skipped, again.failed) == (0, FILES, 0)
    logs = json.dumps([client.get_scheduler_logs(), client.get_worker_logs()])
    assert seaweedfs.secret_key not in logs


# fake-gcs-server's in-memory bucket costs each write time in proportion to the objects already
# in it (about 1 ms per write when empty, 15 ms at 6 000 objects): 5 000 writes take 40-60 s on 2
# busy cores, so the default 120 s timeout leaves too little room.
@pytest.mark.timeout(300)
def test_copy_5000_files_to_gcs_then_sync_moves_nothing(
    client: Client,
    fake_gcs_server: FakeGCSServer,
    gcs_root: str,
    tree: tuple[Path, dict[str, bytes]],
) -> None:
    src, files = tree
    bucket, _, prefix = gcs_root.removeprefix("gs://").partition("/")
    # The emulator takes any token; the store sends it on every request.
    options = fake_gcs_server.store_options(token="a-token-for-the-emulator")
    report = dask_blocking.copy(
        str(src), gcs_root, client=client, recursive=True, shard_size=700, dst_options=options
    )
    assert (report.transferred, report.skipped, report.failed) == (FILES, 0, 0), report.failures
    assert gcs_listing(fake_gcs_server, bucket, prefix) == expected(files)
    again = dask_blocking.sync(str(src), gcs_root, client=client, dst_options=options)
    assert (again.transferred, again.skipped, again.failed) == (0, FILES, 0)
    logs = json.dumps([client.get_scheduler_logs(), client.get_worker_logs()])
    assert "a-token-for-the-emulator" not in logs


def test_a_worker_killed_midway_is_rerun_and_each_file_counted_once(
    client: Client,
    seaweedfs: SeaweedFS,
    raw_s3: Any,
    s3_root: str,
    tree: tuple[Path, dict[str, bytes]],
) -> None:
    src, files = tree
    dst = s3_root
    options = seaweedfs.store_options()
    midway = threading.Event()

    def progress(p: TransferProgress) -> None:
        if p.files_done >= 1000:
            midway.set()

    with get_task_stream(client=client) as stream, ThreadPoolExecutor(1) as pool:
        job = pool.submit(
            dask_blocking.copy,
            str(src),
            dst,
            client=client,
            recursive=True,
            shard_size=500,
            dst_options=options,
            progress=progress,
        )
        assert midway.wait(60), "the copy did not get to 1000 files"
        running = {
            worker: [k for k in keys if str(k).startswith("artifactio-copy-")]
            for worker, keys in client.processing().items()
        }
        victim = next(worker for worker, keys in running.items() if keys)
        pid = client.run(os.getpid, workers=[victim])[victim]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        report = job.result(timeout=120)

    assert report.ok, report.failures
    assert (report.transferred, report.skipped, report.failed) == (FILES, 0, 0)
    assert s3_listing(raw_s3, s3_root) == expected(files)
    done_on = {str(t["key"]): t["worker"] for t in our_tasks(stream, "copy")}
    assert len(done_on) == FILES // 500
    assert any(done_on[str(k)] != victim for k in running[victim]), "a shard of it was rerun"
    again = dask_blocking.sync(str(src), dst, client=client, shard_size=500, dst_options=options)
    assert (again.transferred, again.skipped, again.failed) == (0, FILES, 0)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed one


def test_secrets_stay_out_of_task_reprs_keys_and_logs(
    client: Client, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    """A shard task whose source is gone fails on a worker: Dask logs it and keeps it."""
    secret = seaweedfs.secret_key
    dst = StoreSpec.parse(f"s3://{BUCKET}/secrets", seaweedfs.store_options(), "dst")
    store = dst.open(4)
    dst = dst.secured(store)
    asyncio.run(store.aclose())
    assert isinstance(dst.options["secret"], SecretStr)
    assert dst.options["secret"].get_secret_value() == secret  # it does travel, hidden
    src = StoreSpec.parse(tmp_path / "gone", None, "src")
    task = ShardTask(TransferPlan.for_copy(recursive=True), src, dst, 3)
    assert secret not in repr(task)
    assert secret not in str(task)
    assert "secret" in repr(task)  # the option's name, not its value

    # A short key: Dask's task repr then shows the arguments' reprs (a long one elides them).
    key = f"ad-{uuid.uuid4().hex[:6]}"
    future = client.submit(run_shard, task, key=key, pure=False)
    with pytest.raises(FileNotFoundError) as failed:
        future.result(timeout=60)
    assert secret not in str(failed.value)
    specs = client.run_on_scheduler(
        lambda dask_scheduler: {
            str(k): repr(ts.run_spec) + repr(getattr(ts.run_spec, "args", ()))
            for k, ts in dask_scheduler.tasks.items()
        }
    )
    assert "StoreSpec" in specs[key]
    assert not any(secret in k or secret in spec for k, spec in specs.items())
    worker_logs = json.dumps(client.get_worker_logs())
    assert "Compute Failed" in worker_logs
    assert f"<Task '{key}' run_shard(ShardTask(copy #3" in worker_logs
    assert secret not in worker_logs
    assert secret not in json.dumps(client.get_scheduler_logs())
    del future


# ------------------------------------------------------------------ small trees


def test_sync_delete_across_shards(client: Client, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = make_tree(src, 250, seed=3)
    for rel, data in files.items():  # the same paths, one byte longer: each is transferred
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(data + b"!")
    extra = ["part-000/zz-extra.bin", "part-001/a-extra.bin", "only-here/x.bin", "top.bin"]
    for rel in extra:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(b"extra")
    report = dask_blocking.sync(str(src), str(dst), client=client, delete=True, shard_size=30)
    assert report.ok, report.failures
    assert (report.transferred, report.skipped) == (250, 0)
    assert report.deleted == len(extra)  # each once, by the shard whose range holds it
    found = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert found == files
    again = dask_blocking.sync(str(src), str(dst), client=client, delete=True, shard_size=30)
    assert (again.transferred, again.skipped, again.deleted) == (0, 250, 0)


async def test_an_asynchronous_client_on_its_loop(
    cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 120, seed=5)
    async with Client(cluster.scheduler_address, asynchronous=True) as aclient:
        report = await dask_transfer.copy(
            str(tmp_path / "src"), str(tmp_path / "dst"), client=aclient, recursive=True,
            shard_size=25,
        )  # fmt: skip
        assert (report.transferred, report.failed) == (120, 0)
        with pytest.raises(RuntimeError, match="asynchronous Client"):
            dask_blocking.sync(str(tmp_path / "src"), str(tmp_path / "dst"), client=aclient)
    copied = {str(p.relative_to(tmp_path / "dst")): p.read_bytes()
              for p in (tmp_path / "dst").rglob("*") if p.is_file()}  # fmt: skip
    assert copied == files


async def test_cancelling_the_driver_cancels_its_shards(client: Client, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", 600, seed=6)
    started = asyncio.Event()

    def progress(p: TransferProgress) -> None:
        if p.files_done:
            started.set()

    copying = asyncio.create_task(
        dask_transfer.copy(
            str(tmp_path / "src"), str(tmp_path / "dst"), client=client, recursive=True,
            shard_size=25, progress=progress,
        )
    )  # fmt: skip
    await started.wait()  # the first shard is in: 23 more are queued or running
    copying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await copying

    def ours(dask_scheduler: Any) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("artifactio-copy-")]

    for _ in range(300):  # the scheduler forgets cancelled tasks at once; running ones finish
        if not await asyncio.to_thread(client.run_on_scheduler, ours):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("shards of the cancelled copy are still on the cluster")
    assert len(list((tmp_path / "dst").rglob("*.bin"))) < 600


def test_one_file_is_one_shard(client: Client, tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights" * 1000)
    (tmp_path / "out").mkdir()
    report = dask_blocking.copy(str(tmp_path / "model.bin"), str(tmp_path / "out"), client=client)
    assert (report.transferred, report.bytes) == (1, 7000)
    assert (tmp_path / "out" / "model.bin").read_bytes() == b"weights" * 1000


def test_what_cannot_travel_is_refused(client: Client, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with artifactio.ArtifactStore(str(tmp_path)) as store:
        with pytest.raises(TypeError, match=r"\(store, path\) pair.*src_options"):
            dask_blocking.copy((store, "src"), str(tmp_path / "dst"), client=client)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not a store"):
            dask_blocking.copy(str(tmp_path / "src"), store, client=client)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memory:// store lives in one process"):
        dask_blocking.sync(str(tmp_path / "src"), "memory://dask-refused/x", client=client)
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        dask_blocking.copy(str(tmp_path / "src"), str(tmp_path / "d"), client=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shard_size must be a positive int"):
        dask_blocking.sync(str(tmp_path / "src"), str(tmp_path / "d"), client=client, shard_size=0)
    with pytest.raises(FileNotFoundError):
        dask_blocking.sync(str(tmp_path / "missing"), str(tmp_path / "d"), client=client)
    with pytest.raises(IsADirectoryError):
        dask_blocking.copy(str(tmp_path / "src"), str(tmp_path / "d"), client=client)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ the cuts


async def test_shards_tile_the_key_space_and_cut_at_directories(memory_root: str) -> None:
    files = {f"a/f{i:02d}": b"x" * 10 for i in range(10)}  # full at the end of a/
    files.update({f"b/c/f{i:02d}": b"y" * 10 for i in range(5)})
    files.update({"big.bin": b"z" * 1000, "c.txt": b"c", "d/e": b"e", "skip.tmp": b"t"})
    async with artifactio.open_store(memory_root) as store:
        for rel, data in files.items():
            await store.write_bytes(rel, data)
        plan = TransferPlan.for_sync(exclude=["*.tmp"])
        tally = Tally(None)
        shards = [
            s
            async for s in split(
                plan,
                Endpoint(store, ""),
                max_files=5,
                max_bytes=500,
                retrying=Retrying(RetryPolicy(0)),
                tally=tally,
            )
        ]
    ranges = [s.key_range for s in shards]
    assert ranges[0].start is None
    assert ranges[-1].stop is None
    assert all(a.stop == b.start for a, b in itertools.pairwise(ranges))
    assert all(r.start is None or r.stop is None or r.start < r.stop for r in ranges)
    wanted = [rel for rel in files if plan.filter.wants_file(rel)]
    for rel in wanted:  # each file in exactly one shard, and counted there
        assert sum(r.contains(rel) for r in ranges) == 1, rel
    assert sum(s.files for s in shards) == len(wanted) == tally.files_total
    assert all(s.files <= 5 for s in shards)
    assert "b/" in [r.start for r in ranges]  # a subdirectory starts a shard
    big = next(s for s in shards if s.key_range.contains("big.bin"))
    assert (big.files, big.bytes) == (1, 1000)  # over max_bytes: a shard of its own
    assert Shard(0, KeyRange()).describe() == "every path"


async def test_a_shard_is_cut_before_the_rest_is_listed(
    memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver gets the first shard when its end is known, not after the whole listing."""
    async with artifactio.open_store(memory_root) as store:
        for d, f in itertools.product(range(10), range(10)):
            await store.write_bytes(f"d{d}/f{f}", b"x")
        listed: list[str] = []
        scandir = store._scandir

        def counting_scandir(path: str) -> Any:
            listed.append(path)
            return scandir(path)

        monkeypatch.setattr(store, "_scandir", counting_scandir)
        tally = Tally(None)
        shards = split(
            TransferPlan.for_copy(recursive=True),
            Endpoint(store, ""),
            max_files=10,
            max_bytes=10**9,
            retrying=Retrying(RetryPolicy(0)),
            tally=tally,
        )
        async with contextlib.aclosing(shards):
            first = await anext(shards)
            assert (first.files, first.key_range) == (10, KeyRange(None, "d1/"))
            assert tally.files_total == 10  # d1 ... d9 not listed yet
            assert len(listed) == 2  # the top level and d0
            rest = [s async for s in shards]
    assert [s.files for s in rest] == [10] * 9
    assert len(listed) == 11
