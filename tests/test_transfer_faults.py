"""Bulk transfers when the network fails: the real servers behind a fault proxy.

Each test puts a :class:`~_faults.FaultProxy` between the object store and the
session's SeaweedFS (S3) or fake-gcs-server (GCS). What must hold:

- through a proxy that resets a share of the connections and cuts answers
  midway (seeded), a transfer of a few hundred files, one of them multipart,
  completes, every object byte-identical (local → S3/GCS, and back);
- when the server goes away midway (the proxy resets every request from the
  Nth on), the transfer reports its failures instead of raising; with the
  server back, ``sync`` finishes the rest and another ``sync`` moves nothing;
- a transfer cancelled while a multipart/resumable upload (or a download into
  a local file) is held on the wire leaves no partial object, no pending
  upload and no temporary file;
- a large file comes down in ranged reads that are in flight together (one
  part's answer held back, the others are asked for), written into one
  temporary file that is renamed into place;
- uploads carry the checksums the service checks: ``Content-MD5`` on a single
  S3 ``PutObject``, CRC-32 on every part, the CRC-32C of a GCS upload; an S3
  multipart upload also carries the file's MD5 in its metadata, so that
  ``sync(compare="checksum")`` reads no object back, small or large.

The clean-up requests of a failed write (S3's ``AbortMultipartUpload`` and its
listings of orphaned uploads, GCS's session cancellation) get no faults: an abort
that cannot reach the server leaves its upload pending, a documented limit. On
GCS only the last chunk of a resumable upload gets faults, and only those after
which the server has acted (see test_fault_run.py: fake-gcs-server cannot
resume a session). Retries come from the stores (``retries``) and the engine
(``retries=``); nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _faults import Action, Cut, Drop, FaultProxy, Request, Reset, StallResponse, StallUpload
from _s3_fixtures import PART, pending_uploads
from _transfer_fixtures import contents, fill, make_tree
from artifactio.backends.gcs import GCSStore
from artifactio.backends.local import LocalStore
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path

    from artifactio import AsyncArtifactStore
    from artifactio.embedded import FakeGCSServer, SeaweedFS

SEED = int(os.environ.get("ARTIFACTIO_FAULT_SEED", "20240607"))
FAULT_RATE = 0.1
GCS_CHUNK = 256 * 1024


@dataclass
class Backend:
    """One object-store server, reached directly or through a proxy."""

    kind: str
    url: str
    root: str
    options: Callable[..., dict[str, Any]]
    raw_s3: Any = None

    def store(self, proxy: FaultProxy | None = None, **options: Any) -> AsyncArtifactStore:
        if proxy is not None:
            options["endpoint_url"] = proxy.url
        options.setdefault("part_size", PART if self.kind == "s3" else GCS_CHUNK)
        if self.kind == "s3":
            return S3Store(self.root, **self.options(**options))
        return GCSStore(self.root, **self.options(**options))

    @property
    def big(self) -> int:
        """A size that takes three parts (S3) or four chunks (GCS)."""
        return 2 * PART + 17 if self.kind == "s3" else 3 * GCS_CHUNK + 17

    def pending(self, store: AsyncArtifactStore) -> list[str]:
        """Keys below ``store``'s root with a pending multipart upload (S3; GCS lists none)."""
        if not isinstance(store, S3Store):
            return []
        return pending_uploads(self.raw_s3, store.root)

    def spared(self, request: Request, action: Action) -> bool:
        """Whether ``request`` must get no ``action``: a write's clean-up, an unresumable chunk."""
        target = request.target
        if self.kind == "s3":
            if request.method == "DELETE" and "uploadId=" in target:
                return True
            return request.method == "GET" and bool(re.search(r"[?&](uploads|uploadId=)", target))
        if request.method == "DELETE" and "upload_id=" in target:
            return True
        if request.method == "PUT" and "upload_id=" in target:
            last = not request.headers.get("Content-Range", "").endswith("/*")
            return not (last and isinstance(action, (Drop, Cut)))
        return False


