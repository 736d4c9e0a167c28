"""A randomized fault run: mixed operations through a proxy that breaks requests at random.

One seeded run per backend (SeaweedFS for S3, fake-gcs-server for GCS): small
and multipart writes, ``x``-mode writes, reads, copies, renames and rmtrees, one
after the other, while :class:`~_faults.FaultProxy` drops, cuts, resets and
stalls a share of the requests. A model keeps, for every path, the contents it
may hold (``ABSENT`` included): a write that succeeded leaves exactly its
content; one that failed may or may not have landed (its answer may be what was
lost), never partly. What must hold:

- a read returns one of the contents the path may hold, whole, or fails;
  ``FileNotFoundError`` only when the path may be absent;
- an ``x``-mode write reports ``FileExistsError`` only when the path may exist,
  and succeeds only when it may be absent;
- at the end, read directly from the server, every path holds one of its
  possible contents, and (S3) no multipart upload is pending;
- nothing hangs (each request is bounded; pytest's timeout would catch it).

The clean-up requests of a failed write (S3's ``AbortMultipartUpload`` and the
listings that find orphaned uploads, GCS's session cancellation) are spared: an
abort that cannot reach the server after its retries leaves its upload pending,
a documented limit, not what this run looks for. On GCS, of a resumable
session's chunks only the last gets faults, and only those after which the
server has acted (a lost or held answer): fake-gcs-server finishes a session,
with what it has, when asked for its status (GCS answers ``308``), so a chunk
cannot be resumed there (test_gcs.py covers resuming, with GCS's answer).
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

from _faults import Action, Cut, Drop, FaultProxy, Request, Reset, StallResponse, StallUpload
from _server_fixtures import BUCKET
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Store

if TYPE_CHECKING:
    from collections.abc import Callable

    import artifactio
    from artifactio.embedded import FakeGCSServer, SeaweedFS

SEED = int(os.environ.get("ARTIFACTIO_FAULT_SEED", "20240601"))
OPERATIONS = 60
BUDGET = 6.0
"""Seconds of operations at most (the run stops early on a slow machine)."""
FAULT_RATE = 0.12

ABSENT = None
Content = bytes | None

FILES = ("d1/a.bin", "d1/b.bin", "d1/sub/c.bin", "d2/d.bin")
DIRS = ("d1", "d1/sub", "d2")


Allowed: TypeAlias = "Callable[[Request, Action], bool]"


def _fault_policy(rng: random.Random, allowed: Allowed) -> Any:
    """Draw a fault (or none) for each request."""

    def decide(request: Request) -> Action | None:
        if rng.random() >= FAULT_RATE:
            return None
        kind = rng.randrange(6)
        action: Action
        if kind == 0:
            action = Drop()
        elif kind == 1:
            action = Drop(reset=True)
        elif kind == 2:
            action = Cut(rng.randrange(0, 64))
        elif kind == 3:
            action = Reset()
        elif kind == 4 and request.method in ("PUT", "POST"):
            action = StallUpload(after=rng.randrange(0, 64 * 1024))
        else:
            action = StallResponse(after=rng.choice([None, 0, 100]))
        return action if allowed(request, action) else None

    return decide


class _Model:
    """What each path may hold."""

    def __init__(self) -> None:
        self.may: dict[str, set[Content]] = {p: {ABSENT} for p in FILES}

    def written(self, path: str, data: bytes, ok: bool) -> None:
        self.may[path] = {data} if ok else self.may[path] | {data}

    def files_below(self, top: str) -> list[str]:
        return [p for p in FILES if p.startswith(top + "/")]


async def _step(
    store: artifactio.AsyncArtifactStore, model: _Model, rng: random.Random, big: int
) -> str:
    """One random operation, checked against the model; what it was, for messages."""
    op = rng.choice(["write", "big", "big", "x", "x", "read", "read", "copy", "rename", "rmtree"])
    may = model.may
    # x-mode writes mostly where no file may be; the others mostly where one may be.
    wanted = [p for p in FILES if (ABSENT in may[p]) == (op == "x")]
    path = rng.choice(wanted if wanted and rng.random() < 0.8 else FILES)
    if op in ("write", "big", "x"):
        size = big + rng.randrange(1, 4096) if op == "big" else rng.randrange(0, 4096)
        data = rng.randbytes(size)
        if op == "x":
            data = data[: rng.randrange(0, 64)] + b"x"  # x-mode writes: small or large alike
            if rng.random() < 0.5:
                data += rng.randbytes(big)
            try:
                async with store.open(path, "xb") as f:
                    await f.write(data)
            except FileExistsError:
                assert may[path] != {ABSENT}, f"x-mode write of {path} told it exists; it cannot"
                return f"x {path}: exists"
            except OSError:
                model.written(path, data, ok=False)
                return f"x {path}: failed"
            assert ABSENT in may[path], f"x-mode write of {path} succeeded over a file"
            model.written(path, data, ok=True)
            return f"x {path} ({len(data)} B)"
        try:
            await store.write_bytes(path, data)
        except OSError:
            model.written(path, data, ok=False)
            return f"write {path}: failed"
        model.written(path, data, ok=True)
        return f"write {path} ({len(data)} B)"
    if op == "read":
        try:
            got = await store.read_bytes(path)
        except FileNotFoundError:
            assert ABSENT in may[path], f"{path} reads as missing; it cannot be"
            may[path] = {ABSENT}
            return f"read {path}: missing"
        except OSError:
            return f"read {path}: failed"
        assert got in may[path], f"{path} read {len(got)} bytes it never held"
        may[path] = {got}
        return f"read {path} ({len(got)} B)"
    if op in ("copy", "rename"):
        dst = rng.choice([p for p in FILES if p != path])
        held = may[path] - {ABSENT}
        try:
            if op == "copy":
                await store.copyfile(path, dst, overwrite=True)
            else:
                await store.rename(path, dst, overwrite=True)
        except FileNotFoundError:
            assert ABSENT in may[path], f"{op} says {path} is missing; it cannot be"
            return f"{op} {path}: missing"
        except OSError:
            may[dst] = may[dst] | held
            if op == "rename":
                may[path] = may[path] | {ABSENT}
            return f"{op} {path} -> {dst}: failed"
        assert held, f"{op} of {path} succeeded; it cannot exist"
        may[dst] = set(held)
        if op == "rename":
            may[path] = {ABSENT}
        return f"{op} {path} -> {dst}"
    top = rng.choice(DIRS)
    try:
        await store.rmtree(top)
    except FileNotFoundError:
        return f"rmtree {top}: missing"
    except OSError:
        for p in model.files_below(top):
            may[p] = may[p] | {ABSENT}
        return f"rmtree {top}: failed"
    for p in model.files_below(top):
        may[p] = {ABSENT}
    return f"rmtree {top}"


async def _run(
    store: artifactio.AsyncArtifactStore,
    direct: artifactio.AsyncArtifactStore,
    proxy: FaultProxy,
    big: int,
    allowed: Allowed,
) -> list[str]:
    """The seeded run; then every path read directly from the server."""
    rng = random.Random(SEED)
    proxy.add(_fault_policy(random.Random(SEED + 1), allowed), times=None)
    model = _Model()
    done: list[str] = []
    deadline = time.monotonic() + BUDGET
    for _ in range(OPERATIONS):
        if time.monotonic() > deadline:
            break
        try:
            done.append(await _step(store, model, rng, big))
        except AssertionError as exc:
            raise AssertionError(f"seed {SEED}, after {done[-5:]}: {exc}") from None
    # The proxy keeps holding what it stalls: released, a request whose client gave
    # up could still land, late (the outcome of a request never answered is unknown).
    for path in FILES:
        try:
            held: Content = await direct.read_bytes(path)
        except FileNotFoundError:
            held = ABSENT
        assert held in model.may[path], f"seed {SEED}: {path} ends with content it never had"
    assert len(proxy.faults) > 0, "the run injected no fault"
    return done


@pytest.mark.s3
async def test_random_faults_on_s3(seaweedfs: SeaweedFS) -> None:
    bucket = BUCKET
    root = f"s3://{bucket}/fault-run-{uuid.uuid4().hex[:12]}"
    part = 5 * 1024 * 1024

    def allowed(request: Request, action: Action) -> bool:  # not on a failed write's clean-up
        if request.method == "DELETE" and "uploadId=" in request.target:
            return False
        return not (
            request.method == "GET" and re.search(r"[?&](uploads|uploadId=)", request.target)
        )

    async with FaultProxy(seaweedfs.url) as proxy:
        options = seaweedfs.store_options(endpoint_url=proxy.url, read_timeout=0.5, retries=2)
        async with (
            S3Store(root, part_size=part, **options) as store,
            S3Store(root, part_size=part, **seaweedfs.store_options()) as direct,
        ):
            await _run(store, direct, proxy, part, allowed)
    raw = seaweedfs._client()
    prefix = root.removeprefix(f"s3://{bucket}/") + "/"
    pending = raw.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert [u["Key"] for u in pending] == [], f"seed {SEED}: pending uploads left"


@pytest.mark.gcs
async def test_random_faults_on_gcs(gcs_root: str, fake_gcs_server: FakeGCSServer) -> None:
    chunk = 256 * 1024

    def allowed(request: Request, action: Action) -> bool:
        if request.method == "DELETE" and "upload_id=" in request.target:
            return False  # a session's cancellation
        if request.method == "PUT" and "upload_id=" in request.target:  # the last chunk, acted on
            last = not request.headers.get("Content-Range", "").endswith("/*")
            return last and isinstance(action, (Drop, Cut, StallResponse))
        return True

    async with FaultProxy(fake_gcs_server.url) as proxy:
        options = fake_gcs_server.store_options(endpoint_url=proxy.url, read_timeout=0.5, retries=2)
        async with (
            GCSStore(gcs_root, part_size=chunk, **options) as store,
            GCSStore(gcs_root, part_size=chunk, **fake_gcs_server.store_options()) as direct,
        ):
            await _run(store, direct, proxy, 2 * chunk, allowed)
