"""The blocking facade ``artifactio.ArtifactStore`` and the runner behind it.

Every test runs twice: on the memory backend, which the facade drives inline in
the caller's thread, and on :class:`SuspendingMemoryStore`, a memory store whose
primitives really suspend, so the facade must run it on its loop thread.
"""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import io
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import pytest

import artifactio
from _forking import fork_running, in_child, wait_child
from artifactio import ArtifactStore, StoreClosedError
from artifactio._blocking import InlineSuspendedError, run_inline
from artifactio._sync import _runner as _runner_module
from artifactio.backends.memory import MemoryStore
from artifactio.testing import SuspendingMemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from artifactio._store import EntryInfo


def test_loop_only_store_really_suspends(memory_root: str) -> None:
    """Guard for the tests below: driving SuspendingMemoryStore inline must fail."""
    # InlineSuspendedError, or anyio's NoEventLoopError: both are RuntimeErrors.
    assert issubclass(InlineSuspendedError, RuntimeError)
    with pytest.raises(RuntimeError, match=r"event loop|suspended"):
        run_inline(SuspendingMemoryStore(memory_root).exists("x"))


@pytest.fixture(params=["inline", "loop"])
def store(request: pytest.FixtureRequest, memory_root: str) -> Iterator[ArtifactStore]:
    if request.param == "inline":
        facade = ArtifactStore(memory_root)
    else:
        facade = ArtifactStore(SuspendingMemoryStore(memory_root))
    assert facade._runner.inline is (request.param == "inline")
    with facade:
        yield facade


# ------------------------------------------------------------------ operations


def test_operations_return_what_the_async_methods_return(store: ArtifactStore) -> None:
    root = store.root
    assert store.isdir(root)
    store.makedirs("a/b")
    store.mkdir("a/c")
    store.write_bytes("a/b/one.bin", b"12345")
    store.write_bytes("a/two.txt", b"hi")
    assert store.exists("a/b/one.bin")
    assert not store.exists("a/missing")
    assert store.read_bytes("a/b/one.bin") == b"12345"
    assert store.listdir("a") == ["b", "c", "two.txt"]
    assert store.size("a/b/one.bin") == 5
    assert store.size("a") == 7
    st = store.stat("a/b/one.bin")
    assert isinstance(st, artifactio.StatResult)
    assert (st.st_size, st.is_file, st.path) == (5, True, f"{root}/a/b/one.bin")
    assert store.glob("a/**/*.bin") == [f"{root}/a/b/one.bin"]
    store.copyfile("a/two.txt", "a/c/three.txt")
    store.rename("a/b", "a/d")
    assert store.listdir("a") == ["c", "d", "two.txt"]
    store.remove("a/two.txt")
    store.rmtree("a/c")
    assert store.listdir("a") == ["d"]


def test_walk_is_a_lazy_plain_iterator_and_prunes(store: ArtifactStore) -> None:
    for path in ("w/a/1", "w/a/x/2", "w/b/3", "w/4"):
        store.write_bytes(path, b"")
    root = store.root
    walker = store.walk("w")
    assert isinstance(walker, collections.abc.Iterator)
    seen = []
    for dirpath, dirnames, filenames in walker:
        seen.append((dirpath, list(dirnames), filenames))
        if "a" in dirnames:
            dirnames.remove("a")
    assert seen == [(f"{root}/w", ["a", "b"], ["4"]), (f"{root}/w/b", [], ["3"])]
    bottom_up = [entry[0] for entry in store.walk("w", topdown=False)]
    assert bottom_up == [f"{root}/w/a/x", f"{root}/w/a", f"{root}/w/b", f"{root}/w"]
    errors: list[OSError] = []
    assert list(store.walk("nowhere", onerror=errors.append)) == []
    assert [type(e) for e in errors] == [FileNotFoundError]


def test_abandoned_iteration_closes_the_async_generator(store: ArtifactStore) -> None:
    events: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                if not store._runner.inline:
                    await asyncio.sleep(0)
                yield i
        finally:
            events.append("closed")

    it = store._iterate(numbers())
    assert next(it) == 0
    assert next(it) == 1
    it.close()
    assert events == ["closed"]
    it = store._iterate(numbers())
    assert next(it) == 0
    store.close()  # closing the facade mid-iteration still finalizes the generator
    with pytest.raises(StoreClosedError):
        next(it)
    assert events == ["closed", "closed"]


# ---------------------------------------------------------------------- errors


