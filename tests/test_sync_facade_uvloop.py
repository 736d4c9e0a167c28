"""The blocking facade on each kind of event loop (``ARTIFACTIO_EVENT_LOOP``: asyncio, uvloop).

The loop threads' event loops (the facade's, and that of the blocking transfers)
are made by :func:`artifactio._sync._runner.new_event_loop`, whose kind the
variable chooses (unset: uvloop when installed); the main thread's own loop is
always asyncio's. Every test here that takes ``loop_kind`` runs once per kind,
uvloop's run skipped when it is not installed (the ``uvloop`` extra): the
facade's main-thread calls, loop-thread calls, files, iterators, calls from
threads and from inside a running loop, a forked child, ``Ctrl-C``, closing
from elsewhere, dropping and exit, on a memory store that really suspends and
on S3; local directories through the blocking transfers (a local store's facade
runs inline, on no loop). Then part of the conformance suite (files and the
facade's threading rows) through the facade.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
import artifactio.blocking
from _facade_fixtures import StuckStore
from _forking import in_child
from artifactio import ArtifactStore, StoreClosedError
from artifactio._sync import _functions as _functions_module
from artifactio._sync import _runner as _runner_module
from artifactio._sync._runner import LOOP_ENV, new_event_loop
from artifactio.backends.s3 import S3Store
from artifactio.testing import (
    Capabilities,
    ConformanceFixtures,
    FacadeThreadingTests,
    FileTests,
    StoreFactory,
    SuspendingMemoryStore,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
NO_UVLOOP = "uvloop is not installed (the 'uvloop' extra): its runs are skipped"


def kind_of(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: what kind of loop ``loop`` is."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


@pytest.fixture(
    params=[
        "asyncio",
        pytest.param("uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason=NO_UVLOOP)),
    ]
)
def loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Sets ``ARTIFACTIO_EVENT_LOOP`` for the test; the kind it names."""
    monkeypatch.setenv(LOOP_ENV, request.param)
    return str(request.param)


@pytest.fixture(params=["memory", pytest.param("s3", marks=pytest.mark.s3)])
def new_facade(request: pytest.FixtureRequest) -> Callable[[], ArtifactStore]:
    """Makes a facade that runs its store on its loops: a memory store that suspends, or S3.

    The S3 facade opens its store by URI, so it owns it (and closes it when dropped).
    """
    if request.param == "memory":
        memory_root: str = request.getfixturevalue("memory_root")
        return lambda: ArtifactStore(SuspendingMemoryStore(memory_root))
    s3_root: str = request.getfixturevalue("s3_root")
    s3_options: dict[str, Any] = request.getfixturevalue("s3_options")
    return lambda: ArtifactStore(s3_root, **s3_options)


