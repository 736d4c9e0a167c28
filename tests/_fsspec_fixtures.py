"""Shared by the fsspec tests: a store of each backend for a module, and a small DataFrame."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd

import artifactio
from _s3_fixtures import BUCKET

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

__all__ = ["frame", "open_backend"]


def frame(rows: int = 6) -> pd.DataFrame:
    """A DataFrame of ints, floats and non-ASCII text with commas (CSV quoting)."""
    return pd.DataFrame(
        {
            "run": [i % 3 for i in range(rows)],
            "loss": [1 / (i + 1) for i in range(rows)],
            "note": [f"épreuve {i}, ok" for i in range(rows)],
        }
    )


async def _discard(
    store: artifactio.AsyncArtifactStore, bucket_root: str, options: dict[str, Any]
) -> None:
    """Close ``store`` (the clients of every loop, fsspec's too) and delete what it holds."""
    await store.aclose()
    if bucket_root:
        async with artifactio.open_store(bucket_root, **options) as bucket:
            prefix = store.root[len(bucket_root) + 1 :]
            if await bucket.exists(prefix):
                await bucket.rmtree(prefix)


def open_backend(
    request: pytest.FixtureRequest, backend: str
) -> Iterator[artifactio.AsyncArtifactStore]:
    """An empty store of ``backend`` for a module's tests; closed and emptied afterwards.

    One store (so one client per event loop) serves every test of the module:
    each test works in a directory of its own below the root.
    """
    from artifactio.backends.memory import clear

    name = f"fsspec-{uuid.uuid4().hex[:12]}"
    options: dict[str, Any] = {}
    bucket_root = ""
    if backend.startswith("memory"):
        root = f"memory://{name}"
    elif backend == "local":
        root = str(request.getfixturevalue("tmp_path_factory").mktemp(name))
    elif backend == "s3":
        options = request.getfixturevalue("seaweedfs").store_options(retries=1)
        bucket_root = f"s3://{BUCKET}"
        root = f"{bucket_root}/{name}"
    else:
        server = request.getfixturevalue("fake_gcs_server")
        options = server.store_options(retries=1)
        server.create_bucket(name)  # its own bucket: the emulator's listings scan a whole bucket
        bucket_root = f"gs://{name}"
        root = f"{bucket_root}/root"
    store = artifactio.open_store(root, **options)
    yield store
    asyncio.run(_discard(store, bucket_root, options))
    if backend.startswith("memory"):
        clear(name)
