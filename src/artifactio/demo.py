"""A pipeline's worth of artifact work, run against each store: ``python -m artifactio.demo``.

With no arguments it runs on the embedded default, a local store in a temporary
directory, and then on every embedded server whose package is installed (the
``demo`` extra brings them): SeaweedFS for S3, fake-gcs-server for GCS. Pass
URIs to run it elsewhere: ``python -m artifactio.demo s3://bucket/prefix``
(options come from the environment, e.g. ``AWS_ENDPOINT_URL``).

The same steps run everywhere: an async orchestrator writes a run's artifacts
concurrently, a blocking pipeline step reads them through the sync facade, then
the run is listed, copied, renamed and deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import artifactio

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["main", "run_demo"]

SMALL_FILES = 200
BIG_FILE = 24 * 1024 * 1024


def _line(label: str, value: object) -> None:
    print(f"  {label:<34} {value}")


async def _produce(store: artifactio.AsyncArtifactStore, run: str) -> float:
    """An async orchestrator writing a run's artifacts concurrently."""
    started = time.perf_counter()
    await store.makedirs(f"{run}/metrics")
    limit = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with limit:
            payload = json.dumps({"step": i, "loss": 1.0 / (i + 1)}).encode()
            await store.write_bytes(f"{run}/metrics/step-{i:04d}.json", payload)

    await asyncio.gather(*(one(i) for i in range(SMALL_FILES)))
    chunk = bytes(range(256)) * 4096  # 1 MiB
    async with store.open(f"{run}/model.bin", "wb") as f:
        for _ in range(BIG_FILE // len(chunk)):
            await f.write(chunk)
    async with store.open(f"{run}/README.txt", "w") as t:
        await t.write("weights: model.bin\nmetrics: metrics/*.json\n")
    return time.perf_counter() - started


def _consume(store: artifactio.ArtifactStore, run: str) -> dict[str, Any]:
    """A blocking pipeline step using the sync facade, as ZenML steps do."""
    with store.open(f"{run}/README.txt") as f:
        first_line = f.readline().strip()
    with store.open(f"{run}/model.bin", "rb") as f:
        f.seek(-16, os.SEEK_END)
        tail = f.read()
    losses = []
    for path in store.glob(f"{run}/metrics/step-00[0-4]*.json"):
        with store.open(path, "rb") as f:
            losses.append(json.load(f)["loss"])
    files = sum(len(filenames) for _, _, filenames in store.walk(run))
    return {
        "first_line": first_line,
        "tail_ok": tail == bytes(range(240, 256)),
        "json_read": len(losses),
        "files": files,
        "size": store.size(run),
    }


def run_demo(uri: str, **options: Any) -> None:
    """Run every step against the store at ``uri`` and print what happened."""
    print(f"\n== {uri}")
    store = artifactio.open_store(uri, **options)
    run = "runs/demo-1"
    produced = asyncio.run(_produce(store, run))
    _line(f"async: wrote {SMALL_FILES} + 2 artifacts", f"{produced:.2f} s")
    with artifactio.ArtifactStore(store) as sync_store:
        started = time.perf_counter()
        seen = _consume(sync_store, run)
        _line("sync: read back", f"{time.perf_counter() - started:.2f} s")
        _line("README first line", repr(seen["first_line"]))
        _line("SEEK_END on model.bin", "ok" if seen["tail_ok"] else "MISMATCH")
        _line("files under the run (walk)", seen["files"])
        _line("size of the run (bytes)", seen["size"])
        sync_store.copyfile(f"{run}/model.bin", "runs/best/model.bin", overwrite=True)
        sync_store.rename(run, "runs/demo-1-archived", overwrite=False)
        _line("after copy + rename, runs/ holds", sync_store.listdir("runs"))
        try:
            sync_store.open("../escape.txt", "w")
        except PermissionError as exc:
            _line("a path outside the root", f"{type(exc).__name__}: {exc}")
        try:
            with sync_store.open("runs/best/model.bin", "wb") as f:
                f.write(b"half-written")
                raise RuntimeError("step crashed mid-write")
        except RuntimeError:
            pass
        kept = sync_store.size("runs/best/model.bin") == BIG_FILE
        _line("crash mid-write kept old content", kept)
        sync_store.rmtree("runs")
        _line("after rmtree, root holds", sync_store.listdir(sync_store.root))


@contextlib.contextmanager
def _embedded_servers() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Start the embedded S3 and GCS servers; yield the (uri, options) to run on.

    A server is skipped, with a note saying why, when its package is missing or
    when the environment already points that backend at an endpoint (then pass
    its URI to the demo instead).
    """
    from .embedded import FakeGCSServer, SeaweedFS

    targets: list[tuple[str, dict[str, Any]]] = []
    with contextlib.ExitStack() as stack:
        if _env_endpoint("S3"):
            print("S3: an endpoint is configured in the environment; pass s3://... to use it")
        elif not SeaweedFS.available():
            print("S3: skipped, SeaweedFS is not installed (pip install 'artifactio[demo]')")
        else:
            print("starting embedded SeaweedFS (S3) on 127.0.0.1 ...")
            s3 = stack.enter_context(SeaweedFS(buckets=["demo"]))
            targets.append(("s3://demo/artifacts", s3.store_options()))
        if _env_endpoint("GCS"):
            print("GCS: STORAGE_EMULATOR_HOST is set; pass gs://... to use it")
        elif not FakeGCSServer.available():
            print("GCS: skipped, fake-gcs-server is not installed (pip install 'artifactio[demo]')")
        else:
            print("starting embedded fake-gcs-server (GCS) on 127.0.0.1 ...")
            gcs = stack.enter_context(FakeGCSServer(buckets=["demo"]))
            targets.append(("gs://demo/artifacts", gcs.store_options()))
        yield targets


def _env_endpoint(kind: str) -> str | None:
    if kind == "S3":
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return os.environ.get("STORAGE_EMULATOR_HOST")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m artifactio.demo``."""
    parser = argparse.ArgumentParser(prog="python -m artifactio.demo", description=__doc__)
    parser.add_argument("uris", nargs="*", help="store roots to run on (default: embedded)")
    parser.add_argument("--local-only", action="store_true", help="skip the embedded servers")
    args = parser.parse_args(argv)
    if args.uris:
        for uri in args.uris:
            run_demo(uri)
        return 0
    tmp = tempfile.mkdtemp(prefix="artifactio-demo-")
    try:
        run_demo(os.path.join(tmp, "store"))
        if not args.local_only:
            with _embedded_servers() as targets:
                for uri, options in targets:
                    run_demo(uri, **options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\ndemo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