@pytest.fixture
def main_thread() -> None:
    """Skip unless the test runs in the main thread (the facade's own loop is the main thread's)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the facade runs calls on a loop of its own in the main thread only")


# ------------------------------------------------------------------ the variable


def test_the_variable_chooses_the_kind_of_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def made() -> str:
        loop = new_event_loop()
        try:
            return kind_of(loop)
        finally:
            loop.close()

    monkeypatch.setenv(LOOP_ENV, "asyncio")
    assert made() == "asyncio"
    monkeypatch.setenv(LOOP_ENV, " AsyncIO ")
    assert made() == "asyncio"
    monkeypatch.setenv(LOOP_ENV, "trio")
    with pytest.raises(ValueError, match=LOOP_ENV):
        new_event_loop()
    if HAS_UVLOOP:
        monkeypatch.delenv(LOOP_ENV)
        assert made() == "uvloop"  # the default, when installed
        monkeypatch.setenv(LOOP_ENV, "")
        assert made() == "uvloop"
        monkeypatch.setenv(LOOP_ENV, "uvloop")
        assert made() == "uvloop"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    monkeypatch.delenv(LOOP_ENV)
    assert made() == "asyncio"
    monkeypatch.setenv(LOOP_ENV, "uvloop")
    with pytest.raises(ImportError, match="uvloop is not installed"):
        new_event_loop()


# --------------------------------------------------------------- the facade


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("main_thread")
def test_main_thread_threads_files_and_walk_on_the_chosen_loop(
    loop_kind: str, new_facade: Callable[[], ArtifactStore]
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    facade = new_facade()
    facade.write_bytes("a/b.bin", data)  # on the main thread's own loop
    own = facade._runner._own
    assert own is not None
    assert kind_of(own.loop) == "asyncio"  # whatever the variable says
    no_thread_yet = facade._runner._loop_thread
    assert no_thread_yet is None

    def work(i: int) -> bytes:
        facade.write_bytes(f"t/{i}", str(i).encode())
        return facade.read_bytes(f"t/{i}")

    with ThreadPoolExecutor(4) as pool:  # on the loop thread
        assert list(pool.map(work, range(8))) == [str(i).encode() for i in range(8)]
        with facade.open("a/b.bin", "rb") as reader:  # opened here, read there too
            head = reader.read(1000)
            assert head + pool.submit(reader.read).result() == data
    loop_thread = facade._runner._loop_thread
    assert loop_thread is not None
    assert kind_of(loop_thread.loop) == loop_kind
    assert [(d.rsplit("/", 1)[-1], f) for d, _, f in facade.walk("a")] == [("a", ["b.bin"])]
    with facade.open("c.txt", "w") as writer:
        writer.write("text")
    assert facade.read_bytes("c.txt") == b"text"
    assert sorted(facade.listdir("t")) == sorted(str(i) for i in range(8))
    facade.close()
    assert own.loop.is_closed()
    assert not loop_thread.thread.is_alive()
    with pytest.raises(StoreClosedError):
        facade.exists("c.txt")


@pytest.mark.timeout(60)
def test_calls_and_close_from_inside_a_running_loop(
    loop_kind: str, new_facade: Callable[[], ArtifactStore]
) -> None:
    facade = new_facade()

    async def blocking_calls_here() -> None:
        facade.write_bytes("x", b"1")  # hops to the loop thread
        assert facade.read_bytes("x") == b"1"
        assert [files for _, _, files in facade.walk(facade.root)] == [["x"]]
        facade.close()

    asyncio.run(blocking_calls_here())
    assert facade._runner.closed
    assert facade._runner._own is None  # the calling thread ran a loop: never its own


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("main_thread")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_makes_loops_of_the_chosen_kind(
    loop_kind: str, new_facade: Callable[[], ArtifactStore]
) -> None:
    facade = new_facade()
    facade.write_bytes("parent", b"parent")  # the main thread's loop
    with facade.open("parent", "rb") as f:  # and the loop thread
        assert f.read() == b"parent"
    own = facade._runner._own
    assert own is not None

    def child() -> bool:
        ok = facade.read_bytes("parent") == b"parent"
        with facade.open("child", "wb") as f:
            f.write(b"child")
        child_own = facade._runner._own
        child_thread = facade._runner._loop_thread
        ok = ok and child_own is not None and child_own is not own
        ok = ok and child_own is not None and kind_of(child_own.loop) == "asyncio"
        ok = ok and child_thread is not None and kind_of(child_thread.loop) == loop_kind
        facade.close()
        return ok and not own.loop.is_closed()

    in_child(child)
    assert facade.read_bytes("parent") == b"parent"  # the parent's loops still work
    with facade.open("parent", "rb") as f:
        assert f.read() == b"parent"
    facade.close()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("main_thread")
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_ctrl_c_while_waiting_for_the_loop_thread(loop_kind: str, memory_root: str) -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is handled by someone else here")
    async_store = StuckStore(memory_root)
    main_ident = threading.main_thread().ident
    assert main_ident is not None

    def press_ctrl_c() -> None:
        async_store.started.wait()
        signal.pthread_kill(main_ident, signal.SIGINT)

    with ArtifactStore(async_store) as facade:
        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        with pytest.raises(KeyboardInterrupt):
            facade._runner.run(async_store.exists("stuck"))  # what files and iterators do
        presser.join()
        assert async_store.cancelled.wait(30)  # the interrupt cancelled the coroutine
        loop_thread = facade._runner._loop_thread
        assert loop_thread is not None
        assert kind_of(loop_thread.loop) == loop_kind
        with facade.open("x", "wb") as f:  # the loop thread is still usable
            f.write(b"1")
        assert [files for _, _, files in facade.walk(facade.root)] == [["x"]]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("main_thread")
def test_close_from_another_thread_during_a_main_thread_call(
    loop_kind: str, memory_root: str
) -> None:
    async_store = StuckStore(memory_root)
    facade = ArtifactStore(async_store)

    def close_when_stuck() -> None:
        async_store.started.wait()
        own = facade._runner._own
        assert own is not None
        assert kind_of(own.loop) == "asyncio"
        facade.close()

    closer = threading.Thread(target=close_when_stuck)
    closer.start()
    with pytest.raises(StoreClosedError):
        facade.exists("stuck")
    closer.join()
    assert async_store.cancelled.is_set()
    assert facade._runner._own is None


@pytest.mark.timeout(60)
def test_dropped_facade_releases_its_loops_without_warnings(
    loop_kind: str, new_facade: Callable[[], ArtifactStore]
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropped = new_facade()
        dropped.write_bytes("a", b"1")  # the main thread's loop (when this is the main thread)
        with ThreadPoolExecutor(1) as pool:  # the loop thread
            assert pool.submit(dropped.read_bytes, "a").result() == b"1"
        own = dropped._runner._own
        loop_thread = dropped._runner._loop_thread
        assert loop_thread is not None
        assert kind_of(loop_thread.loop) == loop_kind
        del dropped
        gc.collect()
        for releasing in list(_runner_module._RELEASING):
            releasing.join()
        loop_thread.thread.join()
        assert own is None or own.loop.is_closed()
        gc.collect()
    assert [str(w.message) for w in caught] == []


@pytest.mark.s3
def test_atexit_closes_the_loops_and_the_client(
    loop_kind: str, s3_root: str, s3_options: dict[str, Any], tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import atexit, json, sys, threading

        def check():  # registered first: runs after artifactio's exit hook
            closed = all(s.closed for s in sessions) and own.loop.is_closed()
            print("closed" if closed and sessions else "open", flush=True)

        atexit.register(check)

        import artifactio
        from artifactio.backends.s3 import S3Store

        root, options = json.loads(sys.argv[1])
        facade = artifactio.ArtifactStore(S3Store(root, **options))
        facade.write_bytes("atexit.txt", b"1")
        thread = threading.Thread(target=facade.read_bytes, args=("atexit.txt",))
        thread.start()
        thread.join()
        own = facade._runner._own
        kind = type(facade._runner._loop_thread.loop).__module__.split(".")[0]
        print(type(own.loop).__module__.split(".")[0], kind, flush=True)
        client = own.run(facade.async_store._client())
        sessions = list(client.s3._endpoint.http_session._sessions.values())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script, json.dumps([s3_root, s3_options])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, LOOP_ENV: loop_kind},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["asyncio", loop_kind, "closed"]
    assert "Warning" not in proc.stderr, proc.stderr


# ------------------------------------------------------- the blocking transfers


@pytest.fixture
def fresh_transfer_loop() -> Iterator[None]:
    """Close the blocking transfers' shared runner before and after: its loop is made anew."""
    _functions_module._shared_runner().close()
    yield
    _functions_module._shared_runner().close()


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("fresh_transfer_loop")
@pytest.mark.parametrize("remote", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_blocking_transfers_run_on_the_chosen_loop(
    loop_kind: str, remote: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "src"
    for i in range(20):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.bin").write_bytes(os.urandom(i * 100))
    facade = None
    if remote == "s3":
        s3_options: dict[str, Any] = request.getfixturevalue("s3_options")
        facade = ArtifactStore(S3Store(request.getfixturevalue("s3_root"), **s3_options))
        middle: Any = (facade, "tree")
    else:
        middle = str(tmp_path / "middle")
    try:
        up = artifactio.blocking.copy(str(src), middle, recursive=True)
        runner = _functions_module._runner
        assert runner is not None
        assert runner._loop_thread is not None
        assert kind_of(runner._loop_thread.loop) == loop_kind
        back = artifactio.blocking.sync(middle, str(tmp_path / "back"))
    finally:
        if facade is not None:
            facade.close()
    assert up.transferred == back.transferred == 20
    assert up.failed == back.failed == 0
    assert {p.relative_to(src): p.read_bytes() for p in src.rglob("*.bin")} == {
        p.relative_to(tmp_path / "back"): p.read_bytes() for p in (tmp_path / "back").rglob("*.bin")
    }


# ------------------------------------------------------------ conformance rows


class _OnEachLoop(ConformanceFixtures, FileTests, FacadeThreadingTests):
    """The file rows and the facade's threading rows, through the facade only, per loop kind."""

    pytestmark = pytest.mark.asyncio

    @pytest.fixture
    def api_kind(self) -> str:
        return "sync"

    @pytest.fixture(autouse=True)
    def _on_loop(self, loop_kind: str) -> None:
        """Every test of the class runs once per kind of loop."""


class TestMemoryFacadeOnEachLoop(_OnEachLoop):
    """A memory store that really suspends, so that the facade runs it on its loops."""

    @pytest.fixture
    def async_store_factory(self, memory_root: str) -> StoreFactory:
        return StoreFactory(lambda: SuspendingMemoryStore(memory_root, part_size=64 * 1024))


@pytest.mark.s3
class TestS3FacadeOnEachLoop(_OnEachLoop):
    """S3 (SeaweedFS), 5 MiB parts."""

    @pytest.fixture
    def async_store_factory(self, s3_root: str, s3_options: dict[str, Any]) -> StoreFactory:
        return StoreFactory(
            lambda: S3Store(s3_root, part_size=5 * 1024 * 1024, **s3_options),
            Capabilities(object_store=True),
        )