def _missing(store: ArtifactStore) -> None:
    store.read_bytes("missing")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (_missing, FileNotFoundError),
        (lambda s: s.open("missing", "rb"), FileNotFoundError),
        (lambda s: s.open("d", "rb"), IsADirectoryError),
        (lambda s: s.open("f", "xb"), FileExistsError),
        (lambda s: s.write_bytes("f/below", b""), NotADirectoryError),
        (lambda s: s.remove("d"), IsADirectoryError),
        (lambda s: s.listdir("f"), NotADirectoryError),
        (lambda s: s.mkdir("d"), FileExistsError),
        (lambda s: s.copyfile("f", "f"), FileExistsError),
        (lambda s: s.rmtree(s.root), PermissionError),
        (lambda s: s.exists("memory://elsewhere/x"), artifactio.PathOutsideStoreError),
        (lambda s: s.open("f", "r+"), ValueError),
        (lambda s: s.open("f", "rb", encoding="utf-8"), ValueError),
        (lambda s: s.exists(""), artifactio.InvalidPathError),
        (lambda s: s.open("f", "r", encoding="no-such-codec"), LookupError),
    ],
)
def test_original_exception_types_reach_the_caller(
    store: ArtifactStore, call: Any, expected: type[BaseException]
) -> None:
    store.makedirs("d")
    store.write_bytes("f", b"x")
    with pytest.raises(expected):
        call(store)


def test_exception_is_the_original_object_with_path(store: ArtifactStore) -> None:
    with pytest.raises(FileNotFoundError) as info:
        store.remove("nope")
    assert type(info.value) is FileNotFoundError
    assert info.value.filename == f"{store.root}/nope"
    assert "remove" in str(info.value)


# ----------------------------------------------------------------------- files


def test_binary_reader_is_a_real_buffered_reader(store: ArtifactStore) -> None:
    store.write_bytes("r.bin", b"line1\nline2\r\nlast")
    with store.open("r.bin", "rb") as f:
        assert isinstance(f, io.BufferedReader)
        assert (f.name, f.mode, f.closed) == (f"{store.root}/r.bin", "rb", False)
        assert (f.readable(), f.seekable(), f.writable()) == (True, True, False)
        assert f.read(3) == b"lin"
        assert f.tell() == 3
        assert f.readline() == b"e1\n"
        assert list(f) == [b"line2\r\n", b"last"]
        assert f.seek(-4, io.SEEK_END) == 13
        assert f.read() == b"last"
        assert f.seek(0) == 0
        assert f.seek(5, io.SEEK_CUR) == 5
        buf = bytearray(3)
        assert f.readinto(buf) == 3
        assert buf == b"\nli"
    assert f.closed
    with pytest.raises(ValueError):
        f.read()


def test_pickle_round_trip_through_files(store: ArtifactStore) -> None:
    obj = {"weights": list(range(50_000)), "name": "model"}
    with store.open("model.pkl", "wb") as f:
        pickle.dump(obj, f)
    with store.open("model.pkl", "rb") as f:
        assert pickle.load(f) == obj


def test_binary_writer_streams_and_publishes_on_close(store: ArtifactStore) -> None:
    store.write_bytes("w.bin", b"old")
    f = store.open("w.bin", "wb")
    assert isinstance(f, io.BufferedWriter)
    assert (f.mode, f.writable(), f.seekable(), f.readable()) == ("wb", True, False, False)
    assert f.write(b"abc") == 3
    f.write(memoryview(b"defg")[1:])
    assert f.tell() == 6
    assert f.seek(6) == 6
    assert f.seek(0, io.SEEK_CUR) == 6
    assert f.seek(0, io.SEEK_END) == 6
    with pytest.raises(io.UnsupportedOperation):
        f.seek(0)
    with pytest.raises(io.UnsupportedOperation):
        f.seek(-1, io.SEEK_END)
    f.flush()
    assert store.read_bytes("w.bin") == b"old"  # nothing visible before close
    f.close()
    assert f.closed
    assert store.read_bytes("w.bin") == b"abcefg"
    big = os.urandom(3 * 1024 * 1024 + 17)
    with store.open("big.bin", "wb") as f:
        for i in range(0, len(big), 100_000):
            f.write(big[i : i + 100_000])
    assert store.read_bytes("big.bin") == big


def test_append_and_exclusive_modes(store: ArtifactStore) -> None:
    store.write_bytes("log", b"one\n")
    with store.open("log", "ab") as f:
        assert f.tell() == 4
        f.write(b"two\n")
    with store.open("log", "a") as f:
        f.write("three\n")
    assert store.read_bytes("log") == b"one\ntwo\nthree\n"
    with store.open("new", "x") as f:
        f.write("fresh")
    assert store.read_bytes("new") == b"fresh"
    with pytest.raises(FileExistsError):
        store.open("new", "xb")


