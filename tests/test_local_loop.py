"""The local backend and event loops: the async API never blocks one, inline driving never waits."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiofiles.threadpool
import pytest
from blockbuster import BlockBusterFunction, BlockingError, blockbuster_ctx

from _local_fixtures import local_root, local_store, on_disk  # noqa: F401 - fixtures
from artifactio._blocking import InlineSuspendedError, run_inline
from artifactio.backends import local
from artifactio.backends._local_files import SMALL_FILE

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Iterator

    from artifactio import DirEntry
    from artifactio.backends.local import LocalStore


# ------------------------------------------------- never block the event loop


@contextmanager
def strict_blockbuster() -> Iterator[None]:
    """blockbuster, plus the os calls this backend makes that it does not watch by default."""
    with blockbuster_ctx() as bb:
        for name in ("os.lstat", "os.open", "os.fstat", "os.chmod", "os.makedirs"):
            bb.functions[name] = BlockBusterFunction(None, name).activate()
        yield


async def workload(store: LocalStore) -> None:
    """A bit of everything a pipeline does, through the async API."""
    await store.makedirs("runs/1")
    await store.mkdir("runs/2")
    await store.write_bytes("runs/1/model.bin", b"\x00" * 5000)
    async with store.open("runs/1/log.txt", "w") as f:
        await f.write("line 1\nline 2\n")
    async with store.open("runs/1/log.txt", "a") as f:
        await f.write("line 3\n")
    async with store.open("runs/1/new.txt", "x") as f:
        await f.write("exclusive")
    assert await store.read_bytes("runs/1/model.bin") == b"\x00" * 5000
    async with store.open("runs/1/log.txt") as f:
        assert [line async for line in f] == ["line 1\n", "line 2\n", "line 3\n"]
    async with store.open("runs/1/model.bin", "rb") as f:
        await f.seek(4000)
        assert len(await f.read()) == 1000
    assert (await store.stat("runs/1/model.bin")).size == 5000
    assert await store.exists("runs/1")
    assert not await store.exists("runs/9")
    assert await store.isdir("runs")
    assert not await store.isdir("runs/1/model.bin")
    assert await store.listdir("runs/1") == ["log.txt", "model.bin", "new.txt"]
    assert len([w async for w in store.walk(store.root)]) == 4
    assert len(await store.glob("runs/*/*.txt")) == 2
    assert len(await store.glob("**")) == 7
    await store.copyfile("runs/1/model.bin", "runs/2/model.bin")
    await store.copyfile("runs/1/log.txt", "runs/2/model.bin", overwrite=True)
    await store.rename("runs/2/model.bin", "runs/2/log.txt")
    await store.rename("runs/2", "archive/2")
    assert await store.size("runs") == 5000 + 21 + 9
    await store.remove("runs/1/new.txt")
    with pytest.raises(FileNotFoundError):
        await store.read_bytes("runs/1/missing.bin")

    async def failing_write() -> None:
        async with store.open("runs/1/model.bin", "wb") as f:
            await f.write(b"discarded")
            raise RuntimeError("abort this write")

    with pytest.raises(RuntimeError):
        await failing_write()
    await store.rmtree("runs")
    await store.rmtree("archive")
    assert await store.listdir(store.root) == []


async def test_async_api_never_blocks_the_event_loop(store: LocalStore) -> None:
    with strict_blockbuster():
        await workload(store)


async def test_blockbuster_catches_a_primitive_that_blocks_the_loop(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: run the primitives on the loop and blockbuster objects."""

    async def on_the_loop(func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)

    await store.write_bytes("a.txt", b"a")
    monkeypatch.setattr(local, "run_blocking", on_the_loop)
    with strict_blockbuster():
        with pytest.raises(BlockingError, match=r"os\.lstat"):
            await store.exists("a.txt")
        with pytest.raises(BlockingError, match=r"os\.lstat"):
            await store.write_bytes("b.txt", b"b")
    with blockbuster_ctx(), pytest.raises(BlockingError, match=r"(?i)scandir"):
        await store.listdir(store.root)  # the default checks alone catch this one


async def test_file_data_moves_through_aiofiles_on_asyncio(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped: list[object] = []
    real_wrap = aiofiles.threadpool.wrap

    def spy(file: Any, **kwargs: Any) -> Any:
        wrapped.append(file)
        return real_wrap(file, **kwargs)

    monkeypatch.setattr(aiofiles.threadpool, "wrap", spy)
    data = os.urandom(SMALL_FILE + 1)
    await store.write_bytes("a.bin", data)
    assert await store.read_bytes("a.bin") == data
    assert len(wrapped) == 2  # the writer's file and the reader's file
    await store.write_bytes("small.bin", b"data")
    assert await store.read_bytes("small.bin") == b"data"
    assert len(wrapped) == 2  # a small file is written and read in one worker call each


# ------------------------------------------------------------------ inline driving


def test_inline_driving_never_suspends(store: LocalStore) -> None:
    async def everything() -> None:
        await workload(store)
        # a half-consumed tree listing: closed inline too
        tree = cast("AsyncGenerator[tuple[str, DirEntry], None]", store._iter_tree(""))
        await store.write_bytes("a/b.txt", b"b")
        await tree.__anext__()
        await tree.aclose()
        f = await store.open("a/dropped.txt", "w")
        await f.write("x")
        await f.abort()

    try:
        run_inline(everything())
    except InlineSuspendedError as exc:  # pragma: no cover - the failure being tested for
        pytest.fail(f"an operation waited on an event loop: {exc}")
    assert on_disk(Path(store.root)) == {"a", "a/b.txt"}
