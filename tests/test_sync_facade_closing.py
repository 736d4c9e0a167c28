"""Closing the blocking facade: explicit close, close from other threads, at exit, when dropped."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Any

import pytest

from _facade_fixtures import (
    StuckStore,
    facade_store,  # noqa: F401 - fixture
)
from artifactio import ArtifactStore, StoreClosedError
from artifactio._sync import _runner as _runner_module
from artifactio.backends.memory import MemoryStore
from artifactio.testing import SuspendingMemoryStore

# --------------------------------------------------------------------- closing


def test_construction_and_close(memory_root: str) -> None:
    async_store = SuspendingMemoryStore(memory_root)
    store = ArtifactStore(async_store)
    assert store.async_store is async_store
    assert store.root == async_store.root == memory_root
    assert repr(store) == f"ArtifactStore({memory_root!r})"
    store.write_bytes("x", b"1")  # on the main thread's own loop
    own = store._runner._own
    assert own is not None
    with store.open("x", "rb") as f:  # files on the loop thread
        assert f.read() == b"1"
    loop_thread = store._runner._loop_thread
    assert loop_thread is not None
    thread = loop_thread.thread
    assert thread.is_alive()
    store.close()
    assert not thread.is_alive()
    assert own.loop.is_closed()
    assert async_store._closed  # aclose() ran
    store.close()  # idempotent
    assert repr(store).endswith("closed")
    with pytest.raises(StoreClosedError):
        store.exists("x")
    with pytest.raises(StoreClosedError):
        store.open("x", "rb")
    with pytest.raises(StoreClosedError):
        list(store.walk(memory_root))
    with pytest.raises(TypeError):
        ArtifactStore(async_store, part_size=1)
    with ArtifactStore(memory_root, part_size=4096) as by_uri:
        assert isinstance(by_uri.async_store, MemoryStore)
        assert by_uri.async_store.part_size == 4096
        assert by_uri.read_bytes("x") == b"1"
    with pytest.raises(StoreClosedError):
        by_uri.read_bytes("x")


def test_close_while_another_thread_waits(memory_root: str) -> None:
    async_store = StuckStore(memory_root)
    store = ArtifactStore(async_store)
    outcome: list[BaseException] = []

    def wait_forever() -> None:
        try:
            store.exists("stuck")
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_forever)
    waiter.start()
    async_store.started.wait()
    store.close()
    waiter.join()
    assert async_store.cancelled.is_set()
    assert [type(exc) for exc in outcome] == [StoreClosedError]


@pytest.mark.timeout(60)
def test_close_from_another_thread_during_a_main_thread_call(memory_root: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the facade runs calls on a loop of its own in the main thread only")
    async_store = StuckStore(memory_root)
    store = ArtifactStore(async_store)

    def close_when_stuck() -> None:
        async_store.started.wait()
        store.close()

    closer = threading.Thread(target=close_when_stuck)
    closer.start()
    with pytest.raises(StoreClosedError):
        store.exists("stuck")  # on the main thread's own loop
    closer.join()
    assert async_store.cancelled.is_set()
    own_loops = [store._runner._own]
    assert own_loops == [None]  # handed over and closed


def test_writer_open_at_close_cannot_publish(store: ArtifactStore) -> None:
    f = store.open("late.bin", "wb")
    f.write(b"data")
    store.close()
    with pytest.raises(StoreClosedError):
        f.close()
    assert f.closed


def test_no_resource_warning_from_closing_or_dropping_facades(memory_root: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        closed = ArtifactStore(SuspendingMemoryStore(memory_root))
        closed.write_bytes("a", b"1")
        closed.close()
        dropped = ArtifactStore(SuspendingMemoryStore(memory_root))
        assert dropped.read_bytes("a") == b"1"  # on the main thread's own loop
        with dropped.open("a", "rb") as f:  # on the loop thread
            assert f.read() == b"1"
        own = dropped._runner._own
        loop_thread = dropped._runner._loop_thread
        assert own is not None
        assert loop_thread is not None
        thread = loop_thread.thread
        del dropped, f
        gc.collect()
        for releasing in list(_runner_module._RELEASING):
            releasing.join()
        thread.join()  # the loop thread stops by itself once its facade is gone
        assert own.loop.is_closed()
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_atexit_closes_facades_never_closed(tmp_path: Any) -> None:
    script = textwrap.dedent(
        """
        import anyio
        from artifactio import ArtifactStore
        from artifactio.backends.memory import MemoryStore

        class Loud(MemoryStore):
            inline_capable = False

            async def _info(self, key):
                await anyio.sleep(0)
                return await super()._info(key)

            async def _aclose(self):
                await anyio.sleep(0)
                print("aclose ran", flush=True)

        store = ArtifactStore(Loud("memory://atexit"))
        store.write_bytes("x", b"1")
        assert store.exists("x")
        print("done", flush=True)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["done", "aclose", "ran"]
    assert proc.stderr == ""
