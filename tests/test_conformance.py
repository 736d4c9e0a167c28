"""The conformance suite (artifactio.testing) run against the built-in local backends.

Each backend is one class and one fixture; the S3 and GCS suites live beside
their server fixtures.
"""

from __future__ import annotations

import pytest

from artifactio.testing import (
    Capabilities,
    ConformanceSuite,
    StoreFactory,
    SuspendingMemoryStore,
)


class TestMemory(ConformanceSuite):
    """``memory://`` stores."""

    @pytest.fixture
    def async_store_factory(self, memory_root: str) -> StoreFactory:
        from artifactio.backends.memory import MemoryStore

        # A small part size makes multi-part buffering happen in every write test.
        return StoreFactory(lambda: MemoryStore(memory_root, part_size=64 * 1024))


class TestLocal(ConformanceSuite):
    """Local directories, rooted at a plain absolute path."""

    @pytest.fixture
    def async_store_factory(self, local_root: str) -> StoreFactory:
        from artifactio.backends.local import LocalStore

        return StoreFactory(
            lambda: LocalStore(local_root, part_size=64 * 1024),
            Capabilities(local_paths=True),
        )


class TestLocalFileURI(ConformanceSuite):
    """Local directories, rooted at a ``file://`` URI (paths come back as URIs)."""

    @pytest.fixture
    def async_store_factory(self, local_root: str) -> StoreFactory:
        from artifactio.backends.local import LocalStore

        return StoreFactory(
            lambda: LocalStore("file://" + local_root, part_size=64 * 1024),
            Capabilities(local_paths=True),
        )


class TestMemoryOnLoopThread(ConformanceSuite):
    """``memory://`` stores that the sync facade must drive on its event-loop thread.

    The remote backends are never driven inline; this runs the facade's loop-thread
    runner through every row without needing a server.
    """

    @pytest.fixture
    def async_store_factory(self, memory_root: str) -> StoreFactory:
        return StoreFactory(lambda: SuspendingMemoryStore(memory_root, part_size=64 * 1024))
