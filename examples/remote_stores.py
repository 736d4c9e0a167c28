"""S3 and GCS stores opened with an explicit endpoint and credentials, as a pipeline's config would.

Run: python examples/remote_stores.py [STORE_URI]

With no argument it starts the embedded servers on 127.0.0.1 (SeaweedFS for S3,
fake-gcs-server for GCS; the ``demo`` extra brings both), opens
``s3://models/team-a`` and ``gs://models/team-a`` on them with every option
spelled out, runs a few real operations on each, shows what a wrong secret
gives (one ``PermissionError``, which never shows the secret), and stops the
servers. A server that is not installed or does not start is skipped with a
note. A STORE_URI (a local directory, ``memory://...``, or an ``s3://`` or
``gs://`` root configured through the environment) gets the same operations.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile

import anyio

import artifactio
from artifactio.embedded import FakeGCSServer, SeaweedFS

# What the pipeline's configuration holds. The embedded S3 server is started
# with this key pair; against AWS, MinIO or Ceph they come from your secret store.
S3_KEY = "pipeline-writer"
S3_SECRET = "pipeline-writer-secret"
REGION = "us-east-1"

CHUNK = b"\x2a" * 256 * 1024


async def exercise(store: artifactio.AsyncArtifactStore) -> None:
    """A step's worth of real operations on ``run-1/``, then clean up."""
    async with store:
        async with store.open("run-1/model.bin", "wb") as f:
            for _ in range(4):
                await f.write(CHUNK)
        async with anyio.create_task_group() as tg:
            for epoch in range(5):
                data = json.dumps({"epoch": epoch, "loss": round(0.9**epoch, 4)}).encode()
                tg.start_soon(store.write_bytes, f"run-1/metrics/epoch-{epoch}.json", data)
        await store.copyfile("run-1/model.bin", "run-1/best/model.bin")
        print("  listdir run-1:", await store.listdir("run-1"))
        print("  glob run-1/metrics/*-4.json:", await store.glob("run-1/metrics/*-4.json"))
        copied = await store.read_bytes("run-1/best/model.bin")
        print(f"  best/model.bin: {len(copied)} bytes, same: {copied == CHUNK * 4}")
        print("  size of run-1:", await store.size("run-1"), "bytes")
        await store.rmtree("run-1")
        print("  run-1 exists after rmtree:", await store.exists("run-1"))


async def denied(store: artifactio.AsyncArtifactStore, secret: str) -> None:
    """Show the error of a request made with a wrong secret."""
    async with store:
        try:
            await store.exists("run-1/model.bin")
        except PermissionError as exc:
            print(f"  {type(exc).__name__}: {exc}")
            if secret in str(exc):
                raise SystemExit("the message showed the secret") from None
        else:
            raise SystemExit("the server took a wrong secret")


def start(server: SeaweedFS | FakeGCSServer, stack: contextlib.ExitStack) -> bool:
    """Start ``server`` (stopped by its own handle when ``stack`` closes); say why not."""
    name = type(server).__name__
    if not server.available():
        print(f"{name} is not installed (pip install 'artifactio[demo]'): skipped")
        return False
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        print(f"{name} did not start ({exc}): skipped")
        return False
    pid = server.pid
    print(f"started {name} (pid {pid}) at {server.url}")

    def stop() -> None:
        server.stop()
        print(f"stopped {name} (pid {pid})")

    stack.callback(stop)
    return True


def on_s3(port: int) -> None:
    print("S3:")
    # Opened outside the event loop: the first open_store("s3://...") imports the S3 client.
    store = artifactio.open_store(
        "s3://models/team-a",
        endpoint_url=f"http://127.0.0.1:{port}",  # MinIO, Ceph, R2...; leave out for AWS
        key=S3_KEY,
        secret=S3_SECRET,
        region=REGION,
    )
    anyio.run(exercise, store)
    print("S3 with a wrong secret:")
    wrong = "not-the-secret"
    store = artifactio.open_store(
        "s3://models/team-a",
        endpoint_url=f"http://127.0.0.1:{port}",
        key=S3_KEY,
        secret=wrong,
        region=REGION,
        retries=0,
    )
    anyio.run(denied, store, wrong)


def on_gcs(port: int, tmp: str) -> None:
    print("GCS:")
    # The emulator checks no credentials, so none are given: against Google Cloud
    # pass service_file="/path/to/key.json" (or token=...) and leave out endpoint_url.
    store = artifactio.open_store("gs://models/team-a", endpoint_url=f"http://127.0.0.1:{port}")
    anyio.run(exercise, store)
    print("GCS with a key file that holds no usable private key:")
    key_file = os.path.join(tmp, "key.json")
    broken = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"
    with open(key_file, "w") as f:
        key = {"type": "service_account", "client_email": "ci@example.iam.gserviceaccount.com"}
        json.dump({**key, "private_key": broken}, f)
    store = artifactio.open_store(
        "gs://models/team-a", endpoint_url=f"http://127.0.0.1:{port}", service_file=key_file
    )
    anyio.run(denied, store, "not-a-key")


def main(argv: list[str]) -> None:
    if argv:
        print(f"{argv[0]}:")
        anyio.run(exercise, artifactio.open_store(argv[0]))
        return
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-remote-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        s3 = SeaweedFS(buckets=["models"], access_key=S3_KEY, secret_key=S3_SECRET)
        if start(s3, stack):
            on_s3(s3.ports["s3"])
        gcs = FakeGCSServer(buckets=["models"])
        if start(gcs, stack):
            on_gcs(gcs.port, tmp)
        if s3.pid is None and gcs.pid is None:
            print("no embedded server ran: the same operations on memory://remote-example")
            anyio.run(exercise, artifactio.open_store("memory://remote-example/team-a"))


if __name__ == "__main__":
    main(sys.argv[1:])
