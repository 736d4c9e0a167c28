"""The blocking facade under concurrency: threads, event loops, interrupts, fork, subprocesses."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from _facade_fixtures import (
    StuckStore,
    facade_store,  # noqa: F401 - fixture
)
from _forking import fork_running, in_child, wait_child
from artifactio import ArtifactStore
from artifactio.testing import SuspendingMemoryStore

# ----------------------------------------------------------------- concurrency


def test_many_threads_share_one_instance(store: ArtifactStore) -> None:
    def work(i: int) -> int:
        folder = f"t{i}"
        for j in range(40):
            path = f"{folder}/f{j}"
            data = f"{i}-{j}".encode()
            store.write_bytes(path, data)
            assert store.read_bytes(path) == data
            assert store.exists(path)
            with store.open(path, "rb") as f:
                assert f.read() == data
        assert store.listdir(folder) == sorted(f"f{j}" for j in range(40))
        for j in range(0, 40, 2):
            store.remove(f"{folder}/f{j}")
        return len(store.listdir(folder))

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(work, range(16))) == [20] * 16
    assert len(store.listdir(store.root)) == 16
    loop_threads = [t for t in threading.enumerate() if t.name == store._runner._name]
    assert len(loop_threads) == (0 if store._runner.inline else 1)


def test_called_from_inside_a_running_event_loop(store: ArtifactStore) -> None:
    async def pipeline_step() -> bytes:
        store.write_bytes("from-async.bin", b"payload")
        with store.open("from-async.bin", "rb") as f:
            data: bytes = f.read()
        assert [entry[2] for entry in store.walk(store.root)] == [["from-async.bin"]]
        return data

    assert asyncio.run(pipeline_step()) == b"payload"


def test_call_from_the_loop_thread_raises_instead_of_deadlocking(memory_root: str) -> None:
    with ArtifactStore(SuspendingMemoryStore(memory_root)) as store:
        with pytest.raises(RuntimeError, match="own event loop thread"):
            list(store.walk("missing", onerror=lambda exc: store.exists("x")))
        assert store.exists(store.root)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_keyboard_interrupt_while_waiting_cancels_the_coroutine(memory_root: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is handled by someone else here")
    async_store = StuckStore(memory_root)
    main_ident = threading.main_thread().ident
    assert main_ident is not None

    def press_ctrl_c() -> None:
        async_store.started.wait()
        signal.pthread_kill(main_ident, signal.SIGINT)

    with ArtifactStore(async_store) as store:
        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            store.exists("stuck")
        presser.join()
        async_store.cancelled.wait()
        own = store._runner._own  # the main thread's call ran on its own loop
        assert own is not None
        assert not own.loop.is_closed()
        assert store._runner._loop_thread is None
        assert not store.exists("other")  # still usable
        assert store._runner._own is own


# ------------------------------------------------------------------------ fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_after_fork_gets_a_fresh_runner(store: ArtifactStore) -> None:
    store.write_bytes("before", b"parent")  # starts the loop thread on the loop path

    def child() -> bool:
        ok = store.read_bytes("before") == b"parent"
        store.write_bytes("child", b"c")
        with store.open("child", "rb") as f:
            ok = ok and f.read() == b"c"
        ok = ok and store.listdir(store.root) == ["before", "child"]
        store.close()
        return ok

    in_child(child)
    assert store.read_bytes("before") == b"parent"  # the parent is unaffected
    assert not store.exists("child")  # the child's memory store was its own copy


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_holds_the_memory_lock(store: ArtifactStore) -> None:
    """A thread inside the memory store at fork time must not leave the child's lock held."""
    store.write_bytes("before", b"parent")
    fs_lock = store.async_store._fs.lock  # type: ignore[attr-defined]
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with fs_lock:
            holding.set()
            release.wait(0.2)  # the fork waits for this thread to leave the store

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait()
    try:

        def child() -> bool:
            signal.alarm(5)  # a deadlocked child dies instead of hanging the test
            ok = store.read_bytes("before") == b"parent"
            store.write_bytes("child", b"c")
            return ok and store.exists("child")

        pid = fork_running(child)
    finally:
        release.set()
        thread.join()
    wait_child(pid)
    store.write_bytes("after", b"p")  # the parent's lock is free again
    assert store.read_bytes("after") == b"p"


_INHERITED: ArtifactStore | None = None


def _use_inherited(path: str) -> tuple[bytes, list[str]]:
    assert _INHERITED is not None
    _INHERITED.write_bytes(path, path.encode())
    return _INHERITED.read_bytes(path), _INHERITED.listdir(_INHERITED.root)


def test_multiprocessing_fork_workers_use_an_inherited_facade(store: ArtifactStore) -> None:
    global _INHERITED
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method")
    store.write_bytes("seed", b"s")
    _INHERITED = store
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
                results = list(pool.map(_use_inherited, ["w1", "w2", "w3"]))
    finally:
        _INHERITED = None
    for path, (data, names) in zip(["w1", "w2", "w3"], results, strict=True):
        assert data == path.encode()
        assert "seed" in names
    assert store.listdir(store.root) == ["seed"]


def _spawned(facade: ArtifactStore, loop_root: str) -> tuple[bytes, bytes, bool]:
    with facade:
        facade.write_bytes("x", b"by uri")
        first = facade.read_bytes("x")
    with ArtifactStore(SuspendingMemoryStore(loop_root)) as looped:
        looped.write_bytes("y", b"on a loop")
        return first, looped.read_bytes("y"), looped._runner.inline


def test_multiprocessing_spawn_worker(memory_root: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ArtifactStore(memory_root) as store, ProcessPoolExecutor(1, mp_context=ctx) as pool:
        result = pool.submit(_spawned, store, memory_root + "-loop").result()
    assert result == (b"by uri", b"on a loop", False)


def test_pickled_facade_reopens_its_uri(memory_root: str) -> None:
    with ArtifactStore(memory_root, part_size=1024) as store:
        store.write_bytes("p", b"1")
        with pickle.loads(pickle.dumps(store)) as copy:
            assert isinstance(copy, ArtifactStore)
            assert copy.async_store.part_size == 1024
            assert copy.read_bytes("p") == b"1"
