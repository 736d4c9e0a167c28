"""Object-store clients and the event loops they belong to, on S3 and GCS.

A store makes one client per event loop. However a loop ends, and from wherever
the store is closed, every client is closed on its own loop, or released without
it when that loop was closed first: no warning about an unclosed session,
connector, transport or socket, and ``close()`` never waits for a loop that its
own caller is blocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from _forking import in_child
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Client, S3Store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from artifactio.backends._objectstore import ObjectClient, ObjectStore
    from artifactio.embedded import FakeGCSServer


@pytest.fixture(
    params=[pytest.param("s3", marks=pytest.mark.s3), pytest.param("gcs", marks=pytest.mark.gcs)]
)
def new_store(request: pytest.FixtureRequest) -> Callable[..., ObjectStore]:
    """Makes a store on a fresh root of the session's SeaweedFS or fake-gcs-server."""
    if request.param == "s3":
        root: str = request.getfixturevalue("s3_root")
        options: dict[str, Any] = request.getfixturevalue("s3_options")
        return lambda **more: S3Store(root, **{**options, **more})
    server: FakeGCSServer = request.getfixturevalue("fake_gcs_server")
    gcs_root: str = request.getfixturevalue("gcs_root")
    return lambda **more: GCSStore(gcs_root, **server.store_options(**more))


def _sessions(client: ObjectClient) -> list[Any]:
    """The client's aiohttp sessions (for S3: those it made so far)."""
    if isinstance(client, S3Client):
        return list(client.s3._endpoint.http_session._sessions.values())
    return [client._session]  # type: ignore[attr-defined]


def _open(sessions: list[Any]) -> list[Any]:
    return [session for session in sessions if not session.closed]


@contextlib.contextmanager
def _no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on a ResourceWarning or an asyncio error, until gc has run at the block's end."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR, "asyncio"):
        warnings.simplefilter("always")
        yield
        gc.collect()
    found = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    found.extend(r.getMessage() for r in caplog.records if r.name == "asyncio")
    assert found == []


def _sessions_on(store: ObjectStore, loop: asyncio.AbstractEventLoop) -> list[Any]:
    """Use ``store`` on ``loop`` (not running) and return the sessions of that loop's client."""

    async def use() -> list[Any]:
        await store.exists("a.txt")
        return _sessions(await store._client())

    return loop.run_until_complete(use())


async def _until_closed(sessions: list[Any]) -> None:
    while _open(sessions):
        await asyncio.sleep(0.01)