@pytest.fixture(
    params=[pytest.param("s3", marks=pytest.mark.s3), pytest.param("gcs", marks=pytest.mark.gcs)]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """S3 on a fresh prefix (emptied afterwards), or GCS in a fresh bucket."""
    if request.param == "gcs":
        server: FakeGCSServer = request.getfixturevalue("fake_gcs_server")
        root = request.getfixturevalue("gcs_root")
        yield Backend("gcs", server.url, root, server.store_options)
        return
    s3: SeaweedFS = request.getfixturevalue("seaweedfs")
    root = request.getfixturevalue("s3_root")  # emptied afterwards
    yield Backend("s3", s3.url, root, s3.store_options, request.getfixturevalue("raw_s3"))


@pytest.fixture
async def proxy(backend: Backend) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(backend.url) as p:
        yield p


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalStore]:
    (tmp_path / "src").mkdir()
    async with LocalStore(str(tmp_path / "src")) as store:
        yield store


def _flaky(backend: Backend, rng: random.Random) -> Callable[[Request], Action | None]:
    """Resets, lost answers and answers cut midway, for a share of the requests."""

    def decide(request: Request) -> Action | None:
        if rng.random() >= FAULT_RATE:
            return None
        choices: list[Action] = [Reset(), Drop(), Drop(reset=True), Cut(rng.randrange(0, 600))]
        action = rng.choice(choices)
        return None if backend.spared(request, action) else action

    return decide


def _local_names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


# ----------------------------------------------------------------- a flaky network


async def test_a_transfer_through_a_flaky_network_completes(
    backend: Backend, proxy: FaultProxy, local: LocalStore, tmp_path: Path
) -> None:
    files = make_tree(count=150, big=backend.big, seed=SEED)
    await fill(local, files)
    proxy.add(_flaky(backend, random.Random(SEED)), times=None)
    options = {"retries": 3, "read_timeout": 10}
    async with backend.store(proxy, **options) as store, backend.store() as direct:
        report = await artifactio.copy(
            (local, "."), (store, "."), recursive=True, concurrency=16, retries=5
        )
        assert report.failures == []
        assert report.transferred == len(files)
        assert await contents(direct) == files
        assert backend.pending(direct) == []

        back = tmp_path / "back"
        report = await artifactio.sync((store, "."), str(back), concurrency=16, retries=5)
        assert report.failures == []
        assert report.transferred == len(files)
    async with LocalStore(str(back)) as returned:
        assert await contents(returned) == files
    assert len(proxy.faults) > 10, "the run injected too few faults"


def _is_listing(backend: Backend, request: Request) -> bool:
    if request.method != "GET":
        return False
    if backend.kind == "s3":
        return "list-type=2" in request.target
    return bool(re.search(r"/o\?", request.target)) and "alt=media" not in request.target


