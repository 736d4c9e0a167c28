"""Bulk transfers: a local model directory to S3 and back, with a progress line.

Run: python examples/bulk_transfer.py [STORE_URI]

With no argument it starts the embedded S3 server (SeaweedFS, from the ``demo``
extra) on 127.0.0.1, and stops it at the end; if that server cannot start, it
says why and uses an in-memory store instead. A STORE_URI (a local directory,
``memory://...``, or ``s3://...`` configured through the environment) is used
as the far end instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import artifactio

MiB = 1024 * 1024


def make_model_dir(root: Path) -> None:
    """A few hundred small files (configs, shards of metrics) and one larger weights file."""
    rng = random.Random(42)
    for i in range(300):
        path = root / f"layer-{i // 50}" / f"tensor-{i:03d}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(100, 4000)))
    (root / "weights.bin").write_bytes(rng.randbytes(20 * MiB))  # a multipart upload on S3
    (root / "config.json").write_text('{"layers": 6, "dtype": "float16"}\n')


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class ProgressLine:
    """A progress callback: one compact line, rewritten in place on a terminal.

    Elsewhere (a log, a pipe) it prints a line a second, and the last one.
    """

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.printed = 0.0

    def __call__(self, p: artifactio.TransferProgress) -> None:
        done = p.listing_done and p.files_done == p.files_total
        now = time.monotonic()
        if not (self.tty or done or now - self.printed >= 1.0):
            return
        self.printed = now
        total = f"{p.files_total}" + ("" if p.listing_done else "+")
        line = (
            f"  {p.files_done}/{total} files, "
            f"{p.bytes_done / MiB:.1f}/{p.bytes_total / MiB:.1f} MiB"
            f" ({100 * (p.fraction or 0):.0f}%)"
        )
        if self.tty:
            print(f"\r{line}\x1b[K", end="\n" if done else "", flush=True)
        else:
            print(line)


def far_end(stack: contextlib.ExitStack) -> tuple[str, dict[str, Any]]:
    """Start the embedded S3 server (stopped when ``stack`` closes); else a memory store."""
    from artifactio.embedded import SeaweedFS

    fallback: tuple[str, dict[str, Any]] = ("memory://bulk-example/models", {})
    if not SeaweedFS.available():
        print("SeaweedFS is not installed (pip install 'artifactio[demo]'): using memory://")
        return fallback
    try:
        server = SeaweedFS(buckets=["models"]).start()
    except (OSError, RuntimeError) as exc:
        print(f"the embedded S3 server did not start ({exc}): using memory://")
        return fallback
    print(f"started SeaweedFS (pid {server.pid}) at {server.url}")

    def stop() -> None:
        pid = server.pid
        server.stop()
        print(f"stopped SeaweedFS (pid {pid})")

    stack.callback(stop)
    return "s3://models/run-1", server.store_options()


async def transfer(model: Path, restored: Path, store: artifactio.AsyncArtifactStore) -> None:
    uri = store.root
    async with store:
        print(f"copy {model} -> {uri}")
        report = await artifactio.copy(
            str(model), (store, "."), recursive=True, progress=ProgressLine()
        )
        print(" ", report)

        print(f"sync {uri} -> {restored}")
        report = await artifactio.sync((store, "."), str(restored), progress=ProgressLine())
        print(" ", report)
        identical = await asyncio.to_thread(lambda: read_tree(model) == read_tree(restored))
        print(f"  byte-identical: {identical}")

        print("sync again: nothing differs, nothing moves")
        again = await artifactio.sync((store, "."), str(restored))
        print(" ", again)
        print("  report as JSON:", again.to_json())
    if not identical or not report.ok or again.transferred or not again.ok:
        raise SystemExit("the round trip did not give the model directory back")


def main(argv: list[str]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="artifactio-bulk-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        uri, options = (argv[0], {}) if argv else far_end(stack)
        model = Path(tmp, "model")
        make_model_dir(model)
        store = artifactio.open_store(uri, **options)  # imports the S3 client: not in the loop
        asyncio.run(transfer(model, Path(tmp, "restored"), store))


if __name__ == "__main__":
    main(sys.argv[1:])
