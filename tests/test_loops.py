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
import warnings
from typing import TYPE_CHECKING, Any

import pytest

import artifactio
from artifactio.backends.gcs import GCSStore
from artifactio.backends.s3 import S3Client, S3Store
from test_s3 import raw_s3, s3_options, s3_root  # noqa: F401 - fixtures

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
