"""Conformance tests for concurrency, object-store coexistence, and the facade's threading rows."""

from __future__ import annotations

import os
import signal
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import pytest_asyncio

from ._covers import covers
from ._harness import (
    Capabilities,
    StoreAPI,
    StoreFactory,
    full_path,
    load_sync_facade,
    make_tree,
    snapshot,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["ConcurrencyTests", "FacadeThreadingTests", "ObjectStoreTests"]

WRITERS = 16
CHUNKS = 4
CHUNK = 4096


def _content(i: int) -> bytes:
    return bytes([65 + i % 26]) * (CHUNK * CHUNKS) + f"#{i}".encode()


class ObjectStoreTests:
    """docs/semantics.md, "Object stores": a file and a directory of the same name."""

    @covers("object.coexist")
    async def test_file_and_directory_of_one_name_coexist(
        self, store: StoreAPI, caps: Capabilities
    ) -> None:
        if caps.checks_ancestors:
            pytest.skip("this backend refuses to write below a file (NotADirectoryError)")
        await store.write_bytes("clash", b"file")
        await store.write_bytes("clash/child", b"child")  # as other tools may do
        # open, stat and remove see the file
        assert await store.read_bytes("clash") == b"file"
        async with store.open("clash", "rb") as f:
            assert await f.read() == b"file"
        st = await store.stat("clash")
        assert st.is_file
        assert st.st_size == 4
        assert await store.exists("clash")
        # isdir, listdir, walk and rmtree see the directory
        assert await store.isdir("clash")
        assert await store.listdir("clash") == ["child"]
        walked = [entry async for entry in store.walk(store.root)]
        assert walked[0][0] == store.root
        assert "clash" in walked[0][1]
        assert (full_path(store, "clash"), [], ["child"]) in walked
        assert await store.listdir(".") == ["clash"]
        assert await store.glob("*") == [full_path(store, "clash")]  # listed once
        assert await store.glob("clash") == [full_path(store, "clash")]
        assert await store.glob("*/") == [full_path(store, "clash") + "/"]
        await store.remove("clash")  # the file goes; the directory stays
        assert await store.isdir("clash")
        assert (await store.stat("clash")).is_dir
        assert await store.read_bytes("clash/child") == b"child"
        await store.rmtree("clash")
        assert not await store.exists("clash")
        await store.write_bytes("clash", b"file again")
        await store.write_bytes("clash/child", b"child")
        await store.rmtree("clash")  # the directory goes; the file stays
        assert not await store.isdir("clash")
        assert not await store.exists("clash/child")
        assert await store.read_bytes("clash") == b"file again"


class ConcurrencyTests:
    """docs/semantics.md, "Concurrency": many tasks (threads, for the facade) on one store."""

    @covers("concurrency.whole-content", "concurrency.shared-store")
    async def test_many_writers_of_one_path(self, store: StoreAPI) -> None:
        await store.write_bytes("shared.bin", b"initial")
        allowed = {b"initial"} | {_content(i) for i in range(WRITERS)}
        seen: list[bytes] = []

        async def writer(i: int) -> None:
            data = _content(i)
            async with store.open("shared.bin", "wb") as f:
                for k in range(0, len(data), CHUNK):
                    await f.write(data[k : k + CHUNK])
                    await anyio.lowlevel.checkpoint()

        async def reader() -> None:
            for _ in range(CHUNKS):
                seen.append(await store.read_bytes("shared.bin"))
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for i in range(WRITERS):
                tg.start_soon(writer, i)
                tg.start_soon(reader)
        final = await store.read_bytes("shared.bin")
        assert final in allowed - {b"initial"}, "the content mixes writers"
        assert all(s in allowed for s in seen), "a reader saw a partial or mixed file"
        assert await store.listdir(".") == ["shared.bin"], "temporary objects were left"

    @covers("concurrency.last-close-wins")
    async def test_last_successful_close_wins(self, store: StoreAPI) -> None:
        await store.write_bytes("last.bin", b"initial")
        first = await store.open("last.bin", "wb")
        second = await store.open("last.bin", "wb")
        await first.write(b"first writer")
        await second.write(b"second writer")
        await second.close()
        assert await store.read_bytes("last.bin") == b"second writer"
        await first.close()
        assert await store.read_bytes("last.bin") == b"first writer"

        # a writer that fails does not count
        async def abandoned() -> None:
            async with store.open("last.bin", "wb") as f:
                await f.write(b"third writer")
                raise RuntimeError("abandon")

        with pytest.raises(RuntimeError):
            await abandoned()
        assert await store.read_bytes("last.bin") == b"first writer"
        assert await store.listdir(".") == ["last.bin"]

    @covers("concurrency.shared-store")
    async def test_many_tasks_on_distinct_paths(self, store: StoreAPI) -> None:
        count = 40

        async def worker(i: int) -> None:
            path = f"many/{i % 4}/f{i:03d}.bin"
            await store.write_bytes(path, _content(i))
            await anyio.lowlevel.checkpoint()
            assert await store.read_bytes(path) == _content(i)
            assert await store.exists(path)
            await store.copyfile(path, f"copies/f{i:03d}.bin")

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(worker, i)
        assert await store.listdir("many") == ["0", "1", "2", "3"]
        assert await store.listdir("many/1") == [f"f{i:03d}.bin" for i in range(1, count, 4)]
        assert await store.listdir("copies") == [f"f{i:03d}.bin" for i in range(count)]
        assert await store.size("many") == sum(len(_content(i)) for i in range(count))

    @covers("open.x-atomic")
    async def test_racing_exclusive_creators(self, store: StoreAPI, caps: Capabilities) -> None:
        if not caps.atomic_exclusive:
            pytest.skip("this backend cannot make x modes atomic")
        winners: list[int] = []
        losers: list[int] = []

        async def creator(i: int) -> None:
            try:
                async with store.open("once.bin", "xb") as f:
                    await f.write(_content(i))
                    await anyio.lowlevel.checkpoint()
            except FileExistsError:
                losers.append(i)
            else:
                winners.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(WRITERS):
                tg.start_soon(creator, i)
        assert len(winners) == 1, f"{len(winners)} exclusive creators succeeded"
        assert len(losers) == WRITERS - 1
        assert await store.read_bytes("once.bin") == _content(winners[0])
        assert await store.listdir(".") == ["once.bin"]

    @covers("concurrency.shared-store")
    async def test_concurrent_directory_operations(self, store: StoreAPI) -> None:
        await make_tree(store, {f"tree{i}/sub/f.bin": b"x" for i in range(8)})

        async def work(i: int) -> None:
            await store.makedirs(f"made/{i}/deep")
            await store.rename(f"tree{i}", f"moved/{i}")
            assert await store.listdir(f"moved/{i}/sub") == ["f.bin"]
            if i % 2:
                await store.rmtree(f"moved/{i}")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(work, i)
        tree = await snapshot(store)
        assert sorted(k for k in tree if k.startswith("moved/") and k.count("/") == 1) == [
            f"moved/{i}" for i in range(0, 8, 2)
        ]
        assert await store.listdir("made") == [str(i) for i in range(8)]
        assert not [k for k in tree if k.startswith("tree")]


class FacadeThreadingTests:
    """docs/semantics.md, "Concurrency": the sync facade from threads, a running loop, a fork."""

    @pytest_asyncio.fixture
    async def facade_store(self, async_store_factory: StoreFactory) -> AsyncIterator[Any]:
        """A sync facade over a fresh store (built and closed outside the event loop)."""
        facade = load_sync_facade()
        sync_store = await anyio.to_thread.run_sync(lambda: facade(async_store_factory()))
        try:
            yield sync_store
        finally:
            await anyio.to_thread.run_sync(sync_store.close)

    @covers("facade.threads", "concurrency.shared-store")
    async def test_facade_from_many_threads(self, facade_store: Any) -> None:
        def work(i: int) -> None:
            facade_store.write_bytes(f"threads/{i}.bin", _content(i))
            assert facade_store.read_bytes(f"threads/{i}.bin") == _content(i)
            facade_store.write_bytes("threads-shared.bin", _content(i))

        async with anyio.create_task_group() as tg:
            for i in range(WRITERS):
                tg.start_soon(anyio.to_thread.run_sync, work, i)
        names = await anyio.to_thread.run_sync(facade_store.listdir, "threads")
        assert names == sorted(f"{i}.bin" for i in range(WRITERS))
        final = await anyio.to_thread.run_sync(facade_store.read_bytes, "threads-shared.bin")
        assert final in {_content(i) for i in range(WRITERS)}

    @covers("facade.event-loop")
    async def test_facade_inside_a_running_event_loop(self, facade_store: Any) -> None:
        # Deliberately blocking calls from the thread that runs the event loop.
        facade_store.write_bytes("loop/a.bin", b"from the loop")
        assert facade_store.read_bytes("loop/a.bin") == b"from the loop"
        with facade_store.open("loop/b.txt", "w") as f:
            f.write("text")
        with facade_store.open("loop/b.txt", "r") as f:
            assert f.read() == "text"
        assert facade_store.listdir("loop") == ["a.bin", "b.txt"]
        assert list(facade_store.walk("loop")) == [
            (full_path(facade_store, "loop"), [], ["a.bin", "b.txt"])
        ]
        assert facade_store.exists("loop/a.bin")
        facade_store.rmtree("loop")
        assert not facade_store.exists("loop")

    @covers("facade.fork")
    async def test_facade_in_a_forked_child(self, facade_store: Any) -> None:
        if not hasattr(os, "fork"):
            pytest.skip("no os.fork on this platform")

        def fork_and_use() -> int:
            facade_store.write_bytes("fork/before.bin", b"parent")  # warm the facade up
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork"
                pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    signal.signal(signal.SIGALRM, signal.SIG_DFL)
                    signal.alarm(60)  # never outlive a hung child
                    assert facade_store.read_bytes("fork/before.bin") == b"parent"
                    facade_store.write_bytes("fork/child.bin", b"child")
                    assert facade_store.read_bytes("fork/child.bin") == b"child"
                    assert "child.bin" in facade_store.listdir("fork")
                    with facade_store.open("fork/child.txt", "w") as f:
                        f.write("child")
                    assert facade_store.exists("fork/child.txt")
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)

        assert await anyio.to_thread.run_sync(fork_and_use) == 0
        # the parent's facade still works after the fork
        data = await anyio.to_thread.run_sync(facade_store.read_bytes, "fork/before.bin")
        assert data == b"parent"
        await anyio.to_thread.run_sync(facade_store.write_bytes, "fork/after.bin", b"after")
        assert await anyio.to_thread.run_sync(facade_store.read_bytes, "fork/after.bin") == b"after"