def test_text_modes(store: ArtifactStore) -> None:
    with store.open("t.txt", "w") as f:
        assert isinstance(f, io.TextIOWrapper)
        assert (f.mode, f.encoding, f.name) == ("w", "utf-8", f"{store.root}/t.txt")
        f.write("café\nsecond line\n")
        assert f.tell() == len("café\nsecond line\n".encode())
        assert f.seek(f.tell()) == 18
        with pytest.raises(io.UnsupportedOperation):
            f.seek(0)
    with store.open("t.txt") as f:
        assert f.mode == "r"
        assert f.readline() == "café\n"
        assert list(f) == ["second line\n"]
        f.seek(0, io.SEEK_END)
        assert f.read() == ""
        f.seek(0)
        assert f.read(4) == "café"
    with store.open("latin.txt", "w", encoding="latin-1", newline="\r\n") as f:
        f.write("ß\n")
    assert store.read_bytes("latin.txt") == b"\xdf\r\n"
    with store.open("latin.txt", "r", encoding="latin-1", newline="") as f:
        assert f.read() == "ß\r\n"
    with store.open("latin.txt", encoding="ascii", errors="replace") as f:
        assert f.read() == "\ufffd\n"
    with store.open("u16.txt", "w", encoding="utf-16") as f:
        f.write("hé")
    assert store.read_bytes("u16.txt") == "hé".encode("utf-16")
    with store.open(name="u16.txt", encoding="utf-16") as f:
        assert f.read() == "hé"


def _write_then_fail(store: ArtifactStore, path: str, mode: str, data: bytes) -> NoReturn:
    with store.open(path, mode) as f:
        f.write(data if "b" in mode else data.decode())
        f.flush()
        raise KeyError(path)


def test_exception_inside_with_aborts_the_write(store: ArtifactStore) -> None:
    store.write_bytes("keep.bin", b"old")
    for mode in ("wb", "w", "ab", "a"):
        with pytest.raises(KeyError):
            _write_then_fail(store, "keep.bin", mode, b"new")
        assert store.read_bytes("keep.bin") == b"old"
    with pytest.raises(KeyError):
        _write_then_fail(store, "fresh.bin", "wb", b"x" * 1_000_000)
    assert not store.exists("fresh.bin")
    assert store.listdir(store.root) == ["keep.bin"]
    f = store.open("keep.bin", "wb")
    f.write(b"discarded")
    f.__exit__(KeyError, KeyError(), None)
    assert f.closed
    assert store.read_bytes("keep.bin") == b"old"


@pytest.mark.parametrize(("mode", "layer"), [("wb", "raw"), ("w", "raw"), ("w", "buffer")])
def test_close_whose_flush_fails_publishes_nothing(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch, mode: str, layer: str
) -> None:
    """A KeyboardInterrupt (or any error) while close() flushes must not publish a cut file."""
    from artifactio._sync._files import BUFFER_SIZE, FileWriter, RawBridge

    store.write_bytes("f.bin", b"old")
    f = store.open("f.bin", mode)
    big, tail = b"a" * (BUFFER_SIZE + 1), b"tail"
    f.write(big if mode == "wb" else big.decode())  # reaches the store's writer
    f.write(tail if mode == "wb" else tail.decode())  # still buffered in the io layers

    def interrupted(self: object, data: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(RawBridge if layer == "raw" else FileWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        f.close()
    monkeypatch.undo()
    assert f.closed
    assert store.read_bytes("f.bin") == b"old"
    assert store.listdir(store.root) == ["f.bin"]


@pytest.mark.parametrize("mode", ["wb", "w"])
def test_garbage_collected_writer_publishes_nothing(store: ArtifactStore, mode: str) -> None:
    store.write_bytes("gc.bin", b"old")
    f = store.open("gc.bin", mode)
    f.write(b"new" if mode == "wb" else "new")
    f.flush()
    with pytest.warns(ResourceWarning, match="nothing was published"):
        del f  # the last reference: finalized right here
    assert store.read_bytes("gc.bin") == b"old"
    g = store.open("gc-new.bin", mode)
    with pytest.warns(ResourceWarning):
        del g
    assert not store.exists("gc-new.bin")


def test_file_keeps_its_facade_alive(memory_root: str) -> None:
    f = ArtifactStore(SuspendingMemoryStore(memory_root)).open("kept.bin", "wb")
    gc.collect()
    f.write(b"still works")
    f.close()
    with ArtifactStore(memory_root) as again:
        assert again.read_bytes("kept.bin") == b"still works"


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


class StuckStore(SuspendingMemoryStore):
    """``_info`` of a path ending in "stuck" waits until it is cancelled."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def _info(self, key: str) -> EntryInfo | None:
        if key.endswith("stuck"):
            self.started.set()
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
        return await super()._info(key)


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