@pytest.mark.timeout(30)  # far less than read_timeout + 30 s
@pytest.mark.parametrize("then", ["returns", "awaits"])
def test_facade_close_from_inside_a_loop_that_uses_the_store(
    new_store: Callable[..., ObjectStore], then: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store(read_timeout=60)
    sessions: list[Any] = []

    async def main() -> None:
        await store.write_bytes("a.txt", b"here")
        sessions.extend(_sessions(await store._client()))
        facade = artifactio.ArtifactStore(store)
        assert facade.read_bytes("a.txt") == b"here"  # through the facade's own loop
        facade.close()  # from this loop's thread: nothing may wait for this loop
        with pytest.raises(artifactio.StoreClosedError):
            await store.exists("a.txt")
        if then == "awaits":  # this loop runs again: its client closes now
            await _until_closed(sessions)
        # else asyncio.run closes it when it shuts the loop down

    with _no_leaks(caplog):
        asyncio.run(main())
        assert sessions
        assert _open(sessions) == []
        assert store._pool._slots == {}
        sessions.clear()


def test_client_of_a_loop_closed_without_shutdown_is_released_at_aclose(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        loop = asyncio.new_event_loop()
        try:
            sessions = _sessions_on(store, loop)
        finally:
            loop.close()  # no shutdown_asyncgens(): the client's guard never runs
        asyncio.run(store.aclose())
        assert sessions
        assert _open(sessions) == []
        del sessions, loop


def test_clients_of_closed_loops_are_released_when_another_loop_comes(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        sessions: list[Any] = []
        for _ in range(2):
            loop = asyncio.new_event_loop()
            try:
                sessions.extend(_sessions_on(store, loop))
            finally:
                loop.close()
        assert asyncio.run(store.exists("a.txt")) is False
        assert len(sessions) == 2
        assert _open(sessions) == []
        assert store._pool._slots == {}  # the closed loops are forgotten too
        asyncio.run(store.aclose())
        del sessions, loop


@pytest.mark.timeout(30)
def test_client_of_an_idle_loop_closes_when_that_loop_runs_again(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        loop = asyncio.new_event_loop()
        try:
            sessions = _sessions_on(store, loop)
            asyncio.run(store.aclose())  # that loop is not running: nothing waits for it
            loop.run_until_complete(_until_closed(sessions))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        del sessions, loop


def test_client_of_an_idle_loop_closes_when_that_loop_shuts_down(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        loop = asyncio.new_event_loop()
        try:
            sessions = _sessions_on(store, loop)
            asyncio.run(store.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            assert _open(sessions) == []
        finally:
            loop.close()
        del sessions, loop


# ------------------------------------- the blocking facade's main-thread loop


@pytest.fixture
def main_thread() -> None:
    """Skip unless the test runs in the main thread (the facade's own loop is the main thread's)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the facade runs calls on a loop of its own in the main thread only")


def _own_sessions(facade: artifactio.ArtifactStore) -> list[Any]:
    """The sessions of the client that the facade's store made on the main thread's loop."""
    own = facade._runner._own
    assert own is not None
    store: ObjectStore = facade.async_store  # type: ignore[assignment]
    return _sessions(own.run(store._client()))


def _hop_sessions(facade: artifactio.ArtifactStore) -> list[Any]:
    """The sessions of the client that the facade's store made on the facade's loop thread."""
    store: ObjectStore = facade.async_store  # type: ignore[assignment]
    return _sessions(facade._runner.run(store._client()))


@pytest.mark.usefixtures("main_thread")
def test_facade_calls_from_the_main_thread_run_on_its_own_loop(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        facade = artifactio.ArtifactStore(store)
        facade.write_bytes("a.txt", b"1")
        assert facade.read_bytes("a.txt") == b"1"
        assert facade._runner._loop_thread is None  # no thread hop, no loop thread
        own = facade._runner._own
        assert own is not None
        assert list(store._pool._slots) == [own.loop]
        sessions = _own_sessions(facade)
        facade.close()
        assert own.loop.is_closed()
        assert sessions
        assert _open(sessions) == []
        del sessions


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("main_thread")
@pytest.mark.parametrize("closer", ["another thread", "a running loop"])
def test_facade_close_elsewhere_closes_the_main_threads_loop_and_client(
    new_store: Callable[..., ObjectStore], closer: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    with _no_leaks(caplog):
        facade = artifactio.ArtifactStore(store)
        facade.write_bytes("a.txt", b"1")  # the main thread's loop gets a client
        with ThreadPoolExecutor(1) as pool:  # and the loop thread another
            assert pool.submit(facade.read_bytes, "a.txt").result() == b"1"
        own = facade._runner._own
        assert own is not None
        sessions = _own_sessions(facade) + _hop_sessions(facade)
        if closer == "another thread":
            thread = threading.Thread(target=facade.close)
            thread.start()
            thread.join()
        else:  # this thread cannot run the main thread's loop now: a helper closes it

            async def close_here() -> None:
                facade.close()

            asyncio.run(close_here())
        assert own.loop.is_closed()
        assert len(sessions) >= 2
        assert _open(sessions) == []
        with pytest.raises(artifactio.StoreClosedError):
            facade.exists("a.txt")
        del sessions


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("main_thread")
def test_facade_from_many_threads_and_the_main_thread_at_once(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()

    def work(i: int) -> int:
        for j in range(10):
            facade.write_bytes(f"t{i}/{j}", f"{i}-{j}".encode())
            assert facade.read_bytes(f"t{i}/{j}") == f"{i}-{j}".encode()
        return len(facade.listdir(f"t{i}"))

    with _no_leaks(caplog):
        facade = artifactio.ArtifactStore(store)
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(work, i) for i in range(8)]
            assert work(8) == 10  # the main thread meanwhile, on its own loop
            assert [f.result() for f in futures] == [10] * 8
        # Two clients whatever the number of threads: the main thread's and the loop thread's.
        assert len(store._pool._slots) == 2
        sessions = _own_sessions(facade) + _hop_sessions(facade)
        facade.close()
        assert _open(sessions) == []
        del sessions


@pytest.mark.usefixtures("main_thread")
def test_facade_file_opened_in_the_main_thread_is_used_from_another(
    new_store: Callable[..., ObjectStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = new_store()
    data = os.urandom(6 * 1024 * 1024 + 5)  # more than a block: the reader reads ahead
    with _no_leaks(caplog):
        facade = artifactio.ArtifactStore(store)
        facade.write_bytes("big.bin", data)
        with ThreadPoolExecutor(1) as pool:
            with facade.open("big.bin", "rb") as reader:
                head = reader.read(100_000)
                assert head + pool.submit(reader.read).result() == data
            writer = facade.open("out.bin", "wb")
            pool.submit(writer.write, data).result()
            writer.close()
        assert facade.read_bytes("out.bin") == data
        facade.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.usefixtures("main_thread")
def test_forked_child_makes_its_own_main_loop(new_store: Callable[..., ObjectStore]) -> None:
    facade = artifactio.ArtifactStore(new_store())
    facade.write_bytes("parent.txt", b"parent")  # the main thread's loop, a client, a connection
    own = facade._runner._own
    assert own is not None

    def child() -> bool:
        ok = facade.read_bytes("parent.txt") == b"parent"
        child_own = facade._runner._own
        ok = ok and child_own is not None and child_own is not own
        ok = ok and child_own is not None and child_own.pid == os.getpid()
        facade.write_bytes("child.txt", b"child")
        facade.close()
        return ok and not own.loop.is_closed()  # the parent's loop was left alone

    in_child(child)
    assert facade._runner._own is own
    assert facade.read_bytes("child.txt") == b"child"  # on the parent's loop, still working
    facade.close()