async def test_a_small_file_costs_one_request_to_move(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    files = {f"d{i % 3}/f{i:02d}.bin": bytes([i]) * (100 + i) for i in range(40)}
    await fill(local, files)
    async with backend.store(proxy) as store, backend.store() as direct:
        report = await artifactio.copy((local, "."), (store, "out"), recursive=True)
        assert report.ok
        assert report.transferred == len(files)
        assert await contents(direct, "out") == files
    writes = [r for r in proxy.requests if r.method in ("PUT", "POST")]
    listings = [r for r in proxy.requests if _is_listing(backend, r)]
    others = [r for r in proxy.requests if r not in writes and r not in listings]
    assert len(writes) == len(files)  # the service checked each one as it took it
    assert len(listings) <= 4  # the destination, once per level
    assert len(others) <= 2, others  # where the destination is; nothing per file


# ----------------------------------------------------------------- the server goes away


async def test_the_server_going_away_is_reported_then_sync_finishes(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    files = make_tree(count=200, seed=SEED)
    await fill(local, files)
    down = proxy.add(Reset(), nth=60, times=None)  # the 60th request on finds no server
    async with backend.store(proxy, retries=0) as store:
        report = await artifactio.sync((local, "."), (store, "."), concurrency=8, retries=1)
        assert down.hits > 0
        assert report.failed > 0
        assert len(report.failures) == report.failed
        assert all(f["path"] and "Error" in f["error"] for f in report.failures)
        assert report.transferred < len(files)

        proxy.clear()  # the server is back
        rest = await artifactio.sync((local, "."), (store, "."), concurrency=8, retries=1)
        assert rest.failures == []
        assert rest.transferred + rest.skipped == len(files)
        assert rest.skipped >= report.transferred  # a failed file may have landed whole
        again = await artifactio.sync((local, "."), (store, "."))
        assert (again.transferred, again.skipped, again.failed) == (0, len(files), 0)
    async with backend.store() as direct:
        assert await contents(direct) == files


# ----------------------------------------------------------------- cancelled midway


async def test_cancelled_upload_leaves_no_partial_object_or_pending_upload(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    files = make_tree(count=120, big=backend.big, seed=SEED)
    await fill(local, files)
    if backend.kind == "s3":
        held = proxy.add(StallUpload(), method="PUT", target=r"big/weights\.bin\?.*partNumber=2\b")
    else:
        held = proxy.add(StallUpload(), method="PUT", target=r"upload_id=", nth=2)
    async with backend.store(proxy, retries=1) as store, backend.store() as direct:
        copying = asyncio.ensure_future(
            artifactio.copy((local, "."), (store, "."), recursive=True, concurrency=8)
        )
        await asyncio.wait_for(held.fired.wait(), 60)  # part 2 of the big file is on the wire
        if backend.kind == "s3":
            assert backend.pending(direct) == ["big/weights.bin"]
        copying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copying
        landed = await contents(direct)
        assert "big/weights.bin" not in landed
        assert all(files[path] == data for path, data in landed.items())
        assert len(landed) < len(files)
        assert backend.pending(direct) == []


async def test_cancelled_download_leaves_no_temporary_or_partial_file(
    backend: Backend, proxy: FaultProxy, local: LocalStore, tmp_path: Path
) -> None:
    files = make_tree(count=120, big=backend.big, seed=SEED)
    await fill(local, files)
    big = r"big/weights\.bin" if backend.kind == "s3" else r"big%2Fweights\.bin\?.*alt=media"
    out = tmp_path / "out"
    async with backend.store() as direct:
        report = await artifactio.copy((local, "."), (direct, "."), recursive=True)
        assert report.transferred == len(files)
    # Reads come in ranges of part_size; the first is fetched before the destination file
    # opens, so holding the second catches the download with its temporary file open.
    held = proxy.add(StallResponse(), method="GET", target=big, nth=2, times=None)
    async with backend.store(proxy, retries=1) as store:
        copying = asyncio.ensure_future(
            artifactio.copy((store, "."), str(out), recursive=True, concurrency=8)
        )
        await asyncio.wait_for(held.fired.wait(), 60)
        while not list(out.rglob(".weights.bin.*.tmp")):  # its temporary file is there
            await asyncio.sleep(0.02)
        copying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copying
    names = _local_names(out)
    assert "big/weights.bin" not in names
    assert all((out / n).read_bytes() == files.get(n) for n in names)  # no temporary file
    assert len(names) < len(files)


async def test_a_large_download_goes_in_parallel_ranged_reads_into_one_temporary_file(
    backend: Backend, proxy: FaultProxy, local: LocalStore, tmp_path: Path
) -> None:
    size = 4 * PART + 17  # five parts of PART bytes (the last one of 17)
    data = random.Random(SEED).randbytes(size)
    await fill(local, {"big.bin": data})
    async with backend.store() as direct:
        assert (await artifactio.copy((local, "big.bin"), (direct, "big.bin"))).ok
    big = r"/big\.bin$" if backend.kind == "s3" else r"big\.bin\?.*alt=media"

    def reads() -> list[Request]:
        return [r for r in proxy.requests if r.method == "GET" and re.search(big, r.target)]

    held = proxy.add(StallResponse(), method="GET", target=big, nth=2)
    out = tmp_path / "out"
    async with backend.store(proxy) as store:
        copying = asyncio.ensure_future(
            artifactio.copy((store, "big.bin"), str(out / "big.bin"), part_size=PART, concurrency=8)
        )
        await asyncio.wait_for(held.fired.wait(), 60)

        async def more_parts_requested() -> None:
            while len(reads()) < 4:
                await asyncio.sleep(0.02)

        # While one part's answer is held back, other parts are asked for: in parallel.
        await asyncio.wait_for(more_parts_requested(), 60)
        assert [p.name for p in out.iterdir()] != ["big.bin"]  # not published yet
        assert len(list(out.glob(".big.bin.*.tmp"))) == 1  # one temporary file
        held.release()
        report = await copying
    assert report.ok
    assert [p.name for p in out.iterdir()] == ["big.bin"]  # renamed into place, nothing else
    assert (out / "big.bin").read_bytes() == data
    ranges = sorted(
        tuple(int(n) for n in r.headers["Range"].removeprefix("bytes=").split("-")) for r in reads()
    )
    wanted = [(offset, min(offset + PART, size) - 1) for offset in range(0, size, PART)]
    assert [r for r in ranges if r in wanted] == wanted  # each part read by its own range


async def test_uploads_carry_the_checksums_the_service_checks(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    small = b"s" * 1000
    big = random.Random(SEED).randbytes(2 * PART + 5)
    await fill(local, {"small.bin": small, "big.bin": big})
    async with backend.store(proxy) as store:
        report = await artifactio.copy((local, "."), (store, "."), recursive=True, part_size=PART)
        assert (report.transferred, report.failed) == (2, 0)
    writes = [r for r in proxy.requests if r.method in ("PUT", "POST")]
    if backend.kind == "s3":
        # One PutObject with Content-MD5 for the small file; CRC-32 on every part of the big one.
        (put,) = [r for r in writes if r.path.endswith("/small.bin")]
        assert put.headers["Content-MD5"] == base64.b64encode(hashlib.md5(small).digest()).decode()
        parts = sorted(
            (int(r.query["partNumber"][0]), r.headers["x-amz-checksum-crc32"])
            for r in writes
            if "uploadId" in r.query and "partNumber" in r.query
        )
        chunks = [big[offset : offset + PART] for offset in range(0, len(big), PART)]
        crcs = [base64.b64encode(zlib.crc32(c).to_bytes(4, "big")).decode() for c in chunks]
        assert parts == list(enumerate(crcs, start=1))
        # The upload carries the whole file's MD5, computed before it started.
        (create,) = [r for r in writes if "uploads" in r.query]
        assert create.headers["x-amz-meta-artifactio-md5"] == hashlib.md5(big).hexdigest()
    else:
        # The last chunk of the resumable upload carries the whole object's CRC-32C.
        google_crc32c = pytest.importorskip("google_crc32c")
        crc = base64.b64encode(google_crc32c.Checksum(big).digest()).decode()
        hashes = [r.headers.get("X-Goog-Hash") for r in writes if "upload_id=" in r.target]
        assert hashes[-1] == f"crc32c={crc}"


async def test_sync_by_checksum_reads_no_object_back(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    # Small files (one PutObject each) and files uploaded in parts: S3 keeps the
    # MD5 the transfer computed up front in a multipart upload's metadata too.
    files = {f"f{i:02d}.bin": bytes([i]) * 2000 for i in range(10)}
    files |= {f"big{i}.bin": random.Random(i).randbytes(backend.big) for i in range(2)}
    await fill(local, files)
    async with backend.store(proxy) as store:
        assert (await artifactio.copy((local, "."), (store, "."), recursive=True)).ok
        if backend.kind == "s3":
            creates = [r for r in proxy.requests if r.method == "POST" and "uploads" in r.query]
            assert len(creates) == 2  # the big files went in parts
        await local.write_bytes("f03.bin", b"x" * 2000)  # same size, other bytes
        await local.write_bytes("big1.bin", random.Random(7).randbytes(backend.big))
        proxy.requests.clear()
        report = await artifactio.sync((local, "."), (store, "."), compare="checksum")
        assert (report.transferred, report.skipped, report.failed) == (2, len(files) - 2, 0)
        report = await artifactio.sync((local, "."), (store, "."), compare="checksum")
        assert (report.transferred, report.skipped, report.failed) == (0, len(files), 0)
    reads = [r for r in proxy.requests if r.method == "GET" and not _is_listing(backend, r)]
    assert [r for r in reads if backend.kind == "s3" or "alt=media" in r.target] == []


async def test_retries_do_not_multiply_across_layers(
    backend: Backend, proxy: FaultProxy, local: LocalStore
) -> None:
    await fill(local, {"a.bin": b"a" * 100})
    method = "PUT" if backend.kind == "s3" else "POST"
    proxy.add(Reset(), method=method, times=None)  # every write's connection is reset
    seen: list[int] = []
    async with backend.store(proxy, retries=2) as store:
        for retries in (0, 3):
            proxy.requests.clear()
            report = await artifactio.copy((local, "a.bin"), (store, "a.bin"), retries=retries)
            assert report.failed == 1
            assert "StoreConnectionError" in report.failures[0]["error"]
            seen.append(len([r for r in proxy.requests if r.method == method]))
    # The store retried its request; the transfer, which would retry 3 times, did not
    # start it over once more.
    assert seen[0] >= 3
    assert seen[1] == seen[0]
