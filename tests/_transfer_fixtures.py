"""What the bulk-transfer test modules share: test trees, filling and reading stores, the ends.

``_all_names`` lists every file below a directory, relative to it.

The fixtures are imported under their Python names (``transfer_memory``,
``transfer_local``, ``transfer_s3``, ``transfer_gcs``); tests ask for them as
``memory``, ``local``, ``s3`` and ``gcs``.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import pytest

from _s3_fixtures import PART
from artifactio._concurrency import for_each
from artifactio.backends.gcs import GCSStore
from artifactio.backends.local import LocalStore
from artifactio.backends.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from artifactio import AsyncArtifactStore
    from artifactio.backends.s3 import S3Store
    from artifactio.embedded import FakeGCSServer
    from artifactio.transfer import TransferReport

MiB = 1024 * 1024
S3_PART = PART


def make_tree(count: int = 200, big: int = 0, seed: int = 7) -> dict[str, bytes]:
    """``count`` small files over a few directory levels, plus one of ``big`` bytes."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}
    for i in range(count):
        parts = [f"d{(i // 7) % 5}", f"e{i % 3}", "deep"][: i % 4]
        files["/".join([*parts, f"file-{i:03d}.bin"])] = rng.randbytes(rng.randrange(0, 1500))
    if big:
        files["big/weights.bin"] = rng.randbytes(big)
    return files


async def fill(store: AsyncArtifactStore, files: dict[str, bytes]) -> None:
    async def one(item: tuple[str, bytes]) -> None:
        await store.write_bytes(item[0], item[1])

    await for_each(files.items(), one, limit=32)


async def contents(store: AsyncArtifactStore, top: str = ".") -> dict[str, bytes]:
    """Every file below ``top``, by path relative to it."""
    base = (
        store.root
        if top == "."
        else top
        if "://" in top or top[0] == "/"
        else f"{store.root}/{top}"
    )
    paths: list[str] = []
    async for dirpath, _, filenames in store.walk(top):
        paths.extend(f"{dirpath}/{name}" for name in filenames)
    found: dict[str, bytes] = {}

    async def one(path: str) -> None:
        found[path[len(base) :].lstrip("/")] = await store.read_bytes(path)

    await for_each(paths, one, limit=32)
    return found


async def fill_dir(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` below the local directory ``root`` (made if missing)."""
    root.mkdir(parents=True, exist_ok=True)
    async with LocalStore(str(root)) as store:
        await fill(store, files)


def counts(report: TransferReport) -> tuple[int, int, int, int]:
    return report.transferred, report.skipped, report.failed, report.bytes


@pytest.fixture(name="memory")
async def transfer_memory(memory_root: str) -> AsyncIterator[MemoryStore]:
    async with MemoryStore(memory_root) as store:
        yield store


@pytest.fixture(name="local")
async def transfer_local(tmp_path: Path) -> AsyncIterator[LocalStore]:
    (tmp_path / "local").mkdir()
    async with LocalStore(str(tmp_path / "local")) as store:
        yield store


# ----------------------------------------------------------------- S3 and GCS


@pytest.fixture(name="s3")
def transfer_s3(s3_store: S3Store) -> S3Store:
    """The shared ``s3_store`` (5 MiB parts, on a fresh root), named like this module's others."""
    return s3_store


@pytest.fixture(name="gcs")
async def transfer_gcs(gcs_root: str, fake_gcs_server: FakeGCSServer) -> AsyncIterator[GCSStore]:
    """A GCS store in a fresh bucket, with 1 MiB resumable-upload chunks."""
    async with GCSStore(gcs_root, **fake_gcs_server.store_options(part_size=MiB)) as store:
        yield store


def _all_names(root: Path) -> Iterator[str]:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            yield os.path.relpath(os.path.join(dirpath, name), root)
